"""What the report embeds: figures as PNG data URIs and clips as 16-bit FLAC."""

import base64
import io
import re

import numpy as np
import soundfile as sf


def data_uri(payload, mime):
    """``data:<mime>;base64,...`` for ``payload`` bytes."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def encode_flac(waveform, sr):
    """The waveform as 16-bit FLAC bytes (lossless at CD depth, about half a 16-bit WAV).

    FLAC plays in every current browser (Chrome, Firefox, Safari, Edge, their
    phone versions) and, unlike a lossy codec, keeps the faint clicks and
    harmonics an engineer listens for.
    """
    buf = io.BytesIO()
    sf.write(buf, np.clip(waveform, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def safe_name(name):
    """A file name with only ``[A-Za-z0-9._-]`` (others become ``_``), for the audio folder."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "clip"


def new_figure(figsize):
    """A matplotlib Figure and Axes without pyplot (no global state, no backend switch)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


def image_uri(fig, dpi=100, fmt="png"):
    """The figure as a PNG (line art) or JPEG (spectrograms: a quarter of the PNG's size) data URI."""
    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": 85}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, dpi=dpi, **kwargs)
    return data_uri(buf.getvalue(), f"image/{fmt}")


def logmel_image(S, sr, hop_length, fmin, fmax, vmin, vmax):
    """Small log-mel image of one clip (time x mel frequency, shared colour scale), as a data URI."""
    from ..plot import SpectrogramDisplay

    fig, ax = new_figure((3.6, 1.7))
    SpectrogramDisplay(S=S, sr=sr, hop_length=hop_length, fmin=fmin, fmax=fmax).plot(
        ax=ax, colorbar=False, vmin=vmin, vmax=vmax, cmap="magma"
    )
    ax.set_xlabel("Time (s)", fontsize=7)
    ax.set_ylabel("Hz", fontsize=7)
    ax.tick_params(labelsize=6)
    return image_uri(fig, dpi=80, fmt="jpeg")
