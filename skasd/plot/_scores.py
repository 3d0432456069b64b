"""Histograms of anomaly scores, and the anomaly-score helpers shared by the displays."""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..utils._validation import check_anomaly_labels, check_scores


def _final_estimator(estimator):
    """The estimator itself, or the last step of a Pipeline."""
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _anomaly_score(estimator, X):
    """DCASE-sign anomaly score: ``anomaly_score(X)`` if defined, else ``-score_samples(X)``."""
    check_is_fitted(estimator)
    if hasattr(estimator, "anomaly_score"):
        return estimator.anomaly_score(X)
    if hasattr(estimator, "score_samples"):
        return -np.asarray(estimator.score_samples(X))
    raise TypeError(
        f"{type(estimator).__name__} has neither anomaly_score nor score_samples; "
        "pass a fitted outlier detector (a skasd detector, a Pipeline ending in one, "
        "or e.g. IsolationForest)."
    )


def _finish(display, ax, name, legend=True):
    """End a display's ``plot``: the title (``name``, else the display's ``name``), the legend,
    and the fitted ``ax_`` and ``figure_``; returns the display."""
    name = display.name if name is None else name
    if name:
        ax.set_title(name)
    if legend:
        ax.legend()
    display.ax_, display.figure_ = ax, ax.figure
    return display


def _check_scores(anomaly_score, y_true=None, *, require_both_classes=False):
    """Validate a 1-D finite score array and optional anomaly labels (1 = anomaly); ``(scores, y)``."""
    scores = check_scores(anomaly_score, name="anomaly_score")
    if y_true is None:
        if require_both_classes:
            raise ValueError("y_true is required (1 = anomaly, 0 = normal).")
        return scores, None
    y = np.asarray(y_true)
    if y.shape != scores.shape:
        raise ValueError(
            f"y_true has shape {y.shape} but anomaly_score has shape {scores.shape}; "
            "they need one entry per clip."
        )
    y = check_anomaly_labels(y, name="y_true")
    if require_both_classes and np.unique(y).size < 2:
        raise ValueError(
            "y_true must contain both normal (0) and anomalous (1) clips; "
            f"got only label {y[0]}."
        )
    return scores, y


class ScoreHistogramDisplay:
    """Histograms of anomaly scores, normals vs anomalies, with the decision threshold.

    Use :meth:`from_estimator` or :meth:`from_predictions` to create one. Scores
    use the DCASE sign: higher = more anomalous.

    Parameters
    ----------
    anomaly_score : array-like of shape (n_clips,)
        Anomaly score of each clip (higher = more anomalous).
    y_true : array-like of shape (n_clips,), default=None
        1 = anomaly, 0 = normal. If None, one histogram of all clips is drawn.
    threshold : float, default=None
        Decision threshold in anomaly-score units (clips above it are flagged),
        drawn as a vertical line. If None, no line is drawn.
    name : str, default=None
        Title of the axes.

    Attributes
    ----------
    bars_ : dict of str to matplotlib BarContainer
        One histogram per group: ``"normal"`` and ``"anomaly"``, or ``"all"``
        when ``y_true`` is None.
    threshold_line_ : matplotlib Line2D or None
        The vertical threshold line.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from skasd.plot import ScoreHistogramDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = np.r_[rng.normal(size=(50, 2)), rng.normal(4, 1, size=(5, 2))]
    >>> y = np.r_[np.zeros(50), np.ones(5)]
    >>> detector = IsolationForest(random_state=0).fit(X[:50])
    >>> disp = ScoreHistogramDisplay.from_estimator(detector, X, y)
    >>> sorted(disp.bars_)
    ['anomaly', 'normal']
    >>> bool(disp.threshold == -detector.offset_)
    True
    """

    def __init__(self, *, anomaly_score, y_true=None, threshold=None, name=None):
        self.anomaly_score = anomaly_score
        self.y_true = y_true
        self.threshold = threshold
        self.name = name

    def plot(self, ax=None, *, bins="auto", density=False, name=None, **kwargs):
        """Draw the histograms and the threshold line.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.
        bins : int, sequence or str, default="auto"
            Bins shared by all groups, as in :func:`numpy.histogram_bin_edges`.
        density : bool, default=False
            Normalise each histogram to unit area (useful when the groups
            differ much in size).
        name : str, default=None
            Axes title; overrides the one given at construction.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.hist`.

        Returns
        -------
        display : ScoreHistogramDisplay
        """
        import matplotlib.pyplot as plt

        scores, y = _check_scores(self.anomaly_score, self.y_true)
        if self.threshold is not None and not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number; got {self.threshold}.")
        if ax is None:
            _, ax = plt.subplots()
        edges = np.histogram_bin_edges(scores, bins=bins)
        if y is None:
            groups = {"all": scores}
        else:
            groups = {"normal": scores[y == 0], "anomaly": scores[y == 1]}
        hist_kw = {"alpha": 0.6 if y is not None else 1.0, **kwargs}
        self.bars_ = {}
        for group, values in groups.items():
            label = f"{'all clips' if group == 'all' else group} (n={values.size})"
            *_, self.bars_[group] = ax.hist(
                values, bins=edges, density=density, label=label, **hist_kw
            )
        self.threshold_line_ = None
        if self.threshold is not None:
            self.threshold_line_ = ax.axvline(
                self.threshold, color="k", linestyle="--",
                label=f"threshold = {self.threshold:.4g}",
            )
        ax.set(
            xlabel="Anomaly score (higher = more anomalous)",
            ylabel="Density" if density else "Number of clips",
        )
        return _finish(self, ax, name)

    @classmethod
    def from_predictions(
        cls, anomaly_score, y_true=None, threshold=None, *, bins="auto", density=False,
        name=None, ax=None, **kwargs,
    ):
        """Plot score histograms from anomaly scores.

        Parameters
        ----------
        anomaly_score : array-like of shape (n_clips,)
            Higher = more anomalous (e.g. ``detector.anomaly_score(X)``).
        y_true : array-like of shape (n_clips,), default=None
            1 = anomaly, 0 = normal; None draws all clips as one histogram.
        threshold : float, default=None
            Decision threshold in anomaly-score units.
        bins, density, name, ax, **kwargs
            See :meth:`plot`.

        Returns
        -------
        display : ScoreHistogramDisplay
        """
        disp = cls(anomaly_score=anomaly_score, y_true=y_true, threshold=threshold, name=name)
        return disp.plot(ax=ax, bins=bins, density=density, **kwargs)

    @classmethod
    def from_estimator(
        cls, estimator, X, y=None, *, bins="auto", density=False, name=None, ax=None, **kwargs
    ):
        """Plot score histograms of a fitted detector on ``X``.

        The anomaly score is ``estimator.anomaly_score(X)`` if defined, else
        ``-estimator.score_samples(X)``. The threshold is ``-offset_`` of the
        detector (the last step of a Pipeline): with the IsolationForest-like API
        ``decision_function = score_samples - offset_``, a clip is predicted
        anomalous exactly when its anomaly score exceeds ``-offset_``. Detectors
        without ``offset_`` get no threshold line.

        Parameters
        ----------
        estimator : fitted detector or Pipeline ending in one
        X : clips or features accepted by ``estimator``
        y : array-like of shape (n_clips,), default=None
            1 = anomaly, 0 = normal.
        bins, density, name, ax, **kwargs
            See :meth:`plot`; ``name`` defaults to the detector's class name.

        Returns
        -------
        display : ScoreHistogramDisplay
        """
        scores = _anomaly_score(estimator, X)
        detector = _final_estimator(estimator)
        offset = getattr(detector, "offset_", None)
        threshold = None if offset is None else -float(offset)
        name = type(detector).__name__ if name is None else name
        return cls.from_predictions(
            scores, y, threshold, bins=bins, density=density, name=name, ax=ax, **kwargs
        )
