"""Cross-validation for anomaly detectors trained on normal clips only.

Both splitters work as ``cv=`` of ``GridSearchCV``/``cross_validate``. Machine
IDs or sections travel by scikit-learn metadata routing, never inside ``y``::

    sklearn.set_config(enable_metadata_routing=True)
    detector.set_fit_request(machine_id=True)
    scorer = make_anomaly_scorer("pauc").set_score_request(machine_id=True)
    cv = NormalTrainCV().set_split_request(groups="machine_id")
    GridSearchCV(detector, grid, scoring=scorer, cv=cv).fit(X, y, machine_id=ids)

Without routing, ``GridSearchCV(..., cv=NormalTrainCV()).fit(X, y, groups=ids)``
passes the IDs to the splitter only.
"""

from ._split import DCASESplit, NormalTrainCV

__all__ = ["DCASESplit", "NormalTrainCV"]
