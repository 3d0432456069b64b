"""Plots for anomalous sound detection, in scikit-learn's ``Display`` style.

Each ``*Display`` stores the data to draw; its ``plot(ax=None, **kwargs)`` draws
it and keeps the matplotlib artists (``ax_``, ``figure_``, ...); its class
methods ``from_estimator`` / ``from_predictions`` (or ``from_features`` /
``from_history``) compute the data and plot in one call.

matplotlib is an optional dependency: ``pip install skasd[plot]``. Only this
subpackage imports it, so ``import skasd`` works without it.
"""

try:
    import matplotlib  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "skasd.plot requires matplotlib, which is not installed. "
        "Install it with: pip install skasd[plot]"
    ) from exc

from ._explain import ExplanationDisplay
from ._history import LossHistoryDisplay
from ._roc import RocDisplay
from ._scores import ScoreHistogramDisplay
from ._spectrogram import SpectrogramDisplay, plot_clips

__all__ = [
    "ExplanationDisplay",
    "LossHistoryDisplay",
    "RocDisplay",
    "ScoreHistogramDisplay",
    "SpectrogramDisplay",
    "plot_clips",
]
