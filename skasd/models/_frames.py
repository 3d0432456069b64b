"""Frame scores: what a detector computes per window or patch, mapped back to time frames.

Every detector that sees log-mel clips ``(n_clips, n_mels, n_frames)`` computes something per
window of frames before it pools a clip score: an autoencoder's reconstruction error per
window, an inlier model's distance of local band statistics, an embedding's patch distance.
``frame_scores`` maps those to frames (a frame's score is the mean over the windows that
cover it), so that :func:`skasd.inspection.explain` can say *when* in a clip the anomaly is.
The normal training clips' level per mel band (``band_profile_``, fitted with the model) says
*which* bands changed. numpy only: the inlier detectors import this without torch.
"""

import numpy as np

from ..features._stream import FeatureStore

__all__ = ["band_profile", "clip_chunks", "windows_to_frames", "window_starts", "check_frames"]

# Window of the inlier detectors' local statistics, in frames (about 1 s at 16 kHz, hop 512).
DEFAULT_WINDOW = 32

def window_starts(n_frames, width, hop, *, cover_end=False):
    """First frame of each window of ``width`` frames every ``hop`` frames; with
    ``cover_end`` one more window ending at the last frame where the hop leaves frames out."""
    starts = np.arange(0, n_frames - width + 1, hop)
    if cover_end and starts[-1] + width < n_frames:
        starts = np.append(starts, n_frames - width)
    return starts


def windows_to_frames(values, starts, width, n_frames):
    """Per-window values ``(n_clips, n_windows, ...)`` -> per-frame ``(n_clips, n_frames, ...)``:
    each frame gets the mean over the windows covering it; NaN where none does."""
    values = np.asarray(values, dtype=np.float64)
    out = np.zeros((values.shape[0], n_frames, *values.shape[2:]))
    count = np.zeros(n_frames)
    for k, start in enumerate(starts):
        out[:, start : start + width] += values[:, k, None]
        count[start : start + width] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out /= count.reshape(1, -1, *(1,) * (values.ndim - 2))
    out[:, count == 0] = np.nan
    return out


def check_frames(name, n_frames, width, what):
    """A clip shorter than one window gets an error naming both lengths."""
    if n_frames < width:
        raise ValueError(
            f"{name}: frame scores need clips of at least one {what} of {width} frames; got n_frames={n_frames}."
        )


def clip_chunks(X, size):
    """The clips of ``X`` (an array or a FeatureStore, read only when used) ``size`` at a time."""
    for start in range(0, len(X), size):
        rows = np.arange(start, min(start + size, len(X)))
        yield X.subset(rows) if isinstance(X, FeatureStore) else X[rows]


def band_profile(X, chunk=64):
    """Level of each band in the normal clips ``X`` ``(n_clips, n_bands, n_frames)`` (an array or
    a FeatureStore): ``(2, n_bands)`` float64, the mean over all frames and the standard
    deviation over all frames (in the units of ``X``: dB for log-mel)."""
    total = squares = 0.0
    n = 0
    for part in clip_chunks(X, chunk):
        part = np.asarray(part, dtype=np.float64)
        total = total + part.sum(axis=(0, 2))
        squares = squares + np.square(part).sum(axis=(0, 2))
        n += part.shape[0] * part.shape[2]
    mean = total / n
    return np.stack([mean, np.sqrt(np.maximum(squares / n - mean**2, 0.0))])
