import re
import warnings

import pytest

from skasd.datasets import load_dcase
from skasd.datasets._dcase import COLUMNS


def make_tree(root, names):
    """Empty files at the given relative paths (only names are parsed)."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


def records(df):
    """Rows without the path, as tuples, for exact comparison."""
    return [tuple(r) for r in df.drop(columns="path").itertuples(index=False)]


DCASE2020 = [
    "fan/train/normal_id_00_00000000.wav",
    "fan/train/normal_id_02_00000007.wav",
    "fan/test/anomaly_id_02_00000001.wav",
    "fan/test/normal_id_00_00000003.wav",
    "ToyCar/test/id_01_00000000.wav",  # unlabelled evaluation clip
]
DCASE2021 = [
    "gearbox/train/section_00_source_train_normal_0000.wav",
    "gearbox/train/section_02_target_train_normal_0001.wav",
    "gearbox/source_test/section_00_source_test_anomaly_0000.wav",
    "gearbox/target_test/section_01_target_test_normal_0005.wav",
    "gearbox/test/section_03_0000.wav",  # unlabelled evaluation clip
]
DCASE2022_24 = [
    "ToyCar/train/section_00_source_train_normal_0000_car_C2_spd_34V_mic_1.wav",
    "ToyCar/test/section_00_target_test_anomaly_0012_car_A1_spd_28V_mic_1_noise_1.wav",
    "fan/train/section_01_source_train_normal_0003_m-n_X.WAV",
    "slider/test/section_00_source_test_normal_0001_vel_500_ac_0.30.flac",
    "3DPrinter/train/section_00_source_train_normal_0000_noAttributes.wav",
    "3DPrinter/test/section_00_0000.wav",  # unlabelled evaluation clip
]
MIMII = [
    "valve/id_00/normal/00000000.wav",
    "valve/id_06/abnormal/00000008.wav",
    "fan/id_unknown/normal/fan_original.flac",
]


def test_dcase2020_layout(tmp_path):
    df = load_dcase(make_tree(tmp_path, DCASE2020))
    assert list(df.columns) == COLUMNS
    assert df["path"].tolist() == sorted(str(tmp_path / n) for n in DCASE2020)
    assert records(df) == [
        ("ToyCar", "test", "id_01", None, None, {}),
        ("fan", "test", "id_02", None, "anomaly", {}),
        ("fan", "test", "id_00", None, "normal", {}),
        ("fan", "train", "id_00", None, "normal", {}),
        ("fan", "train", "id_02", None, "normal", {}),
    ]


def test_dcase2021_layout(tmp_path):
    df = load_dcase(make_tree(tmp_path, DCASE2021))
    assert records(df) == [
        ("gearbox", "test", "section_00", "source", "anomaly", {}),
        ("gearbox", "test", "section_01", "target", "normal", {}),
        ("gearbox", "test", "section_03", None, None, {}),
        ("gearbox", "train", "section_00", "source", "normal", {}),
        ("gearbox", "train", "section_02", "target", "normal", {}),
    ]


def test_dcase2022_2024_layout_and_attributes(tmp_path):
    df = load_dcase(make_tree(tmp_path, DCASE2022_24))
    assert records(df) == [
        ("3DPrinter", "test", "section_00", None, None, {}),
        ("3DPrinter", "train", "section_00", "source", "normal", {}),
        ("ToyCar", "test", "section_00", "target", "anomaly",
         {"car": "A1", "spd": "28V", "mic": "1", "noise": "1"}),
        ("ToyCar", "train", "section_00", "source", "normal", {"car": "C2", "spd": "34V", "mic": "1"}),
        ("fan", "train", "section_01", "source", "normal", {"m-n": "X"}),
        ("slider", "test", "section_00", "source", "normal", {"vel": "500", "ac": "0.30"}),
    ]


def test_mimii_layout(tmp_path):
    df = load_dcase(make_tree(tmp_path, MIMII))
    assert records(df) == [
        ("fan", None, "id_unknown", None, "normal", {}),
        ("valve", None, "id_00", None, "normal", {}),
        ("valve", None, "id_06", None, "anomaly", {}),
    ]


@pytest.mark.parametrize("names", [DCASE2020, DCASE2021, DCASE2022_24, MIMII])
def test_root_at_machine_level_gives_the_same_rows(tmp_path, names):
    make_tree(tmp_path, names)
    full = load_dcase(tmp_path)
    machine = names[0].split("/")[0]
    df = load_dcase(tmp_path / machine)
    assert df.equals(full[full["machine_type"] == machine].reset_index(drop=True))


def test_mimii_root_at_id_level(tmp_path):
    make_tree(tmp_path, MIMII)
    df = load_dcase(tmp_path / "valve" / "id_06")
    assert records(df) == [("valve", None, "id_06", None, "anomaly", {})]


def test_filters(tmp_path):
    make_tree(tmp_path, DCASE2020 + DCASE2021)
    assert set(load_dcase(tmp_path, machine_type="fan")["machine_type"]) == {"fan"}
    assert set(load_dcase(tmp_path, machine_type=["fan", "gearbox"])["machine_type"]) == {"fan", "gearbox"}
    test = load_dcase(tmp_path, split="test")
    assert len(test) == 6 and set(test["split"]) == {"test"}
    both = load_dcase(tmp_path, machine_type="gearbox", split="train")
    assert len(both) == 2 and set(both["section_or_id"]) == {"section_00", "section_02"}


def test_filter_matching_nothing_names_folder_and_what_was_found(tmp_path):
    make_tree(tmp_path, DCASE2020)
    with pytest.raises(ValueError, match=r"machine_type in \['pump'\].*found machine_type: \['ToyCar', 'fan'\]") as e:
        load_dcase(tmp_path, machine_type="pump")
    assert str(tmp_path) in str(e.value)
    make_tree(tmp_path, ["valve/id_00/normal/00000000.wav"])
    with pytest.raises(ValueError, match=r"found split: \['None'\]"):
        load_dcase(tmp_path / "valve", split="train")


def test_bad_arguments(tmp_path):
    make_tree(tmp_path, DCASE2020)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_dcase(tmp_path, split="eval")
    with pytest.raises(ValueError, match="on_unknown must be"):
        load_dcase(tmp_path, on_unknown="ignore")
    with pytest.raises(TypeError, match="machine_type must be a string"):
        load_dcase(tmp_path, machine_type=3)
    with pytest.raises(TypeError, match="split must be a string"):
        load_dcase(tmp_path, split=[])


def test_missing_root_and_file_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nowhere"))):
        load_dcase(tmp_path / "nowhere")
    make_tree(tmp_path, ["fan/train/normal_id_00_00000000.wav"])
    with pytest.raises(NotADirectoryError, match="normal_id_00_00000000.wav"):
        load_dcase(tmp_path / "fan/train/normal_id_00_00000000.wav")


def test_folder_without_audio_says_what_it_found(tmp_path):
    with pytest.raises(ValueError, match=r"no \.wav/\.flac audio files under .*found nothing"):
        load_dcase(tmp_path)
    make_tree(tmp_path, ["fan/README.md", "fan/train/notes.txt"])
    with pytest.raises(ValueError, match=r"found 2 other files: fan/README.md, fan/train/notes.txt"):
        load_dcase(tmp_path)


UNKNOWN = [
    "fan/train/clip_0001.wav",
    "fan/train/section_00_source_train_normal_0000_car_C2_spd.wav",  # unpaired attribute
    "fan/train/section_00_source_train_normal_0001_mic_1_mic_2.wav",  # repeated attribute key
] + [f"fan/test/recording{i}.flac" for i in range(5)]


def test_unknown_names_warn_once_with_first_few_and_count(tmp_path):
    make_tree(tmp_path, DCASE2020 + UNKNOWN)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_dcase(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"8 of 13 audio files under {tmp_path}")
    assert "fan/test/recording0.flac" in message and "and 3 more" in message
    assert len(df) == len(DCASE2020)


def test_unknown_names_raise(tmp_path):
    make_tree(tmp_path, DCASE2020 + UNKNOWN[:2])
    with pytest.raises(ValueError, match=r"2 of 7 .*clip_0001\.wav, .*_car_C2_spd\.wav$"):
        load_dcase(tmp_path, on_unknown="raise")


def test_only_unknown_names_is_an_error_even_when_warning(tmp_path):
    make_tree(tmp_path, UNKNOWN)
    with pytest.raises(ValueError, match="8 of 8 audio files"):
        load_dcase(tmp_path)


def test_shared_slider_dcase2020(shared_data):
    root = shared_data / "zyy438-abnormal-listener"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SOURCE.md is not audio: no warning
        df = load_dcase(root)
    assert len(df) == 76
    assert (df["label"] == "anomaly").sum() == 1
    assert set(df["section_or_id"]) == {"id_00"} and set(df["machine_type"]) == {"slider"}
    assert df["split"].value_counts().to_dict() == {"train": 75, "test": 1}
    assert df.loc[df["label"] == "anomaly", "split"].item() == "test"
    assert df["domain"].isna().all()
    assert load_dcase(root / "slider").equals(df)


def test_shared_dcase2023_samples(shared_data):
    df = load_dcase(shared_data / "minchala-dcase2023-samples")
    assert len(df) == 28 and df["path"].str.endswith(".flac").all()
    assert set(df["machine_type"]) == {"ToyCar", "ToyTrain", "bearing", "fan", "gearbox", "slider", "valve"}
    assert set(df["section_or_id"]) == {"section_00"}
    assert df["split"].value_counts().to_dict() == {"train": 14, "test": 14}
    assert (df["label"] == "anomaly").sum() == 5 and df["label"].notna().all()
    assert set(df.loc[df["split"] == "train", "domain"]) == {"source"}
    assert set(df["domain"]) == {"source", "target"}
    by_type = df.groupby("machine_type")["attributes"].first().map(sorted).to_dict()
    assert by_type == {
        "ToyCar": ["car", "mic", "spd"], "ToyTrain": ["car", "mic", "spd"], "bearing": ["loc", "vel"],
        "fan": ["m-n"], "gearbox": ["volt", "wt"], "slider": ["ac", "vel"], "valve": ["pat"],
    }
    anomaly = df[(df["machine_type"] == "valve") & (df["label"] == "anomaly")].iloc[0]
    assert (anomaly["split"], anomaly["domain"], anomaly["attributes"]) == ("test", "target", {"pat": "03"})


def test_shared_mimii_folders(shared_data):
    fan = load_dcase(shared_data / "mimii-fan-id00")
    assert fan["label"].value_counts().to_dict() == {"anomaly": 20, "normal": 20}
    assert set(fan["machine_type"]) == {"fan"} and set(fan["section_or_id"]) == {"id_00"}
    assert fan["split"].isna().all()
    assert load_dcase(shared_data / "mimii-fan-id00" / "fan" / "id_00").equals(fan)
    raw = load_dcase(shared_data / "mimii-raw-samples", on_unknown="raise")
    assert len(raw) == 17
    assert raw["machine_type"].value_counts().to_dict() == {"valve": 7, "fan": 4, "pump": 3, "slider": 3}
    assert set(raw["section_or_id"]) == {"id_00", "id_06", "id_unknown"}
    assert (raw["label"] == "anomaly").sum() == 5
