"""Fusions and domain calibrations of the spectrum k-NN and the aisfx-embedding k-NN on real ToyCar.

Usage::

    python benchmarks/bench_fusion.py [DATA_DIR] [--weights CHECKPOINT] [--cache DIR]

``DATA_DIR`` is a DCASE 2021-2024 folder of one machine type (default: the shared DCASE 2023
ToyCar section, ``../shared/data/dcase2023-toycar``). Every variant is fitted on the train
clips (490 source + 10 target normals there) and scores the labelled test clips. Printed per
variant: AUC (source) and AUC (target) (that domain's normals + all anomalies), pAUC (all
clips), the official score (their harmonic mean), and the AUC within each domain (that
domain's normals against that domain's anomalies: what a calibration across domains cannot
fake).

The two detectors are 1-NN on each clip's level-normalised spectrum (Euclidean, the
``knn-spectrum`` recipe) and on the aisfx embedding (mean and standard deviation of its 2.3 s
block embeddings, centred by the training mean, cosine), each with one model per domain.
Calibrations across the domains: ``raw`` (the nearest training clip of either domain),
``z`` (each domain's distances standardised by its own leave-one-out training distances, the
recipe's ``domain_norm="zscore"``), ``robust z`` (median and MAD instead), ``ratio`` (divided by
the domain's median leave-one-out distance), and a bank of k-means centres of the source clips
with every target clip (Wilkinghoff). Fusions standardise each detector's anomaly scores on
its training clips' leave-one-out scores (their CDF, or a z-score) and add them: nothing is
fitted on test clips. The features are computed once (``--cache`` keeps them between runs).
``--robustness`` compares only the default recipe (spectrum z + aisfx raw, CDF fusion) with the
spectrum k-NN alone, refitted on random subsets of the training clips and over a paired
bootstrap of the test clips: how far the 101 test clips can tell them apart.
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import hmean
from sklearn.cluster import KMeans
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize

import skasd
from skasd.datasets import load_dcase

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def features(clips, weights, cache):
    """Spectrum rows and aisfx rows of every clip (from ``cache`` when it holds them)."""
    out = {}
    for name, make in (("spectrum", lambda: skasd.SpectrumTransformer()),
                       ("aisfx", lambda: skasd.PretrainedEmbedding(model="aisfx", weights=weights))):
        path = cache / f"{name}.npy" if cache else None
        if path is not None and path.is_file():
            out[name] = np.load(path)
            continue
        t0 = time.perf_counter()
        out[name] = make().fit_transform(list(clips.path))
        print(f"{name}: {out[name].shape[1]} columns, {time.perf_counter() - t0:.0f} s for {len(clips)} clips")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, out[name])
    return out


def per_domain(F, train, domains, calibration):
    """Anomaly scores of the test rows and leave-one-out scores of the training rows: 1-NN per
    domain, each domain's distances calibrated, the minimum over the domains."""
    test_scores, train_scores = [], []
    Ftr = F[train]
    for d in np.unique(domains):
        bank = Ftr[domains == d]
        nn = NearestNeighbors(n_neighbors=2).fit(bank)
        own = nn.kneighbors(bank)[0][:, 1]
        loc, scale = {
            "raw": (0.0, 1.0),
            "z": (own.mean(), own.std()),
            "robust z": (np.median(own), 1.4826 * np.median(np.abs(own - np.median(own)))),
            "ratio": (0.0, np.median(own)),
        }[calibration]
        dist_tr = nn.kneighbors(Ftr)[0]
        loo = np.where(domains == d, dist_tr[:, 1], dist_tr[:, 0])  # a clip never counts as its own neighbour
        test_scores.append((nn.kneighbors(F[~train], n_neighbors=1)[0][:, 0] - loc) / scale)
        train_scores.append((loo - loc) / scale)
    return np.min(test_scores, axis=0), np.min(train_scores, axis=0)


def robustness(spectrum, aisfx_raw, clips, train, y, dom_te, n_subsets=20, n_boot=2000, seed=0):
    """The default recipe (spectrum z + aisfx raw, CDF fusion) against the spectrum k-NN alone:
    (a) refitted on random 80 % subsets of the source training clips (all target clips kept),
    scored on all test clips; (b) a paired bootstrap of the test clips, fitted on all training clips."""
    rng = np.random.default_rng(seed)
    dom = clips.domain.to_numpy()
    idx = np.flatnonzero(train)
    src, tgt = idx[dom[idx] == "source"], idx[dom[idx] == "target"]

    def pair(rows):
        mask = np.zeros(len(clips), dtype=bool)
        mask[rows] = True
        # test rows stay the labelled test clips: the left-out training clips are not scored
        keep = mask | ~train
        sub = mask[keep]
        A = normalize(aisfx_raw[keep] - aisfx_raw[rows].mean(axis=0))
        (s, s_tr), (a, a_tr) = per_domain(spectrum[keep], sub, dom[rows], "z"), per_domain(A, sub, dom[rows], "raw")
        return s, _cdf(s_tr, s) + _cdf(a_tr, a)

    def official(score, rows=slice(None)):
        return figures(y[rows], dom_te[rows], score[rows])["official"]

    runs = np.array([[official(x) for x in pair(np.sort(np.concatenate(
        [rng.choice(src, int(0.8 * len(src)), replace=False), tgt])))] for _ in range(n_subsets)])
    print(f"(a) {n_subsets} subsets of {int(0.8 * len(src))} source + {len(tgt)} target training clips: spectrum "
          f"{runs[:, 0].mean():.3f} +- {runs[:, 0].std():.3f}, fusion {runs[:, 1].mean():.3f} +- {runs[:, 1].std():.3f}, "
          f"fusion ahead in {np.mean(runs[:, 1] > runs[:, 0]):.0%}")
    s, f = pair(idx)
    diffs = []
    for _ in range(n_boot):
        rows = rng.integers(0, len(y), len(y))
        if min(y[rows].sum(), (y[rows] == 0).sum()) >= 5 and len(set(dom_te[rows][y[rows] == 0])) == 2:
            diffs.append(official(f, rows) - official(s, rows))
    diffs = np.array(diffs)
    print(f"(b) paired bootstrap of the {len(y)} test clips ({len(diffs)} resamples): fusion - spectrum "
          f"{diffs.mean():+.3f}, 95 % interval [{np.percentile(diffs, 2.5):+.3f}, {np.percentile(diffs, 97.5):+.3f}], "
          f"fusion ahead in {np.mean(diffs > 0):.0%}")


def _cdf(ref, a):
    return np.searchsorted(np.sort(ref), a, side="right") / len(ref)


def kmeans_bank(F, train, domains, k, seed=0):
    """1-NN to k-means centres of the source clips plus every target clip (one bank)."""
    Ftr = F[train]
    centres = KMeans(k, n_init=4, random_state=seed).fit(Ftr[domains == "source"]).cluster_centers_
    bank = np.vstack([centres, Ftr[domains != "source"]])
    return NearestNeighbors(n_neighbors=1).fit(bank).kneighbors(F[~train])[0][:, 0]


def figures(y, domains, score):
    out = {}
    for d in ("source", "target"):
        rows = (domains == d) | (y == 1)
        out[f"AUC {d}"] = roc_auc_score(y[rows], score[rows])
    out["pAUC"] = roc_auc_score(y, score, max_fpr=0.1)
    out["official"] = hmean([out["AUC source"], out["AUC target"], out["pAUC"]])
    for d in ("source", "target"):
        rows = domains == d
        out[f"within {d}"] = roc_auc_score(y[rows], score[rows])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "data" / "dcase2023-toycar"))
    parser.add_argument("--weights", default=str(SHARED / "models" / "aisfx" / "checkpoint.pth"))
    parser.add_argument("--cache", default=None, help="folder keeping the features between runs")
    parser.add_argument("--robustness", action="store_true",
                        help="only the default recipe against the spectrum k-NN: training subsets, test bootstrap")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips = load_dcase(args.data)
    train = (clips.split == "train").to_numpy()
    test = clips[~train]
    y = (test.label == "anomaly").to_numpy(int)
    dom_tr, dom_te = clips.domain[train].to_numpy(), test.domain.to_numpy()
    feats = features(clips, args.weights, Path(args.cache) if args.cache else None)
    spectrum = feats["spectrum"]
    if args.robustness:
        robustness(spectrum, feats["aisfx"], clips, train, y, dom_te)
        return
    aisfx = normalize(feats["aisfx"] - feats["aisfx"][train].mean(axis=0))  # centred, cosine = Euclidean on the sphere

    rows = {}
    single = {}
    for name, F in (("spectrum", spectrum), ("aisfx", aisfx)):
        for cal in ("raw", "z", "robust z", "ratio"):
            single[(name, cal)] = per_domain(F, train, dom_tr, cal)
            rows[f"{name} k-NN, {cal}"] = single[(name, cal)][0]
        for k in (16, 64):
            rows[f"{name} k-NN, k-means {k} source + target bank"] = kmeans_bank(F, train, dom_tr, k)

    cdf = _cdf

    def zs(ref, a):
        return (a - ref.mean()) / ref.std()

    for how, f in (("CDF", cdf), ("z", zs)):
        for c1 in ("raw", "z"):
            for c2 in ("raw", "z"):
                (a1, t1), (a2, t2) = single[("spectrum", c1)], single[("aisfx", c2)]
                rows[f"fusion ({how}): spectrum {c1} + aisfx {c2}"] = f(t1, a1) + f(t2, a2)

    print(f"{args.data}: {train.sum()} train clips, {len(test)} test clips ({y.sum()} anomalies)")
    print(f"{'variant':52s} {'AUC src':>8s} {'AUC tgt':>8s} {'pAUC':>6s} {'official':>9s} {'within src/tgt':>15s}")
    for name, score in rows.items():
        o = figures(y, dom_te, score)
        print(f"{name:52s} {o['AUC source']:8.3f} {o['AUC target']:8.3f} {o['pAUC']:6.3f} {o['official']:9.3f} "
              f"{o['within source']:9.3f}/{o['within target']:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
