"""Autoencoder anomaly detectors with scikit-learn's outlier API (torch + skorch).

- :class:`DenseAE`: the DCASE 2020 Task 2 baseline dense autoencoder.
- :class:`VAE`: variational autoencoder on the same frame windows.
- :class:`CNNAE`: convolutional autoencoder on log-mel patches (skip connections, Deep
  SVDD loss, L2).

All three share :class:`~skasd.models._base.BaseAEDetector`: ``fit`` trains a skorch net
(``net_``) on normal clips; ``score_samples`` (higher = more normal), ``anomaly_score``,
``decision_function``, ``predict`` and ``transform`` follow ``IsolationForest``.
"""

from ._cnn_ae import CNNAE
from ._dense_ae import DenseAE
from ._vae import VAE

__all__ = ["CNNAE", "DenseAE", "VAE"]
