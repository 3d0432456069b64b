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

A :class:`~skasd.FeatureStore` (clips on disk) is streamed instead (``_ClipStream``): each
epoch reads the clips in shuffled order, ``stream_buffer`` clips at a time, and shuffles the
windows within that buffer (the next buffer is read in a thread meanwhile), so memory holds
two buffers and a batch, not the dataset.
"""

import contextlib
import hashlib
import json
import math
import os
import warnings
from abc import ABCMeta, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, LoadInitState, ProgressBar
from skorch.hf import AccelerateMixin
from skorch.utils import noop

from .._io import write_text_atomic
from .._stream import FeatureStore
from ._outlier import CONTAMINATION_DOC, BaseDetector, normal_mask

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
    Extra skorch callbacks (``LRScheduler``, ...), cloned at fit.
stream_buffer : int, default=256
    Clips read at a time when ``X`` is a :class:`~skasd.FeatureStore` (e.g. from
    ``LogMelTransformer(cache=DIR, lazy=True)``): each epoch reads the training clips in a
    new random order, this many at a time (the next buffer while one trains: two in memory,
    41 MB each for 10 s clips), and shuffles the windows within each buffer.
    When all training clips fit in one buffer, training equals training on the array (same
    seed, same scores); arrays ignore it.
checkpoint : str, path-like or None, default=None
    Folder for resumable training: the net's weights, optimizer state, history and torch's
    random state are saved there every ``checkpoint_every`` epochs (skorch ``Checkpoint``;
    written into alternating subfolders, then ``latest.json`` is replaced atomically). A
    ``fit`` that finds a checkpoint of the same run (same class, parameters other than
    ``max_epochs``, ``callbacks``, ``verbose``, ``device``, ``accelerator`` and the
    checkpoint ones, data shape and first/last training clip) resumes after its last epoch
    and gives the model an uninterrupted run would (CPU: within 1e-6 relative); one of
    another run is an error. Early stopping's patience count and the state of extra
    callbacks restart at resume. Meant for one long fit, not for a search over clones.
checkpoint_every : int, default=1
    Epochs between checkpoints (the last epoch is always saved).
accelerator : accelerate.Accelerator or None, default=None
    Train through Hugging Face Accelerate (skorch's ``AccelerateMixin``; ``device`` is then
    ignored and the accelerator places the model and batches). Multi-GPU data-parallel
    training: build ``Accelerator()`` in a script and run it with ``accelerate launch
    script.py``; each process fits on the same data and the gradients are averaged. Scoring
    runs in each process on the accelerator's device. Mixed precision is the accelerator's
    too: ``Accelerator(mixed_precision="bf16")`` (also on the CPU) or ``"fp16"`` (CUDA,
    with loss scaling) autocasts the forward pass and keeps float32 weights.
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


class _ClipStream(torch.utils.data.IterableDataset):
    """Windows of the clips of a :class:`~skasd.FeatureStore`, streamed from disk in batches.

    The counterpart of ``_WindowDataset`` for clips that are not in memory: iterating
    yields ``(windows, windows)`` batches of ``batch_size`` windows. The clips ``clips``
    (indices into the store) are read ``buffer`` at a time; with ``shuffle`` the clip order
    is a new random permutation each epoch and the windows of each buffer are shuffled, both
    drawn from a generator seeded from torch's global generator, as ``RandomSampler`` does
    (so a seeded fit is reproducible and a checkpoint's RNG state resumes it). With one
    buffer for all clips the batches equal those of ``_WindowDataset`` under ``RandomSampler``.
    A partial batch is completed from the next buffer; ``drop_last`` drops the final one.
    """

    def __init__(self, store, width, hop, loc=0.0, scale=1.0, buffer=256, device="cpu", clips=None):
        self.store, self.width, self.hop, self.loc, self.scale = store, width, hop, loc, scale
        self.buffer, self.device = buffer, device
        self.clips = np.arange(len(store)) if clips is None else np.asarray(clips)
        self.n_windows = _n_windows(store.shape[2], width, hop)
        self.batch_size, self.shuffle, self.drop_last = 1, False, False

    def subset(self, clips):
        """The same windows of the clips ``clips`` (indices into the store)."""
        return _ClipStream(self.store, self.width, self.hop, self.loc, self.scale, self.buffer, self.device, clips)

    def batches(self, batch_size, shuffle, drop_last):
        """A copy that iterates in batches of ``batch_size`` windows."""
        out = self.subset(self.clips)
        out.batch_size, out.shuffle, out.drop_last = batch_size, shuffle, drop_last
        return out

    def __len__(self):
        """Number of batches an epoch yields."""
        n, bs = len(self.clips) * self.n_windows, self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def __iter__(self):
        gen = None
        order = self.clips
        if self.shuffle:
            gen = torch.Generator()
            gen.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            if len(order) > self.buffer:
                order = order[torch.randperm(len(order), generator=gen).numpy()]
        offsets = torch.arange(self.width, device=self.device)
        pending = None
        for clips, block in self._buffers(order):
            frames = torch.from_numpy(block).to(self.device).transpose(1, 2)
            n = len(clips) * self.n_windows
            idx = (torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)).to(self.device)
            pos = 0
            while pos < n:
                i = idx[pos : pos + self.batch_size - (0 if pending is None else len(pending))]
                pos += len(i)
                clip, first = i // self.n_windows, (i % self.n_windows) * self.hop
                w = (frames[clip[:, None], first[:, None] + offsets] - self.loc) / self.scale
                w = w if pending is None else torch.cat([pending, w])
                if len(w) == self.batch_size:
                    pending = None
                    yield w, w
                else:
                    pending = w
        if pending is not None and not self.drop_last:
            yield pending, pending

    def _buffers(self, order):
        """``(clips, their features)`` buffer by buffer; the next buffer is read in a thread
        while the current one trains (torch releases the GIL), so up to two are in memory."""
        blocks = [order[start : start + self.buffer] for start in range(0, len(order), self.buffer)]
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(_read_finite, self.store, blocks[0])
            for k, clips in enumerate(blocks):
                block = ahead.result()
                if k + 1 < len(blocks):
                    ahead = pool.submit(_read_finite, self.store, blocks[k + 1])
                yield clips, block


def _stream_loader(dataset, batch_size, shuffle=False, drop_last=False, **kwargs):
    """skorch ``iterator_train``/``iterator_valid`` for a ``_ClipStream`` (it batches itself)."""
    return torch.utils.data.DataLoader(
        dataset.batches(batch_size, shuffle, drop_last), batch_size=None, collate_fn=_batch_as_is
    )


def _read_finite(X, clips):
    """``X[clips]`` as float32, refusing NaN/inf (a FeatureStore is not validated up front)."""
    a = X[clips]
    if not np.isfinite(a).all():
        clips = np.arange(len(X))[clips] if isinstance(clips, slice) else np.asarray(clips)
        bad = clips[~np.isfinite(a).all(axis=(1, 2))]
        raise ValueError(f"Input X contains NaN or infinity: clip(s) {bad.tolist()[:10]} of {X!r}.")
    return a


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


    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # A net resumed from a checkpoint (history loaded at on_train_begin) trains only the
        # epochs left to reach max_epochs; a fresh net has an empty history.
        if epochs is None:
            epochs = max(self.max_epochs - len(self.history), 0)
        return super().fit_loop(X, y, epochs=epochs, **fit_params)


class _AccelerateAENet(AccelerateMixin, _AENet):
    """``_AENet`` trained through Hugging Face Accelerate (skorch's integration)."""


class _RunCheckpoint(Checkpoint):
    """skorch ``Checkpoint`` every ``every`` epochs that a ``_ResumeRun`` can resume exactly.

    Besides skorch's files (weights, optimizer, criterion, history) it saves torch's random
    state (CPU and CUDA), which decides the batch order and dropout of the epochs to come.
    Saves alternate between the subfolders ``a`` and ``b``; ``latest.json`` (written
    atomically once a save is complete) names the complete one and describes the run, so an
    interruption while saving leaves the previous checkpoint usable.
    """

    def __init__(self, root, every, run, **kwargs):
        super().__init__(monitor=None, dirname=os.path.join(root, "a"), event_name=None, **kwargs)
        self.root, self.every, self.run = root, every, run

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        if epoch % self.every == 0 or epoch >= net.max_epochs:
            super().on_epoch_end(net, **kwargs)

    def save_model(self, net):
        latest = _read_latest(self.root)
        slot = "b" if latest and latest["slot"] == "a" else "a"
        self.dirname = os.path.join(self.root, slot)
        os.makedirs(self.dirname, exist_ok=True)
        super().save_model(net)
        torch.save(_rng_state(), os.path.join(self.dirname, "rng.pt"))
        info = {"slot": slot, "epoch": len(net.history), "run": self.run}
        write_text_atomic(os.path.join(self.root, "latest.json"), json.dumps(info, indent=1) + "\n")

    def _save_params(self, f, net, f_name, log_name):
        # skorch only logs a failed save; a checkpoint missing a part must not be marked complete
        net.save_params(**{f_name: f})


class _ResumeRun(LoadInitState):
    """skorch ``LoadInitState`` for a ``_RunCheckpoint``: resume from its latest complete save.

    Refuses a checkpoint of another run; restores torch's random state after the weights,
    optimizer and history, so the epochs that follow are those of an uninterrupted run.
    """

    def __init__(self, checkpoint, estimator_name):
        super().__init__(checkpoint)
        self.estimator_name = estimator_name

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        cp = self.checkpoint
        latest = _read_latest(cp.root)
        if latest is None:
            return
        if latest.get("run") != cp.run:
            saved, now = latest.get("run") or {}, cp.run
            differ = [k for k in sorted(set(saved) | set(now)) if k != "params" and saved.get(k) != now.get(k)]
            sp, np_ = saved.get("params", {}), now["params"]
            differ += [k for k in sorted(set(sp) | set(np_)) if sp.get(k) != np_.get(k)]
            raise ValueError(
                f"{self.estimator_name}: the checkpoint in {cp.root} belongs to another run "
                f"(different {', '.join(differ)}); delete the folder or choose another to start afresh."
            )
        cp.dirname = os.path.join(cp.root, latest["slot"])
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if len(net.history) != latest["epoch"]:
            raise ValueError(f"{self.estimator_name}: the checkpoint in {cp.dirname} is incomplete; delete it.")
        state = torch.load(os.path.join(cp.dirname, "rng.pt"), weights_only=True)
        torch.set_rng_state(state["cpu"])
        if torch.cuda.is_available() and state.get("cuda"):
            torch.cuda.set_rng_state_all(state["cuda"])


def _read_latest(root):
    try:
        with open(os.path.join(root, "latest.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _rng_state():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


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
        "stream_buffer": [Interval(Integral, 1, None, closed="left")],
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "accelerator": [None, HasMethods(["prepare", "backward", "unwrap_model"])],
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

    # -------------------------------------------------------------------- fit
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
        self._validate_params()
        try:
            return self._fit(X, y)
        except BaseException:
            # a failed fit leaves no fitted model (not even one from an earlier fit) behind
            for attr in ("net_", "loc_", "scale_", "offset_", "n_features_in_", "_input_ndim", "_n_features_out"):
                self.__dict__.pop(attr, None)
            raise

    def _fit(self, X, y):
        X, width, hop = self._validate_input(X, reset=True)
        name = type(self).__name__
        stream = isinstance(X, FeatureStore)
        if y is not None:
            mask = normal_mask(y, len(X), name)
            if mask is not None:
                X = X.subset(mask) if stream else X[mask]
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        accelerate = self.accelerator is not None
        device = self.accelerator.device if accelerate else resolve_device(self.device)

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
        net_kwargs = {}
        if stream:
            dataset = _ClipStream(X, width, hop, loc, scale, self.stream_buffer, device)
            net_kwargs.update(iterator_train=_stream_loader, iterator_valid=_stream_loader)
        else:
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
        if self.checkpoint is not None:
            checkpoint = _RunCheckpoint(os.fspath(self.checkpoint), self.checkpoint_every, self._run_id(X, train, seed))
            # after _InitModuleFromData, so that the loaded state replaces what it set
            callbacks.append(("resume", _ResumeRun(checkpoint, name)))
        callbacks += [clone(cb, safe=False) for cb in self.callbacks or []]
        if self.checkpoint is not None:
            callbacks.append(("checkpoint", checkpoint))  # last: saves what the others did

        with torch_seed(seed, device):
            net = self._make_net(
                width,
                X.shape[1],
                None if accelerate else device,
                train_split=_ClipSplit(train, valid) if n_valid else None,
                # a last batch of a single window would break batch normalisation
                iterator_train__drop_last=n_train_windows % self.batch_size == 1,
                callbacks=callbacks,
                **net_kwargs,
            )
            net.fit(dataset, None)
        if accelerate:  # where the module was trained, so that unpickling maps it like a plain net
            net.device = str(device)
        if len(net.history) < self.max_epochs and not _stopped_early(net):
            warnings.warn(
                f"{name}: training was interrupted after epoch {len(net.history)} of {self.max_epochs}; "
                "the model is only partly trained."
                + (" Call fit again to resume from the checkpoint." if self.checkpoint is not None else ""),
                UserWarning,
                stacklevel=3,
            )
        # fitted attributes only once training succeeded
        self.net_, self.loc_, self.scale_ = net, loc, scale
        self._n_features_out = net.module_.embed_dim
        self._set_offset(-self._per_clip(X, width, hop, "window_errors"))
        return self

    def _run_id(self, X, train, seed):
        """What a checkpoint must match to be resumed by this fit (JSON-serialisable)."""
        ignored = {"max_epochs", "callbacks", "verbose", "device", "accelerator", "checkpoint", "checkpoint_every"}
        params = {k: repr(v) for k, v in sorted(self.get_params().items()) if k not in ignored}
        ends = hashlib.sha256(np.ascontiguousarray(X[train[[0, -1]]]).tobytes()).hexdigest()
        return {
            "estimator": type(self).__name__,
            "params": params,
            "shape": [int(n) for n in X.shape],
            "n_train": len(train),
            "seed": seed,
            "first_last_clip_sha256": ends,
        }

    def _make_net(self, width, n_mels, device, **kwargs):
        """The (uninitialised) skorch net for windows ``(width, n_mels)`` on ``device``.

        ``kwargs`` override or add skorch arguments (``train_split``, ``callbacks``, ...).
        A model file is rebuilt by calling this with the fitted geometry, then
        ``initialize()`` and loading the saved weights.
        """
        module, module_params = self._module(width, n_mels)
        params = skorch_params(self, device, criterion=torch.nn.MSELoss, l2=self.l2)
        params.update({f"module__{key}": value for key, value in module_params.items()}, **kwargs)
        if self.accelerator is not None:
            # device=None: the accelerator places the module and the batches; its print
            # would show the epoch table whatever ``verbose`` says
            sink = self.accelerator.print if self.verbose else noop
            params.update(device=None, callbacks__print_log__sink=sink)
            return _AccelerateAENet(module, accelerator=self.accelerator, **params)
        return _AENet(module, **params)

    # ---------------------------------------------------------------- scoring
    def _per_clip(self, X, width, hop, method):
        """Mean over each clip's windows of ``module.<method>(windows)``, as float64.

        Clips are processed in chunks of about ``batch_size`` windows; each chunk is
        unfolded into its windows on the device.
        """
        module = self.net_.module_
        device = next(module.parameters()).device  # also where an accelerator put it
        n_win = _n_windows(X.shape[2], width, hop)
        chunk = max(1, self.batch_size // n_win)
        stream = isinstance(X, FeatureStore)
        module.eval()
        out = None  # filled in place: no per-chunk objects left between the chunks' temporaries
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                part = _read_finite(X, slice(start, start + chunk)) if stream else X[start : start + chunk]
                xb = torch.from_numpy(part).to(device)
                w = xb.unfold(2, width, hop).permute(0, 2, 3, 1).reshape(-1, width, X.shape[1])
                r = getattr(module, method)((w - self.loc_) / self.scale_)
                r = r.reshape(len(xb), n_win, *r.shape[1:]).mean(1).cpu()
                if out is None:
                    out = torch.empty((len(X), *r.shape[1:]), dtype=torch.float64)
                out[start : start + len(xb)] = r
        return out.numpy()

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

    def __sklearn_is_fitted__(self):
        # n_features_in_ is set while validating, before training can still fail
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = self._accepts_2d
        tags.input_tags.three_d_array = True
        return tags


def _stopped_early(net):
    """Whether skorch's EarlyStopping ended training (it stops it with a KeyboardInterrupt)."""
    return any(isinstance(cb, EarlyStopping) and cb.misses_ == cb.patience for _, cb in net.callbacks_)


def _mean_std(X, clips, chunk=64):
    """Mean and standard deviation (float64) of ``X[clips]`` (an array or a FeatureStore) in
    one pass over chunks of clips, without holding all of it."""
    total = squares = 0.0
    for start in range(0, len(clips), chunk):
        part = X[clips[start : start + chunk]].astype(np.float64)
        total += part.sum()
        squares += np.square(part).sum()
    n = len(clips) * X[0].size
    mean = total / n
    return float(mean), float(math.sqrt(max(squares / n - mean**2, 0.0))) or 1.0


def skorch_params(estimator, device, **kwargs):
    """The skorch arguments every skasd net takes from its estimator's parameters.

    Batches come ready-made from the datasets' ``__getitems__`` (``_batch_as_is``); no
    skorch-side validation split (``train_split=None``, callers pass their own).
    ``kwargs`` add or override arguments (``criterion``, ...).
    """
    return dict(
        optimizer=estimator.optimizer,
        lr=estimator.lr,
        max_epochs=estimator.max_epochs,
        batch_size=estimator.batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        iterator_train__collate_fn=_batch_as_is,
        iterator_valid__collate_fn=_batch_as_is,
        device=device,
        verbose=estimator.verbose,
        **kwargs,
    )


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
