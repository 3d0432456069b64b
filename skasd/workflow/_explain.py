"""What ``skasd explain`` and ``skasd score --frames`` do: explanations and frame scores of audio files."""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from ..datasets._dcase import _parse
from ..exceptions import UsageError
from ..inspection import explain, frame_scores
from ..inspection._explain import _NOTHING
from ..utils._atomic import write_text_atomic
from ..utils._validation import listing
from ._scoring import CHUNK_SIZE, _score_and_decide, section_labels

__all__ = ["clip_sections", "explain_files", "format_explanation", "write_frame_scores"]


def clip_sections(pipe, paths, section=None):
    """Each file's section for a model fitted per section (None for one fitted without).

    ``section`` (one label for all files) wins; else each file's DCASE/MIMII name or folders
    give it. A file whose section cannot be told, or one the model was not trained on,
    raises :class:`~skasd.exceptions.UsageError`.
    """
    if getattr(pipe[-1], "sections_", None) is None:
        return None
    if section is not None:
        labels = [str(section)] * len(paths)
    else:
        parsed = [_parse(Path(p)) for p in paths]
        unknown = [str(p) for p, row in zip(paths, parsed) if row is None]
        if unknown:
            raise UsageError(
                f"the model has one threshold per section ({listing(pipe[-1].sections_.tolist())}) and the section "
                f"of {listing(unknown)} cannot be told from its name: give --section"
            )
        labels = [row["section_or_id"] for row in parsed]
    return section_labels(pipe, pd.DataFrame({"section_or_id": labels}))


def _explained(pipe):
    """The pipeline whose frames explanations and frame scores show: the model itself, or for a
    fusion of pipelines (the ``knn-fusion`` recipe) its first sub-pipeline, the spectrum k-NN:
    the part of the fusion that can point at a time and a frequency band."""
    if hasattr(pipe[0], "get_params"):
        return pipe
    subs = [sub for sub in getattr(pipe[-1], "detectors_", ()) if isinstance(sub, Pipeline)]
    if not subs:
        raise UsageError("this model has no feature step to explain its scores with")
    return subs[0]


def explain_files(pipe, paths, section=None, n_segments=3, chunk_size=CHUNK_SIZE, progress=False):
    """:func:`skasd.inspection.explain` of audio files through a fitted pipeline, in chunks.

    For a fusion of pipelines the segments, bands and segment scores are its spectrum k-NN's
    (:func:`_explained`), and each clip's ``anomaly_score``, ``threshold`` and ``anomalous``
    the fusion's own (:func:`_fusion_verdicts`).
    """
    paths = [str(p) for p in paths]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UsageError(f"no such file: {listing(missing)}")
    sections = clip_sections(pipe, paths, section)
    parts, explained = [], _explained(pipe)
    with tqdm(total=len(paths), unit="file", desc="explaining", disable=not progress) as bar:
        for start in range(0, len(paths), chunk_size):
            chunk = paths[start : start + chunk_size]
            sec = None if sections is None else sections[start : start + chunk_size]
            part = explain(explained, chunk, section=sec, n_segments=n_segments)
            if explained is not pipe:
                part = _fusion_verdicts(pipe[-1], part, chunk, sec)
            parts.append(part)
            bar.update(len(chunk))
    return pd.concat(parts, ignore_index=True)


def _fusion_verdicts(fusion, part, chunk, sec):
    """An explanation of the fusion's spectrum k-NN made the fusion's: each clip's anomaly score,
    threshold and verdict are the fusion's (the segment scores stay the spectrum k-NN's frame
    scores); a clip the fusion does not flag shows only its top segment, introduced by "no
    segment stands out", and one it flags shows its segments without that introduction (only
    the top one where the spectrum k-NN alone did not flag it)."""
    score, decision = _score_and_decide(fusion, chunk, sec)
    offsets = np.full(len(chunk), fusion.offset_) if sec is None else np.array([fusion.section_offsets_[s] for s in sec])
    rows = part["clip"].map({p: i for i, p in enumerate(chunk)}).to_numpy()
    flagged = decision[rows] == -1
    part = part.assign(anomaly_score=score[rows], threshold=-offsets[rows], anomalous=flagged)
    was_below = part["summary"].str.startswith(_NOTHING)
    part.loc[flagged & was_below, "summary"] = part.loc[flagged & was_below, "summary"].str.removeprefix(_NOTHING)
    now_below = ~flagged & ~was_below
    part.loc[now_below, "summary"] = _NOTHING + part.loc[now_below, "summary"]
    return part[~now_below | (part["segment"] == 1)].reset_index(drop=True)


def format_explanation(table):
    """The printed form of :func:`explain_files`' table: per clip a verdict line, then one
    line per segment with its summary."""
    lines = []
    for clip, rows in table.groupby("clip", sort=False):
        first = rows.iloc[0]
        verdict = "ANOMALOUS" if first["anomalous"] else "normal"
        lines.append(f"{clip}: {verdict}, anomaly score {first['anomaly_score']:.4g} "
                     f"(threshold {first['threshold']:.4g})")
        for _, row in rows.iterrows():
            lines.append(f"  {row['segment']}. {row['summary']}  [segment score {row['segment_score']:.4g}; "
                         f"bands: {row['bands']}]")
    return "\n".join(lines)


def write_frame_scores(pipe, clips, out_dir, chunk_size=CHUNK_SIZE, progress=False):
    """Per-frame anomaly scores of the clips, one CSV per machine type and section beside the
    submission files: ``frame_scores_<machine type>_<section>.csv`` with columns ``file``
    (name, as in the submission files), ``frame``, ``time_s`` (frame centre) and
    ``frame_score`` (higher = more anomalous; empty where no window covers a frame). Each
    file is written atomically; returns their paths. A fusion's frame scores are those of its
    spectrum k-NN (:func:`_explained`)."""
    sections, explained = section_labels(pipe, clips), _explained(pipe)
    out_dir, written = Path(out_dir), []
    clips = clips.reset_index(drop=True)
    groups = clips.groupby(["machine_type", "section_or_id"], sort=True).indices
    with tqdm(total=len(clips), unit="file", desc="frame scores", disable=not progress) as bar:
        for (mtype, group), idx in groups.items():
            parts = []
            for start in range(0, len(idx), chunk_size):
                rows = idx[start : start + chunk_size]
                paths = list(clips["path"].iloc[rows])
                sec = None if sections is None else sections[rows]
                fs = frame_scores(explained, paths, section=sec)
                n_frames = fs.scores.shape[1]
                parts.append(pd.DataFrame({
                    "file": np.repeat([Path(p).name for p in paths], n_frames),
                    "frame": np.tile(np.arange(n_frames), len(paths)),
                    "time_s": np.round(np.tile(fs.times, len(paths)), 4),
                    "frame_score": fs.scores.ravel(),
                }))
                bar.update(len(rows))
            path = out_dir / f"frame_scores_{mtype}_{group}.csv"
            write_text_atomic(path, pd.concat(parts, ignore_index=True).to_csv(index=False, float_format="%.6g"))
            written.append(path)
    return written
