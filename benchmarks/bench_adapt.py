"""Adapting a model to a new domain (``skasd adapt``), against not adapting and against retraining.

Usage::

    python benchmarks/bench_adapt.py [DATA_DIR] [--model knn-spectrum]

``DATA_DIR`` is a DCASE 2021-2024 development folder of one machine type (default:
``../shared/data/dcase2023-toycar``). Three models of the command line's ``--model`` (default
``knn-spectrum``, the default for such folders) score the test clips:

- **source only**: trained on the source-domain train clips alone;
- **adapted**: that model with the target-domain train clips added by the final step's
  ``partial_fit(X, domain="target")`` after the pipeline's fitted feature steps, as
  :func:`skasd.workflow.adapt_model` (``skasd adapt``) does;
- **trained on both**: trained on all train clips at once, as ``skasd train`` does.

The table gives AUC (source), AUC (target), pAUC and the official score (their harmonic mean)
per section, and the seconds each fit or adaptation took (decoding and spectra included).
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from skasd.metrics import dcase_report
from skasd.workflow import build_pipeline, fit_pipeline, load_clips

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcase2023-toycar"


def evaluate(pipe, test):
    y = (test.label == "anomaly").astype(int).to_numpy()
    score = -pipe.score_samples(list(test.path))
    rep = dcase_report(y, score, test.section_or_id.to_numpy(), domains=test.domain.to_numpy())
    return rep.drop(index=["arithmetic mean", "harmonic mean"], errors="ignore")


def main(data, model):
    torch.set_num_threads(1)
    clips = load_clips(data)
    train, test = clips[clips.split == "train"], clips[clips.split == "test"]
    source, target = train[train.domain == "source"], train[train.domain == "target"]
    print(f"{clips.machine_type.iloc[0]}: {len(source)} source + {len(target)} target train clips, "
          f"{len(test)} test clips; model {model}", flush=True)
    runs = {}
    t = time.perf_counter()
    pipe, _ = fit_pipeline(build_pipeline(model, verbose=False), source)
    runs["source only"] = (pipe, time.perf_counter() - t)
    # adapted: a copy of the source-only model, its final step extended with the target clips
    adapted, _ = fit_pipeline(build_pipeline(model, verbose=False), source)
    t = time.perf_counter()
    Xt = adapted[:-1].transform(list(target.path))
    kwargs = {"domain": "target"}
    if adapted[-1].sections_ is not None:
        kwargs["section"] = target.section_or_id.astype(str).to_numpy(object)
    adapted[-1].partial_fit(Xt, **kwargs)
    runs["adapted with the target clips"] = (adapted, time.perf_counter() - t)
    t = time.perf_counter()
    both, _ = fit_pipeline(build_pipeline(model, verbose=False), train)
    runs["trained on both"] = (both, time.perf_counter() - t)
    print("| model | section | AUC (source) | AUC (target) | pAUC | official | fit / adapt s |")
    print("|---|---|---|---|---|---|---|")
    for name, (pipe, seconds) in runs.items():
        for section, r in evaluate(pipe, test).iterrows():
            official = 3 / (1 / r["AUC (source)"] + 1 / r["AUC (target)"] + 1 / r["pAUC"])
            print(f"| {name} | {section} | {r['AUC (source)']:.3f} | {r['AUC (target)']:.3f} | {r['pAUC']:.3f} "
                  f"| {official:.3f} | {seconds:.1f} |", flush=True)
    a, b = runs["adapted with the target clips"][0], runs["trained on both"][0]
    same = np.allclose(a.score_samples(list(test.path)), b.score_samples(list(test.path)), rtol=1e-9, atol=1e-12)
    print(f"adapted scores equal to those of the model trained on both (rtol 1e-9): {same}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="knn-spectrum")
    args = parser.parse_args()
    main(args.data, args.model)
