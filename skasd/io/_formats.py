"""Model files in either format: skasd's own (safe) or joblib (a pickle, for trusted use)."""

from pathlib import Path

import joblib

from ..utils._atomic import atomic_path
from ._container import is_model_file, load, save

__all__ = ["FORMATS", "load_model_file", "model_format", "save_model_file"]

FORMATS = ("skasd", "joblib")


def model_format(path, fmt=None):
    """``fmt``, or the format a model file name implies: joblib for ``.joblib``/``.pkl``, else skasd."""
    if fmt is not None:
        return fmt
    return "joblib" if Path(path).suffix.lower() in (".joblib", ".pkl") else "skasd"


def save_model_file(estimator, path, fmt=None, metadata=None):
    """Write ``estimator`` atomically as a skasd model file (:func:`~skasd.save`, with
    ``metadata``) or, for ``fmt="joblib"`` (default for a ``.joblib``/``.pkl`` name), a joblib
    pickle. Raises :class:`~skasd.ModelFileError` where the skasd format cannot store it."""
    if model_format(path, fmt) == "joblib":
        with atomic_path(path) as tmp:
            joblib.dump(estimator, tmp)
        return Path(path)
    return save(estimator, path, metadata=metadata)


def load_model_file(path):
    """Read a file written by :func:`save_model_file`, detecting its format by its first bytes.

    A skasd model file (a zip archive) is rebuilt without unpickling (:func:`~skasd.load`); any
    other file is read with :func:`joblib.load`, which runs code from the file: load only joblib
    files you trust.
    """
    return load(path) if is_model_file(path) else joblib.load(path)
