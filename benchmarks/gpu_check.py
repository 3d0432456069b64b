"""One-command GPU check: what skasd does on a CUDA machine, in one summary table.

Run through ``benchmarks/gpu_check.sh`` (which installs the carried wheels first), or
directly: ``python benchmarks/gpu_check.py [--clips 2800] [--epochs 2] [--out DIR]``.

Sections (each one row or more of the final table; a failing section is reported as FAIL
with its error, and the others still run):

1. features: the torch log-mel backend on CUDA against librosa (max difference in dB,
   goal <= 1e-3) and its speed ratio over 64 ten-second clips (goal >= 50x);
2. training throughput of DenseAE, VAE, CNNAE and ClassifierEmbedding on ``--clips``
   generated ten-second clips (DCASE 2020 slider size: 2,800), fp32 and with bf16 / fp16
   autocast through Accelerate: clips per second, and the projected time of a default fit
   (goals: CNNAE and VAE < 60 s, the embedding < 2 min);
3. a 2-candidate GridSearchCV of a CNNAE on the GPU;
4. a model trained on the GPU, saved as a skasd model file, then loaded and scored in a
   process where CUDA is hidden (``CUDA_VISIBLE_DEVICES=""``): same scores;
5. fine-tuning the pretrained aisfx CNN (``ClassifierEmbedding(backbone="aisfx",
   trainable_blocks=1)``) on 64 ToyCar train clips (``--toycar``; the generated clips where that
   folder is absent) for ``--finetune-epochs`` epochs, fp32 and bf16: fit and embedding times, and
   the frozen blocks unchanged. Its weights: ``--aisfx-weights`` (default
   ``../shared/models/aisfx/checkpoint.pth`` where present, else the user's skasd cache); without
   them the section reports that it was skipped;
6. the default recipe's encoder (``knn-fusion``'s ``PretrainedEmbedding(model="aisfx")``, the
   CNN with its batch norms folded): seconds per ToyCar clip on the GPU, decoding and resampling
   included, and the largest difference from the CPU's embedding of the same 4 clips (goal
   <= 1e-3 of their scale).

Without CUDA it runs the same code on the CPU at a tiny size (``--clips 32``), to check the
script itself; its figures then mean nothing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

ROWS = []


def row(section, item, value, goal="", ok=None):
    ROWS.append(dict(section=section, item=item, value=value, goal=goal,
                     ok="" if ok is None else ("yes" if ok else "NO")))
    print(f"  {section:10s} {item:46s} {value:>22s} {goal:>14s} {ROWS[-1]['ok']}", flush=True)


def section(name):
    def wrap(fn):
        def run(*args, **kwargs):
            t = time.perf_counter()
            try:
                fn(*args, **kwargs)
            except Exception as exc:  # report and go on with the other sections
                traceback.print_exc()
                row(name, "FAIL", f"{type(exc).__name__}: {str(exc)[:60]}", ok=False)
            print(f"  [{name}: {time.perf_counter() - t:.0f} s]", flush=True)
        return run
    return wrap


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@section("features")
def check_features(waves):
    from skasd import LogMelTransformer

    W = waves[:64]
    ref = LogMelTransformer(backend="librosa").fit_transform(W)
    fast = LogMelTransformer(backend="torch")
    fast.fit_transform(W[:4])  # warm-up (CUDA context, kernels)
    sync()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        out = fast.fit_transform(W)
        sync()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    LogMelTransformer(backend="librosa").fit_transform(W)
    lib = time.perf_counter() - t
    diff = float(np.max(np.abs(out - ref)))
    row("features", f"log-mel torch ({DEVICE}) vs librosa, max diff", f"{diff:.2e} dB", "<= 1e-3", diff <= 1e-3)
    ratio = lib / float(np.median(times))
    row("features", f"speed over {len(W)} clips (librosa / torch)", f"{ratio:.1f}x", ">= 50x", ratio >= 50)


def _accelerator(precision):
    if precision == "fp32":
        return None
    from accelerate import Accelerator

    return Accelerator(mixed_precision=precision, cpu=DEVICE == "cpu")


@section("training")
def check_training(X, epochs):
    import skasd

    n = len(X)
    models = {"DenseAE": skasd.DenseAE, "VAE": skasd.VAE, "CNNAE": skasd.CNNAE,
              "ClassifierEmbedding": skasd.ClassifierEmbedding}
    goals = {"VAE": 60, "CNNAE": 60, "ClassifierEmbedding": 120}
    ids = np.arange(n) % 4  # four machine IDs: the embedding's classes
    precisions = ["fp32", "bf16"] + (["fp16"] if DEVICE == "cuda" else [])
    for name, cls in models.items():
        for precision in precisions:
            est = cls(max_epochs=epochs, random_state=0)
            params = est.get_params()
            if precision != "fp32":
                if "accelerator" not in params:
                    row("training", f"{name} {precision}", "no accelerator= parameter")
                    continue
                est.set_params(accelerator=_accelerator(precision))
            kwargs = {"y": ids} if name == "ClassifierEmbedding" else {}
            sync()
            t = time.perf_counter()
            est.fit(X, **kwargs)
            sync()
            per_epoch = (time.perf_counter() - t) / epochs
            default_epochs = cls().max_epochs
            full = per_epoch * default_epochs
            goal = goals.get(name)
            row("training", f"{name} {precision}: clips/s; default fit ({default_epochs} ep)",
                f"{n / per_epoch:.0f}/s; {full:.0f} s", f"< {goal} s" if goal else "",
                None if goal is None else full < goal)


@section("search")
def check_search(X, y, epochs):
    from sklearn.model_selection import GridSearchCV

    import skasd
    from skasd.metrics import pauc_scorer
    from skasd.model_selection import NormalTrainCV

    t = time.perf_counter()
    search = GridSearchCV(skasd.CNNAE(max_epochs=epochs, random_state=0), {"l2": [0.0, 0.002]},
                          scoring=pauc_scorer, cv=NormalTrainCV(n_splits=2, random_state=0)).fit(X, y)
    row("search", "GridSearchCV CNNAE, 2 candidates x 2 folds", f"{time.perf_counter() - t:.1f} s",
        "", len(search.cv_results_["params"]) == 2)


@section("model file")
def check_model_file(X, epochs):
    import skasd

    est = skasd.DenseAE(max_epochs=epochs, random_state=0).fit(X)
    scores = est.score_samples(X[:16])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gpu.skasd")
        np.save(os.path.join(tmp, "X.npy"), X[:16])
        skasd.save(est, path)
        code = ("import json, sys, numpy as np, torch, skasd; assert not torch.cuda.is_available();"
                f"m = skasd.load({path!r}); print(json.dumps(m.score_samples(np.load({os.path.join(tmp, 'X.npy')!r})).tolist()))")
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        back = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    diff = float(np.max(np.abs(back - scores) / np.maximum(np.abs(scores), 1e-12)))
    row("model file", f"trained on {DEVICE}, scored with CUDA hidden: max rel diff", f"{diff:.1e}", "<= 1e-4",
        diff <= 1e-4)


@section("fine-tuning")
def check_finetune(clips, labels, weights, epochs):
    import skasd
    from skorch.callbacks import Callback

    class Snapshot(Callback):  # the backbone's weights as training starts: the published ones
        def on_train_begin(self, net, **kwargs):
            self.start_ = {k: v.detach().cpu().clone() for k, v in net.module_.state_dict().items()}

    n = len(clips)
    for precision in ("fp32", "bf16"):
        est = skasd.ClassifierEmbedding(backbone="aisfx", backbone_weights=weights, trainable_blocks=1,
                                        max_epochs=epochs, random_state=0, callbacks=[Snapshot()],
                                        accelerator=_accelerator(precision))
        sync()
        t = time.perf_counter()
        try:
            est.fit(clips, labels)
        except FileNotFoundError as exc:
            row("fine-tuning", "skipped: no aisfx weights (--aisfx-weights)", str(exc)[:40])
            return
        sync()
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        Z = est.transform(clips)
        sync()
        embed_s = time.perf_counter() - t
        start = next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, Snapshot)).start_
        end = {k: v.cpu() for k, v in est.net_.module_.state_dict().items()}
        blocks = [k for k in end if ".backbone.conv_block" in k]
        frozen = all(torch.equal(start[k], end[k]) for k in blocks if ".conv_block4." not in k)
        tuned = not torch.equal(start["encoder.backbone.conv_block4.conv1.weight"],
                                end["encoder.backbone.conv_block4.conv1.weight"])
        ok = frozen and tuned and Z.shape == (n, 2 * est.embed_dim) and bool(np.isfinite(Z).all())
        row("fine-tuning", f"aisfx block 4 tuned, {precision}: {n} clips x {epochs} ep",
            f"fit {fit_s:.1f} s; embed {embed_s:.1f} s", "blocks 1-3 kept", ok)


@section("default recipe")
def check_default_encoder(clips, weights):
    import skasd

    if weights is None:
        row("default recipe", "skipped: no aisfx weights (--aisfx-weights)", "")
        return
    sync()
    t = time.perf_counter()
    E = skasd.PretrainedEmbedding(model="aisfx", weights=weights, device=DEVICE).fit_transform(clips)
    sync()
    per_clip = (time.perf_counter() - t) / len(clips)
    ref = skasd.PretrainedEmbedding(model="aisfx", weights=weights, device="cpu").fit_transform(clips[:4])
    diff = float(np.abs(E[:4] - ref).max() / max(np.abs(ref).max(), 1e-12))
    row("default recipe", f"aisfx embedding on {DEVICE}: {len(clips)} clips", f"{per_clip:.3f} s per clip", "", None)
    row("default recipe", f"aisfx embedding, {DEVICE} vs CPU: max rel diff", f"{diff:.1e}", "<= 1e-3", diff <= 1e-3)


def toycar_clips(folder, n):
    """``n`` ToyCar train clips (spread over the folder) and their attribute x domain classes, or None."""
    import glob

    paths = sorted(glob.glob(os.path.join(folder, "ToyCar", "train", "*.wav")) +
                   glob.glob(os.path.join(folder, "ToyCar", "train", "*.flac")))
    if len(paths) < n:
        return None
    paths = paths[:: len(paths) // n][:n]
    # section_00_source_train_normal_0001_car_B1_spd_31V_mic_1.flac -> section_00_source_car_B1_spd_31V_mic_1
    labels = ["_".join(os.path.basename(p).rsplit(".", 1)[0].split("_")[:3] +
                       os.path.basename(p).rsplit(".", 1)[0].split("_")[6:]) for p in paths]
    return paths, labels


def main():
    global DEVICE
    DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=2800 if DEVICE == "cuda" else 32)
    parser.add_argument("--epochs", type=int, default=2 if DEVICE == "cuda" else 1)
    parser.add_argument("--out", help="folder for summary.json")
    parser.add_argument("--toycar", default="../shared/data/dcase2023-toycar", help="DCASE 2023 ToyCar folder")
    parser.add_argument("--aisfx-weights", help="aisfx checkpoint.pth (default: ../shared's, else the skasd cache)")
    parser.add_argument("--finetune-epochs", type=int, default=3 if DEVICE == "cuda" else 1)
    args = parser.parse_args()
    if DEVICE == "cpu":
        torch.set_num_threads(1)
    from skasd import LogMelTransformer
    from skasd.datasets import make_machine_sounds

    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU (no CUDA: a check of the script only)"
    print(f"skasd GPU check on {name}; torch {torch.__version__}; {args.clips} clips, {args.epochs} epochs per fit",
          flush=True)
    t = time.perf_counter()
    n_anomaly = max(4, args.clips // 20)
    waves, y = make_machine_sounds(n_normal=args.clips, n_anomaly=n_anomaly, duration=10.0, random_state=0,
                                   return_X_y=True)
    waves, y = np.asarray(waves, dtype=np.float32), np.asarray(y)
    X = LogMelTransformer(backend="torch").fit_transform(waves)
    sync()
    print(f"  generated and featurised {len(waves)} clips in {time.perf_counter() - t:.0f} s", flush=True)
    check_features(waves)
    check_training(X[y == 0], args.epochs)
    small = np.r_[np.flatnonzero(y == 0)[:200], np.flatnonzero(y == 1)[:20]]
    check_search(X[small], y[small], args.epochs)
    check_model_file(X[:64], args.epochs)
    weights = args.aisfx_weights
    if weights is None and os.path.isfile("../shared/models/aisfx/checkpoint.pth"):
        weights = "../shared/models/aisfx/checkpoint.pth"
    n_tune = 64 if DEVICE == "cuda" else 4
    toycar = toycar_clips(args.toycar, n_tune)
    clips, labels = toycar if toycar else (waves[:n_tune], np.arange(n_tune) % 4)
    check_finetune(clips, labels, weights, args.finetune_epochs)
    embed = toycar_clips(args.toycar, 128 if DEVICE == "cuda" else 4)
    check_default_encoder(embed[0] if embed else list(waves[:4]), weights)
    print("\nsummary")
    print("| section | item | value | goal | met |\n|---|---|---|---|---|")
    for r in ROWS:
        print(f"| {r['section']} | {r['item']} | {r['value']} | {r['goal']} | {r['ok']} |")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "summary.json"), "w") as f:
            json.dump(dict(device=name, clips=args.clips, epochs=args.epochs, rows=ROWS), f, indent=1)
    return 1 if any(r["item"] == "FAIL" for r in ROWS) else 0


if __name__ == "__main__":
    sys.exit(main())
