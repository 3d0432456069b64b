"""Generated machine IDs: the protocol of test_sota.py, over more seeds and detectors.

The "Detection: generated machine IDs" table in benchmarks/README.md. Per seed,
``make_machine_sounds(machine_type="slider")`` with 4 IDs (id_00/02/04/06) of 4 s clips:
per ID 20 training normals, 40 test normals and 12 loudness-matched anomalies (3 of each
type). AUC / pAUC per ID, averaged over the IDs. Usage::

    .venv/bin/python benchmarks/bench_generated_ids.py --seeds 0,1,2,3,4,5 VAE CNNAE \\
        'CNNAE:{"skip": true, "l2": 0.002}' DenseAE MahalanobisDetector \\
        'ClassifierEmbedding+KNNDetector:{"channels": [16, 32], "patch_frames": 16, "patch_hop": 4,
         "max_epochs": 10, "pseudo_shifts": []}'

``NAME`` is a detector of skasd.models fitted per ID on the training log-mels (``random_state
= seed`` where it takes one; the inlier detectors reduce log-mels to per-band mean and
standard deviation). ``ClassifierEmbedding+B`` trains one embedding on all IDs' training
normals with the machine IDs as classes (JSON parameters, lists become tuples), then fits
``B`` per section (``section=machine_id``). ``--machine-type none`` generates independent
IDs instead. Torch runs on one thread, as in the tests. Prints one JSON line per detector
and seed, then one with the means.
"""
import argparse, json, time
import numpy as np
import torch
import skasd.models as M
from skasd import LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_score, pauc_score

IDS = ("id_00", "id_02", "id_04", "id_06")
N_TRAIN, N_TEST, N_ANOMALY = 20, 40, 12

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("detectors", nargs="+")
parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0, 1], help="e.g. 0,1,2")
parser.add_argument("--machine-type", default="slider")
args = parser.parse_args()
torch.set_num_threads(1)  # as the tests run; float rounding (and so training) depends on it


def seeded(name, seed, params=None):
    est = getattr(M, name)(**(params or {}))
    return est.set_params(random_state=seed) if "random_state" in est.get_params() else est


def scores(spec, X, ids, train, seed):
    """Anomaly scores of every clip not trained on, by one detector spec."""
    name, params = spec.split(":", 1) if ":" in spec else (spec, "{}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(params).items()}
    test = ~train
    if name.startswith("ClassifierEmbedding+"):
        Z = seeded("ClassifierEmbedding", seed, params).fit(X[train], ids[train]).transform(X)
        detector = seeded(name.split("+")[1], seed).fit(Z[train], section=ids[train])
        return detector.anomaly_score(Z[test], section=ids[test])
    out = np.empty(len(X))
    for m in IDS:
        out[ids == m] = seeded(name, seed, params).fit(X[train & (ids == m)]).anomaly_score(X[ids == m])
    return out[test]


results = {spec: [] for spec in args.detectors}
for seed in args.seeds:
    sounds = make_machine_sounds(
        n_normal=N_TRAIN + N_TEST, n_anomaly=N_ANOMALY, machine_ids=IDS, duration=4.0, random_state=seed,
        machine_type=None if args.machine_type == "none" else args.machine_type,
    )
    X = LogMelTransformer().fit_transform(sounds.data)
    ids, y = sounds.machine_id, sounds.target
    rank = np.concatenate([np.arange((ids == m).sum()) for m in IDS])
    train = (y == 0) & (rank < N_TRAIN)
    for spec in args.detectors:
        t0 = time.time()
        score, yt, it = scores(spec, X, ids, train, seed), y[~train], ids[~train]
        auc = np.mean([auc_score(yt[it == m], score[it == m]) for m in IDS])
        pauc = np.mean([pauc_score(yt[it == m], score[it == m]) for m in IDS])
        results[spec].append((auc, pauc))
        print(json.dumps({"detector": spec, "seed": seed, "auc": round(auc, 3), "pauc": round(pauc, 3),
                          "s": round(time.time() - t0, 1)}), flush=True)
for spec, rows in results.items():
    auc, pauc = np.mean(rows, 0)
    print(json.dumps({"detector": spec, "seeds": args.seeds, "auc_mean": round(auc, 3), "pauc_mean": round(pauc, 3)}))
