"""Anomaly detectors with scikit-learn's outlier API, and the embedding they can score.

Autoencoders (torch + skorch; anomaly score = reconstruction error):

- :class:`DenseAE`: the DCASE 2020 Task 2 baseline dense autoencoder.
- :class:`VAE`: variational autoencoder on the same frame windows.
- :class:`CNNAE`: convolutional autoencoder on log-mel patches (skip connections, Deep
  SVDD loss, L2).

The state-of-the-art family (an embedding learnt by auxiliary classification, scored by an
inlier model):

- :class:`ClassifierEmbedding`: CNN trained to classify machine IDs / sections /
  attributes; ``transform`` gives one embedding per clip.
- :class:`KNNDetector`, :class:`MahalanobisDetector`, :class:`GMMDetector`: inlier models
  on any 2-D embedding or feature matrix, with DCASE 2022+ per-domain scoring.
- :class:`ScoreFusion`: combines several detectors' standardised anomaly scores.

Every detector shares :class:`~skasd.models._outlier.BaseDetector`: ``score_samples``
(higher = more normal), ``anomaly_score``, ``decision_function`` and ``predict`` follow
``IsolationForest``.
"""

from ._cnn_ae import CNNAE
from ._dense_ae import DenseAE
from ._embedding import ClassifierEmbedding
from ._fusion import ScoreFusion
from ._inlier import GMMDetector, KNNDetector, MahalanobisDetector
from ._vae import VAE

__all__ = [
    "CNNAE",
    "ClassifierEmbedding",
    "DenseAE",
    "GMMDetector",
    "KNNDetector",
    "MahalanobisDetector",
    "ScoreFusion",
    "VAE",
]
