"""The commands of the ``skasd`` command line: each reads its arguments and calls the library.

The work is :mod:`skasd.workflow`'s (and :mod:`skasd.io`'s, :mod:`skasd.report`'s); a command
only turns arguments into calls, logs progress and writes the files the user asked for.
"""

import ast
import json
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..exceptions import ModelFileError, UsageError
from ..io import model_format, result_csv, write_submission
from ..metrics import dcase_report, dcase_result_table
from ..report import write_report
from ..utils._atomic import write_text_atomic
from ..workflow import (
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    FALLBACK_MODEL,
    FeaturesOnDemand,
    Monitor,
    adapt_model,
    anomaly_thresholds,
    build_pipeline,
    clip_durations,
    clip_hashes,
    default_model,
    describe_models,
    describe_weights,
    ensure_weights,
    explain_files,
    fetch_weights,
    fit_pipeline,
    format_explanation,
    load_clips,
    load_model,
    reproduce_report,
    run_demo,
    save_model,
    score_stream,
    section_labels,
    warn_in_sample,
    write_frame_scores,
    write_plots,
)


class CLIError(UsageError):
    """An error whose message is shown to the user as is."""


# --------------------------------------------------------------------------- helpers
def _parse_sets(items):
    """``["max_epochs=2", "skip=True"]`` -> ``{"max_epochs": 2, "skip": True}``."""
    params = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CLIError(f"bad --set {item!r}: expected key=value, e.g. --set max_epochs=20")
        try:
            params[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key.strip()] = raw
    return params


def save_trained(pipe, path, fmt=None, metadata=None):
    """:func:`skasd.workflow.save_model`, pointing at ``--format joblib`` where the skasd format cannot
    store the pipeline."""
    try:
        save_model(pipe, path, fmt, metadata=metadata)
    except ModelFileError as exc:
        raise CLIError(f"{exc}; or train with --format joblib") from exc


def _score_cli(args, pipe, clips):
    """Stream the clips through the model; the scored clips, their scores and decisions.

    With ``--on-error skip`` the files that failed are written to ``<out>/skipped.csv``
    (header only when none failed) and left out.
    """
    _log(args, f"scoring {len(clips)} clips from {args.data}")
    score, decision, failed = score_stream(
        pipe, list(clips["path"]), args.on_error, args.chunk_size, progress=not args.quiet,
        sections=section_labels(pipe, clips),
    )
    if args.on_error == "skip":
        out = Path(args.out) / "skipped.csv"
        table = pd.DataFrame({"path": list(failed), "error": list(failed.values())})
        write_text_atomic(out, table.to_csv(index=False))
        if failed:
            _log(args, f"skipped {len(failed)} file(s) that failed to decode, listed in {out}")
        if len(failed) == len(clips):
            raise CLIError(f"no clip could be decoded: all {len(clips)} failed (listed in {out})")
    kept = clips[~clips["path"].isin(list(failed))].reset_index(drop=True)
    return kept, score, decision


def _log(args, msg):
    if not args.quiet:
        print(msg, flush=True)


# --------------------------------------------------------------------------- commands
def cmd_train(args):
    clips = load_clips(args.data, args.machine_type, split="train")
    normals = clips[clips["label"] != "anomaly"]
    if normals.empty:
        raise CLIError(f"no normal training clips under {args.data}")
    model = args.model or default_model(normals)
    fallback = None
    sets = _parse_sets(args.set)
    own_weights = any(key.endswith("features__weights") for key in sets)  # the user's checkpoint, not the cache
    if not args.model and model in DEFAULT_WEIGHTS and not own_weights:
        _, why = ensure_weights(DEFAULT_WEIGHTS[model], announce=lambda msg: _log(args, f"{model} needs: {msg}"))
        if why is not None:  # one line, always shown: the model differs from what the docs promise
            fallback = f"{why}: training {FALLBACK_MODEL} instead of {model}; get them with `skasd weights fetch " \
                       f"{DEFAULT_WEIGHTS[model]}` (or `--from FILE` offline)"
            print(f"skasd: {fallback}", file=sys.stderr, flush=True)
            model = FALLBACK_MODEL
    pipe = build_pipeline(model, sets, verbose=not args.quiet)
    mtype = normals["machine_type"].iloc[0]
    fmt = model_format(args.out, args.format)
    chosen = "" if args.model else (" (the default for clips with domains)" if model == DEFAULT_MODEL
                                    else " (the fallback of the default)" if fallback
                                    else " (the default for clips without domains)")
    _log(args, f"training {model}{chosen} on {len(normals)} normal {mtype} clips from {args.data}")
    t0 = time.perf_counter()
    pipe, used = fit_pipeline(pipe, normals)
    sections = sorted(normals["section_or_id"].astype(str).unique())
    metadata = {"training_files": list(normals["path"]), "training_clip_hashes": clip_hashes(normals["path"]),
                "machine_type": mtype, "model": model, "sections": sections, "fit_metadata": used,
                **({"default_fallback": fallback} if fallback else {}),
                "clip_seconds": clip_durations(normals["path"])}
    save_trained(pipe, args.out, fmt, metadata=metadata)
    _log(args, f"trained in {time.perf_counter() - t0:.1f} s ({', '.join(used) or 'no'} metadata used); "
               f"{fmt} model written to {args.out}")


def cmd_adapt(args):
    _log(args, f"adapting {args.model} with the normal clips under {args.data}")
    t0 = time.perf_counter()
    done = adapt_model(args.model, args.data, args.out, domain=args.domain, section=args.section,
                       machine_type=args.machine_type, fmt=args.format, verbose=not args.quiet)
    added = "; ".join(f"{key} {', '.join(value)}" for key, value in (("domain", done.domain), ("section", done.section))
                      if value is not None)
    if done.section_thresholds:  # the thresholds that judge the clips of the sections the clips joined
        thresholds = "; ".join(f"threshold of {s} " + ("(new)" if before is None else f"{before:.4g}")
                               + f" -> {after:.4g}" for s, (before, after) in done.section_thresholds.items())
    else:
        thresholds = f"threshold {done.threshold_before:.4g} -> {done.threshold_after:.4g}"
    _log(args, f"added {done.n_clips} clips ({added or 'one model'}) in {time.perf_counter() - t0:.1f} s; "
               f"{thresholds}; model written to {done.path}")


def cmd_models(args):
    print(describe_models())


def cmd_weights(args):
    if args.action == "list":
        print(describe_weights())
        return
    _log(args, f"fetching the {args.name} weights" + (f" from {args.source}" if args.source else " with pip"))
    path = fetch_weights(args.name, source=args.source, force=args.force)
    _log(args, f"{args.name} weights checked and stored at {path}")


def _flagged_exit(args, pipe, clips, score, decision):
    """``--json`` records and the ``--fail-on-anomaly`` exit code (1 when a clip is flagged)."""
    if args.json:
        threshold = anomaly_thresholds(pipe, clips)
        records = [
            {"path": path, "section": section, "score": float(s), "threshold": float(t), "flagged": bool(d == -1)}
            for path, section, s, t, d in zip(clips["path"], clips["section_or_id"].astype(str), score, threshold,
                                              decision)
        ]
        write_text_atomic(args.json, "".join(json.dumps(r) + "\n" for r in records))
        _log(args, f"wrote {args.json}")
    flagged = int(np.sum(decision == -1))
    _log(args, f"{flagged} of {len(decision)} clips flagged as anomalous")
    return 1 if args.fail_on_anomaly and flagged else 0


def cmd_score(args):
    pipe = load_model(args.model, verbose=False)
    clips = load_clips(args.data, args.machine_type, split="test")
    clips, score, decision = _score_cli(args, pipe, clips)
    for path in write_submission(clips, score, args.out, decision=decision):
        _log(args, f"wrote {path}")
    if args.frames:
        for path in write_frame_scores(pipe, clips, args.out, args.chunk_size, progress=not args.quiet):
            _log(args, f"wrote {path}")
    return _flagged_exit(args, pipe, clips, score, decision)


def cmd_watch(args):
    monitor = Monitor(args.model, args.data, args.log, interval=args.interval, on_anomaly=args.on_anomaly,
                      window=args.window, verbose=not args.quiet)
    _log(args, f"watching {args.data}" + (" (once)" if args.once else f" every {args.interval:g} s; "
                                          "stop with Ctrl-C or SIGTERM") + f"; records go to {args.log}")
    flagged = monitor.run(once=args.once)
    _log(args, f"{monitor.n_scored_} clip(s) scored, {flagged} flagged, {monitor.n_errors_} could not be scored"
         + (f", {monitor.n_deferred_} left for later (I/O errors)" if monitor.n_deferred_ else ""))
    return 1 if args.once and args.fail_on_anomaly and flagged else 0


def cmd_explain(args):
    pipe = load_model(args.model, verbose=False)
    table = explain_files(pipe, args.clips, section=args.section, n_segments=args.segments,
                          chunk_size=args.chunk_size, progress=not args.quiet)
    print(format_explanation(table), flush=True)
    if args.csv:
        write_text_atomic(args.csv, table.to_csv(index=False))
        _log(args, f"wrote {args.csv}")


def evaluation(args):
    """Score the test clips and compute the DCASE table; what ``evaluate`` reports.

    Returns a namespace: ``pipe, clips`` (the scored clips), ``y`` (1 = anomaly), ``score``,
    ``decision``, ``report`` (:func:`skasd.metrics.dcase_result_table` for DCASE 2022+ domains, else
    :func:`skasd.metrics.dcase_report`), ``machine_type`` and
    ``features`` (computed on demand: ``features[idx]``). Unlabelled test clips are only
    scored when an HTML report is asked for; ``y`` and ``report`` are then None.
    """
    pipe = load_model(args.model, verbose=False)
    clips = load_clips(args.data, args.machine_type, split="test")
    labelled = clips[clips["label"].notna()]
    if labelled.empty and not getattr(args, "report", None):
        raise CLIError(
            f"no labelled test clips under {args.data}: evaluate needs normal and anomaly labels "
            "(add --report out.html to inspect unlabelled clips)"
        )
    clips = clips if labelled.empty else labelled
    warn_in_sample(args.model, clips)
    clips, score, decision = _score_cli(args, pipe, clips)
    y = report = None
    if not labelled.empty:
        y = (clips["label"] == "anomaly").to_numpy(int)
        groups = clips["section_or_id"]
        report = None
        if clips["domain"].notna().all():  # DCASE 2022+: the official per-domain table
            try:
                report = dcase_result_table(y, score, decision == -1, groups, clips["domain"])
            except ValueError as exc:  # e.g. a sample folder without normals of one domain
                warnings.warn(f"no DCASE 2022+ per-domain table ({exc}); writing AUC and pAUC over both domains")
        if report is None:
            report = dcase_report(y, score, groups)
    return SimpleNamespace(
        pipe=pipe, clips=clips, y=y, score=score, decision=decision, report=report,
        machine_type=clips["machine_type"].iloc[0], features=FeaturesOnDemand(pipe, clips["path"]),
    )


def cmd_evaluate(args):
    run = evaluation(args)
    if run.report is not None:
        print(f"{run.machine_type}\n{run.report.to_string(float_format=lambda v: f'{v:.4f}')}")
        out = Path(args.out) / "result.csv"
        write_text_atomic(out, result_csv({run.machine_type: run.report}))
        _log(args, f"wrote {out}")
    else:
        _log(args, f"{len(run.clips)} unlabelled test clips: no AUC/pAUC, only the report's ranked clips")
    if args.plot and run.y is not None:
        for path in write_plots(args.plot, run.pipe, run.y, run.score, run.features):
            _log(args, f"wrote {path}")
    if args.report:
        path = write_report(args.report, run.clips, run.score, estimator=run.pipe, model_path=args.model, data_dir=args.data)
        _log(args, f"wrote {path}")


def cmd_reproduce(args):
    table = reproduce_report(
        args.data, machine_type=args.machine_type, n_splits=args.cv,
        params=_parse_sets(args.set), random_state=args.seed, verbose=not args.quiet,
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))


def cmd_demo(args):
    run_demo(args.out, max_epochs=args.max_epochs, verbose=not args.quiet, data=args.data)
