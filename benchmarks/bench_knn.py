"""k-NN detector fit + score time and peak memory on many training embeddings, against a
naive full pairwise-distance matrix.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_knn.py [--n-train 20000] [--n-test 2000] [--dim 128]
        [--k 1] [--metric cosine] [--methods knn naive]

Data: random float32 "embeddings" (standard normal, ``dim`` columns), ``n_train`` normal
training clips and ``n_test`` test clips; the cost does not depend on the content. DCASE
2020 has ~3000-6000 training clips per machine type, a multi-type or DCASE 2022+ pool
(7 types x 6 sections x 1000 clips) tens of thousands.

Methods, each in a fresh process so that its peak memory is its own:

- ``knn``: ``KNNDetector(n_neighbors=k, metric=...).fit(train)`` (leave-one-out training
  scores for the threshold) then ``anomaly_score(test)``. sklearn's ``NearestNeighbors``
  searches in chunks of ``sklearn.get_config()["working_memory"]`` MiB (1024 by default).
- ``naive``: the same scores from full matrices, ``pairwise_distances(train)`` (n_train^2,
  diagonal set to inf for leave-one-out) and ``pairwise_distances(test, train)``, k smallest
  by ``np.partition``.

Reported: wall time of fit + score, process CPU time, and peak resident memory above the
process's size just before (data loaded), from ``getrusage``; the ratio naive / knn of both.
The scores of the two methods are checked to agree (rtol 1e-6) on the test clips.
"""

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np


def _data(n_train, n_test, dim):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n_train, dim), dtype=np.float32),
            rng.standard_normal((n_test, dim), dtype=np.float32))


def _naive(train, test, k, metric):
    from sklearn.metrics import pairwise_distances

    D = pairwise_distances(train, metric=metric)
    np.fill_diagonal(D, np.inf)
    train_scores = np.partition(D, k - 1, axis=1)[:, :k].mean(axis=1)
    del D
    D = pairwise_distances(test, train, metric=metric)
    return train_scores, np.partition(D, k - 1, axis=1)[:, :k].mean(axis=1)


def _knn(train, test, k, metric):
    from skasd.models import KNNDetector

    det = KNNDetector(n_neighbors=k, metric=metric).fit(train)
    return det.offset_, det.anomaly_score(test)


def _run(method, n_train, n_test, dim, k, metric, queue):
    train, test = _data(n_train, n_test, dim)
    if method == "knn":
        from skasd.models import KNNDetector  # noqa: F401  (imports outside the timing)
    else:
        import sklearn.metrics  # noqa: F401
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0, t0 = time.process_time(), time.perf_counter()
    _, scores = (_knn if method == "knn" else _naive)(train, test, k, metric)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    queue.put((method, wall, cpu, peak, rss0, scores))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--metric", default="cosine")
    parser.add_argument("--methods", nargs="+", default=["knn", "naive"], choices=["knn", "naive"])
    args = parser.parse_args(argv)
    naive_gib = 8 * args.n_train * args.n_train / 2**30
    print(f"{args.n_train} training x {args.n_test} test embeddings of dim {args.dim} (float32), "
          f"k={args.k}, metric={args.metric}; the naive training matrix alone is {naive_gib:.2f} GiB")
    ctx = mp.get_context("spawn")
    results = {}
    for method in args.methods:
        queue = ctx.Queue()
        proc = ctx.Process(target=_run, args=(method, args.n_train, args.n_test, args.dim, args.k, args.metric, queue))
        proc.start()
        name, wall, cpu, peak, rss0, scores = queue.get()
        proc.join()
        results[name] = (wall, cpu, peak, scores)
        print(f"{name:6s} fit+score {wall:8.2f} s wall {cpu:8.2f} s CPU   peak memory +{peak:8.1f} MiB "
              f"(process {rss0:.0f} MiB before)")
    if len(results) == 2:
        (w1, c1, p1, s1), (w2, c2, p2, s2) = results["knn"], results["naive"]
        np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-9)
        print(f"naive / knn: time x{w2 / w1:.2f} wall, x{c2 / c1:.2f} CPU; peak memory x{p2 / max(p1, 1e-9):.1f}; "
              "test scores agree")


if __name__ == "__main__":
    main()
