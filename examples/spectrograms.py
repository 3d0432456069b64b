"""
Look at the data: log-mel and MFCC of a normal and an anomalous clip
====================================================================

The founding report's figures 1 and 2, drawn with :func:`skasd.plot.plot_clips` (needs the
``plot`` extra: ``pip install 'skasd[plot]'``): a normal generated machine clip beside one
with knocks.
"""

# %%
# Features
# --------
# :class:`~skasd.LogMelTransformer` gives the DCASE baseline's log-mel spectrogram (128 bands),
# :class:`~skasd.MFCCTransformer` its cepstral coefficients.
import numpy as np

from skasd import LogMelTransformer, MFCCTransformer
from skasd.datasets import make_machine_sounds

data = make_machine_sounds(n_normal=1, n_anomaly=4, duration=5.0,
                           random_state=0)
normal = data.data[data.target == 0][:1]
anomalous = data.data[data.anomaly_type == "knock"][:1]
clips = np.concatenate([normal, anomalous])

logmel = LogMelTransformer().fit_transform(clips)
mfcc = MFCCTransformer().fit_transform(clips)
print("(clips, bands, frames): log-mel", logmel.shape, "MFCC", mfcc.shape)

# %%
# Log-mel spectrograms
# --------------------
# The knocks are short broadband events: vertical stripes across the bands.
import matplotlib.pyplot as plt

from skasd.plot import plot_clips

plot_clips(logmel[:1], logmel[1:],
           titles=("Normal (log-mel)", "Knock (log-mel)"))
plt.show()

# %%
# MFCC
# ----
plot_clips(mfcc[:1], mfcc[1:], kind="mfcc",
           titles=("Normal (MFCC)", "Knock (MFCC)"))
plt.show()
