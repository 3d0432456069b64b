"""Explanations of real DCASE test clips: does the top band tell anomalies from normal clips?

Usage::

    python benchmarks/bench_explain_dcase.py [DATA_DIR] [--model knn-spectrum]

``DATA_DIR`` is a DCASE 2021-2024 development folder of one machine type (default:
``../shared/data/dcase2023-toycar``). The command line's model (default ``knn-spectrum``) is
trained on the train clips as ``skasd train`` does, and every labelled test clip explained
(:func:`skasd.inspection.explain`, its top segment), twice: comparing each clip with its own
(section, domain) group's normal level (``normal_profile``,
skasd's behaviour), and with the pooled level of all training clips (the behaviour before,
obtained by dropping the model's ``model_profiles_``). Real clips carry no truth of where an
anomaly is, so the figures say only whether the named band depends on the clip:

- **modal band share**: per class (normal / anomaly), the fraction of clips whose top band falls in
  the one-third-octave bin most often named over all clips (1.0: every clip gets the same band,
  whatever it is);
- **distinct bins**: the number of one-third-octave bins named per class;
- **differs**: the fraction of (anomaly, normal) pairs whose top bands are more than one third
  of an octave apart;
- **below threshold**: the clips of each class scored below the threshold, which get the one
  segment "no segment stands out".
"""

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skasd.inspection import explain
from skasd.workflow import build_pipeline, fit_pipeline, load_clips

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dcase2023-toycar"


def figures(table, y):
    top = table.groupby("clip", sort=False).first()
    centre = np.sqrt(np.maximum(top["band_low_hz"], 1.0) * top["band_high_hz"]).to_numpy()
    third = np.round(3 * np.log2(centre / 1000.0)).astype(int)  # one-third-octave bin around 1 kHz
    modal = pd.Series(third).mode().iloc[0]
    octave = np.log2(centre)
    apart = np.abs(octave[y == 1][:, None] - octave[y == 0][None, :]) > 1 / 3
    below = ~top["anomalous"].to_numpy()
    modal_hz = 1000 * 2 ** (modal / 3)
    return {
        "modal bin (Hz)": f"{modal_hz:.0f}",
        "modal band share (normal / anomaly)": f"{np.mean(third[y == 0] == modal):.2f} / {np.mean(third[y == 1] == modal):.2f}",
        "distinct bins (normal / anomaly)": f"{len(set(third[y == 0]))} / {len(set(third[y == 1]))}",
        "differs (anomaly vs normal pairs)": f"{apart.mean():.2f}",
        "below threshold (normal / anomaly)": f"{below[y == 0].sum()}/{(y == 0).sum()} / {below[y == 1].sum()}/{(y == 1).sum()}",
    }


def main(data, model):
    torch.set_num_threads(1)
    clips = load_clips(data)
    train, test = clips[clips.split == "train"], clips[clips.split == "test"]
    test = test[test.label.notna()]
    pipe, _ = fit_pipeline(build_pipeline(model, verbose=False), train[train.label != "anomaly"])
    y = (test.label == "anomaly").to_numpy(int)
    section = test.section_or_id.astype(str).to_numpy(object) if pipe[-1].sections_ is not None else None
    paths = list(test.path)
    rows = {"own section and domain (now)": figures(explain(pipe, paths, section=section, n_segments=1), y)}
    del pipe[-1].model_profiles_
    rows["pooled training clips (before)"] = figures(explain(pipe, paths, section=section, n_segments=1), y)
    table = pd.DataFrame(rows).T
    print(f"{clips.machine_type.iloc[0]} ({model}): {len(test)} labelled test clips ({y.sum()} anomalies)")
    print(table.to_markdown())


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="knn-spectrum")
    args = parser.parse_args()
    main(args.data, args.model)
