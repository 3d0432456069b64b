"""SpectrumTransformer: rows against scipy's Welch computed clip by clip, the level normalisation,
paths vs waveforms, chunked decoding, feature names, sklearn checks and input errors."""

import warnings

import numpy as np
import pytest
import soundfile as sf
from numpy.testing import assert_allclose
from scipy.signal import welch
from sklearn import config_context
from sklearn.utils.estimator_checks import parametrize_with_checks

import skasd.features._spectrum as spectrum_module
from skasd import AudioError, SpectrumTransformer

from .test_clip_stats import _clips

SR = 16000


def _reference(w, n_fft, hop):
    """One clip the plain way: scipy's Welch PSD in dB (each frame's mean removed, scipy's default)."""
    _, p = welch(w.astype(np.float64), fs=SR, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    return 10 * np.log10(p)


@pytest.mark.parametrize("n_fft, hop_length", [(1024, None), (512, 128)])
def test_rows_are_welch_spectra_in_db(n_fft, hop_length):
    W = _clips()
    absolute = SpectrumTransformer(n_fft=n_fft, hop_length=hop_length, level=None).fit_transform(W)
    hop = n_fft // 2 if hop_length is None else hop_length
    ref = np.stack([_reference(w, n_fft, hop) for w in W])
    assert absolute.shape == (3, n_fft // 2 + 1) and absolute.dtype == np.float32
    assert_allclose(absolute, ref, atol=1e-3)
    # level="clip" (the default) only removes each row's mean
    shaped = SpectrumTransformer(n_fft=n_fft, hop_length=hop_length).fit_transform(W)
    assert_allclose(shaped, ref - ref.mean(axis=1, keepdims=True), atol=1e-3)
    assert_allclose(shaped.mean(axis=1), 0, atol=1e-4)


def test_level_normalisation_ignores_gain_but_not_shape():
    W = _clips(2)
    quiet = W * 0.05  # -26 dB
    t = SpectrumTransformer(n_fft=512)
    assert_allclose(t.transform(quiet), t.transform(W), atol=1e-3)
    absolute = SpectrumTransformer(n_fft=512, level=None)
    assert_allclose(absolute.transform(quiet) - absolute.transform(W), 20 * np.log10(0.05), atol=1e-3)
    # a 1 kHz tone peaks in the bin of 1 kHz
    tone = np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)[None]
    assert np.argmax(t.transform(tone)[0]) * SR / 512 == 1000


def test_paths_and_waveforms_agree_and_chunks_do_not_change_rows(tmp_path, monkeypatch):
    W = _clips(5)
    paths = []
    for i, w in enumerate(W):
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], w, SR, subtype="FLOAT")
    t = SpectrumTransformer(n_fft=256)
    whole = t.transform(W)
    assert_allclose(t.transform(paths), whole, atol=1e-4)
    monkeypatch.setattr(spectrum_module, "_CHUNK", 2)  # 5 clips decoded 2 at a time
    assert_allclose(t.transform(paths), whole, atol=1e-4)
    assert_allclose(t.transform(list(W)), whole, atol=1e-4)


def test_short_clip_is_one_frame_and_unequal_lengths_need_duration(monkeypatch):
    short = _clips(2, seconds=0.01)  # 160 samples < n_fft
    with pytest.warns(UserWarning, match="clips of 160 samples are shorter than n_fft=1024: each is one zero-padded"):
        out = SpectrumTransformer(n_fft=1024).transform(short)
    assert out.shape == (2, 513) and np.isfinite(out).all()
    mixed = [np.ones(1000, np.float32), np.ones(2000, np.float32)]
    with pytest.raises(AudioError, match="duration="):
        SpectrumTransformer(n_fft=256).transform(mixed)
    # the same across chunks: the first chunk's length holds for the whole call
    monkeypatch.setattr(spectrum_module, "_CHUNK", 2)
    with pytest.raises(AudioError, match="clips 0-1 have 1000 samples but clips from 2 on 2000; pass duration="):
        SpectrumTransformer(n_fft=256).transform(mixed[:1] * 2 + mixed[1:] * 2)
    out = SpectrumTransformer(n_fft=256, duration=0.1).transform(mixed)
    assert out.shape == (2, 129)


def test_a_dc_offset_does_not_change_the_spectrum():
    """Each Welch frame's mean is removed (scipy's default detrend): a DC offset, which differs
    between recording devices, leaves the bins above the first one alone."""
    W = _clips(2, seconds=1.0)
    t = SpectrumTransformer(n_fft=512, level=None)
    np.testing.assert_allclose(t.transform(W + 0.3)[:, 2:], t.transform(W)[:, 2:], atol=0.05)


def test_feature_names_and_pandas_output():
    t = SpectrumTransformer(n_fft=8)
    assert t.get_feature_names_out().tolist() == [f"spectrum_{f:g}Hz" for f in (0, 2000, 4000, 6000, 8000)]
    with config_context(transform_output="pandas"):
        df = SpectrumTransformer(n_fft=8).fit_transform(_clips(2))
    assert list(df.columns) == t.get_feature_names_out().tolist() and df.shape == (2, 5)


def test_bad_parameters_and_input_raise_naming_them(tmp_path):
    W = _clips(2)
    with pytest.raises(ValueError, match="hop_length=600 is larger than n_fft=512"):
        SpectrumTransformer(n_fft=512, hop_length=600).fit(W)
    with pytest.raises(ValueError, match="'level' parameter of SpectrumTransformer must be a str among"):
        SpectrumTransformer(level="peak").transform(W)
    with pytest.raises(ValueError, match="'n_fft' parameter of SpectrumTransformer must be an int in the range"):
        SpectrumTransformer(n_fft=1).transform(W)
    with pytest.raises(ValueError, match="NaN"):
        SpectrumTransformer().transform(np.full((1, 4096), np.nan, np.float32))
    with pytest.raises(ValueError, match="empty"):
        SpectrumTransformer().transform([])
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioError):
        SpectrumTransformer().transform([tmp_path / "notes.wav"])


_EXPECTED_FAILURES = {
    "check_n_features_in": "stateless on clips of any length: no n_features_in_",
    "check_n_features_in_after_fitting": "stateless on clips of any length: no n_features_in_",
}


@parametrize_with_checks([SpectrumTransformer(n_fft=16)], expected_failed_checks=lambda est: _EXPECTED_FAILURES)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data: silent clips
        check(estimator)
