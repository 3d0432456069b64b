"""Time the report's grid search three ways: no feature cache, Pipeline(memory=...), per-clip cache.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/bench_sweep.py [--max-epochs 3] [--n-splits 3] [--data DIR]

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
"""

import argparse
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


def search(paths, y, args, *, memory=None, cache=None):
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
                      cv=NormalTrainCV(n_splits=args.n_splits, random_state=0), n_jobs=1)
    return gs.fit(paths, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=3, help="epochs per model (default 3)")
    parser.add_argument("--n-splits", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else None)
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
        for name, kwargs in [
            ("no cache", {}),
            ("Pipeline(memory=...)", {"memory": os.path.join(work, "memory")}),
            ("per-clip cache", {"cache": os.path.join(work, "cache")}),
        ]:
            counter.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            gs = search(paths, y, args, **kwargs)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            results[name] = (counter.clips, counter.seconds, wall, cpu, gs)
            print(f"{name:22s} clips computed {counter.clips:5d}  in transform {counter.seconds:5.1f} s  "
                  f"total {wall:6.1f} s wall, {cpu:6.1f} s CPU  best "
                  f"{gs.best_params_['model'].__class__.__name__} pAUC {gs.best_score_:.3f}")

        # Wall time depends on what else runs on the machine; CPU time of this process less so.
        base = results["no cache"]
        for name in ("Pipeline(memory=...)", "per-clip cache"):
            n, s, wall, cpu, _ = results[name]
            print(f"{name:22s} vs no cache: clips computed {base[0] / n:5.1f}x fewer, transform time "
                  f"{base[1] / s:5.1f}x less ({base[1] - s:.1f} s), total wall {base[2] / wall:4.2f}x, "
                  f"CPU {base[3] / cpu:4.2f}x ({base[3] - cpu:+.1f} s)")
        scores = [r[-1].cv_results_["mean_test_pauc"] for r in results.values()]
        print("same cv_results in all three:", all(np.allclose(scores[0], s, rtol=0, atol=1e-6) for s in scores))

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
