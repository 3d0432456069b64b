"""The workflows behind the ``skasd`` command line, as library functions.

- ``_pipeline``: the command line's models (:data:`MODELS`, :func:`build_pipeline`: features,
  an optional embedding and a detector; :func:`fit_pipeline` with the folder's metadata), saved and loaded in either model format (:func:`save_model`, :func:`load_model`).
- ``_scoring``: the clips of a DCASE folder (:func:`load_clips`) through a fitted pipeline, in
  memory (:func:`score_clips`) or streamed in chunks (:func:`score_stream`).
- ``_explain``: explanations of audio files (:func:`explain_files`, printed by
  :func:`format_explanation`) and their frame scores beside the submission files
  (:func:`write_frame_scores`).
- ``_adapt``: a fitted model's detector extended with a folder of normal clips as a new domain or
  section (:func:`adapt_model`, ``skasd adapt``).
- ``_log`` and ``_watch``: what ``skasd watch`` does: :class:`Monitor` scores each new file of a
  folder once into a JSON-lines log (:class:`WatchLog`, read back by :func:`read_records`,
  its clips by :func:`log_clips`) and tests the recent scores for drift.
- ``_weights``: pretrained weights in the user's cache (:func:`fetch_weights`,
  :func:`list_weights`), for ``skasd weights``.
- ``_experiment``: the founding report's experiment (:func:`reproduce_report`), the demo
  (:func:`run_demo`) and the evaluation plots (:func:`write_plots`).

Problems of the request (a missing folder, an unknown model, files that do not decode) raise
:class:`~skasd.exceptions.UsageError`, whose message the command line prints as is.
"""

from ._adapt import adapt_model, clip_durations
from ._explain import clip_sections, explain_files, format_explanation, write_frame_scores
from ._experiment import REPORT_ROWS, report_models, reproduce_report, run_demo, write_dcase_layout, write_plots
from ._pipeline import (
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    FALLBACK_MODEL,
    MODELS,
    SINGLE_DOMAIN_MODEL,
    build_pipeline,
    default_model,
    describe_models,
    feature_step,
    fit_pipeline,
    load_model,
    save_model,
)
from ._log import WatchLog, log_clips, read_records
from ._scoring import (
    CHUNK_SIZE,
    FeaturesOnDemand,
    anomaly_thresholds,
    clip_hashes,
    load_clips,
    score_clips,
    score_stream,
    section_labels,
    warn_in_sample,
)
from ._watch import Monitor
from ._weights import describe_weights, ensure_weights, fetch_weights, list_weights

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "FALLBACK_MODEL",
    "MODELS",
    "REPORT_ROWS",
    "SINGLE_DOMAIN_MODEL",
    "FeaturesOnDemand",
    "Monitor",
    "WatchLog",
    "adapt_model",
    "anomaly_thresholds",
    "build_pipeline",
    "clip_durations",
    "clip_hashes",
    "clip_sections",
    "default_model",
    "describe_models",
    "ensure_weights",
    "feature_step",
    "describe_weights",
    "explain_files",
    "fetch_weights",
    "fit_pipeline",
    "format_explanation",
    "load_clips",
    "list_weights",
    "load_model",
    "log_clips",
    "report_models",
    "read_records",
    "reproduce_report",
    "run_demo",
    "save_model",
    "score_clips",
    "score_stream",
    "section_labels",
    "warn_in_sample",
    "write_dcase_layout",
    "write_frame_scores",
    "write_plots",
]
