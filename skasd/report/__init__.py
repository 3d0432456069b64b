"""A self-contained HTML inspection report of scored clips: :func:`write_report`.

The page holds the model and its parameters, the data counts, the DCASE table
(AUC/pAUC per machine ID or section), the ROC curve and score histograms, and
the clips to listen to (most anomalous, false alarms, borderline, reference
normals), each with its score, label, decision, an audio player and a log-mel
image. Figures need matplotlib (``pip install skasd[plot]``); without it the
page is written without them and a warning says so.
"""

from ._html import write_report

__all__ = ["write_report"]
