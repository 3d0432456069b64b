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
- :class:`SectionwiseDetector`: one clone of any detector per section (machine ID).

Every detector shares :class:`~skasd.models._base.BaseDetector`: ``score_samples``
(higher = more normal), ``anomaly_score``, ``decision_function`` and ``predict`` follow
``IsolationForest``. The torch estimators share one skorch base (``_torch``); the inlier
detectors and the fusion import without torch.
"""

import importlib

# Public name -> module; imported on first access, so that the inlier detectors and the fusion
# (``_inlier``, ``_fusion``: no torch) load without torch and skorch.
_LAZY = {
    "CNNAE": "._cnn_ae",
    "ClassifierEmbedding": "._embedding",
    "DenseAE": "._dense_ae",
    "GMMDetector": "._inlier",
    "KNNDetector": "._inlier",
    "MahalanobisDetector": "._inlier",
    "ScoreFusion": "._fusion",
    "SectionwiseDetector": "._sectionwise",
    "VAE": "._vae",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
