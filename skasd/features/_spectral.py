"""Log-mel and MFCC feature transformers (scikit-learn API), with a librosa and a torch backend.

:class:`LogMelTransformer` and :class:`MFCCTransformer` are siblings on one private base,
``_SpectralTransformer``: decoding, the log-mel computation (either backend), the feature cache
and lazy :class:`~skasd.FeatureStore` output are the base's; each class only finishes the
log-mel (the identity, or the DCT of the MFCCs).
"""

import os
import sys
from functools import lru_cache
from numbers import Integral, Real

import librosa
import numpy as np
from scipy.fft import dct
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from ..utils._sklearn_compat import Interval, StrOptions
from ._audio import _load_batch, _n_samples
from ._base import ClipTransformer
from ._cache import cached_features, fill_cache
from ._stream import FeatureStore, StoreSteps
from ._torch_backend import log_mel_torch

__all__ = ["LogMelTransformer", "MFCCTransformer"]


@lru_cache(maxsize=8)
def _mel_basis(**params):
    """librosa's mel filter matrix (float32), cached: it takes ~1 ms to build. Do not modify."""
    return librosa.filters.mel(**params)


class _SpectralTransformer(ClipTransformer, auto_wrap_output_keys=None):
    """Base of the log-mel feature transformers (not for direct use).

    Subclasses declare their ``__init__`` and implement ``_finish(logmel)`` (their output from
    stacked log-mels) and ``_n_bands_out()``.
    """

    _parameter_constraints = {
        "sr": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 1, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "power": [Interval(Real, 0, None, closed="neither")],
        "fmin": [Real],
        "fmax": [Real, None],
        "center": ["boolean"],
        "pad_mode": [StrOptions({"constant", "reflect"})],
        "duration": [Real, None],
        "backend": [StrOptions({"auto", "librosa", "torch"})],
        "device": "no_validation",  # read by the torch backend (resolve_device)
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "cache": [str, os.PathLike, None],
        "lazy": ["boolean"],
    }

    def _check_params(self):
        """Validate the parameters, alone (``_parameter_constraints``) and together."""
        self._validate_params()
        fmax = self.sr / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= self.sr / 2:
            raise ValueError(
                f"need 0 <= fmin < fmax <= sr/2 = {self.sr / 2:g} Hz, "
                f"got fmin={self.fmin!r}, fmax={self.fmax!r}"
            )
        if self.lazy and self.cache is None:
            raise ValueError("lazy=True reads the features back from the feature cache: set cache=DIR too")

    def _transform(self, X):
        self._check_params()
        if self.cache is None:
            return self._finish(self._log_mel(self._load(X)))
        n = _n_samples(self.duration, self.sr)
        if n is None:
            n_frames = None
        elif self.center:
            n_frames = 1 + n // self.hop_length
        else:
            n_frames = 1 + (n - self.n_fft) // self.hop_length if n >= self.n_fft else None
        args = (self.cache, self._cache_params(), X)
        kwargs = dict(load=self._load, compute=self._log_mel, n_rows=self.n_mels, n_frames=n_frames)
        if self.lazy:
            steps = StoreSteps(clone(self), load="_load", compute="_log_mel", finish="_finish",
                               n_bands=self._n_bands_out())
            return FeatureStore(*fill_cache(*args, **kwargs), steps=steps)
        return self._finish(cached_features(*args, **kwargs))

    def _load(self, X):
        """Decode/validate clips into a float32 ``(n_clips, n_samples)`` array at ``sr``."""
        return _load_batch(X, sr=self.sr, duration=self.duration, n_jobs=self.n_jobs, verbose=self.verbose)

    def _cache_params(self):
        """What the stored log-mel depends on, normalised (``power`` 2 == 2.0, ``fmax`` None == sr/2)."""
        return {
            "features": "logmel",
            "sr": int(self.sr),
            "n_fft": int(self.n_fft),
            "hop_length": int(self.hop_length),
            "n_mels": int(self.n_mels),
            "power": float(self.power),
            "fmin": float(self.fmin),
            "fmax": float(self.sr / 2 if self.fmax is None else self.fmax),
            "center": bool(self.center),
            "pad_mode": self.pad_mode if self.center else None,
            "n_samples": _n_samples(self.duration, self.sr),
        }

    def fit_transform(self, X, y=None):
        """Same as :meth:`transform` (nothing is learned), checking ``X`` only once.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
        y : ignored

        Returns
        -------
        ndarray of float32, shape (n_clips, n_bands, n_frames)
        """
        return self.transform(X)

    def _log_mel(self, W):
        stft_args = dict(
            n_fft=self.n_fft, hop_length=self.hop_length, center=self.center, pad_mode=self.pad_mode
        )
        mel_args = dict(sr=self.sr, n_mels=self.n_mels, fmin=self.fmin, fmax=self.fmax)
        if self.backend == "librosa":
            # One clip per call, so results do not depend on the batch (BLAS blocking would), with
            # single-threaded BLAS: its threads stall when the CPU is shared (64 clips: 2.5 s vs 0.35 s).
            with threadpool_limits(1, user_api="blas"):
                mel = np.stack([
                    librosa.feature.melspectrogram(y=w, power=self.power, **stft_args, **mel_args)
                    for w in W
                ])
            return (20.0 / self.power * np.log10(mel + sys.float_info.epsilon)).astype(np.float32, copy=False)
        return log_mel_torch(
            W,
            mel_basis=_mel_basis(n_fft=self.n_fft, **mel_args),
            window=librosa.filters.get_window("hann", self.n_fft, fftbins=True),
            power=self.power,
            device=self.device,
            **stft_args,
        )


class LogMelTransformer(_SpectralTransformer, auto_wrap_output_keys=None):
    """Log-mel spectrograms of audio clips, the DCASE 2020 baseline's features.

    ``20 / power * log10(mel + sys.float_info.epsilon)`` of the mel power spectrogram
    (10*log10 for ``power=2``), as in the DCASE baseline. Stateless: :meth:`fit` only
    checks the parameters.

    Parameters
    ----------
    sr : int, default=16000
        Sample rate the clips are decoded/resampled to.
    n_fft : int, default=1024
        FFT size (= window length, periodic Hann window).
    hop_length : int, default=512
        Samples between frames.
    n_mels : int, default=128
        Number of mel bands (librosa's Slaney mel scale and normalisation).
    power : float, default=2.0
        Exponent of the magnitude spectrogram (2 = power).
    fmin, fmax : float, default=0.0, None
        Lowest and highest mel filter frequency in Hz (``None`` = ``sr / 2``).
    center : bool, default=True
        Centre frames on their time stamps by padding ``n_fft // 2`` samples at both ends.
    pad_mode : {"constant", "reflect"}, default="constant"
        Padding of centred frames. ``"constant"`` (zeros) is librosa 0.11's default;
        the DCASE 2020 baseline ran an older librosa that padded by reflection. Only the
        frames that overlap the padding differ: ``ceil(n_fft / 2 / hop_length)`` at the start
        and as many at the end (one each by default; up to 23 dB on the shared slider clips).
    duration : float, default=None
        Crop/zero-pad every clip to this many seconds. ``None`` requires clips of equal length.
    backend : {"auto", "librosa", "torch"}, default="auto"
        ``"librosa"`` is the reference: :func:`librosa.feature.melspectrogram` clip by clip.
        ``"torch"`` computes the same with ``torch.fft.rfft`` and the same librosa mel matrix,
        about 4-8x faster on CPU (see ``benchmarks/README.md``). ``"auto"`` = ``"torch"``. Both run
        in float32; their largest difference is 4.6e-5 dB on the 76 shared DCASE slider clips
        and 9.2e-5 dB on the 20 MIMII fan clips (librosa in float32 vs float64 differs by 9e-6 dB).
        Bins more than ~100 dB below their frame's loudest bin (e.g. around a pure synthetic tone)
        are float32 rounding noise in both backends and may differ more.
    device : str, default="auto"
        torch device for ``backend="torch"``: ``"auto"`` = CUDA when available, else CPU.
    n_jobs : int, default=None
        Parallel threads decoding files (joblib; ``None`` = 1, ``-1`` = all cores).
    verbose : bool, default=False
        Show a progress bar while decoding many files.
    cache : str, path-like or None, default=None
        Directory of a per-clip feature cache (created when needed), or None for no cache.
        Each clip's log-mel is computed once, stored, and read back by every later
        ``transform`` with the same feature parameters: across folds, grid-search candidates
        (``clone`` keeps the parameter), processes and runs. See Notes.
    lazy : bool, default=False
        Return a :class:`~skasd.FeatureStore` instead of an array: the clips' features are
        computed into the cache (``cache`` is required) in chunks of 64 clips and read back
        from disk only when indexed, so datasets larger than memory can be transformed. The
        autoencoder detectors train on a store by streaming it (see their ``stream_buffer``).

    Attributes
    ----------
    This transformer is stateless and sets no fitted attributes.

    See Also
    --------
    MFCCTransformer : DCT of these features.
    skasd.load_audio : how files are decoded.

    Notes
    -----
    ``transform`` accepts a list (or pandas Series) of paths, a list of 1-D waveforms or a
    2-D array ``(n_clips, n_samples)`` of waveforms at ``sr`` Hz, and returns a float32 array
    ``(n_clips, n_mels, n_frames)``: a 10 s clip at 16 kHz gives ``(128, 313)``. The output is
    3-D and has no feature columns, so, like other scikit-learn transformers without names,
    there is no ``get_feature_names_out`` and no ``set_output``: ``Pipeline.set_output``
    raises scikit-learn's "set_output is not available" error, and a global
    ``transform_output="pandas"`` leaves the output a numpy array.

    **Feature cache** (``cache=DIR``). One entry (``.npz``) per clip, keyed by

    - the clip: a file's resolved path, size, modification time (ns) and inode, read with one
      ``stat`` (so a rewritten file is recomputed; a copy elsewhere is a new clip), or a
      waveform's float32 samples (SHA-256);
    - what changes the stored log-mel: ``sr, n_fft, hop_length, n_mels, power, fmin, fmax,
      center, pad_mode, duration`` and a format version, in a subfolder per setting with a
      ``params.json``. Not ``backend, device, n_jobs, verbose``: entries computed by one backend
      are reused by the other (they agree to 1e-4 dB). :class:`MFCCTransformer` stores the
      log-mel and applies its DCT after reading, so it shares entries with this class whatever
      its ``n_mfcc``.

    Only the clips without a valid entry are decoded and computed, in one batch, then written
    atomically (temporary file and rename), so parallel workers (``GridSearchCV(n_jobs=...)``,
    joblib processes) never read a partial entry. A truncated, corrupt (the zip CRC-32 is
    checked), foreign or wrong-shape entry is recomputed and overwritten, with one warning
    naming it. The output equals the uncached output exactly. Nothing is kept in memory
    between calls; the cache grows by ``4 * n_mels * n_frames`` bytes per clip and setting
    (160 kB for a 10 s clip with the defaults) and is never pruned: delete the folder to
    clear it. The resampling and silent-clip warnings of files come only when a file is
    decoded, not when its features are read from the cache.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import LogMelTransformer
    >>> X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(3, 16000))  # three 1 s clips
    >>> LogMelTransformer().fit_transform(X).shape
    (3, 128, 32)
    >>> LogMelTransformer(n_mels=64, backend="librosa").fit_transform(X).shape
    (3, 64, 32)

    With a cache, a second transform of the same clips reads them back:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     cached = LogMelTransformer(cache=folder)
    ...     np.array_equal(cached.transform(X), cached.transform(X))
    True
    """

    def __init__(
        self,
        *,
        sr=16000,
        n_fft=1024,
        hop_length=512,
        n_mels=128,
        power=2.0,
        fmin=0.0,
        fmax=None,
        center=True,
        pad_mode="constant",
        duration=None,
        backend="auto",
        device="auto",
        n_jobs=None,
        verbose=False,
        cache=None,
        lazy=False,
    ):
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.power = power
        self.fmin = fmin
        self.fmax = fmax
        self.center = center
        self.pad_mode = pad_mode
        self.duration = duration
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.cache = cache
        self.lazy = lazy

    def transform(self, X):
        """Compute the log-mel spectrogram of every clip.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Clips as files (wav/flac; decoded in parallel, ``n_jobs``) or waveforms at ``sr`` Hz.

        Returns
        -------
        ndarray of float32, shape (n_clips, n_mels, n_frames), or FeatureStore
            A :class:`~skasd.FeatureStore` of that shape with ``lazy=True``.
        """
        return self._transform(X)

    def _finish(self, logmel):
        """This transformer's output from stacked log-mels (the identity here)."""
        return logmel

    def _n_bands_out(self):
        return self.n_mels


class MFCCTransformer(_SpectralTransformer, auto_wrap_output_keys=None):
    """Mel-frequency cepstral coefficients: the orthonormal DCT-II of the log-mel spectrogram.

    Equals ``librosa.feature.mfcc(S=logmel, n_mfcc=n_mfcc)`` applied to the output of
    :class:`LogMelTransformer` with the same parameters (either backend).

    Parameters
    ----------
    n_mfcc : int, default=20
        Number of coefficients kept (at most ``n_mels``).
    **params
        ``sr, n_fft, hop_length, n_mels, power, fmin, fmax, center, pad_mode, duration,
        backend, device, n_jobs, verbose, cache, lazy``: as in :class:`LogMelTransformer`. The
        cache stores the log-mel (shared with :class:`LogMelTransformer`); the DCT is applied
        after reading (also by a lazy :class:`~skasd.FeatureStore`).

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import MFCCTransformer
    >>> X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(2, 16000))
    >>> MFCCTransformer(n_mfcc=13).fit_transform(X).shape
    (2, 13, 32)
    """

    _parameter_constraints = {
        **_SpectralTransformer._parameter_constraints,
        "n_mfcc": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_mfcc=20,
        *,
        sr=16000,
        n_fft=1024,
        hop_length=512,
        n_mels=128,
        power=2.0,
        fmin=0.0,
        fmax=None,
        center=True,
        pad_mode="constant",
        duration=None,
        backend="auto",
        device="auto",
        n_jobs=None,
        verbose=False,
        cache=None,
        lazy=False,
    ):
        self.n_mfcc = n_mfcc
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.power = power
        self.fmin = fmin
        self.fmax = fmax
        self.center = center
        self.pad_mode = pad_mode
        self.duration = duration
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.cache = cache
        self.lazy = lazy

    def _check_params(self):
        super()._check_params()
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc={self.n_mfcc} exceeds n_mels={self.n_mels}")

    def transform(self, X):
        """Compute the MFCCs of every clip.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)

        Returns
        -------
        ndarray of float32, shape (n_clips, n_mfcc, n_frames), or FeatureStore
            A :class:`~skasd.FeatureStore` of that shape with ``lazy=True``.
        """
        return self._transform(X)

    def _finish(self, logmel):
        return np.ascontiguousarray(dct(logmel, type=2, norm="ortho", axis=1)[:, : self.n_mfcc])

    def _n_bands_out(self):
        return self.n_mfcc
