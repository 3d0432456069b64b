"""Index DCASE Task 2 (2020-2024) and MIMII folders as a table of clips, parsing only file names."""

import re
import warnings
from pathlib import Path

import pandas as pd

from ..utils._validation import listing

__all__ = ["load_dcase"]

AUDIO_EXTENSIONS = (".wav", ".flac")
COLUMNS = ["path", "machine_type", "split", "section_or_id", "domain", "label", "attributes"]

# DCASE 2020 (dev and eval): normal_id_00_00000000, anomaly_id_02_00000001, unlabelled id_01_00000000.
_DCASE2020 = re.compile(r"(?:(?P<label>normal|anomaly)_)?(?P<group>id_\d+)_\d+")
# DCASE 2021-2024: section_00_source_train_normal_0000[_<key>_<value>...|_noAttributes],
# unlabelled evaluation clips section_03_0000[...].
_DCASE2021 = re.compile(
    r"(?P<group>section_\d+)(?:_(?P<domain>source|target))?(?:_(?P<split>train|test))?"
    r"(?:_(?P<label>normal|anomaly))?_\d+(?:_(?P<attributes>.+))?"
)
# MIMII raw: <type>/id_00/<normal|abnormal>/00000000.wav (the file name itself carries nothing).
_MIMII_ID = re.compile(r"id_\w+")
_MIMII_LABELS = {"normal": "normal", "abnormal": "anomaly"}


def _parse_attributes(text):
    """``car_C2_spd_34V_mic_1`` -> ``{"car": "C2", ...}``; ``noAttributes`` -> ``{}``; None if unpaired."""
    if text is None or text == "noAttributes":
        return {}
    tokens = text.split("_")
    keys, values = tokens[::2], tokens[1::2]
    if len(tokens) % 2 or len(set(keys)) != len(keys) or not all(tokens):
        return None
    return dict(zip(keys, values))


def _split_of_folder(name):
    """``train``/``test`` from a split folder name (``train``, ``source_test``, ...), else None."""
    for split in ("train", "test"):
        if name == split or name.endswith("_" + split):
            return split
    return None


def _parse(path):
    """One clip's row (a dict) from its name and folders, or None when the name is not understood."""
    stem, parent = path.stem, path.parent
    if parent.name in _MIMII_LABELS and _MIMII_ID.fullmatch(parent.parent.name):
        return dict(
            machine_type=parent.parent.parent.name, split=None, section_or_id=parent.parent.name,
            domain=None, label=_MIMII_LABELS[parent.name], attributes={},
        )
    row = dict(machine_type=parent.parent.name, split=_split_of_folder(parent.name), domain=None)
    if match := _DCASE2020.fullmatch(stem):
        return dict(row, section_or_id=match["group"], label=match["label"], attributes={})
    if match := _DCASE2021.fullmatch(stem):
        attributes = _parse_attributes(match["attributes"])
        if attributes is None:
            return None
        domain = match["domain"] or next(
            (d for d in ("source", "target") if parent.name.startswith(d + "_")), None
        )
        return dict(
            row, split=match["split"] or row["split"], section_or_id=match["group"],
            domain=domain, label=match["label"], attributes=attributes,
        )
    return None


def _as_filter(value, name):
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else value
    if not (isinstance(values, (list, tuple, set)) and values and all(isinstance(v, str) for v in values)):
        raise TypeError(f"{name} must be a string or a list of strings, got {value!r}")
    return values


def load_dcase(root, machine_type=None, split=None, on_unknown="warn"):
    """Index the audio clips of a DCASE Task 2 or MIMII folder, one row per clip.

    Only names are read (no audio is decoded), so indexing a full dataset is fast. These layouts
    are understood as they are downloaded, without renaming:

    - DCASE 2020: ``<type>/{train,test}/normal_id_00_00000000.wav``, ``anomaly_id_02_...``,
      unlabelled evaluation clips ``id_01_00000000.wav``.
    - DCASE 2021: ``<type>/{train,source_test,target_test,test}/section_00_source_train_normal_0000.wav``,
      unlabelled evaluation clips ``section_03_0000.wav``.
    - DCASE 2022-2024: the 2021 names followed by attributes,
      ``section_00_target_test_anomaly_0012_car_C2_spd_34V_mic_1.wav`` or ``..._noAttributes.wav``.
    - MIMII: ``<type>/id_00/{normal,abnormal}/00000000.wav`` (no split; ``abnormal`` becomes
      ``"anomaly"``).

    Parameters
    ----------
    root : str or path-like
        The dataset folder (one folder per machine type), one machine-type folder or, for MIMII,
        also one ID folder. The machine type is the name of the folder that holds the split
        folders (DCASE) or the ID folders (MIMII).
    machine_type : str or list of str, default=None
        Keep only these machine types.
    split : {"train", "test"} or list of them, default=None
        Keep only these splits (MIMII clips have none).
    on_unknown : {"warn", "raise"}, default="warn"
        What to do with audio files whose names follow none of the layouts: one warning that lists
        them (their rows are left out) or one ``ValueError`` that lists them.

    Returns
    -------
    clips : pandas.DataFrame
        Sorted by path, with the columns ``path`` (str), ``machine_type`` (str), ``split``
        (``"train"``/``"test"``, None for MIMII), ``section_or_id`` (``"id_00"`` for 2020 and
        MIMII, ``"section_00"`` for 2021-2024), ``domain`` (``"source"``/``"target"``, None before
        2021 and for unlabelled clips), ``label`` (``"normal"``/``"anomaly"``, None for unlabelled
        evaluation clips) and ``attributes`` (dict of the key/value pairs in the name, ``{}`` when
        there are none).

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    NotADirectoryError
        If ``root`` is not a folder.
    ValueError
        If ``root`` holds no understood clip, a filter matches nothing, or
        ``on_unknown="raise"`` and some names are not understood.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skasd.datasets import load_dcase
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["train/section_00_source_train_normal_0000_car_C2_spd_34V_mic_1.wav",
    ...              "test/section_00_target_test_anomaly_0000_car_A1_spd_28V_mic_1.wav"]:
    ...     (root / "ToyCar" / name).parent.mkdir(parents=True, exist_ok=True)
    ...     (root / "ToyCar" / name).touch()
    >>> df = load_dcase(root)
    >>> print(df[["machine_type", "split", "section_or_id", "domain", "label"]])
      machine_type  split section_or_id  domain    label
    0       ToyCar   test    section_00  target  anomaly
    1       ToyCar  train    section_00  source   normal
    >>> df["attributes"].iloc[1]
    {'car': 'C2', 'spd': '34V', 'mic': '1'}
    """
    if on_unknown not in ("warn", "raise"):
        raise ValueError(f"on_unknown must be 'warn' or 'raise', got {on_unknown!r}")
    machine_types, splits = _as_filter(machine_type, "machine_type"), _as_filter(split, "split")
    if splits is not None and not set(splits) <= {"train", "test"}:
        raise ValueError(f"split must be 'train' or 'test' (or a list of them), got {split!r}")
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise FileNotFoundError(f"DCASE/MIMII folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"expected a DCASE/MIMII folder, got a file: {root}")

    files = sorted((p for p in root.rglob("*") if p.is_file()), key=str)
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not audio:
        others = [p.relative_to(root) for p in files]
        found = f"{len(files)} other files: {listing(others)}" if files else "nothing"
        raise ValueError(f"no .wav/.flac audio files under {root} (found {found})")

    rows, unknown = [], []
    for path in audio:
        row = _parse(path)
        if row is None:
            unknown.append(path.relative_to(root))
        else:
            rows.append(dict(row, path=str(path)))
    if unknown:
        message = (
            f"{len(unknown)} of {len(audio)} audio files under {root} follow no DCASE 2020-2024 or "
            f"MIMII naming: {listing(unknown)}"
        )
        if on_unknown == "raise" or not rows:
            raise ValueError(message)
        warnings.warn(message + "; they are left out", UserWarning, stacklevel=2)

    # object dtype keeps None (not NaN) in split/domain/label
    df = pd.DataFrame(rows, columns=COLUMNS, dtype=object)
    df = df.astype({"path": str, "machine_type": str, "section_or_id": str})
    for name, values in (("machine_type", machine_types), ("split", splits)):
        if values is not None:
            keep = df[name].isin(list(values))
            if not keep.any():
                found = sorted({str(v) for v in df[name]})
                raise ValueError(
                    f"no clips with {name} in {list(values)} under {root}; found {name}: {found}"
                )
            df = df[keep]
    return df.reset_index(drop=True)
