"""Gather what the inspection report shows and render its Jinja2 template."""

import datetime
import os
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from .. import __version__
from ..features._audio import load_audio
from ..features._spectral import LogMelTransformer
from ..inspection._explain import _explanation
from ..metrics import dcase_report
from ..utils._atomic import atomic_path, write_text_atomic
from ..utils._validation import check_anomaly_labels, check_scores
from . import _assets
from ._template import render

AUDIO_MODES = ("auto", "embed", "folder", "none")
# audio="auto" embeds the clips while their FLAC bytes stay under this (base64 makes the page
# a third larger): about 30 ten-second 16 kHz clips, a page that still opens at once on a
# phone and fits a mail attachment. Above it the clips go to one folder beside the page.
EMBED_LIMIT = 10 * 2**20
N_REFERENCE = 3


def write_report(
    path,
    clips,
    anomaly_score=None,
    *,
    estimator=None,
    threshold=None,
    model_path=None,
    data_dir=None,
    top_k=10,
    audio="auto",
    title=None,
    max_fpr=0.1,
):
    """Write a self-contained HTML inspection report of scored clips.

    One page, no network access needed: the model and its parameters, the data
    folder and counts, the per-ID/section table of :func:`skasd.metrics.dcase_report`
    (when clips are labelled), the ROC curve with the pAUC region, the score
    histograms with the decision threshold, and ranked lists of clips to listen
    to: the ``top_k`` most anomalous, the most anomalous-looking normals (false
    alarms, when labelled), the ``top_k`` nearest the threshold, and the most
    normal-sounding clips for comparison. Each clip shows its score, rank, label,
    decision, an ``<audio>`` player (16-bit FLAC) and a small log-mel image. With a
    fitted ``estimator`` and a ``threshold``, each flagged clip is explained
    (:func:`skasd.inspection.explain`): its image carries the frame-score curve, the
    heatmap of the bands that deviate from normal and the top segment and band
    (:class:`skasd.plot.ExplanationDisplay`), and the summary sentence is printed under
    its player.

    Parameters
    ----------
    path : str or path-like
        The HTML file to write (atomically: an interrupted run leaves no partial page).
    clips : pandas.DataFrame or sequence of path-like
        One row per clip, as returned by :func:`skasd.datasets.load_dcase`: column ``path``
        (required) and, when present, ``machine_type``, ``section_or_id``, ``domain`` and
        ``label`` (``"normal"``/``"anomaly"`` or 0/1; None/NaN for unlabelled clips). A
        sequence is taken as the paths of unlabelled clips.
    anomaly_score : array-like of shape (n_clips,), default=None
        Anomaly score of each clip, higher = more anomalous (``detector.anomaly_score``).
        If None, computed with ``estimator`` from the paths (``-estimator.score_samples``).
    estimator : fitted skasd detector or Pipeline ending in one, default=None
        Shown with its parameters; gives the threshold (``-offset_``), the log-mel
        settings of the clip images (its :class:`~skasd.LogMelTransformer` step) and
        the training loss curve.
    threshold : float, default=None
        Decision threshold in anomaly-score units: a clip is flagged when its score
        exceeds it (``predict`` returns -1). Defaults to ``-offset_`` of the estimator;
        None without an estimator (no decisions, no borderline list).
    model_path, data_dir : str or path-like, default=None
        Shown in the report (the model file's size and date too).
    top_k : int, default=10
        Clips in each ranked list.
    audio : {"auto", "embed", "folder", "none"}, default="auto"
        ``"embed"``: clips as data URIs in the page. ``"folder"``: clips in the folder
        ``<name>_audio/`` beside the page, linked relatively (keep the two together).
        ``"auto"``: embed while the clips take at most 10 MiB, else the folder.
        ``"none"``: no players.
    title : str, default=None
        Page title; by default names the machine type(s) and the number of clips.
    max_fpr : float, default=0.1
        FPR limit of the pAUC in the table and the shaded ROC region.

    Returns
    -------
    path : pathlib.Path
        The written HTML file.

    Raises
    ------
    ValueError
        On missing ``path`` column, scores not one finite number per clip, bad labels,
        ``top_k`` < 1, an unknown ``audio`` mode or a non-finite threshold.
    FileNotFoundError, skasd.AudioError
        When a listed clip cannot be read.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd, soundfile as sf
    >>> from skasd.datasets import make_machine_sounds
    >>> from skasd.report import write_report
    >>> folder = tempfile.mkdtemp()
    >>> sounds = make_machine_sounds(n_normal=6, n_anomaly=2, duration=1.0, random_state=0)
    >>> paths = []
    >>> for i, clip in enumerate(sounds.data):
    ...     paths.append(os.path.join(folder, f"clip_{i}.wav"))
    ...     sf.write(paths[-1], clip, sounds.sr)
    >>> clips = pd.DataFrame({"path": paths, "label": sounds.target})
    >>> loudness = [float((clip ** 2).mean()) for clip in sounds.data]  # a trivial anomaly score
    >>> page = write_report(os.path.join(folder, "report.html"), clips, loudness, top_k=3)
    >>> page.name, page.stat().st_size > 10_000
    ('report.html', True)
    """
    path = Path(path)
    clips = _as_frame(clips)
    n = len(clips)
    if anomaly_score is None:
        if estimator is None:
            raise ValueError("pass anomaly_score, or a fitted estimator to compute it from the paths.")
        if not hasattr(estimator, "score_samples"):
            raise TypeError(f"{type(estimator).__name__} has no score_samples; pass a fitted skasd detector or "
                            "a Pipeline ending in one.")
        anomaly_score = -np.asarray(estimator.score_samples(list(clips["path"])))  # = detector.anomaly_score
    score = check_scores(anomaly_score, n, name="anomaly_score")
    if not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise ValueError(f"top_k must be a positive integer; got {top_k!r}.")
    if audio not in AUDIO_MODES:
        raise ValueError(f"audio must be one of {AUDIO_MODES}; got {audio!r}.")
    detector = _final(estimator)
    if threshold is None and getattr(detector, "offset_", None) is not None:
        threshold = -float(detector.offset_)
    if threshold is not None and not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
    y = _labels(clips)
    flagged = None if threshold is None else score > threshold
    groups = clips["section_or_id"].astype(str).to_numpy() if "section_or_id" in clips else np.full(n, "all")

    try:
        import matplotlib  # noqa: F401

        plots = True
    except ImportError:
        plots = False
        warnings.warn("matplotlib is not installed (pip install 'skasd[plot]'): the report has no figures")

    table, table_note = _metrics(clips, y, score, groups, max_fpr)
    sections = _sections(score, y, threshold, top_k)
    names = _display_names(clips["path"], data_dir)
    clip_cards, audio_note = _clip_cards(path, clips, names, score, y, flagged, groups, sections, estimator, audio,
                                         plots)
    machine_types = sorted(clips["machine_type"].dropna().astype(str).unique()) if "machine_type" in clips else []
    context = {
        "title": title or _default_title(machine_types, n),
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "version": _version(),
        "model": _model_info(estimator, model_path, threshold),
        "data": _data_info(clips, y, flagged, groups, data_dir, machine_types),
        "table": table,
        "table_note": table_note,
        "max_fpr": max_fpr,
        "figures": _figures(score, y, threshold, detector, max_fpr) if plots else [],
        "plots": plots,
        "sections": clip_cards,
        "audio_note": audio_note,
    }
    write_text_atomic(path, render(context))
    return path


# ---------------------------------------------------------------------------------- inputs
def _as_frame(clips):
    if isinstance(clips, pd.DataFrame):
        if "path" not in clips:
            raise ValueError(
                f"clips must have a 'path' column (as skasd.datasets.load_dcase returns); "
                f"got columns {list(clips.columns)}."
            )
        frame = clips.reset_index(drop=True)
    elif isinstance(clips, (str, os.PathLike)):
        raise ValueError("clips must be a DataFrame or a sequence of paths, not one path.")
    else:
        frame = pd.DataFrame({"path": list(clips)})
    if frame.empty:
        raise ValueError("clips is empty: there is nothing to report.")
    frame["path"] = frame["path"].map(os.fspath)
    return frame


def _labels(clips):
    """Float array: 1 anomaly, 0 normal, NaN unlabelled."""
    y = np.full(len(clips), np.nan)
    if "label" in clips:
        known = clips["label"].notna().to_numpy()
        if known.any():
            y[known] = check_anomaly_labels(clips["label"].to_numpy()[known].tolist(), name="clips['label']")
    return y


def _final(estimator):
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


# ---------------------------------------------------------------------------------- content
def _metrics(clips, y, score, groups, max_fpr):
    """The dcase_report table of the labelled clips as template rows, or a note why there is none."""
    known = ~np.isnan(y)
    if not known.any():
        return None, "The clips are unlabelled: no AUC/pAUC. The ranked clips and the score histogram remain."
    domains = None
    if "domain" in clips and clips["domain"][known].notna().all():
        domains = clips["domain"].to_numpy()[known]
    try:
        report = dcase_report(y[known].astype(int), score[known], groups[known], domains=domains, max_fpr=max_fpr)
    except ValueError as exc:
        return None, f"No AUC/pAUC table: {exc}"
    rows = [
        {"name": str(name), "mean": str(name).endswith(" mean"),
         "cells": [(f"{v:.3f}", repr(float(v))) for v in row]}
        for name, row in zip(report.index, report.to_numpy())
    ]
    note = None
    if not known.all():
        note = f"Over the {int(known.sum())} labelled clips; {int((~known).sum())} unlabelled clips are left out."
    return {"columns": list(report.columns), "rows": rows}, note


def _sections(score, y, threshold, top_k):
    """``[(key, title, description, indices)]``, each list ranked by score, highest first."""
    def ranked(idx):
        idx = np.asarray(idx, dtype=int)
        return idx[np.argsort(-score[idx], kind="stable")]

    order = ranked(np.arange(len(score)))
    sections = [("anomalous", "Most anomalous clips",
                 f"The {min(top_k, len(score))} highest anomaly scores.", order[:top_k])]
    normals = np.flatnonzero(y == 0)
    if normals.size and (y == 1).any():
        sections.append(("false-alarms", "Most anomalous-looking normal clips",
                         "Normal clips with the highest scores: the false alarms when they are flagged.",
                         ranked(normals)[:top_k]))
    if threshold is not None:
        near = np.argsort(np.abs(score - threshold), kind="stable")[:top_k]
        sections.append(("borderline", "Borderline clips",
                         f"The clips closest to the decision threshold ({threshold:.4g}).", ranked(near)))
    sections.append(("reference", "Most normal-sounding clips",
                     "The lowest scores, to listen to next to the flagged clips.", order[-min(N_REFERENCE, top_k):]))
    return sections


def _clip_cards(path, clips, names, score, y, flagged, groups, sections, estimator, audio, plots):
    """Template sections with one card per clip; encodes each selected clip once."""
    chosen = list(dict.fromkeys(int(i) for *_, idx in sections for i in idx))
    lm = _logmel_transformer(estimator)
    waves = {i: load_audio(clips["path"][i], sr=lm.sr) for i in chosen}
    images = _logmel_images(lm, waves) if plots else {}
    explained, explain_note = {}, None
    if estimator is not None and flagged is not None:
        explained, explain_note = _explanations(estimator, clips, [i for i in chosen if flagged[i]], waves, plots)
        images.update({i: e["image"] for i, e in explained.items() if e["image"]})
    audio_src, note = {}, None
    if audio != "none":
        flac = {i: _assets.encode_flac(w, lm.sr) for i, w in waves.items()}
        total = sum(len(b) for b in flac.values())
        mode = audio if audio != "auto" else ("embed" if total <= EMBED_LIMIT else "folder")
        if mode == "embed":
            audio_src = {i: _assets.data_uri(b, "audio/flac") for i, b in flac.items()}
        else:
            audio_src = _write_audio_folder(path, clips, flac)
            note = (f"The clips ({total / 2**20:.1f} MiB of FLAC) are in the folder "
                    f"{path.stem}_audio/ beside this page; keep the two together.")
    rank = np.empty(len(score), dtype=int)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, len(score) + 1)
    has_domain = "domain" in clips
    seen, out = set(), []
    for key, title, description, idx in sections:
        cards = []
        for i in map(int, idx):
            cards.append({
                "index": i,
                "anchor": f"clip-{i}",
                "first": i not in seen,
                "rank": int(rank[i]),
                "name": names[i],
                "path": clips["path"][i],
                "group": groups[i],
                "domain": clips["domain"][i] if has_domain and pd.notna(clips["domain"][i]) else None,
                "score": f"{score[i]:.4g}",
                "score_value": repr(float(score[i])),
                "label": "unknown" if np.isnan(y[i]) else ("anomaly" if y[i] == 1 else "normal"),
                "decision": None if flagged is None else ("anomaly" if flagged[i] else "normal"),
                "audio_src": audio_src.get(i),
                "image_src": images.get(i),
                "summary": explained.get(i, {}).get("summary"),
            })
            seen.add(i)
        out.append({"key": key, "title": title, "description": description, "clips": cards})
    return out, " ".join(n for n in (note, explain_note) if n) or None


def _explanations(estimator, clips, idx, waves, plots):
    """``{clip: {"summary", "image"}}`` for the flagged clips ``idx`` and a note when they cannot
    be explained (a model without a time axis, or fitted by skasd 0.1)."""
    if not idx:
        return {}, None
    detector = _final(estimator)
    section = None
    if getattr(detector, "sections_", None) is not None and "section_or_id" in clips:
        section = [str(clips["section_or_id"][i]) for i in idx]
    try:
        table, fs, profiles = _explanation(estimator, [waves[i] for i in idx], section, 3, 3, None, None)
    except ValueError as exc:
        return {}, f"The flagged clips are not explained: {str(exc).splitlines()[0]}"
    out = {}
    for k, i in enumerate(idx):
        rows = table[table["clip"] == k]
        image = None
        if plots:
            from ..plot import ExplanationDisplay

            fig, ax = _assets.new_figure((3.6, 1.9))
            ExplanationDisplay._of_clip(table, fs, profiles, k).plot(ax=ax)
            ax.set_title("")  # the sentence is printed under the player
            ax.set_xlabel("Time (s)", fontsize=7)
            ax.set_ylabel("Hz", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.figure.axes[-1].tick_params(labelsize=6)
            ax.figure.axes[-1].set_ylabel("frame score", fontsize=7, color="tab:orange")
            image = _assets.image_uri(fig, dpi=80, fmt="jpeg")
        out[i] = {"summary": rows["summary"].iloc[0], "image": image}
    return out, None


def _display_names(paths, data_dir):
    """Each clip's path relative to ``data_dir`` when inside it (``id_00/normal/00000001.wav``),
    else its file name; the full path is shown on hover."""
    root = None if data_dir is None else Path(data_dir).resolve()
    names = []
    for p in paths:
        p = Path(p)
        inside = root is not None and p.resolve().is_relative_to(root)
        names.append(p.resolve().relative_to(root).as_posix() if inside else p.name)
    return names


def _logmel_transformer(estimator):
    """The estimator's own LogMelTransformer step (so the images show what the model saw), else the default."""
    steps = [s for _, s in estimator.steps] if isinstance(estimator, Pipeline) else []
    for step in steps:
        if type(step) is LogMelTransformer:
            return clone(step).set_params(verbose=False, cache=None, n_jobs=None)
    return LogMelTransformer()


def _logmel_images(lm, waves):
    S = {i: lm.transform([w])[0] for i, w in waves.items()}
    values = np.concatenate([s.ravel() for s in S.values()])
    # One colour scale for all images so levels compare; the 1st percentile keeps the
    # log(eps) floor of silent or zero-padded frames from washing the scale out.
    vmin, vmax = np.percentile(values, 1), values.max()
    return {i: _assets.logmel_image(s, lm.sr, lm.hop_length, lm.fmin, lm.fmax, vmin, vmax) for i, s in S.items()}


def _write_audio_folder(path, clips, flac):
    """Write each clip's FLAC (atomically) into ``<stem>_audio/``; return relative URLs."""
    folder = path.with_name(f"{path.stem}_audio")
    folder.mkdir(parents=True, exist_ok=True)
    urls = {}
    for i, payload in flac.items():
        name = f"{i:05d}_{_assets.safe_name(Path(clips['path'][i]).stem)}.flac"
        with atomic_path(folder / name) as tmp:
            Path(tmp).write_bytes(payload)
        urls[i] = f"{quote(folder.name)}/{quote(name)}"
    return urls


def _figures(score, y, threshold, detector, max_fpr):
    from ..plot import LossHistoryDisplay, RocDisplay, ScoreHistogramDisplay

    figures = []
    known = ~np.isnan(y)
    if known.any() and np.unique(y[known]).size == 2:
        fig, ax = _assets.new_figure((5, 5))
        RocDisplay.from_predictions(y[known].astype(int), score[known], max_fpr=max_fpr, ax=ax)
        figures.append({"key": "roc", "title": "ROC curve", "src": _assets.image_uri(fig),
                        "alt": f"ROC curve; the shaded area is the pAUC region (FPR up to {max_fpr:g})"})
    fig, ax = _assets.new_figure((6, 4))
    labelled = known.all() and np.unique(y).size == 2  # normals vs anomalies, else one histogram
    # density: the normal and anomalous groups often differ much in size
    ScoreHistogramDisplay.from_predictions(
        score, y.astype(int) if labelled else None, threshold, ax=ax, density=labelled)
    figures.append({"key": "histogram", "title": "Score histogram", "src": _assets.image_uri(fig),
                    "alt": "Histogram of anomaly scores" if threshold is None else
                           "Histogram of anomaly scores with the decision threshold"})
    net = getattr(detector, "net_", None)
    if net is not None and len(net.history):
        fig, ax = _assets.new_figure((6, 4))
        LossHistoryDisplay.from_estimator(detector, ax=ax)
        figures.append({"key": "loss", "title": "Training loss", "src": _assets.image_uri(fig),
                        "alt": "Training loss per epoch"})
    return figures


def _model_info(estimator, model_path, threshold):
    info = {"path": None if model_path is None else os.fspath(model_path), "file": None,
            "threshold": None if threshold is None else f"{threshold:.6g}", "steps": [], "epochs": None}
    if model_path is not None and Path(model_path).is_file():
        st = Path(model_path).stat()
        when = datetime.datetime.fromtimestamp(st.st_mtime, datetime.timezone.utc)
        info["file"] = f"{st.st_size / 2**20:.2f} MiB, modified {when:%Y-%m-%d %H:%M UTC}"
    if estimator is not None:
        steps = estimator.steps if isinstance(estimator, Pipeline) else [("detector", estimator)]
        for name, step in steps:
            params = step.get_params(deep=False) if hasattr(step, "get_params") else {}
            info["steps"].append({"name": name, "cls": type(step).__name__,
                                  "params": [(k, _short(repr(v))) for k, v in sorted(params.items())]})
        net = getattr(_final(estimator), "net_", None)
        if net is not None:
            info["epochs"] = len(net.history)
    return info


def _short(text, limit=200):
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _data_info(clips, y, flagged, groups, data_dir, machine_types):
    domains = clips["domain"].to_numpy(dtype=object) if "domain" in clips else np.full(len(clips), None)
    has_domains = pd.notna(domains).any()

    def counts(mask):
        row = {"clips": int(mask.sum()), "normal": int((y[mask] == 0).sum()), "anomaly": int((y[mask] == 1).sum()),
               "unlabelled": int(np.isnan(y[mask]).sum())}
        if has_domains:
            row.update(source=int((domains[mask] == "source").sum()), target=int((domains[mask] == "target").sum()))
        if flagged is not None:
            row["flagged"] = int(flagged[mask].sum())
        return row

    rows = [{"name": g, **counts(groups == g)} for g in np.unique(groups)]
    total = {"name": "all", **counts(np.ones(len(clips), dtype=bool))}
    return {"dir": None if data_dir is None else os.fspath(data_dir), "machine_types": machine_types,
            "columns": [c for c in total if c != "name"], "rows": rows, "total": total}


def _default_title(machine_types, n):
    what = ", ".join(machine_types) if machine_types else "clips"
    return f"Anomalous sound inspection: {what} ({n} clips)"


def _version():
    return __version__
