"""
Where and why: explaining anomalies in real fan recordings
==========================================================

A score says *that* a clip is unusual; an engineer also wants to know *when* in the clip and
*which* frequencies changed, to know what to listen for. :func:`skasd.inspection.explain`
says both for any skasd detector on log-mel clips: the frame scores give the clip's most
anomalous segments, and each segment's mel bands are compared with their level in the normal
training clips, in dB with their Hz range, plus a one-sentence summary.

Here a k-NN detector on log-mel statistics is fitted on 10 normal clips of the MIMII fan
``id_00`` (real recordings) and explains three abnormal clips. Nobody marked where these
anomalies are, so there is no truth to check against here: the localisation is measured on
generated anomalies with known onsets and bands in ``benchmarks/bench_explain.py``
(``benchmarks/README.md``).

The clips are not part of this repository: the example reads them from
``../shared/data/mimii-fan-id00`` beside the repository, or from the folder named by the
``SKASD_SHARED_DATA`` environment variable; without them it prints one line and stops.
"""

# %%
# Find the data and fit a detector
# --------------------------------
import os
from pathlib import Path

import pandas as pd
from sklearn.pipeline import make_pipeline

from skasd import KNNDetector, LogMelTransformer
from skasd.datasets import load_dcase
from skasd.inspection import explain

try:
    _here = Path(__file__).resolve().parent
except NameError:  # run interactively
    _here = Path.cwd()
shared = Path(os.environ.get("SKASD_SHARED_DATA", _here.parent.parent / "shared" / "data"))
root = shared / "mimii-fan-id00"

if root.is_dir():
    clips = load_dcase(root)
    normal = list(clips.path[clips.label == "normal"])
    abnormal = list(clips.path[clips.label == "anomaly"])
    pipe = make_pipeline(LogMelTransformer(), KNNDetector()).fit(normal[:10])
    print(f"fitted on {len(normal[:10])} normal clips; {len(abnormal)} abnormal clips to explain")
else:
    clips = None
    print(f"MIMII fan clips not found at {root}: skipping this example (set SKASD_SHARED_DATA).")

# %%
# Explain the three most anomalous clips
# --------------------------------------
# One row per segment (up to three per clip): its time range, its highest frame score, the
# band group furthest from normal (``band_db``: dB above or below its normal level), the
# next band groups (``bands``) and the summary sentence.
if clips is not None:
    scores = -pipe.score_samples(abnormal)
    top = [abnormal[i] for i in scores.argsort()[::-1][:3]]
    table = explain(pipe, top)
    table["clip"] = table["clip"].map(lambda p: Path(p).name)
    with pd.option_context("display.width", 160, "display.max_colwidth", 70):
        print(table[["clip", "anomalous", "segment", "start_s", "end_s", "band_db", "summary"]])

# %%
# Where and why, on the log-mel image
# -----------------------------------
# :class:`~skasd.plot.ExplanationDisplay` draws each clip's log-mel (grey), the bands at
# least 6 dB (and twice their normal spread) above (red) or below (blue) their normal level,
# the frame scores over time (orange, right axis), the segments (dashed) and the top band
# (solid box). The fan's anomalies are steady: the segments mark where they are strongest,
# and the same bands recur across them.
if clips is not None:
    import matplotlib.pyplot as plt

    from skasd.plot import ExplanationDisplay

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), layout="constrained")
    for path, ax in zip(top, axes):
        disp = ExplanationDisplay.from_estimator(pipe, path, ax=ax)
        ax.set_title(f"{Path(path).name}: {disp.summary}", fontsize=9)
    fig.savefig("explained_fan.png")
    print("wrote explained_fan.png")
