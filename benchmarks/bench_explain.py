"""Localisation of anomalies in time and frequency, every detector family beside audio-anomaly.

Usage::

    python benchmarks/bench_explain.py [--clips-per-type 8] [--seed 0] [--only NAME ...]

Generated data (a clearly labelled ablation: the truth of where an anomaly is exists only
for generated clips). Four units of one product (``make_machine_sounds(machine_type="pump")``),
30 normal 10 s training clips each; test clips with anomalies local in time
(``local=True``: knocks within one stretch, one dropout, a whine starting mid-clip) and
whole-clip ones (harmonic, drift), ``--clips-per-type`` of each type per unit.

For every detector family (fitted on the normal clips of all units together) and for
``audio-anomaly`` (``pip install skasd[bench]``; each clip judged against a 50 s reference of
normal clips of its own unit), two figures over the anomalous clips:

- **time**: the fraction of the clips with an anomaly local in time (knock, dropout, whine)
  whose top segment overlaps the true interval;
- **band**: the fraction of all anomalous clips whose top band lies within one octave of the
  true band (octave distance 0 when the ranges overlap).

skasd's top segment and band are :func:`skasd.inspection.explain`'s first row per clip.
audio-anomaly's are its highest-scoring event (its frame with the highest score where it
reports none) and the band its message names ("... in the 2.81 kHz-3.21 kHz band", or "near
F kHz"); an event naming no band (a broadband burst, a level change) counts as a miss for the
band figure. The cost line compares :func:`skasd.inspection.frame_scores` with
``score_samples`` on 100 ten-second clips from waveforms through the whole pipeline
(log-mel included) and on the log-mel alone, measured side by side in one run, one torch thread.
"""

import argparse
import re
import time

import numpy as np
import pandas as pd
import torch
from sklearn.pipeline import make_pipeline

import skasd
from skasd.datasets import make_machine_sounds
from skasd.inspection import explain, frame_scores

TYPES = ("knock", "dropout", "whine", "harmonic", "drift")
UNITS = ("id_00", "id_01", "id_02", "id_03")
SR = 16000


def families(seed):
    """name -> (pipeline on waveforms, fit with the unit labels as y?)."""
    lm = skasd.LogMelTransformer
    return {
        "knn": (make_pipeline(lm(), skasd.KNNDetector()), False),
        "knn-spectrum": (make_pipeline(skasd.SpectrumTransformer(), skasd.KNNDetector(metric="euclidean")), False),
        "mahalanobis": (make_pipeline(lm(), skasd.MahalanobisDetector()), False),
        "gmm": (make_pipeline(lm(), skasd.GMMDetector(random_state=seed)), False),
        "denseae": (make_pipeline(lm(), skasd.DenseAE(max_epochs=20, random_state=seed)), False),
        "vae": (make_pipeline(lm(), skasd.VAE(max_epochs=20, random_state=seed)), False),
        "cnnae": (make_pipeline(lm(), skasd.CNNAE(max_epochs=20, random_state=seed)), False),
        "embedding-knn": (
            make_pipeline(lm(), skasd.ClassifierEmbedding(max_epochs=20, random_state=seed), skasd.KNNDetector()),
            True,
        ),
    }


def data(clips_per_type, seed):
    train = make_machine_sounds(n_normal=30, n_anomaly=0, machine_ids=UNITS, machine_type="pump",
                                random_state=seed)
    test = make_machine_sounds(n_normal=0, n_anomaly=clips_per_type * len(TYPES), machine_ids=UNITS,
                               machine_type="pump", anomaly_types=TYPES, local=True, random_state=seed + 1000)
    return train, test


def octave_distance(a, b):
    """Octaves between two Hz ranges (0 where they overlap)."""
    (a0, a1), (b0, b1) = sorted(a), sorted(b)
    if a1 >= b0 and b1 >= a0:
        return 0.0
    return abs(np.log2(b0 / a1)) if a1 < b0 else abs(np.log2(a0 / b1))


def hits(start, end, band, test, i):
    """(time hit or None where the anomaly is not local, band hit)."""
    time_hit = None
    if test.anomaly_local[i]:
        time_hit = bool(start <= test.anomaly_offset[i] and end >= test.anomaly_onset[i])
    band_hit = band is not None and octave_distance(band, test.anomaly_band[i]) <= 1.0
    return time_hit, band_hit


_RANGE = re.compile(r"([\d.]+) *(k?Hz) *- *([\d.]+) *(k?Hz) band")
_NEAR = re.compile(r"near ([\d.]+) *(k?Hz)")


def _hz(value, unit):
    return float(value) * (1000.0 if unit == "kHz" else 1.0)


def audio_anomaly_band(message):
    if m := _RANGE.search(message):
        return _hz(m[1], m[2]), _hz(m[3], m[4])
    if m := _NEAR.search(message):
        f = _hz(m[1], m[2])
        return f * 2 ** (-1 / 12), f * 2 ** (1 / 12)
    return None


def run_audio_anomaly(train, test):
    import audio_anomaly

    monitors = {}
    for unit in UNITS:
        reference = np.concatenate(train.data[train.machine_id == unit][:5])
        monitors[unit] = audio_anomaly.Monitor((reference, SR))
    rows = []
    for i, clip in enumerate(test.data):
        report = monitors[test.machine_id[i]].check((clip, SR))
        if report.anomalies:
            event = report.loudest(1)[0]
            start, end, band = event.start_s, event.end_s, audio_anomaly_band(event.message)
        else:
            t = report.frame_times[int(np.argmax(report.scores))]
            start, end, band = t - 0.025, t + 0.025, None
        rows.append(hits(start, end, band, test, i))
    return rows


def run_skasd(pipe, with_y, train, test):
    if with_y:
        pipe.fit(train.data, train.machine_id)
    else:
        pipe.fit(train.data)
    table = explain(pipe, list(test.data), n_segments=1)
    rows = []
    for i, row in table.groupby("clip").first().iterrows():
        rows.append(hits(row["start_s"], row["end_s"], (row["band_low_hz"], row["band_high_hz"]), test, i))
    return rows


def cost(pipe, waves):
    """(frame_scores / score_samples time from waveforms, the same on log-mel; NaN for a
    spectrum pipeline, whose frame scores need the audio)."""
    X = pipe[0].transform(waves)
    timings = {"det_frames": np.nan, "det_score": 1.0}
    steps = [("pipe_score", lambda: pipe.score_samples(waves)), ("pipe_frames", lambda: frame_scores(pipe, waves))]
    if not isinstance(pipe[0], skasd.SpectrumTransformer):
        steps += [("det_score", lambda: pipe[1:].score_samples(X)),
                  ("det_frames", lambda: frame_scores(pipe[1:] if len(pipe) > 2 else pipe[-1], X, features=pipe[0]))]
    for name, fn in steps:
        fn()  # warm
        t0 = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - t0
    return timings["pipe_frames"] / timings["pipe_score"], timings["det_frames"] / timings["det_score"]


def summarise(name, rows, test, extra=""):
    local = np.array([t is not None for t, _ in rows])
    time = np.array([bool(t) for t, _ in rows])
    band = np.array([b for _, b in rows])
    time_types = {k: f"{np.mean(time[local & (test.anomaly_type == k)]):.2f}" for k in TYPES
                  if (local & (test.anomaly_type == k)).any()}
    band_types = {k: f"{np.mean(band[test.anomaly_type == k]):.2f}" for k in TYPES}
    print(f"{name:16s} time {np.mean(time[local]):.2f} ({local.sum()} local clips; {time_types})  band "
          f"{band.mean():.2f} ({len(band)} clips; {band_types}){extra}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-type", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="families to run (audio-anomaly is one)")
    parser.add_argument("--no-cost", action="store_true", help="skip the cost measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = data(args.clips_per_type, args.seed)
    waves = list(test.data[:100]) if len(test.data) >= 100 else list(np.resize(test.data, (100, test.data.shape[1])))
    print(f"{len(train.data)} normal training clips, {len(test.data)} anomalous test clips "
          f"({int(test.anomaly_local.sum())} local in time), 10 s at {SR} Hz (generated: an ablation)")
    if not args.only or "audio-anomaly" in args.only:
        t0 = time.perf_counter()
        summarise("audio-anomaly", run_audio_anomaly(train, test), test, f"  [{time.perf_counter() - t0:.0f} s]")
    for name, (pipe, with_y) in families(args.seed).items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        rows = run_skasd(pipe, with_y, train, test)
        extra = f"  [{time.perf_counter() - t0:.0f} s]"
        if not args.no_cost:
            ratio_pipe, ratio_det = cost(pipe, waves)
            extra += f"  cost frame_scores/score_samples: {ratio_pipe:.2f}x from waveforms, {ratio_det:.2f}x on log-mel"
        summarise(name, rows, test, extra)


if __name__ == "__main__":
    pd.set_option("display.width", 200)
    main()
