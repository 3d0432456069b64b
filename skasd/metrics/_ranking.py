"""DCASE ranking metrics: AUC, partial AUC and the per-section report.

Labels: 1 (or ``"anomaly"``) = anomalous clip, 0 (or ``"normal"``) = normal clip.
Scores: higher = more anomalous (the DCASE sign, ``anomaly_score``).
"""

import sys
from numbers import Real

import numpy as np
import pandas as pd
from scipy.stats import hmean
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from ..utils._validation import check_anomaly_labels, check_scores

_DOMAINS = ("source", "target")


def _check_both_classes(y, where=""):
    n_anomaly = int(y.sum())
    if n_anomaly == 0 or n_anomaly == len(y):
        only = "anomalous" if n_anomaly else "normal"
        raise ValueError(
            f"AUC needs both normal and anomalous clips, but {where or 'y_true'} holds only"
            f" {only} clips ({len(y)})."
        )


def _check_max_fpr(max_fpr):
    if isinstance(max_fpr, bool) or not isinstance(max_fpr, Real) or not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must be a number in (0, 1], got {max_fpr!r}.")


def _checked(y_true, y_score):
    y = check_anomaly_labels(y_true)
    s = check_scores(y_score, len(y))
    _check_both_classes(y)
    return y, s


def auc_score(y_true, y_score):
    """Area under the ROC curve, the DCASE task 2 AUC.

    Equal to ``sklearn.metrics.roc_auc_score(y_true, y_score)``, with input checks.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 or ``"anomaly"`` = anomalous clip, 0 or ``"normal"`` = normal clip.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous (``anomaly_score``, or
        ``-score_samples`` of an outlier detector).

    Returns
    -------
    auc : float

    Raises
    ------
    ValueError
        If ``y_true`` holds one class only or unknown labels, ``y_score`` is
        not finite, or the lengths differ.

    Examples
    --------
    >>> from skasd.metrics import auc_score
    >>> auc_score(["normal", "normal", "anomaly"], [0.1, 0.4, 0.9])
    1.0
    """
    y, s = _checked(y_true, y_score)
    return float(roc_auc_score(y, s))


def pauc_score(y_true, y_score, max_fpr=0.1):
    """Partial AUC over false-positive rates in ``[0, max_fpr]``, as DCASE task 2 does.

    Equal to ``sklearn.metrics.roc_auc_score(y_true, y_score, max_fpr=max_fpr)``,
    which is the call of the DCASE evaluators. Note that scikit-learn returns
    the McClish-standardised partial AUC (0.5 = chance, 1 = perfect), not the
    raw area divided by ``max_fpr``.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 or ``"anomaly"`` = anomalous clip, 0 or ``"normal"`` = normal clip.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous.
    max_fpr : float in (0, 1], default=0.1
        Largest false-positive rate of the partial area (DCASE: 0.1).
        ``max_fpr=1`` gives the full AUC.

    Returns
    -------
    pauc : float

    Examples
    --------
    >>> from skasd.metrics import pauc_score
    >>> round(pauc_score([0, 0, 0, 1], [0.1, 0.2, 0.9, 0.8]), 3)
    0.474
    """
    _check_max_fpr(max_fpr)
    y, s = _checked(y_true, y_score)
    return float(roc_auc_score(y, s, max_fpr=max_fpr))


def _check_domains(domains, n_samples):
    domains = np.asarray(domains, dtype=object)
    if domains.ndim != 1 or len(domains) != n_samples:
        raise ValueError(
            f"domains must give one 'source'/'target' per clip: {n_samples} clips, got"
            f" shape {domains.shape}."
        )
    unknown = [d for d in pd.unique(domains) if d not in _DOMAINS]
    if unknown:
        raise ValueError(f"domains must be 'source' or 'target'; found {unknown[:5]!r}.")
    return domains


def dcase_report(y_true, y_score, groups, domains=None, max_fpr=0.1):
    """Per-section (or per-machine-ID) AUC and pAUC table in the DCASE layout.

    One row per group, sorted by name, then the rows ``"arithmetic mean"``
    and ``"harmonic mean"``: the column-wise means over the group rows. The
    harmonic mean floors each value at ``sys.float_info.epsilon`` as the
    DCASE evaluators do; the DCASE 2021+ official score is a harmonic mean.

    Without ``domains`` (DCASE 2020) the columns are ``"AUC"`` and ``"pAUC"``,
    both over all clips of the group.

    With ``domains`` (DCASE 2021+) the columns follow the DCASE 2022/2023
    evaluator:

    - ``"AUC (source)"``: the group's source-domain normals and **all** its
      anomalies (source and target),
    - ``"AUC (target)"``: the group's target-domain normals and all its anomalies,
    - ``"pAUC"``: over all clips of the group, both domains.

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 or ``"anomaly"`` = anomalous, 0 or ``"normal"`` = normal.
    y_score : array-like of shape (n_clips,)
        Anomaly scores, higher = more anomalous.
    groups : array-like of shape (n_clips,)
        Machine ID or section of each clip (``"id_00"``, ``"section_00"``...);
        the row names. Values are shown as strings.
    domains : array-like of shape (n_clips,), default=None
        ``"source"`` or ``"target"`` per clip (the ``domain`` column of
        :func:`skasd.datasets.load_dcase`).
    max_fpr : float in (0, 1], default=0.1
        Largest false-positive rate of the pAUC.

    Returns
    -------
    report : pandas.DataFrame
        Index named ``"section"``: the groups, then the two mean rows.

    Raises
    ------
    ValueError
        On the input errors of :func:`auc_score`, on a group without normals
        or without anomalies, and (with ``domains``) on a group without normals
        of one domain.

    Examples
    --------
    >>> from skasd.metrics import dcase_report
    >>> report = dcase_report([0, 0, 1, 0, 0, 1], [1, 2, 3, 1, 4, 2],
    ...                       groups=["id_00"] * 3 + ["id_02"] * 3)
    >>> print(report.round(3).to_string(index_names=False))
                       AUC   pAUC
    id_00            1.000  1.000
    id_02            0.500  0.474
    arithmetic mean  0.750  0.737
    harmonic mean    0.667  0.643
    """
    _check_max_fpr(max_fpr)
    y = check_anomaly_labels(y_true)
    s = check_scores(y_score, len(y))
    groups = np.asarray(groups, dtype=object)
    if groups.ndim != 1 or len(groups) != len(y):
        raise ValueError(
            f"groups must give one machine ID/section per clip: {len(y)} clips, got"
            f" shape {groups.shape}."
        )
    if pd.isna(groups).any():
        raise ValueError("groups contains missing values (None/NaN).")
    groups = groups.astype(str)
    if domains is not None:
        domains = _check_domains(domains, len(y))

    rows = {}
    for group in np.unique(groups).tolist():
        in_group = groups == group
        _check_both_classes(y[in_group], where=f"group {group!r}")
        row = {}
        if domains is None:
            row["AUC"] = roc_auc_score(y[in_group], s[in_group])
        else:
            for domain in _DOMAINS:
                mask = in_group & ((domains == domain) | (y == 1))
                if not (y[mask] == 0).any():
                    raise ValueError(
                        f"group {group!r} has no {domain}-domain normal clips, so its"
                        f" AUC ({domain}) is undefined."
                    )
                row[f"AUC ({domain})"] = roc_auc_score(y[mask], s[mask])
        row["pAUC"] = roc_auc_score(y[in_group], s[in_group], max_fpr=max_fpr)
        rows[group] = row

    report = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    values = report.to_numpy()
    report.loc["arithmetic mean"] = values.mean(axis=0)
    report.loc["harmonic mean"] = hmean(np.maximum(values, sys.float_info.epsilon), axis=0)
    report.index.name = "section"
    return report


def dcase_result_table(y_true, y_score, y_pred, groups, domains, max_fpr=0.1):
    """The DCASE 2022-2024 ``result.csv`` table: per section, both domains, and the means.

    The columns of the official evaluator: ``"AUC (source)"``, ``"AUC (target)"`` (that
    domain's normals and all the section's anomalies), ``"pAUC"`` (all the section's clips),
    ``"pAUC (source)"``, ``"pAUC (target)"`` (that domain's clips only), and per domain
    ``"precision"``, ``"recall"`` and ``"F1 score"`` of the decisions ``y_pred`` (1 =
    anomaly) on that domain's clips, normals and anomalies: the official
    ``dcase2023_task2_evaluator.py`` and the 2023 baseline's test count the confusion matrix on
    the domain's clips alone, unlike the AUC, and give 0 (not NaN) where nothing is flagged.
    The rows are the sections, then ``"arithmetic mean"``
    and ``"harmonic mean"`` (floored at ``sys.float_info.epsilon`` as the evaluator does).

    Parameters
    ----------
    y_true : array-like of shape (n_clips,)
        1 (or ``"anomaly"``) for anomalous clips, 0 (or ``"normal"``) for normal ones.
    y_score : array-like of shape (n_clips,)
        Anomaly scores (higher = more anomalous).
    y_pred : array-like of shape (n_clips,)
        Decisions, 1 (or ``"anomaly"``) = flagged: e.g. ``predict(X) == -1``.
    groups : array-like of shape (n_clips,)
        Section of each clip.
    domains : array-like of shape (n_clips,)
        ``"source"`` or ``"target"`` per clip.
    max_fpr : float, default=0.1
        The pAUC's false-positive-rate limit.

    Returns
    -------
    table : pandas.DataFrame
        One row per section plus the two means, the columns above.

    Raises
    ------
    ValueError
        As :func:`dcase_report`; also where a section has no clip of one domain's anomalies
        for its pAUC per domain.
    """
    y, s = _checked(y_true, y_score)
    pred = check_anomaly_labels(y_pred, "y_pred")
    if len(pred) != len(y):
        raise ValueError(f"y_pred has {len(pred)} decisions for {len(y)} clips.")
    groups = np.asarray(groups, dtype=object)
    domains = _check_domains(domains, len(y))
    auc = dcase_report(y, s, groups, domains=domains, max_fpr=max_fpr)
    rows = {}
    for group in auc.index.drop(["arithmetic mean", "harmonic mean"]):
        row = auc.loc[group].to_dict()
        in_group = groups == group
        for domain in _DOMAINS:
            mask = in_group & (domains == domain)
            _check_both_classes(y[mask], f"the {domain}-domain clips of group {group!r}")
            row[f"pAUC ({domain})"] = roc_auc_score(y[mask], s[mask], max_fpr=max_fpr)
        for domain in _DOMAINS:
            mask = in_group & (domains == domain)
            p, r, f, _ = precision_recall_fscore_support(y[mask], pred[mask], average="binary", zero_division=0.0)
            row[f"precision ({domain})"], row[f"recall ({domain})"], row[f"F1 score ({domain})"] = p, r, f
        rows[group] = row
    columns = ["AUC (source)", "AUC (target)", "pAUC", "pAUC (source)", "pAUC (target)",
               *(f"{m} ({d})" for m in ("precision", "recall", "F1 score") for d in _DOMAINS)]
    table = pd.DataFrame.from_dict(rows, orient="index")[columns]
    values = table.to_numpy(float)
    table.loc["arithmetic mean"] = values.mean(axis=0)
    table.loc["harmonic mean"] = hmean(np.maximum(values, sys.float_info.epsilon), axis=0)
    return table
