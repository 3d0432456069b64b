"""Shared base of the autoencoder detectors: scikit-learn outlier API on top of a skorch net.

A subclass declares its parameters, names its torch module in ``_module`` and says
which windows of the log-mel spectrogram the module sees (``_window``). Everything else
(input validation, seeding, the clip-level validation split, the skorch training loop and
callbacks, clip scores, the threshold) lives here once.

Data layout: a clip is a ``(n_mels, n_frames)`` log-mel array; the module sees windows of
``width`` consecutive frames laid out as ``(width, n_mels)`` (frame-major, as the DCASE
baseline concatenates frames). A 2-D row of ``n_features`` is one window of width 1.
Windows are never materialised for the whole dataset: training gathers a batch of
windows with one fancy index (``_WindowDataset.__getitems__``) and scoring unfolds a
chunk of clips (``Tensor.unfold``).
"""

import contextlib
import math
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, ProgressBar

from ._outlier import CONTAMINATION_DOC, BaseDetector, normal_only

__all__ = ["BaseAEDetector"]

# Parameters and attributes every detector shares; ``{...}`` are per-model defaults.
COMMON_PARAMETERS = """\
max_epochs : int, default={max_epochs}
    Training epochs (fewer with ``early_stopping``).
batch_size : int, default={batch_size}
    {window}s per training batch; also the window budget of a scoring chunk.
lr : float, default=1e-3
    Learning rate.
optimizer : torch optimizer class, default=torch.optim.Adam
    Called with the module parameters and ``lr``.
l2 : float, default=0.0
    Adds ``l2 * sum of squared parameters`` (all weights and biases) to the training
    loss, not to the validation loss.
validation_fraction : float in [0, 1), default=0.1
    Fraction of the clips (whole clips, never windows of one clip on both sides) held
    out to compute ``valid_loss`` each epoch. ``0``, or fewer than one clip, trains
    without validation.
early_stopping : int or None, default=None
    Patience in epochs: stop when the validation loss (the training loss when there is
    no validation set) has not improved for that many epochs, and restore the best
    weights.
callbacks : list of skorch callbacks or None, default=None
    Extra skorch callbacks (``LRScheduler``, ``Checkpoint``, ...), cloned at fit.
{contamination}
device : str or torch.device, default="auto"
    ``"auto"``: CUDA when available, else the CPU. A model trained on a GPU unpickles
    on a CPU-only machine (skorch maps its tensors to the CPU, with a DeviceWarning).
random_state : int, RandomState instance or None, default=None
    Seeds the weights, the validation split, the batch order and any sampling, without
    touching torch's global random state. On the CPU the same seed gives the same
    scores (tested to 1e-6 relative; identical in practice with the same torch build
    and thread count); CUDA kernels may differ in the last bits between runs.
verbose : int, default=0
    0 silent, 1 one line per epoch (skorch's table), 2 also a progress bar."""

COMMON_ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained net: ``net_.module_`` is the torch module, ``net_.history`` the
    per-epoch ``train_loss`` and ``valid_loss``.
offset_ : float
    ``decision_function = score_samples - offset_``.
loc_, scale_ : float
    Scalar input normalisation ``(X - loc_) / scale_`` fitted on the training clips
    ({normalisation}).
n_features_in_ : int
    Number of mel bands (3-D input) or of features (2-D input) seen in fit."""


def fill_doc(**defaults):
    """Class decorator: put the shared parameter/attribute docs into the docstring."""

    def decorate(cls):
        indent = "\n" + " " * 4
        params = COMMON_PARAMETERS.format(contamination=CONTAMINATION_DOC, **defaults).replace("\n", indent)
        attrs = COMMON_ATTRIBUTES.format(**defaults).replace("\n", indent)
        cls.__doc__ = cls.__doc__.replace("{common_parameters}", params).replace("{common_attributes}", attrs)
        return cls

    return decorate


class AEModule(torch.nn.Module):
    """Contract of the torch modules the detectors train.

    ``forward(x)`` takes a batch of windows ``(batch, width, n_mels)`` and returns
    ``(reconstruction, penalty)``: the reconstruction has the shape of ``x`` and is
    compared with ``x`` by mean squared error; ``penalty`` is the scalar the model adds to
    that loss (KL term, SVDD distance; ``0`` for a plain autoencoder). ``embed(x)`` returns
    one latent vector ``(batch, embed_dim)`` per window.
    """

    embed_dim: int

    def init_from_data(self, batches):
        """Set data-dependent state (e.g. an SVDD centre) before training; no-op here.

        ``batches`` iterates over ``(windows, windows)`` batches of the training set.
        """

    def window_errors(self, x):
        """Mean squared reconstruction error of each window, shape ``(batch,)``."""
        recon, _ = self(x)
        return (recon - x).square().flatten(1).mean(1)


class _WindowDataset(torch.utils.data.Dataset):
    """Windows of ``width`` frames every ``hop`` frames of some clips, gathered on demand.

    ``X`` is the ``(n_clips, n_mels, n_frames)`` tensor of all clips, shared, never
    copied; ``clips`` selects the clips this dataset covers (all by default). Item ``i``
    is window ``i % n_windows`` of clip ``clips[i // n_windows]``. ``__getitems__`` gathers
    a whole batch with one fancy index and returns ``(windows, windows)``: the
    autoencoder's target is its input.
    """

    def __init__(self, X, width, hop, loc=0.0, scale=1.0, clips=None):
        self.X, self.width, self.hop, self.loc, self.scale = X, width, hop, loc, scale
        self.clips = torch.arange(len(X), device=X.device) if clips is None else clips
        self.frames = X.transpose(1, 2)  # (n_clips, n_frames, n_mels) view
        self.n_windows = _n_windows(X.shape[2], width, hop)
        self.offsets = torch.arange(width, device=X.device)

    def subset(self, clips):
        """The same windows of the clips ``clips`` (indices into ``X``), sharing ``X``."""
        clips = torch.as_tensor(clips, device=self.X.device)
        return _WindowDataset(self.X, self.width, self.hop, self.loc, self.scale, clips)

    def __len__(self):
        return len(self.clips) * self.n_windows

    def __getitems__(self, indices):
        i = torch.as_tensor(indices, device=self.offsets.device)
        clip, start = self.clips[i // self.n_windows], (i % self.n_windows) * self.hop
        w = self.frames[clip[:, None], start[:, None] + self.offsets]
        w = (w - self.loc) / self.scale
        return w, w

    def __getitem__(self, i):
        w, _ = self.__getitems__([i])
        return w[0], w[0]


class _ClipSplit:
    """skorch ``train_split``: hold out whole clips, never windows of one clip on both sides.

    Stores only the clip indices, so the pickled net carries no data.
    """

    def __init__(self, train_clips, valid_clips):
        self.train_clips, self.valid_clips = train_clips, valid_clips

    def __call__(self, dataset, y=None, **fit_params):
        return dataset.subset(self.train_clips), dataset.subset(self.valid_clips)


def _batch_as_is(batch):
    """collate_fn for ``_WindowDataset``: ``__getitems__`` already returns a batch."""
    return batch


def _n_windows(n_frames, width, hop):
    return (n_frames - width) // hop + 1


class _AENet(NeuralNet):
    """skorch net whose loss is MSE(reconstruction, input) + the module's penalty.

    ``l2`` adds ``l2 * sum of squared parameters`` to the training loss only (the
    validation loss stays comparable across ``l2`` values).
    """

    def __init__(self, *args, l2=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = l2

    def get_loss(self, y_pred, y_true, X=None, training=False):
        recon, penalty = y_pred
        loss = self.criterion_(recon, y_true) + penalty
        if training and self.l2:
            loss = loss + self.l2 * sum(p.square().sum() for p in self.module_.parameters())
        return loss


class _InitModuleFromData(Callback):
    """Let the module set data-dependent state from the training windows (eval mode)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        train_set, _ = net.get_split_datasets(X)
        net.module_.eval()
        with torch.no_grad():
            net.module_.init_from_data(net.get_iterator(train_set, training=False))


class _RaiseOnNonFiniteLoss(Callback):
    """Stop training with a clear error as soon as a batch loss is NaN or infinite."""

    def __init__(self, estimator_name):
        self.estimator_name = estimator_name

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if loss is not None and not torch.isfinite(loss):
            kind = "training" if training else "validation"
            raise FloatingPointError(
                f"{self.estimator_name}: the {kind} loss became {loss.item()} in epoch "
                f"{len(net.history)}. Try a lower learning rate (lr={net.lr}) or "
                "standardised input (log-mel in dB, not raw power)."
            )


class BaseAEDetector(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseDetector, metaclass=ABCMeta):
    """Base class of the autoencoder anomaly detectors (not for direct use).

    Subclasses set ``_accepts_2d`` and ``_standardize`` and implement
    ``_module(width, n_mels)`` and ``_window()``.
    """

    _accepts_2d = True
    # Standardise the input with the training set's scalar mean and std (fitted attributes
    # ``loc_`` and ``scale_``); when False, ``loc_ = 0`` and ``scale_ = 1``.
    _standardize = False

    _parameter_constraints = {
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [callable],
        "l2": [Interval(Real, 0, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [Interval(Integral, 1, None, closed="left"), None],
        "callbacks": [list, None],
        **BaseDetector._parameter_constraints,
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

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
        one window of width 1 per row.
        """
        name = type(self).__name__
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
        if not X.flags.writeable:  # torch.from_numpy cannot share read-only memory
            X = X.copy()
        return (X[:, :, None] if X.ndim == 2 else X), width, hop

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Train the autoencoder on normal clips and set the decision threshold.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features)
            Log-mel spectrograms of normal clips (e.g. from ``LogMelTransformer``), or
            plain feature vectors where the model accepts 2-D input.
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
        self._validate_params()
        X, width, hop = self._validate_input(X, reset=True)
        if y is not None:
            X = normal_only(X, y, type(self).__name__)
        name = type(self).__name__
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)

        # Clip-level split: all windows of a clip fall on the same side.
        n_valid = int(self.validation_fraction * len(X))
        order = rng.permutation(len(X))
        train, valid = np.sort(order[n_valid:]), np.sort(order[:n_valid])
        n_train_windows = len(train) * _n_windows(X.shape[2], width, hop)
        if n_train_windows < 2:
            raise ValueError(
                f"{name} needs at least 2 training windows; got n_samples = {len(X)} "
                f"with {n_valid} held out for validation."
            )
        loc, scale = _mean_std(X, train) if self._standardize else (0.0, 1.0)
        dataset = _WindowDataset(torch.from_numpy(X).to(device), width, hop, loc, scale)
        callbacks = [
            ("init_module_from_data", _InitModuleFromData()),
            ("nonfinite_loss", _RaiseOnNonFiniteLoss(name)),
        ]
        if self.early_stopping is not None:
            monitor = "valid_loss" if n_valid else "train_loss"
            callbacks.append(
                ("early_stopping", EarlyStopping(monitor, patience=self.early_stopping, load_best=True))
            )
        if self.verbose and self.verbose > 1:
            callbacks.append(("progress_bar", ProgressBar()))
        callbacks += [clone(cb, safe=False) for cb in self.callbacks or []]

        with torch_seed(seed, device):
            net = self._make_net(
                width,
                X.shape[1],
                device,
                train_split=_ClipSplit(train, valid) if n_valid else None,
                # a last batch of a single window would break batch normalisation
                iterator_train__drop_last=n_train_windows % self.batch_size == 1,
                callbacks=callbacks,
            )
            net.fit(dataset, None)
        # fitted attributes only once training succeeded
        self.net_, self.loc_, self.scale_ = net, loc, scale
        self._n_features_out = net.module_.embed_dim
        self._set_offset(-self._per_clip(X, width, hop, "window_errors"))
        return self

    def _make_net(self, width, n_mels, device, **kwargs):
        """The (uninitialised) skorch net for windows ``(width, n_mels)`` on ``device``.

        ``kwargs`` override or add skorch arguments (``train_split``, ``callbacks``, ...).
        A model file is rebuilt by calling this with the fitted geometry, then
        ``initialize()`` and loading the saved weights.
        """
        module, module_params = self._module(width, n_mels)
        params = dict(
            criterion=torch.nn.MSELoss,
            optimizer=self.optimizer,
            lr=self.lr,
            l2=self.l2,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None,
            iterator_train__shuffle=True,
            iterator_train__collate_fn=_batch_as_is,
            iterator_valid__collate_fn=_batch_as_is,
            device=device,
            verbose=self.verbose,
        )
        params.update({f"module__{key}": value for key, value in module_params.items()}, **kwargs)
        return _AENet(module, **params)

    # ---------------------------------------------------------------- scoring
    def _per_clip(self, X, width, hop, method):
        """Mean over each clip's windows of ``module.<method>(windows)``, as float64.

        Clips are processed in chunks of about ``batch_size`` windows; each chunk is
        unfolded into its windows on the device.
        """
        module, device = self.net_.module_, self.net_.device
        n_win = _n_windows(X.shape[2], width, hop)
        chunk = max(1, self.batch_size // n_win)
        module.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                xb = torch.from_numpy(X[start : start + chunk]).to(device)
                w = xb.unfold(2, width, hop).permute(0, 2, 3, 1).reshape(-1, width, X.shape[1])
                r = getattr(module, method)((w - self.loc_) / self.scale_)
                out.append(r.reshape(len(xb), n_win, *r.shape[1:]).mean(1).cpu())
        return torch.cat(out).double().numpy()

    def score_samples(self, X):
        """Minus the reconstruction error of each clip (higher = more normal).

        The clip's error is the mean over its windows of each window's mean squared
        reconstruction error (in the units of ``X``; divided by ``scale_**2`` where the
        model standardises its input).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features)
            Clips to score, in the layout the model was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``-error``; the lower, the more abnormal.
        """
        check_is_fitted(self)
        return -self._per_clip(*self._validate_input(X, reset=False), "window_errors")

    def transform(self, X):
        """Latent embedding of each clip: the mean of its windows' latent vectors.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames) or (n_samples, n_features)
            Clips to embed.

        Returns
        -------
        Z : ndarray of shape (n_clips, n_latent)
            One embedding per clip, to put any other detector on top.
        """
        check_is_fitted(self)
        return self._per_clip(*self._validate_input(X, reset=False), "embed")

    def __sklearn_is_fitted__(self):
        # n_features_in_ is set while validating, before training can still fail
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = self._accepts_2d
        tags.input_tags.three_d_array = True
        return tags


def _mean_std(X, clips, chunk=64):
    """Mean and standard deviation (float64) of ``X[clips]`` without copying all of it."""
    total = squares = 0.0
    for start in range(0, len(clips), chunk):
        part = X[clips[start : start + chunk]].astype(np.float64)
        total += part.sum()
        squares += np.square(part).sum()
    n = len(clips) * X[0].size
    mean = total / n
    return float(mean), float(math.sqrt(max(squares / n - mean**2, 0.0))) or 1.0


def resolve_device(device):
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; anything else unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def torch_seed(seed, device):
    """Seed torch (CPU and ``device``'s CUDA generator) inside the block, restoring the
    global random state afterwards, so that fitting never disturbs the user's RNG."""
    dev = torch.device(device)
    cuda_rngs = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_rngs):
        torch.manual_seed(seed)
        yield
