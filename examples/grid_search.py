"""
Choose a detector the DCASE way: grid search with normal-only training folds
============================================================================

:class:`~skasd.model_selection.NormalTrainCV` never puts an anomaly into a training fold; the
scorers use the detectors' anomaly scores (higher = more anomalous), so
:class:`~sklearn.model_selection.GridSearchCV` maximises AUC and pAUC as DCASE defines them.
``Pipeline(memory=...)`` computes the log-mel features of a training fold once for all
candidates.
"""

# %%
# Data and candidates
# -------------------
# One pipeline, whose ``model`` step the grid replaces: k-NN with two distances, and the
# DCASE 2020 baseline autoencoder.
import tempfile

import pandas as pd
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skasd import DenseAE, KNNDetector, LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_scorer, pauc_scorer
from skasd.model_selection import NormalTrainCV

X, y = make_machine_sounds(n_normal=45, n_anomaly=15, duration=4.0,
                           random_state=0, return_X_y=True)
grid = [
    {"model": [KNNDetector()], "model__metric": ["cosine", "euclidean"]},
    {"model": [DenseAE(max_epochs=20, random_state=0)]},
]

# %%
# Search
# ------
# Three folds; each trains on normal clips only and tests on the held-out normals and all
# anomalies. ``refit="pauc"`` refits the candidate with the best mean pAUC on all normals.
with tempfile.TemporaryDirectory() as cache:
    steps = [("features", LogMelTransformer()), ("model", KNNDetector())]
    pipe = Pipeline(steps, memory=cache)
    search = GridSearchCV(pipe, grid,
                          scoring={"auc": auc_scorer, "pauc": pauc_scorer},
                          refit="pauc",
                          cv=NormalTrainCV(n_splits=3, random_state=0))
    search.fit(X, y)

# %%
# Results
# -------
params = search.cv_results_["params"]
results = pd.DataFrame({
    "model": [type(p["model"]).__name__ for p in params],
    "metric": [p.get("model__metric", "") for p in params],
    "AUC": search.cv_results_["mean_test_auc"],
    "pAUC": search.cv_results_["mean_test_pauc"],
})
print(results.round(3).to_string(index=False))
best = type(search.best_params_["model"]).__name__
print(f"best: {best}, pAUC {search.best_score_:.3f}")
