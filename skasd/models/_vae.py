"""VAE: variational autoencoder on log-mel frame windows."""

from numbers import Integral, Real

import torch

from ..utils._sklearn_compat import Interval
from ._autoencoder import BaseAEDetector, ae_docs
from ._torch._ae_modules import _VAEModule

__all__ = ["VAE"]


@ae_docs(max_epochs=30, batch_size=512, window="Window", normalisation="the training log-mel's mean and standard deviation")
class VAE(BaseAEDetector):
    """Variational autoencoder detector on log-mel frame windows (the report's VAE).

    Input vectors as in :class:`DenseAE`: ``frames`` consecutive log-mel frames
    concatenated (5 x 128 = 640 values), every frame offset, standardised with the
    training set's scalar mean and standard deviation. Encoder: Linear(640, 400)
    (+ BatchNorm) + ReLU, Linear(400, 400) (+ BN) + ReLU, then two Linear(400, 20)
    heads for the mean ``mu`` and log-variance of the latent Gaussian; the decoder
    mirrors it: Linear(20, 400) (+ BN) + ReLU, Linear(400, 400) (+ BN) + ReLU,
    Linear(400, 640); initialised as in Keras like :class:`DenseAE`.

    Training loss per window, averaged over the batch: ``MSE + beta * KL / 640``, i.e. the
    usual ``sum of squared errors + beta * KL(q(z|x) || N(0, I))`` divided by the number of
    inputs, with ``z`` sampled by the reparameterisation trick. Scores use the mean latent
    (``z = mu``, no sampling): a clip's anomaly score is the mean over its windows of the
    mean squared reconstruction error, as in the report. ``transform`` returns the mean
    ``mu`` (20-d). The report's rows: ``VAE()`` and ``VAE(batch_norm=True)``.

    2-D input ``(n_samples, n_features)`` is accepted too (one window per row).

    Parameters
    ----------
    frames : int, default=5
        Consecutive frames per input window.
    batch_norm : bool, default=False
        Batch normalisation after each hidden Linear layer.
    beta : float, default=1.0
        Weight of the KL term (beta-VAE); 0 drops it (the latent sampling stays).
    {common_parameters}

    Attributes
    ----------
    {common_attributes}

    See Also
    --------
    DenseAE : The DCASE 2020 baseline on the same windows.
    CNNAE : Convolutional autoencoder on log-mel patches.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import VAE
    >>> X = np.random.default_rng(0).normal(size=(8, 128, 40)).astype("float32")
    >>> det = VAE(max_epochs=2, random_state=0).fit(X)
    >>> det.anomaly_score(X).shape, det.transform(X).shape
    ((8,), (8, 20))
    """

    _standardize = True
    _parameter_constraints = {
        **BaseAEDetector._parameter_constraints,
        "frames": [Interval(Integral, 1, None, closed="left")],
        "batch_norm": ["boolean"],
        "beta": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        frames=5,
        batch_norm=False,
        beta=1.0,
        *,
        max_epochs=30,
        batch_size=512,
        lr=1e-3,
        optimizer=torch.optim.Adam,
        l2=0.0,
        validation_fraction=0.1,
        early_stopping=None,
        callbacks=None,
        stream_buffer=256,
        checkpoint=None,
        checkpoint_every=1,
        accelerator=None,
        contamination="auto",
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.frames = frames
        self.batch_norm = batch_norm
        self.beta = beta
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.l2 = l2
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.callbacks = callbacks
        self.stream_buffer = stream_buffer
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.accelerator = accelerator
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _window(self):
        return self.frames, 1

    def _module(self, width, n_mels):
        return _VAEModule, {"n_inputs": width * n_mels, "batch_norm": self.batch_norm, "beta": self.beta}
