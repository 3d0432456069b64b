"""CNNAE: convolutional autoencoder on log-mel patches (U-Net skips, Deep SVDD loss, L2)."""

from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._base import AEModule, BaseAEDetector, fill_doc

__all__ = ["CNNAE"]

_CHANNELS = (32, 64, 128, 256)
_DROPOUT = (0.0, 0.2, 0.3, 0.3)
_LATENT_CHANNELS = 40


def _halvings(n, times):
    """Sizes of a dimension of ``n`` after each stride-2 conv (kernel 3, padding 1)."""
    sizes = [n]
    for _ in range(times):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _conv_relu(conv, dropout=0.0):
    return torch.nn.Sequential(conv, torch.nn.ReLU(), *([torch.nn.Dropout(dropout)] if dropout else []))


class _CNNAEModule(AEModule):
    """Conv encoder 1-32-64-128-256 (stride 2) -> 40-channel latent map -> mirrored decoder.

    Patches ``(frames, n_mels)`` are images of one channel. Each encoder stage is a 3x3
    stride-2 convolution + ReLU (+ dropout); a 3x3 convolution maps to the linear latent
    map; the decoder is a 3x3 transposed convolution + ReLU back to 256 channels and one
    stride-2 transposed convolution per encoder stage (the last one linear, to 1
    channel), sized to give back exactly the input shape. ``skip`` concatenates each
    encoder map to the decoder input of the same resolution. ``svdd_weight`` > 0 adds
    ``svdd_weight * mean((z - center)**2)``, ``center`` being the mean latent map of the
    training patches at the start of training (a buffer, so it pickles).
    """

    def __init__(self, height, width, skip=False, svdd_weight=0.0):
        super().__init__()
        conv, convt = torch.nn.Conv2d, torch.nn.ConvTranspose2d
        hs, ws = _halvings(height, len(_CHANNELS)), _halvings(width, len(_CHANNELS))
        c_in, encoder = 1, []
        for c, p in zip(_CHANNELS, _DROPOUT):
            encoder.append(_conv_relu(conv(c_in, c, 3, stride=2, padding=1), p))
            c_in = c
        self.encoder = torch.nn.ModuleList(encoder)
        self.to_latent = conv(c_in, _LATENT_CHANNELS, 3, padding=1)
        self.from_latent = _conv_relu(convt(_LATENT_CHANNELS, c_in, 3, padding=1))
        decoder = []
        for stage, c_out in zip(range(len(_CHANNELS), 0, -1), (*_CHANNELS[-2::-1], 1)):
            # output_padding restores odd/even sizes: out = 2 * in - 1 + output_padding
            pad = (hs[stage - 1] - 2 * hs[stage] + 1, ws[stage - 1] - 2 * ws[stage] + 1)
            layer = convt(c_in * (2 if skip else 1), c_out, 3, stride=2, padding=1, output_padding=pad)
            decoder.append(layer if c_out == 1 else _conv_relu(layer))
            c_in = c_out
        self.decoder = torch.nn.ModuleList(decoder)
        self.skip, self.svdd_weight = skip, svdd_weight
        self.embed_dim = _LATENT_CHANNELS * hs[-1] * ws[-1]
        self.register_buffer("center", torch.zeros(_LATENT_CHANNELS, hs[-1], ws[-1]))

    def _encode(self, x):
        maps, h = [], x.unsqueeze(1)
        for stage in self.encoder:
            h = stage(h)
            maps.append(h)
        return self.to_latent(h), maps

    def forward(self, x):
        z, maps = self._encode(x)
        h = self.from_latent(z)
        for stage, enc_map in zip(self.decoder, reversed(maps)):
            h = stage(torch.cat([h, enc_map], 1) if self.skip else h)
        penalty = self.svdd_weight * (z - self.center).square().mean() if self.svdd_weight else z.new_zeros(())
        return h.squeeze(1), penalty

    def embed(self, x):
        return self._encode(x)[0].flatten(1)

    def init_from_data(self, batches):
        if self.svdd_weight:
            total, n = 0.0, 0
            for x, _ in batches:
                z = self._encode(x)[0]
                total, n = total + z.sum(0), n + len(z)
            self.center.copy_(total / n)


@fill_doc(max_epochs=20, batch_size=16, window="Patche", normalisation="the training log-mel's mean and standard deviation")
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
