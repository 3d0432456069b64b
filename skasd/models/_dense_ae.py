"""DenseAE: the DCASE 2020 Task 2 baseline dense autoencoder on frame windows."""

from numbers import Integral

import torch

from ..utils._sklearn_compat import Interval
from ._autoencoder import BaseAEDetector, ae_docs
from ._torch._ae_modules import _DenseAEModule

__all__ = ["DenseAE"]


@ae_docs(max_epochs=100, batch_size=512, window="Window", normalisation="0 and 1: the raw log-mel, as the baseline")
class DenseAE(BaseAEDetector):
    """Dense autoencoder detector: the DCASE 2020 Task 2 baseline.

    Each input vector is ``frames`` consecutive log-mel frames concatenated (5 x 128 =
    640 values). Network: Linear(640, 128) + BatchNorm + ReLU four times, Linear(128, 8)
    + BN + ReLU, Linear(8, 128) + BN + ReLU and three more Linear(128, 128) + BN + ReLU,
    then Linear(128, 640), initialised as in Keras (Glorot-uniform weights, zero biases,
    BatchNorm momentum 0.99 in Keras' convention, eps 1e-3). Trained with Adam (lr 1e-3)
    on the mean squared error, batch 512 windows, 100 epochs, 10 % of the clips held out
    for validation, on the raw log-mel in dB like the baseline (no input normalisation).
    A clip's anomaly score is the mean over its windows (every frame offset) of the
    window's mean squared error; ``transform`` returns the mean 8-d bottleneck activation.

    2-D input ``(n_samples, n_features)`` is accepted too: each row is one window, so the
    model is a general tabular autoencoder detector.

    Parameters
    ----------
    frames : int, default=5
        Consecutive frames per input window.
    {common_parameters}

    Attributes
    ----------
    {common_attributes}

    See Also
    --------
    VAE : Variational autoencoder on the same windows.
    CNNAE : Convolutional autoencoder on log-mel patches.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skasd import DenseAE, LogMelTransformer
    >>> from skasd.datasets import make_machine_sounds
    >>> X, y = make_machine_sounds(n_normal=8, n_anomaly=4, duration=1.0, random_state=0, return_X_y=True)
    >>> pipe = make_pipeline(LogMelTransformer(), DenseAE(max_epochs=2, random_state=0))
    >>> scores = pipe.fit(X[y == 0]).score_samples(X)  # higher = more normal
    >>> scores.shape, set(pipe.predict(X).tolist()) <= {-1, 1}
    ((12,), True)
    >>> pipe[-1].transform(pipe[0].transform(X)).shape  # mean 8-d bottleneck per clip
    (12, 8)
    """

    _parameter_constraints = {
        **BaseAEDetector._parameter_constraints,
        "frames": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        frames=5,
        *,
        max_epochs=100,
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
        return _DenseAEModule, {"n_inputs": width * n_mels}
