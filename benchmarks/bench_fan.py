"""MIMII fan id_00: 5-fold normal-only CV x 3 seeds (fit 16 normals, score 4 normals + 20 abnormal).

The protocol of the "Detection quality: MIMII fan id_00" table in benchmarks/README.md.
Detectors to add beside the loudness and 1-NN baselines are given as arguments, e.g.

    .venv/bin/python benchmarks/bench_fan.py CNNAE DenseAE 'VAE:{"max_epochs": 8}' KNNDetector \
        'CNNAE+KNNDetector' 'ClassifierEmbedding+KNNDetector:{"pseudo_shifts": [-1, 1]}'

``NAME`` is any detector of skasd.models, fitted on the 16 training
normals (log-mel input; ``random_state=seed`` where it takes one). ``A+B`` is ``A``'s
``transform`` followed by detector ``B`` (default parameters), the JSON parameters going to
``A`` (lists become tuples). An autoencoder ``A`` is fitted on the training normals. A
``ClassifierEmbedding`` needs classes, and MIMII fan id_00 is a single machine: it is trained
on the 16 training normals as one class beside clips of other machines as further classes
("outlier exposure", what top DCASE systems do across machine types): every other shared clip
grouped by machine type (DCASE 2020 slider 75, MIMII raw and DCASE 2023 samples of pump,
slider, valve, ToyCar, ToyTrain, bearing, gearbox, and fans other than MIMII fan id_00 as a
class "fan_other"), leaving out every fan anomaly and the MIMII raw fan id_00 clip (another
recording of the tested machine); ``B`` is then fitted on the training normals' embeddings.

``--spectrum`` adds the DCASE recipe, ``SpectrumTransformer`` (``level="clip"`` and ``None``)
followed by ``KNNDetector(metric="euclidean")`` fitted on the training normals' spectra.

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


def exposure_clips():
    """Other machines' clips and their machine-type labels (see the docstring)."""
    paths, labels = [], []
    for p in sorted((shared / "zyy438-abnormal-listener" / "slider").rglob("*.flac")):
        paths.append(p); labels.append("slider")
    for p in sorted((shared / "mimii-raw-samples").rglob("*.flac")):
        kind, mid, label = p.parts[-4:-1]
        if kind == "fan" and (label == "abnormal" or mid == "id_00"):
            continue
        paths.append(p); labels.append("fan_other" if kind == "fan" else kind)
    for p in sorted((shared / "minchala-dcase2023-samples").rglob("*.flac")):
        kind = p.parts[-3]
        if kind == "fan" and "anomaly" in p.name:
            continue
        paths.append(p); labels.append("fan_other" if kind == "fan" else kind)
    return LogMelTransformer(duration=10.0).fit_transform([str(p) for p in paths]), np.array(labels)


def get(name):
    return getattr(M, name)


def seeded(cls, seed, params):
    est = cls(**params)
    return est.set_params(random_state=seed) if "random_state" in est.get_params() else est


def two_stage(first, second, params, seed, train, test):
    """Anomaly scores of ``test`` by ``second`` on ``first``'s embedding (see the docstring)."""
    est = seeded(first, seed, params)
    if first is M.ClassifierEmbedding:
        est.fit(np.concatenate([train, Xx]), np.r_[["fan_id_00"] * len(train), yx])
    else:
        est.fit(train)
    return seeded(second, seed, {}).fit(est.transform(train)).anomaly_score(est.transform(test))


def loudness(tr, te): return te.mean(axis=(1, 2))
def knn(tr, te):
    f = lambda Z: np.concatenate([Z.mean(2), Z.std(2)], 1)
    sc = StandardScaler().fit(f(tr))
    return NearestNeighbors(n_neighbors=1).fit(sc.transform(f(tr))).kneighbors(sc.transform(f(te)))[0][:, 0]
def spectra(level):
    """The clips' rows for the DCASE recipe (``SpectrumTransformer(level=level)``), in the order of X."""
    from skasd import SpectrumTransformer

    return SpectrumTransformer(level=level).fit_transform([str(p) for p in normal + abnormal])


models = {"loudness": loudness, "1-NN mel mean/std": knn}
if "--spectrum" in sys.argv:
    sys.argv.remove("--spectrum")
    for level in ("clip", None):
        models[f"SpectrumTransformer(level={level!r}) + KNNDetector(metric='euclidean')"] = ("spectrum", spectra(level))
for spec in sys.argv[1:]:
    name, params = spec.split(":", 1) if ":" in spec else (spec, "{}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(params).items()}
    label = f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
    models[label] = (tuple(get(n) for n in name.split("+")), params)
if any(M.ClassifierEmbedding in m[0] for m in models.values() if not callable(m) and m[0] != "spectrum"):
    Xx, yx = exposure_clips()
for label, model in models.items():
    rows, t0 = [], time.time()
    for seed in range(3):
        for tr, te in KFold(5, shuffle=True, random_state=seed).split(Xn):
            test = np.concatenate([Xn[te], Xa]); y = np.r_[np.zeros(len(te)), np.ones(len(Xa))]
            if callable(model):
                s = model(Xn[tr], test)
            elif model[0] == "spectrum":  # the recipe on the clips' spectra, same folds
                S = model[1]
                s = M.KNNDetector(metric="euclidean").fit(S[tr]).anomaly_score(np.concatenate([S[te], S[20:]]))
            else:
                classes, params = model
                if len(classes) == 2:
                    s = two_stage(*classes, params, seed, Xn[tr], test)
                else:
                    s = seeded(classes[0], seed, params).fit(Xn[tr]).anomaly_score(test)
            rows.append((seed, auc_score(y, s), pauc_score(y, s)))
    r = np.array(rows)
    seed_auc = [r[r[:, 0] == s, 1].mean() for s in range(3)]
    print(json.dumps({"model": label, "auc_mean": r[:, 1].mean(), "auc_std": r[:, 1].std(), "pauc_mean": r[:, 2].mean(),
                      "pauc_std": r[:, 2].std(), "auc_seed_means": seed_auc, "auc_min": r[:, 1].min(), "auc_max": r[:, 1].max(),
                      "s_per_fit": (time.time() - t0) / len(r)}), flush=True)
