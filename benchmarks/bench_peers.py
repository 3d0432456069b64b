"""skasd's DenseAE beside its peers on the same data: PyOD's AutoEncoder and a plain torch loop.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/bench_peers.py [--epochs 20] [--seeds 0 1 2] [--overhead-epochs 10]
        [--repeats 3] [--data DIR]

The data are the DCASE 2020 baseline's 640-dimensional frame vectors: 5 consecutive frames of
128-band log-mels (``LogMelTransformer()`` defaults), every frame offset, 309 per 10 s clip.

**a. skasd vs PyOD** (``pyod.models.auto_encoder.AutoEncoder``). Both fit the same
``(n_windows, 640)`` array of the training clips with the same network sizes
(640-128-128-128-128-8-128-128-128-128-640, batch norm, ReLU), Adam lr 1e-3, MSE, batch 512, the
same epochs, no validation split (``validation_fraction=0``; PyOD has none), and score each
window; a clip's anomaly score is the mean over its windows for both. Differences PyOD does
not let us remove: it orders Linear -> ReLU -> BatchNorm (skasd and the baseline: Linear -> BN
-> ReLU), initialises Kaiming-uniform (skasd: Glorot, as Keras), BN momentum 0.1 / eps 1e-5
(skasd: Keras' 0.01 / 1e-3), drops the last incomplete batch, and collates batches row by row
from a per-row ``Dataset``. PyOD options set: ``preprocessing=False`` (raw dB like the baseline;
skasd's DenseAE does not standardise either), ``dropout_rate=0``, ``weight_decay=0``. Data:
generated clips with known anomalies (``make_machine_sounds``: train on 60 normals, test 20
normals + 20 anomalies at the same loudness) and, when present, the shared DCASE 2020 slider
clips (train on the first 60 normals, test the other 15 + the one real anomaly). Fit times
include each library's scoring pass over the training windows (PyOD's ``decision_scores_``,
skasd's threshold).

**b. skasd vs plain torch**: the same torch module (DenseAE's ``net_.module_`` class), data, epochs, batch
size and optimiser in a hand-written loop (random permutation per epoch, one fancy index per
batch, ``mse_loss``, ``backward``, ``step``), then one scoring pass, as ``DenseAE.fit`` ends
with. The loop reads the materialised window array (materialising it is not timed); skasd
reads the 3-D log-mels and gathers each batch of windows itself. The two alternate,
``--repeats`` times each, one torch thread; medians are compared.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zyy438-abnormal-listener" / "slider"
FRAMES, BATCH, LR = 5, 512, 1e-3


def windows(logmel):
    """``(n_clips * n_windows, FRAMES * n_mels)`` frame vectors (frame-major, as the baseline) and clip ids."""
    frames = logmel.transpose(0, 2, 1)  # (n_clips, n_frames, n_mels)
    w = np.lib.stride_tricks.sliding_window_view(frames, FRAMES, axis=1)  # (n, n_win, n_mels, FRAMES)
    w = np.ascontiguousarray(w.transpose(0, 1, 3, 2)).reshape(-1, FRAMES * logmel.shape[1])
    n_win = logmel.shape[2] - FRAMES + 1
    return w, np.repeat(np.arange(len(logmel)), n_win)


def per_clip(window_scores, clip_ids):
    return np.bincount(clip_ids, weights=window_scores) / np.bincount(clip_ids)


def load(args):
    """``{name: (train log-mels, test log-mels, test labels)}``."""
    from skasd import LogMelTransformer
    from skasd.datasets import make_machine_sounds

    lm = LogMelTransformer()
    X, y = make_machine_sounds(n_normal=80, n_anomaly=20, duration=10.0, random_state=0, return_X_y=True)
    X = lm.transform(X)
    sets = {"generated (60 train; 20 normal + 20 anomalies)": (X[:60], X[60:], y[60:])}
    if args.data and Path(args.data).is_dir():
        normals = sorted(str(p) for p in Path(args.data, "train").glob("*.flac"))
        anomalies = sorted(str(p) for p in Path(args.data, "test").glob("*.flac"))
        if len(normals) > 60 and anomalies:
            test = normals[60:] + anomalies
            label = np.r_[np.zeros(len(normals) - 60), np.ones(len(anomalies))].astype(int)
            sets[f"DCASE 2020 slider (60 train; {len(normals) - 60} normal + {len(anomalies)} anomaly)"] = (
                lm.transform(normals[:60]), lm.transform(test), label)
    return sets


def fit_skasd(train, epochs, seed):
    from skasd.models import DenseAE

    return DenseAE(frames=FRAMES, max_epochs=epochs, batch_size=BATCH, lr=LR, validation_fraction=0,
                   device="cpu", random_state=seed).fit(train)


def fit_pyod(V, epochs, seed):
    from pyod.models.auto_encoder import AutoEncoder

    return AutoEncoder(hidden_neuron_list=[128, 128, 128, 128, 8], batch_norm=True, dropout_rate=0.0,
                       epoch_num=epochs, batch_size=BATCH, lr=LR, optimizer_params={"weight_decay": 0.0},
                       preprocessing=False, device="cpu", random_state=seed, verbose=0).fit(V)


def fit_plain(V, epochs, seed, logmel=None):
    """The DCASE 2020 baseline's training in plain torch: returns the module and train window errors.

    Batches are rows of the materialised window array ``V``; with ``logmel`` they are gathered
    from the 3-D log-mels with the same fancy index as skasd's ``_WindowDataset`` instead.
    """
    import torch

    from skasd.models import DenseAE

    # DenseAE's own module class (net_.module_), built from a one-epoch fit on a few windows
    baseline_module = type(DenseAE(frames=1, max_epochs=1, device="cpu").fit(V[:64]).net_.module_)
    torch.manual_seed(seed)
    V = torch.from_numpy(V)
    module = baseline_module(V.shape[1])
    opt = torch.optim.Adam(module.parameters(), lr=LR)
    if logmel is not None:
        frames = torch.from_numpy(logmel).transpose(1, 2)  # (n_clips, n_frames, n_mels) view
        n_win, offsets = logmel.shape[2] - FRAMES + 1, torch.arange(FRAMES)
    for _ in range(epochs):
        module.train()
        perm = torch.randperm(len(V))
        for i in range(0, len(V), BATCH):
            idx = perm[i : i + BATCH]
            if len(idx) < 2:  # batch norm needs 2 rows
                continue
            if logmel is None:
                x = V[idx]
            else:
                x = frames[(idx // n_win)[:, None], (idx % n_win)[:, None] + offsets]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(module(x)[0], x)
            loss.backward()
            opt.step()
    module.eval()
    with torch.no_grad():
        errors = torch.cat([module.window_errors(V[i : i + 8 * BATCH]) for i in range(0, len(V), 8 * BATCH)])
    return module, errors.numpy()


def load_note():
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def peers(sets, args):
    from skasd.metrics import auc_score, pauc_score

    print(f"\n== a. skasd DenseAE vs PyOD AutoEncoder: {args.epochs} epochs, batch {BATCH}, seeds {args.seeds}")
    for name, (train, test, y) in sets.items():
        V, _ = windows(train)
        T, clip_ids = windows(test)
        print(f"{name}: {V.shape[0]} training vectors of {V.shape[1]}")
        rows = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            sk = fit_skasd(train, args.epochs, seed)
            t_sk = time.perf_counter() - t0
            t0 = time.perf_counter()
            po = fit_pyod(V, args.epochs, seed)
            t_po = time.perf_counter() - t0
            s_sk = sk.anomaly_score(test)
            s_po = per_clip(po.decision_function(T), clip_ids)
            for lib, t, s in (("skasd", t_sk, s_sk), ("pyod", t_po, s_po)):
                rows.setdefault(lib, []).append((t, auc_score(y, s), pauc_score(y, s)))
            print(f"  seed {seed}: fit skasd {t_sk:6.1f} s, PyOD {t_po:6.1f} s (PyOD / skasd {t_po / t_sk:4.2f}x, "
                  f"{load_note()}); AUC skasd {rows['skasd'][-1][1]:.3f} PyOD {rows['pyod'][-1][1]:.3f}")
        for lib, r in rows.items():
            r = np.array(r)
            print(f"  {lib:6s} fit {np.median(r[:, 0]):6.1f} s (median)  AUC {r[:, 1].mean():.3f} ± {r[:, 1].std():.3f}"
                  f"  pAUC {r[:, 2].mean():.3f} ± {r[:, 2].std():.3f}")


def overhead(train, args):
    print(f"\n== b. skasd DenseAE vs plain torch loop: {len(train)} clips, {args.overhead_epochs} epochs, "
          f"batch {BATCH}, {args.repeats} alternating repeats")
    V, clip_ids = windows(train)
    ways = {
        "plain": lambda: fit_plain(V, args.overhead_epochs, 0),
        "plain, skasd's gather": lambda: fit_plain(V, args.overhead_epochs, 0, logmel=train),
        "skasd": lambda: fit_skasd(train, args.overhead_epochs, 0),
    }
    times = {name: [] for name in ways}
    for r in range(args.repeats):
        for name, fit in ways.items():
            t0 = time.perf_counter()
            result = fit()
            times[name].append(time.perf_counter() - t0)
            if name == "skasd":
                model = result
        print(f"  repeat {r}: " + ", ".join(f"{name} {t[-1]:5.2f} s" for name, t in times.items())
              + f" ({load_note()})")
    med = {name: np.median(t) for name, t in times.items()}
    epoch = np.median([h["dur"] for h in model.net_.history])
    print(f"  median: " + ", ".join(f"{name} {t:.2f} s" for name, t in med.items()) + f"; skorch's median epoch {epoch:.3f} s")
    plain, gathered, skasd = med["plain"], med["plain, skasd's gather"], med["skasd"]
    print(f"  skasd vs plain: {100 * (skasd / plain - 1):+.1f} % (goal <= 10 %); of which gathering windows "
          f"from the 3-D log-mels {100 * (gathered / plain - 1):+.1f} %, skorch/sklearn layers "
          f"{100 * (skasd / gathered - 1):+.1f} %")
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(fit_skasd, train, args.overhead_epochs, 0)
        stats = pstats.Stats(profile, stream=sys.stdout)
        total = stats.total_tt
        def cum(where, func):
            return sum(v[3] for k, v in stats.stats.items() if k[0].endswith(where) and k[2] == func)

        step_fn = cum("skorch/net.py", "step_fn")  # forward + loss + backward, run inside Adam.step
        for label, seconds in [
            ("batch gathering (_WindowDataset.__getitems__)", cum("_base.py", "__getitems__")),
            ("forward + loss + backward (skorch step_fn)", step_fn),
            ("Adam update (Adam.step without the step_fn closure)", cum("adam.py", "step") - step_fn),
            ("scoring pass for the threshold (_set_offset + _per_clip)", cum("_base.py", "_per_clip")),
        ]:
            print(f"  cProfile: {label}: {seconds:.2f} s of {total:.2f} s ({100 * seconds / total:.0f} %)")
        print("  cProfile of one skasd fit (top 25 by cumulative time):")
        stats.sort_stats("cumulative").print_stats(25)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of part a (default 20)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--overhead-epochs", type=int, default=10, help="epochs of part b (default 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one skasd fit of part b")
    parser.add_argument("--parts", default="ab")
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else None)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="pyod")
    print(f"torch {torch.__version__}, 1 thread; {load_note()}")
    sets = load(args)
    warm = next(iter(sets.values()))[0][:2]  # warm-up: imports, first kernels
    fit_plain(windows(warm)[0], 1, 0), fit_pyod(windows(warm)[0], 1, 0), fit_skasd(warm, 1, 0)
    if "a" in args.parts:
        peers(sets, args)
    if "b" in args.parts:
        overhead(next(iter(sets.values()))[0], args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
