"""Shared base of the autoencoder detectors: scikit-learn's outlier API on the shared torch base.

A subclass declares its parameters, names its torch module in ``_module`` and says which
windows of the log-mel spectrogram the module sees (``_window``). Training is
:class:`~skasd.models._torch._estimator.BaseTorchEstimator`'s; this layer adds what is particular
to autoencoders: windows as training items (the module reconstructs them), clip scores as the
mean window reconstruction error, the threshold, and the latent embedding (``transform``).

Data layout: a clip is a ``(n_mels, n_frames)`` log-mel array; the module sees windows of
``width`` consecutive frames laid out as ``(width, n_mels)``. A 2-D row of ``n_features`` is
one window of width 1. A :class:`~skasd.FeatureStore` (clips on disk) is streamed
(``stream_buffer`` clips at a time) and scored chunk by chunk.
"""

from abc import ABCMeta, abstractmethod
from functools import partial
from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..features._stream import FeatureStore
from ..utils._docstring import Substitution
from ..utils._sklearn_compat import Interval, validate_data
from ..utils._validation import normal_mask
from ._base import CONTAMINATION_DOC, BaseDetector
from ._frames import band_profile, clip_chunks, window_starts
from ._torch._ae_modules import AEModule
from ._torch._callbacks import _InitModuleFromData
from ._torch._datasets import _ClipStream, _n_windows, _WindowDataset
from ._torch._estimator import BaseTorchEstimator, parameter_docs
from ._torch._nets import _AENet

__all__ = ["AEModule", "BaseAEDetector", "ae_docs"]

_PARAMETERS = """\
max_epochs : int, default={max_epochs}
    Training epochs (fewer with ``early_stopping``).
batch_size : int, default={batch_size}
    {window}s per training batch; also the window budget of a scoring chunk, except
    that the CPU scores clips of 3-D input one at a time, so that a clip's score does not
    depend on the clips scored with it.
lr : float, default=1e-3
    Learning rate.
{optimizer}
l2 : float, default=0.0
    Adds ``l2 * sum of squared parameters`` (all weights and biases) to the training
    loss, not to the validation loss.
{training}
{contamination}
device : str or torch.device, default="auto"
    ``"auto"``: CUDA when available, else the CPU. A model trained on a GPU unpickles
    on a CPU-only machine (skorch maps its tensors to the CPU, with a DeviceWarning).
random_state : int, RandomState instance or None, default=None
    Seeds the weights, the validation split, the batch order and any sampling, without
    touching torch's global random state. On the CPU the same seed gives the same
    scores (tested to 1e-6 relative; identical in practice with the same torch build
    and thread count); CUDA kernels may differ in the last bits between runs.
{verbose}"""

_ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained net: ``net_.module_`` is the torch module, ``net_.history`` the
    per-epoch ``train_loss`` and ``valid_loss``.
offset_ : float
    ``decision_function = score_samples - offset_``.
train_score_quartiles_ : ndarray of shape (3,)
    Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).
loc_, scale_ : float
    Scalar input normalisation ``(X - loc_) / scale_`` fitted on the training clips
    ({normalisation}).
band_profile_ : ndarray of shape (2, n_mels) or None
    Mean and standard deviation over the training clips' frames of each mel band (dB for
    log-mel input): the normal level that :func:`skasd.inspection.explain` compares a
    clip's bands with. None for 2-D input.
band_error_ : ndarray of shape (n_mels,) or None
    Mean squared reconstruction error of each mel band over the training clips' frames:
    ``frame_scores(X, relative=True)`` divides each band's error by it. None for 2-D input.
n_features_in_ : int
    Number of mel bands (3-D input) or of features (2-D input) seen in fit."""


def ae_docs(*, max_epochs, batch_size, window, normalisation):
    """Class decorator: the autoencoders' shared parameter and attribute docs, with their defaults."""
    training = parameter_docs(
        "validation_fraction", "early_stopping", "callbacks", "stream_buffer", "checkpoint", "checkpoint_every",
        "accelerator", validation_fraction=0.1, item="window", result="scores",
        same_run="data shape and first/last training clip",
    )
    parameters = _PARAMETERS.format(
        max_epochs=max_epochs, batch_size=batch_size, window=window, optimizer=parameter_docs("optimizer"),
        training=training, contamination=CONTAMINATION_DOC, verbose=parameter_docs("verbose"),
    )
    return Substitution(common_parameters=parameters, common_attributes=_ATTRIBUTES.format(normalisation=normalisation))


class BaseAEDetector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseTorchEstimator, BaseDetector,
                     metaclass=ABCMeta):
    """Base class of the autoencoder anomaly detectors (not for direct use).

    Subclasses set ``_accepts_2d`` and ``_standardize`` and implement
    ``_module(width, n_mels)`` and ``_window()``.
    """

    _accepts_2d = True
    # Standardise the input with the training set's scalar mean and std (fitted attributes
    # ``loc_`` and ``scale_``); when False, ``loc_ = 0`` and ``scale_ = 1``.
    _standardize = False

    _parameter_constraints = {
        **BaseTorchEstimator._parameter_constraints,
        "l2": [Interval(Real, 0, None, closed="left")],
        **BaseDetector._parameter_constraints,
    }
    _fitted_attributes = (*BaseTorchEstimator._fitted_attributes, "offset_", "band_profile_", "band_error_")

    @abstractmethod
    def _module(self, width, n_mels):
        """``(AEModule subclass, init kwargs)`` for windows of shape ``(width, n_mels)``."""

    @abstractmethod
    def _window(self):
        """``(width, hop)`` in frames of the windows the module sees in a 3-D clip."""

    # ------------------------------------------------------------------ input
    def _validate_input(self, X, reset):
        """Validated float32 ``(n_clips, n_mels, n_frames)`` array and its window geometry.

        2-D input ``(n_samples, n_features)`` becomes ``(n_samples, n_features, 1)`` with
        one window of width 1 per row. A :class:`~skasd.FeatureStore` stays as it is (its
        values are checked when read).
        """
        name = type(self).__name__
        if isinstance(X, FeatureStore):
            validate_data(self, X, reset=reset, skip_check_array=True)
        else:
            X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float32)
        if X.ndim == 2 and not self._accepts_2d:
            raise ValueError(
                f"{name} works on log-mel patches and needs a 3-D array (n_clips, n_mels, "
                f"n_frames), e.g. from LogMelTransformer; got 2-D input of shape {X.shape}. "
                "For tabular data use DenseAE or VAE."
            )
        if X.ndim > 3:
            alt = " or a 2-D array (n_samples, n_features)" if self._accepts_2d else ""
            raise ValueError(
                f"{name} expects a 3-D array (n_clips, n_mels, n_frames) of log-mel "
                f"spectrograms{alt}; got {X.ndim}-D input of shape {X.shape}."
            )
        if reset:
            self._input_ndim = X.ndim
        elif X.ndim != self._input_ndim:
            raise ValueError(
                f"{name} was fitted on {self._input_ndim}-D input but got {X.ndim}-D input "
                f"of shape {X.shape}."
            )
        width, hop = (1, 1) if X.ndim == 2 else self._window()
        if X.ndim == 3 and X.shape[2] < width:
            raise ValueError(
                f"{name} needs clips of at least {width} frames for one window; got "
                f"n_frames={X.shape[2]} (input shape {X.shape})."
            )
        if isinstance(X, np.ndarray) and not X.flags.writeable:  # torch.from_numpy cannot share it
            X = X.copy()
        return (X[:, :, None] if X.ndim == 2 else X), width, hop

    def fit(self, X, y=None):
        """Train the autoencoder on normal clips and set the decision threshold.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features), or FeatureStore
            Log-mel spectrograms of normal clips (e.g. from ``LogMelTransformer``), or
            plain feature vectors where the model accepts 2-D input. A
            :class:`~skasd.FeatureStore` (``LogMelTransformer(cache=DIR, lazy=True)``) is
            streamed from disk, ``stream_buffer`` clips at a time.
        y : array-like of shape (n_clips,), default=None
            Optional labels, 1 (or ``"anomaly"``) = anomaly, 0 (or ``"normal"``) =
            normal. Clips labelled anomalous are left out of training, so that
            ``GridSearchCV``'s final refit on labelled development data trains on the
            normal clips only, as every cross-validation fold of ``NormalTrainCV`` did.
            A ``y`` that is not such a binary labelling is ignored.

        Returns
        -------
        self : object
            The fitted detector.
        """
        return self._fit_or_clean(self._fit, X, y)

    def _fit(self, X, y):
        X, width, hop = self._validate_input(X, reset=True)
        stream = isinstance(X, FeatureStore)
        if y is not None:
            mask = normal_mask(y, len(X), type(self).__name__)
            if mask is not None:
                X = X.subset(mask) if stream else X[mask]

        def make_dataset(loc, scale, device):
            if stream:
                return _ClipStream(X, width, hop, loc, scale, self.stream_buffer, device)
            return _WindowDataset(torch.from_numpy(X).to(device), width, hop, loc, scale)

        net, loc, scale = self._train(
            X, make_dataset, partial(self._make_net, width, X.shape[1]),
            items_per_clip=_n_windows(X.shape[2], width, hop), item="window", standardize=self._standardize,
            callbacks=[("init_module_from_data", _InitModuleFromData())],
        )
        # fitted attributes only once training succeeded
        self.net_, self.loc_, self.scale_ = net, loc, scale
        self._n_features_out = net.module_.embed_dim
        self.band_profile_ = band_profile(X, self.stream_buffer) if self._input_ndim == 3 else None
        self._set_offset(-self._per_clip(X, width, hop, "window_errors"))
        self.band_error_ = self._band_errors(X) if self._input_ndim == 3 else None
        return self

    def _band_errors(self, X):
        """Mean squared reconstruction error of each band over all frames of the clips ``X``,
        ``stream_buffer`` clips at a time."""
        total, n = 0.0, 0
        for part in clip_chunks(X, self.stream_buffer):
            maps = self._frame_maps(part)
            total, n = total + maps.sum(axis=(0, 2)), n + maps.shape[0] * maps.shape[2]
        return np.maximum(total / n, np.finfo(np.float64).tiny)

    def _net_args(self):
        width = 1 if self._input_ndim == 2 else self._window()[0]
        return {"width": int(width), "n_mels": int(self.n_features_in_)}

    def _make_net(self, width, n_mels, device, **kwargs):
        """The (uninitialised) skorch net for windows ``(width, n_mels)`` on ``device``.

        ``kwargs`` override or add skorch arguments (``train_split``, ``callbacks``, ...).
        A model file is rebuilt by calling this with the fitted geometry, then
        ``initialize()`` and loading the saved weights.
        """
        module, module_params = self._module(width, n_mels)
        return self._build_net(
            _AENet, module, module_params, device, criterion=torch.nn.MSELoss, l2=self.l2, **kwargs
        )

    # ---------------------------------------------------------------- scoring
    def _per_clip(self, X, width, hop, method):
        """Mean over each clip's windows of ``module.<method>(windows)``, as float64.

        Clips are processed in chunks of about ``batch_size`` windows, one clip at a time on
        the CPU (``_map_clips``); each chunk is unfolded into its windows on the device.
        """
        module, n_win, n_mels = self.net_.module_, _n_windows(X.shape[2], width, hop), X.shape[1]

        def per_clip(xb):
            w = xb.unfold(2, width, hop).permute(0, 2, 3, 1).reshape(-1, width, n_mels)
            r = getattr(module, method)((w - self.loc_) / self.scale_)
            return r.reshape(len(xb), n_win, *r.shape[1:]).mean(1)

        return self._map_clips(X, n_win, per_clip)

    def score_samples(self, X):
        """Minus the reconstruction error of each clip (higher = more normal).

        The clip's error is the mean over its windows of each window's mean squared
        reconstruction error (in the units of ``X``; divided by ``scale_**2`` where the
        model standardises its input).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features), or FeatureStore
            Clips to score, in the layout the model was fitted on; a FeatureStore is read
            chunk by chunk.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``-error``; the lower, the more abnormal.
        """
        check_is_fitted(self)
        return -self._per_clip(*self._validate_input(X, reset=False), "window_errors")

    def frame_scores(self, X, per_band=False, relative=False):
        """Reconstruction error of each frame, and with ``per_band`` of each (band, frame).

        Each window (patch) the model reconstructs covers ``width`` frames; a frame's error
        is the mean over the windows covering it of the squared error at that frame
        (averaged over the mel bands unless ``per_band``). The clip's anomaly score is
        these frame scores' mean weighted by the number of windows covering each frame:
        all frames alike but the first and last ``width - 1`` (DenseAE, VAE: ``frames - 1``)
        for windows at every frame. Frames that no window of the clip score covers (with
        CNNAE's patches every ``patch_hop`` frames, those after the last whole patch) get the
        error of one more patch ending at the clip's last frame: they count in no clip
        score (weight 0), but an anomaly there still shows.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames), or FeatureStore
            Log-mel clips, as in ``fit``.
        per_band : bool, default=False
            Return the ``(band, frame)`` map instead of its mean over the bands.
        relative : bool, default=False
            Divide each band's error by its mean on the training clips (``band_error_``)
            first, so that a change in a band the model reconstructs well counts as much as
            one in a band it always reconstructs poorly. The scores then no longer pool to
            the clip score; :func:`skasd.inspection.explain` finds its segments on these.

        Returns
        -------
        scores : ndarray of shape (n_clips, n_frames) or (n_clips, n_mels, n_frames)
            Squared reconstruction error per frame (higher = more anomalous, the sign of
            ``anomaly_score``, in its units). For times in seconds and bands in Hz, use
            :func:`skasd.inspection.frame_scores`.
        """
        check_is_fitted(self)
        name = type(self).__name__
        if self._input_ndim != 3:
            raise ValueError(
                f"{name} was fitted on 2-D input (n_samples, n_features), which has no time axis; frame "
                "scores need a model fitted on 3-D log-mel clips (n_clips, n_mels, n_frames)."
            )
        if relative and vars(self).get("band_error_") is None:
            raise ValueError(f"{name}: relative=True needs band_error_, which models saved by skasd 0.1 lack; refit.")
        maps = self._frame_maps(X)
        if relative:
            maps = maps / self.band_error_[:, None]
        return maps if per_band else maps.mean(axis=1)

    def _frame_maps(self, X):
        """``frame_scores(X, per_band=True)`` without the checks of the fitted input."""
        X, width, hop = self._validate_input(X, reset=False)
        module, n_mels, n_frames = self.net_.module_, X.shape[1], X.shape[2]
        starts = window_starts(n_frames, width, hop, cover_end=True)  # the last one may be extra
        n_scored = len(window_starts(n_frames, width, hop))
        frames = starts[:, None] + np.arange(width)  # (windows, width)
        gather = torch.from_numpy(frames.ravel())
        scored, extra = torch.from_numpy(frames[:n_scored].ravel()), torch.from_numpy(frames[n_scored:].ravel())

        def per_clip(xb):  # squared errors summed into frames: (clips, 2, n_frames, n_mels)
            w = xb[:, :, gather.to(xb.device)].reshape(len(xb), n_mels, len(starts), width)
            w = w.permute(0, 2, 3, 1).reshape(-1, width, n_mels)
            err = module.error_map((w - self.loc_) / self.scale_).reshape(len(xb), len(starts) * width, n_mels)
            out = xb.new_zeros(len(xb), 2, n_frames, n_mels)
            out[:, 0].index_add_(1, scored.to(xb.device), err[:, : n_scored * width])
            out[:, 1].index_add_(1, extra.to(xb.device), err[:, n_scored * width :])
            return out

        summed = self._map_clips(X, len(starts), per_clip)
        count = np.bincount(scored.numpy(), minlength=n_frames)[:, None]  # scored windows covering each frame
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, summed[:, 0] / count, summed[:, 1]).transpose(0, 2, 1)

    def transform(self, X):
        """Latent embedding of each clip: the mean of its windows' latent vectors.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features), or FeatureStore
            Clips to embed.

        Returns
        -------
        Z : ndarray of shape (n_clips, n_latent)
            One embedding per clip, to put any other detector on top.
        """
        check_is_fitted(self)
        return self._per_clip(*self._validate_input(X, reset=False), "embed")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = self._accepts_2d
        tags.input_tags.three_d_array = True
        return tags
