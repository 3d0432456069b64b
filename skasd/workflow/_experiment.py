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
from ..exceptions import UsageError
from ..metrics import dcase_report, dcase_result_table
from ..report import write_report
from ..model_selection import DCASESplit, NormalTrainCV
from ._pipeline import build_pipeline, fit_pipeline
from ._scoring import FeaturesOnDemand, load_clips, score_clips

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


DEMO_MODELS = ("knn", "embedding-knn", "denseae", "cnnae")


def _demo_table(name, y, score, decision, test, seconds):
    """One detector's rows: the DCASE 2022+ per-domain table where every clip has a domain,
    else AUC/pAUC per section; its headline figure (official score / mean pAUC)."""
    groups = test["section_or_id"]
    if test["domain"].notna().all() and set(test["domain"]) == {"source", "target"}:
        rep = dcase_result_table(y, score, decision == -1, groups, test["domain"]).iloc[:, :3]
        rep["official"] = 3 / (1 / rep["AUC (source)"] + 1 / rep["AUC (target)"] + 1 / rep["pAUC"])
        head = ("official score", float(rep.loc["harmonic mean", "official"]))
    else:
        rep = dcase_report(y, score, groups)
        head = ("mean pAUC", float(rep.loc["arithmetic mean", "pAUC"]))
    rep.insert(0, "model", name)
    rep["train s"] = seconds
    return rep, head


def run_demo(out="skasd-demo", max_epochs=5, verbose=True, data=None, models=DEMO_MODELS):
    """The recommended detectors beside the founding report's autoencoders, side by side.

    Without ``data``: generated sounds of 4 units (machine IDs) of one product, in DCASE 2020
    layout under ``out/data``. With ``data``: a DCASE folder of one machine type (train split
    to fit, labelled test split to score). Each model of ``models`` (command-line names) is
    fitted as ``skasd train`` fits it, the table and a one-line verdict are printed, and the
    best model's submission files, plots and HTML report are written under ``out``.
    """
    out = Path(out)
    say = print if verbose else (lambda *a, **k: None)
    if data is None:
        bunch = make_machine_sounds(n_normal=30, n_anomaly=5, machine_ids=("id_00", "id_01", "id_02", "id_03"),
                                    machine_type="slider", random_state=0)
        clips = write_dcase_layout(bunch, out / "data", machine_type="slider")
        where = f"generated clips of 4 slider units (machine IDs) in {out / 'data'}"
    else:
        clips = load_clips(data)
        where = f"{data}"
    train = clips[(clips["split"] == "train") & (clips["label"] != "anomaly")].reset_index(drop=True)
    test = clips[(clips["split"] == "test") & clips["label"].notna()].reset_index(drop=True)
    if train.empty or test.empty or test["label"].nunique() < 2:
        raise UsageError(f"{where}: the demo needs normal training clips and labelled normal and anomalous test clips")
    y = (test["label"] == "anomaly").to_numpy(int)
    say(f"{where}: {len(train)} train normals; test: {len(test) - y.sum()} normals, {y.sum()} anomalies")

    tables, results = [], {}
    for name in models:
        pipe = build_pipeline(name, verbose=False)
        valid = pipe.get_params()  # seed and epochs of whichever steps train
        pipe.set_params(**{f"{step}__{key}": value for step in ("embedding", "model")
                           for key, value in (("random_state", 0), ("max_epochs", max_epochs))
                           if f"{step}__{key}" in valid})
        t0 = time.perf_counter()
        fit_pipeline(pipe, train)
        _, score, decision = score_clips(pipe, test)
        rep, head = _demo_table(name, y, score, decision, test, time.perf_counter() - t0)
        tables.append(rep)
        results[name] = (head[1], pipe, score, decision)
        measure = head[0]
        say(f"trained {name} in {rep['train s'].iloc[0]:.1f} s: {head[0]} {head[1]:.3f}")
    table = pd.concat(tables)
    say(table.to_string(float_format=lambda v: f"{v:.3f}"))
    best = max(results, key=lambda n: results[n][0])
    autoencoders = [n for n in results if n in ("denseae", "vae", "cnnae")]
    verdict = f"verdict: {best} is best here ({measure} {results[best][0]:.3f})"
    if autoencoders and best not in autoencoders:
        ae = max(autoencoders, key=lambda n: results[n][0])
        verdict += f", {results[best][0] - results[ae][0]:+.3f} over the best autoencoder ({ae})"
    say(verdict)

    _, pipe, score, decision = results[best]
    for path in write_submission(test, score, out / "submission", decision=decision):
        say(f"wrote {path} ({best})")
    for path in write_plots(out / "plots", pipe, y, score, FeaturesOnDemand(pipe, test["path"])):
        say(f"wrote {path}")
    path = write_report(out / "report.html", test, score, estimator=pipe, data_dir=str(out / "data") if data is None
                        else str(data))
    say(f"wrote {path}")
    return table


def write_plots(out, pipe, y, score, features):
    """Write the evaluation plots of a fitted pipeline into ``out``; return their paths.

    ``roc.png`` (when ``y`` has both classes), ``scores.png`` (histograms with the
    decision threshold), ``loss.png`` (training/validation loss per epoch, where the pipeline
    trained a network) and ``spectrograms.png`` (the most normal clip beside the most anomalous
    one, where the features are spectrograms). ``features[idx]`` gives the clips' features.
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
    }
    steps = [step for _, step in pipe.steps] + list(getattr(pipe[-1], "estimators_", ()))[:1]
    trained = [step for step in steps if getattr(step, "net_", None) is not None]
    if trained:  # the loss of the (last) network the pipeline trained; the first section's per section
        plots["loss.png"] = lambda: LossHistoryDisplay.from_estimator(trained[-1], ax=axes()).figure_
    normal, anomalous = features[order[:1]], features[order[-1:]]
    if np.ndim(normal) == 3:  # spectrogram-like features (not clip statistics)
        plots["spectrograms.png"] = lambda: plot_clips(
            normal, anomalous, titles=("Most normal clip", "Most anomalous clip")
        )[0, 0].figure_
    if y is not None and len(set(y)) == 2:
        plots["roc.png"] = lambda: RocDisplay.from_predictions(y, score, ax=axes()).figure_
    written = []
    for fname, draw in sorted(plots.items()):
        figure = draw()
        figure.savefig(out / fname, dpi=100)
        plt.close(figure)  # a no-op for a figure outside pyplot
        written.append(out / fname)
    return written
