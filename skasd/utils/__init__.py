"""Helpers shared across skasd; no public API.

- ``_validation``: anomaly labels, score arrays, the anomalous-clip mask and message listings;
- ``_docstring``: :class:`Substitution`, the one way docstrings share text;
- ``_sklearn_compat``: the only module that imports scikit-learn's private API;
- ``_torch_compat``: the torch device rule and thread control (imports torch);
- ``_atomic``: atomic writes of output files.
"""
