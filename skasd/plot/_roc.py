"""ROC curve with the partial-AUC region (FPR <= max_fpr) shaded."""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ._scores import _anomaly_score, _check_scores, _final_estimator


def _partial_curve(fpr, tpr, max_fpr):
    """ROC points with FPR <= max_fpr, closed by the interpolated point at max_fpr.

    The same linear interpolation as ``roc_auc_score(..., max_fpr=max_fpr)``.
    """
    stop = np.searchsorted(fpr, max_fpr, side="right")
    x, y = fpr[:stop], tpr[:stop]
    if x[-1] < max_fpr:
        y = np.append(y, np.interp(max_fpr, fpr[stop - 1 : stop + 1], tpr[stop - 1 : stop + 1]))
        x = np.append(x, max_fpr)
    return x, y


class RocDisplay:
    """ROC curve of an anomaly detector with the pAUC region shaded.

    Use :meth:`from_estimator` or :meth:`from_predictions` to create one. The
    positive class is the anomaly (label 1); the legend shows the AUC and the
    pAUC over FPR in ``[0, max_fpr]`` as computed by
    :func:`sklearn.metrics.roc_auc_score` (the DCASE evaluator's definition,
    McClish-standardised).

    Parameters
    ----------
    fpr, tpr : ndarray
        False and true positive rates, as returned by :func:`sklearn.metrics.roc_curve`.
    roc_auc : float
        Area under the ROC curve.
    pauc : float
        Partial AUC for FPR <= ``max_fpr``.
    max_fpr : float, default=0.1
        Upper FPR limit of the shaded pAUC region.
    name : str, default=None
        Name shown in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The ROC curve.
    pauc_region_ : matplotlib PolyCollection
        The shaded area under the curve for FPR in ``[0, max_fpr]``.
    chance_level_ : matplotlib Line2D or None
        The diagonal of a random detector.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import numpy as np
    >>> from skasd.plot import RocDisplay
    >>> y_true = np.array([0, 0, 0, 0, 1, 1])
    >>> anomaly_score = np.array([0.1, 0.4, 0.2, 0.3, 0.35, 0.8])
    >>> disp = RocDisplay.from_predictions(y_true, anomaly_score, max_fpr=0.1)
    >>> round(disp.roc_auc, 3), round(disp.pauc, 3)
    (0.875, 0.737)
    """

    def __init__(self, *, fpr, tpr, roc_auc, pauc, max_fpr=0.1, name=None):
        self.fpr = fpr
        self.tpr = tpr
        self.roc_auc = roc_auc
        self.pauc = pauc
        self.max_fpr = max_fpr
        self.name = name

    def plot(self, ax=None, *, name=None, plot_chance_level=True, **kwargs):
        """Draw the ROC curve, the shaded pAUC region and the legend.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.
        name : str, default=None
            Legend name; overrides the one given at construction.
        plot_chance_level : bool, default=True
            Draw the diagonal of a random detector.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for the ROC curve.

        Returns
        -------
        display : RocDisplay
        """
        import matplotlib.pyplot as plt

        fpr, tpr = np.asarray(self.fpr, dtype=float), np.asarray(self.tpr, dtype=float)
        if fpr.ndim != 1 or fpr.shape != tpr.shape or fpr.size < 2:
            raise ValueError(
                f"fpr and tpr must be 1-D arrays of equal length >= 2; "
                f"got shapes {fpr.shape} and {tpr.shape}."
            )
        if not 0 < self.max_fpr <= 1:
            raise ValueError(f"max_fpr must be in (0, 1]; got {self.max_fpr}.")
        if ax is None:
            _, ax = plt.subplots()
        name = self.name if name is None else name
        label = f"AUC = {self.roc_auc:.3f}, pAUC = {self.pauc:.3f}"
        label = f"{name} ({label})" if name else label
        (self.line_,) = ax.plot(fpr, tpr, **{"label": label, **kwargs})
        self.pauc_region_ = ax.fill_between(
            *_partial_curve(fpr, tpr, self.max_fpr),
            color=self.line_.get_color(),
            alpha=0.3,
            label=f"pAUC region (FPR \u2264 {self.max_fpr:g})",
        )
        self.chance_level_ = None
        if plot_chance_level:
            (self.chance_level_,) = ax.plot(
                [0, 1], [0, 1], color="k", linestyle=":", label="Chance level (AUC = 0.5)"
            )
        ax.set(
            xlabel="False positive rate (normal clips flagged)",
            ylabel="True positive rate (anomalies found)",
            xlim=(-0.01, 1.01),
            ylim=(-0.01, 1.01),
            aspect="equal",
        )
        ax.legend(loc="lower right", fontsize="small")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(cls, y_true, anomaly_score, *, max_fpr=0.1, name=None, ax=None, **kwargs):
        """Plot the ROC curve from labels and anomaly scores.

        Parameters
        ----------
        y_true : array-like of shape (n_clips,)
            1 = anomaly, 0 = normal; both must occur.
        anomaly_score : array-like of shape (n_clips,)
            Higher = more anomalous.
        max_fpr : float, default=0.1
            Upper FPR limit of the pAUC.
        name, ax, **kwargs
            See :meth:`plot`.

        Returns
        -------
        display : RocDisplay
        """
        scores, y = _check_scores(anomaly_score, y_true, require_both_classes=True)
        pauc = roc_auc_score(y, scores, max_fpr=max_fpr)
        roc_auc = roc_auc_score(y, scores)
        fpr, tpr, _ = roc_curve(y, scores)
        disp = cls(fpr=fpr, tpr=tpr, roc_auc=roc_auc, pauc=pauc, max_fpr=max_fpr, name=name)
        return disp.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, max_fpr=0.1, name=None, ax=None, **kwargs):
        """Plot the ROC curve of a fitted detector on ``X``.

        The anomaly score is ``estimator.anomaly_score(X)`` if defined, else
        ``-estimator.score_samples(X)``.

        Parameters
        ----------
        estimator : fitted detector or Pipeline ending in one
        X : clips or features accepted by ``estimator``
        y : array-like of shape (n_clips,)
            1 = anomaly, 0 = normal; both must occur.
        max_fpr, name, ax, **kwargs
            See :meth:`from_predictions`; ``name`` defaults to the detector's class name.

        Returns
        -------
        display : RocDisplay
        """
        scores = _anomaly_score(estimator, X)
        name = type(_final_estimator(estimator)).__name__ if name is None else name
        return cls.from_predictions(y, scores, max_fpr=max_fpr, name=name, ax=ax, **kwargs)
