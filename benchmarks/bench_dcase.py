"""Every skasd detector family on a real DCASE 2021-2024 folder, side by side, the official way.

Usage::

    python benchmarks/bench_dcase.py DATA_DIR [--machine-type T] [--seeds 0 1 2] [--only NAME ...]

``DATA_DIR`` is a DCASE 2021-2024 development folder as downloaded (``<type>/train``,
``<type>/test``, e.g. ``../shared/data/dcase2023-toycar``). Each detector is fitted on the
train clips (normal only) and scores the test clips; the table gives, per detector and
section, AUC (source) (source normals + all anomalies), AUC (target) (target normals + all
anomalies), pAUC (all clips, max FPR 0.1) and the official score (their harmonic mean), as
the mean +- standard deviation over seeds for the trained detectors, beside the published
DCASE 2023 baseline figures of that machine type where known. Fit time and peak resident
memory of each fit are printed too (one torch thread; the log-mel features are computed
once, before the fits, and are not counted, except for the default recipe ``knn-fusion`` and its fallback ``knn-spectrum``,
whose fit and score times include decoding the files and computing their spectra, and the
pretrained ``knn-aisfx``, whose times include decoding, resampling to 44.1 kHz and the CNN, and
the fine-tuned aisfx backbone ``embedding-aisfx``, which reads the files too; ``--aisfx-epochs``
its epochs).
"""

import argparse
import os
import threading
import time

import numpy as np
import pandas as pd
import psutil
import torch
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skasd
from skasd.datasets import load_dcase
from skasd.metrics import dcase_report

# Published DCASE 2023 Task 2 baseline figures (development set, AUC (source), AUC (target),
# pAUC), from the task's baseline page, approximate; see the data folder's SOURCE.md.
PUBLISHED = {
    "ToyCar": {"baseline AE (MSE)": (0.70, 0.47, 0.52), "baseline selective Mahalanobis": (0.74, 0.43, 0.49)},
}


# The published aisfx checkpoint (None: the user's skasd cache, filled by `skasd weights fetch aisfx`).
AISFX_WEIGHTS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "aisfx", "checkpoint.pth")


def detectors(seed, aisfx_weights=None, aisfx_epochs=3):
    """name -> (estimator taking log-mel, or file paths for the spectrum and pretrained recipes, fit metadata names,
    trained?)."""
    emb = skasd.ClassifierEmbedding(max_epochs=10, random_state=seed)
    # the pretrained aisfx CNN, its last conv block fine-tuned on the same classes
    finetuned = skasd.ClassifierEmbedding(backbone="aisfx", backbone_weights=aisfx_weights, trainable_blocks=1,
                                          max_epochs=aisfx_epochs, random_state=seed)
    spectrum = make_pipeline(skasd.SpectrumTransformer(), skasd.KNNDetector(metric="euclidean", domain_norm="zscore"))
    # mean+std of the 2.3 s block embeddings (1024-d), centred by the training mean, cosine k-NN
    aisfx = make_pipeline(skasd.PretrainedEmbedding(model="aisfx", weights=aisfx_weights),
                          StandardScaler(with_std=False), skasd.KNNDetector(metric="cosine"))
    # the default recipe (knn-fusion): both k-NNs, the aisfx one on the nearest clip of either domain,
    # fused by the ranks of their scores among their training clips' leave-one-out scores
    fusion = skasd.ScoreFusion([
        ("spectrum", clone(spectrum)),
        ("aisfx", make_pipeline(skasd.PretrainedEmbedding(model="aisfx", weights=aisfx_weights),
                                StandardScaler(with_std=False), skasd.KNNDetector(metric="cosine"))),
    ], method="rank")
    return {
        "knn-fusion (default)": (fusion, ("domain",), False),
        "knn-spectrum (fallback)": (spectrum, ("domain",), False),
        "knn-aisfx (pretrained)": (aisfx, (), False),
        "knn (log-mel stats)": (skasd.KNNDetector(), ("domain",), False),
        "knn, domain-normalised": (skasd.KNNDetector(domain_norm="zscore"), ("domain",), False),
        "mahalanobis": (skasd.MahalanobisDetector(), ("domain",), False),
        "gmm": (skasd.GMMDetector(random_state=seed), ("domain",), True),
        "denseae": (skasd.DenseAE(max_epochs=10, random_state=seed), (), True),
        "cnnae + L2": (skasd.CNNAE(skip=True, l2=0.002, max_epochs=10, random_state=seed), (), True),
        "vae": (skasd.VAE(max_epochs=10, random_state=seed), (), True),
        "embedding-knn (10 epochs)": (
            make_pipeline(emb, skasd.KNNDetector(domain_norm="zscore")), ("machine_id", "domain"), True),
        f"embedding-aisfx (1 block tuned, {aisfx_epochs} ep)": (
            make_pipeline(finetuned, skasd.KNNDetector(domain_norm="zscore")), ("machine_id", "domain"), True),
    }


def reads_files(est):
    """Whether a detector reads the files itself (the spectrum recipe, a pretrained backbone)."""
    if isinstance(est, skasd.ScoreFusion):
        return any(reads_files(sub) for _, sub in est.detectors)
    first = est.steps[0][1] if hasattr(est, "steps") else est
    return isinstance(first, (skasd.SpectrumTransformer, skasd.PretrainedEmbedding)) or (
        getattr(first, "backbone", None) is not None)


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.proc, self.base, self.peak, self.run = psutil.Process(), 0, 0, True
        self.base = self.peak = self.proc.memory_info().rss

        def sample():
            while self.run:
                self.peak = max(self.peak, self.proc.memory_info().rss)
                time.sleep(0.02)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.run = False
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def mib(self):
        return (self.peak - self.base) / 2**20


def fit_kwargs(est, names, train):
    """The routed metadata of one detector: domain labels, and class labels (attributes x domain)."""
    meta = {"domain": train["domain"].to_numpy(object),
            "machine_id": (train["domain"] + "_" + train["attributes"].map(str)).to_numpy(object)}
    if isinstance(est, skasd.ScoreFusion):  # each sub-pipeline's detector asks for the domains
        for _, sub in est.detectors:
            sub.steps[-1][1].set_fit_request(domain=True)
        return {k: meta[k] for k in names}
    if not hasattr(est, "steps"):
        return {k: meta[k] for k in names}
    if "machine_id" in names:
        est.steps[0][1].set_fit_request(machine_id=True)
    est.steps[-1][1].set_fit_request(domain=True)
    return {k: meta[k] for k in names}


def run(data, machine_type, seeds, only, aisfx_weights=None, aisfx_epochs=3):
    skasd_cfg = dict(enable_metadata_routing=True)
    import sklearn

    sklearn.set_config(**skasd_cfg)
    torch.set_num_threads(1)
    clips = load_dcase(data, machine_type=machine_type)
    types = sorted(clips.machine_type.unique())
    if len(types) != 1:
        raise SystemExit(f"{data} holds {types}; choose one with --machine-type")
    mtype = types[0]
    train, test = clips[clips.split == "train"], clips[clips.split == "test"]
    y = (test.label == "anomaly").astype(int).to_numpy()
    t0 = time.perf_counter()
    feats = skasd.LogMelTransformer().fit(train.path.tolist())
    Ltr, Lte = feats.transform(train.path.tolist()), feats.transform(test.path.tolist())
    print(f"{mtype}: {len(train)} train clips ({(train.domain == 'target').sum()} target), {len(test)} test clips;"
          f" log-mel in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    def make(seed):
        return detectors(seed, aisfx_weights, aisfx_epochs)

    for name in make(0):
        if only and not any(o in name for o in only):
            continue
        trained = make(0)[name][2]
        for seed in seeds if trained else seeds[:1]:
            est, names, _ = make(seed)[name]
            est = clone(est)
            kwargs = fit_kwargs(est, names, train)
            Xtr, Xte = (train.path.tolist(), test.path.tolist()) if reads_files(est) else (Ltr, Lte)
            with PeakRSS() as mem:
                t = time.perf_counter()
                est.fit(Xtr, **kwargs)
                fit_s = time.perf_counter() - t
            t = time.perf_counter()
            score = est.anomaly_score(Xte) if hasattr(est, "anomaly_score") else -est.score_samples(Xte)
            score_s = time.perf_counter() - t
            rep = dcase_report(y, score, test.section_or_id.to_numpy(), domains=test.domain.to_numpy())
            for section, r in rep.drop(index=["arithmetic mean", "harmonic mean"], errors="ignore").iterrows():
                off = 3 / (1 / r["AUC (source)"] + 1 / r["AUC (target)"] + 1 / r["pAUC"])
                rows.append(dict(detector=name, seed=seed, section=section, src=r["AUC (source)"],
                                 tgt=r["AUC (target)"], pauc=r["pAUC"], official=off, fit_s=fit_s,
                                 score_s=score_s, peak_mib=mem.mib))
            last = rows[-1]
            print(f"  {name:28s} seed {seed}: official {last['official']:.3f} (src {last['src']:.3f} tgt "
                  f"{last['tgt']:.3f} pAUC {last['pauc']:.3f}); fit {fit_s:.0f} s, score {score_s:.1f} s,"
                  f" +{mem.mib:.0f} MiB", flush=True)
    df = pd.DataFrame(rows)
    g = df.groupby(["detector", "section"], sort=False)
    mean, std = g[["src", "tgt", "pauc", "official"]].mean(), g[["src", "tgt", "pauc", "official"]].std().fillna(0)
    cost = g[["fit_s", "score_s", "peak_mib"]].mean()
    print(f"\n{mtype}, mean +- sd over seeds {list(seeds)} (deterministic detectors: one run)")
    print(f"| detector | section | AUC (source) | AUC (target) | pAUC | official | fit s | score s | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in mean.index:
        m, s, c = mean.loc[key], std.loc[key], cost.loc[key]
        cells = " | ".join(f"{m[k]:.3f} +- {s[k]:.3f}" for k in ("src", "tgt", "pauc", "official"))
        print(f"| {key[0]} | {key[1]} | {cells} | {c.fit_s:.0f} | {c.score_s:.1f} | {c.peak_mib:.0f} |")
    for name, (s, t, p) in PUBLISHED.get(mtype, {}).items():
        print(f"| {name} (published) | 00 | {s:.2f} | {t:.2f} | {p:.2f} | {3 / (1 / s + 1 / t + 1 / p):.3f} | | | |")
    return df


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data")
    parser.add_argument("--machine-type")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="*", help="run only detectors whose name contains one of these")
    parser.add_argument("--aisfx-weights", default=AISFX_WEIGHTS if os.path.isfile(AISFX_WEIGHTS) else None,
                        help="the aisfx checkpoint (default: ../shared/models/aisfx/checkpoint.pth if present, else "
                             "the skasd cache)")
    parser.add_argument("--aisfx-epochs", type=int, default=3, help="epochs of the fine-tuned aisfx backbone")
    args = parser.parse_args()
    if not os.path.isdir(args.data):
        raise SystemExit(f"data folder not found: {args.data}")
    run(args.data, args.machine_type, args.seeds, args.only, args.aisfx_weights, args.aisfx_epochs)


if __name__ == "__main__":
    main()
