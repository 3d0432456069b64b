"""Per-clip feature cache (``cache=DIR`` of the log-mel/MFCC transformers).

Clips computed are counted by wrapping the backend (``_SpectralTransformer._log_mel``, the
base of both transformers), which every feature computation goes through, cached or not.
"""

import glob
import hashlib
import os
import pickle
import shutil
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from sklearn import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator

from skasd import AudioError, DenseAE, LogMelTransformer, MFCCTransformer
from skasd.features._cache import FeatureCache
from skasd.features._spectral import _SpectralTransformer
from skasd import FeatureStore
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_scorer, pauc_scorer
from skasd.model_selection import NormalTrainCV

SR = 16000


def _clip_id(w):
    return hashlib.sha1(np.ascontiguousarray(w).tobytes()).hexdigest()


@pytest.fixture
def computed(monkeypatch):
    """Batches passed to the feature backend, each a list of clip ids (waveform hashes)."""
    batches = []
    backend = _SpectralTransformer._log_mel

    def counting(self, W):
        batches.append([_clip_id(w) for w in W])
        return backend(self, W)

    monkeypatch.setattr(_SpectralTransformer, "_log_mel", counting)
    return batches


def _n(batches):
    return sum(len(b) for b in batches)


@pytest.fixture(scope="module")
def sounds():
    return make_machine_sounds(n_normal=9, n_anomaly=3, duration=1.0, random_state=0)


def _write(folder, W, lengths=None):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, w in enumerate(W):
        path = os.path.join(folder, f"clip_{i:02d}.wav")
        sf.write(path, w if lengths is None else w[: lengths[i]], SR, subtype="FLOAT")
        paths.append(path)
    return paths


def _entries(cache):
    return sorted(glob.glob(os.path.join(cache, "*", "*", "*.npz")))


def test_each_clip_computed_once_and_output_identical(tmp_path, computed, sounds):
    paths = _write(tmp_path / "wav", sounds.data[:6])
    expected = LogMelTransformer().transform(paths)
    computed.clear()
    t = LogMelTransformer(cache=tmp_path / "cache")
    np.testing.assert_array_equal(t.transform(paths[:4]), expected[:4])
    assert [len(b) for b in computed] == [4]
    # the misses only, in one batch; hits read back bit for bit
    np.testing.assert_array_equal(t.fit_transform(paths), expected)
    assert [len(b) for b in computed] == [4, 2]
    np.testing.assert_array_equal(
        t.transform(paths[::-1] + paths[:1]), np.concatenate([expected[::-1], expected[:1]])
    )
    assert _n(computed) == 6 and len(_entries(tmp_path / "cache")) == 6
    # a new process/run: a fresh transformer on the same folder reuses everything
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(t)).transform(paths), expected)
    assert _n(computed) == 6


@pytest.mark.parametrize("as_list", [False, True])
def test_waveforms_keyed_by_their_samples(tmp_path, computed, sounds, as_list):
    W = sounds.data[:5]
    expected = LogMelTransformer().transform(W)
    t = LogMelTransformer(cache=str(tmp_path))
    X = list(W) if as_list else W
    np.testing.assert_array_equal(t.transform(X), expected)
    np.testing.assert_array_equal(t.transform(X), expected)
    assert [len(b) for b in computed] == [5, 5]  # the uncached reference, 5 misses, then 5 hits
    changed = W.copy()
    changed[2, 100] += 1e-3  # one sample of one clip
    out = t.transform(changed.astype(np.float64))  # float64 input: same float32 samples, same keys
    assert computed[-1] == [_clip_id(changed[2])]
    np.testing.assert_array_equal(out, LogMelTransformer().transform(changed))


def test_repeated_clips_computed_once(tmp_path, computed, sounds):
    W = sounds.data[[0, 1, 0, 0, 1]]
    out = LogMelTransformer(cache=tmp_path).transform(W)
    assert [len(b) for b in computed] == [2]
    np.testing.assert_array_equal(out, LogMelTransformer().transform(W))


def test_mfcc_shares_the_log_mel_entries(tmp_path, computed, sounds):
    W = sounds.data[:3]
    LogMelTransformer(n_mels=40, cache=tmp_path).transform(W)
    for n_mfcc in (13, 20):
        out = MFCCTransformer(n_mfcc=n_mfcc, n_mels=40, cache=tmp_path).transform(W)
        np.testing.assert_array_equal(out, MFCCTransformer(n_mfcc=n_mfcc, n_mels=40).transform(W))
    assert [len(b) for b in computed] == [3, 3, 3]  # the two uncached references only


@pytest.mark.parametrize(
    "change, recomputed",
    [
        ({"n_mels": 64}, True),
        ({"hop_length": 256}, True),
        ({"power": 1.0}, True),
        ({"fmax": 7000.0}, True),
        ({"pad_mode": "reflect"}, True),
        ({"duration": 0.5}, True),
        ({"backend": "librosa"}, False),
        ({"n_jobs": 2, "verbose": True, "device": "cpu"}, False),
        ({"power": 2, "fmax": 8000, "fmin": 0}, False),  # same values, other types
        ({"center": False, "pad_mode": "reflect"}, True),
    ],
)
def test_parameters_in_the_key(tmp_path, computed, sounds, change, recomputed):
    W = sounds.data[:2]
    LogMelTransformer(cache=tmp_path).transform(W)
    t = LogMelTransformer(cache=tmp_path, **change)
    out = t.transform(W)
    assert _n(computed) == (4 if recomputed else 2)
    assert len(os.listdir(tmp_path)) == (2 if recomputed else 1)
    tol = 1e-3 if change.get("backend") == "librosa" else 0  # entries are reused across backends
    np.testing.assert_allclose(out, clone(t).set_params(cache=None).transform(W), rtol=0, atol=tol)


def test_center_false_ignores_pad_mode(tmp_path, computed, sounds):
    for pad_mode in ("constant", "reflect"):
        LogMelTransformer(center=False, pad_mode=pad_mode, cache=tmp_path).transform(sounds.data[:2])
    assert _n(computed) == 2


def test_modified_file_is_recomputed(tmp_path, computed, sounds):
    paths = _write(tmp_path / "wav", sounds.data[:3])
    t = LogMelTransformer(cache=tmp_path / "cache")
    before = t.transform(paths)
    st = os.stat(paths[1])
    with open(paths[1], "r+b") as f:  # rewrite in place: same size, same inode
        f.seek(st.st_size - 4000)
        f.write(np.zeros(1000, np.float32).tobytes())
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    after = t.transform(paths)
    assert [len(b) for b in computed] == [3, 1]
    assert not np.array_equal(after[1], before[1])
    np.testing.assert_array_equal(after, LogMelTransformer().transform(paths))
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])


def _damage(path, how):
    with open(path, "rb") as f:
        raw = f.read()
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "bit flip":
        raw = bytearray(raw)
        raw[len(raw) // 2] ^= 0x10
    elif how == "empty":
        raw = b""
    elif how == "not a zip":
        raw = b"\x93NUMPY" + raw[6:200]
    with open(path, "wb") as f:
        f.write(bytes(raw))


@pytest.mark.parametrize("how", ["truncated", "bit flip", "empty", "not a zip", "wrong shape", "foreign"])
def test_damaged_entry_recomputed_with_one_warning(tmp_path, computed, sounds, how):
    W = sounds.data[:3]
    t = LogMelTransformer(cache=tmp_path, duration=1.0)
    expected = t.transform(W)
    entries = _entries(tmp_path)
    victim = FeatureCache(tmp_path, t._cache_params()).entry(FeatureCache.waveform_key(W[1]))
    assert victim in entries
    if how == "wrong shape":
        with open(victim, "wb") as f:  # a valid entry of the right key, one frame short
            np.savez(f, features=expected[1][:, :-1], key=np.array(os.path.basename(victim)[:-4]))
    elif how == "foreign":
        shutil.copy(next(e for e in entries if e != victim), victim)
    else:
        _damage(victim, how)
    with pytest.warns(UserWarning, match="1 feature cache entry is corrupt") as record:
        out = t.transform(W)
    assert len(record) == 1 and victim in str(record[0].message) and "clip 1" in str(record[0].message)
    np.testing.assert_array_equal(out, expected)
    assert computed[-1] == [_clip_id(W[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # overwritten: no second warning
        np.testing.assert_array_equal(t.transform(W), expected)
    assert _n(computed) == 4


def test_concurrent_writers_never_expose_partial_entries(tmp_path, sounds):
    W = sounds.data
    expected = LogMelTransformer().transform(W)
    t = LogMelTransformer(cache=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda X: clone(t).transform(X), [W, W[::-1], W, W[::-1]] * 2))
    for out in outs[::2]:
        np.testing.assert_array_equal(out, expected)
    for out in outs[1::2]:
        np.testing.assert_array_equal(out, expected[::-1])
    assert len(_entries(tmp_path)) == len(W)
    assert not glob.glob(os.path.join(tmp_path, "*", "*", ".*.tmp"))


def test_errors_as_without_cache(tmp_path, sounds):
    paths = _write(tmp_path / "wav", sounds.data[:3], lengths=[SR, SR, SR // 2])
    t = LogMelTransformer(cache=tmp_path / "cache")
    t.transform(paths[:2])
    t.transform(paths[2:])
    for X in (paths, paths[::-1], paths[1:]):  # cached clips of unequal length
        with pytest.raises(AudioError, match="clips differ in length"):
            t.transform(X)
    np.testing.assert_array_equal(  # duration= fixes it, as without a cache
        t.set_params(duration=1.0).transform(paths), LogMelTransformer(duration=1.0).transform(paths))
    with pytest.raises(FileNotFoundError, match="No such audio file"):
        t.transform(paths[:1] + [str(tmp_path / "missing.wav")])
    with pytest.raises(AudioError, match="clip 1: NaN"):
        t.transform(np.stack([sounds.data[0], np.full(SR, np.nan, np.float32)]))
    with pytest.raises(ValueError, match="'cache' parameter of LogMelTransformer must be an instance of 'str', an instance of 'os.PathLike' or None"):
        LogMelTransformer(cache=3).fit(sounds.data[:1])


def test_unwritable_cache_warns_and_still_returns_features(tmp_path, monkeypatch, sounds):
    def refuse(self, key, features):
        raise PermissionError(13, "Permission denied", self.entry(key))

    monkeypatch.setattr(FeatureCache, "put", refuse)
    with pytest.warns(UserWarning, match="could not write 2 feature cache entries .*Permission denied"):
        out = LogMelTransformer(cache=tmp_path).transform(sounds.data[:2])
    np.testing.assert_array_equal(out, LogMelTransformer().transform(sounds.data[:2]))


@pytest.fixture
def one_torch_thread():
    """On a shared 2-core machine, 2 torch threads stall at OpenMP barriers (a 0.2 s fit took 30 s)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_grid_search_computes_each_clip_once(tmp_path, computed, one_torch_thread):
    X, y = make_machine_sounds(n_normal=12, n_anomaly=4, duration=1.0, random_state=0, return_X_y=True)
    paths = np.array(_write(tmp_path / "wav", X))
    grid = {"model__l2": [0.0, 0.01], "model__frames": [3, 5]}

    def search(cache):
        pipe = Pipeline([
            ("features", LogMelTransformer(n_mels=32, cache=cache)),
            ("model", DenseAE(max_epochs=2, batch_size=64, random_state=0)),
        ])
        gs = GridSearchCV(pipe, grid, scoring={"auc": auc_scorer, "pauc": pauc_scorer}, refit="pauc",
                          cv=NormalTrainCV(n_splits=3, random_state=0))
        return gs.fit(paths, y)

    cached = search(tmp_path / "cache")
    counts = Counter(c for batch in computed for c in batch)
    assert len(counts) == len(paths) and set(counts.values()) == {1}  # 4 candidates x 3 folds + refit
    computed.clear()
    plain = search(None)
    assert _n(computed) > 10 * len(paths)  # what the cache saved
    for key in ("mean_test_auc", "mean_test_pauc", "rank_test_pauc"):
        np.testing.assert_array_equal(cached.cv_results_[key], plain.cv_results_[key])
    np.testing.assert_array_equal(cached.decision_function(paths), plain.decision_function(paths))


def test_clone_pickle_and_estimator_checks(tmp_path, sounds):
    t = MFCCTransformer(n_mfcc=13, cache=tmp_path)
    assert clone(t).get_params() == t.get_params() and clone(t).cache == tmp_path
    W = sounds.data[:2]
    out = t.transform(W)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(t)).transform(W), out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tiny check data: "n_fft too large", silent clips
        check_estimator(
            LogMelTransformer(cache=str(tmp_path / "checks")),
            expected_failed_checks={
                "check_n_features_in": "stateless on clips of any length",
                "check_n_features_in_after_fitting": "stateless on clips of any length",
            },
        )
    assert _entries(tmp_path / "checks")  # the checks went through the cache


# ------------------------------------------------------------- lazy=True: FeatureStore
def test_lazy_store_reads_the_cached_features(tmp_path, computed, sounds):
    paths = _write(tmp_path / "wav", sounds.data[:6])
    expected = LogMelTransformer().transform(paths)
    computed.clear()
    store = LogMelTransformer(cache=tmp_path / "cache", lazy=True).transform(paths)
    assert isinstance(store, FeatureStore) and _n(computed) == 6
    assert (len(store), store.shape, store.ndim, store.dtype) == (6, expected.shape, 3, np.float32)
    assert store.nbytes == expected.nbytes
    for key in (0, -1, slice(1, 5, 2), slice(None), [4, 0, 4], np.array([-2, 1]), expected[:, 0, 0] > -1e9,
                np.arange(6) % 2 == 0, (2, 5), (slice(0, 3), Ellipsis, slice(0, 4)), ([1, 3], 0)):
        np.testing.assert_array_equal(store[key], expected[key])
    np.testing.assert_array_equal(np.asarray(store), expected)
    np.testing.assert_array_equal(store.subset([5, 2, 3]).subset([True, False, True])[:], expected[[5, 3]])
    for bad in (6, -7, [0, 6], np.ones(5, bool), [[0, 1]], [0.5]):
        with pytest.raises(IndexError):
            store[bad]
    # nothing recomputed by reading, by another lazy transform, or by the eager one
    pickled = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(pickled[:], expected)
    np.testing.assert_array_equal(LogMelTransformer(cache=tmp_path / "cache").transform(paths), expected)
    assert LogMelTransformer(cache=tmp_path / "cache", lazy=True).transform(paths).shape == expected.shape
    assert _n(computed) == 6
    assert len(pickle.dumps(store)) < 10_000  # keys and paths, no features


def test_lazy_fills_the_cache_in_bounded_chunks(tmp_path, computed):
    W = np.random.default_rng(0).uniform(-0.1, 0.1, size=(150, 2048)).astype(np.float32)
    store = LogMelTransformer(cache=tmp_path, lazy=True, n_mels=16).transform(W)
    assert [len(b) for b in computed] == [64, 64, 22]
    np.testing.assert_array_equal(store[:], LogMelTransformer(n_mels=16).transform(W))


def test_lazy_mfcc_applies_the_dct_on_read(tmp_path, computed, sounds):
    W = sounds.data[:4]
    store = MFCCTransformer(n_mfcc=13, n_mels=40, cache=tmp_path, lazy=True).transform(W)
    assert store.shape == (4, 13, 32)
    np.testing.assert_array_equal(store[1:3], MFCCTransformer(n_mfcc=13, n_mels=40).transform(W)[1:3])
    assert _n(computed) == 4 + 4  # the store's clips, then the uncached reference


def test_lazy_store_recomputes_entries_lost_after_transform(tmp_path, computed, sounds):
    paths = _write(tmp_path / "wav", sounds.data[:4])
    store = LogMelTransformer(cache=tmp_path / "cache", lazy=True).transform(paths)
    expected = LogMelTransformer().transform(paths)
    entries = _entries(tmp_path / "cache")
    os.remove(entries[0])
    _damage(entries[1], "bit flip")
    with pytest.warns(UserWarning, match=r"recomputing 2 clip\(s\) whose feature cache entries are missing or "
                      r"damaged: .*clip_0\d\.wav") as record:
        np.testing.assert_array_equal(store[:], expected)
    message = str(record[0].message)
    assert ".wav (missing)" in message and ".wav (unreadable (BadZipFile: Bad CRC-32" in message
    assert len(record) == 1 and [len(b) for b in computed] == [4, 4, 2]  # store, reference, the 2 lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # written back: no second warning
        np.testing.assert_array_equal(store[:], expected)


def test_lazy_errors(tmp_path, sounds):
    with pytest.raises(ValueError, match="lazy=True reads the features back from the feature cache: set cache"):
        LogMelTransformer(lazy=True).fit(sounds.data[:1])
    with pytest.raises(ValueError, match="'lazy' parameter of LogMelTransformer must be an instance of 'bool'"):
        LogMelTransformer(cache=tmp_path, lazy="yes").transform(sounds.data[:1])
    W = np.random.default_rng(0).uniform(-0.1, 0.1, size=(70, SR)).astype(np.float32)
    paths = _write(tmp_path / "wav", W, lengths=[SR] * 64 + [SR // 2] * 6)
    t = LogMelTransformer(cache=tmp_path / "cache", lazy=True)
    with pytest.raises(AudioError, match=r"clips differ in length: .*clip_64\.wav and the clips after it "
                       r"give 16 frames, earlier clips 32"):
        t.transform(paths)  # the second chunk of 64 clips is shorter than the first
    with pytest.raises(AudioError, match="clips differ in length"):
        t.transform(paths[60:])  # in one chunk: the loader's own error
    with pytest.raises(FileNotFoundError, match="No such audio file"):
        t.transform(paths[:1] + [str(tmp_path / "missing.wav")])
    assert t.set_params(duration=1.0).transform(paths).shape == (70, 128, 32)


def test_lazy_with_an_unwritable_cache_still_reads(tmp_path, monkeypatch, sounds):
    def refuse(self, key, features):
        raise PermissionError(13, "Permission denied", self.entry(key))

    monkeypatch.setattr(FeatureCache, "put", refuse)
    with pytest.warns(UserWarning, match="could not write 2 feature cache entries .*recomputed whenever read"):
        store = LogMelTransformer(cache=tmp_path, lazy=True).transform(sounds.data[:2])
    with pytest.warns(UserWarning, match=r"recomputing 2 clip\(s\)"):
        np.testing.assert_array_equal(store[:], LogMelTransformer().transform(sounds.data[:2]))
