"""The ``skasd`` command line: train, adapt, models, weights, score, watch, explain, evaluate, reproduce, demo.

Every command prints progress unless ``--quiet``. Exit codes: 0 done; 1 only from
``score --fail-on-anomaly`` and ``watch --once --fail-on-anomaly`` when a clip is flagged; 2 for every failure (bad input, a file
that does not decode, ...) with a one-line message naming the problem (``--debug`` shows the
traceback); 130 when interrupted.
"""

import argparse
import sys
import warnings

from ..exceptions import UsageError
from ..io import FORMATS
from ..workflow import CHUNK_SIZE, DEFAULT_MODEL, MODELS, SINGLE_DOMAIN_MODEL
from ._commands import (
    cmd_adapt,
    cmd_demo,
    cmd_evaluate,
    cmd_explain,
    cmd_models,
    cmd_reproduce,
    cmd_score,
    cmd_train,
    cmd_watch,
    cmd_weights,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- parser
def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _seconds(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def build_parser():
    def global_args(p, default):
        p.add_argument("--quiet", action="store_true", default=default, help="no progress output")
        p.add_argument("--debug", action="store_true", default=default, help="show tracebacks")

    parser = _Parser(prog="skasd", description="Anomalous sound detection for machines: train, adapt, score, explain, "
                                               "evaluate, reproduce, demo.")
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
    p.add_argument("--model", metavar="NAME",
                   help=f"detector, one of {', '.join(MODELS)} (default: {DEFAULT_MODEL} where the clips carry "
                        f"source/target domains, as DCASE 2021-2024 folders do, else {SINGLE_DOMAIN_MODEL}; "
                        "'skasd models' lists them)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="parameter, repeatable: STEP__PARAM=VALUE for any pipeline step (features, embedding, "
                        "model), or PARAM=VALUE for the detector")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--format", choices=FORMATS,
                   help="skasd: safe model file, loads without running code (default); joblib: a pickle, "
                        "for trusted use only (default for a .joblib/.pkl --out)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("adapt", parents=[common],
                       help="add normal clips of a new operating condition to a trained model as a domain or section")
    data_args(p)
    p.add_argument("--model", required=True, help="model file written by 'skasd train' (or 'skasd adapt')")
    p.add_argument("--domain", help="domain of the new clips, e.g. target (default: from their file names)")
    p.add_argument("--section", help="section (machine ID) of the new clips (default: from their file names)")
    p.add_argument("--out", required=True, help="model file to write (the input model is left as it is)")
    p.add_argument("--format", choices=FORMATS, help="as for train (default: from the --out name)")
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser("models", parents=[common], help="list the detectors 'train --model' takes")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("weights", parents=[common], help="get pretrained encoder weights into the skasd cache")
    actions = p.add_subparsers(dest="action", required=True, parser_class=_Parser)
    q = actions.add_parser("fetch", parents=[common], help="download (pip), check and store published weights")
    q.add_argument("name", choices=("aisfx",), help="which weights")
    q.add_argument("--from", dest="source", metavar="FILE",
                   help="a local copy of the wheel (aisfx-0.1.2-py2.py3-none-any.whl) or of its checkpoint.pth, "
                        "instead of downloading it")
    q.add_argument("--force", action="store_true", help="fetch again when the cache holds them already")
    q = actions.add_parser("list", parents=[common], help="the known weights and whether the cache holds them")
    q.set_defaults(name=None, source=None, force=False)
    p.set_defaults(func=cmd_weights)

    p = sub.add_parser("score", parents=[common], help="write the official DCASE anomaly-score files")
    data_args(p)
    scoring_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fail-on-anomaly", action="store_true",
                   help="exit with status 1 when any clip is flagged (0 when none is; failures always exit 2)")
    p.add_argument("--json", metavar="FILE",
                   help="also write one JSON record per clip: path, section, score, threshold, flagged")
    p.add_argument("--frames", action="store_true",
                   help="also write per-frame anomaly scores beside the submission files "
                        "(frame_scores_<machine>_<section>.csv: file, frame, time_s, frame_score)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("watch", parents=[common],
                       help="score each new recording of a folder once into a JSON-lines log; warn of drift")
    p.add_argument("--model", required=True, help="model file written by 'skasd train'")
    p.add_argument("--data", required=True, help="folder to watch (recursively: .wav, .flac)")
    p.add_argument("--log", required=True, metavar="LOG.jsonl",
                   help="JSON-lines log: one record per scored clip, error and drift; what was scored")
    p.add_argument("--once", action="store_true", help="score what is new and exit (for cron)")
    p.add_argument("--fail-on-anomaly", action="store_true",
                   help="with --once, exit with status 1 when a clip was flagged (0 when none was; failures "
                        "always exit 2), as 'score --fail-on-anomaly'")
    p.add_argument("--interval", type=_seconds, default=10.0, metavar="S",
                   help="seconds between polls, and how long a file must be unchanged to count as complete "
                        "(default: 10)")
    p.add_argument("--on-anomaly", metavar="CMD",
                   help="shell command run for each flagged clip, with its record (JSON) on standard input")
    p.add_argument("--window", type=_positive_int, default=50, metavar="N",
                   help="recent clips the drift tests look at (default: 50)")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("explain", parents=[common],
                       help="say when in each clip the anomaly is and which frequency bands changed")
    p.add_argument("--model", required=True, help="model file written by 'skasd train'")
    p.add_argument("clips", nargs="+", metavar="CLIP", help="audio files to explain")
    p.add_argument("--section", help="section (machine ID) of the clips, for a model trained per section when "
                                     "the file names do not say it")
    p.add_argument("--segments", type=_positive_int, default=3, metavar="N",
                   help="most anomalous segments listed per clip (default: 3)")
    p.add_argument("--csv", metavar="FILE", help="also write the explanation table (one row per segment)")
    p.add_argument("--chunk-size", type=_positive_int, default=CHUNK_SIZE, metavar="N",
                   help=f"files explained at a time; bounds memory (default: {CHUNK_SIZE})")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("evaluate", parents=[common], help="AUC/pAUC per ID/section and result.csv")
    p.add_argument("--data", required=True,
                   help="DCASE/MIMII folder (dataset root or one machine type), or the LOG.jsonl of 'skasd watch'")
    p.add_argument("--machine-type", help="machine type to use when DATA holds several")
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

    p = sub.add_parser("demo", parents=[common],
                       help="the recommended detectors beside the report's autoencoders, on generated or real data")
    p.add_argument("--data", help="a DCASE folder of one machine type to compare on instead of generated sounds")
    p.add_argument("--out", default="skasd-demo", help="output folder (default: ./skasd-demo)")
    p.add_argument("--max-epochs", type=int, default=5, help="training epochs (default: 5)")
    p.set_defaults(func=cmd_demo)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"skasd: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def main(argv=None):
    """Entry point of the ``skasd`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores warnings.showwarning on return
            if not args.debug:
                warnings.showwarning = _one_line_warning
            code = args.func(args) or 0
    except KeyboardInterrupt:
        print("skasd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = str(exc).strip().splitlines()
        detail = text[0] if text else type(exc).__name__
        if not isinstance(exc, UsageError):
            detail = f"{type(exc).__name__}: {detail}"
        print(f"skasd {args.command}: error: {detail}", file=sys.stderr)
        return 2  # a failure is never 1, which --fail-on-anomaly gives to a finding
    return code


