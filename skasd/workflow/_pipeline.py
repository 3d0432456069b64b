"""The command line's model: a feature step and a detector in one Pipeline, saved and loaded."""

import inspect
import warnings
from numbers import Integral
from pathlib import Path

from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .. import models
from ..exceptions import ModelFileError, UsageError
from ..features._clip_stats import ClipStatsTransformer
from ..features._pretrained import PretrainedEmbedding
from ..features._spectral import LogMelTransformer, _SpectralTransformer
from ..features._spectrum import SpectrumTransformer
from ..io._formats import load_model_file, save_model_file

__all__ = [
    "DEFAULT_MODEL", "FALLBACK_MODEL", "SINGLE_DOMAIN_MODEL", "MODELS", "build_pipeline", "default_model",
    "describe_models", "feature_step", "fit_pipeline", "load_model", "save_model",
]


class _Spec:
    """A command-line model: a one-line summary, its main parameters, and its steps."""

    def __init__(self, summary, main, steps):
        self.summary, self.main, self.steps = summary, main, steps


_FEATURES = {"logmel": LogMelTransformer, "clipstats": ClipStatsTransformer, "spectrum": SpectrumTransformer}


def _inlier(name, features="logmel", **params):
    """Steps of an inlier detector (domain-normalised) on log-mel, clip statistics or clip spectra."""

    def steps(verbose):
        return [("features", _FEATURES[features](verbose=verbose)),
                ("model", getattr(models, name)(domain_norm="zscore", **params))]

    return steps


def _pretrained(name, **params):
    """Steps of an inlier detector on the aisfx embedding (weights from the user's skasd cache,
    ``skasd weights fetch aisfx``), centred by the training mean."""

    def steps(verbose):
        return [("features", PretrainedEmbedding(model="aisfx", verbose=verbose)),
                ("centre", StandardScaler(with_std=False)),
                ("model", getattr(models, name)(domain_norm="zscore", **params))]

    return steps


def _fused(verbose):
    """The spectrum k-NN (the ``knn-spectrum`` recipe) and the aisfx-embedding k-NN (centred,
    cosine, the nearest clip of either domain), fused by the ranks of their scores among the
    training clips' leave-one-out scores: each sub-pipeline decodes the clips itself."""
    spectrum = Pipeline([("features", SpectrumTransformer(verbose=verbose)),
                         ("model", models.KNNDetector(metric="euclidean", domain_norm="zscore"))])
    aisfx = Pipeline([("features", PretrainedEmbedding(model="aisfx", verbose=verbose)),
                      ("centre", StandardScaler(with_std=False)),
                      ("model", models.KNNDetector(metric="cosine"))])
    return [("features", "passthrough"),
            ("model", models.ScoreFusion([("spectrum", spectrum), ("aisfx", aisfx)], method="rank"))]


def _autoencoder(name):
    return lambda verbose: [("features", LogMelTransformer(verbose=verbose)),
                            ("model", getattr(models, name)(verbose=int(verbose)))]


def _embedding(name):
    def steps(verbose):
        return [("features", LogMelTransformer(verbose=verbose)),
                ("embedding", models.ClassifierEmbedding(verbose=int(verbose))),
                ("model", getattr(models, name)(domain_norm="zscore"))]

    return steps


# Command-line name -> model. Inlier models fit one model per (section, domain) and one
# threshold per section; the embedding learns to tell section x attribute x domain apart.
MODELS = {
    "knn-fusion": _Spec("the knn-spectrum k-NN and a k-NN (cosine) on the pretrained aisfx embedding, fused by the "
                        "ranks of their scores among the training clips'; weights: skasd weights fetch aisfx",
                        "spectrum__features__n_fft, aisfx__features__weights, weights", _fused),
    "knn-spectrum": _Spec("k-NN (Euclidean) on each clip's level-normalised log power spectrum (4 Hz bins), "
                          "per section and domain, domain-normalised: the recipe for DCASE data",
                          "n_neighbors, features__n_fft, features__level", _inlier("KNNDetector", "spectrum",
                                                                                    metric="euclidean")),
    "knn": _Spec("k-NN on log-mel band statistics, per section and domain, domain-normalised",
                 "n_neighbors, metric", _inlier("KNNDetector")),
    "mahalanobis": _Spec("Mahalanobis distance on log-mel band statistics, per section and domain",
                         "covariance", _inlier("MahalanobisDetector")),
    "gmm": _Spec("Gaussian mixture on log-mel band statistics, per section and domain",
                 "n_components, covariance_type", _inlier("GMMDetector")),
    "knn-clipstats": _Spec("k-NN on clip statistics (level, crest factor, spectral shape, MFCCs)",
                           "n_neighbors, features__n_mfcc", _inlier("KNNDetector", "clipstats")),
    "mahalanobis-clipstats": _Spec("Mahalanobis distance on clip statistics", "covariance",
                                   _inlier("MahalanobisDetector", "clipstats")),
    "gmm-clipstats": _Spec("Gaussian mixture on clip statistics", "n_components",
                           _inlier("GMMDetector", "clipstats")),
    "knn-aisfx": _Spec("k-NN (cosine) on the pretrained aisfx embedding (mean and std of 2.3 s blocks, centred), "
                       "per section and domain, domain-normalised; weights: skasd weights fetch aisfx",
                       "n_neighbors, features__weights, features__layer", _pretrained("KNNDetector", metric="cosine")),
    "embedding-knn": _Spec("classifier embedding (section x attribute x domain classes) + k-NN",
                           "embedding__max_epochs, embedding__loss, n_neighbors", _embedding("KNNDetector")),
    "embedding-gmm": _Spec("classifier embedding + Gaussian mixture",
                           "embedding__max_epochs, n_components", _embedding("GMMDetector")),
    "denseae": _Spec("DCASE 2020 baseline dense autoencoder on 5-frame log-mel windows",
                     "max_epochs, frames, l2", _autoencoder("DenseAE")),
    "vae": _Spec("the founding report's variational autoencoder", "max_epochs, batch_norm, beta",
                 _autoencoder("VAE")),
    "cnnae": _Spec("the founding report's CNN autoencoder (skip connections, SVDD loss)",
                   "max_epochs, skip, l2, loss", _autoencoder("CNNAE")),
}
# What `skasd train` fits without --model: the recipe for folders whose clips carry a domain
# (DCASE 2021-2024), the fallback for single-domain folders (MIMII, DCASE 2020), where a clip's
# level and log-mel statistics still tell anomalies apart (benchmarks/README.md).
# The default needs the aisfx weights (the user's skasd cache, fetched on first use); without them
# `skasd train` fits FALLBACK_MODEL and says why.
DEFAULT_MODEL = "knn-fusion"
FALLBACK_MODEL = "knn-spectrum"
SINGLE_DOMAIN_MODEL = "mahalanobis"
DEFAULT_WEIGHTS = {"knn-fusion": "aisfx"}


def default_model(clips):
    """The model `skasd train` fits without ``--model``: :data:`DEFAULT_MODEL` when every clip of
    ``clips`` (rows of :func:`skasd.datasets.load_dcase`) has a domain, else :data:`SINGLE_DOMAIN_MODEL`."""
    return DEFAULT_MODEL if clips["domain"].notna().all() else SINGLE_DOMAIN_MODEL


def describe_models():
    """One line per command-line model: name, summary and main parameters (``skasd models``)."""
    width = max(map(len, MODELS))
    notes = {DEFAULT_MODEL: " (default for folders with source/target domains: DCASE 2021-2024)",
             FALLBACK_MODEL: " (the default where the aisfx weights cannot be had)",
             SINGLE_DOMAIN_MODEL: " (default for folders without domains: MIMII, DCASE 2020)"}
    return "\n".join(f"{name:{width}}  {spec.summary}{notes.get(name, '')}; set: {spec.main}"
                     for name, spec in MODELS.items())


def build_pipeline(model=DEFAULT_MODEL, params=None, verbose=True):
    """The command line's model: a Pipeline of a feature step, (an embedding,) and a detector.

    ``params`` keys are ``step__param`` (``features__n_mels``, ``embedding__max_epochs``,
    ``model__n_neighbors``) or plain detector parameters (``max_epochs``, meaning
    ``model__max_epochs``). An unknown model or parameter raises
    :class:`~skasd.exceptions.UsageError` naming the valid ones.
    """
    if model not in MODELS:
        raise UsageError(f"unknown model {model!r}; choose one of {', '.join(MODELS)} (see 'skasd models')")
    pipe = Pipeline(MODELS[model].steps(verbose))
    steps = set(pipe.named_steps)
    routed = {k if k.split("__", 1)[0] in steps and "__" in k else f"model__{k}": v for k, v in (params or {}).items()}
    valid = pipe.get_params(deep=True)
    unknown = [k for k in routed if k not in valid]
    if unknown:
        names = sorted(f"{step}__{k}" if step != "model" else k
                       for step, est in pipe.named_steps.items() if hasattr(est, "get_params")
                       # a fusion's own parameters are its sub-pipelines': listed to their steps' parameters
                       for k in est.get_params(deep=isinstance(est, models.ScoreFusion)))
        shown = [k.removeprefix("model__") for k in unknown]
        raise UsageError(f"unknown parameter(s) {', '.join(shown)} for {model}; valid: {', '.join(names)}")
    return pipe.set_params(**routed)


def _requests(estimator):
    """Metadata names ``estimator.fit`` takes, of those a DCASE folder gives."""
    if estimator is None or isinstance(estimator, str):  # "passthrough"
        return []
    params = inspect.signature(estimator.fit).parameters
    return [name for name in ("domain", "section", "machine_id") if name in params]


def fit_pipeline(pipe, clips):
    """Fit ``pipe`` on the normal ``clips`` (rows of :func:`skasd.datasets.load_dcase`) with their metadata.

    Each step gets what it takes: an inlier detector the clips' ``domain`` (where every clip
    has one) and ``section`` (where the folder has several sections or IDs: one model and
    one threshold per section; any other detector, e.g. an autoencoder, is then wrapped in a
    :class:`~skasd.SectionwiseDetector`: one clone per section), a
    :class:`~skasd.ClassifierEmbedding` the classes section x attributes x domain as
    ``machine_id``. Returns the fitted pipeline and the names of the metadata it used.
    """
    domain = clips["domain"]
    meta = {"section": clips["section_or_id"].astype(str).to_numpy(object)}
    if domain.notna().all():
        meta["domain"] = domain.astype(str).to_numpy(object)
    classes = clips["section_or_id"].astype(str) + "|" + clips["attributes"].map(
        lambda a: ",".join(f"{k}={v}" for k, v in sorted(a.items())) if isinstance(a, dict) else "")
    meta["machine_id"] = (classes + "|" + domain.fillna("").astype(str)).to_numpy(object)
    if len(set(meta["section"])) < 2:
        del meta["section"]
    if "section" in meta and "section" not in _requests(pipe.steps[-1][1]):
        # a detector without per-section models (an autoencoder): one clone per section
        pipe.steps[-1] = (pipe.steps[-1][0], models.SectionwiseDetector(pipe.steps[-1][1]))
    takes = {name for _, step in pipe.steps for name in _requests(step)}
    if "domain" in meta and "domain" in takes and set(meta["domain"]) == {"source"}:
        warnings.warn("no target-domain training clips: every clip is scored against the source-domain model")
    if "machine_id" in takes and not clips["attributes"].map(bool).any():
        warnings.warn("no attributes in the file names: the embedding's classes are the sections (and domains) "
                      "only, with its self-supervised pseudo_shifts classes")
    # each step fitted in turn with the metadata its fit takes, as Pipeline.fit with metadata
    # routing would, but without storing routing requests that model files cannot hold
    used, Xt = set(), list(clips["path"])
    for i, (_, step) in enumerate(pipe.steps):
        if step is None or isinstance(step, str):  # "passthrough": a fusion whose sub-pipelines decode the clips
            continue
        kwargs = {name: meta[name] for name in _requests(step) if name in meta}
        used.update(kwargs)
        if i == len(pipe.steps) - 1:
            step.fit(Xt, **kwargs)
        else:
            Xt = step.fit_transform(Xt, **kwargs)
    return pipe, sorted(used)


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
    for step in _feature_steps(pipe):
        if "verbose" in step.get_params(deep=False):
            step.set_params(verbose=verbose)
    _check_model(pipe, path)
    return pipe


def _feature_steps(pipe):
    """The first step of the pipeline, or of each of its fusion's sub-pipelines where the
    pipeline passes the clips through to a :class:`~skasd.ScoreFusion`."""
    if hasattr(pipe[0], "get_params"):
        return [pipe[0]]
    fusion = pipe[-1]
    return [sub[0] for sub in getattr(fusion, "detectors_", [d for _, d in getattr(fusion, "detectors", [])])
            if isinstance(sub, Pipeline) and hasattr(sub[0], "get_params")]


def feature_step(pipe):
    """The step that turns clips into the features plots and explanations show: the pipeline's
    first step, or the first sub-pipeline's (the spectrum) for a fusion of pipelines."""
    steps = _feature_steps(pipe)
    return steps[0] if steps else None


def audio_step(pipe):
    """The step that decodes the clips at a sample rate ``sr`` (:func:`feature_step`), else None."""
    step = feature_step(pipe)
    sr = step.get_params().get("sr") if step is not None else None
    return step if isinstance(sr, Integral) and not isinstance(sr, bool) else None


def _check_model(pipe, path):
    """The feature step's bands (mel bands, MFCCs or spectrum bins) must be what the detector was fitted on."""
    feat, detector = pipe[0], pipe[-1]
    if len(pipe) != 2 or "n_features_in_" not in vars(detector):
        return
    if isinstance(feat, SpectrumTransformer):
        bands = feat.n_fft // 2 + 1
        made = f"n_fft // 2 + 1 = {bands} bins"
    elif isinstance(feat, _SpectralTransformer):
        name, bands = ("n_mfcc", feat.n_mfcc) if hasattr(feat, "n_mfcc") else ("n_mels", feat.n_mels)
        made = f"{name}={bands} bands"
    else:
        return
    if bands != detector.n_features_in_:
        raise UsageError(
            f"{path}: the features do not match the model: its {type(feat).__name__} makes {made} but its "
            f"{type(detector).__name__} was fitted on {detector.n_features_in_} (n_features_in_)"
        )

