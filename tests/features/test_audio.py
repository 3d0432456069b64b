"""Audio I/O: load_audio and the batch helper every transformer uses."""

import os
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from skasd import AudioError, load_audio
from skasd.features._audio import _check_clips, _load_batch

SR = 16000


def _tone(freq=440.0, seconds=1.0, sr=SR, amp=0.5):
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def wav(tmp_path):
    """Write a clip and return its path: ``wav(y, sr=16000, name="a.wav", subtype=None)``."""

    def write(y, sr=SR, name="a.wav", subtype=None):
        path = tmp_path / name
        sf.write(path, y, sr, subtype=subtype)
        return path

    return write


# --- load_audio -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.wav", "a.flac"])
def test_load_audio_matches_soundfile(wav, name):
    path = wav(_tone(), name=name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same rate: no resampling warning
        y = load_audio(path)
    ref, _ = sf.read(path, dtype="float32")
    assert y.dtype == np.float32 and y.shape == (SR,)
    np.testing.assert_array_equal(y, ref)
    assert np.abs(y).max() <= 1.0
    np.testing.assert_array_equal(load_audio(str(path)), y)  # str and PathLike alike


def test_resampling_warns_once_and_keeps_the_tone(wav):
    path = wav(_tone(440.0, sr=8000), sr=8000)
    with pytest.warns(UserWarning, match="8000 Hz to 16000 Hz") as record:
        y = load_audio(path, sr=SR)
    assert len(record) == 1 and str(path) in str(record[0].message)
    assert y.shape == (SR,) and y.dtype == np.float32
    # The resampled tone is the 16 kHz tone (edges aside).
    np.testing.assert_allclose(y[200:-200], _tone(440.0)[200:-200], atol=2e-3)


@pytest.mark.parametrize("duration, n", [(0.5, 8000), (1.5, 24000), (1.00004, 16001)])
def test_duration_crops_or_zero_pads(wav, duration, n):
    path = wav(_tone())
    y = load_audio(path, duration=duration)
    assert y.shape == (n,)
    k = min(n, SR)
    np.testing.assert_array_equal(y[:k], load_audio(path)[:k])
    assert not y[k:].any()


def test_multichannel_is_mixed_to_mono(wav):
    left, right = _tone(440.0), _tone(1000.0, amp=0.25)
    path = wav(np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), (left + right) / 2, atol=1e-7)
    both = load_audio(path, mono=False)
    assert both.shape == (2, SR)
    np.testing.assert_array_equal(both[1], right)
    assert load_audio(wav(left, name="mono.wav"), mono=False).shape == (1, SR)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope" / "clip.wav"
    with pytest.raises(FileNotFoundError, match="clip.wav") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(IsADirectoryError, match="not an audio file") as info:
        load_audio(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_non_audio_bytes(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is a text file, not a RIFF header " * 50)
    with pytest.raises(AudioError, match="cannot decode as audio") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(AudioError, match=r"empty file \(0 bytes\)") as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_zero_length_audio(wav):
    path = wav(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="zero-length") as info:
        load_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["cut.wav", "cut.flac"])
def test_truncated_file(wav, name):
    path = wav(np.random.default_rng(0).uniform(-0.5, 0.5, SR), name=name)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    match = "truncated" if name.endswith(".wav") else "corrupt/truncated"
    with pytest.raises(AudioError, match=match) as info:
        load_audio(path)
    assert str(path) in str(info.value)


def test_nan_in_float_file(wav):
    y = _tone()
    y[100] = np.nan
    path = wav(y, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN") as info:
        load_audio(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kwargs, match", [({"sr": 0}, "sr must be"), ({"duration": -1}, "duration must be")])
def test_bad_arguments(wav, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_audio(wav(_tone()), **kwargs)


# --- the batch helper -------------------------------------------------------------------


def test_paths_list_series_and_array_agree(wav):
    rng = np.random.default_rng(1)
    clips = rng.uniform(-0.5, 0.5, size=(3, 4000)).astype(np.float32)
    paths = [wav(c, name=f"c{i}.wav", subtype="FLOAT") for i, c in enumerate(clips)]
    expected = _load_batch(clips)
    assert expected.dtype == np.float32 and expected.shape == (3, 4000)
    names = list(map(str, paths))
    for X in (paths, tuple(names), pd.Series(names), np.array(names, dtype=object), list(clips)):
        np.testing.assert_array_equal(_load_batch(X), expected)
    np.testing.assert_array_equal(_load_batch(paths, n_jobs=2), expected)


def test_progress_bar_only_when_verbose(wav, capsys):
    paths = [wav(_tone(seconds=0.1), name=f"c{i}.wav") for i in range(8)]
    _load_batch(paths, verbose=True)
    assert "decoding" in capsys.readouterr().err
    _load_batch(paths)
    _load_batch(paths[:3], verbose=True)  # a few files: no bar
    assert "decoding" not in capsys.readouterr().err


def test_single_path_is_a_type_error(wav):
    path = wav(_tone())
    with pytest.raises(TypeError, match=r"pass a list of paths, e.g. \[path\]"):
        _load_batch(str(path))
    with pytest.raises(TypeError, match="pass a list of paths"):
        _load_batch(path)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.zeros((2, 3, 4)), ValueError, "got 3-D input .* looks like features already"),
        (np.zeros(100), ValueError, "Reshape your data"),
        ([], ValueError, "X is empty"),
        (np.zeros((0, 10)), ValueError, "got no clips"),
        (np.zeros((2, 0)), AudioError, "zero-length"),
        ([np.zeros(10), np.zeros((2, 5))], ValueError, "clip 1 has shape"),
        (["a.wav", np.zeros(10)], TypeError, "mixes paths and waveforms"),
        ({"a": 1}, TypeError, "cannot read clips from a dict"),
        (np.ones((2, 4), dtype=complex), ValueError, "Complex data not supported"),
    ],
)
def test_bad_batches(X, error, match):
    with pytest.raises(error, match=match):
        _load_batch(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_waveforms_name_the_clip(bad):
    W = np.zeros((4, 100), np.float32)
    W[2, 7] = bad
    for X in (W, list(W)):
        with pytest.raises(AudioError, match="^clip 2: NaN or infinite"):
            _load_batch(X)
    with pytest.raises(AudioError, match="^clip 2: NaN or infinite"):
        _check_clips(W)  # what fit runs


def test_length_mismatch_names_the_files_and_suggests_duration(wav):
    paths = [wav(_tone(seconds=1.0), name=f"ok{i}.wav") for i in range(3)]
    short = wav(_tone(seconds=0.5), name="short.wav")
    with pytest.raises(AudioError, match="duration=") as info:
        _load_batch([*paths, short])
    msg = str(info.value)
    assert str(short) in msg and "8000 samples" in msg and "16000 samples" in msg
    assert str(paths[0]) not in msg
    W = _load_batch([*paths, short], duration=1.0)
    assert W.shape == (4, SR) and not W[3, 8000:].any()
    with pytest.raises(AudioError, match=r"clip 1 \(5 samples\)"):
        _load_batch([np.ones(10), np.ones(5), np.ones(10)])


def test_duration_applies_to_arrays():
    W = np.ones((2, 100), np.float32)
    assert _load_batch(W, sr=100, duration=0.5).shape == (2, 50)
    assert _load_batch(W, sr=100, duration=2).shape == (2, 200)


def test_silent_clips_warn_once_naming_them(wav):
    paths = [wav(_tone(), name="loud.wav"), wav(np.zeros(SR, np.float32), name="dead.wav")]
    with pytest.warns(UserWarning, match="1 of 2 clip") as record:
        W = _load_batch(paths)
    assert len(record) == 1 and str(paths[1]) in str(record[0].message)
    assert str(paths[0]) not in str(record[0].message)
    assert not W[1].any()


def test_batch_resampling_warns_once_for_all_files(wav):
    paths = [wav(_tone(sr=8000), sr=8000, name=f"c{i}.wav") for i in range(3)]
    with pytest.warns(UserWarning, match="3 file") as record:
        W = _load_batch(paths)
    assert len(record) == 1 and "8000 Hz to 16000 Hz" in str(record[0].message)
    assert W.shape == (3, SR)


def test_missing_file_in_a_batch(wav, tmp_path):
    missing = os.path.join(tmp_path, "gone.wav")
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        _load_batch([wav(_tone()), missing], n_jobs=2)
