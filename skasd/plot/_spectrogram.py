"""Log-mel spectrogram and MFCC images of clips (the report's figures 1 and 2)."""

import numpy as np
from sklearn.utils import assert_all_finite

from ._scores import _finish

_KINDS = ("logmel", "mfcc")


def _check_features(S):
    S = np.asarray(S, dtype=float)
    if S.ndim != 2 or 0 in S.shape:
        hint = " Pass one clip, e.g. S[0] of a batch." if S.ndim > 2 else ""
        raise ValueError(
            f"S must be a non-empty 2-D (n_mels, n_frames) array for one clip; "
            f"got shape {S.shape}.{hint}"
        )
    assert_all_finite(S, input_name="S")
    return S


def _check_kind(kind):
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}; got {kind!r}.")


class SpectrogramDisplay:
    """Log-mel spectrogram or MFCC image of one clip.

    Time runs along x (seconds, from ``sr`` and ``hop_length``); y is the
    mel-frequency axis (Hz, mel-spaced) for ``kind="logmel"`` or the MFCC
    coefficient index for ``kind="mfcc"``. A colour bar shows the values (dB
    for log-mel). Use :meth:`from_features`, or :func:`plot_clips` for normal
    beside anomalous clips.

    Parameters
    ----------
    S : array-like of shape (n_mels, n_frames) or (n_mfcc, n_frames)
        Features of one clip, e.g. from ``skasd.LogMelTransformer``.
    sr : int, default=16000
        Sample rate of the clip, in Hz.
    hop_length : int, default=512
        Hop length of the feature frames, in samples.
    kind : {"logmel", "mfcc"}, default="logmel"
        What ``S`` holds: log-mel energies in dB, or MFCCs.
    fmin, fmax : float, default=0.0 and None
        Frequency range of the mel filter bank (``fmax=None``: ``sr / 2``); used
        to label the log-mel frequency axis.
    name : str, default=None
        Title of the axes.

    Attributes
    ----------
    image_ : matplotlib QuadMesh
        The image; ``image_.get_array()`` holds ``S``.
    colorbar_ : matplotlib Colorbar or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> import librosa
    >>> from skasd.plot import SpectrogramDisplay
    >>> t = np.arange(16000) / 16000
    >>> clip = np.sin(2 * np.pi * 1000 * t) + 0.1 * np.random.RandomState(0).randn(t.size)
    >>> S = librosa.power_to_db(librosa.feature.melspectrogram(
    ...     y=clip, sr=16000, n_fft=1024, hop_length=512, n_mels=64))
    >>> disp = SpectrogramDisplay.from_features(S, sr=16000, hop_length=512)
    >>> disp.image_.get_array().shape
    (64, 32)
    """

    def __init__(
        self, *, S, sr=16000, hop_length=512, kind="logmel", fmin=0.0, fmax=None, name=None
    ):
        self.S = S
        self.sr = sr
        self.hop_length = hop_length
        self.kind = kind
        self.fmin = fmin
        self.fmax = fmax
        self.name = name

    def plot(self, ax=None, *, colorbar=True, name=None, **kwargs):
        """Draw the image, labelled axes and colour bar.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.
        colorbar : bool, default=True
            Draw a colour bar beside the axes.
        name : str, default=None
            Axes title; overrides the one given at construction.
        **kwargs : dict
            Passed to :func:`librosa.display.specshow` (e.g. ``cmap``, ``vmin``, ``vmax``).

        Returns
        -------
        display : SpectrogramDisplay
        """
        import librosa.display
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        S = _check_features(self.S)
        _check_kind(self.kind)
        if ax is None:
            _, ax = plt.subplots()
        logmel = self.kind == "logmel"
        if logmel:
            axis_kw = {"y_axis": "mel", "fmin": self.fmin, "fmax": self.fmax or self.sr / 2}
        else:
            axis_kw = {"y_axis": "frames"}  # coefficient index, centred on each row
        self.image_ = librosa.display.specshow(
            S, x_axis="time", sr=self.sr, hop_length=self.hop_length, ax=ax, **axis_kw, **kwargs
        )
        ax.set_xlabel("Time (s)")
        if logmel:
            ax.set_ylabel("Mel frequency (Hz)")
        else:
            ax.set_ylabel("MFCC coefficient")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        self.colorbar_ = None
        if colorbar:
            self.colorbar_ = ax.figure.colorbar(
                self.image_, ax=ax, format="%+2.0f dB" if logmel else None,
                label="Log-mel energy (dB)" if logmel else "MFCC value",
            )
        return _finish(self, ax, name, legend=False)

    @classmethod
    def from_features(
        cls, S, sr=16000, hop_length=512, kind="logmel", *, fmin=0.0, fmax=None, name=None,
        ax=None, **kwargs,
    ):
        """Plot the features of one clip.

        Parameters
        ----------
        S : array-like of shape (n_mels, n_frames) or (n_mfcc, n_frames)
        sr, hop_length, kind, fmin, fmax, name
            See :class:`SpectrogramDisplay`.
        ax, **kwargs
            See :meth:`plot`.

        Returns
        -------
        display : SpectrogramDisplay
        """
        disp = cls(S=S, sr=sr, hop_length=hop_length, kind=kind, fmin=fmin, fmax=fmax, name=name)
        return disp.plot(ax=ax, **kwargs)


def _as_clips(features, arg):
    """A 2-D array (one clip), a 3-D batch or a sequence of 2-D arrays -> list of clips."""
    clips = [features] if np.ndim(features) == 2 else list(features)
    if not clips:
        raise ValueError(f"{arg} holds no clips.")
    return [_check_features(S) for S in clips]


def plot_clips(
    features_normal, features_anomalous, *, sr=16000, hop_length=512, kind="logmel",
    fmin=0.0, fmax=None, titles=("Normal", "Anomalous"), figsize=None, **kwargs,
):
    """Draw normal clips beside anomalous ones, as the report's figures 1 and 2.

    A grid with one row per clip, normal clips in the left column and
    anomalous clips in the right one, all on one colour scale so that levels
    compare across panels.

    Parameters
    ----------
    features_normal, features_anomalous : array-like
        Features of one clip (n_mels, n_frames), a batch (n_clips, n_mels,
        n_frames) or a sequence of 2-D arrays; the shorter column is left blank.
    sr, hop_length, kind, fmin, fmax
        See :class:`SpectrogramDisplay`.
    titles : tuple of str, default=("Normal", "Anomalous")
        Column titles; with several rows the clip number is appended.
    figsize : tuple of float, default=None
        Figure size; ``(10, 3 * n_rows)`` if None.
    **kwargs : dict
        Passed to :func:`librosa.display.specshow`; ``vmin`` and ``vmax``
        default to the range over all clips.

    Returns
    -------
    displays : ndarray of SpectrogramDisplay of shape (n_rows, 2)
        ``None`` where a column has no clip; the figure is ``displays[0, 0].figure_``.

    Examples
    --------
    >>> import numpy as np
    >>> import librosa
    >>> from skasd.plot import plot_clips
    >>> rng = np.random.RandomState(0)
    >>> def logmel(clip):
    ...     S = librosa.feature.melspectrogram(y=clip, sr=16000, hop_length=512, n_mels=64)
    ...     return librosa.power_to_db(S)
    >>> tone = np.sin(2 * np.pi * 3000 * np.arange(16000) / 16000)
    >>> normal = logmel(rng.randn(16000))
    >>> anomalous = logmel(rng.randn(16000) + tone)
    >>> displays = plot_clips(normal, anomalous)
    >>> [d.ax_.get_title() for d in displays[0]]
    ['Normal', 'Anomalous']
    """
    import matplotlib.pyplot as plt

    _check_kind(kind)
    columns = [
        _as_clips(features_normal, "features_normal"),
        _as_clips(features_anomalous, "features_anomalous"),
    ]
    if len(titles) != 2:
        raise ValueError(f"titles must hold 2 strings (normal, anomalous); got {titles!r}.")
    everything = np.concatenate([S.ravel() for clips in columns for S in clips])
    kwargs = {"vmin": everything.min(), "vmax": everything.max(), **kwargs}
    n_rows = max(len(clips) for clips in columns)
    fig, axes = plt.subplots(
        n_rows, 2, figsize=figsize or (10, 3 * n_rows), squeeze=False, layout="constrained"
    )
    displays = np.full((n_rows, 2), None, dtype=object)
    for col, (clips, title) in enumerate(zip(columns, titles)):
        for row in range(n_rows):
            if row >= len(clips):
                axes[row, col].set_axis_off()
                continue
            displays[row, col] = SpectrogramDisplay(
                S=clips[row], sr=sr, hop_length=hop_length, kind=kind, fmin=fmin, fmax=fmax,
                name=f"{title} {row + 1}" if n_rows > 1 else title,
            ).plot(ax=axes[row, col], **kwargs)
    return displays
