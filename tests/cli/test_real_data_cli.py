"""The command line on the shared real DCASE folders (skipped without ../shared)."""

import numpy as np
import pytest

from skasd import model_info
from skasd.cli import main

pytestmark = pytest.mark.slow


def _official(result_csv):
    lines = result_csv.read_text().splitlines()
    header, row = lines[1].split(","), lines[2].split(",")
    values = {k: float(v) for k, v in zip(header[1:], row[1:])}
    src, tgt, pauc = values["AUC (source)"], values["AUC (target)"], values["pAUC"]
    return 3 / (1 / src + 1 / tgt + 1 / pauc), values


def test_default_model_beats_the_dcase_baseline_autoencoder_on_real_toycar(toycar_dir, tmp_path):
    """The default `skasd train` model on a DCASE 2023 folder as the (offline) tests get it: the
    fallback knn-spectrum, the domain-normalised k-NN on each clip's level-normalised spectrum
    (SpectrumTransformer; the default knn-fusion needs the aisfx weights, which the tests do not
    fetch, and takes minutes: bench_dcase.py and the acceptance check measure it), against the DCASE
    baseline-style dense autoencoder, both through train + evaluate on the shared ToyCar 2023
    section. Measured (benchmarks/README.md): official score .581 (AUC source .552, target
    .714, pAUC .513) against .501-.506 for DenseAE over seeds 0-2 at 10 epochs, whose AUC
    (target) is .38-.40. Asserted with margin: the default is ahead on the official score and
    on AUC (target)."""
    scores = {}
    for name, argv in (("default", []), ("denseae", ["--model", "denseae", "--set", "max_epochs=5",
                                                     "--set", "random_state=0"])):
        model = tmp_path / f"{name}.skasd"
        assert main(["train", "--data", str(toycar_dir), "--out", str(model), "--quiet", *argv]) == 0
        assert main(["evaluate", "--model", str(model), "--data", str(toycar_dir), "--out", str(tmp_path / name),
                     "--quiet"]) == 0
        scores[name] = _official(tmp_path / name / "result.csv")
    (default, d), (baseline, b) = scores["default"], scores["denseae"]
    info = model_info(tmp_path / "default.skasd")["metadata"]
    assert info["model"] == "knn-spectrum" and info["fit_metadata"] == ["domain"]
    assert default > baseline + 0.015, (default, baseline)
    assert d["AUC (target)"] > b["AUC (target)"] + 0.1 and d["AUC (target)"] >= 0.55


@pytest.mark.parametrize("machine_type", ["valve", "fan", "ToyTrain", "bearing", "gearbox"])
def test_sample_folder_types_train_and_evaluate(shared_data, machine_type, tmp_path, capsys):
    """The 7-type DCASE 2023 sample folder (2 train clips a type): train, score, evaluate; with
    test clips of one domain only, evaluate warns and writes AUC/pAUC over both domains."""
    root = shared_data / "minchala-dcase2023-samples"
    model = tmp_path / "m.skasd"
    assert main(["train", "--data", str(root), "--machine-type", machine_type, "--out", str(model), "--quiet"]) == 0
    assert main(["score", "--model", str(model), "--data", str(root), "--machine-type", machine_type,
                 "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert (tmp_path / "s" / f"anomaly_score_{machine_type}_section_00_test.csv").is_file()
    assert main(["evaluate", "--model", str(model), "--data", str(root), "--machine-type", machine_type,
                 "--out", str(tmp_path / "e"), "--quiet"]) == 0
    text = (tmp_path / "e" / "result.csv").read_text().splitlines()
    assert text[0] == machine_type and text[1] in ("section,AUC,pAUC", "section,AUC (source),AUC (target),pAUC,"
                                                   "pAUC (source),pAUC (target),precision (source),precision (target),"
                                                   "recall (source),recall (target),F1 score (source),F1 score (target)")


def test_slider_2020_folder_per_id(slider_dir, tmp_path):
    model = tmp_path / "m.skasd"
    assert main(["train", "--data", str(slider_dir), "--machine-type", "slider", "--out", str(model), "--quiet"]) == 0
    assert model_info(model)["metadata"]["sections"] == ["id_00"]
    assert main(["score", "--model", str(model), "--data", str(slider_dir), "--out", str(tmp_path / "s"),
                 "--json", str(tmp_path / "r.jsonl"), "--quiet"]) == 0
    rows = (tmp_path / "s" / "anomaly_score_slider_id_00.csv").read_text().splitlines()
    assert len(rows) == 1 and np.isfinite(float(rows[0].split(",")[1]))
