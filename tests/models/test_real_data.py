"""Detection quality with default parameters: the real DCASE 2020 slider anomaly and MIMII
slider clips, and generated loudness-matched anomalies (where loudness is useless)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from skasd import LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.models import CNNAE, VAE, DenseAE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slider(slider_dir, shared_data):
    """Log-mels: 60 train normals (first by name), 15 test normals + the anomaly, and the
    MIMII slider abnormal clip followed by two MIMII slider normals."""
    normals = sorted((slider_dir / "slider" / "train").glob("*.flac"))
    anomaly = sorted((slider_dir / "slider" / "test").glob("*.flac"))
    mimii = shared_data / "mimii-raw-samples" / "slider"
    extra = [mimii / "id_unknown/abnormal/00000018.flac", mimii / "id_00/normal/00000000.flac",
             mimii / "id_unknown/normal/00000576.flac"]
    assert len(normals) == 75 and len(anomaly) == 1
    X = LogMelTransformer().fit_transform([str(p) for p in normals + anomaly + extra])
    return X[:60], X[60:76], X[76:]


# Measured with these exact settings (ranks of the anomaly among 16, 1 = top):
# CNNAE() seeds 0-2: 1, 1, 1; DenseAE() seeds 0-4: 3, 1, 2, 1, 3 (100 epochs), with
# max_epochs=50 2, 3, 3, 2, 2 in half the time (30 epochs: 4, 4, 3, 5, 3, too few);
# VAE(max_epochs=8) seeds 0-3: 2, 1, 2, 1. One seed each here, to keep CI short.
@pytest.mark.parametrize(
    "cls, params, seed, max_rank",
    [(CNNAE, {}, 1, 2), (DenseAE, {"max_epochs": 50}, 0, 3), (VAE, {"max_epochs": 8}, 0, 2)],
    ids=["CNNAE-1", "DenseAE-0", "VAE-0"],
)
def test_slider_anomaly_ranks_on_top(slider, cls, params, seed, max_rank):
    train, test, mimii = slider
    est = cls(random_state=seed, **params).fit(train)
    a = est.anomaly_score(test)
    rank = 1 + int(np.sum(a[:-1] >= a[-1]))
    assert rank <= max_rank, f"anomaly ranked {rank} of 16"
    b = est.anomaly_score(mimii)
    assert b[0] > b[1:].max(), f"MIMII abnormal {b[0]:.3g} not above normals {b[1:]}"


@pytest.fixture(scope="module")
def generated():
    """Three generated sets (seeds 0-2): log-mels of 30 training normals, then 30 test
    normals and 20 loudness-matched anomalies (harmonic, drift, knock, dropout)."""
    sets = []
    for seed in range(3):
        sounds = make_machine_sounds(n_normal=60, n_anomaly=20, duration=10.0, random_state=seed)
        sets.append((LogMelTransformer().fit_transform(sounds.data), sounds.target, seed))
    return sets


def _energy_auc(X, y):
    """Best of two loudness baselines: mean log-mel energy, and its distance to the
    training mean."""
    energy = X.mean(axis=(1, 2))
    train, test = energy[:30], energy[30:]
    return max(roc_auc_score(y[30:], test), roc_auc_score(y[30:], np.abs(test - train.mean())))


# Measured (AUC on seeds 0, 1, 2): CNNAE() (20 epochs) 0.76, 0.72, 0.57; CNNAE(max_epochs=8)
# 0.70, 0.70, 0.56 (mean .65, in a third of the time; 12 epochs: .65 too); DenseAE(max_epochs=30) 0.71,
# 0.71, 0.62; VAE(max_epochs=8) 0.84, 0.76, 0.77; loudness baseline 0.51, 0.59, 0.54;
# a 1-NN on per-mel mean/std reaches 0.97, 0.89, 0.88.
@pytest.mark.parametrize(
    "cls, params, min_mean_auc",
    [(CNNAE, {"max_epochs": 8}, 0.62), (DenseAE, {"max_epochs": 30}, 0.62), (VAE, {"max_epochs": 8}, 0.70)],
    ids=["CNNAE", "DenseAE", "VAE"],
)
def test_generated_anomalies_beat_loudness(generated, cls, params, min_mean_auc):
    aucs, baselines = [], []
    for X, y, seed in generated:
        est = cls(random_state=seed, **params).fit(X[:30])
        aucs.append(roc_auc_score(y[30:], est.anomaly_score(X[30:])))
        baselines.append(_energy_auc(X, y))
    assert np.mean(aucs) >= min_mean_auc, aucs
    assert np.mean(aucs) >= np.mean(baselines) + 0.05, (aucs, baselines)
    assert min(aucs) > 0.5, aucs
