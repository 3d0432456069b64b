"""Where and why one clip is anomalous, drawn on its log-mel image."""

import numpy as np

from ..features._spectrum import SpectrumTransformer
from ..inspection._explain import _explanation
from ._scores import _finish
from ._spectrogram import SpectrogramDisplay

# Band deviations below this many dB (or twice the band's normal spread) either way stay
# transparent in the heatmap.
HEATMAP_FLOOR_DB = 6.0


class ExplanationDisplay:
    """A clip's log-mel image with its frame scores over time, a heatmap of the bands that
    deviate from the normal training clips, its top segments and band, and the summary.

    The heatmap shows each (band, frame)'s level minus the normal level of the band that
    :func:`skasd.inspection.explain` compares the clip with (its own section and domain's for an
    inlier detector, else ``band_profile_`` of the model), where it is at least 6 dB and twice the band's normal
    spread above (red) or below (blue) normal; the curve (right axis) is the frame scores of
    :func:`skasd.inspection.frame_scores`; dashed boxes mark the segments of
    :func:`skasd.inspection.explain`, the solid one the top band of the top segment. Use
    :meth:`from_estimator`.

    Parameters
    ----------
    S : ndarray of shape (n_mels, n_frames)
        Log-mel of the clip (dB).
    deviation : ndarray of shape (n_mels, n_frames)
        ``S`` minus each band's normal level (dB).
    times : ndarray of shape (n_frames,)
        Frame centres in seconds.
    scores : ndarray of shape (n_frames,)
        Frame scores (higher = more anomalous).
    segments : list of (start_s, end_s)
        The clip's segments, the top one first.
    band : (low_hz, high_hz)
        The top segment's band.
    summary : str
        The explanation's sentence.
    spread : ndarray of shape (n_mels,), default=None
        Each band's normal spread (dB); deviations within twice it are not drawn.
    sr, hop_length, fmin, fmax
        The log-mel's geometry.
    frequency : {"mel", "linear"}, default="mel"
        ``"linear"``: ``S`` is the spectra of windows of the clip (rows: the bins of a
        :class:`~skasd.SpectrumTransformer`, from 0 Hz to ``sr / 2``), placed at ``times``;
        ``hop_length``, ``fmin`` and ``fmax`` are then not used.
    name : str, default=None
        Axes title (default: the summary).

    Attributes
    ----------
    ax_, figure_ : matplotlib Axes and Figure
    score_ax_ : matplotlib Axes
        The twin axes of the frame-score curve.
    heatmap_ : matplotlib QuadMesh
    line_ : matplotlib Line2D
        The frame-score curve.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from skasd import KNNDetector, LogMelTransformer
    >>> from skasd.datasets import make_machine_sounds
    >>> from skasd.plot import ExplanationDisplay
    >>> X, y = make_machine_sounds(n_normal=10, n_anomaly=1, duration=3.0, random_state=0, return_X_y=True)
    >>> pipe = make_pipeline(LogMelTransformer(), KNNDetector()).fit(X[y == 0])
    >>> disp = ExplanationDisplay.from_estimator(pipe, X[-1])
    >>> disp.line_.get_xdata().shape
    (94,)
    """

    def __init__(self, *, S, deviation, times, scores, segments, band, summary, spread=None, sr=16000,
                 hop_length=512, fmin=0.0, fmax=None, frequency="mel", name=None):
        self.S = S
        self.deviation = deviation
        self.times = times
        self.scores = scores
        self.segments = segments
        self.band = band
        self.summary = summary
        self.spread = spread
        self.sr = sr
        self.hop_length = hop_length
        self.fmin = fmin
        self.fmax = fmax
        self.frequency = frequency
        self.name = name

    def plot(self, ax=None, *, name=None, heatmap=True, curve=True, cmap="gray_r"):
        """Draw the image, the heatmap, the curve and the boxes.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure if None.
        name : str, default=None
            Title; overrides the one given at construction (default: the summary).
        heatmap, curve : bool, default=True
            Draw the band heatmap, the frame-score curve.
        cmap : str, default="gray_r"
            Colour map of the log-mel image (grey, so the heatmap stands out).

        Returns
        -------
        display : ExplanationDisplay
        """
        import librosa.display
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        if ax is None:
            _, ax = plt.subplots(figsize=(8, 3.5), layout="constrained")
        if self.frequency not in ("mel", "linear"):
            raise ValueError(f"frequency must be 'mel' or 'linear'; got {self.frequency!r}.")
        if self.frequency == "linear":  # window spectra at their times
            geometry = dict(x_coords=self.times, x_axis="time", y_axis="linear", sr=self.sr, ax=ax)
            librosa.display.specshow(np.asarray(self.S), cmap=cmap, **geometry)
            ax.set_ylabel("Frequency (Hz)")
        else:
            geometry = dict(x_axis="time", y_axis="mel", sr=self.sr, hop_length=self.hop_length, fmin=self.fmin,
                            fmax=self.fmax or self.sr / 2, ax=ax)
            SpectrogramDisplay(S=self.S, sr=self.sr, hop_length=self.hop_length, fmin=self.fmin,
                               fmax=self.fmax).plot(ax=ax, colorbar=False, cmap=cmap)
        self.heatmap_ = None
        if heatmap:
            dev = np.asarray(self.deviation, dtype=float)
            floor = HEATMAP_FLOOR_DB if self.spread is None else np.maximum(HEATMAP_FLOOR_DB, 2 * self.spread)[:, None]
            dev = np.where(np.abs(dev) >= floor, dev, np.nan)  # NaN: transparent
            self.heatmap_ = librosa.display.specshow(dev, cmap="coolwarm", vmin=-20, vmax=20, alpha=0.75, **geometry)
        for k, (start, end) in enumerate(self.segments):
            ax.axvspan(start, end, fill=False, edgecolor="black" if k else "tab:red", linestyle="--",
                       linewidth=1.0)
        if self.segments:
            start, end = self.segments[0]
            ax.add_patch(Rectangle((start, self.band[0]), end - start, self.band[1] - self.band[0], fill=False,
                                   edgecolor="tab:red", linewidth=1.5))
        self.score_ax_ = self.line_ = None
        if curve:
            self.score_ax_ = ax.twinx()
            (self.line_,) = self.score_ax_.plot(self.times, self.scores, color="tab:orange", linewidth=1.0)
            self.score_ax_.set_ylabel("frame score", color="tab:orange")
            self.score_ax_.tick_params(axis="y", labelcolor="tab:orange")
        ax.set_xlabel("Time (s)")
        return _finish(self, ax, name or self.name or self.summary, legend=False)

    @classmethod
    def from_estimator(cls, estimator, X, *, section=None, features=None, ax=None, **kwargs):
        """Explain one clip with a fitted pipeline or detector and draw it.

        Parameters
        ----------
        estimator : fitted Pipeline or detector
            As in :func:`skasd.inspection.explain`.
        X : path, waveform (1-D), or log-mel of shape (n_mels, n_frames)
            One clip in the form ``estimator`` takes. A pipeline on clip spectra
            (:class:`~skasd.SpectrumTransformer`) is drawn on its windows' spectra.
        section : str, default=None
            The clip's section, for a detector fitted per section.
        features : LogMelTransformer, default=None
            For a bare detector, the transformer that made ``X``.
        ax, **kwargs
            See :meth:`plot`.

        Returns
        -------
        display : ExplanationDisplay
        """
        batch = X[None] if isinstance(X, np.ndarray) else [X]
        explanation = _explanation(estimator, batch, None if section is None else [section], 3, 3, None, features)
        return cls._of_clip(*explanation, 0).plot(ax=ax, **kwargs)

    @classmethod
    def _of_clip(cls, table, fs, profiles, k):
        """The display of clip ``k`` of an explanation (``_explanation``'s table, frame scores
        and band profiles)."""
        rows, t = table[table["clip"] == table["clip"].unique()[k]], fs._transformer
        linear = isinstance(t, SpectrumTransformer)  # window spectra
        return cls(
            S=fs.features[k], deviation=fs.features[k] - profiles[k][0][:, None], times=fs.times,
            scores=fs.scores[k], segments=list(zip(rows["start_s"], rows["end_s"])),
            band=(rows["band_low_hz"].iloc[0], rows["band_high_hz"].iloc[0]), summary=rows["summary"].iloc[0],
            spread=profiles[k][1], sr=t.sr, hop_length=None if linear else t.hop_length,
            fmin=0.0 if linear else t.fmin, fmax=None if linear else t.fmax, frequency="linear" if linear else "mel",
        )
