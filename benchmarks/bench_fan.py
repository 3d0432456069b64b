"""MIMII fan id_00: 5-fold normal-only CV x 3 seeds (fit 16 normals, score 4 normals + 20 abnormal).

The protocol of the "Detection quality: MIMII fan id_00" table in benchmarks/README.md.
Detectors to add beside the loudness and 1-NN baselines are given as arguments, e.g.

    .venv/bin/python benchmarks/bench_fan.py CNNAE DenseAE 'VAE:{"max_epochs": 8}'

Reads $SKASD_SHARED_DATA (default ../shared/data). Prints one JSON line per detector.
"""
import json, os, sys, time, numpy as np
from pathlib import Path
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from skasd import LogMelTransformer
from skasd.metrics import auc_score, pauc_score
import skasd.models as M

shared = Path(os.environ.get("SKASD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
root = shared / "mimii-fan-id00" / "fan" / "id_00"
if not root.is_dir():
    sys.exit(f"MIMII fan clips not found at {root} (set SKASD_SHARED_DATA)")
normal, abnormal = sorted((root / "normal").glob("*")), sorted((root / "abnormal").glob("*"))
X = LogMelTransformer().fit_transform([str(p) for p in normal + abnormal])
Xn, Xa = X[:20], X[20:]

def loudness(tr, te): return te.mean(axis=(1, 2))
def knn(tr, te):
    f = lambda Z: np.concatenate([Z.mean(2), Z.std(2)], 1)
    sc = StandardScaler().fit(f(tr))
    return NearestNeighbors(n_neighbors=1).fit(sc.transform(f(tr))).kneighbors(sc.transform(f(te)))[0][:, 0]
models = {"loudness": loudness, "1-NN mel mean/std": knn}
for spec in sys.argv[1:]:
    name, params = spec.split(":", 1) if ":" in spec else (spec, "{}")
    params = json.loads(params)
    label = f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
    models[label] = (getattr(M, name), params)
for label, model in models.items():
    rows, t0 = [], time.time()
    for seed in range(3):
        for tr, te in KFold(5, shuffle=True, random_state=seed).split(Xn):
            test = np.concatenate([Xn[te], Xa]); y = np.r_[np.zeros(len(te)), np.ones(len(Xa))]
            if callable(model):
                s = model(Xn[tr], test)
            else:
                cls, params = model
                s = cls(random_state=seed, **params).fit(Xn[tr]).anomaly_score(test)
            rows.append((seed, auc_score(y, s), pauc_score(y, s)))
    r = np.array(rows)
    seed_auc = [r[r[:, 0] == s, 1].mean() for s in range(3)]
    print(json.dumps({"model": label, "auc_mean": r[:, 1].mean(), "auc_std": r[:, 1].std(), "pauc_mean": r[:, 2].mean(),
                      "pauc_std": r[:, 2].std(), "auc_seed_means": seed_auc, "auc_min": r[:, 1].min(), "auc_max": r[:, 1].max(),
                      "s_per_fit": (time.time() - t0) / len(r)}), flush=True)
