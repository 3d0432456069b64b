"""Time log-mel features: librosa vs torch backend on the same decoded clips, plus decoding.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_features.py [--n-clips 64] [--repeats 5] [--data DIR]

Reads the first ``--n-clips`` wav/flac files under ``--data`` (default: the shared DCASE 2020
slider clips in ``../shared/data``, repeated if there are fewer), or synthetic 10 s clips when
that folder is absent. Every figure is the median of ``--repeats`` timed runs after one warm-up
run, all in this one process. Feature times exclude decoding, which is timed separately.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from joblib import Parallel, delayed

from skasd import LogMelTransformer, load_audio

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zyy438-abnormal-listener" / "slider"


def decode(paths, n_jobs):
    """The clips of ``paths`` as one float32 array, decoded in ``n_jobs`` threads (as the transformers do)."""
    return np.stack(Parallel(n_jobs=n_jobs, prefer="threads")(delayed(load_audio)(p) for p in paths))


def median_time(fn, repeats):
    fn()  # warm-up: imports, torch kernels, mel filters
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def librosa_batched(W, size):
    import librosa

    mel = [
        librosa.feature.melspectrogram(y=W[i : i + size], sr=16000, n_fft=1024, hop_length=512, n_mels=128)
        for i in range(0, len(W), size)
    ]
    return 10 * np.log10(np.concatenate(mel) + sys.float_info.epsilon)


def clips(data, n_clips):
    paths = sorted(p for ext in ("wav", "flac") for p in Path(data).rglob(f"*.{ext}")) if data else []
    if paths:
        return [paths[i % len(paths)] for i in range(n_clips)], f"{len(paths)} files under {data}"
    rng = np.random.default_rng(0)
    return rng.uniform(-0.3, 0.3, size=(n_clips, 160000)).astype(np.float32), "synthetic 10 s clips"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else None)
    args = parser.parse_args(argv)

    import torch

    X, source = clips(args.data, args.n_clips)
    print(f"{args.n_clips} clips ({source}); {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), load average {os.getloadavg()[0]:.1f}")
    rows = []
    if not isinstance(X, np.ndarray):
        for n_jobs in (1, -1):
            t = median_time(lambda: decode(X, n_jobs), args.repeats)
            rows.append((f"decode wav/flac (n_jobs={n_jobs})", t))
        X = decode(X, -1)
        decode = min(t for _, t in rows)
    else:
        decode = None
    feats = {}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for backend, device in [("librosa", "cpu")] + [("torch", d) for d in devices]:
        est = LogMelTransformer(backend=backend, device=device)
        t = median_time(lambda: est.fit_transform(X), args.repeats)
        feats[(backend, device)] = est.fit_transform(X)
        rows.append((f"log-mel {backend} ({device})", t))
    # For reference: librosa called on 16-clip batches (one mel filter bank per call instead of
    # one per clip; results then depend slightly on the batch, which is why the backend does not).
    t = median_time(lambda: librosa_batched(X, 16), args.repeats)
    rows.append(("  librosa on 16-clip batches", t))
    lib = dict(rows)["log-mel librosa (cpu)"]
    print(f"\n{'step':34s} {'median':>9s} {'per clip':>9s} {'vs librosa':>10s} {'vs decode':>9s}")
    for name, t in rows:
        vs_lib = f"{lib / t:9.1f}x" if "librosa" in name or "log-mel" in name else ""
        vs_dec = f"{t / decode:8.2f}x" if decode else ""
        print(f"{name:34s} {t * 1e3:7.1f}ms {t / args.n_clips * 1e3:7.2f}ms {vs_lib:>10s} {vs_dec:>9s}")
    ref = feats[("librosa", "cpu")]
    for (backend, device), F in feats.items():
        if backend == "torch":
            print(f"max |torch ({device}) - librosa| = {np.abs(F - ref).max():.1e} dB")
    ratio = lib / dict(rows)["log-mel torch (cpu)"]
    print(f"torch (cpu) speed-up over librosa: {ratio:.1f}x (goal >= 5x); "
          f"load average now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
