"""The state-of-the-art family against the report's autoencoders: ClassifierEmbedding +
KNNDetector on a generated multi-ID set.

Protocols and measured figures are in benchmarks/README.md ("Classifier embeddings"). The
MIMII fan comparison is benchmarks/bench_fan.py's 15-run cross-validation, not a test: one
embedding fit there takes 1-2 min on a CPU, and single splits are too noisy to assert on
(on normals 00-09 vs 10-19 + 20 abnormal: embedding + k-NN .820 / .755 AUC, CNNAE .775 /
.755 on seeds 0 / 1).
"""

import numpy as np
import pytest

from skasd import LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_score, pauc_score
from skasd.models import VAE
from skasd.models import ClassifierEmbedding
from skasd.models import KNNDetector

pytestmark = pytest.mark.slow

IDS = ("id_00", "id_02", "id_04", "id_06")
N_TRAIN, N_TEST_NORMAL, N_ANOMALY = 20, 40, 12


def embedding(seed, **params):
    """The configuration of the tests: small and fast enough for 4 s clips on a CPU (two
    residual stages, 0.5 s patches every 0.13 s pooled by mean and standard deviation,
    10 epochs, the machine IDs as the only classes)."""
    defaults = dict(channels=(16, 32), patch_frames=16, patch_hop=4, max_epochs=10, pseudo_shifts=(), random_state=seed)
    return ClassifierEmbedding(**{**defaults, **params})


def generated_set(seed):
    """4 units of one machine type (``machine_type="slider"``: IDs that sound alike, as in
    DCASE), 4 s clips: per ID 20 training normals, then 40 test normals and 12
    loudness-matched anomalies (harmonic, drift, knock, dropout)."""
    sounds = make_machine_sounds(
        n_normal=N_TRAIN + N_TEST_NORMAL, n_anomaly=N_ANOMALY, machine_ids=IDS, duration=4.0,
        machine_type="slider", random_state=seed,
    )
    X = LogMelTransformer().fit_transform(sounds.data)
    rank = np.concatenate([np.arange((sounds.machine_id == m).sum()) for m in IDS])
    train = (sounds.target == 0) & (rank < N_TRAIN)
    return X, sounds.target, sounds.machine_id, train


def per_id_scores(X, y, ids, train, embedding=None, autoencoder=None):
    """Mean over IDs of AUC and pAUC: k-NN on one embedding trained on all IDs' training
    normals (classes = machine IDs), one model per section (``section=ids``), or one
    autoencoder per ID (the report's protocol)."""
    aucs, paucs = [], []
    if embedding is not None:
        Z = embedding.fit(X[train], ids[train]).transform(X)
        knn = KNNDetector().fit(Z[train], section=ids[train])
    for m in IDS:
        fit, test = train & (ids == m), ~train & (ids == m)
        if embedding is not None:
            score = knn.anomaly_score(Z[test], section=ids[test])
        else:
            score = autoencoder(X[fit]).anomaly_score(X[test])
        aucs.append(auc_score(y[test], score))
        paucs.append(pauc_score(y[test], score))
    return np.mean(aucs), np.mean(paucs)


# Measured (mean over the 4 IDs, AUC / pAUC; seeds 0-5; benchmarks/README.md):
#   embedding + k-NN (this configuration)  .798/.718 .809/.698 .825/.753 .836/.729 .826/.759 .761/.674 -> .809/.722
#   VAE() per ID, the best autoencoder     .812/.698 .753/.641 .768/.657 .804/.668 .804/.674 .785/.657 -> .788/.666
#   (CNNAE() .602/.548, CNNAE(skip=True, l2=0.002) .651/.563, DenseAE() .647/.535)
# The embedding wins pAUC on every seed (+.017 to +.096) and AUC on 4 of 6 (mean +.021);
# on the two seeds tested here by +.021 AUC and +.038 pAUC. Asserted: it is ahead on AUC,
# and on pAUC by at least half the measured margin.
def test_embedding_knn_beats_best_autoencoder_on_generated_ids():
    emb, ae = [], []
    for seed in (0, 1):
        X, y, ids, train = generated_set(seed)
        emb.append(per_id_scores(X, y, ids, train, embedding=embedding(seed)))
        ae.append(per_id_scores(X, y, ids, train, autoencoder=lambda Xi: VAE(random_state=seed).fit(Xi)))
    (emb_auc, emb_pauc), (ae_auc, ae_pauc) = np.mean(emb, 0), np.mean(ae, 0)
    assert emb_auc > ae_auc, (emb, ae)
    assert emb_pauc >= ae_pauc + 0.019, (emb, ae)
    assert min(a for a, _ in emb) > 0.75, emb
