"""The ``skasd`` command line: train, score, evaluate, reproduce, demo.

Every command prints progress unless ``--quiet``; bad input exits non-zero
with a one-line message naming the problem (``--debug`` shows the traceback).
"""

import argparse
import ast
import sys
import time
import warnings
from pathlib import Path

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


def save_model(pipe, path):
    """Save a fitted pipeline with joblib, atomically."""
    import joblib

    from ._io import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump(pipe, tmp)


def load_model(path, verbose=True):
    """Load a pipeline saved by :func:`save_model` (a trusted file: joblib unpickles)."""
    import joblib
    from sklearn.pipeline import Pipeline

    if not Path(path).is_file():
        raise CLIError(f"model file not found: {path}")
    try:
        pipe = joblib.load(path)
    except Exception as exc:
        raise CLIError(f"cannot read model file {path}: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(pipe, Pipeline) and hasattr(pipe[-1], "anomaly_score")):
        raise CLIError(f"{path} is not a skasd model (expected a Pipeline ending in a skasd detector)")
    if "features" in pipe.named_steps:
        pipe.set_params(features__verbose=verbose)
    return pipe


def score_clips(pipe, clips):
    """Features, anomaly scores and decisions (1 normal / -1 anomaly) for the clips' paths."""
    features = pipe[:-1].transform(list(clips["path"]))
    detector = pipe[-1]
    return features, detector.anomaly_score(features), detector.predict(features)


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
    _log(args, f"training {args.model} on {len(normals)} normal {mtype} clips from {args.data}")
    t0 = time.perf_counter()
    pipe.fit(list(normals["path"]))
    save_model(pipe, args.out)
    _log(args, f"trained in {time.perf_counter() - t0:.1f} s; model written to {args.out}")


def cmd_score(args):
    from ._submission import write_submission

    pipe = load_model(args.model, verbose=not args.quiet)
    clips = load_clips(args.data, args.machine_type, split="test")
    _log(args, f"scoring {len(clips)} clips from {args.data}")
    _, score, decision = score_clips(pipe, clips)
    for path in write_submission(clips, score, args.out, decision=decision):
        _log(args, f"wrote {path}")


def cmd_evaluate(args):
    from ._io import write_text_atomic
    from .metrics import dcase_report

    pipe = load_model(args.model, verbose=not args.quiet)
    clips = load_clips(args.data, args.machine_type, split="test")
    clips = clips[clips["label"].notna()]
    if clips.empty:
        raise CLIError(f"no labelled test clips under {args.data}: evaluate needs normal and anomaly labels")
    features, score, _ = score_clips(pipe, clips)
    y = (clips["label"] == "anomaly").to_numpy(int)
    domains = clips["domain"] if clips["domain"].notna().all() else None
    report = dcase_report(y, score, clips["section_or_id"], domains=domains)
    mtype = clips["machine_type"].iloc[0]
    print(f"{mtype}\n{report.to_string(float_format=lambda v: f'{v:.4f}')}")
    out = Path(args.out) / "result.csv"
    write_text_atomic(out, result_csv({mtype: report}))
    _log(args, f"wrote {out}")
    if args.plot:
        from ._experiment import write_plots

        for path in write_plots(args.plot, pipe, y, score, features):
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

    p = sub.add_parser("train", parents=[common], help="train a detector on the normal training clips")
    data_args(p)
    p.add_argument("--model", default="cnnae", choices=sorted(MODELS), help="detector (default: cnnae)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="detector parameter, repeatable")
    p.add_argument("--out", required=True, help="model file to write")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", parents=[common], help="write the official DCASE anomaly-score files")
    data_args(p)
    p.add_argument("--model", required=True, help="model file written by 'skasd train'")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", parents=[common], help="AUC/pAUC per ID/section and result.csv")
    data_args(p)
    p.add_argument("--model", required=True, help="model file written by 'skasd train'")
    p.add_argument("--out", default=".", help="folder for result.csv (default: .)")
    p.add_argument("--plot", metavar="OUTDIR", help="also write ROC and score-histogram plots")
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
