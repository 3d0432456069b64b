"""The ``skasd`` command line: train, score, evaluate, reproduce, demo.

Every command prints progress unless ``--quiet``; bad input exits non-zero
with a one-line message naming the problem (``--debug`` shows the traceback).
"""

import argparse
import ast
import sys
import time
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np

MODELS = {"denseae": "DenseAE", "vae": "VAE", "cnnae": "CNNAE"}


class CLIError(Exception):
    """An error whose message is shown to the user as is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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


def build_pipeline(model="cnnae", params=None, verbose=True):
    """The CLI's model: ``Pipeline([("features", LogMelTransformer()), ("model", <detector>)])``.

    ``params`` keys name detector parameters (``max_epochs``) or, with the
    ``features__`` prefix, feature parameters (``features__n_mels``).
    """
    import skasd
    from sklearn.pipeline import Pipeline

    if model not in MODELS:
        raise CLIError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    pipe = Pipeline([
        ("features", skasd.LogMelTransformer(verbose=verbose)),
        ("model", getattr(skasd, MODELS[model])(verbose=int(verbose))),
    ])
    routed = {k if k.startswith("features__") else f"model__{k}": v for k, v in (params or {}).items()}
    valid = pipe.get_params(deep=True)
    unknown = [k.split("__", 1)[1] for k in routed if k not in valid]
    if unknown:
        names = sorted(k for k in pipe.named_steps["model"].get_params(deep=False))
        raise CLIError(f"unknown parameter(s) {', '.join(unknown)} for {model}; valid: {', '.join(names)}")
    return pipe.set_params(**routed)


def load_clips(data, machine_type=None, split=None):
    """Rows of :func:`skasd.datasets.load_dcase` for one machine type."""
    from .datasets import load_dcase

    if not Path(data).exists():
        raise CLIError(f"data folder not found: {data}")
    clips = load_dcase(data, machine_type=machine_type)
    if split is not None and clips["split"].notna().any():
        clips = clips[clips["split"] == split]
        if clips.empty:
            raise CLIError(f"no {split} clips under {data}")
    types = sorted(clips["machine_type"].unique())
    if len(types) > 1:
        raise CLIError(f"{data} holds several machine types ({', '.join(types)}); choose one with --machine-type")
    return clips.reset_index(drop=True)


FORMATS = ("skasd", "joblib")
CHUNK_SIZE = 256


def model_format(path, fmt=None):
    """``fmt``, or the format a model file name implies: joblib for ``.joblib``/``.pkl``, else skasd."""
    if fmt is not None:
        return fmt
    return "joblib" if Path(path).suffix.lower() in (".joblib", ".pkl") else "skasd"


def save_model(pipe, path, fmt=None, metadata=None):
    """Save a fitted pipeline atomically: the safe skasd model format, or joblib (a pickle).

    ``fmt`` None: joblib for a ``.joblib``/``.pkl`` file name, else skasd.
    """
    from ._io import atomic_path
    from ._serialize import ModelFileError, save

    if model_format(path, fmt) == "joblib":
        import joblib

        with atomic_path(path) as tmp:
            joblib.dump(pipe, tmp)
        return
    try:
        save(pipe, path, metadata=metadata)
    except ModelFileError as exc:
        raise CLIError(f"{exc}; or train with --format joblib") from exc


def load_model(path, verbose=True):
    """Load a pipeline saved by :func:`save_model`, detecting its format.

    A skasd model file (a zip archive) is rebuilt without unpickling; any other file is
    read with joblib, which runs code from the file: load only joblib files you trust.
    """
    from sklearn.pipeline import Pipeline

    from ._serialize import ModelFileError, is_model_file, load

    if not Path(path).is_file():
        raise CLIError(f"model file not found: {path}")
    if is_model_file(path):
        try:
            pipe = load(path)
        except ModelFileError as exc:
            raise CLIError(f"cannot read model file {exc}") from exc
    else:
        import joblib

        try:
            pipe = joblib.load(path)
        except Exception as exc:
            raise CLIError(f"cannot read model file {path}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(pipe, Pipeline) and hasattr(pipe[-1], "anomaly_score")):
        raise CLIError(f"{path} is not a skasd model (expected a Pipeline ending in a skasd detector)")
    if "features" in pipe.named_steps:
        pipe.set_params(features__verbose=verbose)
    _check_model(pipe, path)
    return pipe


def _feature_step(pipe):
    """The pipeline's first step when it turns audio into log-mel/MFCC features, else None."""
    from ._features import LogMelTransformer

    return pipe[0] if isinstance(pipe[0], LogMelTransformer) else None


def _audio_step(pipe):
    """The pipeline's first step when it decodes audio at a sample rate ``sr``, else None."""
    sr = pipe[0].get_params().get("sr") if hasattr(pipe[0], "get_params") else None
    return pipe[0] if isinstance(sr, Integral) and not isinstance(sr, bool) else None


def _check_model(pipe, path):
    """The feature step's bands must be what the detector was fitted on."""
    feat, detector = _feature_step(pipe), pipe[-1]
    if feat is None or len(pipe) != 2 or "n_features_in_" not in vars(detector):
        return
    name, bands = ("n_mfcc", feat.n_mfcc) if hasattr(feat, "n_mfcc") else ("n_mels", feat.n_mels)
    if bands != detector.n_features_in_:
        raise CLIError(
            f"{path}: the features do not match the model: its {type(feat).__name__} makes "
            f"{name}={bands} bands but its {type(detector).__name__} was fitted on "
            f"{detector.n_features_in_} (n_features_in_)"
        )


def _check_sample_rates(paths, feat):
    """Every readable file must be at the model's sample rate (resampling would change the features)."""
    import soundfile as sf

    for path in paths:
        try:
            rate = sf.info(path).samplerate
        except (sf.SoundFileError, OSError):
            continue  # reported by name when decoding fails
        if rate != feat.sr:
            raise CLIError(
                f"{path} is sampled at {rate} Hz but the model's {type(feat).__name__} expects "
                f"sr={feat.sr} Hz: resample the data to {feat.sr} Hz or train a model on it with "
                f"--set features__sr={rate}"
            )


def _undecodable(paths, sr):
    """``{path: message}`` of the files that fail to decode."""
    from ._audio import AudioError, load_audio

    bad = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_audio(path, sr=sr)
        except (AudioError, OSError) as exc:
            bad[path] = str(exc).strip().splitlines()[0]
    return bad


def score_stream(pipe, paths, on_error="stop", chunk_size=CHUNK_SIZE, progress=False):
    """Anomaly scores and decisions of audio files, ``chunk_size`` files at a time.

    Only one chunk's features are in memory at once. Files at another sample rate than
    the model's features raise :class:`CLIError`. A file that fails to decode raises
    :class:`CLIError` naming it (``on_error="stop"``) or is left out (``"skip"``).

    Returns
    -------
    score, decision : ndarray
        Anomaly scores (higher = more anomalous) and ``predict`` output of the decoded files, in order.
    failed : dict
        ``{path: error message}`` of the files left out (empty with ``"stop"``).
    """
    from tqdm.auto import tqdm

    from ._audio import AudioError, _listing

    features, detector, feat = pipe[:-1], pipe[-1], _audio_step(pipe)
    scores, decisions, failed = [], [], {}
    with tqdm(total=len(paths), unit="file", desc="scoring", disable=not progress) as bar:
        for start in range(0, len(paths), chunk_size):
            chunk = list(paths[start : start + chunk_size])
            n_files = len(chunk)
            if feat is not None:
                _check_sample_rates(chunk, feat)
            try:
                X = features.transform(chunk)
            except (AudioError, OSError):
                bad = _undecodable(chunk, feat.sr if feat is not None else 16000)
                if not bad:
                    raise
                if on_error == "stop":
                    raise CLIError(
                        f"cannot decode {len(bad)} file(s): {_listing(f'{p} ({m})' for p, m in bad.items())}; "
                        "nothing written (--on-error skip leaves them out and lists them in skipped.csv)"
                    ) from None
                failed.update(bad)
                chunk = [p for p in chunk if p not in bad]
                X = features.transform(chunk) if chunk else None
            if chunk:
                score, decision = _score_and_decide(detector, X)
                scores.append(score)
                decisions.append(decision)
            bar.update(n_files)
    if not scores:
        return np.empty(0), np.empty(0, dtype=int), failed
    return np.concatenate(scores), np.concatenate(decisions), failed


def _score_cli(args, pipe, clips):
    """Stream the clips through the model; the scored clips, their scores and decisions.

    With ``--on-error skip`` the files that failed are written to ``<out>/skipped.csv``
    (header only when none failed) and left out.
    """
    import pandas as pd

    from ._io import write_text_atomic

    _log(args, f"scoring {len(clips)} clips from {args.data}")
    score, decision, failed = score_stream(
        pipe, list(clips["path"]), args.on_error, args.chunk_size, progress=not args.quiet
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


def score_clips(pipe, clips):
    """Features, anomaly scores and decisions (1 normal / -1 anomaly) for the clips' paths, in memory."""
    features = pipe[:-1].transform(list(clips["path"]))
    return (features, *_score_and_decide(pipe[-1], features))


def _score_and_decide(detector, X):
    """Anomaly scores and ``predict`` labels of the features ``X`` from one scoring pass."""
    scores = detector.score_samples(X)
    return -scores, detector._labels(scores)


class _FeaturesOnDemand:
    """``features[idx]``: the features of the clips at ``idx``, computed when asked (for plots of a few clips)."""

    def __init__(self, pipe, paths):
        self.transform, self.paths = pipe[:-1].transform, list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, idx):
        rows = np.atleast_1d(np.arange(len(self.paths))[idx])
        return self.transform([self.paths[i] for i in rows])


def result_csv(reports):
    """The DCASE baseline's ``result.csv`` text from ``{machine_type: dcase_report}``."""
    lines = []
    for mtype, rep in reports.items():
        kind = "id" if str(rep.index[0]).startswith("id_") else "section"
        lines += [mtype, f"{kind},AUC,pAUC"]
        for group, row in rep.iterrows():
            values = f"{float(row['AUC'])!r},{float(row['pAUC'])!r}"
            if group == "arithmetic mean":
                lines.append(f"Average,{values}")
            elif group != "harmonic mean":
                lines.append(f"{str(group).split('_', 1)[1]},{values}")
        lines.append("")
    return "\n".join(lines)


def _log(args, msg):
    if not args.quiet:
        print(msg, flush=True)


# --------------------------------------------------------------------------- commands
def cmd_train(args):
    clips = load_clips(args.data, args.machine_type, split="train")
    normals = clips[clips["label"] != "anomaly"]
    if normals.empty:
        raise CLIError(f"no normal training clips under {args.data}")
    pipe = build_pipeline(args.model, _parse_sets(args.set), verbose=not args.quiet)
    mtype = normals["machine_type"].iloc[0]
    fmt = model_format(args.out, args.format)
    _log(args, f"training {args.model} on {len(normals)} normal {mtype} clips from {args.data}")
    t0 = time.perf_counter()
    pipe.fit(list(normals["path"]))
    save_model(pipe, args.out, fmt, metadata={"training_files": list(normals["path"]), "machine_type": mtype})
    _log(args, f"trained in {time.perf_counter() - t0:.1f} s; {fmt} model written to {args.out}")


def cmd_score(args):
    from ._submission import write_submission

    pipe = load_model(args.model, verbose=False)
    clips = load_clips(args.data, args.machine_type, split="test")
    clips, score, decision = _score_cli(args, pipe, clips)
    for path in write_submission(clips, score, args.out, decision=decision):
        _log(args, f"wrote {path}")


def evaluation(args):
    """Score the test clips and compute the DCASE table; what ``evaluate`` reports.

    Returns a namespace: ``pipe, clips`` (the scored clips), ``y`` (1 = anomaly), ``score``,
    ``decision``, ``report`` (:func:`skasd.metrics.dcase_report`), ``machine_type`` and
    ``features`` (computed on demand: ``features[idx]``). Unlabelled test clips are only
    scored when an HTML report is asked for; ``y`` and ``report`` are then None.
    """
    from types import SimpleNamespace

    from .metrics import dcase_report

    pipe = load_model(args.model, verbose=False)
    clips = load_clips(args.data, args.machine_type, split="test")
    labelled = clips[clips["label"].notna()]
    if labelled.empty and not getattr(args, "report", None):
        raise CLIError(
            f"no labelled test clips under {args.data}: evaluate needs normal and anomaly labels "
            "(add --report out.html to inspect unlabelled clips)"
        )
    clips = clips if labelled.empty else labelled
    clips, score, decision = _score_cli(args, pipe, clips)
    y = report = None
    if not labelled.empty:
        y = (clips["label"] == "anomaly").to_numpy(int)
        domains = clips["domain"] if clips["domain"].notna().all() else None
        report = dcase_report(y, score, clips["section_or_id"], domains=domains)
    return SimpleNamespace(
        pipe=pipe, clips=clips, y=y, score=score, decision=decision, report=report,
        machine_type=clips["machine_type"].iloc[0], features=_FeaturesOnDemand(pipe, clips["path"]),
    )


def cmd_evaluate(args):
    from ._io import write_text_atomic

    run = evaluation(args)
    if run.report is not None:
        print(f"{run.machine_type}\n{run.report.to_string(float_format=lambda v: f'{v:.4f}')}")
        out = Path(args.out) / "result.csv"
        write_text_atomic(out, result_csv({run.machine_type: run.report}))
        _log(args, f"wrote {out}")
    else:
        _log(args, f"{len(run.clips)} unlabelled test clips: no AUC/pAUC, only the report's ranked clips")
    if args.plot and run.y is not None:
        from ._experiment import write_plots

        for path in write_plots(args.plot, run.pipe, run.y, run.score, run.features):
            _log(args, f"wrote {path}")
    if args.report:
        from .report import write_report

        path = write_report(args.report, run.clips, run.score, estimator=run.pipe, model_path=args.model, data_dir=args.data)
        _log(args, f"wrote {path}")


def cmd_reproduce(args):
    from ._experiment import reproduce_report

    table = reproduce_report(
        args.data, machine_type=args.machine_type, n_splits=args.cv,
        params=_parse_sets(args.set), random_state=args.seed, verbose=not args.quiet,
    )
    print(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"))


def cmd_demo(args):
    from ._experiment import run_demo

    run_demo(args.out, max_epochs=args.max_epochs, verbose=not args.quiet)


# --------------------------------------------------------------------------- parser
def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser():
    def global_args(p, default):
        p.add_argument("--quiet", action="store_true", default=default, help="no progress output")
        p.add_argument("--debug", action="store_true", default=default, help="show tracebacks")

    parser = _Parser(prog="skasd", description="Anomalous sound detection for machines: train, score, evaluate, reproduce, demo.")
    global_args(parser, False)
    # accepted after the subcommand too; SUPPRESS keeps a flag given before it
    common = argparse.ArgumentParser(add_help=False)
    global_args(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def data_args(p):
        p.add_argument("--data", required=True, help="DCASE/MIMII folder (dataset root or one machine type)")
        p.add_argument("--machine-type", help="machine type to use when DATA holds several")

    def scoring_args(p):
        p.add_argument("--model", required=True, help="model file written by 'skasd train' (skasd or joblib format)")
        p.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                       help="a file that fails to decode: stop before writing anything (default), or skip it "
                            "and list it in OUT/skipped.csv")
        p.add_argument("--chunk-size", type=_positive_int, default=CHUNK_SIZE, metavar="N",
                       help=f"files scored at a time; bounds memory (default: {CHUNK_SIZE})")

    p = sub.add_parser("train", parents=[common], help="train a detector on the normal training clips")
    data_args(p)
    p.add_argument("--model", default="cnnae", choices=sorted(MODELS), help="detector (default: cnnae)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="detector parameter, repeatable")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--format", choices=FORMATS,
                   help="skasd: safe model file, loads without running code (default); joblib: a pickle, "
                        "for trusted use only (default for a .joblib/.pkl --out)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", parents=[common], help="write the official DCASE anomaly-score files")
    data_args(p)
    scoring_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", parents=[common], help="AUC/pAUC per ID/section and result.csv")
    data_args(p)
    scoring_args(p)
    p.add_argument("--out", default=".", help="folder for result.csv (default: .)")
    p.add_argument("--plot", metavar="OUTDIR", help="also write ROC and score-histogram plots")
    p.add_argument(
        "--report", metavar="HTML",
        help="also write a self-contained HTML inspection report (table, plots, clips to listen to); "
        "works on unlabelled test clips too",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("reproduce", parents=[common], help="the founding report's experiment")
    data_args(p)
    p.add_argument("--cv", type=int, default=5, help="folds of normal-only CV when the data has no test split")
    p.add_argument("--seed", type=int, default=0, help="random_state of every model")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="parameter for every model, e.g. max_epochs=20")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("demo", parents=[common], help="train and score on generated machine sounds")
    p.add_argument("--out", default="skasd-demo", help="output folder (default: ./skasd-demo)")
    p.add_argument("--max-epochs", type=int, default=10, help="training epochs (default: 10)")
    p.set_defaults(func=cmd_demo)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"skasd: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def main(argv=None):
    """Entry point of the ``skasd`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if not args.debug:
        warnings.showwarning = _one_line_warning
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("skasd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = str(exc).strip().splitlines()
        detail = text[0] if text else type(exc).__name__
        if not isinstance(exc, CLIError):
            detail = f"{type(exc).__name__}: {detail}"
        print(f"skasd {args.command}: error: {detail}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
