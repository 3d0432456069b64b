"""ClipStatsTransformer: every column against numpy/librosa computed clip by clip, paths vs
waveforms, feature names / pandas output, sklearn checks and input errors."""

import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
from numpy.testing import assert_allclose
from sklearn import config_context
from sklearn.utils.estimator_checks import parametrize_with_checks

from skasd import AudioError
from skasd import ClipStatsTransformer

SR = 16000


def _clips(n=3, seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    return np.stack([
        (0.2 + 0.1 * i) * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.02 * rng.normal(size=t.size)
        for i in range(n)
    ]).astype(np.float32)


def _reference(w, n_mfcc=20):
    """Each column computed the plain way on one clip."""
    w = w.astype(np.float64)  # the transformer computes in float64
    peak, rms = np.max(np.abs(w)), np.sqrt(np.mean(w**2))
    centroid = librosa.feature.spectral_centroid(y=w, sr=SR, n_fft=1024, hop_length=512).mean()
    flatness = librosa.feature.spectral_flatness(y=w, n_fft=1024, hop_length=512).mean()
    mfcc = librosa.feature.mfcc(y=w, sr=SR, n_mfcc=n_mfcc, n_fft=1024, hop_length=512, n_mels=128)
    return np.r_[peak, rms, peak / rms, centroid, flatness, mfcc.mean(axis=1), mfcc.std(axis=1)]


def test_columns_match_numpy_and_librosa():
    W = _clips()
    stats = ClipStatsTransformer().fit_transform(W)
    assert stats.shape == (3, 45) and stats.dtype == np.float64
    expected = np.stack([_reference(w) for w in W])
    assert_allclose(stats[:, :3], expected[:, :3], rtol=1e-12)  # level: exact
    assert_allclose(stats[:, 3:], expected[:, 3:], rtol=1e-9, atol=1e-9)
    # a pure sine's crest factor is sqrt(2); its centroid sits near its frequency
    t = np.arange(SR) / SR
    sine = ClipStatsTransformer(n_mfcc=0).transform(0.5 * np.sin(2 * np.pi * 1000 * t)[None])
    assert sine[0, 2] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert sine[0, 3] == pytest.approx(1000, rel=0.05)


def test_paths_give_the_waveform_result(tmp_path):
    W = _clips(n=2)
    paths = []
    for i, w in enumerate(W):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], w, SR, subtype="FLOAT")
    t = ClipStatsTransformer(n_mfcc=4)
    assert_allclose(t.transform(paths), t.transform(W), rtol=1e-6)
    assert_allclose(t.transform(list(W)), t.transform(W))  # list of 1-D waveforms


def test_feature_names_and_pandas_output():
    t = ClipStatsTransformer(n_mfcc=2)
    names = t.get_feature_names_out().tolist()
    assert names == ["peak", "rms", "crest_factor", "spectral_centroid", "spectral_flatness",
                     "mfcc_mean0", "mfcc_mean1", "mfcc_std0", "mfcc_std1"]
    W = _clips(n=2)
    with config_context(transform_output="pandas"):
        df = t.fit_transform(W)
    assert list(df.columns) == names
    assert_allclose(df.to_numpy(), t.transform(W))


def test_silent_clip_has_crest_zero_and_warns():
    W = _clips(n=2)
    W[1] = 0
    with pytest.warns(UserWarning, match="silent"):
        stats = ClipStatsTransformer(n_mfcc=0).transform(W)
    assert np.all(np.isfinite(stats)) and stats[1, :3].tolist() == [0, 0, 0]


def test_errors(tmp_path):
    W = _clips(n=2)
    with pytest.raises(ValueError, match="'n_mfcc' parameter of ClipStatsTransformer must be an int in the range \\[0, inf\\)"):
        ClipStatsTransformer(n_mfcc=-1).fit(W)
    with pytest.raises(ValueError, match="'hop_length' parameter of ClipStatsTransformer must be an int in the range \\[1, inf\\)"):
        ClipStatsTransformer(hop_length=0).transform(W)
    bad = W.copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ClipStatsTransformer().transform(bad)
    with pytest.raises(FileNotFoundError, match="No such audio file"):
        ClipStatsTransformer().transform([tmp_path / "missing.wav"])
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioError):
        ClipStatsTransformer().transform([tmp_path / "notes.wav"])
    with pytest.raises(ValueError, match="empty"):
        ClipStatsTransformer().transform([])


_EXPECTED_FAILURES = {
    "check_n_features_in": "stateless on clips of any length: no n_features_in_",
    "check_n_features_in_after_fitting": "stateless on clips of any length: no n_features_in_",
}


@parametrize_with_checks([ClipStatsTransformer(n_mfcc=3)], expected_failed_checks=lambda est: _EXPECTED_FAILURES)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data: "n_fft too large", silent clips
        check(estimator)
