"""explain: segments, bands and sentences, measured against where generated anomalies really are."""

import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

from skasd import DenseAE, KNNDetector, LogMelTransformer, SpectrumTransformer
from skasd.datasets import make_machine_sounds
from skasd.inspection import explain
from skasd.inspection._explain import _segments

SR = 16000
NOTHING = r"no segment stands out \(below the threshold\); closest to standing out: "
SENTENCE = re.compile(rf"^({NOTHING})?[0-9.]+-[0-9.]+ s: [+-][0-9]+ dB in [0-9.]+-[0-9.]+ k?Hz, [a-z ()]+$")


@pytest.fixture(scope="module")
def sounds():
    """Normal clips of a generated pump and 10 clips of each anomaly type: knocks, dropouts and
    whines confined to a stretch of the clip (local=True), harmonic changes over all of it."""
    train = make_machine_sounds(n_normal=30, n_anomaly=0, duration=6.0, machine_type="pump0", random_state=0)
    test = make_machine_sounds(n_normal=0, n_anomaly=40, duration=6.0, machine_type="pump0", local=True,
                               anomaly_types=("knock", "dropout", "whine", "harmonic"), random_state=10)
    return train, test


def _octaves(a, b):
    (a0, a1), (b0, b1) = sorted(a), sorted(b)
    if a1 >= b0 and b1 >= a0:
        return 0.0
    return np.log2(b0 / a1) if a1 < b0 else np.log2(a0 / b1)


def _hits(starts, ends, bands, test):
    local = test.anomaly_local
    time = np.mean([s <= test.anomaly_offset[i] and e >= test.anomaly_onset[i]
                    for i, (s, e) in enumerate(zip(starts, ends)) if local[i]])
    band = np.mean([b is not None and _octaves(b, test.anomaly_band[i]) <= 1 for i, b in enumerate(bands)])
    return time, band


def _measure(pipe, test):
    table = explain(pipe, list(test.data), n_segments=1)
    assert len(table) == len(test.data) and table["summary"].str.match(SENTENCE).all(), table["summary"].tolist()
    return _hits(table["start_s"], table["end_s"], list(zip(table["band_low_hz"], table["band_high_hz"])), test)


@pytest.mark.parametrize("detector", [KNNDetector(), DenseAE(max_epochs=10, batch_size=64, random_state=0)],
                         ids=["knn", "denseae"])
def test_explain_localises_generated_anomalies(sounds, detector):
    """The issue's goal: the top segment overlaps the true interval, and the top band lies
    within an octave of the true band, for at least 0.8 of the clips (benchmarks/bench_explain.py
    measures every family on more clips)."""
    train, test = sounds
    pipe = make_pipeline(LogMelTransformer(), detector).fit(train.data)
    time, band = _measure(pipe, test)
    assert time >= 0.8 and band >= 0.8, (time, band)


def test_explain_localises_generated_anomalies_with_the_spectrum_recipe(sounds):
    """The DCASE recipe (k-NN on clip spectra) explains in 1 s windows and 4 Hz bins:
    measured 0.73 in time and 0.78 in band on these clips (benchmarks/bench_explain.py: the
    same family on more clips); asserted with margin."""
    train, test = sounds
    pipe = make_pipeline(SpectrumTransformer(), KNNDetector(metric="euclidean")).fit(train.data)
    time, band = _measure(pipe, test)
    assert time >= 0.6 and band >= 0.6, (time, band)


def test_explain_is_ahead_of_audio_anomaly(sounds):
    audio_anomaly = pytest.importorskip("audio_anomaly")
    train, test = sounds
    time, band = _measure(make_pipeline(LogMelTransformer(), KNNDetector()).fit(train.data), test)
    monitor = audio_anomaly.Monitor((np.concatenate(train.data[:5]), SR))
    starts, ends, bands = [], [], []
    for clip in test.data:
        report = monitor.check((clip, SR))
        if report.anomalies:
            event = report.loudest(1)[0]
            m = re.search(r"([\d.]+) *(k?Hz) *- *([\d.]+) *(k?Hz) band", event.message)
            hz = [float(m[k]) * (1000 if m[k + 1] == "kHz" else 1) for k in (1, 3)] if m else None
            starts.append(event.start_s), ends.append(event.end_s), bands.append(hz)
        else:
            t = report.frame_times[np.argmax(report.scores)]
            starts.append(t), ends.append(t), bands.append(None)
    peer_time, peer_band = _hits(starts, ends, bands, test)
    assert time >= peer_time and band > peer_band, ((time, band), (peer_time, peer_band))


def test_explain_table_and_errors(sounds):
    train, test = sounds
    pipe = make_pipeline(LogMelTransformer(), KNNDetector()).fit(train.data)
    table = explain(pipe, test.data[:2], n_segments=3, n_bands=2)
    assert table.groupby("clip")["segment"].min().tolist() == [1, 1]
    assert (table["start_s"] < table["end_s"]).all() and (table["band_low_hz"] < table["band_high_hz"]).all()
    assert (table["threshold"] == -pipe[-1].offset_).all()
    assert (table["anomalous"] == (table["anomaly_score"] > table["threshold"])).all()
    np.testing.assert_allclose(table.groupby("clip")["anomaly_score"].first(), pipe[-1].anomaly_score(
        pipe[0].transform(test.data[:2])))
    assert table["bands"].str.count(";").max() == 1
    with pytest.raises(ValueError, match="n_segments must be a positive int"):
        explain(pipe, test.data[:1], n_segments=0)
    with pytest.raises(NotFittedError, match="fit"):
        explain(make_pipeline(LogMelTransformer(), KNNDetector()), test.data[:1])
    with pytest.raises(ValueError, match="at least one window of 32 frames"):
        explain(pipe, test.data[:1, : SR // 2])
    bad = test.data[:1].copy()
    bad[0, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        explain(pipe, bad)
    del pipe[-1].band_profile_, pipe[-1].model_profiles_  # as a model saved by skasd 0.1
    with pytest.raises(ValueError, match="no band_profile_.*Refit"):
        explain(pipe, test.data[:1])


def test_a_clip_below_its_threshold_gets_no_segment_that_stands_out(sounds):
    train, test = sounds
    pipe = make_pipeline(LogMelTransformer(), KNNDetector()).fit(train.data[:20])
    table = explain(pipe, np.r_[train.data[20:22], test.data[:8]], n_segments=3)
    below = table[~table["anomalous"]]
    assert {0, 1} <= set(below["clip"]) and below["clip"].is_unique  # one row each
    assert below["summary"].str.match(NOTHING).all()
    flagged = table[table["anomalous"]]
    assert flagged["clip"].nunique() > 0 and not flagged["summary"].str.match(NOTHING).any()


def test_clips_are_compared_with_their_own_domain():
    """A band 15 dB louder in the target domain is the domains' gap, not an anomaly: a target clip is
    compared with the target clips, and its real change (band 3) is named, not band 12."""
    rng = np.random.default_rng(0)
    source = rng.normal(-40, 1, size=(30, 16, 40))
    target = rng.normal(-40, 1, size=(12, 16, 40))
    target[:, 12] += 15
    det = KNNDetector(2, metric="euclidean", domain_norm="zscore").fit(
        np.r_[source, target], domain=["source"] * 30 + ["target"] * 12)
    clip = rng.normal(-40, 1, size=(2, 16, 40))
    clip[:, 12] += 15
    clip[1, 3, 10:30] += 12
    np.testing.assert_allclose(det.normal_profile(clip), [[target.mean(axis=(0, 2)), target.std(axis=(0, 2))]] * 2)
    np.testing.assert_allclose(det.normal_profile(source[:1]), [[source.mean(axis=(0, 2)), source.std(axis=(0, 2))]])
    table = explain(det, clip, features=LogMelTransformer(n_mels=16), n_segments=1)
    edges = [row["band_low_hz"] for _, row in table.iterrows()]
    from skasd.inspection._frames import band_edges

    bands = band_edges(LogMelTransformer(n_mels=16))[:, 0].tolist()
    assert bands.index(edges[1]) == 3 and table["anomalous"].tolist() == [False, True]
    # against the pooled profile of both domains, the gap (band 12) would have been named
    del det.model_profiles_
    assert explain(det, clip, features=LogMelTransformer(n_mels=16), n_segments=1)["band_low_hz"].iloc[0] == bands[12]


def test_segments_grow_around_peaks():
    scores = np.zeros(100)
    scores[40:50] = 10
    scores[46] = 0  # a one-frame gap is bridged
    scores[80:83] = 7  # a second, weaker peak
    scores[10] = 2  # too weak to be a segment
    segments = _segments(scores, 3)
    assert [(int(lo), int(hi)) for lo, hi, _ in segments] == [(40, 49), (80, 82)]
    assert segments[0][2] == 10
    assert _segments(np.full(10, np.nan), 2) == [(0, 9, pytest.approx(np.nan, nan_ok=True))]


def test_docstring_examples_run():
    import doctest

    from skasd.inspection import _explain, _frames

    for module in (_frames, _explain):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
