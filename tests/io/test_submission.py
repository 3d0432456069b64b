import os

import numpy as np
import pandas as pd
import pytest

from skasd import write_submission
from skasd.utils._atomic import atomic_path, write_text_atomic
from skasd.io import submission_file_names


def _clips(names, machine_type, groups):
    return pd.DataFrame({"path": [f"/data/{machine_type}/test/{n}" for n in names],
                         "machine_type": machine_type, "section_or_id": groups})


def test_dcase2020_file_bytes(tmp_path):
    clips = _clips(["id_00_00000000.wav", "id_00_00000001.wav", "id_02_00000000.wav"],
                   "slider", ["id_00", "id_00", "id_02"])
    written = write_submission(clips, [0.5, 12.25, -1.0], tmp_path)
    assert [p.name for p in written] == ["anomaly_score_slider_id_00.csv", "anomaly_score_slider_id_02.csv"]
    assert (tmp_path / "anomaly_score_slider_id_00.csv").read_bytes() == (
        b"id_00_00000000.wav,0.5\nid_00_00000001.wav,12.25\n")
    assert (tmp_path / "anomaly_score_slider_id_02.csv").read_bytes() == b"id_02_00000000.wav,-1.0\n"


def test_dcase2021_score_and_decision_bytes(tmp_path):
    clips = _clips(["section_00_0000.wav", "section_00_0001.wav"], "fan", ["section_00"] * 2)
    write_submission(clips, [3.0, 1.5], tmp_path, decision=[-1, 1])
    assert (tmp_path / "anomaly_score_fan_section_00_test.csv").read_bytes() == (
        b"section_00_0000.wav,3.0\nsection_00_0001.wav,1.5\n")
    assert (tmp_path / "decision_result_fan_section_00_test.csv").read_bytes() == (
        b"section_00_0000.wav,1\nsection_00_0001.wav,0\n")


def test_scores_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    score = rng.normal(size=50) * 1e3
    clips = _clips([f"id_04_{i:08d}.wav" for i in range(50)], "pump", ["id_04"] * 50)
    write_submission(clips, score, tmp_path)
    back = pd.read_csv(tmp_path / "anomaly_score_pump_id_04.csv", header=None)
    assert list(back[0]) == [f"id_04_{i:08d}.wav" for i in range(50)]
    np.testing.assert_array_equal(back[1].to_numpy(), score)


def test_refuses_non_finite_and_length_mismatch(tmp_path):
    clips = _clips(["a.wav", "b.wav"], "fan", ["id_00"] * 2)
    with pytest.raises(ValueError, match="NaN or infinite.*b.wav"):
        write_submission(clips, [1.0, np.nan], tmp_path)
    with pytest.raises(ValueError, match="one score per clip: 2 clips, got 1 scores"):
        write_submission(clips, [1.0], tmp_path)
    assert not list(tmp_path.iterdir())


def test_file_names():
    assert submission_file_names("ToyCar", "section_02") == (
        "anomaly_score_ToyCar_section_02_test.csv", "decision_result_ToyCar_section_02_test.csv")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "model.bin"
    write_text_atomic(target, "good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "good"
    assert os.listdir(tmp_path) == ["model.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_users_normal_permissions(tmp_path, umask):
    # a report or submission meant for others must not keep the temporary file's 0o600
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "result.csv", "x")
        clips = _clips(["section_00_0000.wav"], "fan", ["section_00"])
        written = write_submission(clips, [1.0], tmp_path / "sub", decision=[1])
        open(tmp_path / "plain.csv", "w").close()
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.csv").stat().st_mode & 0o777 == expected
    for path in [tmp_path / "result.csv", *written]:
        assert path.stat().st_mode & 0o777 == expected, path
