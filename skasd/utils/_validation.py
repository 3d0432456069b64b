"""Validation shared by the metrics, the detectors, the plots and the writers.

One rule each: what an anomaly label is (:func:`check_anomaly_labels`; 1 / ``"anomaly"`` =
anomalous clip, 0 / ``"normal"`` = normal), what a score array is (:func:`check_scores`), which
training clips a detector keeps (:func:`normal_mask`), what per-clip ``domain``/``section``
labels are (:func:`clip_labels`), and how a message lists many names (:func:`listing`).
"""

import numpy as np
import pandas as pd

# How many names an error or warning spells out before "and N more".
_MAX_LISTED = 5
_LABEL_NAMES = {"normal": 0, "anomaly": 1}


def listing(names):
    """``'a, b, c, d, e and 3 more'``: the first names, for error and warning messages."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:_MAX_LISTED])
    return shown if len(names) <= _MAX_LISTED else f"{shown} and {len(names) - _MAX_LISTED} more"


def check_anomaly_labels(y, name="y_true"):
    """Return ``y`` as a 1-D int array of 0 (normal) / 1 (anomaly), or raise ValueError.

    Accepts 0/1 (int, float or bool) and the strings ``"normal"``/``"anomaly"`` (the ``label``
    column of :func:`skasd.datasets.load_dcase`).
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}.")
    if y.dtype.kind in "OUS":
        y = y.astype(object)
        unknown = [v for v in pd.unique(y) if _LABEL_NAMES.get(v, v) not in (0, 1) or v is None]
        if unknown:
            raise ValueError(
                f"{name} must hold 'normal'/'anomaly' or 0/1; found {unknown[:5]!r}"
                " (None means an unlabelled clip, which cannot be scored)."
            )
        return np.array([_LABEL_NAMES.get(v, v) for v in y], dtype=int)
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold 0/1 or 'normal'/'anomaly', got dtype {y.dtype}.")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{name} contains NaN labels.")
    bad = np.setdiff1d(np.unique(y), [0, 1])
    if bad.size:
        raise ValueError(
            f"{name} must use 1 = anomaly, 0 = normal; found values {bad[:5].tolist()}"
            " (note: predict() returns 1 = normal, -1 = anomaly, not metric labels)."
        )
    return y.astype(int)


def normal_mask(y, n, name):
    """Boolean mask of the training clips not labelled anomalous, or None to keep them all.

    ``y`` is read by :func:`check_anomaly_labels`. A ``y`` that is not an anomaly labelling
    (machine IDs, multi-class targets such as scikit-learn's estimator checks pass) says
    nothing about anomalies: all clips are kept (None), as ``IsolationForest`` ignores ``y``.
    A ``y`` of the wrong shape, or one that marks every clip anomalous, raises ValueError.
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"{name}: y must hold one label per clip ({n}); got shape {y.shape}.")
    try:
        anomaly = check_anomaly_labels(y, "y") == 1
    except ValueError:
        return None
    if anomaly.all():
        raise ValueError(f"{name}: all n_samples={n} clips are labelled anomalous (y == 1); train on normal clips.")
    return ~anomaly if anomaly.any() else None


def clip_labels(labels, name, n, owner, *, one_for_all=False, dtype=None):
    """Per-clip ``domain``/``section`` labels as a 1-D array of ``n`` (None stays None), or
    ValueError naming ``owner`` (the estimator's class name). ``one_for_all``: a single label
    (a scalar) stands for every clip, as ``partial_fit`` takes it."""
    if labels is None:
        return None
    if one_for_all and np.ndim(labels) == 0:
        labels = np.full(n, labels, dtype=object)
    labels = np.asarray(labels, dtype=dtype)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{owner}: {name} must hold one label per clip ({n}); got shape {labels.shape}.")
    if pd.isna(labels).any():
        raise ValueError(f"{owner}: {name} contains missing values (None/NaN); give every clip a {name}.")
    return labels


def check_scores(scores, n=None, *, name="y_score", names=None):
    """Return ``scores`` as a finite, non-empty 1-D float array (of ``n`` entries), or raise ValueError.

    ``names`` (one per clip) names the first non-finite score's clip in the message.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array (one score per clip); got shape {scores.shape}."
        )
    if n is not None and len(scores) != n:
        raise ValueError(f"{name} must hold one score per clip: {n} clips, got {len(scores)} scores.")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        first = f"clip {bad[0]}" if names is None else str(names[bad[0]])
        raise ValueError(
            f"{name} contains {bad.size} NaN or infinite value(s), the first at {first}; "
            "a detector produced invalid anomaly scores."
        )
    return scores

