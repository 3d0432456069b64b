"""Log-mel / MFCC transformers: numbers against librosa for both backends, sklearn behaviour."""

import sys
import warnings

import librosa
import numpy as np
import pytest
import soundfile as sf
from sklearn import clone, config_context
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from skasd import AudioError, LogMelTransformer, MFCCTransformer

SR = 16000
EPS = sys.float_info.epsilon
BACKENDS = ["librosa", "torch"]
TOL_DB = 1e-3  # documented agreement goal between the backends and librosa


def _reference(W, sr=SR, n_fft=1024, hop_length=512, n_mels=128, power=2.0, fmin=0.0, fmax=None, center=True,
               pad_mode="constant"):
    """The DCASE formula on librosa's mel spectrogram, clip by clip."""
    mel = np.stack([
        librosa.feature.melspectrogram(y=w, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                       power=power, fmin=fmin, fmax=fmax, center=center, pad_mode=pad_mode)
        for w in W
    ])
    return 20.0 / power * np.log10(mel + EPS)


def _machine_like(n_clips=3, seconds=1.0, seed=0):
    """Noise + harmonics + clicks: a realistic (not extreme) dynamic range."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    W = []
    for _ in range(n_clips):
        f0 = rng.uniform(50, 300)
        y = sum(rng.uniform(0.05, 0.2) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6))
                for k in range(1, 8))
        y = y + 0.02 * rng.standard_normal(t.size)
        y[rng.integers(0, t.size, 5)] += 0.5
        W.append(np.clip(y, -1, 1))
    return np.asarray(W, dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_fft": 512, "hop_length": 160, "n_mels": 64},
        {"fmin": 50.0, "fmax": 6000.0, "n_mels": 40},
        {"power": 1.0},
        {"center": False},
        {"pad_mode": "reflect"},
    ],
)
def test_log_mel_matches_librosa(backend, params):
    W = _machine_like()
    got = LogMelTransformer(backend=backend, **params).fit_transform(W)
    ref = _reference(W, **params)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL_DB


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_clips_match_librosa_and_have_dcase_shape(backend, slider_dir):
    paths = sorted((slider_dir / "slider" / "train").glob("*.flac"))[:3]
    got = LogMelTransformer(backend=backend).fit_transform(paths)
    assert got.shape == (3, 128, 313)
    W = np.stack([sf.read(p, dtype="float32")[0] for p in paths])
    assert np.abs(got - _reference(W)).max() <= TOL_DB


def test_backends_agree_on_real_clips(slider_dir):
    paths = sorted(slider_dir.glob("slider/*/*.flac"))[-4:]  # includes the anomaly
    a = LogMelTransformer(backend="librosa").fit_transform(paths)
    b = LogMelTransformer(backend="torch").fit_transform(paths)
    assert np.abs(a - b).max() <= TOL_DB


def test_ten_second_clip_gives_dcase_shape():
    W = _machine_like(n_clips=1, seconds=10.0)
    assert LogMelTransformer().fit_transform(W).shape == (1, 128, 313)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pad_mode_changes_only_the_padded_edge_frames(backend):
    W = _machine_like(n_clips=2)
    zero = LogMelTransformer(backend=backend).fit_transform(W)
    refl = LogMelTransformer(backend=backend, pad_mode="reflect").fit_transform(W)
    # 16000 samples, n_fft 1024, hop 512: frame 0 and the last frame (31) overlap the padding.
    diff = np.abs(zero - refl).max(axis=(0, 1))
    assert diff[0] > 0.1 and diff[-1] > 0.1
    assert diff[1:-1].max() == 0
    assert np.abs(refl - _reference(W, pad_mode="reflect")).max() <= TOL_DB


@pytest.mark.parametrize("backend", BACKENDS)
def test_mfcc_matches_librosa(backend):
    W = _machine_like()
    logmel = LogMelTransformer(backend=backend).fit_transform(W)
    got = MFCCTransformer(n_mfcc=13, backend=backend).fit_transform(W)
    assert got.shape == (3, 13, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, librosa.feature.mfcc(S=logmel, n_mfcc=13), atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_silent_clip_warns_and_sits_at_the_eps_floor(backend):
    W = _machine_like(n_clips=2)
    W[1] = 0
    with pytest.warns(UserWarning, match="clip 1") as record:
        F = LogMelTransformer(backend=backend).fit_transform(W)
    assert len(record) == 1
    assert np.isfinite(F).all()
    np.testing.assert_allclose(F[1], 10 * np.log10(np.float32(EPS)), rtol=1e-6)
    np.testing.assert_array_equal(F[0], LogMelTransformer(backend=backend).fit_transform(W[:1])[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_paths_equal_waveforms_and_n_jobs(backend, tmp_path):
    W = _machine_like(n_clips=4)
    paths = []
    for i, w in enumerate(W):
        paths.append(tmp_path / f"c{i}.wav")
        sf.write(paths[-1], w, SR, subtype="FLOAT")
    t = LogMelTransformer(backend=backend)
    expected = t.fit_transform(W)
    np.testing.assert_array_equal(t.transform(paths), expected)
    np.testing.assert_array_equal(t.set_params(n_jobs=2).transform(paths), expected)
    np.testing.assert_array_equal(t.transform(list(W)), expected)
    # Results do not depend on the batch a clip is in.
    np.testing.assert_array_equal(t.transform(W[::-1])[::-1], expected)


def test_transform_needs_no_fit_and_errors_pass_through(tmp_path):
    W = _machine_like(n_clips=1)
    np.testing.assert_array_equal(LogMelTransformer().transform(W), LogMelTransformer().fit(W).transform(W))
    with pytest.raises(TypeError, match="pass a list of paths"):
        LogMelTransformer().transform(str(tmp_path / "a.wav"))
    with pytest.raises(FileNotFoundError, match="a.wav"):
        LogMelTransformer().transform([tmp_path / "a.wav"])
    F = LogMelTransformer().transform(W)
    with pytest.raises(ValueError, match="looks like features already"):
        MFCCTransformer().transform(F)
    W[0, 3] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        LogMelTransformer().fit(W)


def test_duration_param_crops_and_pads():
    W = _machine_like(n_clips=1, seconds=1.0)
    assert LogMelTransformer(duration=2.0).fit_transform(W).shape == (1, 128, 63)
    with pytest.raises(AudioError, match="duration="):
        LogMelTransformer().fit_transform([W[0], W[0, :8000]])
    assert LogMelTransformer(duration=0.5).fit_transform([W[0], W[0, :8000]]).shape == (2, 128, 16)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_fft": 0}, "'n_fft' parameter of LogMelTransformer must be an int in the range"),
        ({"hop_length": 1.5}, "'hop_length' parameter of LogMelTransformer must be an int"),
        ({"power": 0}, "'power' parameter of LogMelTransformer must be a float in the range"),
        ({"fmax": 9000.0}, "fmax <= sr/2"),
        ({"fmin": 500.0, "fmax": 400.0}, "fmin < fmax"),
        ({"pad_mode": "edge"}, "'pad_mode' parameter of LogMelTransformer must be a str among"),
        ({"backend": "numpy"}, "'backend' parameter of LogMelTransformer must be a str among"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_bad_params(params, match):
    W = _machine_like(n_clips=1)
    with pytest.raises(ValueError, match=match):
        LogMelTransformer(**params).fit_transform(W)


def test_mfcc_bad_n_mfcc():
    with pytest.raises(ValueError, match="n_mfcc=50 exceeds n_mels=40"):
        MFCCTransformer(n_mfcc=50, n_mels=40).fit(_machine_like(n_clips=1))


def test_clone_and_params():
    t = MFCCTransformer(n_mfcc=13, n_mels=64, pad_mode="reflect", backend="librosa")
    params = t.get_params()
    assert params["n_mfcc"] == 13 and params["n_mels"] == 64 and params["pad_mode"] == "reflect"
    assert set(params) == set(LogMelTransformer().get_params()) | {"n_mfcc"}
    c = clone(t)
    assert c is not t and c.get_params() == params
    W = _machine_like(n_clips=1)
    np.testing.assert_array_equal(c.fit_transform(W), t.fit_transform(W))
    assert LogMelTransformer().__sklearn_tags__().requires_fit is False


def test_in_a_pipeline():
    W = _machine_like(n_clips=6)
    mean_over_time = FunctionTransformer(lambda F: F.mean(axis=2))
    pipe = make_pipeline(LogMelTransformer(n_mels=32), mean_over_time, PCA(n_components=2)).fit(W)
    manual = PCA(n_components=2).fit(LogMelTransformer(n_mels=32).transform(W).mean(axis=2))
    np.testing.assert_allclose(np.abs(pipe.transform(W)), np.abs(manual.transform(
        LogMelTransformer(n_mels=32).transform(W).mean(axis=2))), rtol=1e-4, atol=1e-4)


def test_no_feature_names_and_no_set_output():
    t = LogMelTransformer()
    assert not hasattr(t, "get_feature_names_out") and not hasattr(t, "set_output")
    with pytest.raises(ValueError, match="set_output"):
        make_pipeline(LogMelTransformer(), FunctionTransformer()).set_output(transform="pandas")
    W = _machine_like(n_clips=1)
    with config_context(transform_output="pandas"):
        assert isinstance(t.fit_transform(W), np.ndarray)


# Every scikit-learn estimator check, except those that assume a fixed number of input
# columns: a clip's length (n_samples) is not a learned or meaningful n_features_in_.
_EXPECTED_FAILURES = {
    "check_n_features_in": "stateless on clips of any length: no n_features_in_",
    "check_n_features_in_after_fitting": "stateless on clips of any length: no n_features_in_",
}


@parametrize_with_checks(
    [LogMelTransformer(), LogMelTransformer(backend="librosa"), MFCCTransformer()],
    expected_failed_checks=lambda est: _EXPECTED_FAILURES,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data: "n_fft too large", silent clips
        check(estimator)


def test_torch_gpu_code_path_on_cpu():
    """The CUDA path (dense mel matmul, several clips per step) gives the CPU path's numbers."""
    import librosa
    import torch

    from skasd.features._torch_backend import _constants, _log_mel_range

    W = _machine_like(n_clips=4)
    expected = LogMelTransformer(backend="torch", device="cpu").fit_transform(W)
    basis, win = _constants(librosa.filters.mel(sr=SR, n_fft=1024, n_mels=128),
                            librosa.filters.get_window("hann", 1024, fftbins=True), torch.device("cpu"))
    out = np.empty_like(expected)
    _log_mel_range(torch.from_numpy(W), out, basis.to_dense(), win, chunk=3, device=torch.device("cpu"),
                   power=2.0, n_fft=1024, hop_length=512, center=True, pad_mode="constant")
    np.testing.assert_allclose(out, expected, atol=1e-4)
