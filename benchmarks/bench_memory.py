"""Training memory and time vs number of clips: in-memory log-mel array vs a streamed FeatureStore.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_memory.py [--sizes 1000 5000 20000] [--duration 1.0]
        [--epochs 2] [--model DenseAE] [--limit-clips 40000] [--limit-duration 1.0]
        [--limit-mb 600] [--workdir /tmp/skasd-bench-memory]

Clips come from ``skasd.datasets.make_machine_sounds`` (normal clips of one machine), written
once as 16-bit WAV files under ``--workdir`` and reused. The feature cache is filled once
(``LogMelTransformer(cache=..., lazy=True)``, timed), so every run reads its log-mels from the
cache. For each size, two fresh processes run the same pipeline on the first ``n`` files:

- in memory: ``X = LogMelTransformer(cache=DIR).transform(paths)`` (one float32 array), then
  ``model.fit(X)``;
- streaming: ``X = LogMelTransformer(cache=DIR, lazy=True).transform(paths)`` (a FeatureStore),
  then ``model.fit(X)`` (``stream_buffer=256`` clips in memory).

Reported per run: the median epoch time (skorch's history, training + validation), the whole
transform + fit time, and the peak resident set size of the process (``ru_maxrss``), beside
its size after importing torch and skasd.

The memory-limit run uses more clips (``--limit-clips`` x ``--limit-duration`` seconds, a
log-mel array larger than the limit) and caps the process's data segment
(``resource.setrlimit(RLIMIT_DATA, --limit-mb)``) before anything is loaded: streaming trains
one epoch, the in-memory pipeline cannot allocate its array.
"""

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time


SR = 16000


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_clips(folder, n, duration, chunk=500):
    """The first ``n`` generated clips of ``duration`` s as WAV files (made once, then reused)."""
    import soundfile as sf

    from skasd.datasets import make_machine_sounds

    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"clip_{i:06d}.wav") for i in range(n)]
    t0 = time.perf_counter()
    made = 0
    for start in range(0, n, chunk):
        todo = [i for i in range(start, min(start + chunk, n)) if not os.path.exists(paths[i])]
        if not todo:
            continue
        W = make_machine_sounds(n_normal=chunk, n_anomaly=0, duration=duration, random_state=start).data
        for i in todo:
            tmp = paths[i] + ".tmp.wav"
            sf.write(tmp, W[i - start], SR, subtype="PCM_16")
            os.replace(tmp, paths[i])
            made += 1
    if made:
        print(f"  wrote {made} clips of {duration:g} s in {time.perf_counter() - t0:.0f} s", flush=True)
    return paths


def _fill(paths, cache, queue):
    import torch

    torch.set_num_threads(1)
    from skasd import LogMelTransformer

    t0 = time.perf_counter()
    store = LogMelTransformer(cache=cache, lazy=True).transform(paths)
    queue.put({"s": time.perf_counter() - t0, "shape": store.shape, "gb": store.nbytes / 1e9})


def _train(mode, paths, cache, model, epochs, limit_mb, queue):
    if limit_mb:
        resource.setrlimit(resource.RLIMIT_DATA, (limit_mb * 2**20, limit_mb * 2**20))
    try:
        import torch

        torch.set_num_threads(1)
        import skasd.models
        from skasd import LogMelTransformer

        rss0 = _rss_mb()
        t0 = time.perf_counter()
        X = LogMelTransformer(cache=cache, lazy=mode == "stream").transform(paths)
        transform_s = time.perf_counter() - t0
        est = getattr(skasd.models, model)(max_epochs=epochs, random_state=0).fit(X)
        durations = est.net_.history[:, "dur"]
        queue.put(
            {
                "ok": True,
                "epoch_s": statistics.median(durations[1:] if len(durations) > 1 else durations),
                "total_s": time.perf_counter() - t0,
                "transform_s": transform_s,
                "peak_mb": _rss_mb(),
                "rss_imports_mb": rss0,
            }
        )
    except MemoryError as e:
        queue.put({"ok": False, "error": f"MemoryError {e}", "peak_mb": _rss_mb()})
    except Exception as e:  # e.g. torch's RuntimeError "can't allocate memory"
        queue.put({"ok": False, "error": f"{type(e).__name__}: {str(e)[:120]}", "peak_mb": _rss_mb()})


def _in_process(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    proc.join()
    if queue.empty():
        return {"ok": False, "error": f"process died (exit code {proc.exitcode})"}
    return queue.get()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="DenseAE")
    parser.add_argument("--limit-clips", type=int, default=40000)
    parser.add_argument("--limit-duration", type=float, default=1.0)
    parser.add_argument("--limit-mb", type=int, default=600)
    parser.add_argument("--workdir", default="/tmp/skasd-bench-memory")
    parser.add_argument("--skip-limit", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    args = parser.parse_args(argv)

    cache = os.path.join(args.workdir, "cache")
    print(f"{args.model}, {args.epochs} epochs, clips of {args.duration:g} s, cache {cache}", flush=True)
    paths = write_clips(os.path.join(args.workdir, f"wav{args.duration:g}"), max(args.sizes), args.duration)
    fill = _in_process(_fill, paths, cache)
    print(f"  feature cache: {fill['shape']} ({fill['gb']:.2f} GB of log-mel) ready in {fill['s']:.0f} s", flush=True)

    header = f"{'clips':>7} {'log-mel MB':>10} | {'epoch s mem':>11} {'stream':>7} {'ratio':>6} | " \
             f"{'peak RSS MB mem':>15} {'stream':>7} {'ratio':>6} | {'RSS after imports':>17}"
    print(header)
    rows = []
    for n in [] if args.skip_scaling else args.sizes:
        mem = _in_process(_train, "memory", paths[:n], cache, args.model, args.epochs, None)
        stream = _in_process(_train, "stream", paths[:n], cache, args.model, args.epochs, None)
        logmel_mb = n * fill["shape"][1] * fill["shape"][2] * 4 / 2**20
        if not (mem.get("ok") and stream.get("ok")):
            print(f"{n:>7} failed: memory {mem}, stream {stream}")
            continue
        rows.append((n, mem, stream))
        print(
            f"{n:>7} {logmel_mb:>10.0f} | {mem['epoch_s']:>11.2f} {stream['epoch_s']:>7.2f} "
            f"{stream['epoch_s'] / mem['epoch_s']:>6.2f} | {mem['peak_mb']:>15.0f} {stream['peak_mb']:>7.0f} "
            f"{stream['peak_mb'] / mem['peak_mb']:>6.2f} | {stream['rss_imports_mb']:>17.0f}",
            flush=True,
        )
    if len(rows) > 1:
        (n0, m0, s0), (n1, m1, s1) = rows[0], rows[-1]
        print(
            f"{n0} -> {n1} clips ({n1 / n0:.0f}x): epoch time x{m1['epoch_s'] / m0['epoch_s']:.1f} in memory, "
            f"x{s1['epoch_s'] / s0['epoch_s']:.1f} streaming; peak RSS +{m1['peak_mb'] - m0['peak_mb']:.0f} MB "
            f"in memory, +{s1['peak_mb'] - s0['peak_mb']:.0f} MB streaming"
        )

    if args.skip_limit:
        return
    big = write_clips(os.path.join(args.workdir, f"wav{args.limit_duration:g}"), args.limit_clips, args.limit_duration)
    fill = _in_process(_fill, big, cache)
    print(
        f"\nMemory limit: {args.limit_clips} clips of {args.limit_duration:g} s, log-mel array "
        f"{fill['gb'] * 1e9 / 2**20:.0f} MB, RLIMIT_DATA {args.limit_mb} MB, 1 epoch",
        flush=True,
    )
    for mode in ("stream", "memory"):
        r = _in_process(_train, mode, big, cache, args.model, 1, args.limit_mb)
        status = (
            f"trained: epoch {r['epoch_s']:.1f} s, peak RSS {r['peak_mb']:.0f} MB"
            if r.get("ok") else f"failed: {r['error']}"
        )
        print(f"  {mode:>6}: {status}", flush=True)


if __name__ == "__main__":
    main()
