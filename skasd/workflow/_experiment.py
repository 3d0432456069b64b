"""The founding report's experiment (``skasd reproduce``) and the demo (``skasd demo``)."""

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import soundfile as sf
from sklearn.base import clone
from sklearn.pipeline import Pipeline, make_pipeline

from .. import models
from ..datasets import load_dcase, make_machine_sounds
from ..features._spectral import LogMelTransformer
from ..io._submission import write_submission
from ..metrics import dcase_report
from ..model_selection import DCASESplit, NormalTrainCV
from ._pipeline import build_pipeline
from ._scoring import load_clips, score_clips

__all__ = ["REPORT_ROWS", "report_models", "reproduce_report", "run_demo", "write_dcase_layout", "write_plots"]

# (row name, detector factory, published (AUC, pAUC) mean over slider IDs 00/02/04 or None)
REPORT_ROWS = (
    ("VAE", lambda m: m.VAE(), (0.688, 0.505)),
    ("VAE+BN", lambda m: m.VAE(batch_norm=True), (0.814, 0.641)),
    ("CNNAE", lambda m: m.CNNAE(), (0.890, 0.729)),
    ("CNNAE+skip", lambda m: m.CNNAE(skip=True), None),
    ("CNNAE+L2", lambda m: m.CNNAE(l2=0.002), (0.905, 0.766)),
    ("DenseAE (DCASE 2020 baseline)", lambda m: m.DenseAE(), (0.850, 0.669)),
)


def _embedding_knn():
    """ClassifierEmbedding (classes: the machine IDs, routed as ``machine_id``) + 1-NN."""
    return make_pipeline(models.ClassifierEmbedding().set_fit_request(machine_id=True), models.KNNDetector())


# Beyond the report: the state-of-the-art family, trained with the machine ID of every
# training clip. (row name, pipeline factory, published (AUC, pAUC)): STgram-MFN
# (ICASSP 2022), slider mean over IDs 00-06 -- the nearest published member of the family.
EMBEDDING_ROWS = (
    ("ClassifierEmbedding + k-NN (published: STgram-MFN, IDs 00-06)", _embedding_knn, (0.9955, 0.9761)),
)


def report_models(params=None, random_state=0, verbose=False):
    """The report's detectors, then the embedding family, as ``{row name: (unfitted
    estimator, published numbers)}``.

    ``params`` (e.g. ``{"max_epochs": 20}``) is applied to every detector; in the
    embedding pipelines to each step that has the parameter. Build and fit the embedding
    pipelines under ``sklearn.config_context(enable_metadata_routing=True)``.
    """
    rows = {}
    for name, make, published in REPORT_ROWS:
        est = make(models).set_params(random_state=random_state, verbose=int(verbose))
        rows[name] = (est.set_params(**(params or {})), published)
    for name, make, published in EMBEDDING_ROWS:
        pipe = make()
        for step_name, step in pipe.steps:
            own = {**{"random_state": random_state, "verbose": int(verbose)}, **(params or {})}
            step.set_params(**{k: v for k, v in own.items() if k in step.get_params()})
        rows[name] = (pipe, published)
    return rows


def _splits(clips, y, n_splits, random_state):
    """The dataset's own train/test split when every ID has both classes in test, else normal-only CV."""
    test = clips["split"] == "test"
    if test.any() and all(
        set(y[(test & (clips["section_or_id"] == g)).to_numpy()]) == {0, 1}
        for g in clips["section_or_id"].unique()
    ):
        return "dataset train/test split", list(DCASESplit(clips["split"]).split(clips, y))
    cv = NormalTrainCV(n_splits=n_splits, random_state=random_state)
    return f"{n_splits}-fold normal-only CV", list(cv.split(clips, y, groups=clips["section_or_id"]))


def reproduce_report(data, machine_type=None, n_splits=5, params=None, random_state=0, verbose=True):
    """Train the report's six detectors and the embedding family on one machine type; AUC/pAUC
    per ID beside the published numbers.

    With a full DCASE 2020 development folder the dataset's own split is used
    (train = train-folder normals, test = test folder), as in the report. On
    small folders without labelled test normals for every ID (the shared
    slider and MIMII fan clips) it falls back to normal-only cross-validation
    (:class:`skasd.model_selection.NormalTrainCV`) and averages over folds.

    Every row trains one model on all IDs' training clips, as the DCASE 2020 baseline
    does. The embedding row (``ClassifierEmbedding`` + ``KNNDetector``) is given the
    training clips' machine IDs as its classes (metadata ``machine_id``); its published
    numbers are STgram-MFN's (slider IDs 00-06, not the report's 00/02/04). With a
    single ID in the data it trains on its self-supervised mel-shift classes alone.

    Returns
    -------
    table : pandas.DataFrame
        One row per detector: AUC and pAUC per ID, their means, training time
        in seconds (summed over folds) and the report's published means.
    """
    clips = load_clips(data, machine_type)
    clips = clips[clips["label"].notna()].reset_index(drop=True)
    y = (clips["label"] == "anomaly").to_numpy(int)
    protocol, splits = _splits(clips, y, n_splits, random_state)
    if verbose:
        print(f"{clips['machine_type'].iloc[0]}: {len(clips)} clips ({y.sum()} anomalies), {protocol}")
    features = LogMelTransformer(verbose=verbose).fit_transform(list(clips["path"]))
    groups = clips["section_or_id"].to_numpy()

    rows = []
    with sklearn.config_context(enable_metadata_routing=True):
        models = report_models(params, random_state)
    for name, (detector, published) in models.items():
        reports, seconds = [], 0.0
        for train, test in splits:
            est = clone(detector)
            t0 = time.perf_counter()
            with sklearn.config_context(enable_metadata_routing=True):
                if isinstance(est, Pipeline):  # the embedding family: IDs as classes
                    est.fit(features[train], y[train], machine_id=groups[train])
                else:
                    est.fit(features[train])
            seconds += time.perf_counter() - t0
            anomaly = -est.score_samples(features[test])
            reports.append(dcase_report(y[test], anomaly, groups[test]))
        mean = pd.concat(reports).groupby(level=0, sort=False).mean()
        ids = [g for g in mean.index if "mean" not in str(g)]
        row = {"model": name}
        for g in ids:
            row[f"{g} AUC"], row[f"{g} pAUC"] = mean.loc[g, "AUC"], mean.loc[g, "pAUC"]
        row["mean AUC"], row["mean pAUC"] = mean.loc[ids, "AUC"].mean(), mean.loc[ids, "pAUC"].mean()
        row["train s"] = seconds
        row["report AUC"], row["report pAUC"] = published or (np.nan, np.nan)
        rows.append(row)
        if verbose:
            print(f"  {name}: AUC {row['mean AUC']:.3f} pAUC {row['mean pAUC']:.3f} ({seconds:.0f} s)")
    return pd.DataFrame(rows).set_index("model")


def write_dcase_layout(bunch, root, machine_type="machine", n_train=None):
    """Write generated clips as a DCASE 2020 development folder; return its ``load_dcase`` rows.

    Per machine ID the first ``n_train`` normals go to ``train/`` (default:
    all but as many as there are anomalies), the rest and all anomalies to ``test/``.
    """
    root = Path(root) / machine_type
    for sub in ("train", "test"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for mid in np.unique(bunch.machine_id):
        idx = np.flatnonzero(bunch.machine_id == mid)
        normal, anomaly = idx[bunch.target[idx] == 0], idx[bunch.target[idx] == 1]
        cut = len(normal) - len(anomaly) if n_train is None else n_train
        for split, label, members in (("train", "normal", normal[:cut]), ("test", "normal", normal[cut:]),
                                      ("test", "anomaly", anomaly)):
            for k, i in enumerate(members):
                sf.write(root / split / f"{label}_{mid}_{k:08d}.wav", bunch.data[i], bunch.sr, subtype="PCM_16")
    return load_dcase(root)


def run_demo(out="skasd-demo", max_epochs=10, verbose=True):
    """Generate machine sounds, train DenseAE and CNNAE, print the DCASE table, write a submission.

    Everything is written under ``out``: the generated clips in DCASE 2020
    layout (``data/``), the submission files (``submission/``) and, when
    matplotlib is installed, plots (``plots/``).
    """
    out = Path(out)
    say = print if verbose else (lambda *a, **k: None)
    bunch = make_machine_sounds(n_normal=40, n_anomaly=10, machine_ids=("id_00", "id_02"), random_state=0)
    clips = write_dcase_layout(bunch, out / "data", machine_type="machine")
    train = clips[clips["split"] == "train"]
    test = clips[clips["split"] == "test"].reset_index(drop=True)
    y = (test["label"] == "anomaly").to_numpy(int)
    say(f"generated {len(clips)} clips of 2 machine IDs in {out / 'data'} "
        f"({len(train)} train normals; test: {len(test) - y.sum()} normals, {y.sum()} anomalies)")

    tables, best = [], None
    for name in ("denseae", "cnnae"):
        pipe = build_pipeline(name, {"max_epochs": max_epochs, "random_state": 0}, verbose=False)
        t0 = time.perf_counter()
        pipe.fit(list(train["path"]))
        features, score, decision = score_clips(pipe, test)
        rep = dcase_report(y, score, test["section_or_id"])
        rep.insert(0, "model", name)
        rep["train s"] = time.perf_counter() - t0
        tables.append(rep)
        if best is None or rep.loc["arithmetic mean", "pAUC"] > best[0]:
            best = (rep.loc["arithmetic mean", "pAUC"], name, pipe, features, score, decision)
        say(f"trained {name} in {rep['train s'].iloc[0]:.1f} s")
    table = pd.concat(tables)
    say(table.to_string(float_format=lambda v: f"{v:.3f}"))

    _, name, pipe, features, score, decision = best
    for path in write_submission(test, score, out / "submission", decision=decision):
        say(f"wrote {path} ({name})")
    for path in write_plots(out / "plots", pipe, y, score, features):
        say(f"wrote {path}")
    return table


def write_plots(out, pipe, y, score, features):
    """Write the evaluation plots of a fitted pipeline into ``out``; return their paths.

    ``roc.png`` (when ``y`` has both classes), ``scores.png`` (histograms with the
    decision threshold), ``loss.png`` (training/validation loss per epoch) and
    ``spectrograms.png`` (the most normal clip beside the most anomalous one).
    Without matplotlib, warns (``pip install 'skasd[plot]'``) and writes nothing.
    """
    try:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        from ..plot import LossHistoryDisplay, RocDisplay, ScoreHistogramDisplay, plot_clips
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install 'skasd[plot]'): no plots written")
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    detector = pipe[-1]
    order = np.argsort(score)

    def axes():  # a figure outside pyplot: no backend needed (plot_clips draws through pyplot's)
        return Figure().subplots()

    plots = {
        "scores.png": lambda: ScoreHistogramDisplay.from_predictions(
            score, y_true=y, threshold=-detector.offset_, ax=axes()
        ).figure_,
        "loss.png": lambda: LossHistoryDisplay.from_estimator(detector, ax=axes()).figure_,
        "spectrograms.png": lambda: plot_clips(
            features[order[:1]], features[order[-1:]], titles=("Most normal clip", "Most anomalous clip")
        )[0, 0].figure_,
    }
    if y is not None and len(set(y)) == 2:
        plots["roc.png"] = lambda: RocDisplay.from_predictions(y, score, ax=axes()).figure_
    written = []
    for fname, draw in sorted(plots.items()):
        figure = draw()
        figure.savefig(out / fname, dpi=100)
        plt.close(figure)  # a no-op for a figure outside pyplot
        written.append(out / fname)
    return written
