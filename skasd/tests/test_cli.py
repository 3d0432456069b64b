import subprocess
import sys

import pandas as pd
import pytest

from skasd._cli import main
from skasd._experiment import write_dcase_layout


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
    model = tmp_path_factory.mktemp("model") / "pump.joblib"
    assert main(["train", "--data", str(dev_folder), "--model", "denseae", "--set", "max_epochs=2",
                 "--set", "random_state=0", "--out", str(model), "--quiet"]) == 0
    return model


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


def test_evaluate_prints_table_and_writes_result_csv(dev_folder, trained, tmp_path, capsys):
    pytest.importorskip("matplotlib")
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
    out = str(tmp_path / "m.joblib")
    assert "data folder not found: /nonexistent" in _err(["train", "--data", "/nonexistent", "--out", out], capsys)
    (tmp_path / "empty").mkdir()
    assert "empty" in _err(["train", "--data", str(tmp_path / "empty"), "--out", out], capsys)
    assert "bad --set 'max_epochs'" in _err(
        ["train", "--data", str(dev_folder), "--set", "max_epochs", "--out", out], capsys)
    msg = _err(["train", "--data", str(dev_folder), "--set", "epochs=3", "--out", out], capsys)
    assert "unknown parameter(s) epochs for cnnae" in msg and "max_epochs" in msg
    bogus = tmp_path / "bogus.joblib"
    bogus.write_bytes(b"not a model")
    assert "cannot read model file" in _err(
        ["score", "--model", str(bogus), "--data", str(dev_folder), "--out", str(tmp_path)], capsys)
    assert "model file not found" in _err(
        ["score", "--model", str(tmp_path / "nope"), "--data", str(dev_folder), "--out", str(tmp_path)], capsys)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(dev_folder), "--model", "svm", "--out", out])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'svm'" in err[0]
    assert not (tmp_path / "m.joblib").exists()


def test_console_script_no_traceback_and_debug(tmp_path):
    exe = [sys.executable, "-m", "skasd._cli"]
    res = subprocess.run([*exe, "train", "--data", "/nonexistent", "--out", str(tmp_path / "m")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == "skasd train: error: data folder not found: /nonexistent"
    res = subprocess.run([*exe, "--debug", "train", "--data", "/nonexistent", "--out", str(tmp_path / "m")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "Traceback" in res.stderr


@pytest.mark.slow
def test_train_score_on_shared_slider(slider_dir, tmp_path):
    model = tmp_path / "m.joblib"
    assert main(["train", "--data", str(slider_dir), "--machine-type", "slider", "--model", "cnnae",
                 "--set", "max_epochs=1", "--out", str(model), "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--data", str(slider_dir), "--out", str(tmp_path / "s"),
                 "--quiet"]) == 0
    text = (tmp_path / "s" / "anomaly_score_slider_id_00.csv").read_text()
    name, score = text.strip().split(",")
    assert name == "anomaly_id_00_00000000.flac" and float(score) > 0


@pytest.mark.slow
def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "arithmetic mean" in out
    assert (tmp_path / "submission" / "anomaly_score_machine_id_00.csv").is_file()
    assert (tmp_path / "plots" / "roc.png").stat().st_size > 5000
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 5000


@pytest.mark.slow
def test_reproduce_table(dev_folder, capsys):
    assert main(["reproduce", "--data", str(dev_folder), "--set", "max_epochs=1", "--quiet"]) == 0
    out = capsys.readouterr().out
    for row in ("VAE+BN", "CNNAE+L2", "DenseAE (DCASE 2020 baseline)"):
        assert row in out
    assert "0.905" in out and "0.766" in out
