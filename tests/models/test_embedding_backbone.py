"""ClassifierEmbedding(backbone="aisfx"): the pretrained aisfx CNN as its encoder, frozen or with its
last blocks trainable; its input pipeline, model files and errors.

Without ``../shared`` the mechanism is tested on a randomly initialised aisfx-shaped state saved as
a weights file (the check that refuses unpublished weights is pointed at its digest); the published
checkpoint, when present, is checked against PretrainedEmbedding's rows."""

import copy
import glob

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from numpy.testing import assert_allclose, assert_array_equal
from safetensors.numpy import save_file
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

import skasd
from skasd import ClassifierEmbedding, PretrainedEmbedding
from skasd.features import _weights
from skasd.features._aisfx import AISFX, aisfx_net
from skasd.models import _embedding
from skasd.models._torch import _embedding_modules

SR = 16000


class _Snapshot(Callback):
    """Keeps the module's state as training starts (after the backbone's weights are loaded)."""

    def on_train_begin(self, net, **kwargs):
        self.state_ = {k: v.detach().clone() for k, v in net.module_.state_dict().items()}


def _initial_state(est):
    return next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, _Snapshot)).state_


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A randomly initialised aisfx-shaped state, as a safetensors weights file, and the state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = {k: v.numpy().copy() for k, v in aisfx_net().state_dict().items()}
    path = tmp_path_factory.mktemp("weights") / "random-aisfx.safetensors"
    save_file(state, str(path))
    return path, state


def _accept(mp, state):
    """Point the check that refuses unpublished aisfx weights at ``state``'s digest."""
    mp.setattr(_weights, "AISFX_STATE_DIGEST", _weights.state_digest(state))


@pytest.fixture
def random_weights(weights_file, monkeypatch):
    _accept(monkeypatch, weights_file[1])
    return weights_file


@pytest.fixture(scope="module")
def clips():
    """6 clips of 2.4 s at 16 kHz (one aisfx block each): 3 of low noise, 3 of a high tone; labels."""
    rng = np.random.default_rng(0)
    t = np.arange(int(2.4 * SR)) / SR
    low = [np.convolve(rng.normal(size=len(t)), np.ones(8) / 8, "same") for _ in range(3)]
    high = [np.sin(2 * np.pi * (3000 + 100 * i) * t) + 0.1 * rng.normal(size=len(t)) for i in range(3)]
    return np.array(low + high, dtype=np.float32), np.repeat(["low", "high"], 3)


def small(weights, **params):
    defaults = dict(backbone="aisfx", backbone_weights=weights, embed_dim=8, max_epochs=2, batch_size=3,
                    random_state=0, callbacks=[_Snapshot()])
    return ClassifierEmbedding(**{**defaults, **params})


@pytest.fixture(scope="module")
def frozen(weights_file, clips):
    with pytest.MonkeyPatch.context() as mp:
        _accept(mp, weights_file[1])
        return small(weights_file[0]).fit(*clips)


def test_frozen_backbone_stays_while_the_head_trains(frozen, random_weights, clips):
    start, end = _initial_state(frozen), frozen.net_.module_.state_dict()
    backbone = [k for k in end if k.startswith("encoder.backbone.")]
    assert len(backbone) == len(random_weights[1])
    for k in backbone:  # the published (here: the file's) weights, batch-norm statistics included, unchanged
        assert_array_equal(end[k].numpy(), random_weights[1][k.removeprefix("encoder.backbone.")], err_msg=k)
    assert not any(end[k].requires_grad for k in backbone)
    for k in ("encoder.project.weight", "encoder.norm.running_mean", "head.centres"):
        assert not torch.equal(start[k], end[k]), k
    assert len(frozen.net_.history) == 2 and np.isfinite(frozen.net_.history[:, "train_loss"]).all()
    assert frozen.backbone_sha256_ == _weights.AISFX_STATE_DIGEST and frozen.n_features_in_ == AISFX.n_mels
    assert frozen.loc_ == 0.0 and frozen.scale_ == 1.0  # the backbone reads its own input scale


def test_trainable_blocks_train_only_the_last_blocks(random_weights, clips):
    est = small(random_weights[0], trainable_blocks=1, max_epochs=1).fit(*clips)
    start, end = _initial_state(est), est.net_.module_.state_dict()
    for k in end:
        if k.startswith("encoder.backbone.conv_block") and not k.startswith("encoder.backbone.conv_block4"):
            assert torch.equal(start[k], end[k]), k
    for k in ("conv1.weight", "bn2.weight", "bn2.running_mean"):
        assert not torch.equal(start[f"encoder.backbone.conv_block4.{k}"], end[f"encoder.backbone.conv_block4.{k}"]), k
    # frozen blocks keep eval-mode batch norm while the module trains
    module = est.net_.module_.train()
    assert not module.encoder.backbone.conv_block3.bn2.training and module.encoder.backbone.conv_block4.bn2.training


def test_transform_one_row_per_clip_from_waveforms_or_files(frozen, clips, tmp_path):
    W, _ = clips
    Z = frozen.transform(W)
    assert Z.shape == (len(W), 16) and np.isfinite(Z).all()
    assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-6)
    # files are decoded at 44.1 kHz: the same clips given at 44.1 kHz in memory embed alike
    W44 = librosa.resample(W[:2], orig_sr=SR, target_sr=AISFX.sample_rate, axis=-1).astype(np.float32)
    paths = []
    for i, w in enumerate(W44):
        paths.append(str(tmp_path / f"clip{i}.wav"))
        sf.write(paths[-1], w, AISFX.sample_rate, subtype="FLOAT")
    from_files = frozen.transform(paths)
    at_44k = copy.copy(frozen)
    at_44k.sr = AISFX.sample_rate  # sr only says how to read in-memory waveforms
    assert_allclose(from_files, at_44k.transform(W44), rtol=1e-5, atol=1e-6)
    assert_allclose(from_files, Z[:2], atol=0.05)  # resampled once or twice: close, not equal


def test_clone_get_params_and_model_file_round_trip(frozen, random_weights, clips, tmp_path, monkeypatch):
    params = clone(frozen).get_params()
    assert params["backbone"] == "aisfx" and params["trainable_blocks"] == 0
    assert params["backbone_weights"] == random_weights[0]
    W, _ = clips
    storable = copy.copy(frozen)
    storable.callbacks = None  # the test's snapshot callback is code, which model files do not store
    skasd.save(storable, tmp_path / "emb.skasd")

    def no_weights(*args, **kwargs):
        raise AssertionError("a model file must not read the backbone's weights file")

    monkeypatch.setattr(_embedding_modules, "load_encoder", no_weights)
    monkeypatch.setattr(_embedding, "load_encoder", no_weights)
    back = skasd.load(tmp_path / "emb.skasd")
    assert back.backbone_sha256_ == frozen.backbone_sha256_
    assert_array_equal(back.transform(W), frozen.transform(W))


def test_bad_input_errors(random_weights, clips, tmp_path):
    W, y = clips
    with pytest.raises(InvalidParameterError, match="trainable_blocks"):
        small(random_weights[0], trainable_blocks=5).fit(W, y)
    with pytest.raises(InvalidParameterError, match="backbone"):
        small(random_weights[0], backbone="beats").fit(W, y)
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors.*skasd weights fetch aisfx"):
        small(tmp_path / "nope.safetensors").fit(W, y)
    with pytest.raises(ValueError, match=r"trainable_blocks=1 is for a pretrained backbone"):
        ClassifierEmbedding(trainable_blocks=1).fit(np.zeros((4, 16, 20), np.float32), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"not log-mel spectrograms.*use backbone=None"):
        small(random_weights[0]).fit(np.zeros((6, 96, 120), np.float32), y)


# ---------------------------------------------------------------------------- the published checkpoint
def test_published_backbone_reads_pretrained_embedding_input(aisfx_weights, toycar_dir):
    """The frozen backbone of a fit sees what PretrainedEmbedding embeds: the same per-block vectors."""
    paths = sorted(glob.glob(str(toycar_dir / "ToyCar" / "train" / "*")))[:4]
    if len(paths) < 4:
        pytest.skip("no ToyCar train clips")
    est = ClassifierEmbedding(backbone="aisfx", backbone_weights=aisfx_weights, pseudo_shifts=(), embed_dim=8,
                              max_epochs=1, batch_size=8, random_state=0).fit(paths, [0, 0, 1, 1])
    assert est.transform(paths).shape == (4, 16)
    ref = PretrainedEmbedding(weights=aisfx_weights, pooling="mean").fit(paths)
    assert est.backbone_sha256_ == ref.weights_sha256_
    X = torch.from_numpy(est._backbone_input(paths))  # (4, 96, n_frames)
    n_blocks = (X.shape[2] - AISFX.block) // AISFX.block_hop + 1
    blocks = X.unfold(2, AISFX.block, AISFX.block_hop).permute(0, 2, 1, 3).reshape(-1, AISFX.n_mels, AISFX.block)
    with torch.no_grad():
        mine = est.net_.module_.encoder.eval().backbone(blocks.transpose(1, 2)).reshape(4, n_blocks, -1).mean(1)
    assert_allclose(mine.numpy(), ref.transform(paths), rtol=1e-4, atol=1e-5)
