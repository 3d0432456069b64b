"""The outlier API every skasd detector shares, whatever computes its scores.

A detector implements ``score_samples`` (higher = more normal) and calls
``_set_offset(train_scores)`` at the end of ``fit``; this layer adds ``anomaly_score``,
``decision_function`` and ``predict`` exactly as ``IsolationForest`` layers them, and the
``contamination`` rule that places the threshold. It imports no torch: the inlier detectors
and the fusion build on it alone.
"""

import math
from numbers import Real

import numpy as np
import pandas as pd
import scipy.stats
from sklearn.base import BaseEstimator, OutlierMixin

from ..utils._sklearn_compat import Interval, StrOptions

__all__ = ["BaseDetector", "SectionScoringMixin"]

# DCASE 2023 baseline threshold rule: quantile of a Gamma fitted to training scores.
_GAMMA_QUANTILE = 0.9

CONTAMINATION_DOC = """\
contamination : "auto" or float in (0, 0.5], default="auto"
    Sets ``offset_``. ``"auto"``: the DCASE 2023 rule, threshold at the 0.9 quantile of
    a Gamma distribution fitted to the training clips' anomaly scores (empirical 0.9
    quantile when fewer than 3 distinct scores). A float: that fraction of the training
    clips is predicted anomalous, as in ``IsolationForest``."""


class BaseDetector(OutlierMixin, BaseEstimator):
    """Outlier API on top of ``score_samples`` (not for direct use).

    Subclasses implement ``fit`` (ending with ``self._set_offset(scores)`` on the training
    clips' ``score_samples``) and ``score_samples``.
    """

    _parameter_constraints = {
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
    }

    def _set_offset(self, train_scores):
        """Set ``offset_`` from the training clips' ``score_samples`` by ``contamination``, and
        ``train_score_quartiles_``: what a monitor compares new clips' scores with."""
        self.offset_ = self._offset(train_scores)
        self.train_score_quartiles_ = np.quantile(-np.asarray(train_scores, dtype=np.float64), [0.25, 0.5, 0.75])

    def _offset(self, train_scores):
        """The ``contamination`` rule: the threshold for these training ``score_samples``."""
        train_scores = np.asarray(train_scores, dtype=np.float64)
        if self.contamination == "auto":
            return -_gamma_threshold(-train_scores)
        return float(np.percentile(train_scores, 100.0 * self.contamination))

    def anomaly_score(self, X):
        """Anomaly score of each clip (DCASE sign: higher = more anomalous).

        Parameters
        ----------
        X : array-like
            Clips to score, in the layout the detector was fitted on.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``-score_samples(X)``.
        """
        return -self.score_samples(X)

    def decision_function(self, X):
        """Shifted score: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like
            Clips to score.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``score_samples(X) - offset_``.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Label each clip normal (1) or anomalous (-1) by the fitted threshold.

        Parameters
        ----------
        X : array-like
            Clips to label.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
            1 where ``decision_function(X) >= 0``, else -1.
        """
        return self.predict_from_scores(self.score_samples(X))

    def predict_from_scores(self, scores, offset=None):
        """``predict``'s labels from ``score_samples`` values already computed.

        For callers that need both the scores and the labels without scoring twice:
        ``predict(X)`` equals ``predict_from_scores(score_samples(X))``.

        Parameters
        ----------
        scores : array-like of shape (n_clips,)
            ``score_samples`` values (higher = more normal).
        offset : float or array-like of shape (n_clips,), default=None
            Threshold(s) to compare with; None: ``offset_``.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
            1 where ``scores - offset >= 0``, else -1.
        """
        return np.where(np.asarray(scores) - (self.offset_ if offset is None else offset) < 0, -1, 1)


def _gamma_threshold(anomaly_scores):
    """DCASE 2023 baseline threshold: 0.9 quantile of a Gamma fitted to the scores.

    Falls back to the empirical 0.9 quantile where the fit is impossible or degenerate
    (fewer than 3 distinct scores, or a non-finite fitted quantile).
    """
    if len(np.unique(anomaly_scores)) >= 3:
        with np.errstate(all="ignore"):
            threshold = scipy.stats.gamma.ppf(_GAMMA_QUANTILE, *scipy.stats.gamma.fit(anomaly_scores))
        if math.isfinite(threshold):
            return float(threshold)
    return float(np.quantile(anomaly_scores, _GAMMA_QUANTILE))


class SectionScoringMixin:
    """The outlier API with ``section=``, for a detector holding one model and threshold per
    section (``sections_``, ``section_offsets_``).

    The detector implements ``_score(X, section)`` -> ``(score_samples, offsets)``: with
    ``section`` each clip's own section's score and threshold, without it ``offset_``. This
    layer adds ``anomaly_score``, ``decision_function`` and ``predict`` on top, and
    ``_section_codes`` maps labels to ``sections_`` rows with one error for unknown labels.
    """

    def _section_codes(self, section):
        """Row of ``sections_`` of each label of ``section``; a ``ValueError`` names unknown ones."""
        codes = pd.Index(self.sections_).get_indexer(section)
        if (codes < 0).any():
            raise ValueError(
                f"{type(self).__name__}: sections not seen in fit: {pd.unique(section[codes < 0]).tolist()}; "
                f"fitted sections: {self.sections_.tolist()}."
            )
        return codes

    def _section_offsets(self, codes):
        """Each clip's section threshold, from its ``sections_`` row."""
        return np.array([self.section_offsets_[s] for s in self.sections_.tolist()])[codes]

    def anomaly_score(self, X, section=None):
        """Anomaly score of each clip (DCASE sign: higher = more anomalous).

        Parameters
        ----------
        X : array-like
            Clips to score, in the layout the detector was fitted on.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, as in ``score_samples``.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``-score_samples(X, section)``.
        """
        return -self.score_samples(X, section)

    def decision_function(self, X, section=None):
        """Shifted score: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like
            Clips to score.
        section : array-like of shape (n_clips,), default=None
            Section of each clip: scored by its section's model(s) and shifted by its
            section's threshold ``section_offsets_[s]``. None: ``offset_``.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            ``score_samples(X, section)`` minus the offset.
        """
        scores, offset = self._score(X, section)
        return scores - offset

    def predict(self, X, section=None):
        """Label each clip normal (1) or anomalous (-1) by the fitted threshold(s).

        Parameters
        ----------
        X : array-like
            Clips to label.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, as in ``decision_function``.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
            1 where ``decision_function(X, section) >= 0``, else -1.
        """
        return self.predict_from_scores(*self._score(X, section))
