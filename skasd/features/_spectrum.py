"""Whole-clip spectra: one fine-resolution, level-normalised log power spectrum per clip."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.signal import spectrogram, welch
from tqdm.auto import tqdm

from ..exceptions import AudioError
from ..utils._sklearn_compat import Interval, StrOptions
from ._audio import _PROGRESS_MIN_FILES, _check_clips, _load_batch
from ._base import ClipTransformer

__all__ = ["SpectrumTransformer"]

# Clips decoded and transformed at once: bounds the memory of a transform (32 clips of 12 s at the
# defaults: 25 MB of audio, ~100 MB of framed FFTs).
_CHUNK = 32


class SpectrumTransformer(ClipTransformer):
    """The whole-clip log power spectrum of each clip, at fine frequency resolution.

    Welch's average of the power spectra of Hann-windowed frames over the whole clip
    (:func:`scipy.signal.welch`, each frame's mean removed), in dB: one row of
    ``n_fft // 2 + 1`` values per clip, ``sr / n_fft`` Hz apart (about 4 Hz at the
    defaults). With ``level="clip"`` (the default) each row has its mean over frequency
    subtracted, so the row is the spectrum's shape and not the clip's overall level.

    This is the feature of skasd's default recipe for DCASE-style data (see the user guide
    and ``benchmarks/README.md``): on the real DCASE 2023 ToyCar section, a k-NN on these
    rows, one model per domain, separates each domain's normal clips from its anomalies at
    AUC .643 (source) and .674 (target), against .592 and .520 on log-mel band statistics.
    Most of the target-domain gain is the level normalisation, which makes the rows
    insensitive to a gain change between recordings (on ToyCar it moves normal test clips
    farther from the training clips than the anomalies are); the fine resolution, which keeps
    the harmonics of a motor or a gear apart, adds the rest in the source domain. Each Welch
    frame's mean is removed first, so a DC offset does not count either. On a single
    recording session (the MIMII fan clips), log-mel statistics with
    :class:`~skasd.MahalanobisDetector` do better (AUC .76 against .62; ``level=None`` .56).

    As for the other transformers, the clips of one call must have one length: set
    ``duration`` for clips of unequal length. Clips are decoded and transformed
    32 at a time, so memory stays bounded. Stateless: ``fit`` only checks the
    parameters.

    Parameters
    ----------
    sr : int, default=16000
        Sample rate the clips are decoded/resampled to.
    n_fft : int, default=4096
        Frame length of the spectra (Hann window); sets the resolution ``sr / n_fft`` Hz.
        Clips shorter than ``n_fft`` samples are analysed as one frame of their length.
    hop_length : int, default=None
        Samples between frames; ``None`` means ``n_fft // 2`` (Welch's 50 % overlap).
    level : {"clip"} or None, default="clip"
        ``"clip"``: subtract each row's mean (the clip's level in dB); ``None``: keep the
        absolute power spectral density in dB.
    duration : float, default=None
        Crop/zero-pad every clip to this many seconds. ``None`` requires clips of equal length.
    n_jobs : int, default=None
        Parallel threads decoding files.
    verbose : bool, default=False
        Progress bar over the clips while computing many files.

    Attributes
    ----------
    This transformer is stateless and sets no fitted attributes.

    See Also
    --------
    LogMelTransformer : the time-frequency features of the autoencoders and embeddings.
    ClipStatsTransformer : level, crest factor, spectral shape and MFCC statistics per clip.
    KNNDetector : the inlier model of the default recipe on these rows.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import SpectrumTransformer
    >>> rng = np.random.default_rng(0)
    >>> hum = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000) + 0.1 * rng.normal(size=16000)
    >>> X = np.stack([hum, 0.1 * hum])
    >>> S = SpectrumTransformer(n_fft=1024).fit_transform(X)
    >>> S.shape  # 513 bins, 15.6 Hz apart
    (2, 513)
    >>> int(S[0].argmax()) * 16000 / 1024  # the peak at 1 kHz
    1000.0
    >>> bool(np.allclose(S[0], S[1], atol=1e-3))  # 20 dB quieter, same shape
    True
    """

    _parameter_constraints = {
        "sr": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 2, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left"), None],
        "level": [StrOptions({"clip"}), None],
        "duration": [Real, None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(self, *, sr=16000, n_fft=4096, hop_length=None, level="clip", duration=None, n_jobs=None,
                 verbose=False):
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.level = level
        self.duration = duration
        self.n_jobs = n_jobs
        self.verbose = verbose

    def _check_params(self):
        self._validate_params()
        hop = self._hop()
        if hop > self.n_fft:
            raise ValueError(f"hop_length={hop} is larger than n_fft={self.n_fft}: frames would skip samples")

    def transform(self, X):
        """Compute the spectrum of every clip.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Clips as files (wav/flac) or waveforms at ``sr`` Hz.

        Returns
        -------
        ndarray of float32, shape (n_clips, n_fft // 2 + 1)
            Power in dB per frequency bin (bin ``i`` at ``i * sr / n_fft`` Hz), less the
            row's mean with ``level="clip"``.
        """
        self._check_params()
        kind, clips = _check_clips(X, finite=False)  # _load_batch checks each chunk
        starts = range(0, len(clips), _CHUNK)
        if self.verbose and kind == "paths" and len(clips) >= _PROGRESS_MIN_FILES:
            starts = tqdm(starts, desc="spectra", unit="chunk", total=len(starts))
        rows, n = [], None
        for i in starts:
            W = self._decode(clips[i : i + _CHUNK], n, i)
            n = W.shape[1]
            rows.append(self._db(welch(W, **self._frame_args(n))[1]))
        return np.concatenate(rows)

    def _hop(self):
        return self.n_fft // 2 if self.hop_length is None else self.hop_length

    def _frame_args(self, n_samples):
        nperseg = min(self.n_fft, n_samples)
        return dict(fs=self.sr, window="hann", nperseg=nperseg, noverlap=nperseg - min(self._hop(), nperseg),
                    nfft=self.n_fft, detrend="constant", axis=-1)

    def _decode(self, clips, n_samples=None, first=0, verbose=False):
        """Decode a chunk of clips (``first``: the index of its first clip) into a float32 array;
        every chunk of one call must have the ``n_samples`` of the first, as one batch would."""
        W = _load_batch(clips, sr=self.sr, duration=self.duration, n_jobs=self.n_jobs, verbose=verbose)
        if n_samples is None:
            if W.shape[1] < self.n_fft:
                warnings.warn(
                    f"clips of {W.shape[1]} samples are shorter than n_fft={self.n_fft}: each is one zero-padded "
                    "frame, so its spectrum is smoother than that of longer clips; lower n_fft for short clips",
                    UserWarning, stacklevel=4,
                )
        elif W.shape[1] != n_samples:
            raise AudioError(
                f"clips differ in length: clips 0-{first - 1} have {n_samples} samples but clips from {first} on "
                f"{W.shape[1]}; pass duration= (seconds) to crop/zero-pad every clip to one length"
            )
        return W

    def _db(self, P):
        """Power spectral densities ``P`` (..., n_bins) as output rows: dB, less their mean with
        ``level="clip"``, float32."""
        S = 10.0 * np.log10(P + np.finfo(np.float32).tiny)
        if self.level == "clip":
            S -= S.mean(axis=-1, keepdims=True)
        return S.astype(np.float32, copy=False)

    def _frame_powers(self, X):
        """The power spectral density of every Welch frame of each clip, for the frame scores of
        :mod:`skasd.inspection`: ``(P, centres, width)``, ``P`` (n_clips, n_bins, n_frames) float64
        (``_db(P.mean(axis=2))`` is :meth:`transform`), ``centres`` each frame's centre and
        ``width`` its length in seconds."""
        self._check_params()
        W = self._decode(X, verbose=self.verbose)
        args = self._frame_args(W.shape[1])
        _, centres, P = spectrogram(W, scaling="density", mode="psd", **args)
        return P.astype(np.float64, copy=False), centres, args["nperseg"] / self.sr

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: ``spectrum_<frequency>Hz``.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        self._check_params()
        hz = np.arange(self.n_fft // 2 + 1) * self.sr / self.n_fft
        return np.asarray([f"spectrum_{f:g}Hz" for f in hz], dtype=object)
