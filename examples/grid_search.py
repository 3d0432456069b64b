"""Choose a detector the DCASE way: grid search with normal-only training folds.

``NormalTrainCV`` never puts an anomaly into a training fold; the scorers use the
detectors' anomaly scores (higher = more anomalous), so ``GridSearchCV`` maximises AUC
and pAUC as DCASE defines them. ``Pipeline(memory=...)`` computes the log-mel features
of a training fold once for all candidates.
"""

import tempfile

from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skasd import CNNAE, DenseAE, LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_scorer, pauc_scorer
from skasd.model_selection import NormalTrainCV

X, y = make_machine_sounds(n_normal=45, n_anomaly=15, duration=4.0, random_state=0, return_X_y=True)

with tempfile.TemporaryDirectory() as cache:
    pipe = Pipeline([("features", LogMelTransformer()), ("model", DenseAE())], memory=cache)
    grid = [
        {"model": [DenseAE(max_epochs=20, random_state=0)]},
        {"model": [CNNAE(max_epochs=10, random_state=0)], "model__l2": [0.0, 0.002]},
    ]
    search = GridSearchCV(pipe, grid, scoring={"auc": auc_scorer, "pauc": pauc_scorer}, refit="pauc",
                          cv=NormalTrainCV(n_splits=3, random_state=0))
    search.fit(X, y)

for params, auc, pauc in zip(search.cv_results_["params"], search.cv_results_["mean_test_auc"],
                             search.cv_results_["mean_test_pauc"]):
    model = params["model"]
    print(f"{type(model).__name__:8s} l2={params.get('model__l2', model.l2):<6} AUC {auc:.3f} pAUC {pauc:.3f}")
print("best:", type(search.best_params_["model"]).__name__, f"pAUC {search.best_score_:.3f}")
