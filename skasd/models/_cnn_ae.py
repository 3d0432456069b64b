"""CNNAE: convolutional autoencoder on log-mel patches (U-Net skips, Deep SVDD loss, L2)."""

from numbers import Integral, Real

import torch

from ..utils._sklearn_compat import Interval, StrOptions
from ._autoencoder import BaseAEDetector, ae_docs
from ._torch._ae_modules import _CNNAEModule

__all__ = ["CNNAE"]


@ae_docs(max_epochs=20, batch_size=16, window="Patche", normalisation="the training log-mel's mean and standard deviation")
class CNNAE(BaseAEDetector):
    """Convolutional autoencoder detector on log-mel patches (the report's CNNAE).

    Each clip is cut into patches of ``patch_frames`` frames every ``patch_hop`` frames
    (default: 9 non-overlapping 32 x 128 patches per 10 s clip), standardised with the
    training set's scalar mean and standard deviation, and seen as one-channel images.
    Encoder: four 3x3 stride-2 convolutions with 32, 64, 128, 256 channels, ReLU, dropout
    0, 0.2, 0.3, 0.3; a 3x3 convolution to a 40-channel latent map (2 x 8 for a 32 x 128
    patch). Decoder: the mirror image with transposed convolutions and ReLU, back to the
    patch shape. A clip's anomaly score is the mean over its patches of the patch's mean
    squared reconstruction error; ``transform`` returns the mean latent map, flattened.

    Training loss per patch, averaged over the batch: ``MSE(patch, reconstruction)``,
    plus with ``loss="svdd"`` ``svdd_weight * mean((z - c)**2)`` over the latent map
    ``z`` (Deep SVDD compactness), where ``c`` is the mean latent map of the training
    patches computed once before the first epoch (stored in ``net_.module_.center``),
    plus ``l2 * sum of squared parameters``.

    The report's rows map to: ``CNNAE`` = ``CNNAE()``; ``CNNAE+L2`` = ``CNNAE(l2=0.002)``;
    the skip-connection (U-Net) variant = ``CNNAE(skip=True)`` (combine freely, e.g.
    ``CNNAE(skip=True, l2=0.002)``); reconstruction loss alone = ``CNNAE(loss="mse")``.

    CNNAE needs 3-D input ``(n_clips, n_mels, n_frames)``; 2-D input is refused.

    Parameters
    ----------
    patch_frames : int, default=32
        Frames per patch (the patch height; width = n_mels).
    patch_hop : int, default=32
        Frames between the starts of consecutive patches, in training and scoring.
    skip : bool, default=False
        U-Net style skip connections: concatenate each encoder map to the decoder input
        of the same resolution.
    loss : {"svdd", "mse"}, default="svdd"
        ``"svdd"`` adds the Deep SVDD term to the reconstruction MSE; ``"mse"`` trains on
        the reconstruction error alone.
    svdd_weight : float, default=0.1
        Weight of the SVDD term (ignored with ``loss="mse"``).
    {common_parameters}

    Attributes
    ----------
    {common_attributes}

    See Also
    --------
    DenseAE : The DCASE 2020 baseline dense autoencoder.
    VAE : Variational autoencoder on frame windows.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import CNNAE
    >>> X = np.random.default_rng(0).normal(size=(8, 128, 64)).astype("float32")
    >>> det = CNNAE(max_epochs=2, random_state=0).fit(X)
    >>> det.score_samples(X).shape, det.transform(X).shape
    ((8,), (8, 640))
    """

    _accepts_2d = False
    _standardize = True
    _parameter_constraints = {
        **BaseAEDetector._parameter_constraints,
        "patch_frames": [Interval(Integral, 1, None, closed="left")],
        "patch_hop": [Interval(Integral, 1, None, closed="left")],
        "skip": ["boolean"],
        "loss": [StrOptions({"svdd", "mse"})],
        "svdd_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        patch_frames=32,
        patch_hop=32,
        skip=False,
        loss="svdd",
        svdd_weight=0.1,
        *,
        max_epochs=20,
        batch_size=16,
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
        self.patch_frames = patch_frames
        self.patch_hop = patch_hop
        self.skip = skip
        self.loss = loss
        self.svdd_weight = svdd_weight
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
        return self.patch_frames, self.patch_hop

    def _module(self, width, n_mels):
        weight = self.svdd_weight if self.loss == "svdd" else 0.0
        return _CNNAEModule, {"height": width, "width": n_mels, "skip": self.skip, "svdd_weight": weight}
