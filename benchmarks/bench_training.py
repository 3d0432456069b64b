"""Training throughput and peak memory of DenseAE, VAE and CNNAE on generated log-mel data.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_training.py [--n-clips 60] [--epochs 3]
        [--models DenseAE VAE CNNAE] [--batch-size B] [--device auto] [--amp] [--threads N]

``--n-clips 2800`` is the size of the DCASE 2020 slider development set (10 s clips).
The input is a generated log-mel array of shape ``(n_clips, 128, 313)`` (what
``LogMelTransformer`` gives for 10 s at 16 kHz) with a dB-like spectrum plus noise: the cost
of an epoch does not depend on the content. Each model is trained with its default
parameters except ``max_epochs`` (and ``--batch-size`` if given; a GPU wants larger batches
than CNNAE's default 16), in a fresh process so that peak memory is its own.

Reported per model: the median epoch time (training plus validation pass, from skorch's
history), throughput in clips per second of that epoch (all clips: training + validation),
the projected time of the default number of epochs, the whole ``fit`` time (including the
scoring pass that sets the threshold), and peak memory: on the CPU the peak resident set
size of the process, beside its size just before ``fit`` (Python, torch and the data, whose
size is printed first); on CUDA the peak allocated tensor memory. ``--amp`` trains under ``torch.autocast`` with bfloat16 on CUDA.
"""

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np


def log_mel_like(n_clips, n_mels=128, n_frames=313, seed=0):
    """A dB-like spectrum plus noise, built in place in float32 (no larger temporary)."""
    X = np.random.default_rng(seed).standard_normal((n_clips, n_mels, n_frames), dtype=np.float32)
    X *= 3
    X += np.linspace(-20, -70, n_mels, dtype=np.float32)[:, None]
    return X


def _run(name, n_clips, epochs, batch_size, device, amp, threads, queue):
    import torch

    import skasd.models

    if threads:
        torch.set_num_threads(threads)
    X = log_mel_like(n_clips)
    cls = getattr(skasd.models, name)
    est = cls(max_epochs=epochs, device=device, random_state=0)
    if batch_size:
        est.set_params(batch_size=batch_size)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and cuda):
        est.fit(X)
    fit_s = time.perf_counter() - t0
    durations = est.net_.history[:, "dur"]
    epoch_s = statistics.median(durations[1:] if len(durations) > 1 else durations)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        {
            "model": name,
            "device": str(est.net_.device) + (" bf16" if amp and cuda else ""),
            "batch_size": est.batch_size,
            "epoch_s": epoch_s,
            "clips_per_s": n_clips / epoch_s,
            "default_epochs_s": epoch_s * cls().max_epochs,
            "fit_s": fit_s,
            "peak_mb": peak,
            "rss_before_fit_mb": rss0,
        }
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (the first is excluded from the median)")
    parser.add_argument("--models", nargs="+", default=["DenseAE", "VAE", "CNNAE"])
    parser.add_argument("--batch-size", type=int, default=0, help="0: each model's default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)

    data_mb = args.n_clips * 128 * 313 * 4 / 2**20
    print(f"{args.n_clips} clips of (128, 313) log-mel, data {data_mb:.0f} MB, {args.epochs} epochs\n")
    print("| model | device | batch | s/epoch | clips/s | default epochs (s) | fit (s) | peak MB | MB before fit |")
    print("|---|---|---|---|---|---|---|---|---|")
    ctx = mp.get_context("spawn")
    for name in args.models:
        queue = ctx.Queue()
        run_args = (name, args.n_clips, args.epochs, args.batch_size, args.device, args.amp, args.threads, queue)
        proc = ctx.Process(target=_run, args=run_args)
        proc.start()
        r = queue.get()
        proc.join()
        print(
            f"| {r['model']} | {r['device']} | {r['batch_size']} | {r['epoch_s']:.2f} | {r['clips_per_s']:.0f} | "
            f"{r['default_epochs_s']:.0f} | {r['fit_s']:.1f} | {r['peak_mb']:.0f} | {r['rss_before_fit_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
