"""SectionwiseDetector: one clone of any detector per section (machine ID), one threshold each.

The DCASE protocol trains and thresholds each section (2020: each machine ID) on its own
clips. The inlier detectors do that natively on a shared embedding (``fit(X, section=...)``);
this wrapper gives the same API to any other detector, e.g. one autoencoder per machine ID.
"""

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from ..utils._docstring import Substitution
from ..utils._sklearn_compat import HasMethods, validate_data
from ..utils._validation import normal_mask
from ._base import CONTAMINATION_DOC, BaseDetector, SectionScoringMixin

__all__ = ["SectionwiseDetector"]


@Substitution(contamination=CONTAMINATION_DOC)
class SectionwiseDetector(SectionScoringMixin, BaseDetector):
    """One clone of ``estimator`` per section, each with its own threshold.

    ``fit(X, section=s)`` fits a clone of ``estimator`` on each section's clips;
    ``score_samples``, ``anomaly_score``, ``decision_function`` and ``predict`` take
    ``section=`` and judge each clip by its own section's model and threshold
    (``section_offsets_``), as the inlier detectors do. Without ``section`` a clip is scored by
    every section's model and keeps its best (most normal) score, against ``offset_``.

    Parameters
    ----------
    estimator : skasd detector
        The detector cloned per section (anything with ``fit`` and ``score_samples``).
    {contamination}

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted clone of each section, in the order of ``sections_``.
    sections_ : ndarray of object
        The section labels seen in ``fit`` (sorted).
    section_offsets_ : dict
        Section label -> threshold from that section's training clips' scores.
    offset_ : float
        Threshold of all training clips, each scored by its own section's model.
    train_score_quartiles_ : ndarray of shape (3,)
        Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).

    Examples
    --------
    >>> import numpy as np
    >>> from skasd.models import KNNDetector, SectionwiseDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (30, 3)), rng.normal(10, 1, (30, 3))]
    >>> det = SectionwiseDetector(KNNDetector(metric="euclidean")).fit(X, section=["a"] * 30 + ["b"] * 30)
    >>> det.predict([[10, 10, 10], [0, 0, 0]], section=["a", "a"])
    array([-1,  1])
    """

    _parameter_constraints = {
        **BaseDetector._parameter_constraints,
        "estimator": [HasMethods(["fit", "score_samples"])],
    }

    def __init__(self, estimator, *, contamination="auto"):
        self.estimator = estimator
        self.contamination = contamination

    def fit(self, X, y=None, section=None):
        """Fit one clone of ``estimator`` per section.

        Parameters
        ----------
        X : array-like
            Training clips in the layout ``estimator`` takes (e.g. log-mels).
        y : array-like of shape (n_clips,), default=None
            Optional anomaly labels; clips labelled anomalous are left out.
        section : array-like of shape (n_clips,), default=None
            Section of each clip; None: one section.

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._validate_params()
        X = validate_data(self, X, allow_nd=True, dtype=None)
        n = len(X)
        section = self._labels_of(section, n)
        if y is not None:
            mask = normal_mask(y, n, type(self).__name__)
            if mask is not None:
                X, section = X[mask], section[mask]
        sections = np.unique(section).astype(object)
        estimators, offsets, train = [], {}, []
        for label in sections:
            rows = section == label
            est = clone(self.estimator).fit(X[rows])
            scores = est.score_samples(X[rows])
            estimators.append(est)
            offsets[label] = self._offset(scores)
            train.append(scores)
        self.estimators_, self.sections_, self.section_offsets_ = estimators, sections, offsets
        self._set_offset(np.concatenate(train))
        return self

    def _labels_of(self, section, n):
        if section is None:
            return np.full(n, "all", dtype=object)
        section = np.asarray(section, dtype=object)
        if section.ndim != 1 or len(section) != n or pd.isna(section).any():
            raise ValueError(
                f"{type(self).__name__}: section must hold one label per clip ({n}), none missing; "
                f"got shape {section.shape}."
            )
        return section

    def _score(self, X, section):
        check_is_fitted(self)
        X = validate_data(self, X, allow_nd=True, dtype=None, reset=False)
        if section is None:
            return np.max([est.score_samples(X) for est in self.estimators_], axis=0), self.offset_
        codes = self._section_codes(self._labels_of(section, len(X)))
        scores = np.empty(len(X))
        for code in np.unique(codes):
            rows = codes == code
            scores[rows] = self.estimators_[code].score_samples(X[rows])
        return scores, self._section_offsets(codes)

    def score_samples(self, X, section=None):
        """Each clip's score by its section's model (higher = more normal).

        Parameters
        ----------
        X : array-like
            Clips to score.
        section : array-like of shape (n_clips,), default=None
            Section of each clip; None: the best score over the sections' models.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
        """
        return self._score(X, section)[0]

    def frame_scores(self, X, section=None, **kwargs):
        """Each clip's frame scores by its section's model (higher = more anomalous).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames)
            Log-mel clips.
        section : array-like of shape (n_clips,), default=None
            Section of each clip; None: each clip by the section's model that gives it the
            best clip score, as ``score_samples`` does.
        **kwargs : dict
            Passed to the models' ``frame_scores`` (e.g. ``per_band``).

        Returns
        -------
        scores : ndarray of shape (n_clips, n_frames) or as the models return
        """
        check_is_fitted(self)
        if not hasattr(self.estimators_[0], "frame_scores"):
            raise ValueError(f"{type(self.estimator).__name__} has no frame scores (no frame_scores method).")
        X = validate_data(self, X, allow_nd=True, dtype=None, reset=False)
        codes = self.section_codes(X, section)
        parts = {}
        for code in np.unique(codes):
            parts[code] = self.estimators_[code].frame_scores(X[codes == code], **kwargs)
        first = next(iter(parts.values()))
        out = np.empty((len(X), *first.shape[1:]))
        for code, part in parts.items():
            out[codes == code] = part
        return out

    def section_codes(self, X, section=None):
        """Row of ``estimators_`` (and ``sections_``) that judges each clip.

        Parameters
        ----------
        X : array-like
            Clips.
        section : array-like of shape (n_clips,), default=None
            Section of each clip; None: the section whose model gives the clip its best score.

        Returns
        -------
        codes : ndarray of int of shape (n_clips,)
        """
        check_is_fitted(self)
        if section is not None:
            return self._section_codes(self._labels_of(section, len(X)))
        return np.argmax([est.score_samples(X) for est in self.estimators_], axis=0)

    def fit_predict(self, X, y=None, section=None):
        """Fit, then label the training clips by their own section's threshold.

        Parameters
        ----------
        X, y, section
            As in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
        """
        return self.fit(X, y, section=section).predict(X, section)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
