"""The scikit-learn API skasd relies on that is private or version-dependent, in one place.

Every other skasd module imports these names from here, so that a scikit-learn release that
moves one of them is fixed in this file alone (imbalanced-learn's ``utils/_sklearn_compat.py``
is the model). skasd needs scikit-learn >= 1.6: ``validate_data`` and the ``__sklearn_tags__``
API appeared there.
"""

from sklearn.metrics._scorer import _BaseScorer
from sklearn.utils._indexing import _safe_indexing
from sklearn.utils._param_validation import HasMethods, Interval, InvalidParameterError, StrOptions
from sklearn.utils.metadata_routing import _raise_for_params, _routing_enabled
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import _check_method_params, _num_samples, validate_data

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "_BaseComposition",
    "_BaseScorer",
    "_check_method_params",
    "_num_samples",
    "_raise_for_params",
    "_routing_enabled",
    "_safe_indexing",
    "fitted_rows",
    "validate_data",
]


def fitted_rows(nearest_neighbors):
    """The training rows a fitted :class:`~sklearn.neighbors.NearestNeighbors` searches
    (its private ``_fit_X``, as fitted: after any transformation its caller applied)."""
    return nearest_neighbors._fit_X
