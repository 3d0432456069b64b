"""Grid search and feature extraction on a Dask cluster (2 local worker processes)."""

import os

import joblib
import numpy as np
import pytest
import soundfile as sf
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skasd import dask_transform
from skasd import LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_scorer, pauc_scorer
from skasd.model_selection import NormalTrainCV
from skasd.models import DenseAE

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def client():
    environ = dict(os.environ)
    # Dask's default MALLOC_TRIM_THRESHOLD_=65536 in the workers makes glibc mmap every torch
    # tensor > 128 kB anew (2-3x the CPU time of a fit); unset it, as docs/scaling.rst advises.
    no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    try:
        with dask.config.set(no_trim), distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
            # Dask starts workers with OMP_NUM_THREADS=1, so torch runs single-threaded there as
            # in this process (conftest); set it explicitly too, in case a Dask config changes that.
            client.run(lambda: __import__("torch").set_num_threads(1))
            yield client
    finally:
        # The local nannies wrote OMP_NUM_THREADS, PYTHONHASHSEED, ... into this process's
        # environment; later tests' subprocesses must not inherit them.
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def sounds():
    return make_machine_sounds(n_normal=12, n_anomaly=4, duration=1.0, random_state=0, return_X_y=True)


def _worker_tasks(task_stream, name):
    return [t for t in task_stream.data if name in t["key"]]


def test_grid_search_on_dask_equals_local_run(client, sounds):
    X, y = sounds
    pipe = Pipeline([
        ("features", LogMelTransformer()),
        ("model", DenseAE(max_epochs=2, batch_size=64, device="cpu", random_state=0)),
    ])
    grid = {"model__frames": [3, 5], "model__lr": [1e-3, 1e-2]}

    def search(n_jobs):
        cv = NormalTrainCV(n_splits=2, random_state=0)
        return GridSearchCV(pipe, grid, scoring={"pauc": pauc_scorer, "auc": auc_scorer}, refit="pauc",
                            cv=cv, n_jobs=n_jobs)

    local = search(n_jobs=1).fit(X, y)
    with client.as_current(), distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        remote = search(n_jobs=2).fit(X, y)

    # The 4 candidates x 2 folds ran on the workers (joblib batches them into tasks).
    workers = {t["worker"] for t in tasks.data}
    assert tasks.data and workers <= set(client.scheduler_info()["workers"])
    for metric in ("pauc", "auc"):
        for key in ("split0_test", "split1_test", "mean_test", "rank_test"):
            key = f"{key}_{metric}"
            np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key], err_msg=key)
    # the candidates' AUCs differ, so equal results are not a coincidence of ties
    assert len(set(local.cv_results_["split0_test_auc"]) | set(local.cv_results_["split1_test_auc"])) > 2
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.score_samples(X), local.score_samples(X))


@pytest.fixture(scope="module")
def wav_paths(tmp_path_factory, sounds):
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for i, w in enumerate(sounds[0][:7]):
        paths.append(str(folder / f"clip_{i}.wav"))
        sf.write(paths[-1], w, 16000)
    return paths


def test_dask_transform_equals_local_transform(client, wav_paths, tmp_path):
    local = LogMelTransformer().transform(wav_paths)
    with distributed.get_task_stream(client) as tasks:
        remote = dask_transform(LogMelTransformer(), wav_paths, client=client, chunk_size=3)
    assert len(_worker_tasks(tasks, "_transform")) == 3  # 7 clips in chunks of 3, 3, 1
    assert remote.dtype == np.float32
    np.testing.assert_array_equal(remote, local)

    # The workers fill a shared feature cache; a local transform then reads it back.
    cache = tmp_path / "cache"
    dask_transform(LogMelTransformer(cache=cache), wav_paths, client=client, chunk_size=4)
    assert len(list(cache.rglob("*.npz"))) == len(wav_paths)
    np.testing.assert_array_equal(LogMelTransformer(cache=cache).transform(wav_paths), local)


def test_dask_transform_waveforms_and_default_client(client, sounds):
    X = sounds[0][:5]
    with client.as_current():
        np.testing.assert_array_equal(dask_transform(LogMelTransformer(), X, chunk_size=2),
                                      LogMelTransformer().transform(X))


def test_dask_transform_errors(client, wav_paths, tmp_path):
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(FileNotFoundError, match="No such audio file"):
        dask_transform(LogMelTransformer(), [*wav_paths[:2], missing], client=client, chunk_size=2)

    long_clip = str(tmp_path / "long.wav")
    sf.write(long_clip, np.zeros(32000, dtype=np.float32) + 0.01, 16000)
    with pytest.raises(ValueError, match="Set the transformer's duration"):
        dask_transform(LogMelTransformer(), [*wav_paths[:2], long_clip], client=client, chunk_size=2)
    # ... and with duration set, the same clips work
    out = dask_transform(LogMelTransformer(duration=1.0), [*wav_paths[:2], long_clip], client=client, chunk_size=2)
    assert out.shape == (3, 128, 32)

    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="chunk_size must be an integer"):
            dask_transform(LogMelTransformer(), wav_paths, client=client, chunk_size=bad)
    with pytest.raises(ValueError, match="X is empty"):
        dask_transform(LogMelTransformer(), [], client=client)


def test_dask_transform_without_client_says_how_to_connect(client, sounds):
    # The fixture's client is not the default one: outside client.as_current() there is none.
    with pytest.raises(ValueError, match="found no Dask client"):
        dask_transform(LogMelTransformer(), sounds[0][:2])
