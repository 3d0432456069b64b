"""ClassifierEmbedding: sklearn's checks, the heads, crops/mixup/pseudo classes, metadata
routing in a Pipeline and GridSearchCV, seeding, persistence (also the net rebuilt by
``_make_net``) and input errors."""

import math
import pickle

import numpy as np
import pytest
import sklearn
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import validate_data

from skasd.metrics import auc_scorer
from skasd.model_selection import NormalTrainCV
from skasd.models import DenseAE
from skasd.models import ClassifierEmbedding
from skasd.models._torch._embedding_modules import _ADACOS_SCALE_RANGE, _ARC_MARGIN, _ARC_SCALE, _N_SUBCLUSTERS
from skasd.models._torch._datasets import _CropDataset
from skasd.models._torch._embedding_modules import _AdaCosHead, _ArcFaceHead

N_MELS, N_FRAMES = 16, 40


def tiny(**params):
    """The real network, narrow and for few epochs, for fast tests."""
    defaults = dict(embed_dim=8, channels=(8, 16), patch_frames=16, patch_hop=8, max_epochs=3, batch_size=16)
    return ClassifierEmbedding(**{**defaults, "random_state": 0, **params})


@pytest.fixture(scope="module")
def data():
    """12 clips of 3 'machines' (4 each): each its own spectrum, plus noise; labels."""
    rng = np.random.default_rng(0)
    spectra = rng.normal(size=(3, N_MELS, 1)) * 4 - 40
    X = np.concatenate([s + rng.normal(size=(4, N_MELS, N_FRAMES)) for s in spectra]).astype(np.float32)
    return X, np.repeat(["id_00", "id_02", "id_04"], 4)


# ----------------------------------------------------------------- sklearn's checks
class _EmbeddingOn2D(ClassifierEmbedding):
    """Reads a 2-D row of n_features as a one-frame clip of n_features mel bins, only so
    that sklearn's checks (which feed 2-D data) exercise the real fit and transform."""

    def _validate_input(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float32)
        return super()._validate_input(X[:, :, None], reset=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


_BATCH_ROUNDING = (
    "float32 network on 2-D input, whose rows (one item each) are scored batch_size at a time "
    "(clips of 3-D input go one at a time): BLAS kernels depend on the batch size, so "
    "the embeddings of a sub-batch differ from the full batch in the last bits (~1e-6 relative) > the check's 1e-7"
)


@parametrize_with_checks(
    [_EmbeddingOn2D(embed_dim=4, channels=(4,), patch_frames=1, patch_hop=1, pseudo_shifts=(), max_epochs=2,
                    random_state=0)],
    expected_failed_checks=lambda est: {"check_methods_subset_invariance": _BATCH_ROUNDING},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------- behaviour
def test_transform_one_unit_embedding_per_clip(data):
    X, ids = data
    est = tiny().fit(X, ids)
    Z = est.transform(X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float64  # mean and std of embed_dim=8
    assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-6)
    # each half (mean, standard deviation) normalised alike, then the whole
    assert_allclose(np.linalg.norm(Z[:, :8], axis=1), np.sqrt(0.5), rtol=1e-6)
    assert_array_equal(est.classes_, ["id_00", "id_02", "id_04"])
    assert est.n_features_in_ == N_MELS
    names = est.get_feature_names_out()
    assert list(names) == [f"classifierembedding{i}" for i in range(16)]
    df = clone(est).set_output(transform="pandas").fit(X, ids).transform(X)
    assert list(df.columns) == list(names)
    assert_allclose(df.to_numpy(), Z, rtol=1e-6)
    raw = tiny(normalize=False, pooling="mean").fit(X, ids).transform(X)
    assert raw.shape == (len(X), 8) and not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    mean = tiny(pooling="mean").fit(X, ids).transform(X)
    assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), mean, rtol=1e-5)
    assert_allclose(mean, Z[:, :8] / np.sqrt(0.5), rtol=1e-5)  # the same network


def test_transform_pools_patch_embeddings(data):
    """Patches every patch_hop frames, cut by plain slicing, embedded one by one; their
    mean, then their standard deviation."""
    X, ids = data
    est = tiny(normalize=False).fit(X, ids)
    encoder = est.net_.module_.encoder.eval()
    expected = []
    for clip in X:
        # the default pseudo_shifts (-1, 1): the network sees bands 1 .. n_mels - 2
        patches = np.stack([clip[1:-1, t : t + 16] for t in range(0, N_FRAMES - 16 + 1, 8)])
        with torch.no_grad():
            z = encoder(torch.from_numpy((patches - est.loc_) / est.scale_).float())
        expected.append(np.concatenate([z.mean(0).numpy(), z.std(0, correction=0).numpy()]))
    assert_allclose(est.transform(X), expected, rtol=1e-4, atol=1e-5)
    assert_allclose(est.set_params(pooling="mean").transform(X), np.array(expected)[:, :8], rtol=1e-4, atol=1e-5)
    # a clip of one patch: zero standard deviation, and still a unit embedding
    one = est.set_params(pooling="mean_std", normalize=True).transform(X[:, :, :16])
    assert_array_equal(one[:, 8:], 0.0)
    assert_allclose(np.linalg.norm(one, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("loss", ["softmax", "arcface", "adacos", "subcluster_adacos"])
def test_every_head_learns_the_classes(loss):
    """Held-out clips land nearest to the training clips of their own class, and the
    training loss falls."""
    rng = np.random.default_rng(1)
    spectra = rng.normal(size=(3, N_MELS, 1)) * 4 - 40
    X = np.concatenate([s + rng.normal(size=(8, N_MELS, N_FRAMES)) for s in spectra]).astype(np.float32)
    ids = np.repeat([0, 1, 2], 8)
    train = np.tile(np.arange(8) < 6, 3)
    est = tiny(loss=loss, max_epochs=8).fit(X[train], ids[train])
    losses = est.net_.history[:, "train_loss"]
    assert losses[-1] < losses[0]
    Z = est.transform(X)
    nearest = np.argmax(Z[~train] @ Z[train].T, axis=1)
    assert_array_equal(ids[train][nearest], ids[~train])


def test_arcface_logits():
    head = _ArcFaceHead(embed_dim=4, n_classes=3)
    z = torch.randn(5, 4)
    target = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1]), 3).float()
    cos = head.cosines(z)
    logits = head(z, target)
    theta = torch.acos(cos)
    expected = torch.where(target.bool(), torch.cos(theta + _ARC_MARGIN), cos) * _ARC_SCALE
    safe = (theta + _ARC_MARGIN < math.pi) | ~target.bool()
    assert_allclose(logits[safe].detach(), expected[safe].detach(), rtol=1e-4, atol=1e-4)
    assert_allclose(head(z, None).detach(), _ARC_SCALE * cos.detach(), rtol=1e-6)
    # soft (mixup) target: the weighted mix of the two
    soft = 0.3 * target + 0.7 * target.roll(1, 0)
    margin_everywhere = head(z, torch.ones_like(target))
    expected = soft * margin_everywhere + (1 - soft) * _ARC_SCALE * cos
    assert_allclose(head(z, soft).detach(), expected.detach(), rtol=1e-4, atol=1e-4)


def test_adacos_scale_adapts_and_subclusters_pool():
    torch.manual_seed(0)
    head = _AdaCosHead(embed_dim=4, n_classes=3, n_sub=_N_SUBCLUSTERS)
    assert head.centres.shape == (3 * _N_SUBCLUSTERS, 4)
    s0 = head.scale.item()
    assert s0 == pytest.approx(math.sqrt(2) * math.log(3 * _N_SUBCLUSTERS - 1))
    z = torch.randn(6, 4)
    target = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    head.eval()
    logits = head(z, target)  # no update in eval mode
    assert head.scale.item() == s0
    cos = head.cosines(z).view(6, 3, _N_SUBCLUSTERS)
    assert_allclose(logits.detach(), torch.logsumexp(s0 * cos, 2).detach(), rtol=1e-5)
    head.train()
    head(z, target)
    cos = cos.detach()
    b_avg = ((1 - target[:, :, None]) * torch.exp(s0 * cos)).sum((1, 2)).mean()  # the paper's formula
    theta_med = torch.acos((target[:, :, None] * cos.max(2, keepdim=True).values).sum((1, 2))).median()
    expected = torch.log(b_avg) / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
    assert head.scale.item() == pytest.approx(expected.item(), rel=1e-4)
    # a batch whose non-target centres are far closer than the target one: bounded scale
    head.scale.fill_(60.0)
    head(z, 1 - target)
    assert _ADACOS_SCALE_RANGE[0] <= head.scale.item() <= _ADACOS_SCALE_RANGE[1]


def test_crop_dataset_crops_shifts_and_mixup():
    """Each crop is a slice of its clip at the band of its pseudo class; targets are
    class * n_bands + band; mixup mixes crops and targets with one weight."""
    n_clips = 3
    X = torch.arange(n_clips * 10 * 30, dtype=torch.float32).reshape(n_clips, 10, 30)
    bands = torch.tensor([[2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]])
    codes = torch.tensor([1, 0, 1])
    ds = _CropDataset(X, codes, 2, width=8, loc=1.0, scale=2.0, mixup=0.0, bands=bands)
    assert len(ds) == n_clips * 3  # 3 non-overlapping crops of 8 frames fit in 30
    torch.manual_seed(0)
    batch, target = ds.__getitems__(list(range(len(ds))))
    assert batch["target"] is target and batch["x"].shape == (9, 6, 8)
    for i, (x, t) in enumerate(zip(batch["x"], target)):
        clip = i // 3
        raw = x.numpy() * 2.0 + 1.0
        band = int(np.argmax(t.numpy())) % 3
        assert int(np.argmax(t.numpy())) // 3 == codes[clip]
        start = int(raw[0, 0] - X[clip, bands[band, 0], 0].item())
        assert_allclose(raw, X[clip][bands[band]][:, start : start + 8].numpy())
    assert len(set(np.argmax(target.numpy(), 1) % 3)) > 1  # the bands are drawn at random
    mixed = _CropDataset(X, codes, 2, width=8, loc=0.0, scale=1.0, mixup=0.4, bands=bands[:1])
    torch.manual_seed(1)
    batch, target = mixed.__getitems__(list(range(9)))
    assert_allclose(target.sum(1).numpy(), 1.0, rtol=1e-6)
    assert ((target > 0) & (target < 1)).any()


def test_pseudo_shifts_train_a_single_class(data):
    X, _ = data
    one = ["id_00"] * len(X)
    with pytest.raises(ValueError, match="nothing to classify: all 12 training clips carry one class, 'id_00'.*CNNAE"):
        tiny(pseudo_shifts=()).fit(X, one)
    assert tiny().fit(X, one).net_.module_.head.centres.shape[0] == 3 * _N_SUBCLUSTERS  # default (-1, 1)
    est = tiny(pseudo_shifts=(-2, 2), loss="arcface").fit(X, one)
    module = est.net_.module_
    assert module.head.centres.shape[0] == 3  # the class and its two shifted copies
    # the network sees 16 - 2 * 2 = 12 bands: 6 after the stem, 3 after the second stage
    assert module.encoder.project.in_features == 2 * 16 * 3
    Z = est.transform(X)
    assert Z.shape == (12, 16) and np.all(np.isfinite(Z))
    # only the centre band is embedded: the two outer bins on each side do not matter
    edited = X.copy()
    edited[:, [0, 1, -2, -1]] += 30
    assert_allclose(est.transform(edited), Z, rtol=1e-6)
    with pytest.raises(ValueError, match="pseudo_shifts=.*leave no mel band of the 16"):
        tiny(pseudo_shifts=(8,)).fit(X, one)
    with pytest.raises(ValueError, match="distinct non-zero ints"):
        tiny(pseudo_shifts=(0, 1)).fit(X, one)


# ---------------------------------------------------------- labels and metadata
def test_machine_id_with_anomaly_labels_trains_on_normal_clips(data):
    X, ids = data
    y = np.array([0, 0, 0, 1] * 3)
    ref = tiny().fit(X[y == 0], ids[y == 0]).transform(X)
    assert_allclose(tiny().fit(X, y, machine_id=ids).transform(X), ref, rtol=1e-6)
    strings = ["normal", "normal", "normal", "anomaly"] * 3
    assert_allclose(tiny().fit(X, strings, machine_id=ids).transform(X), ref, rtol=1e-6)
    # a y that is not an anomaly labelling is ignored when machine_id is given
    all_clips = tiny().fit(X, ids).transform(X)
    assert_allclose(tiny().fit(X, np.arange(12) % 5, machine_id=ids).transform(X), all_clips, rtol=1e-6)
    with pytest.raises(ValueError, match="machine_id must hold one label per clip \\(12\\)"):
        tiny().fit(X, machine_id=ids[:5])
    with pytest.raises(ValueError, match="call fit\\(X, y\\).*machine_id"):
        tiny().fit(X)


def test_metadata_routing_in_pipeline_and_grid_search(data):
    """machine_id reaches the embedding through the Pipeline; GridSearchCV scores with
    anomaly labels over NormalTrainCV folds; the refit embedding knows the IDs."""
    X, ids = data
    rng = np.random.default_rng(2)
    X_anom = X[[0, 4, 8]] + rng.normal(scale=3.0, size=(3, N_MELS, N_FRAMES)).astype(np.float32)
    X_all, ids_all = np.concatenate([X, X_anom]), np.concatenate([ids, ids[[0, 4, 8]]])
    y = np.r_[np.zeros(12, int), np.ones(3, int)]
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(tiny().set_fit_request(machine_id=True), DenseAE(max_epochs=2, random_state=0))
        pipe.fit(X_all, y, machine_id=ids_all)
        assert_array_equal(pipe[0].classes_, ["id_00", "id_02", "id_04"])
        assert_allclose(pipe[0].transform(X), tiny().fit(X, ids).transform(X), rtol=1e-6)
        search = GridSearchCV(
            pipe, {"classifierembedding__embed_dim": [4, 8]}, scoring=auc_scorer, cv=NormalTrainCV(n_splits=2),
            error_score="raise",
        )
        search.fit(X_all, y, machine_id=ids_all)
    assert set(search.cv_results_["param_classifierembedding__embed_dim"]) == {4, 8}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert_array_equal(search.best_estimator_[0].classes_, ["id_00", "id_02", "id_04"])


# ---------------------------------------------------------- seeding and persistence
def test_same_seed_same_embedding(data):
    X, ids = data
    before = torch.random.get_rng_state()
    Z = tiny(random_state=3, mixup=0.5).fit(X, ids).transform(X)
    assert torch.equal(torch.random.get_rng_state(), before), "fit changed torch's global RNG"
    assert_allclose(tiny(random_state=3, mixup=0.5).fit(X, ids).transform(X), Z, rtol=1e-6)
    assert not np.allclose(tiny(random_state=4, mixup=0.5).fit(X, ids).transform(X), Z, rtol=1e-4)


def test_pickle_and_rebuild_from_weights(data):
    """pickle round trip; _make_net rebuilds the net that a saved state_dict loads into."""
    X, ids = data
    est = tiny(loss="subcluster_adacos").fit(X, ids)
    Z = est.transform(X)
    assert_array_equal(pickle.loads(pickle.dumps(est)).transform(X), Z)
    state = {k: v.clone() for k, v in est.net_.module_.state_dict().items()}
    rebuilt = clone(est)
    rebuilt.n_features_in_, rebuilt.classes_, rebuilt.loc_, rebuilt.scale_ = N_MELS, est.classes_, est.loc_, est.scale_
    rebuilt._n_features_out = est.embed_dim
    net = rebuilt._make_net("cpu").initialize()
    net.module_.load_state_dict(state)  # adacos scale is a buffer: saved with the weights
    rebuilt.net_ = net
    assert_array_equal(rebuilt.transform(X), Z)


def test_device_auto_is_cpu_without_cuda(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tiny(max_epochs=1).fit(*data).net_.device == "cpu"


# -------------------------------------------------------------------------- errors
def test_unfitted_error_names_the_estimator(data):
    with pytest.raises(NotFittedError, match="ClassifierEmbedding"):
        ClassifierEmbedding().transform(data[0])


def test_bad_input_errors(data):
    X, ids = data
    bad = X.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiny().fit(bad, ids)
    with pytest.raises(ValueError, match=r"3-D array \(n_clips, n_mels, n_frames\).*got 2-D"):
        tiny().fit(X[:, :, 0], ids)
    with pytest.raises(ValueError, match=r"got 4-D"):
        tiny().fit(X[..., None], ids)
    with pytest.raises(ValueError, match="at least patch_frames=16 frames; got n_frames=15"):
        tiny().fit(X[:, :, :15], ids)
    with pytest.raises(ValueError, match="y must hold one label per clip"):
        tiny().fit(X, ids[:3])
    with pytest.raises(ValueError, match="channels must be a non-empty tuple of positive ints"):
        tiny(channels=(8, 0)).fit(X, ids)
    est = tiny().fit(X, ids)
    with pytest.raises(ValueError, match="X has 15 features, but ClassifierEmbedding is expecting 16"):
        est.transform(X[:, :15])
    with pytest.raises(ValueError, match="NaN"):
        est.transform(np.full_like(X, np.nan))
    with pytest.raises(ValueError, match="n_frames=10"):
        est.transform(X[:, :, :10])


def test_nonfinite_loss_stops_with_clear_error(data):
    est = tiny(lr=1e30, max_epochs=10, loss="softmax")
    with pytest.raises(FloatingPointError, match=r"ClassifierEmbedding: the training loss became (inf|nan)"):
        est.fit(*data)
    with pytest.raises(NotFittedError):
        est.transform(data[0])


# ------------------------------------------------- the shared torch base (issue 15)
def test_feature_store_streams_like_the_array(data, tmp_path):
    """A FeatureStore trains as the array does when its clips fit in one buffer (same seed, same
    crops and mixup), and several buffers train too; transform reads it chunk by chunk."""
    from skasd.features._stream import FeatureStore

    X, ids = data
    store = _store_of(X, tmp_path)
    assert isinstance(store, FeatureStore)
    for params in ({}, {"mixup": 0.4}, {"validation_fraction": 0.25}):
        on_array = tiny(**params).fit(X, ids)
        streamed = tiny(**params).fit(store, ids)
        assert_array_equal(streamed.transform(store), on_array.transform(X))
    buffered = tiny(mixup=0.4, stream_buffer=5, validation_fraction=0.25).fit(store, ids)
    assert buffered.transform(store).shape == (12, 16) and len(buffered.net_.history) == 3


def _store_of(X, tmp_path):
    """A FeatureStore holding exactly ``X`` (the cache entries are written directly)."""
    from skasd import LogMelTransformer

    W = np.random.default_rng(0).uniform(-0.1, 0.1, size=(len(X), 512 * (X.shape[2] - 1))).astype(np.float32)
    t = LogMelTransformer(n_mels=X.shape[1], cache=tmp_path, lazy=True)
    store = t.transform(W)
    for key, clip in zip(store._keys, X):
        store._cache.put(key, clip)
    assert_array_equal(store[:], X)
    return store


def test_validation_split_and_early_stopping(data):
    X, ids = data
    est = tiny(validation_fraction=0.25, max_epochs=30, early_stopping=2, lr=1e-2).fit(X, ids)
    history = est.net_.history
    assert "valid_loss" in history[-1] and len(history) < 30
    with pytest.raises(ValueError, match="validation_fraction"):
        tiny(validation_fraction=1.0).fit(X, ids)


def test_checkpoint_resumes_to_the_uninterrupted_model(data, tmp_path):
    X, ids = data
    full = tiny(max_epochs=4).fit(X, ids).transform(X)
    tiny(max_epochs=2, checkpoint=tmp_path).fit(X, ids)
    resumed = tiny(max_epochs=4, checkpoint=tmp_path).fit(X, ids)
    assert len(resumed.net_.history) == 4
    assert_allclose(resumed.transform(X), full, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="belongs to another run.*labels_sha256"):
        tiny(max_epochs=4, checkpoint=tmp_path).fit(X, ids[::-1])


def test_accelerate_trains_as_the_plain_net(data):
    accelerate = pytest.importorskip("accelerate")
    X, ids = data
    est = tiny(accelerator=accelerate.Accelerator(cpu=True)).fit(X, ids)
    assert est.net_.device == "cpu"
    assert_allclose(est.transform(X), tiny().fit(X, ids).transform(X), rtol=1e-5, atol=1e-6)


def test_failed_refit_leaves_no_fitted_model(data):
    """A refit that fails in training leaves neither the old net_ nor new classes_ behind."""
    from skorch.callbacks import Callback

    class Fail(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise RuntimeError("stop here")

    X, ids = data
    est = tiny().fit(X[:8], ids[:8])
    assert len(est.classes_) == 2
    with pytest.raises(RuntimeError, match="stop here"):
        est.set_params(callbacks=[Fail()]).fit(X, ids)
    for attr in ("net_", "classes_", "loc_", "scale_", "n_features_in_"):
        assert not hasattr(est, attr), attr
    with pytest.raises(NotFittedError):
        est.transform(X)
