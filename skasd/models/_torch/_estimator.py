"""The one skorch estimator base of skasd: what the autoencoders and ClassifierEmbedding share.

:class:`BaseTorchEstimator` holds the training parameters and their constraints, seeding
(without touching torch's global random state), the clip-level validation split, the skorch
training loop and its callbacks (early stopping, progress bar, checkpoint/resume, Hugging Face
Accelerate), streaming a :class:`~skasd.FeatureStore` from disk, the clean-up of a failed fit,
and chunked inference. A subclass says what it trains on and how the net is built:

- ``_make_net(device, **geometry_and_skorch_args)`` builds the uninitialised net with
  :meth:`BaseTorchEstimator._build_net`; ``_net_args()`` names the geometry of the fitted
  model, so that a model file rebuilds the net with ``_make_net(device=..., **_net_args())``
  (after restoring the fitted attributes) and loads the saved weights;
- ``fit`` validates the input and calls :meth:`BaseTorchEstimator._train` with a dataset
  factory (``_datasets``) and its net factory;
- inference runs :meth:`BaseTorchEstimator._map_clips` with a function of a chunk of clips.

``PARAMETER_DOCS`` holds the docstring text of the shared parameters (filled in with
:class:`~skasd.utils._docstring.Substitution`).
"""

import contextlib
import hashlib
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from skorch.callbacks import EarlyStopping, ProgressBar
from skorch.utils import noop

from ...features._stream import FeatureStore
from ...utils._sklearn_compat import HasMethods, Interval
from ...utils._torch_compat import resolve_device
from ._callbacks import _RaiseOnNonFiniteLoss, _ResumeRun, _RunCheckpoint, _stopped_early
from ._datasets import _ClipSplit, _mean_std, _read_finite, _stream_loader
from ._nets import skorch_params

__all__ = ["BaseTorchEstimator", "PARAMETER_DOCS", "torch_seed"]

# Docstring text of the shared parameters; ``{...}`` are filled per estimator: ``item`` the
# training item ("window", "crop"), ``same_run`` what else a resumed run must share.
PARAMETER_DOCS = {
    "optimizer": """\
optimizer : torch optimizer class, default=torch.optim.Adam
    Called with the module parameters and ``lr``.""",
    "validation_fraction": """\
validation_fraction : float in [0, 1), default={validation_fraction}
    Fraction of the clips (whole clips, never {item}s of one clip on both sides) held
    out to compute ``valid_loss`` each epoch. ``0``, or fewer than one clip, trains
    without validation.""",
    "early_stopping": """\
early_stopping : int or None, default=None
    Patience in epochs: stop when the validation loss (the training loss when there is
    no validation set) has not improved for that many epochs, and restore the best
    weights.""",
    "callbacks": """\
callbacks : list of skorch callbacks or None, default=None
    Extra skorch callbacks (``LRScheduler``, ...), cloned at fit.""",
    "stream_buffer": """\
stream_buffer : int, default=256
    Clips read at a time when ``X`` is a :class:`~skasd.FeatureStore` (e.g. from
    ``LogMelTransformer(cache=DIR, lazy=True)``): each epoch reads the training clips in a
    new random order, this many at a time (the next buffer while one trains: two in memory,
    41 MB each for 10 s clips), and shuffles the {item}s within each buffer.
    When all training clips fit in one buffer, training equals training on the array (same
    seed, same {result}); arrays ignore it.""",
    "checkpoint": """\
checkpoint : str, path-like or None, default=None
    Folder for resumable training: the net's weights, optimizer state, history and torch's
    random state are saved there every ``checkpoint_every`` epochs (skorch ``Checkpoint``;
    written into alternating subfolders, then ``latest.json`` is replaced atomically). A
    ``fit`` that finds a checkpoint of the same run (same class, parameters other than
    ``max_epochs``, ``callbacks``, ``verbose``, ``device``, ``accelerator`` and the
    checkpoint ones, {same_run}) resumes after its last epoch
    and gives the model an uninterrupted run would (CPU: within 1e-6 relative); one of
    another run is an error. Early stopping's patience count and the state of extra
    callbacks restart at resume. Meant for one long fit, not for a search over clones.""",
    "checkpoint_every": """\
checkpoint_every : int, default=1
    Epochs between checkpoints (the last epoch is always saved).""",
    "accelerator": """\
accelerator : accelerate.Accelerator or None, default=None
    Train through Hugging Face Accelerate (skorch's ``AccelerateMixin``; ``device`` is then
    ignored and the accelerator places the model and batches). Multi-GPU data-parallel
    training: build ``Accelerator()`` in a script and run it with ``accelerate launch
    script.py``; each process fits on the same data and the gradients are averaged. Scoring
    runs in each process on the accelerator's device. Mixed precision is the accelerator's
    too: ``Accelerator(mixed_precision="bf16")`` (also on the CPU) or ``"fp16"`` (CUDA,
    with loss scaling) autocasts the forward pass and keeps float32 weights.""",
    "verbose": """\
verbose : int, default=0
    0 silent, 1 one line per epoch (skorch's table), 2 also a progress bar.""",
}


def parameter_docs(*names, **fields):
    """The docs of the shared parameters ``names``, in order, with ``fields`` filled in."""
    return "\n".join(PARAMETER_DOCS[name].format(**fields) for name in names)


@contextlib.contextmanager
def torch_seed(seed, device):
    """Seed torch (CPU and ``device``'s CUDA generator) inside the block, restoring the
    global random state afterwards, so that fitting never disturbs the user's RNG."""
    dev = torch.device(device)
    cuda_rngs = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_rngs):
        torch.manual_seed(seed)
        yield


class BaseTorchEstimator(BaseEstimator):
    """Base of the skasd estimators trained as a skorch net (not for direct use).

    Subclasses implement ``_make_net`` (with :meth:`_build_net`) and ``fit`` (with
    :meth:`_train`), may override ``_net_args``, and list in ``_fitted_attributes`` what a
    failed fit must not leave behind.
    """

    _parameter_constraints = {
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [callable],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "early_stopping": [Interval(Integral, 1, None, closed="left"), None],
        "callbacks": [list, None],
        "stream_buffer": [Interval(Integral, 1, None, closed="left")],
        "checkpoint": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left")],
        "accelerator": [None, HasMethods(["prepare", "backward", "unwrap_model"])],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    # Removed when fit fails: a failed fit leaves no fitted model (not even one from an earlier fit).
    _fitted_attributes = ("net_", "loc_", "scale_", "n_features_in_", "_n_features_out", "_input_ndim")

    def _net_args(self):
        """Keyword arguments of ``_make_net`` (besides ``device``) for the fitted geometry; the
        model file stores them. Empty where ``_make_net`` reads the fitted attributes."""
        return {}

    def _build_net(self, net_cls, module, module_params, device, **kwargs):
        """The uninitialised skorch net ``net_cls`` of ``module(**module_params)`` on ``device``.

        The skorch arguments come from the estimator's parameters (:func:`skorch_params`);
        ``kwargs`` override or add them (``criterion``, ``train_split``, ``callbacks``, ...).
        With an ``accelerator`` the net is ``net_cls.accelerated``, placed by the accelerator.
        """
        params = skorch_params(self, device)
        params.update({f"module__{key}": value for key, value in module_params.items()}, **kwargs)
        if self.accelerator is not None:
            # device=None: the accelerator places the module and the batches; its print
            # would show the epoch table whatever ``verbose`` says
            sink = self.accelerator.print if self.verbose else noop
            params.update(device=None, callbacks__print_log__sink=sink)
            return net_cls.accelerated(module, accelerator=self.accelerator, **params)
        return net_cls(module, **params)

    # -------------------------------------------------------------------- fit
    def _fit_or_clean(self, fit, *args):
        """``fit(*args)`` after validating the parameters; on failure, drop the fitted attributes."""
        self._validate_params()
        try:
            return fit(*args)
        except BaseException:
            for attr in self._fitted_attributes:
                self.__dict__.pop(attr, None)
            raise

    def _train(self, X, make_dataset, make_net, *, items_per_clip, item, standardize, callbacks=(), run=None):
        """Train a net on the clips ``X`` (an array or a FeatureStore); ``(net, loc, scale)``.

        ``make_dataset(loc, scale, device)`` gives the training dataset of all clips of ``X``
        (``subset(clips)`` selects some: the clip-level validation split), a stream for a
        FeatureStore; ``make_net(device, **skorch_args)`` the uninitialised net. Each clip
        gives ``items_per_clip`` training ``item``s. ``standardize``: scalar ``loc, scale`` of
        the training clips, else ``0, 1``. ``callbacks`` come first (before the shared ones);
        ``run`` adds to what a resumed checkpoint must match.
        """
        name = type(self).__name__
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        accelerate = self.accelerator is not None
        device = self.accelerator.device if accelerate else str(resolve_device(self.device))

        # Clip-level split: all items of a clip fall on the same side.
        n_valid = int(self.validation_fraction * len(X))
        order = rng.permutation(len(X))
        train, valid = np.sort(order[n_valid:]), np.sort(order[:n_valid])
        n_train_items = len(train) * items_per_clip
        if n_train_items < 2:
            raise ValueError(
                f"{name} needs at least 2 training {item}s; got n_samples = {len(X)} "
                f"with {n_valid} held out for validation."
            )
        loc, scale = _mean_std(X, train) if standardize else (0.0, 1.0)
        dataset = make_dataset(loc, scale, device)
        loaders = {}
        if isinstance(X, FeatureStore):
            loaders = dict(iterator_train=_stream_loader, iterator_valid=_stream_loader)
        callbacks = [*callbacks, ("nonfinite_loss", _RaiseOnNonFiniteLoss(name))]
        if self.early_stopping is not None:
            monitor = "valid_loss" if n_valid else "train_loss"
            callbacks.append(
                ("early_stopping", EarlyStopping(monitor, patience=self.early_stopping, load_best=True))
            )
        if self.verbose and self.verbose > 1:
            callbacks.append(("progress_bar", ProgressBar()))
        if self.checkpoint is not None:
            run_id = {**self._run_id(X, train, seed), **(run or {})}
            checkpoint = _RunCheckpoint(os.fspath(self.checkpoint), self.checkpoint_every, run_id)
            # after the subclass's callbacks, so that the loaded state replaces what they set
            callbacks.append(("resume", _ResumeRun(checkpoint, name)))
        callbacks += [clone(cb, safe=False) for cb in self.callbacks or []]
        if self.checkpoint is not None:
            callbacks.append(("checkpoint", checkpoint))  # last: saves what the others did

        with torch_seed(seed, device):
            net = make_net(
                None if accelerate else device,
                train_split=_ClipSplit(train, valid) if n_valid else None,
                # a last batch of a single item would break batch normalisation
                iterator_train__drop_last=n_train_items % self.batch_size == 1,
                callbacks=callbacks,
                **loaders,
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
                stacklevel=5,  # _train, _fit, _fit_or_clean, fit: the user's call
            )
        return net, loc, scale

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

    # -------------------------------------------------------------- inference
    def _map_clips(self, X, items_per_clip, fn):
        """``fn(chunk)`` for chunks of the clips ``X``, stacked as a float64 array.

        On the CPU a chunk is one clip of several items, so that a clip's output does not
        depend on the clips scored with it: a float32 matmul of ``k`` clips' items rounds
        differently from one of ``j``, depending on the MKL kernel (a DenseAE scoring 12 clips
        one at a time and all at once disagreed by 1e-7 relative under AVX2). Rows of 2-D input
        (one item each) and all clips elsewhere go in chunks of about ``batch_size`` items
        (``items_per_clip`` per clip), as GPUs want: a forward pass per row would cost 75x, so
        such rows may round differently in another chunk. A chunk is a float32 tensor on the
        device of the module (also where an accelerator put it), read chunk by chunk from a
        FeatureStore. ``fn`` runs in eval mode without gradients and returns one row per clip.
        """
        module = self.net_.module_
        device = next(module.parameters()).device
        one_clip = device.type == "cpu" and items_per_clip > 1
        chunk = 1 if one_clip else max(1, self.batch_size // items_per_clip)
        stream = isinstance(X, FeatureStore)
        module.eval()
        out = None  # filled in place: no per-chunk objects left between the chunks' temporaries
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                part = _read_finite(X, slice(start, start + chunk)) if stream else X[start : start + chunk]
                r = fn(torch.from_numpy(part).to(device)).cpu()
                if out is None:
                    out = torch.empty((len(X), *r.shape[1:]), dtype=torch.float64)
                out[start : start + len(part)] = r
        return out.numpy()

    def __sklearn_is_fitted__(self):
        # n_features_in_ is set while validating, before training can still fail
        return hasattr(self, "net_")
