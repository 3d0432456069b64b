"""Clip-level summary features: level, crest factor, spectral shape and MFCC statistics."""

from functools import partial
from numbers import Integral, Real

import librosa
import numpy as np

from ..utils._sklearn_compat import Interval
from ._audio import _load_batch
from ._base import ClipTransformer

__all__ = ["ClipStatsTransformer"]

_LEVEL = ("peak", "rms", "crest_factor", "spectral_centroid", "spectral_flatness")


class ClipStatsTransformer(ClipTransformer):
    """One row of summary statistics per clip: level, crest factor, spectral shape, MFCCs.

    Columns, in order (``get_feature_names_out``):

    - ``peak``: largest absolute sample value;
    - ``rms``: root mean square of the samples;
    - ``crest_factor``: ``peak / rms`` (0 for a silent clip);
    - ``spectral_centroid``: mean over frames of :func:`librosa.feature.spectral_centroid` (Hz);
    - ``spectral_flatness``: mean over frames of :func:`librosa.feature.spectral_flatness`;
    - ``mfcc_mean0 .. mfcc_mean{n_mfcc-1}`` and ``mfcc_std0 ..``: mean and standard deviation
      over frames of :func:`librosa.feature.mfcc` (on the dB mel power spectrogram).

    Computed in float64 (decoded audio is float32), clip by clip in batches of 16.

    The loudness columns are what ranks the one anomaly of the shared DCASE slider clips
    first; the columns live on very different scales, so put a
    :class:`~sklearn.preprocessing.StandardScaler` before a distance-based detector
    (:class:`~skasd.MahalanobisDetector` needs none). Stateless: ``fit`` only
    checks the parameters.

    Parameters
    ----------
    sr : int, default=16000
        Sample rate the clips are decoded/resampled to.
    n_fft : int, default=1024
        FFT size of the spectral features (Hann window, centred frames, zero padding).
    hop_length : int, default=512
        Samples between frames.
    n_mels : int, default=128
        Mel bands behind the MFCCs.
    n_mfcc : int, default=20
        Number of MFCCs (0 for none).
    duration : float, default=None
        Crop/zero-pad every clip to this many seconds. ``None`` requires clips of equal length.
    n_jobs : int, default=None
        Parallel threads decoding files.
    verbose : bool, default=False
        Progress bar while decoding many files.

    Attributes
    ----------
    This transformer is stateless and sets no fitted attributes.

    See Also
    --------
    LogMelTransformer : the time-frequency features of the autoencoders.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import ClipStatsTransformer
    >>> t = np.arange(16000) / 16000
    >>> X = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1000 * t)])
    >>> stats = ClipStatsTransformer(n_mfcc=2).fit_transform(X)
    >>> stats.shape
    (2, 9)
    >>> stats[:, :3].round(3)  # peak, rms and crest factor sqrt(2) of a sine
    array([[0.5  , 0.354, 1.414],
           [0.1  , 0.071, 1.414]])
    """

    _output_dtype = "float64"
    _parameter_constraints = {
        "sr": [Interval(Integral, 1, None, closed="left")],
        "n_fft": [Interval(Integral, 1, None, closed="left")],
        "hop_length": [Interval(Integral, 1, None, closed="left")],
        "n_mels": [Interval(Integral, 1, None, closed="left")],
        "n_mfcc": [Interval(Integral, 0, None, closed="left")],
        "duration": [Real, None],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self, *, sr=16000, n_fft=1024, hop_length=512, n_mels=128, n_mfcc=20, duration=None, n_jobs=None, verbose=False
    ):
        self.sr = sr
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.duration = duration
        self.n_jobs = n_jobs
        self.verbose = verbose

    def transform(self, X):
        """Compute the statistics of every clip.

        Parameters
        ----------
        X : list of paths, list of 1-D arrays, or array of shape (n_clips, n_samples)
            Clips as files (wav/flac) or waveforms at ``sr`` Hz.

        Returns
        -------
        ndarray of float64, shape (n_clips, 5 + 2 * n_mfcc)
        """
        self._validate_params()
        W = _load_batch(X, sr=self.sr, duration=self.duration, n_jobs=self.n_jobs, verbose=self.verbose)
        return np.concatenate([self._stats(W[i : i + 16]) for i in range(0, len(W), 16)])

    def _stats(self, W):
        W64 = W.astype(np.float64)
        peak = np.abs(W64).max(axis=1)
        rms = np.sqrt(np.mean(np.square(W64), axis=1))
        crest = np.divide(peak, rms, out=np.zeros_like(peak), where=rms > 0)
        S = np.abs(librosa.stft(W64, n_fft=self.n_fft, hop_length=self.hop_length))
        spectral = partial(librosa.feature.spectral_centroid, sr=self.sr, n_fft=self.n_fft, hop_length=self.hop_length)
        centroid = spectral(S=S)[:, 0].mean(axis=1)
        flatness = librosa.feature.spectral_flatness(S=S, n_fft=self.n_fft, hop_length=self.hop_length)
        flatness = flatness[:, 0].mean(axis=1)
        columns = [peak, rms, crest, centroid, flatness]
        if self.n_mfcc:
            mel = librosa.feature.melspectrogram(S=S**2, sr=self.sr, n_mels=self.n_mels)
            mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=self.n_mfcc)
            return np.column_stack([*columns, mfcc.mean(axis=2), mfcc.std(axis=2)])
        return np.column_stack(columns)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : ignored

        Returns
        -------
        names : ndarray of str
        """
        self._validate_params()
        mfcc = [f"mfcc_{kind}{i}" for kind in ("mean", "std") for i in range(self.n_mfcc)]
        return np.asarray([*_LEVEL, *mfcc], dtype=object)
