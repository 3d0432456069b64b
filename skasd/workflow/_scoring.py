"""Clips of a DCASE folder through a fitted pipeline: the clips, their scores and decisions."""

import hashlib
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..datasets import load_dcase
from ..exceptions import AudioError, ModelFileError, UsageError
from ..features._audio import load_audio
from ..io import model_info
from ..utils._validation import listing
from ._log import log_clips
from ._pipeline import audio_step, feature_step

__all__ = ["CHUNK_SIZE", "FeaturesOnDemand", "load_clips", "score_clips", "score_stream", "section_labels",
           "anomaly_thresholds", "clip_hashes", "warn_in_sample"]

CHUNK_SIZE = 256


def load_clips(data, machine_type=None, split=None):
    """Rows of :func:`skasd.datasets.load_dcase` for one machine type (and ``split``).

    ``data`` may also be the JSON-lines log of ``skasd watch`` (a ``.jsonl`` file) where clips
    are to be scored (``split="test"``): its scored clips (:func:`log_clips`). Never as training
    clips: the log holds what the watch flagged, likely anomalies. A missing folder, a log given
    for training, no clips of ``split`` or several machine types raise
    :class:`~skasd.exceptions.UsageError`.
    """
    if not Path(data).exists():
        raise UsageError(f"data folder not found: {data}")
    if Path(data).is_file() and Path(data).suffix == ".jsonl":
        if split != "test":
            raise UsageError(f"{data} is a watch log: it lists scored clips, flagged ones included, not normal "
                             "training clips; train or adapt on a folder of normal clips (a log is for evaluate and score)")
        return log_clips(data)
    clips = load_dcase(data, machine_type=machine_type)
    if split is not None and clips["split"].notna().any():
        clips = clips[clips["split"] == split]
        if clips.empty:
            raise UsageError(f"no {split} clips under {data}")
    types = sorted(clips["machine_type"].unique())
    if len(types) > 1:
        raise UsageError(f"{data} holds several machine types ({', '.join(types)}); choose one with --machine-type")
    return clips.reset_index(drop=True)


def _check_sample_rates(paths, feat):
    """Every readable file must be at the model's sample rate (resampling would change the features)."""
    for path in paths:
        try:
            rate = sf.info(path).samplerate
        except (sf.SoundFileError, OSError):
            continue  # reported by name when decoding fails
        if rate != feat.sr:
            raise UsageError(
                f"{path} is sampled at {rate} Hz but the model's {type(feat).__name__} expects "
                f"sr={feat.sr} Hz: resample the data to {feat.sr} Hz or train a model on it with "
                f"--set features__sr={rate}"
            )


def _undecodable(paths, sr):
    """``{path: message}`` of the files that fail to decode."""
    bad = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_audio(path, sr=sr)
        except (AudioError, OSError) as exc:
            bad[path] = str(exc).strip().splitlines()[0]
    return bad


def score_stream(pipe, paths, on_error="stop", chunk_size=CHUNK_SIZE, progress=False, sections=None):
    """Anomaly scores and decisions of audio files, ``chunk_size`` files at a time.

    Only one chunk's features are in memory at once. Files at another sample rate than
    the model's features raise :class:`~skasd.exceptions.UsageError`. A file that fails to
    decode raises one naming it (``on_error="stop"``) or is left out (``"skip"``). With
    ``sections`` (one per path) a detector fitted per section scores each file by its own
    section's model and threshold (:func:`section_labels` gives them).

    Returns
    -------
    score, decision : ndarray
        Anomaly scores (higher = more anomalous) and ``predict`` output of the decoded files, in order.
    failed : dict
        ``{path: error message}`` of the files left out (empty with ``"stop"``).
    """
    features, detector, feat = pipe[:-1], pipe[-1], audio_step(pipe)
    section_of = None if sections is None else dict(zip(paths, sections))
    scores, decisions, failed = [], [], {}

    def score(chunk):
        # a fusion of pipelines decodes the clips in its detector: its decode errors come from there
        section = None if section_of is None else [section_of[p] for p in chunk]
        return _score_and_decide(detector, features.transform(chunk), section)

    with tqdm(total=len(paths), unit="file", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(paths), chunk_size):
            chunk = list(paths[start : start + chunk_size])
            n_files = len(chunk)
            if feat is not None:
                _check_sample_rates(chunk, feat)
            try:
                done = score(chunk)
            except (AudioError, OSError):
                bad = _undecodable(chunk, feat.sr if feat is not None else 16000)
                if not bad:
                    raise
                if on_error == "stop":
                    raise UsageError(
                        f"cannot decode {len(bad)} file(s): {listing(f'{p} ({m})' for p, m in bad.items())}; "
                        "nothing written (--on-error skip leaves them out and lists them in skipped.csv)"
                    ) from None
                failed.update(bad)
                chunk = [p for p in chunk if p not in bad]
                done = score(chunk) if chunk else None
            if done is not None:
                scores.append(done[0])
                decisions.append(done[1])
            bar.update(n_files)
    if not scores:
        return np.empty(0), np.empty(0, dtype=int), failed
    return np.concatenate(scores), np.concatenate(decisions), failed


def score_clips(pipe, clips):
    """Features, anomaly scores and decisions (1 normal / -1 anomaly) for the clips' paths, in memory."""
    features = pipe[:-1].transform(list(clips["path"]))
    return (features, *_score_and_decide(pipe[-1], features, section_labels(pipe, clips)))


def section_labels(pipe, clips):
    """Each clip's section where the pipeline's detector was fitted per section, else None.

    Raises :class:`~skasd.exceptions.UsageError` naming the sections of the clips that the
    model was not trained on.
    """
    fitted = getattr(pipe[-1], "sections_", None)
    if fitted is None:
        return None
    sections = clips["section_or_id"].astype(str).to_numpy(object)
    missing = sorted(set(sections) - set(fitted.tolist()))
    if missing:
        raise UsageError(
            f"the model was trained on sections {listing(fitted.tolist())}; the data has clips of "
            f"{listing(missing)} too: train a model on those sections"
        )
    return sections


def anomaly_thresholds(pipe, clips):
    """Each clip's decision threshold on the anomaly score (``-offset_``, or its section's
    ``-section_offsets_[s]`` for a detector fitted per section): above it, a clip is flagged."""
    detector, sections = pipe[-1], section_labels(pipe, clips)
    if sections is None:
        return np.full(len(clips), -float(detector.offset_))
    return -np.array([detector.section_offsets_[s] for s in sections], dtype=float)


def _score_and_decide(detector, X, section=None):
    """Anomaly scores and ``predict`` labels of the features ``X`` from one scoring pass;
    with ``section``, each clip's own section's model and threshold."""
    if section is None:
        scores = detector.score_samples(X)
        return -scores, detector.predict_from_scores(scores)
    scores = detector.score_samples(X, section=section)
    offsets = np.array([detector.section_offsets_[s] for s in section])
    return -scores, detector.predict_from_scores(scores, offsets)


def clip_hashes(paths):
    """A short SHA-256 of each file's bytes: what a model file records of its training clips."""
    out = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out.append(digest.hexdigest()[:20])
    return out


def warn_in_sample(model_path, clips):
    """Warn, naming the count, when ``clips`` were among the training clips of the model file
    (its ``training_clip_hashes`` metadata; a joblib file keeps no such record)."""
    try:
        trained = set(model_info(model_path)["metadata"].get("training_clip_hashes") or ())
    except (ModelFileError, OSError):
        return
    if not trained:
        return
    overlap = [p for p, h in zip(clips["path"], clip_hashes(clips["path"])) if h in trained]
    if overlap:
        warnings.warn(
            f"{len(overlap)} of the {len(clips)} evaluated clips were in the model's training set (e.g. "
            f"{overlap[0]}): their in-sample scores make the AUC look better; evaluate on clips it was not trained on"
        )


class FeaturesOnDemand:
    """``features[idx]``: the first step's features (log-mels) of the clips at ``idx``,
    computed when asked (for plots of a few clips)."""

    def __init__(self, pipe, paths):
        self.transform, self.paths = feature_step(pipe).transform, list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        rows = np.atleast_1d(np.arange(len(self.paths))[idx])
        return self.transform([self.paths[i] for i in rows])
