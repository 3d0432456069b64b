"""PretrainedEmbedding: one row per clip from a frozen pretrained audio encoder, pooled over time
(or its per-step embeddings unpooled, in memory or as a FeatureStore streamed from the feature cache)."""

import os
import sys
import warnings
from numbers import Integral, Real

import librosa
import numpy as np
from tqdm.auto import tqdm

from sklearn.base import clone

from ..exceptions import AudioError
from ..utils._sklearn_compat import Interval
from ._audio import _PROGRESS_MIN_FILES, _check_clips, _load_batch
from ._base import ClipTransformer
from ._cache import cached_features, fill_cache
from ._encoders import load_encoder, module_encoder
from ._stream import FeatureStore, StoreSteps
from ._weights import weights_file

__all__ = ["PretrainedEmbedding", "load_waveforms"]

# Clips decoded and embedded at once: bounds memory (32 clips of 12 s at 44.1 kHz: 68 MB of audio).
_CHUNK = 32
_STATS = {"mean": np.mean, "std": np.std, "max": np.max}


def load_waveforms(clips, sample_rate, min_samples, *, sr, duration=None, n_jobs=None, stacklevel=2):
    """Clips (paths decoded at ``sample_rate``; waveforms at ``sr`` Hz resampled to it) as float32
    ``(n_clips, n_samples)``, zero-padded with a warning to ``min_samples`` (an encoder's window).
    Shared by :class:`PretrainedEmbedding` and ``ClassifierEmbedding(backbone=...)``."""
    if len(clips) and isinstance(clips[0], (str, os.PathLike)):
        W = _load_batch(clips, sr=sample_rate, duration=duration, n_jobs=n_jobs, warn_resampled=False)
    else:
        W = _load_batch(clips, sr=sr, duration=duration)
        if sr != sample_rate:
            W = librosa.resample(W, orig_sr=sr, target_sr=sample_rate, axis=-1).astype(np.float32)
    if W.shape[1] < min_samples:
        warnings.warn(
            f"clips of {W.shape[1]} samples ({W.shape[1] / sample_rate:.3g} s at {sample_rate} Hz) are "
            f"shorter than the encoder's window of {min_samples} samples "
            f"({min_samples / sample_rate:.3g} s): zero-padded to it",
            UserWarning, stacklevel=stacklevel,
        )
        W = np.pad(W, [(0, 0), (0, min_samples - W.shape[1])])
    return W


def _is_module(model):
    if "torch" not in sys.modules:
        return False
    import torch

    return isinstance(model, torch.nn.Module)


class PretrainedEmbedding(ClipTransformer, auto_wrap_output_keys=None):
    """One row per clip from a frozen pretrained audio encoder, pooled over time.

    The encoder embeds each clip as a sequence (of 2.3 s blocks for aisfx, of output frames or
    tokens for transformers models); the row is statistics of that sequence over time
    (``pooling``), at the chosen ``layer``. Nothing is trained: ``fit`` loads and checks the
    encoder and records the digest of its weights.

    Parameters
    ----------
    model : "aisfx", str, path-like or torch.nn.Module, default="aisfx"
        - ``"aisfx"``: skasd's implementation of the sound-effects CNN of A. B. Ma and A. Lerch,
          "Representation Learning for the Automatic Indexing of Sound Effects Libraries",
          ISMIR 2022 (weights CC BY 4.0), with its own input pipeline (44.1 kHz, peak-normalised
          96-band log-mel, blocks of 2.3 s hopped by half a block). It reads the published
          checkpoint from ``weights``.
        - a Hugging Face ``transformers`` audio encoder, by model id or local directory (AST,
          wav2vec2, HuBERT, WavLM, CLAP's audio tower, Whisper's encoder): its own feature
          extractor and sample rate are used. Needs ``pip install skasd[pretrained]``. Without
          network it loads from the local directory or the Hugging Face cache only.
        - a ``torch.nn.Module`` (for encoders shipped as code plus a state dict, such as BEATs
          or EAT): ``module(waveforms)`` takes a float32 tensor ``(batch, n_samples)`` and returns
          ``(batch, n_steps, n_dims)``, ``(batch, n_dims)`` or a tuple/list of such tensors (one
          per layer, picked by ``layer``). The waveforms are at the module's ``sample_rate``
          attribute when it has one (else ``sr``); clips shorter than its ``min_samples``
          attribute (if any) are zero-padded. The module is put in eval mode while embedding
          and moved to ``device``. Such a pipeline cannot be saved with :func:`skasd.save`.
    weights : str, path-like or None, default=None
        For ``model="aisfx"``: the published ``checkpoint.pth`` (or the safetensors file that
        ``skasd weights fetch aisfx`` writes); None reads it from the user's skasd cache
        (``$SKASD_CACHE``, else ``~/.cache/skasd``). Its SHA-256 and layer shapes are checked.
    layer : int or None, default=None
        Which layer's output: for aisfx the conv block 1-4 (64, 128, 256 or 512 values; None
        is 4); for transformers an index into the hidden states (0 the input embeddings, -1 the
        last; None the last hidden state); for a module returning a tuple/list, its index.
    pooling : str or None, default="mean+std"
        Statistics over time, joined by ``+``, concatenated in that order: any of ``"mean"``,
        ``"std"``, ``"max"``. ``None`` returns the embeddings of every time step unpooled, float32
        ``(n_clips, n_dims, n_steps)`` (aisfx: one step per 2.3 s block, hopped by half a block),
        the input of a sequence model such as :class:`DenseAE`, which takes
        ``(n_clips, n_bands, n_frames)``: ``make_pipeline(PretrainedEmbedding(pooling=None),
        DenseAE(frames=1))``. Clips must then give equally many steps (``duration``).
    sr : int, default=16000
        Sample rate of waveforms given in memory; they are resampled to the encoder's rate.
        Files are decoded directly at the encoder's rate.
    duration : float, default=None
        Crop/zero-pad every clip to this many seconds. ``None`` requires clips of equal length
        within each chunk of 32 clips.
    batch_size : int, default=32
        Encoder inputs per forward pass: 2.3 s blocks for aisfx, clips for the others.
    device : str, default="auto"
        torch device: ``"auto"`` is CUDA when available, else the CPU.
    cache : str, path-like or None, default=None
        Directory of the per-clip feature cache: each clip's sequence of embeddings at
        ``layer`` is stored (keyed by the weights' digest), so a second transform, another
        ``pooling`` or another fold reads it back instead of running the encoder.
    lazy : bool, default=False
        With ``cache`` and ``pooling=None``: return a :class:`~skasd.FeatureStore` of the
        unpooled embeddings instead of an array. They are computed into the cache 32 clips at a
        time and read back from disk only when indexed, so the autoencoder detectors train on
        more clips than fit in memory (see their ``stream_buffer``).
    n_jobs : int, default=None
        Parallel threads decoding files.
    verbose : bool, default=False
        Progress bar over the chunks of clips while embedding many files.

    Attributes
    ----------
    weights_sha256_ : str or None
        Digest of the encoder's weights (SHA-256 of its tensors), None for a ``torch.nn.Module``.
        A fitted embedding refuses other weights at transform time, so a model file loaded
        elsewhere embeds with exactly the weights it was fitted with.
    sample_rate_ : int
        The encoder's sample rate.

    See Also
    --------
    SpectrumTransformer : the whole-clip spectra of the default recipe.
    ClassifierEmbedding : an embedding trained on the machine's own clips.
    KNNDetector : a k-NN detector on these rows.

    Notes
    -----
    Clips shorter than the encoder's window (2.3 s for aisfx) are zero-padded, with a warning.
    A model file (:func:`skasd.save`) stores the ``weights`` path or model name and the
    digest, not the weights: loading it reads them again and refuses others. On another
    machine, fetch them (``skasd weights fetch aisfx``) and set ``weights=None``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from skasd import PretrainedEmbedding
    >>> encoder = torch.nn.Sequential(torch.nn.Unflatten(1, (-1, 100)), torch.nn.Linear(100, 8))
    >>> X = np.random.default_rng(0).normal(size=(3, 16000)).astype("float32")
    >>> E = PretrainedEmbedding(model=encoder, pooling="mean+max").fit_transform(X)
    >>> E.shape  # 160 steps of 8 values, their mean and max
    (3, 16)
    """

    _parameter_constraints = {
        "model": "no_validation",  # checked in _check_params (a torch.nn.Module without importing torch)
        "weights": [str, os.PathLike, None],
        "layer": [Integral, None],
        "pooling": [str, None],
        "sr": [Interval(Integral, 1, None, closed="left")],
        "duration": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": "no_validation",  # read by resolve_device
        "cache": [str, os.PathLike, None],
        "lazy": ["boolean"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(self, model="aisfx", *, weights=None, layer=None, pooling="mean+std", sr=16000, duration=None,
                 batch_size=32, device="auto", cache=None, lazy=False, n_jobs=None, verbose=False):
        self.model = model
        self.weights = weights
        self.layer = layer
        self.pooling = pooling
        self.sr = sr
        self.duration = duration
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
        self.lazy = lazy
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        self._validate_params()
        if not isinstance(self.model, (str, os.PathLike)) and not _is_module(self.model):
            raise TypeError(
                f"model must be 'aisfx', a transformers model id or directory, or a torch.nn.Module; "
                f"got a {type(self.model).__name__}"
            )
        stats = [] if self.pooling is None else self.pooling.split("+")
        if not all(s in _STATS for s in stats) or len(set(stats)) != len(stats):
            raise ValueError(f"pooling={self.pooling!r}: join distinct statistics among 'mean', 'std', 'max' "
                             "with '+', e.g. 'mean+std', or pass None for the unpooled steps")
        if self.cache is not None and _is_module(self.model):
            raise ValueError("cache= needs a named encoder ('aisfx' or a transformers model) whose weights "
                             "identify the features; a torch.nn.Module has none")
        if self.lazy and self.cache is None:
            raise ValueError("lazy=True reads the embeddings back from the feature cache: set cache=DIR too")
        if self.lazy and self.pooling is not None:
            raise ValueError(f"lazy=True streams the unpooled embeddings of every time step: set pooling=None "
                             f"(not {self.pooling!r}), or lazy=False for pooled rows in memory")

    def _encoder(self):
        if _is_module(self.model):
            if self.weights is not None:
                raise ValueError("weights= is for model='aisfx'; a torch.nn.Module holds its own weights")
            enc = module_encoder(self.model, self.sr)
        else:
            weights = self.weights
            if (self.model == "aisfx" and weights is not None and not os.path.isfile(weights)
                    and getattr(self, "weights_sha256_", None) is not None and os.path.isfile(weights_file("aisfx"))):
                # a fitted model moved to another machine: the weights it was fitted with, by their
                # digest (checked in transform), from the user's cache instead of the path it recorded
                warnings.warn(f"no aisfx weights file at {weights}: using those of the skasd cache "
                              f"({weights_file('aisfx')}), checked against the fitted weights' digest",
                              UserWarning, stacklevel=3)
                weights = None
            enc = load_encoder(self.model, weights)
        enc.check_layer(self.layer)
        return enc

    def _device(self):
        from ..utils._torch_compat import resolve_device

        return resolve_device(self.device)

    # ------------------------------------------------------------------ API
    def fit(self, X, y=None):
        """Load and check the encoder (its weights, the layer) and the form of ``X``.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Checked for its form; files are not read.
        y : ignored

        Returns
        -------
        self : object
            The transformer.
        """
        super().fit(X, y)  # the parameters and the form of X
        enc = self._encoder()
        self.weights_sha256_ = enc.digest
        self.sample_rate_ = enc.sample_rate
        return self

    def transform(self, X):
        """Embed every clip.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Clips as files (decoded at the encoder's sample rate) or waveforms at ``sr`` Hz.

        Returns
        -------
        ndarray of float32, shape (n_clips, n_stats * n_dims), or (n_clips, n_dims, n_steps), or FeatureStore
            The pooled embeddings, the statistics of ``pooling`` side by side; with
            ``pooling=None`` the embeddings of every time step, as a :class:`~skasd.FeatureStore`
            with ``lazy=True``.
        """
        self._check_params()
        enc = self._checked_encoder()
        device = self._device()
        if self.lazy:
            # the store's copy is pinned to these weights: a recomputed entry must match its cache key
            owner = clone(self)
            owner.weights_sha256_ = enc.digest
            steps = StoreSteps(owner, load="_load_clips", compute="_embed_waves")
            return FeatureStore(*fill_cache(self.cache, self._cache_params(enc), X,
                                            load=lambda c: self._load(enc, c),
                                            compute=lambda W: self._embed(enc, W, device),
                                            n_rows=self._n_dims(enc), chunk=_CHUNK), steps=steps)
        kind, clips = _check_clips(X, finite=False)
        starts = range(0, len(clips), _CHUNK)
        if self.verbose and kind == "paths" and len(clips) >= _PROGRESS_MIN_FILES:
            starts = tqdm(starts, desc="embedding", unit="chunk", total=len(starts))
        rows = []
        for i in starts:
            rows.append(self._pooled_chunk(enc, clips[i : i + _CHUNK], device))
            if rows[-1].ndim == 3 and rows[-1].shape[2] != rows[0].shape[2]:
                raise AudioError(
                    f"clips differ in length: clip {i} and the clips after it give {rows[-1].shape[2]} time steps, "
                    f"earlier clips {rows[0].shape[2]}; pass duration= (seconds) to crop/zero-pad every clip "
                    "to one length, or pool them (pooling='mean+std')"
                )
        return np.concatenate(rows)

    def _pooled_chunk(self, enc, chunk, device):
        """``_pool`` of the chunk's embeddings. Pooled rows do not depend on a clip's length, so a
        chunk of clips of several lengths (``duration=None``) is embedded one clip at a time,
        whatever the order of the clips; without pooling it raises, naming the clips."""
        try:
            return self._pool(self._steps(enc, chunk, device))
        except AudioError as exc:
            if self.pooling is None or self.duration is not None or not str(exc).startswith("clips differ in length"):
                raise
        return np.concatenate([self._pool(self._steps(enc, chunk[j : j + 1], device)) for j in range(len(chunk))])

    def _checked_encoder(self):
        """The encoder, refused when its weights are not those this embedding was fitted with."""
        enc = self._encoder()
        fitted = getattr(self, "weights_sha256_", None)
        if fitted is not None and enc.digest != fitted:
            raise ValueError(
                f"the weights of {self.weights or self.model} (digest {enc.digest}) are not those this "
                f"PretrainedEmbedding was fitted with ({fitted}): refusing to embed with other weights"
            )
        return enc

    # ------------------------------------------------------------------ steps
    def _load(self, enc, clips):
        """Decode/resample ``clips`` to the encoder's rate, padding clips shorter than its window."""
        return load_waveforms(clips, enc.sample_rate, enc.min_samples, sr=self.sr, duration=self.duration,
                              n_jobs=self.n_jobs, stacklevel=6)

    def _embed(self, enc, W, device):
        """The embeddings of every time step of waveforms ``W``: float32 (n_clips, n_dims, n_steps)."""
        E = enc.embed(W, self.layer, device, self.batch_size).astype(np.float32, copy=False)
        if E.shape[2] == 0:
            raise ValueError(f"the encoder returned no time steps for clips of {W.shape[1]} samples: give the "
                             "module a min_samples attribute (clips shorter than it are zero-padded)")
        return E

    def _steps(self, enc, clips, device):
        """The embeddings of every time step of ``clips``: float32 (n_clips, n_dims, n_steps)."""
        if self.cache is None:
            return self._embed(enc, self._load(enc, clips), device)
        return cached_features(self.cache, self._cache_params(enc), clips, load=lambda c: self._load(enc, c),
                               compute=lambda W: self._embed(enc, W, device), n_rows=self._n_dims(enc))

    def _cache_params(self, enc):
        """What the stored steps depend on (not ``pooling``: every pooling reads the same entries)."""
        return {"features": "pretrained", "encoder": enc.name, "weights": enc.digest, "layer": self.layer,
                "sr": self.sr, "duration": self.duration}

    def _n_dims(self, enc):
        return enc.n_dims(self.layer) if hasattr(enc, "n_dims") else None

    # the steps of a lazy FeatureStore (on its copy of this embedding): recompute a lost entry
    def _load_clips(self, clips):
        return self._load(self._checked_encoder(), clips)

    def _embed_waves(self, W):
        return self._embed(self._checked_encoder(), W, self._device())

    def _pool(self, E):
        if self.pooling is None:
            return E
        return np.concatenate([_STATS[s](E, axis=2) for s in self.pooling.split("+")], axis=1).astype(np.float32)

    def _unstorable(self):
        """Why a model file cannot store this estimator (read by :mod:`skasd.io`), or None."""
        if _is_module(self.model):
            return (f"PretrainedEmbedding(model=<{type(self.model).__module__}.{type(self.model).__qualname__}>) "
                    "holds a torch.nn.Module, i.e. code: the skasd model format stores weights, not code. Save the "
                    "module's state_dict and rebuild it, or use joblib.dump for a file you only load where you "
                    "trust it")
        return None
