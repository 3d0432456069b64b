"""``skasd adapt``: a folder of normal clips added to a trained model as a domain, recorded in the model file."""

import datetime

import numpy as np
import pytest
import soundfile as sf

from skasd import model_info
from skasd.cli import main
from skasd.exceptions import UsageError
from skasd.workflow import adapt_model, build_pipeline, clip_hashes, fit_pipeline, load_clips, load_model, save_model


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """DCASE 2023-style clips of 2 s: source = one generated machine, target = another (a new condition)."""
    from skasd.datasets import make_machine_sounds

    b = make_machine_sounds(n_normal=18, n_anomaly=3, machine_ids=("id_00", "id_02"), duration=2.0, random_state=0)
    root = tmp_path_factory.mktemp("adapt")
    src, both, tgt, test = root / "src" / "toy" / "train", root / "both" / "toy" / "train", root / "tgt", root / "test"
    for d in (src, both, tgt, test / "toy" / "test"):
        d.mkdir(parents=True)
    for domain, mid in (("source", "id_00"), ("target", "id_02")):
        normal = np.flatnonzero((b.machine_id == mid) & (b.target == 0))
        n_train = 12 if domain == "source" else 6
        for k, i in enumerate(normal[:n_train]):
            name = f"section_00_{domain}_train_normal_{k:04d}.wav"
            sf.write(both / name, b.data[i], b.sr)
            sf.write((src if domain == "source" else tgt) / name, b.data[i], b.sr)
        for k, i in enumerate(normal[n_train:]):
            sf.write(test / "toy" / "test" / f"section_00_{domain}_test_normal_{k:04d}.wav", b.data[i], b.sr)
    return {"src": src.parent.parent, "both": both.parent.parent, "tgt": tgt, "root": root, "bunch": b}


@pytest.fixture(scope="module")
def source_model(folders):
    path = folders["root"] / "m.skasd"
    assert main(["train", "--data", str(folders["src"]), "--model", "knn-spectrum", "--out", str(path), "--quiet"]) == 0
    return path


def test_adapt_round_trip_equals_training_on_both_and_is_recorded(folders, source_model, tmp_path):
    out = tmp_path / "m2.skasd"
    assert main(["adapt", "--model", str(source_model), "--data", str(folders["tgt"]), "--domain", "target",
                 "--out", str(out), "--quiet"]) == 0
    both = tmp_path / "both.skasd"
    assert main(["train", "--data", str(folders["both"]), "--model", "knn-spectrum", "--out", str(both), "--quiet"]) == 0
    adapted, ref = load_model(out, verbose=False), load_model(both, verbose=False)
    assert adapted[-1].domains_.tolist() == ["source", "target"]
    test = sorted(str(p) for p in (folders["root"] / "test").rglob("*.wav"))
    np.testing.assert_allclose(adapted.score_samples(test), ref.score_samples(test), rtol=1e-9)
    np.testing.assert_allclose(adapted[-1].offset_, ref[-1].offset_, rtol=1e-9)
    meta = model_info(out)["metadata"]
    tgt = sorted(str(p) for p in folders["tgt"].iterdir())
    (record,) = meta["adaptations"]
    assert record["n_clips"] == 6 and record["domain"] == ["target"] and record["from_model"] == "m.skasd"
    assert record["clip_hashes"] == clip_hashes(tgt)
    assert abs(datetime.datetime.fromisoformat(record["date"]) - datetime.datetime.now(datetime.timezone.utc)).seconds < 600
    old = model_info(source_model)["metadata"]
    assert meta["training_clip_hashes"] == old["training_clip_hashes"] + clip_hashes(tgt)
    # the clips the model now holds; training_files_sha256 stays that of the first training's files
    assert old["n_training_files"] == 12 and meta["n_training_files"] == 12 + 6 and meta["clip_seconds"] == [2.0]
    assert meta["training_files_sha256"] == old["training_files_sha256"]
    # a second adaptation adds its record to the first
    assert main(["adapt", "--model", str(out), "--data", str(folders["tgt"]), "--domain", "target2",
                 "--out", str(tmp_path / "m3.skasd"), "--quiet"]) == 0
    assert [r["domain"] for r in model_info(tmp_path / "m3.skasd")["metadata"]["adaptations"]] == [["target"], ["target2"]]


@pytest.mark.parametrize("sr, seconds, message", [
    (8000, 2.0, "sampled at 8000 Hz but the model's SpectrumTransformer expects sr=16000 Hz"),
    (16000, 1.0, "clips of 1 s but the model was trained on clips of 2 s"),
])
def test_clips_of_another_rate_or_length_are_refused(folders, source_model, tmp_path, capsys, sr, seconds, message):
    wave = folders["bunch"].data[0]
    for k in range(4):
        clip = np.interp(np.arange(int(seconds * sr)) * 16000 / sr, np.arange(len(wave)), wave)
        sf.write(tmp_path / f"section_00_target_train_normal_{k:04d}.wav", clip, sr)
    out = tmp_path / "m2.skasd"
    code = main(["adapt", "--model", str(source_model), "--data", str(tmp_path), "--domain", "target", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert message in capsys.readouterr().err


def test_autoencoders_and_missing_labels_are_refused(folders, source_model, tmp_path):
    pipe, _ = fit_pipeline(build_pipeline("denseae", {"max_epochs": 1, "random_state": 0}, verbose=False),
                           load_clips(folders["src"]).head(4))
    save_model(pipe, tmp_path / "ae.skasd")
    with pytest.raises(UsageError, match="DenseAE cannot take new clips without retraining.*'skasd train'.*knn"):
        adapt_model(tmp_path / "ae.skasd", folders["tgt"], tmp_path / "ae2.skasd", domain="target")
    with pytest.raises(UsageError, match="trained without sections, so it cannot take clips as section 'x'"):
        adapt_model(source_model, folders["tgt"], tmp_path / "x.skasd", domain="target", section="x")


def _modal_share(table):
    """Share of the clips whose top band falls in the one-third-octave bin named most often."""
    top = table.groupby("clip", sort=False).first()
    third = np.round(3 * np.log2(np.sqrt(top["band_low_hz"].clip(lower=1) * top["band_high_hz"]) / 1000))
    return third.value_counts(normalize=True).iloc[0]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:no target-domain training clips")
def test_adapt_and_explain_on_real_toycar(toycar_dir):
    """The shared DCASE 2023 ToyCar section: a knn-spectrum model of 100 source clips, adapted with the
    10 target clips, ranks the target test clips far better (full set, benchmarks/README.md: AUC
    (target) .307 -> .714). Explained against their own domain, the test clips' top bands depend on
    the clip; against the pooled profile of both domains one band is named far more often (full
    set: in 45 % of the normal clips, 14-18 % against their own domain)."""
    from sklearn.metrics import roc_auc_score

    from skasd.inspection import explain

    clips = load_clips(toycar_dir)
    train, test = clips[clips.split == "train"], clips[clips.split == "test"]
    source, target = train[train.domain == "source"].iloc[::5], train[train.domain == "target"]
    pipe, _ = fit_pipeline(build_pipeline("knn-spectrum", verbose=False), source)
    tgt_test = test[test.domain == "target"]
    y, paths = (tgt_test.label == "anomaly").to_numpy(int), list(tgt_test.path)
    before = roc_auc_score(y, -pipe.score_samples(paths))
    pipe[-1].partial_fit(pipe[:-1].transform(list(target.path)), domain="target")
    after = roc_auc_score(y, -pipe.score_samples(paths))
    assert after > before + 0.1, (before, after)
    own = explain(pipe, list(test.path), n_segments=3)
    below = own[~own["anomalous"]]
    assert below["clip"].is_unique and below["summary"].str.startswith("no segment stands out").all()
    del pipe[-1].model_profiles_
    pooled = explain(pipe, list(test.path), n_segments=1)
    assert _modal_share(own) < _modal_share(pooled) - 0.1, (_modal_share(own), _modal_share(pooled))


def test_a_step_that_learnt_from_the_first_clips_is_named_in_a_warning(folders, tmp_path):
    """A scaler before the detector keeps its training clips' centre: adapt still runs, but says
    the result is not what a retrain on all the clips would give."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from skasd import ClipStatsTransformer, KNNDetector

    pipe = Pipeline([("features", ClipStatsTransformer()), ("centre", StandardScaler()),
                     ("model", KNNDetector(domain_norm="zscore"))])
    fit_pipeline(pipe, load_clips(folders["src"], split="train"))
    save_model(pipe, tmp_path / "m.skasd", "skasd")
    with pytest.warns(UserWarning, match=r"model's centre step\(s\) keep what they learnt from its first training clips"):
        adapt_model(tmp_path / "m.skasd", folders["tgt"], tmp_path / "m2.skasd", domain="target")
    assert load_model(tmp_path / "m2.skasd")[-1].domains_.tolist() == ["source", "target"]


def test_a_model_with_sections_reports_the_thresholds_of_the_sections_adapted(folders, tmp_path, capsys):
    """One threshold per section: adapt prints (and returns) those of the sections the clips joined,
    not the global one that judges no clip."""
    b = folders["bunch"]
    train, new = tmp_path / "two" / "toy" / "train", tmp_path / "new"
    train.mkdir(parents=True), new.mkdir()
    for section, mid in (("00", "id_00"), ("01", "id_02")):
        normal = np.flatnonzero((b.machine_id == mid) & (b.target == 0))
        for k, i in enumerate(normal[:8]):
            sf.write(train / f"section_{section}_source_train_normal_{k:04d}.wav", b.data[i], b.sr)
        if section == "01":
            for k, i in enumerate(normal[8:12]):
                sf.write(new / f"section_{section}_source_train_normal_{k + 8:04d}.wav", b.data[i], b.sr)
    model, out = tmp_path / "m.skasd", tmp_path / "m2.skasd"
    assert main(["train", "--data", str(train.parent.parent), "--model", "knn-spectrum", "--out", str(model),
                 "--quiet"]) == 0
    before = load_model(model, verbose=False)[-1].section_offsets_
    capsys.readouterr()
    assert main(["adapt", "--model", str(model), "--data", str(new), "--out", str(out)]) == 0
    after = load_model(out, verbose=False)[-1].section_offsets_
    assert after["section_00"] == before["section_00"] and after["section_01"] != before["section_01"]
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"; threshold of section_01 {-before['section_01']:.4g} -> {-after['section_01']:.4g}; model written" in line
    assert "section_00" not in line
