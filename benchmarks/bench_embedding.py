"""Training and scoring time of ClassifierEmbedding + KNNDetector beside CNNAE, on the same data.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/bench_embedding.py [--n-clips 200] [--epochs 2]
        [--n-test 200] [--knn-train 2800 30000] [--device auto] [--threads 1]

``--n-clips 2800`` is the size of the DCASE 2020 slider development set (10 s clips, 4
machine IDs). The input is the generated log-mel array of ``bench_training.py``, shape
``(n_clips, 128, 313)``, with 4 machine-ID labels taking turns: the cost of an epoch does
not depend on the content. In one process, one after the other: ``ClassifierEmbedding``
(default network and loss, ``max_epochs=--epochs``) and ``CNNAE`` (defaults, its validation
split included) trained on the same clips; per-epoch times are skorch's, the median
excluding the first epoch, projected to each model's default number of epochs. Then the
scoring side: ``transform`` of ``--n-test`` clips, and ``KNNDetector`` (cosine, 1 neighbour)
fitted on ``--knn-train`` random 128-d embeddings (the size of DCASE training sets and ten
times more) scoring ``--n-test`` clips; sklearn's brute-force search works through the
distance matrix in chunks (``working_memory``), so memory stays linear in the clips.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _epoch_s(net):
    durations = net.history[:, "dur"]
    return statistics.median(durations[1:] if len(durations) > 1 else durations)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--knn-train", type=int, nargs="+", default=[2800, 30000])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    from skasd.models import CNNAE, ClassifierEmbedding, KNNDetector

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_training import log_mel_like

    if args.threads:
        torch.set_num_threads(args.threads)
    X = log_mel_like(args.n_clips)
    ids = np.array(["id_00", "id_02", "id_04", "id_06"])[np.arange(args.n_clips) % 4]
    print(f"{args.n_clips} clips of (128, 313) log-mel, 4 machine IDs, {args.epochs} epochs, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| model | device | s/epoch | clips/s | default epochs | projected fit (s) | fit (s) |")
    print("|---|---|---|---|---|---|---|")
    rows = {}
    for name, est, fit in (
        ("ClassifierEmbedding", ClassifierEmbedding(max_epochs=args.epochs, device=args.device, random_state=0),
         lambda e: e.fit(X, ids)),
        ("CNNAE", CNNAE(max_epochs=args.epochs, device=args.device, random_state=0), lambda e: e.fit(X)),
    ):
        t0 = time.perf_counter()
        fit(est)
        fit_s = time.perf_counter() - t0
        epoch_s, default_epochs = _epoch_s(est.net_), type(est)().max_epochs
        rows[name] = epoch_s * default_epochs
        print(f"| {name} | {est.net_.device} | {epoch_s:.2f} | {args.n_clips / epoch_s:.0f} | {default_epochs} | "
              f"{epoch_s * default_epochs:.0f} | {fit_s:.1f} |", flush=True)
        if name == "ClassifierEmbedding":
            emb = est
    print(f"\nprojected default training, ClassifierEmbedding / CNNAE: "
          f"{rows['ClassifierEmbedding'] / rows['CNNAE']:.2f}x\n")

    test = log_mel_like(args.n_test, seed=1)
    t0 = time.perf_counter()
    emb.transform(test)
    t_transform = time.perf_counter() - t0
    print(f"ClassifierEmbedding.transform of {args.n_test} clips: {t_transform:.2f} s "
          f"({1000 * t_transform / args.n_test:.1f} ms per clip)\n")
    print("| k-NN training clips | fit (s) | score {} clips (s) | ms per scored clip |".format(args.n_test))
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((args.n_test, 128))
    for n in args.knn_train:
        train = rng.standard_normal((n, 128))
        t0 = time.perf_counter()
        knn = KNNDetector().fit(train)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        knn.score_samples(queries)
        t_score = time.perf_counter() - t0
        print(f"| {n} | {t_fit:.2f} | {t_score:.3f} | {1000 * t_score / args.n_test:.2f} |", flush=True)


if __name__ == "__main__":
    main()
