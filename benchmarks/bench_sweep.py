"""Time the report's grid search: no feature cache, Pipeline(memory=...), per-clip cache, and on Dask.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/bench_sweep.py [--max-epochs 3] [--n-splits 3] [--data DIR]
        [--ways no-cache memory cache dask]

The report's grid (VAE, VAE+BN, DenseAE, CNNAE x skip x L2: 7 candidates) goes through
``GridSearchCV(Pipeline([("features", LogMelTransformer()), ("model", ...)]),
scoring={"auc", "pauc"}, refit="pauc", cv=NormalTrainCV(n_splits))`` on the shared DCASE 2020
slider clips (75 normals + 1 anomaly; with ``--data``, any folder whose anomalous files have
"anomaly" in their name), or on 60 + 16 generated 10 s clips written as wav files when that
folder is absent. Each way starts from an empty cache folder, in one process, with
``n_jobs=1`` so the clips whose features are computed can be counted (at the feature backend).
Training is the same in all three (same seeds; the script checks the scores agree), so the
differences are the feature work. torch runs single-threaded (``--torch-threads``): on a
shared 2-core machine two threads stall at OpenMP barriers (a 0.2 s fit took 30 s).

``dask``: the per-clip-cache search again, from an empty cache, through joblib's Dask backend
(``with joblib.parallel_backend("dask"): GridSearchCV(..., n_jobs=2).fit``) on a
``distributed.LocalCluster`` of 2 worker processes with 1 thread each, started before the
timing (its start-up is printed separately), with Dask's ``MALLOC_TRIM_THRESHOLD_`` for the
workers unset (see ``--dask-malloc-trim``). Its clips are computed in the workers, so they
are counted as cache entries, not at the backend, and its CPU time is the client's plus the
workers'. The load average is printed beside every
figure: on a shared machine it moves wall time more than anything measured here.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zyy438-abnormal-listener" / "slider"


class Counter:
    """Clips through the feature backend and seconds spent in ``LogMelTransformer.transform``."""

    def __init__(self):
        from skasd import LogMelTransformer

        self.clips, self.seconds = 0, 0.0
        backend, transform = LogMelTransformer._log_mel, LogMelTransformer.transform
        counter = self

        def counting_backend(self, W):
            counter.clips += len(W)
            return backend(self, W)

        def timed_transform(self, X):
            t0 = time.perf_counter()
            try:
                return transform(self, X)
            finally:
                counter.seconds += time.perf_counter() - t0

        LogMelTransformer._log_mel, LogMelTransformer.transform = counting_backend, timed_transform

    def reset(self):
        self.clips, self.seconds = 0, 0.0


def clips(data, workdir):
    """``(paths, y, description)``: the clips under ``data``, or generated clips as wav files."""
    if data and Path(data).is_dir():
        paths = sorted(str(p) for ext in ("wav", "flac") for p in Path(data).rglob(f"*.{ext}"))
        if paths:
            y = np.array(["anomaly" in Path(p).name for p in paths], dtype=int)
            return np.array(paths), y, f"{len(paths)} clips under {data} ({y.sum()} anomalous)"
    import soundfile as sf

    from skasd.datasets import make_machine_sounds

    X, y = make_machine_sounds(n_normal=60, n_anomaly=16, duration=10.0, random_state=0, return_X_y=True)
    paths = []
    for i, w in enumerate(X):
        paths.append(os.path.join(workdir, f"clip_{i:03d}.wav"))
        sf.write(paths[-1], w, 16000)
    return np.array(paths), np.asarray(y), f"{len(paths)} generated 10 s clips ({int(np.sum(y))} anomalous)"


WAYS = {"no-cache": "no cache", "memory": "Pipeline(memory=...)", "cache": "per-clip cache",
        "dask": "per-clip cache, Dask 2 workers"}


def load_note():
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


@contextlib.contextmanager
def dask_cluster(start, args):
    """Yield the joblib backend context to time the search in (Dask's on a fresh 2-worker cluster)
    and a function that returns the CPU seconds the workers have used so far."""
    if not start:
        yield contextlib.nullcontext(), lambda: 0.0
        return
    import dask
    import joblib
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536; glibc then stops adapting its mmap
    # threshold and every torch tensor > 128 kB is mmap'ed and page-faulted anew: 2-3x the CPU
    # time per fit. --dask-malloc-trim keeps Dask's default to show the difference.
    trim = {} if args.dask_malloc_trim else {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    with dask.config.set(trim), LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                             dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("torch").set_num_threads(1))
        client.run(lambda: __import__("skasd").DenseAE)  # import skasd and torch in the workers
        print(f"Dask LocalCluster (2 processes x 1 thread) up in {time.perf_counter() - t0:.1f} s")
        yield joblib.parallel_backend("dask"), lambda: sum(client.run(time.process_time).values())


def search(paths, y, args, *, memory=None, cache=None, n_jobs=1):
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from skasd import CNNAE, VAE, DenseAE, LogMelTransformer
    from skasd.metrics import auc_scorer, pauc_scorer
    from skasd.model_selection import NormalTrainCV

    common = dict(max_epochs=args.max_epochs, random_state=0, device="cpu")
    grid = [
        {"model": [VAE(**common), VAE(batch_norm=True, **common), DenseAE(**common)]},
        {"model": [CNNAE(**common)], "model__skip": [False, True], "model__l2": [0.0, 0.002]},
    ]
    pipe = Pipeline([("features", LogMelTransformer(cache=cache)), ("model", CNNAE(**common))], memory=memory)
    gs = GridSearchCV(pipe, grid, scoring={"auc": auc_scorer, "pauc": pauc_scorer}, refit="pauc",
                      cv=NormalTrainCV(n_splits=args.n_splits, random_state=0), n_jobs=n_jobs)
    return gs.fit(paths, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=3, help="epochs per model (default 3)")
    parser.add_argument("--n-splits", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else None)
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS))
    parser.add_argument("--dask-malloc-trim", action="store_true",
                        help="keep Dask's default MALLOC_TRIM_THRESHOLD_=65536 in the workers")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.torch_threads)
    from skasd import DenseAE, LogMelTransformer

    counter = Counter()
    with tempfile.TemporaryDirectory() as work:
        paths, y, what = clips(args.data, work)
        print(f"{what}; {args.n_splits} folds, max_epochs={args.max_epochs}, torch threads {args.torch_threads}")
        DenseAE(max_epochs=1).fit(LogMelTransformer().transform(paths[:2]))  # warm-up: imports, kernels

        results = {}
        for way in args.ways:
            name = WAYS[way]
            kwargs = {"memory": os.path.join(work, "memory")} if way == "memory" else {}
            if way in ("cache", "dask"):
                kwargs["cache"] = os.path.join(work, way)
            with dask_cluster(way == "dask", args) as (backend, worker_cpu):
                counter.reset()
                load0 = load_note()
                t0, c0, w0 = time.perf_counter(), time.process_time(), worker_cpu()
                with backend:
                    gs = search(paths, y, args, n_jobs=2 if way == "dask" else 1, **kwargs)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0 + worker_cpu() - w0
            n = len(list(Path(kwargs["cache"]).rglob("*.npz"))) if way == "dask" else counter.clips
            results[name] = (n, counter.seconds, wall, cpu, gs)
            cpu_note = f"{cpu:6.1f} s CPU" + (" (client + workers)" if way == "dask" else "")
            print(f"{name:26s} clips computed {n:5d}  in transform {counter.seconds:5.1f} s  "
                  f"total {wall:6.1f} s wall, {cpu_note}  best "
                  f"{gs.best_params_['model'].__class__.__name__} pAUC {gs.best_score_:.3f}  "
                  f"({load0} before, {load_note()} after)")

        # Wall time depends on what else runs on the machine; CPU time of this process less so.
        for name, base_name in [(WAYS["memory"], WAYS["no-cache"]), (WAYS["cache"], WAYS["no-cache"]),
                                (WAYS["dask"], WAYS["cache"])]:
            if name not in results or base_name not in results:
                continue
            base, (n, s, wall, cpu, _) = results[base_name], results[name]
            cpu_note = f", CPU {base[3] / cpu:4.2f}x ({base[3] - cpu:+.1f} s)"
            print(f"{name:26s} vs {base_name}: clips computed {base[0] / max(n, 1):5.1f}x fewer, "
                  f"total wall {base[2] / wall:4.2f}x ({base[2] - wall:+.1f} s){cpu_note}")
        scores = [r[-1].cv_results_["mean_test_pauc"] for r in results.values()]
        print(f"same cv_results in all {len(scores)}:",
              all(np.allclose(scores[0], s, rtol=0, atol=1e-6) for s in scores))
        if WAYS["cache"] not in results:
            return 0

        # A later run on the warm cache: features of every clip, computed vs read back.
        cached, plain = LogMelTransformer(cache=os.path.join(work, "cache")), LogMelTransformer()
        times = {}
        for name, t in (("computed", plain), ("read from the cache", cached)):
            t0 = time.perf_counter()
            t.transform(paths)
            times[name] = time.perf_counter() - t0
        print(f"features of all {len(paths)} clips: computed (decode + log-mel) {times['computed']:.2f} s, "
              f"read from the cache {times['read from the cache']:.2f} s "
              f"({times['computed'] / times['read from the cache']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
