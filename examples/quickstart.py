"""Quick start: train on normal machine sounds, flag the anomalies.

Generated clips (``make_machine_sounds``) carry anomalies at the same loudness as the
normal clips, so a loudness meter cannot find them; a log-mel autoencoder can. Runs in
well under a minute on a laptop CPU.
"""

import numpy as np
from sklearn.pipeline import make_pipeline

from skasd import DenseAE, LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_score, pauc_score

X, y = make_machine_sounds(n_normal=60, n_anomaly=20, duration=5.0, random_state=0, return_X_y=True)
train = np.flatnonzero(y == 0)[:40]  # normal clips only
test = np.setdiff1d(np.arange(len(y)), train)  # 20 normals + 20 anomalies

pipe = make_pipeline(LogMelTransformer(), DenseAE(max_epochs=30, random_state=0))
pipe.fit(X[train])
anomaly = -pipe.score_samples(X[test])  # higher = more anomalous
loudness = np.sqrt(np.mean(X[test] ** 2, axis=1))

print(f"DenseAE   AUC {auc_score(y[test], anomaly):.3f}  pAUC {pauc_score(y[test], anomaly):.3f}")
print(f"loudness  AUC {auc_score(y[test], loudness):.3f}  pAUC {pauc_score(y[test], loudness):.3f}")
print("predicted anomalies (-1):", int((pipe.predict(X[test]) == -1).sum()), "of", len(test))
