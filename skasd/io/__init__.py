"""Files skasd writes and reads.

- Safe model files (``_container``: the zip archive; ``_codec``: the estimator tree):
  :func:`save`, :func:`load`, :func:`model_info`, which never unpickle.
- Either model format, skasd or joblib, chosen by name (``_formats``).
- DCASE output files (``_submission``): :func:`write_submission` and ``result.csv``.
"""

from ..exceptions import ModelFileError
from ._container import is_model_file, load, model_info, save
from ._formats import FORMATS, load_model_file, model_format, save_model_file
from ._submission import result_csv, submission_file_names, write_submission

__all__ = [
    "FORMATS",
    "ModelFileError",
    "is_model_file",
    "load",
    "load_model_file",
    "model_format",
    "model_info",
    "result_csv",
    "save",
    "save_model_file",
    "submission_file_names",
    "write_submission",
]
