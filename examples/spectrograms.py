"""Look at the data: log-mel and MFCC of a normal clip beside an anomalous one.

The report's figures 1 and 2, drawn with ``skasd.plot.plot_clips`` (needs the ``plot``
extra: ``pip install 'skasd[plot]'``). Writes ``spectrograms.png``.
"""

import matplotlib

matplotlib.use("Agg")

import numpy as np

from skasd import LogMelTransformer, MFCCTransformer
from skasd.datasets import make_machine_sounds
from skasd.plot import plot_clips

data = make_machine_sounds(n_normal=1, n_anomaly=4, duration=5.0, random_state=0)
normal = data.data[data.target == 0][:1]
anomalous = data.data[(data.anomaly_type == "knock")][:1]
clips = np.concatenate([normal, anomalous])

logmel = LogMelTransformer().fit_transform(clips)
mfcc = MFCCTransformer().fit_transform(clips)
top = plot_clips(logmel[:1], logmel[1:], titles=("Normal (log-mel)", "Knock (log-mel)"))
top[0, 0].figure_.savefig("spectrograms.png", dpi=80)
bottom = plot_clips(mfcc[:1], mfcc[1:], kind="mfcc", titles=("Normal (MFCC)", "Knock (MFCC)"))
bottom[0, 0].figure_.savefig("mfcc.png", dpi=80)
print("wrote spectrograms.png and mfcc.png")
