"""The command line's model: a feature step and a detector in one Pipeline, saved and loaded."""

from numbers import Integral
from pathlib import Path

from sklearn.pipeline import Pipeline

from .. import models
from ..exceptions import ModelFileError, UsageError
from ..features._spectral import LogMelTransformer, _SpectralTransformer
from ..io._formats import load_model_file, save_model_file

__all__ = ["MODELS", "build_pipeline", "load_model", "save_model"]

# Command-line name -> detector in skasd.models (looked up when used: torch loads then).
MODELS = {"denseae": "DenseAE", "vae": "VAE", "cnnae": "CNNAE"}


def build_pipeline(model="cnnae", params=None, verbose=True):
    """The CLI's model: ``Pipeline([("features", LogMelTransformer()), ("model", <detector>)])``.

    ``params`` keys name detector parameters (``max_epochs``) or, with the
    ``features__`` prefix, feature parameters (``features__n_mels``). An unknown model or
    parameter raises :class:`~skasd.exceptions.UsageError`.
    """
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    pipe = Pipeline([
        ("features", LogMelTransformer(verbose=verbose)),
        ("model", getattr(models, MODELS[model])(verbose=int(verbose))),
    ])
    routed = {k if k.startswith("features__") else f"model__{k}": v for k, v in (params or {}).items()}
    valid = pipe.get_params(deep=True)
    unknown = [k.split("__", 1)[1] for k in routed if k not in valid]
    if unknown:
        names = sorted(k for k in pipe.named_steps["model"].get_params(deep=False))
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)} for {model}; valid: {', '.join(names)}")
    return pipe.set_params(**routed)


def save_model(pipe, path, fmt=None, metadata=None):
    """Save a fitted pipeline atomically: the safe skasd model format, or joblib (a pickle).

    ``fmt`` None: joblib for a ``.joblib``/``.pkl`` file name, else skasd. Raises
    :class:`~skasd.ModelFileError` where the skasd format cannot store the pipeline.
    """
    return save_model_file(pipe, path, fmt, metadata=metadata)


def load_model(path, verbose=True):
    """Load a pipeline saved by :func:`save_model`, detecting its format, and check it.

    A skasd model file (a zip archive) is rebuilt without unpickling; any other file is
    read with joblib, which runs code from the file: load only joblib files you trust. The
    pipeline must end in a skasd detector, and its feature step must make the bands the
    detector was fitted on; else :class:`~skasd.exceptions.UsageError`.
    """
    if not Path(path).is_file():
        raise UsageError(f"model file not found: {path}")
    try:
        pipe = load_model_file(path)
    except ModelFileError as exc:
        raise UsageError(f"cannot read model file {exc}") from exc
    except Exception as exc:  # joblib: anything unpickling raises
        raise UsageError(f"cannot read model file {path}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(pipe, Pipeline) and hasattr(pipe[-1], "anomaly_score")):
        raise UsageError(f"{path} is not a skasd model (expected a Pipeline ending in a skasd detector)")
    if "features" in pipe.named_steps:
        pipe.set_params(features__verbose=verbose)
    _check_model(pipe, path)
    return pipe


def feature_step(pipe):
    """The pipeline's first step when it turns audio into log-mel/MFCC features, else None."""
    return pipe[0] if isinstance(pipe[0], _SpectralTransformer) else None


def audio_step(pipe):
    """The pipeline's first step when it decodes audio at a sample rate ``sr``, else None."""
    sr = pipe[0].get_params().get("sr") if hasattr(pipe[0], "get_params") else None
    return pipe[0] if isinstance(sr, Integral) and not isinstance(sr, bool) else None


def _check_model(pipe, path):
    """The feature step's bands must be what the detector was fitted on."""
    feat, detector = feature_step(pipe), pipe[-1]
    if feat is None or len(pipe) != 2 or "n_features_in_" not in vars(detector):
        return
    name, bands = ("n_mfcc", feat.n_mfcc) if hasattr(feat, "n_mfcc") else ("n_mels", feat.n_mels)
    if bands != detector.n_features_in_:
        raise UsageError(
            f"{path}: the features do not match the model: its {type(feat).__name__} makes "
            f"{name}={bands} bands but its {type(detector).__name__} was fitted on "
            f"{detector.n_features_in_} (n_features_in_)"
        )

