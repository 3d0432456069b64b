"""Training and scoring from a FeatureStore (clips on disk) instead of an in-memory array."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skasd import LogMelTransformer
from skasd import FeatureStore
from skasd.datasets import make_machine_sounds
from skasd.metrics import pauc_scorer
from skasd.model_selection import NormalTrainCV
from skasd.models import CNNAE, VAE, DenseAE
from skasd.models._torch._datasets import _ClipStream

PARAMS = {DenseAE: {}, VAE: {}, CNNAE: {"patch_frames": 8, "patch_hop": 4}}


def tiny(cls, **params):
    return cls(**{"max_epochs": 2, "batch_size": 32, "random_state": 0, **PARAMS[cls], **params})


@pytest.fixture(scope="module")
def sounds():
    return make_machine_sounds(n_normal=10, n_anomaly=4, duration=0.5, random_state=0)


@pytest.fixture
def store(tmp_path, sounds):
    return LogMelTransformer(cache=tmp_path, lazy=True, n_mels=32).transform(sounds.data)


@pytest.mark.parametrize("cls", [DenseAE, VAE, CNNAE])
def test_one_buffer_equals_in_memory_training(cls, store):
    """With every training clip in one buffer the batches, and so the model, are those of
    the array path: identical scores, threshold and embeddings."""
    X = np.asarray(store)
    mem = tiny(cls, validation_fraction=0.25).fit(X)
    lazy = tiny(cls, validation_fraction=0.25).fit(store)
    assert lazy.net_.history[-1, "valid_loss"] == mem.net_.history[-1, "valid_loss"]
    assert_array_equal(lazy.score_samples(store), mem.score_samples(X))
    assert_array_equal(lazy.score_samples(X), mem.score_samples(X))
    assert_array_equal(lazy.transform(store), mem.transform(X))
    assert lazy.offset_ == mem.offset_ and (lazy.loc_, lazy.scale_) == (mem.loc_, mem.scale_)
    assert lazy.n_features_in_ == 32


def test_small_buffer_reads_at_most_buffer_clips(store, monkeypatch):
    reads = []
    read = FeatureStore._read

    def counting(self, rows):
        reads.append(len(rows))
        return read(self, rows)

    monkeypatch.setattr(FeatureStore, "_read", counting)
    est = tiny(DenseAE, stream_buffer=3, max_epochs=3).fit(store)
    assert max(reads) == 3 and sum(reads) > 3 * len(store)  # every epoch reads every clip
    other = tiny(DenseAE, stream_buffer=3, max_epochs=3, random_state=1).fit(store)
    mem = tiny(DenseAE, max_epochs=3).fit(np.asarray(store))
    s = est.score_samples(store)
    assert np.all(np.isfinite(s)) and not np.allclose(s, mem.score_samples(store), rtol=1e-6)
    # not the same model as another seed, but as close to the array-trained one as seeds are
    assert np.corrcoef(s, mem.score_samples(store))[0, 1] > 0.9
    assert not np.allclose(s, other.score_samples(store), rtol=1e-6)
    assert_array_equal(tiny(DenseAE, stream_buffer=3, max_epochs=3).fit(store).score_samples(store), s)


def test_clip_stream_yields_every_window_once_buffer_by_buffer():
    """Clip c's frame t holds 1000 c + t, so each window tells where it comes from."""
    n_clips, n_frames, width, buffer = 7, 12, 5, 3
    X = (1000 * np.arange(n_clips)[:, None, None] + np.arange(n_frames) + np.zeros((1, 2, 1))).astype(np.float32)

    class ArrayStore:  # what _ClipStream needs of a FeatureStore
        shape = X.shape

        def __len__(self):
            return n_clips

        def __getitem__(self, i):
            return X[i]

    n_win = n_frames - width + 1
    stream = _ClipStream(ArrayStore(), width, 1, buffer=buffer, clips=np.arange(1, n_clips))
    torch.manual_seed(0)
    batches = list(stream.batches(10, shuffle=True, drop_last=False))
    assert [len(w) for w, _ in batches] == [10] * 4 + [8]  # 6 clips x 8 windows
    assert len(stream.batches(10, True, False)) == len(batches)
    windows = torch.cat([w for w, _ in batches])[:, :, 0]  # (n, width) first mel band
    assert torch.all(windows[:, 1:] - windows[:, :-1] == 1)  # consecutive frames of one clip
    clip, start = (windows[:, 0] // 1000).long(), (windows[:, 0] % 1000).long()
    assert sorted(zip(clip.tolist(), start.tolist())) == [(c, t) for c in range(1, n_clips) for t in range(n_win)]
    # windows come buffer by buffer: each run of 3 clips' windows holds exactly 3 clips
    segments = clip.split(buffer * n_win)
    assert [len(set(seg.tolist())) for seg in segments] == [3, 3]
    assert clip.tolist() != sorted(clip.tolist())  # shuffled
    torch.manual_seed(0)
    again = torch.cat([w for w, _ in stream.batches(10, True, False)])[:, :, 0]
    assert torch.equal(again, windows)
    plain = torch.cat([w for w, _ in stream.batches(8, False, False)])[:, 0, 0]
    assert plain.tolist() == [1000 * c + t for c in range(1, n_clips) for t in range(n_win)]
    assert [len(w) for w, _ in stream.batches(10, True, True)] == [10] * 4  # drop_last


def test_labels_drop_anomalies_from_a_store(store, sounds):
    y = sounds.target
    mem = tiny(DenseAE).fit(np.asarray(store), y)
    lazy = tiny(DenseAE).fit(store, y)
    assert_array_equal(lazy.score_samples(store), mem.score_samples(np.asarray(store)))
    assert len(lazy.net_.train_split.train_clips) + len(lazy.net_.train_split.valid_clips) == np.sum(y == 0)


def test_pipeline_and_grid_search_with_lazy_features(tmp_path, sounds):
    """Each fold's LogMelTransformer(lazy=True) hands the detector a store; results equal
    the eager pipeline's (one buffer holds every clip)."""
    X, y = sounds.data, sounds.target
    grid = {"denseae__frames": [3, 5]}

    def search(lazy):
        features = LogMelTransformer(n_mels=32, cache=tmp_path / "cache", lazy=lazy)
        pipe = make_pipeline(features, DenseAE(max_epochs=1, batch_size=64, random_state=0))
        return GridSearchCV(pipe, grid, scoring=pauc_scorer, cv=NormalTrainCV(n_splits=2, random_state=0)).fit(X, y)

    eager, lazy = search(False), search(True)
    assert_array_equal(lazy.cv_results_["mean_test_score"], eager.cv_results_["mean_test_score"])
    assert_array_equal(lazy.score_samples(X), eager.score_samples(X))
    assert isinstance(lazy.best_estimator_[0].transform(X), FeatureStore)


def test_store_input_errors(store, tmp_path):
    est = tiny(DenseAE).fit(store)
    small = LogMelTransformer(cache=tmp_path, lazy=True, n_mels=16).transform(np.zeros((2, 8000)) + 0.01)
    with pytest.raises(ValueError, match="X has 16 features, but DenseAE is expecting 32"):
        est.score_samples(small)
    with pytest.raises(ValueError, match=r"at least 20 frames.*n_frames=16"):
        tiny(CNNAE, patch_frames=20).fit(small)
    # a tampered entry holding NaN (valid key, shape and CRC): refused, never a NaN score
    cache = store._cache
    key = store._keys[3]
    bad = store[3].copy()
    bad[0, 0] = np.nan
    cache.put(key, bad)
    with pytest.raises(ValueError, match=r"NaN or infinity: clip\(s\) \[3\]"):
        est.score_samples(store)
    with pytest.raises(ValueError, match="NaN or infinity"):
        tiny(DenseAE).fit(store)
