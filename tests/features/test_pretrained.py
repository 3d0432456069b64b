"""PretrainedEmbedding: pooling and layers on a small module, the aisfx front end against librosa,
the real aisfx checkpoint (weights checks, save/load), transformers directories, the weights cache."""

import glob
import pickle
import shutil
import warnings

import librosa
import numpy as np
import pytest
import torch
import soundfile as sf
from safetensors.numpy import load_file, save_file
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import skasd
from skasd import AudioError, DenseAE, FeatureStore, KNNDetector, PretrainedEmbedding
from skasd.exceptions import ModelFileError
from skasd.features._cache import FeatureCache
from skasd.features._aisfx import AISFX, aisfx_blocks, aisfx_logmel
from skasd.features._weights import fetch_weights, weights_file


class Frames(torch.nn.Module):
    """A tiny encoder: waveform (B, T) -> (B, T // 10, 3) frame statistics, and its two 'layers'."""

    def __init__(self, sample_rate=None, min_samples=None, layers=False):
        super().__init__()
        self.proj = torch.nn.Linear(10, 3)
        if sample_rate is not None:
            self.sample_rate = sample_rate
        if min_samples is not None:
            self.min_samples = min_samples
        self.layers = layers

    def forward(self, x):
        frames = x[:, : x.shape[1] // 10 * 10].reshape(len(x), -1, 10)
        out = self.proj(frames)
        return (frames[..., :3], out) if self.layers else out


def _module():
    torch.manual_seed(0)
    return Frames(min_samples=10)


def _waves(n=3, length=400, seed=0):
    return np.random.default_rng(seed).normal(size=(n, length)).astype(np.float32)


# ---------------------------------------------------------------------------- a torch module
def test_pooling_is_the_statistics_of_the_module_output_over_time():
    enc, X = _module(), _waves()
    with torch.no_grad():
        F = enc(torch.from_numpy(X)).numpy()  # (3, 40, 3)
    E = PretrainedEmbedding(model=enc, pooling="max+mean+std").fit_transform(X)
    np.testing.assert_allclose(E, np.concatenate([F.max(1), F.mean(1), F.std(1)], axis=1), rtol=1e-5, atol=1e-6)
    assert E.dtype == np.float32
    # the default mean+std, in batches of one clip, from a clone
    np.testing.assert_allclose(clone(PretrainedEmbedding(model=enc, batch_size=1)).fit_transform(X),
                               np.concatenate([F.mean(1), F.std(1)], axis=1), rtol=1e-5, atol=1e-6)


def test_pooling_none_returns_the_steps_unpooled():
    enc, X = _module(), _waves()
    with torch.no_grad():
        F = enc(torch.from_numpy(X)).numpy()  # (3, 40, 3)
    E = PretrainedEmbedding(model=enc, pooling=None).fit_transform(X)
    assert E.shape == (3, 3, 40) and E.dtype == np.float32
    np.testing.assert_allclose(E, F.transpose(0, 2, 1), rtol=1e-5, atol=1e-6)
    # the pooled rows are statistics of exactly these steps
    pooled = PretrainedEmbedding(model=enc, pooling="mean+max").fit_transform(X)
    np.testing.assert_array_equal(pooled, np.concatenate([E.mean(2), E.max(2)], axis=1))
    # chunks of 32 clips that give different numbers of steps cannot be stacked
    ragged = [w for w in _waves(32, 400)] + [_waves(1, 200)[0]]
    with pytest.raises(AudioError, match="clip 32 and the clips after it give 20 time steps, earlier clips 40; "
                       "pass duration="):
        PretrainedEmbedding(model=enc, pooling=None).fit_transform(ragged)
    assert PretrainedEmbedding(model=enc).fit_transform(ragged).shape == (33, 6)  # pooled: fine
    # pooled rows of clips of several lengths within one chunk, in any order: each clip's own
    mixed = [_waves(1, 400, seed=1)[0], _waves(1, 200, seed=2)[0], _waves(1, 400, seed=3)[0]]
    one_by_one = np.concatenate([PretrainedEmbedding(model=enc).fit_transform([w]) for w in mixed])
    np.testing.assert_allclose(PretrainedEmbedding(model=enc).fit_transform(mixed), one_by_one, rtol=1e-6)
    np.testing.assert_allclose(PretrainedEmbedding(model=enc).fit_transform(mixed[::-1]), one_by_one[::-1], rtol=1e-6)
    with pytest.raises(AudioError, match="clips differ in length"):  # unpooled they cannot be stacked, in any order
        PretrainedEmbedding(model=enc, pooling=None).fit_transform(mixed)


def test_layer_picks_from_a_tuple_and_a_single_tensor_refuses_it():
    torch.manual_seed(0)
    enc, X = Frames(layers=True), _waves()
    first = PretrainedEmbedding(model=enc, layer=0, pooling="mean").fit_transform(X)
    np.testing.assert_allclose(first, X[:, :400].reshape(3, 40, 10)[..., :3].mean(1), rtol=1e-5, atol=1e-6)
    assert PretrainedEmbedding(model=enc, pooling="mean").fit_transform(X).shape == (3, 3)
    with pytest.raises(ValueError, match="layer=1: the module returns one tensor"):
        PretrainedEmbedding(model=_module(), layer=1).fit_transform(X)


def test_module_sample_rate_resamples_and_min_samples_pads_with_a_warning():
    torch.manual_seed(0)
    enc = Frames(sample_rate=8000)
    X = _waves(2, 1600)
    got = PretrainedEmbedding(model=enc, sr=16000, pooling="mean").fit_transform(X)
    half = librosa.resample(X, orig_sr=16000, target_sr=8000, axis=-1)
    with torch.no_grad():
        want = enc(torch.from_numpy(half)).numpy().mean(1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    enc = Frames(min_samples=1000)
    with pytest.warns(UserWarning, match="shorter than the encoder's window of 1000 samples.*zero-padded"):
        E = PretrainedEmbedding(model=enc, pooling="mean").fit_transform(_waves(2, 300))
    with torch.no_grad():
        want = enc(torch.from_numpy(np.pad(_waves(2, 300), [(0, 0), (0, 700)]))).numpy().mean(1)
    np.testing.assert_allclose(E, want, rtol=1e-5, atol=1e-6)


def test_bad_parameters_are_named():
    X = _waves()
    with pytest.raises(ValueError, match="pooling='mean\\+median'"):
        PretrainedEmbedding(model=_module(), pooling="mean+median").fit(X)
    with pytest.raises(TypeError, match="model must be 'aisfx'.*got a int"):
        PretrainedEmbedding(model=3).fit(X)
    with pytest.raises(ValueError, match="weights= is for model='aisfx'"):
        PretrainedEmbedding(model=_module(), weights="w.pth").fit(X)
    with pytest.raises(ValueError, match="cache= needs a named encoder"):
        PretrainedEmbedding(model=_module(), cache="somewhere").fit(X)
    with pytest.raises(ValueError, match="lazy=True reads the embeddings back from the feature cache: set cache=DIR"):
        PretrainedEmbedding(model=_module(), pooling=None, lazy=True).fit(X)
    with pytest.raises(ValueError, match="lazy=True streams the unpooled .*: set pooling=None \\(not 'mean\\+std'\\)"):
        PretrainedEmbedding(cache="somewhere", lazy=True).transform(X)  # before any weights are read
    with pytest.raises(ValueError, match="'lazy' parameter of PretrainedEmbedding must be an instance of 'bool'"):
        PretrainedEmbedding(model=_module(), lazy="yes").fit(X)
    with pytest.raises(ValueError, match="'pooling' parameter of PretrainedEmbedding must be .*str.*None"):
        PretrainedEmbedding(model=_module(), pooling=3).fit(X)
    with pytest.raises(ValueError, match="no time steps for clips of 5 samples: give the module a min_samples"):
        PretrainedEmbedding(model=Frames()).fit_transform(_waves(2, 5))


def test_a_module_cannot_go_into_a_model_file(tmp_path):
    pipe = make_pipeline(PretrainedEmbedding(model=_module()), KNNDetector()).fit(_waves(4))
    with pytest.raises(ModelFileError, match="holds a torch.nn.Module, i.e. code.*state_dict"):
        skasd.save(pipe, tmp_path / "m.skasd")
    assert not (tmp_path / "m.skasd").exists()


_EXPECTED_FAILURES = {
    "check_n_features_in": "stateless on clips of any length: no n_features_in_",
    "check_n_features_in_after_fitting": "stateless on clips of any length: no n_features_in_",
    "check_estimators_overwrite_params": "joblib.hash of a torch module differs from that of its deepcopy, which "
    "the check compares; test_embedding_leaves_the_module_as_it_was checks the module itself",
}


def test_embedding_leaves_the_module_as_it_was():
    enc = _module()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    PretrainedEmbedding(model=enc).fit_transform(_waves())
    assert enc.training and all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())
    enc.eval()
    PretrainedEmbedding(model=enc).fit_transform(_waves())
    assert not enc.training


@parametrize_with_checks([PretrainedEmbedding(model=_module(), device="cpu")],
                         expected_failed_checks=lambda est: _EXPECTED_FAILURES)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data: padded to the module's 10 samples
        check(estimator)


# ---------------------------------------------------------------------------- aisfx front end
def test_aisfx_logmel_is_the_authors_recipe_in_librosa():
    y = np.random.default_rng(1).uniform(-0.3, 0.3, size=(2, 3 * 44100)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y / np.abs(y).max(axis=1, keepdims=True), sr=44100, n_fft=2048,
                                         hop_length=1024, n_mels=96, fmin=0, fmax=22050, htk=True, norm=1)
    want = np.log10(1 + 10000 * mel) / 9.4578
    got = aisfx_logmel(y)
    assert got.shape == (2, 1 + 3 * 44100 // 1024, 96)
    np.testing.assert_allclose(got, want.transpose(0, 2, 1), rtol=1e-4, atol=1e-5)
    B = aisfx_blocks(got)  # 130 frames: blocks at 0 (and none at 50, which would end past 130)
    assert B.shape == (2, 1, 100, 96) and np.array_equal(B[:, 0], got[:, :100])
    twelve = aisfx_blocks(np.zeros((1, 517, 96), np.float32))  # a 12-s clip: 9 blocks, hop 50
    assert twelve.shape == (1, 9, 100, 96)


# ---------------------------------------------------------------------------- the real checkpoint
@pytest.fixture(scope="module")
def toycar_clips(toycar_dir):
    clips = sorted(glob.glob(str(toycar_dir / "ToyCar" / "test" / "*")))
    if len(clips) < 3:
        pytest.skip("no ToyCar test clips")
    return [clips[0], clips[1], clips[-1]]


def test_aisfx_rows_layers_and_model_file(aisfx_weights, toycar_clips, tmp_path):
    emb = PretrainedEmbedding(weights=aisfx_weights, duration=3.0, device="cpu")
    E = emb.fit_transform(toycar_clips)
    assert E.shape == (3, 1024) and np.isfinite(E).all() and (E[:, 512:] >= 0).all()
    assert len(emb.weights_sha256_) == 64 and emb.sample_rate_ == 44100
    # 3 s = 130 frames: one block, so the std over blocks is zero and the max is the mean
    np.testing.assert_array_equal(E[:, 512:], 0)
    two = PretrainedEmbedding(weights=aisfx_weights, duration=3.0, layer=2, pooling="max").fit_transform(toycar_clips)
    assert two.shape == (3, 128)
    # the same waveforms given in memory at 16 kHz embed the same (files are decoded at 44.1 kHz directly)
    W = np.stack([skasd.load_audio(p, sr=16000, duration=3.0) for p in toycar_clips])
    np.testing.assert_allclose(PretrainedEmbedding(weights=aisfx_weights).fit_transform(W), E, rtol=0.05, atol=0.02)
    # a pipeline round-trips through a model file with the same scores
    pipe = make_pipeline(clone(emb), KNNDetector()).fit(toycar_clips[:2])
    skasd.save(pipe, tmp_path / "p.skasd")
    back = skasd.load(tmp_path / "p.skasd")
    np.testing.assert_allclose(back.score_samples(toycar_clips), pipe.score_samples(toycar_clips), atol=1e-6)
    assert back[0].weights_sha256_ == emb.weights_sha256_


def test_a_moved_model_file_embeds_with_the_cached_weights(aisfx_weights, toycar_clips, tmp_path, monkeypatch):
    """A model fitted with weights=PATH, loaded where PATH does not exist: the user's cache holds
    the same weights (by digest), so it embeds with them, and says so."""
    import shutil

    from skasd.workflow import fetch_weights

    copy = tmp_path / "checkpoint.pth"
    shutil.copy(aisfx_weights, copy)
    pipe = make_pipeline(PretrainedEmbedding(weights=copy, duration=3.0), KNNDetector()).fit(toycar_clips[:2])
    expected = pipe.score_samples(toycar_clips)
    skasd.save(pipe, tmp_path / "p.skasd")
    copy.unlink()
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="skasd weights fetch aisfx"):  # nothing cached yet
        skasd.load(tmp_path / "p.skasd").score_samples(toycar_clips)
    fetch_weights("aisfx", source=aisfx_weights)
    with pytest.warns(UserWarning, match="using those of the skasd cache"):
        got = skasd.load(tmp_path / "p.skasd").score_samples(toycar_clips)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_aisfx_weights_are_checked(aisfx_weights, tmp_path, toycar_clips, monkeypatch):
    clips = toycar_clips[:1]
    with pytest.raises(FileNotFoundError, match=r"nope\.pth.*skasd weights fetch aisfx"):
        PretrainedEmbedding(weights=tmp_path / "nope.pth").fit(clips)
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"not in the skasd cache .*cache.*skasd weights fetch aisfx"):
        PretrainedEmbedding().fit(clips)
    bad = tmp_path / "changed.pth"
    data = bytearray(aisfx_weights.read_bytes())
    data[-100] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"changed\.pth: sha256 .* is not that of the published aisfx checkpoint"):
        PretrainedEmbedding(weights=bad).fit(clips)
    # into the cache as safetensors: the same weights, the same rows, found without weights=
    path = fetch_weights("aisfx", source=aisfx_weights)
    assert path == weights_file("aisfx") and path.startswith(str(tmp_path / "cache"))
    a = PretrainedEmbedding(weights=aisfx_weights, duration=2.5).fit_transform(clips)
    b = PretrainedEmbedding(duration=2.5).fit_transform(clips)
    np.testing.assert_array_equal(a, b)
    state = load_file(path)
    state["conv_block1.conv1.weight"] = state["conv_block1.conv1.weight"] * 1.01
    save_file(state, str(tmp_path / "scaled.safetensors"))
    with pytest.raises(ValueError, match=r"scaled\.safetensors: its weights .* are not the published aisfx weights"):
        PretrainedEmbedding(weights=tmp_path / "scaled.safetensors").fit(clips)
    state["conv_block1.conv1.weight"] = state["conv_block1.conv1.weight"][:32]
    save_file(state, str(tmp_path / "shapes.safetensors"))
    with pytest.raises(ValueError, match=r"shapes\.safetensors: not the aisfx .*conv_block1\.conv1\.weight \(32, 1, 3, 3\)"):
        PretrainedEmbedding(weights=tmp_path / "shapes.safetensors").fit(clips)
    # a fitted embedding refuses other weights at transform time
    emb = PretrainedEmbedding(weights=aisfx_weights, duration=2.5).fit(clips)
    emb.weights_sha256_ = "0" * 64
    with pytest.raises(ValueError, match="not those this PretrainedEmbedding was fitted with"):
        emb.transform(clips)


def test_aisfx_wheel_is_checked(aisfx_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path / "cache"))
    wheel = tmp_path / AISFX.wheel
    shutil.copy(aisfx_weights, wheel)  # not the wheel
    with pytest.raises(ValueError, match=r"aisfx-0\.1\.2-py2\.py3-none-any\.whl: sha256 .* is not that of"):
        fetch_weights("aisfx", source=wheel)
    with pytest.raises(ValueError, match="unknown weights 'beats'"):
        fetch_weights("beats")


# ---------------------------------------------------------------------------- transformers directories
transformers = pytest.importorskip("transformers")


def _hf_dir(tmp_path_factory, name, model, extractor):
    path = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)
    model.save_pretrained(path)
    extractor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    cfg = transformers.Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        num_feat_extract_layers=2)
    return _hf_dir(tmp_path_factory, "wav2vec2", transformers.Wav2Vec2Model(cfg),
                   transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000))


def test_transformers_directory_hidden_states(wav2vec2_dir, tmp_path):
    X = _waves(3, 8000, seed=2) * 0.1
    model = transformers.Wav2Vec2Model.from_pretrained(wav2vec2_dir).eval()
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(wav2vec2_dir)
    with torch.no_grad():
        out = model(**fe(list(X), sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)
    last, first = out.last_hidden_state.numpy(), out.hidden_states[1].numpy()
    E = PretrainedEmbedding(model=wav2vec2_dir, batch_size=2).fit_transform(X)
    np.testing.assert_allclose(E, np.concatenate([last.mean(1), last.std(1)], 1), rtol=1e-4, atol=1e-5)
    E1 = PretrainedEmbedding(model=str(wav2vec2_dir), layer=1, pooling="max").fit_transform(X)
    np.testing.assert_allclose(E1, first.max(1), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="layer=7: .* hidden states 0 \\(input embeddings\\) to 2"):
        PretrainedEmbedding(model=wav2vec2_dir, layer=7).fit(X)
    # clips at 8 kHz are resampled to the model's 16 kHz
    low = librosa.resample(X, orig_sr=16000, target_sr=8000, axis=-1)
    E8 = PretrainedEmbedding(model=wav2vec2_dir, sr=8000).fit_transform(low)
    assert E8.shape == E.shape and np.corrcoef(E8.ravel(), E.ravel())[0, 1] > 0.9
    # shorter than the convolutions' receptive field (10 + 7 * 5 = 45 samples): padded, with a warning
    with pytest.warns(UserWarning, match="shorter than the encoder's window of 45 samples"):
        assert PretrainedEmbedding(model=wav2vec2_dir).fit_transform(X[:, :30]).shape == (3, 32)
    # the feature cache gives the same rows, also for another pooling of the stored steps
    cached = PretrainedEmbedding(model=wav2vec2_dir, cache=tmp_path / "c")
    np.testing.assert_allclose(cached.fit_transform(X), E, rtol=1e-6, atol=1e-7)
    entries = sorted((tmp_path / "c").rglob("*.npz"))
    assert len(entries) == 3
    np.testing.assert_allclose(clone(cached).set_params(pooling="max").transform(X), last.max(1), rtol=1e-4, atol=1e-5)
    assert sorted((tmp_path / "c").rglob("*.npz")) == entries
    # a pipeline on it goes through a model file
    pipe = make_pipeline(PretrainedEmbedding(model=wav2vec2_dir), KNNDetector()).fit(X[:2])
    skasd.save(pipe, tmp_path / "p.skasd")
    np.testing.assert_allclose(skasd.load(tmp_path / "p.skasd").score_samples(X), pipe.score_samples(X), atol=1e-6)


def test_lazy_store_streams_the_cached_steps_into_an_autoencoder(wav2vec2_dir, tmp_path):
    W = _waves(6, 4000, seed=4) * 0.1
    paths = []
    for i, w in enumerate(W):
        paths.append(str(tmp_path / f"clip_{i}.wav"))
        sf.write(paths[-1], w, 16000, subtype="FLOAT")
    steps = PretrainedEmbedding(model=wav2vec2_dir, pooling=None).fit_transform(W)
    assert steps.shape == (6, 16, 198) and steps.dtype == np.float32
    emb = PretrainedEmbedding(model=wav2vec2_dir, pooling=None, cache=tmp_path / "c", lazy=True)
    store = emb.fit_transform(paths)
    assert isinstance(store, FeatureStore) and store.shape == steps.shape
    np.testing.assert_array_equal(store[:], steps)
    np.testing.assert_array_equal(store[[4, 1]], steps[[4, 1]])
    entries = sorted((tmp_path / "c").rglob("*.npz"))
    assert len(entries) == 6
    # the eager cached path reads the same entries (another pooling included)
    np.testing.assert_array_equal(clone(emb).set_params(lazy=False, pooling="mean").transform(paths), steps.mean(2))
    # small to pickle (paths and keys); a lost entry is recomputed from its file and written back
    blob = pickle.dumps(store)
    assert len(blob) < 10_000
    next(e for e in entries if e.stem == FeatureCache.path_key(paths[2])).unlink()
    with pytest.warns(UserWarning, match=r"recomputing 1 clip\(s\) .*clip_2\.wav \(missing\)"):
        back = pickle.loads(blob)[:]
    np.testing.assert_array_equal(np.delete(back, 2, axis=0), np.delete(steps, 2, axis=0))
    np.testing.assert_allclose(back[2], steps[2], rtol=1e-4, atol=1e-5)  # alone in its batch: float rounding
    assert sorted((tmp_path / "c").rglob("*.npz")) == entries
    # a pipeline streams the store into a sequence autoencoder, one step per window, and scores
    # it as it scores the same steps in memory
    pipe = make_pipeline(clone(emb), DenseAE(frames=1, max_epochs=1, random_state=0, device="cpu")).fit(paths)
    scores = pipe.score_samples(paths)
    assert scores.shape == (6,) and np.isfinite(scores).all()
    np.testing.assert_allclose(pipe[-1].score_samples(np.asarray(pipe[0].transform(paths))), scores, rtol=1e-6)


def test_ast_and_whisper_directories(tmp_path_factory):
    X = _waves(2, 16000, seed=3) * 0.1
    ast = _hf_dir(tmp_path_factory, "ast", transformers.ASTModel(transformers.ASTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_mel_bins=16,
        max_length=64)), transformers.ASTFeatureExtractor(num_mel_bins=16, max_length=64))
    assert PretrainedEmbedding(model=ast, pooling="mean").fit_transform(X).shape == (2, 16)
    whisper = _hf_dir(tmp_path_factory, "whisper", transformers.WhisperModel(transformers.WhisperConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=16, vocab_size=50, pad_token_id=1, bos_token_id=2,
        eos_token_id=3, decoder_start_token_id=2)), transformers.WhisperFeatureExtractor(feature_size=16))
    emb = PretrainedEmbedding(model=whisper, pooling="mean")
    E = emb.fit_transform(X)
    assert E.shape == (2, 16)
    # the encoder's frames of the 30-s padding are left out: 1 s of audio is 50 of its 1500 frames
    enc = transformers.WhisperModel.from_pretrained(whisper).get_encoder().eval()
    fe = transformers.WhisperFeatureExtractor.from_pretrained(whisper)
    with torch.no_grad():
        H = enc(fe(list(X), sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state.numpy()
    np.testing.assert_allclose(E, H[:, :50].mean(1), rtol=1e-4, atol=1e-5)


def test_not_an_audio_encoder_is_named(tmp_path):
    bert = tmp_path / "bert"
    transformers.BertModel(transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                                   intermediate_size=32, vocab_size=50)).save_pretrained(bert)
    X = _waves()
    with pytest.raises(ValueError, match=r"bert'? \(bert\) is not an audio encoder"):
        PretrainedEmbedding(model=bert).fit(X)
    with pytest.raises(ValueError, match="directory without config.json"):
        PretrainedEmbedding(model=tmp_path).fit(X)
    with pytest.raises(ValueError, match="weights= is for model='aisfx'"):
        PretrainedEmbedding(model=bert, weights="w.pth").fit(X)
