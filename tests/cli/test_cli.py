import json
import re
import shutil
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from skasd import ModelFileError, model_info
from skasd.cli import CLIError, main
from skasd.cli._commands import save_trained
from skasd.io._container import ARRAYS
from skasd.workflow import build_pipeline, load_model, save_model, score_clips, write_dcase_layout


@pytest.fixture(scope="module")
def dev_folder(tmp_path_factory):
    """A small generated DCASE 2020 development folder: 2 IDs, 12 train normals, 4+4 test clips each."""
    from skasd.datasets import make_machine_sounds

    bunch = make_machine_sounds(n_normal=16, n_anomaly=4, machine_ids=("id_00", "id_02"),
                                duration=4.0, random_state=0)
    root = tmp_path_factory.mktemp("dev")
    write_dcase_layout(bunch, root, machine_type="pump")
    return root / "pump"


@pytest.fixture(scope="module")
def trained(dev_folder, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "pump.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "denseae", "--set", "max_epochs=2",
                 "--set", "random_state=0", "--out", str(model), "--quiet"]) == 0
    return model


def _scores(folder):
    """``{file name: score}`` of the submission files in ``folder``."""
    rows = pd.concat([pd.read_csv(f, header=None) for f in sorted(folder.glob("anomaly_score_*.csv"))])
    return dict(zip(rows[0], rows[1]))


@pytest.fixture(scope="module")
def clean_scores(dev_folder, trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    assert main(["score", "--model", str(trained), "--data", str(dev_folder), "--out", str(out), "--quiet"]) == 0
    return _scores(out)


@pytest.fixture
def broken_folder(dev_folder, tmp_path):
    """The dev folder plus a non-audio file and a truncated wav among the test clips."""
    root = tmp_path / "pump"
    shutil.copytree(dev_folder, root)
    (root / "test" / "anomaly_id_00_00000097.wav").write_bytes(b"not audio at all" * 64)
    good = (root / "test" / "normal_id_02_00000000.wav").read_bytes()
    (root / "test" / "normal_id_02_00000098.wav").write_bytes(good[: len(good) // 2])
    return root


def test_train_writes_safe_format_by_default(dev_folder, trained, tmp_path):
    assert zipfile.is_zipfile(trained)
    meta = model_info(trained)["metadata"]
    assert meta["n_training_files"] == 24 and meta["machine_type"] == "pump"
    assert meta["features"][0]["sr"] == 16000 and meta["inputs"][0]["class"] == "SectionwiseDetector"  # one DenseAE per ID
    base = ["train", "--data", str(dev_folder), "--model", "denseae", "--set", "max_epochs=2",
            "--set", "random_state=0", "--quiet", "--out"]
    assert main([*base, str(tmp_path / "m.joblib")]) == 0  # .joblib keeps meaning joblib
    assert main([*base, str(tmp_path / "m2.skasd"), "--format", "joblib"]) == 0
    for name in ("m.joblib", "m2.skasd"):
        assert not zipfile.is_zipfile(tmp_path / name)
        pipe = load_model(tmp_path / name, verbose=False)
        assert np.array_equal(pipe[-1].offset_, load_model(trained, verbose=False)[-1].offset_)


def test_score_streams_in_chunks_with_identical_scores(dev_folder, trained, clean_scores, tmp_path, monkeypatch):
    from skasd import LogMelTransformer

    sizes, transform = [], LogMelTransformer.transform
    monkeypatch.setattr(LogMelTransformer, "transform", lambda self, X: sizes.append(len(X)) or transform(self, X))
    assert main(["score", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path),
                 "--chunk-size", "5", "--quiet"]) == 0
    assert sizes == [5, 5, 5, 1]
    assert _scores(tmp_path) == clean_scores  # chunking changes no score
    # in memory, as before streaming
    pipe = load_model(trained, verbose=False)
    from skasd.datasets import load_dcase

    clips = load_dcase(dev_folder)
    clips = clips[clips["split"] == "test"].reset_index(drop=True)
    _, score, _ = score_clips(pipe, clips)
    assert [clean_scores[p.rsplit("/", 1)[1]] for p in clips["path"]] == score.tolist()


def test_on_error_stop_names_files_and_writes_nothing(broken_folder, trained, tmp_path, capsys):
    out = tmp_path / "out"
    for cmd in ("score", "evaluate"):
        msg = _err([cmd, "--model", str(trained), "--data", str(broken_folder), "--out", str(out), "--quiet"], capsys)
        assert "cannot decode 2 file(s)" in msg and "nothing written" in msg, msg
        assert "anomaly_id_00_00000097.wav" in msg and "normal_id_02_00000098.wav (" in msg and "truncated" in msg
        assert not out.exists()


def test_on_error_skip_lists_files_and_leaves_them_out(broken_folder, trained, clean_scores, tmp_path):
    out = tmp_path / "out"
    assert main(["score", "--model", str(trained), "--data", str(broken_folder), "--out", str(out),
                 "--on-error", "skip", "--chunk-size", "4", "--quiet"]) == 0
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(p.rsplit("/", 1)[1] for p in skipped["path"]) == ["anomaly_id_00_00000097.wav",
                                                                     "normal_id_02_00000098.wav"]
    assert skipped["error"].str.contains("cannot decode as audio|truncated").all()
    assert _scores(out) == clean_scores  # the other clips' scores are unchanged
    assert main(["evaluate", "--model", str(trained), "--data", str(broken_folder), "--out", str(out / "ev"),
                 "--on-error", "skip", "--quiet"]) == 0
    assert (out / "ev" / "result.csv").is_file() and len(pd.read_csv(out / "ev" / "skipped.csv")) == 2


def test_sample_rate_and_band_mismatch(dev_folder, trained, tmp_path, capsys):
    root = tmp_path / "pump8k"
    (root / "test").mkdir(parents=True)
    for src in sorted((dev_folder / "test").iterdir())[:2]:
        y, sr = sf.read(src)
        sf.write(root / "test" / src.name, y[::2], sr // 2)
    msg = _err(["score", "--model", str(trained), "--data", str(root), "--out", str(tmp_path / "o"), "--quiet"],
               capsys)
    assert "is sampled at 8000 Hz but the model's LogMelTransformer expects sr=16000 Hz" in msg
    assert "--set features__sr=8000" in msg and not (tmp_path / "o").exists()

    pipe = load_model(trained, verbose=False).set_params(features__n_mels=64)
    save_model(pipe, tmp_path / "bad.skasd")
    msg = _err(["score", "--model", str(tmp_path / "bad.skasd"), "--data", str(dev_folder), "--out", str(tmp_path)],
               capsys)
    assert "the features do not match the model: its LogMelTransformer makes n_mels=64 bands but its SectionwiseDetector " \
           "was fitted on 128" in msg


def test_unsafe_or_damaged_model_file_is_one_line(dev_folder, trained, tmp_path, capsys):
    bad = tmp_path / "tampered.skasd"
    shutil.copy(trained, bad)
    with zipfile.ZipFile(bad) as zf:
        content = {n: zf.read(n) for n in zf.namelist()}
    content[ARRAYS] = content[ARRAYS][:-1] + bytes([content[ARRAYS][-1] ^ 1])
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in content.items():
            zf.writestr(name, data)
    msg = _err(["score", "--model", str(bad), "--data", str(dev_folder), "--out", str(tmp_path / "o")], capsys)
    assert msg.startswith("skasd score: error: cannot read model file") and "tampered" in msg
    with pytest.raises(SystemExit):
        main(["score", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path), "--chunk-size", "0"])
    assert "must be a positive integer" in capsys.readouterr().err


def test_save_model_refuses_foreign_pipeline_in_skasd_format(tmp_path):
    from sklearn.ensemble import IsolationForest

    pipe = build_pipeline("denseae", verbose=False)
    pipe.steps[-1] = ("model", IsolationForest())
    with pytest.raises(ModelFileError, match="IsolationForest.*use joblib.dump if you trust the file"):
        save_model(pipe, tmp_path / "m.skasd")
    with pytest.raises(CLIError, match="IsolationForest.*or train with --format joblib"):
        save_trained(pipe, tmp_path / "m.skasd")
    save_model(pipe, tmp_path / "m.joblib")  # joblib stays available for foreign estimators


def test_score_writes_one_row_per_test_clip(dev_folder, trained, tmp_path):
    assert main(["score", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path),
                 "--quiet"]) == 0
    tests = sorted(p.name for p in (dev_folder / "test").iterdir())
    rows = []
    for group in ("id_00", "id_02"):
        df = pd.read_csv(tmp_path / f"anomaly_score_pump_{group}.csv", header=None)
        assert all(name.split("_", 1)[1].startswith(group) for name in df[0])
        rows += list(df[0])
    assert sorted(rows) == tests


def test_evaluate_prints_table_and_writes_result_csv(dev_folder, trained, tmp_path, capsys, monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    # the plots choose no backend for the caller (no matplotlib.use side effect)
    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("matplotlib.use was called"))
    assert main(["evaluate", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path),
                 "--plot", str(tmp_path / "plots"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "id_00" in out and "arithmetic mean" in out
    lines = (tmp_path / "result.csv").read_text().splitlines()
    assert lines[:2] == ["pump", "id,AUC,pAUC"]
    assert [ln.split(",")[0] for ln in lines[2:5]] == ["00", "02", "Average"]
    auc = [float(ln.split(",")[1]) for ln in lines[2:5]]
    assert abs(auc[2] - (auc[0] + auc[1]) / 2) < 1e-12
    for name in ("roc.png", "scores.png", "loss.png", "spectrograms.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 5000, name


def _err(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1, err
    return err[0]


def test_errors_are_one_line(dev_folder, trained, tmp_path, capsys):
    out = str(tmp_path / "m.skasd")
    showwarning = warnings.showwarning
    assert "data folder not found: /nonexistent" in _err(["train", "--data", "/nonexistent", "--out", out], capsys)
    (tmp_path / "empty").mkdir()
    assert "empty" in _err(["train", "--data", str(tmp_path / "empty"), "--out", out], capsys)
    assert "bad --set 'max_epochs'" in _err(
        ["train", "--data", str(dev_folder), "--set", "max_epochs", "--out", out], capsys)
    msg = _err(["train", "--data", str(dev_folder), "--model", "cnnae", "--set", "epochs=3", "--out", out], capsys)
    assert "unknown parameter(s) epochs for cnnae" in msg and "max_epochs" in msg and "features__n_mels" in msg
    msg = _err(["train", "--data", str(dev_folder), "--model", "embedding-knn", "--set", "embedding__epochs=3",
                "--out", out], capsys)
    assert "unknown parameter(s) embedding__epochs for embedding-knn" in msg and "embedding__max_epochs" in msg
    bogus = tmp_path / "bogus.joblib"
    bogus.write_bytes(b"not a model")
    assert "cannot read model file" in _err(
        ["score", "--model", str(bogus), "--data", str(dev_folder), "--out", str(tmp_path)], capsys)
    assert "model file not found" in _err(
        ["score", "--model", str(tmp_path / "nope"), "--data", str(dev_folder), "--out", str(tmp_path)], capsys)
    msg = _err(["train", "--data", str(dev_folder), "--model", "svm", "--out", out], capsys)
    assert "unknown model 'svm'; choose one of knn-fusion, knn-spectrum, knn, mahalanobis" in msg and "embedding-knn" in msg
    assert not (tmp_path / "m.skasd").exists()
    assert warnings.showwarning is showwarning, "main left its one-line warning printer installed"


def test_console_script_no_traceback_and_debug(tmp_path):
    exe = [sys.executable, "-m", "skasd.cli"]
    res = subprocess.run([*exe, "train", "--data", "/nonexistent", "--out", str(tmp_path / "m")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr  # failures exit 2, never 1 (a finding)
    assert res.stderr.strip() == "skasd train: error: data folder not found: /nonexistent"
    res = subprocess.run([*exe, "--debug", "train", "--data", "/nonexistent", "--out", str(tmp_path / "m")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" in res.stderr


@pytest.mark.slow
def test_train_score_on_shared_slider(slider_dir, tmp_path):
    model = tmp_path / "m.skasd"
    assert main(["train", "--data", str(slider_dir), "--machine-type", "slider", "--model", "cnnae",
                 "--set", "max_epochs=1", "--out", str(model), "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--data", str(slider_dir), "--out", str(tmp_path / "s"),
                 "--quiet"]) == 0
    text = (tmp_path / "s" / "anomaly_score_slider_id_00.csv").read_text()
    name, score = text.strip().split(",")
    assert name == "anomaly_id_00_00000000.flac" and float(score) > 0


@pytest.mark.slow
def test_demo_compares_the_recommended_detectors_with_the_autoencoders(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    models = [ln.split()[2] for ln in out.splitlines() if ln.startswith("arithmetic mean")]
    assert models == ["knn", "embedding-knn", "denseae", "cnnae"]
    verdict = next(ln for ln in out.splitlines() if ln.startswith("verdict: "))
    assert verdict.split()[1] in models
    assert len({p.name for p in (tmp_path / "submission").glob("anomaly_score_slider_id_0*.csv")}) == 4
    assert (tmp_path / "plots" / "roc.png").stat().st_size > 5000
    assert (tmp_path / "report.html").stat().st_size > 10000


@pytest.mark.slow
def test_demo_on_a_real_dcase_folder(toycar_dir, tmp_path, capsys):
    from skasd.workflow import run_demo

    table = run_demo(tmp_path, max_epochs=1, verbose=False, data=toycar_dir, models=("knn", "denseae"))
    assert list(table["model"].unique()) == ["knn", "denseae"]
    assert {"AUC (source)", "AUC (target)", "pAUC", "official"} <= set(table.columns)
    assert (tmp_path / "submission" / "anomaly_score_ToyCar_section_00_test.csv").is_file()


@pytest.mark.slow
def test_reproduce_table(dev_folder, capsys):
    assert main(["reproduce", "--data", str(dev_folder), "--set", "max_epochs=1", "--quiet"]) == 0
    out = capsys.readouterr().out
    for row in ("VAE+BN", "CNNAE+L2", "DenseAE (DCASE 2020 baseline)"):
        assert row in out
    assert "0.905" in out and "0.766" in out


def test_evaluate_writes_html_report_matching_the_table(dev_folder, trained, tmp_path):
    pytest.importorskip("matplotlib")
    import re

    html = tmp_path / "report.html"
    assert main(["evaluate", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path),
                 "--report", str(html), "--quiet"]) == 0
    page = html.read_text()
    result = pd.read_csv(tmp_path / "result.csv", skiprows=1)
    metrics = page.split('id="metrics"', 1)[1].split("</table>", 1)[0]
    # the page's table holds the very values evaluate wrote to result.csv (same scores)
    values = [float(v) for v in re.findall(r'data-value="([^"]+)"', metrics)]
    for auc in result["AUC"]:
        assert min(abs(v - auc) for v in values) < 1e-12
    assert page.count("<audio") >= 4


def test_evaluate_report_on_unlabelled_test_clips(dev_folder, trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    root = tmp_path / "pump"
    shutil.copytree(dev_folder, root)
    for i, f in enumerate(sorted((root / "test").glob("*.wav"))):  # evaluation-set names: no label
        f.rename(f.with_name(f"id_{f.name.split('_id_')[1][:2]}_{i:08d}.wav"))
    out = tmp_path / "out"
    out.mkdir()
    # without --report there is nothing to evaluate: one clear line
    assert main(["evaluate", "--model", str(trained), "--data", str(root), "--out", str(out)]) == 2
    assert "no labelled test clips" in capsys.readouterr().err
    html = out / "report.html"
    assert main(["evaluate", "--model", str(trained), "--data", str(root), "--out", str(out),
                 "--report", str(html), "--quiet"]) == 0
    assert not (out / "result.csv").exists()
    page = html.read_text()
    assert 'id="metrics"' not in page
    assert page.count("<audio") >= 4


@pytest.mark.slow
def test_evaluate_writes_the_dcase2023_result_csv_on_real_toycar(toycar_dir, tmp_path, capsys):
    """The DCASE 2022+ layout (per-domain AUC, pAUC, precision/recall/F1), which crashed
    with KeyError 'AUC' when evaluate only knew the 2020 file."""
    from skasd.datasets import load_dcase
    from skasd.metrics import dcase_result_table

    model = tmp_path / "toy.skasd"
    assert main(["train", "--data", str(toycar_dir), "--model", "mahalanobis", "--out", str(model), "--quiet"]) == 0
    assert main(["evaluate", "--model", str(model), "--data", str(toycar_dir), "--out", str(tmp_path / "res"),
                 "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--data", str(toycar_dir), "--out", str(tmp_path / "sub"),
                 "--quiet"]) == 0
    lines = (tmp_path / "res" / "result.csv").read_text().splitlines()
    assert lines[0] == "ToyCar"
    assert lines[1] == ("section,AUC (source),AUC (target),pAUC,pAUC (source),pAUC (target),precision (source),"
                        "precision (target),recall (source),recall (target),F1 score (source),F1 score (target)")
    assert [ln.split(",")[0] for ln in lines[2:5]] == ["00", "arithmetic mean", "harmonic mean"]
    # the row is the official table of the submitted scores and decisions
    test = load_dcase(toycar_dir, split="test")
    names = test.path.map(lambda p: p.rsplit("/", 1)[1])
    sub = tmp_path / "sub"
    score = pd.read_csv(sub / "anomaly_score_ToyCar_section_00_test.csv", header=None, index_col=0)[1]
    flagged = pd.read_csv(sub / "decision_result_ToyCar_section_00_test.csv", header=None, index_col=0)[1]
    table = dcase_result_table(test.label == "anomaly", score[names].to_numpy(), flagged[names].to_numpy(),
                               test.section_or_id, test.domain)
    np.testing.assert_allclose([float(v) for v in lines[2].split(",")[1:]], table.loc["section_00"], rtol=1e-12)
    assert "AUC (source)" in capsys.readouterr().out


# ------------------------------------------------------------ every detector, sections, exit codes
def test_models_lists_every_family_one_line_each(capsys):
    from skasd.workflow import DEFAULT_MODEL, MODELS, SINGLE_DOMAIN_MODEL

    assert main(["models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(MODELS)
    assert {"knn-spectrum", "knn", "mahalanobis", "gmm", "knn-aisfx", "embedding-knn", "embedding-gmm", "denseae",
            "vae", "cnnae"} <= set(MODELS)
    assert "(default for folders with source/target domains" in lines[list(MODELS).index(DEFAULT_MODEL)]
    assert "(default for folders without domains" in lines[list(MODELS).index(SINGLE_DOMAIN_MODEL)]
    assert "(the default where the aisfx weights cannot be had" in lines[list(MODELS).index("knn-spectrum")]
    assert sum("(default" in ln for ln in lines) == 2 and all("set: " in ln for ln in lines)
    assert DEFAULT_MODEL == "knn-fusion"


def test_train_without_model_picks_the_recipe_by_the_clips_domains(dev_folder, tmp_path, capsys):
    """No --model: the spectrum k-NN where every clip has a domain (DCASE 2021-2024), else the
    single-domain fallback (MIMII, DCASE 2020), named in the log and the model file."""
    from skasd.datasets import load_dcase
    from skasd.workflow import default_model

    path = tmp_path / "m.skasd"
    assert main(["train", "--data", str(dev_folder), "--out", str(path)]) == 0
    assert "training mahalanobis (the default for clips without domains)" in capsys.readouterr().out
    assert model_info(path)["metadata"]["model"] == "mahalanobis"
    clips = load_dcase(dev_folder, split="train")
    assert default_model(clips) == "mahalanobis"
    assert default_model(clips.assign(domain="source")) == "knn-fusion"
    assert default_model(clips.assign(domain=["source"] * (len(clips) - 1) + [None])) == "mahalanobis"


@pytest.mark.parametrize("model, sets", [
    ("knn-spectrum", []), ("knn", []), ("mahalanobis", []), ("gmm", ["covariance_type=diag"]), ("knn-clipstats", []),
    ("embedding-knn", ["embedding__max_epochs=1", "embedding__random_state=0"]),
    ("embedding-gmm", ["embedding__max_epochs=1", "covariance_type=diag"]),
    ("vae", ["max_epochs=1"]), ("cnnae", ["max_epochs=1"]),
])
def test_every_family_trains_scores_and_evaluates(model, sets, dev_folder, tmp_path):
    path = tmp_path / "m.skasd"
    argv = ["train", "--data", str(dev_folder), "--model", model, "--out", str(path), "--quiet"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    assert main(["evaluate", "--model", str(path), "--data", str(dev_folder), "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "result.csv").read_text().splitlines()[1] == "id,AUC,pAUC"
    info = model_info(path)["metadata"]
    assert info["model"] == model and info["sections"] == ["id_00", "id_02"]
    assert "section" in info["fit_metadata"]  # one model and threshold per machine ID, autoencoders too
    detector = load_model(path)[-1]
    assert detector.sections_.tolist() == ["id_00", "id_02"] and set(detector.section_offsets_) == {"id_00", "id_02"}


def test_inlier_models_fit_and_score_per_section(dev_folder, tmp_path):
    """One model and threshold per ID: the CLI's scores are each clip's own section's."""
    from skasd.datasets import load_dcase
    from skasd.workflow import build_pipeline

    path = tmp_path / "knn.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn", "--out", str(path), "--quiet"]) == 0
    assert model_info(path)["metadata"]["fit_metadata"] == ["section"]
    assert main(["score", "--model", str(path), "--data", str(dev_folder), "--out", str(tmp_path / "s"),
                 "--json", str(tmp_path / "r.jsonl"), "--quiet"]) == 0
    clips = load_dcase(dev_folder)
    train, test = clips[clips.split == "train"], clips[clips.split == "test"]
    by_hand = {}
    for section in ("id_00", "id_02"):
        pipe = build_pipeline("knn", verbose=False).fit(list(train.path[train.section_or_id == section]))
        rows = test[test.section_or_id == section]
        by_hand.update(zip(rows.path.map(lambda p: p.rsplit("/", 1)[1]), -pipe.score_samples(list(rows.path))))
        offset = pipe[-1].offset_
        records = [json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines()]
        mine = [r for r in records if r["section"] == section]
        assert len(mine) == len(rows) and all(r["threshold"] == pytest.approx(-offset) for r in mine)
        assert all(r["flagged"] == (r["score"] > r["threshold"]) for r in mine)
    scores = _scores(tmp_path / "s")
    assert scores.keys() == by_hand.keys()
    np.testing.assert_allclose([scores[k] for k in by_hand], list(by_hand.values()), rtol=1e-9)


def test_fail_on_anomaly_exit_codes_and_json(dev_folder, tmp_path, capsys):
    path = tmp_path / "knn.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn", "--out", str(path), "--quiet"]) == 0
    # the folder's anomalies are flagged: exit 1
    assert main(["score", "--model", str(path), "--data", str(dev_folder), "--out", str(tmp_path / "a"),
                 "--fail-on-anomaly", "--quiet"]) == 1
    # a folder of normal clips only, with a threshold above every score: nothing flagged, exit 0
    normal = tmp_path / "normal" / "pump"
    shutil.copytree(dev_folder, normal)
    for f in (normal / "test").glob("anomaly_*"):
        f.unlink()
    lenient = tmp_path / "lenient.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn", "--set", "contamination=0.0001",
                 "--out", str(lenient), "--quiet"]) == 0
    rc = main(["score", "--model", str(lenient), "--data", str(normal), "--out", str(tmp_path / "b"),
               "--fail-on-anomaly", "--json", str(tmp_path / "b.jsonl"), "--quiet"])
    records = [json.loads(ln) for ln in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert rc == (1 if any(r["flagged"] for r in records) else 0)
    assert set(records[0]) == {"path", "section", "score", "threshold", "flagged"}
    # an unreadable clip: exit 2, one line naming the file, never 1
    (normal / "test" / "normal_id_00_00000099.wav").write_bytes(b"not audio")
    capsys.readouterr()
    assert main(["score", "--model", str(path), "--data", str(normal), "--out", str(tmp_path / "c"),
                 "--fail-on-anomaly", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "normal_id_00_00000099.wav" in err[0]


def test_model_of_other_sections_is_one_line(dev_folder, tmp_path, capsys):
    path = tmp_path / "m.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn", "--out", str(path), "--quiet"]) == 0
    three = tmp_path / "three" / "pump"
    shutil.copytree(dev_folder, three)
    for f in (three / "test").glob("*id_02*"):
        f.rename(f.with_name(f.name.replace("id_02", "id_04")))
    msg = _err(["score", "--model", str(path), "--data", str(three), "--out", str(tmp_path / "s")], capsys)
    assert "trained on sections id_00, id_02" in msg and "id_04" in msg


def test_evaluate_warns_about_clips_it_was_trained_on(fan_dir, tmp_path, capsys):
    path = tmp_path / "m.skasd"
    assert main(["train", "--data", str(fan_dir), "--model", "knn", "--out", str(path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(path), "--data", str(fan_dir), "--out", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "20 of the 40 evaluated clips were in the model's training set" in err


def test_fit_pipeline_warns_once_about_missing_target_clips_and_attributes(dev_folder):
    from skasd.datasets import load_dcase
    from skasd.workflow import build_pipeline, fit_pipeline

    clips = load_dcase(dev_folder)
    train = clips[clips.split == "train"].copy()
    train["domain"] = "source"
    with pytest.warns(UserWarning) as record:
        fit_pipeline(build_pipeline("embedding-knn", {"embedding__max_epochs": 1}, verbose=False), train)
    messages = [str(w.message) for w in record if "target-domain" in str(w.message) or "attributes" in str(w.message)]
    assert len(messages) == 2
    assert "no target-domain training clips" in messages[0] and "no attributes in the file names" in messages[1]


def test_explain_prints_time_and_band_per_clip(dev_folder, trained, tmp_path, capsys):
    clips = sorted((dev_folder / "test").glob("anomaly_id_0*.wav"))[:2] + sorted((dev_folder / "test").glob("normal_*"))[:1]
    table = tmp_path / "explained.csv"
    assert main(["explain", "--model", str(trained), *map(str, clips), "--segments", "2", "--csv", str(table),
                 "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    verdicts = [line for line in out if not line.startswith("  ")]
    assert len(verdicts) == 3 and all(re.search(r": (ANOMALOUS|normal), anomaly score", v) for v in verdicts)
    segments = [line for line in out if line.startswith("  ")]
    assert all(re.search(r"[0-9.]+-[0-9.]+ s: [+-][0-9]+ dB in [0-9.]+-[0-9.]+ k?Hz", s) for s in segments)
    rows = pd.read_csv(table)
    assert set(rows["clip"]) == set(map(str, clips)) and rows["segment"].max() <= 2
    # the model holds one DenseAE per ID: each clip is explained by its own ID's model and threshold
    pipe = load_model(trained)
    X = pipe[0].transform([str(clips[0])])
    first = rows[rows["clip"] == str(clips[0])].iloc[0]
    assert first["anomaly_score"] == pytest.approx(-pipe[-1].score_samples(X, section=["id_00"])[0], rel=1e-6)


def _with_domains(dev_folder, root):
    """The generated DCASE 2020 folder renamed into the DCASE 2023 layout: id_00 -> section 00,
    the first two clips of each ID and label in each split the target domain."""
    out = root / "pump"
    for split in ("train", "test"):
        (out / split).mkdir(parents=True)
        for k, src in enumerate(sorted((dev_folder / split).glob("*.wav"))):
            label, _, mid, num = src.stem.split("_")
            domain = "target" if int(num) < 2 else "source"
            name = f"section_{mid}_{domain}_{split}_{label}_{int(num):04d}_speed_{k % 3}.wav"
            shutil.copy(src, out / split / name)
    return out


def test_explain_and_frame_scores_of_the_spectrum_recipe(dev_folder, tmp_path, capsys):
    """On a folder whose clips carry domains, train without --model fits the spectrum k-NN,
    which explains in windows of its clip spectra; a spectrum model whose detector does not
    match its bins is refused as the log-mel ones are."""
    folder = _with_domains(dev_folder, tmp_path / "dcase2023")
    path = tmp_path / "spectrum.skasd"
    # no aisfx weights in the (test) cache and SKASD_OFFLINE set: the default falls back, in one line
    assert main(["train", "--data", str(folder), "--out", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "training knn-spectrum (the fallback of the default)" in out
    said = [ln for ln in err.splitlines() if ln.startswith("skasd:")]  # the rest are progress bars
    assert len(said) == 1 and "SKASD_OFFLINE is set: training knn-spectrum instead of knn-fusion; get them " \
        "with `skasd weights fetch aisfx`" in said[0], err
    info = model_info(path)["metadata"]
    assert info["model"] == "knn-spectrum" and info["fit_metadata"] == ["domain", "section"]
    assert "SKASD_OFFLINE" in info["default_fallback"]
    assert main(["evaluate", "--model", str(path), "--data", str(folder), "--out", str(tmp_path / "e"),
                 "--quiet"]) == 0
    assert (tmp_path / "e" / "result.csv").read_text().splitlines()[1].startswith("section,AUC (source),AUC (target)")
    bad = load_model(path, verbose=False).set_params(features__n_fft=1024)
    save_model(bad, tmp_path / "bad.skasd")
    msg = _err(["score", "--model", str(tmp_path / "bad.skasd"), "--data", str(folder), "--out", str(tmp_path)],
               capsys)
    assert "its SpectrumTransformer makes n_fft // 2 + 1 = 513 bins but its KNNDetector was fitted on 2049" in msg
    path = tmp_path / "spectrum2020.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn-spectrum", "--out", str(path), "--quiet"]) == 0
    clip = sorted((dev_folder / "test").glob("anomaly_id_00_*.wav"))[0]
    capsys.readouterr()
    assert main(["explain", "--model", str(path), str(clip), "--segments", "1", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and re.search(r"[0-9.]+-[0-9.]+ s: [+-][0-9]+ dB in [0-9.]+-[0-9.]+ k?Hz", out[1])
    assert main(["score", "--model", str(path), "--data", str(dev_folder), "--out", str(tmp_path), "--frames",
                 "--quiet"]) == 0
    frames = pd.read_csv(tmp_path / "frame_scores_pump_id_00.csv")
    assert (frames.groupby("file").size() == 12).all()  # 4 s: 30 Welch frames, 12 windows of 8 every 2
    np.testing.assert_allclose(frames["time_s"][:2], [0.576, 0.832])


def test_explain_errors_are_one_line(dev_folder, trained, tmp_path, capsys):
    stray = tmp_path / "clip.wav"
    shutil.copy(next((dev_folder / "test").glob("normal_id_00_*.wav")), stray)
    msg = _err(["explain", "--model", str(trained), str(stray)], capsys)
    assert "cannot be told from its name: give --section" in msg
    assert main(["explain", "--model", str(trained), str(stray), "--section", "id_00", "--quiet"]) == 0
    capsys.readouterr()
    assert "trained on sections" in _err(["explain", "--model", str(trained), str(stray), "--section", "id_07"], capsys)
    assert "no such file" in _err(["explain", "--model", str(trained), str(tmp_path / "missing.wav")], capsys)


def test_score_frames_writes_frame_scores_beside_submission(dev_folder, trained, tmp_path):
    assert main(["score", "--model", str(trained), "--data", str(dev_folder), "--out", str(tmp_path), "--frames",
                 "--quiet"]) == 0
    for group in ("id_00", "id_02"):
        frames = pd.read_csv(tmp_path / f"frame_scores_pump_{group}.csv")
        submitted = pd.read_csv(tmp_path / f"anomaly_score_pump_{group}.csv", header=None)
        assert list(frames.columns) == ["file", "frame", "time_s", "frame_score"]
        assert list(frames["file"].unique()) == list(submitted[0])
        per_clip = frames.groupby("file", sort=False)
        assert (per_clip.size() == 126).all()  # 4 s at hop 512: 126 frames
        np.testing.assert_allclose(frames["time_s"][:3], [0, 0.032, 0.064])
        # the DenseAE clip score is the frame scores' mean, weighted by the windows covering each frame
        cover = np.convolve(np.ones(122), np.ones(5))
        pooled = per_clip["frame_score"].apply(lambda f: np.dot(f, cover) / cover.sum())
        np.testing.assert_allclose(pooled.to_numpy(), submitted[1].to_numpy(), rtol=1e-4)


def test_knn_aisfx_trains_with_the_shared_weights_and_names_the_fetch_without_them(
        dev_folder, shared_data, tmp_path, monkeypatch, capsys):
    weights = shared_data.parent / "models" / "aisfx" / "checkpoint.pth"
    if not weights.is_file():
        pytest.skip(f"no aisfx checkpoint at {weights}")
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path / "empty-cache"))
    path = tmp_path / "m.skasd"
    assert main(["train", "--data", str(dev_folder), "--model", "knn-aisfx", "--out", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "skasd weights fetch aisfx" in err and len(err.strip().splitlines()) == 1, err
    argv = ["train", "--data", str(dev_folder), "--model", "knn-aisfx", "--set", f"features__weights={weights}",
            "--out", str(path), "--quiet"]
    assert main(argv) == 0
    assert main(["evaluate", "--model", str(path), "--data", str(dev_folder), "--out", str(tmp_path), "--quiet"]) == 0
    pipe = load_model(path)
    assert [name for name, _ in pipe.steps] == ["features", "centre", "model"]
    assert pipe[-1].sections_.tolist() == ["id_00", "id_02"]


def test_knn_fusion_trains_scores_explains_and_adapts(dev_folder, aisfx_weights, tmp_path, monkeypatch, capsys):
    """The default recipe for folders with domains: both k-NNs fitted per section and domain, the
    fusion's thresholds per section, a model file that round-trips, explanations from its spectrum
    k-NN with the fusion's verdicts, and adapt (its sub-detectors' partial_fit)."""
    from skasd.datasets import load_dcase
    from skasd.workflow import fetch_weights

    folder = _with_domains(dev_folder, tmp_path / "dcase2023")
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path / "cache"))  # this test's own: the others keep the fallback
    fetch_weights("aisfx", source=aisfx_weights)  # what the default looks for
    path = tmp_path / "fusion.skasd"
    assert main(["train", "--data", str(folder), "--out", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "training knn-fusion (the default for clips with domains)" in out and "instead of" not in err
    info = model_info(path)["metadata"]
    assert info["model"] == "knn-fusion" and info["fit_metadata"] == ["domain", "section"]
    msg = _err(["train", "--data", str(folder), "--model", "knn-fusion", "--set", "n_neighbors=3", "--out", str(path)],
               capsys)
    assert "unknown parameter(s) n_neighbors for knn-fusion; valid: aisfx, aisfx__centre" in msg
    assert "spectrum__model__n_neighbors" in msg
    pipe = load_model(path, verbose=False)
    fusion = pipe[-1]
    assert fusion.sections_.tolist() == ["section_00", "section_02"]
    assert set(fusion.section_offsets_) == {"section_00", "section_02"}
    spectrum, aisfx = fusion.named_detectors_.spectrum[-1], fusion.named_detectors_.aisfx[-1]
    assert spectrum.model_groups_ == aisfx.model_groups_ == [
        ("section_00", "source"), ("section_00", "target"), ("section_02", "source"), ("section_02", "target")]
    assert spectrum.domain_norm == "zscore" and aisfx.domain_norm is None and aisfx.metric == "cosine"
    # the fusion's score: the mean of both k-NNs' training-score ranks (their leave-one-out scores)
    test = load_dcase(folder, split="test")
    paths, sec = list(test["path"]), test["section_or_id"].astype(str).to_numpy(object)
    ranks = [np.searchsorted(np.sort(-sub[-1].train_scores_), -sub[-1].score_samples(sub[:-1].transform(paths),
                                                                                       section=sec), side="right")
             / len(sub[-1].train_scores_) for sub in fusion.detectors_]
    np.testing.assert_allclose(fusion.score_samples(paths, section=sec), -np.mean(ranks, axis=0))
    assert main(["evaluate", "--model", str(path), "--data", str(folder), "--out", str(tmp_path / "e"),
                 "--quiet"]) == 0
    assert (tmp_path / "e" / "result.csv").read_text().splitlines()[1].startswith("section,AUC (source),AUC (target)")
    assert main(["explain", "--model", str(path), *paths, "--quiet"]) == 0
    explained = capsys.readouterr().out
    scores = -fusion.score_samples(paths, section=sec)
    verdicts = fusion.predict(paths, section=sec)
    assert len(set(verdicts)) == 2  # flagged and unflagged clips, each told as the fusion judges it
    blocks = explained.split(f"{paths[0].rsplit('/', 1)[0]}/")[1:]
    for clip, score, verdict, block in zip(paths, scores, verdicts, blocks):
        head, *segments = block.strip().splitlines()
        assert head.startswith(f"{clip.rsplit('/', 1)[1]}: {'ANOMALOUS' if verdict == -1 else 'normal'}, "
                               f"anomaly score {score:.4g} (threshold "), head
        nothing = [ln.strip().startswith("1. no segment stands out") for ln in segments]
        assert nothing == ([] if verdict == -1 else [True]) or (verdict == -1 and not any(nothing)), block
    # adapt: the section's target-domain test normals as a new batch of normal target clips
    new = tmp_path / "new"
    new.mkdir()
    for f in sorted((folder / "test").glob("section_00_target_test_normal_*")):
        shutil.copy(f, new / f.name.replace("_test_", "_train_"))
    assert main(["adapt", "--model", str(path), "--data", str(new), "--out", str(tmp_path / "a.skasd"),
                 "--quiet"]) == 0
    assert "the model's aisfx centre step(s) keep what they learnt" in capsys.readouterr().err
    adapted = load_model(tmp_path / "a.skasd", verbose=False)[-1]
    assert len(adapted.train_scores_) == len(fusion.train_scores_) + len(list(new.iterdir()))
