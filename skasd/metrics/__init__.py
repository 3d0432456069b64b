"""DCASE metrics and scorers for anomalous sound detection.

Labels: 1 (or ``"anomaly"``) = anomalous clip, 0 (or ``"normal"``) = normal.
Scores: higher = more anomalous (``anomaly_score``, or ``-score_samples``).

``auc_scorer`` and ``pauc_scorer`` are shared instances: to set a metadata
request (``set_score_request``), make a fresh scorer with
:func:`make_anomaly_scorer` instead of changing them.
"""

from ._ranking import auc_score, dcase_report, dcase_result_table, pauc_score
from ._scorer import auc_scorer, make_anomaly_scorer, pauc_scorer

__all__ = [
    "auc_score",
    "auc_scorer",
    "dcase_report",
    "dcase_result_table",
    "make_anomaly_scorer",
    "pauc_score",
    "pauc_scorer",
]
