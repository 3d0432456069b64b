"""AUC / pAUC scorers for ``GridSearchCV``, ``cross_validate`` and friends.

A scorer is called as ``scorer(estimator, X, y)`` with y: 1 = anomaly,
0 = normal. It takes the anomaly scores from the first of

1. ``estimator.anomaly_score(X)`` (skasd detectors, DCASE sign),
2. ``-estimator.score_samples(X)`` (sklearn outlier detectors, Pipelines),
3. ``-estimator.decision_function(X)``,

so higher always means more anomalous, a perfect detector scores 1.0 and
its negation 0.0.

The scorers subclass scikit-learn's (private) ``_BaseScorer``: in a
multi-metric ``scoring={"auc": auc_scorer, "pauc": pauc_scorer}`` the
estimator's response is computed once per fold and shared, and metadata
routing works as for sklearn's own scorers (``set_score_request``).
"""

import inspect

import numpy as np
from sklearn.base import is_classifier
from ..utils._sklearn_compat import _BaseScorer
from ..utils._validation import check_anomaly_labels
from ._ranking import _check_max_fpr, auc_score, pauc_score

# Response methods in order of preference, and the sign that makes them
# "higher = more anomalous".
_RESPONSES = {"anomaly_score": 1, "score_samples": -1, "decision_function": -1}
_METRICS = {"auc": auc_score, "pauc": pauc_score}


def _accepts(method, params):
    """Whether bound ``method`` accepts the keyword arguments ``params``."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return True
    return set(params) <= {p.name for p in parameters}


class _AnomalyScorer(_BaseScorer):
    """Scorer of anomaly detectors; build it with :func:`make_anomaly_scorer`."""

    def __init__(self, name, score_func, kwargs):
        super().__init__(
            score_func=score_func,
            sign=1,
            kwargs=kwargs,
            response_method=tuple(_RESPONSES),
        )
        self._name = name

    def __repr__(self):
        kwargs = "".join(f", {k}={v!r}" for k, v in self._kwargs.items())
        return f"make_anomaly_scorer({self._name!r}{kwargs})"

    def _response(self, estimator, params):
        """Name of the response method to call with the routed ``params``."""
        for name in _RESPONSES:
            method = getattr(estimator, name, None)
            if method is not None and (not params or _accepts(method, params)):
                return name
        wanted = ", ".join(_RESPONSES)
        if params:
            raise TypeError(
                f"{self!r} was routed {sorted(params)} but none of {wanted} of"
                f" {type(estimator).__name__} accepts them."
            )
        raise AttributeError(
            f"{self!r} needs an estimator with one of {wanted};"
            f" {type(estimator).__name__} has none."
        )

    def _score(self, method_caller, estimator, X, y_true, **kwargs):
        """Score ``estimator`` on ``X``; routed ``kwargs`` go to its response method.

        Without routed metadata the response goes through sklearn's
        ``method_caller``, whose cache a multi-metric scorer shares.
        """
        name = self._response(estimator, kwargs)
        if kwargs or not hasattr(estimator, "__sklearn_tags__") or is_classifier(estimator):
            response = getattr(estimator, name)(X, **kwargs)
        else:
            response = method_caller(estimator, name, X)
        y_score = _RESPONSES[name] * np.asarray(response, dtype=float)
        return self._score_func(check_anomaly_labels(y_true), y_score, **self._kwargs)


def make_anomaly_scorer(metric, **kwargs):
    """Make a scorer ``scorer(estimator, X, y)`` for anomaly detectors.

    Parameters
    ----------
    metric : {"auc", "pauc"} or callable
        ``"auc"`` uses :func:`auc_score`, ``"pauc"`` :func:`pauc_score`; a
        callable ``metric(y_true, y_score, **kwargs)`` gets y as 0/1 ints and
        scores where higher = more anomalous (e.g.
        ``sklearn.metrics.average_precision_score``).
    **kwargs
        Fixed keyword arguments of the metric, e.g. ``max_fpr=0.05``.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y)`` returning a float, greater is better. It
        uses ``estimator.anomaly_score(X)``, else ``-score_samples(X)``, else
        ``-decision_function(X)``. Picklable when ``metric`` is.

    Notes
    -----
    With ``sklearn.set_config(enable_metadata_routing=True)``,
    ``scorer.set_score_request(machine_id=True)`` makes
    ``GridSearchCV.fit(X, y, machine_id=ids)`` pass each test fold's ids to
    the estimator's response method: the first of the three methods above
    that accepts them (for a ``Pipeline`` that is ``decision_function``,
    which routes ``machine_id`` to steps that set
    ``set_decision_function_request(machine_id=True)``).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from skasd.metrics import make_anomaly_scorer
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(size=(50, 2)), rng.normal(6, 1, size=(5, 2))]
    >>> y = np.r_[np.zeros(50), np.ones(5)]
    >>> scorer = make_anomaly_scorer("pauc", max_fpr=0.05)
    >>> scorer(IsolationForest(random_state=0).fit(X[:50]), X, y)
    1.0
    """
    if isinstance(metric, str):
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)} or a callable, got {metric!r}.")
        name, score_func = metric, _METRICS[metric]
    elif callable(metric):
        name, score_func = getattr(metric, "__name__", repr(metric)), metric
    else:
        raise TypeError(f"metric must be a string or a callable, got {type(metric).__name__}.")
    try:
        inspect.signature(score_func).bind(None, None, **kwargs)
    except TypeError as exc:
        raise TypeError(f"invalid arguments {kwargs} for metric {name!r}: {exc}") from None
    if "max_fpr" in kwargs and score_func is pauc_score:
        _check_max_fpr(kwargs["max_fpr"])
    return _AnomalyScorer(name, score_func, kwargs)


auc_scorer = make_anomaly_scorer("auc")
auc_scorer.__doc__ = "Scorer of the DCASE AUC (:func:`auc_score`) for anomaly detectors."
pauc_scorer = make_anomaly_scorer("pauc", max_fpr=0.1)
pauc_scorer.__doc__ = "Scorer of the DCASE pAUC, max_fpr=0.1 (:func:`pauc_score`)."
