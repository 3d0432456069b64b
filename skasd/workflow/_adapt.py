"""What ``skasd adapt`` does: add a folder of normal clips to a fitted model as a domain or section."""

import datetime
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf
from sklearn.pipeline import Pipeline

from ..exceptions import AudioError, ModelFileError, UsageError
from ..features._base import ClipTransformer
from ..io import model_format, model_info
from ..utils._validation import listing
from ._pipeline import audio_step, load_model, save_model
from ._scoring import _check_sample_rates, clip_hashes, load_clips

__all__ = ["adapt_model", "clip_durations"]

# Clips whose length differs from the training clips' by more than this many seconds are refused.
_LENGTH_TOLERANCE_S = 0.05
# Metadata keys the model file computes itself at save (reserved there).
_COMPUTED = ("features", "inputs")


def clip_durations(paths):
    """The distinct lengths in seconds (rounded to ms) of the audio files ``paths`` (unreadable ones left out)."""
    out = set()
    for path in paths:
        try:
            info = sf.info(path)
        except (sf.SoundFileError, OSError):
            continue
        out.add(round(info.frames / info.samplerate, 3))
    return sorted(out)


def adapt_model(model, data, out, *, domain=None, section=None, machine_type=None, fmt=None, verbose=False):
    """Add the normal clips of a folder to a fitted model as a domain (or section), and save it.

    The feature steps (and any embedding) of the pipeline stay as they are: the clips go
    through them, then the final detector's ``partial_fit`` adds them with their ``domain``
    and ``section`` (an inlier detector extends that group's bank or statistics, its domain
    normalisation and the threshold by its rule; see
    :meth:`skasd.KNNDetector.partial_fit`). Detectors that learn a network (the
    autoencoders) cannot be adapted this way and raise :class:`~skasd.exceptions.UsageError`
    naming the alternative. The model file written to ``out`` keeps the old metadata and
    records the addition under ``adaptations`` (date, domain, section, clip count, clip
    hashes); the clips' hashes join ``training_clip_hashes``.

    Parameters
    ----------
    model : path
        A model file written by ``skasd train`` (or by an earlier ``adapt``).
    data : path
        A folder of normal clips (a DCASE folder, or a flat folder of DCASE-named files);
        clips named as anomalies are left out. Only normal clips may go in: an anomaly among
        them becomes normal for the model.
    out : path
        The model file to write (the input model is not changed).
    domain, section : str, default=None
        The label of every clip; None: from the file names where the model needs one.
    machine_type : str, default=None
        The machine type to use when ``data`` holds several.
    fmt : {"skasd", "joblib"}, default=None
        Format of ``out``; None: from its name, as ``skasd train``.
    verbose : bool, default=False
        Progress bar of the feature step.

    Returns
    -------
    result : SimpleNamespace
        ``n_clips``, ``domain``, ``section`` (the labels used, None where the model has
        none), ``threshold_before``, ``threshold_after`` (``-offset_``: anomaly scores above
        it are flagged), ``section_thresholds`` (for a model with one threshold per section:
        ``{section: (before, after)}`` of the sections the clips joined, ``before`` None for a
        new section; else None) and ``path`` (the file written).
    """
    pipe = load_model(model, verbose=verbose)
    detector = pipe[-1]
    if not hasattr(detector, "partial_fit"):
        inner = getattr(detector, "estimator", detector)  # a SectionwiseDetector's autoencoder
        why = ("without retraining its network" if hasattr(inner, "_make_net")
               else "(it has no partial_fit)")
        raise UsageError(
            f"{model}: a {type(inner).__name__} cannot take new clips {why}; train a new model on the old and the "
            "new clips ('skasd train'), or use an inlier model (knn-spectrum, knn, mahalanobis, gmm), which adapt "
            "extends"
        )
    clips = load_clips(data, machine_type)
    normals = clips[clips["label"] != "anomaly"]
    if normals.empty:
        raise UsageError(f"no normal clips under {data}")
    paths = list(normals["path"])
    _check_audio(pipe, model, paths)
    labels = {}
    for key, given, fitted, column in (("domain", domain, detector.domains_, "domain"),
                                       ("section", section, detector.sections_, "section_or_id")):
        if fitted is None:
            if given is not None:
                raise UsageError(
                    f"the model was trained without {key}s, so it cannot take clips as {key} {given!r}; train a "
                    f"model on clips of several {key}s to add one"
                )
            continue
        if given is not None:
            labels[key] = np.full(len(paths), str(given), dtype=object)
        elif normals[column].notna().all():
            labels[key] = normals[column].astype(str).to_numpy(object)
        else:
            raise UsageError(
                f"the model has one model per {key} ({listing(fitted.tolist())}) and the {key} of the clips under "
                f"{data} cannot be told from their names: give --{key}"
            )
    steps = [(name, step) for name, step in pipe.steps[:-1] if not (step is None or isinstance(step, str))]
    for name, sub in getattr(detector, "named_detectors_", {}).items():  # a fusion's sub-pipelines
        if isinstance(sub, Pipeline):
            steps += [(f"{name} {step_name}", step) for step_name, step in sub.steps[:-1]]
    learnt = [name for name, step in steps if not isinstance(step, ClipTransformer)]
    if learnt:  # a scaler's centre, an embedding's network: fitted on the first training clips only
        warnings.warn(
            f"the model's {listing(learnt)} step(s) keep what they learnt from its first training clips: the adapted "
            "model is not the one 'skasd train' would give on all the clips (retrain for that)", UserWarning,
            stacklevel=2,
        )
    threshold_before = -float(detector.offset_)
    sections_before = dict(vars(detector).get("section_offsets_") or {})
    try:  # a fusion of pipelines decodes the clips in its partial_fit
        detector.partial_fit(pipe[:-1].transform(paths), **labels)
    except AudioError as exc:
        raise UsageError(f"cannot decode the clips under {data}: {str(exc).strip().splitlines()[0]}") from exc
    hashes = clip_hashes(paths)
    metadata = _metadata(model, {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "from_model": Path(model).name,
        **{key: sorted(set(value.tolist())) for key, value in labels.items()},
        "n_clips": len(paths),
        "clip_hashes": hashes,
    })
    fmt = model_format(out, fmt)
    try:
        save_model(pipe, out, fmt, metadata=metadata if fmt == "skasd" else None)
    except ModelFileError as exc:
        raise UsageError(f"{exc}; or write it with --format joblib") from exc
    return SimpleNamespace(
        n_clips=len(paths), domain=None if "domain" not in labels else sorted(set(labels["domain"])),
        section=None if "section" not in labels else sorted(set(labels["section"])),
        threshold_before=threshold_before, threshold_after=-float(detector.offset_), path=Path(out),
        section_thresholds=None if "section" not in labels else {
            s: (-float(sections_before[s]) if s in sections_before else None, -float(detector.section_offsets_[s]))
            for s in sorted(set(labels["section"]))},
    )


def _check_audio(pipe, model, paths):
    """The new clips must be at the sample rate of the model's features, and as long as its training clips."""
    feat = audio_step(pipe)
    if feat is None:
        return
    _check_sample_rates(paths, feat)
    if feat.get_params().get("duration") is not None:  # every clip is cropped or padded to one length
        return
    trained = _old_metadata(model).get("clip_seconds")
    lengths = clip_durations(paths)
    if trained:
        off = [d for d in lengths if min(abs(d - t) for t in trained) > _LENGTH_TOLERANCE_S]
        if off:
            raise UsageError(
                f"clips of {listing(f'{d:g} s' for d in off)} but the model was trained on clips of "
                f"{listing(f'{t:g} s' for t in trained)}: its features differ with the length; cut or pad the clips "
                f"to that length, or train a model with --set features__duration=SECONDS"
            )
    elif len(lengths) > 1:
        raise UsageError(
            f"the clips have several lengths ({listing(f'{d:g} s' for d in lengths)}): give clips of the length of "
            "the training clips"
        )


def _old_metadata(model):
    """The metadata of a skasd model file (empty for a joblib file)."""
    try:
        return dict(model_info(model)["metadata"] or {})
    except (ModelFileError, OSError):
        return {}


def _metadata(model, record):
    """The old model file's metadata with this adaptation added to its record."""
    meta = {k: v for k, v in _old_metadata(model).items() if k not in _COMPUTED}
    meta["adaptations"] = [*meta.get("adaptations", []), record]
    if "training_clip_hashes" in meta:
        meta["training_clip_hashes"] = [*meta["training_clip_hashes"], *record["clip_hashes"]]
    if "n_training_files" in meta:  # what the model now holds; the first training's files stay in training_files
        meta["n_training_files"] += record["n_clips"]
    return meta
