"""Audio I/O: decode wav/flac files and turn a batch of clips into one waveform array.

:func:`load_audio` reads one file. :func:`_load_batch` is the private helper every
transformer uses to accept "a list of paths, a list of waveforms or a 2-D array" as ``X``.
"""

import errno
import os
import struct
import warnings
from numbers import Integral, Real

import librosa
import numpy as np
import soundfile as sf
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ..exceptions import AudioError
from ..utils._validation import listing

__all__ = ["load_audio"]

# A progress bar is shown (when ``verbose``) from this many files on.
_PROGRESS_MIN_FILES = 8


def _check_sr(sr):
    if not isinstance(sr, Integral) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"sr must be a positive integer (samples per second), got {sr!r}")


def _n_samples(duration, sr):
    """Clip length in samples for ``duration`` seconds, or None."""
    if duration is None:
        return None
    if not isinstance(duration, Real) or isinstance(duration, bool) or not duration > 0:
        raise ValueError(f"duration must be None or a positive number of seconds, got {duration!r}")
    return max(1, round(duration * sr))


def _fix_length(y, n):
    """Crop or zero-pad the last axis of ``y`` to ``n`` samples (``n=None``: unchanged)."""
    if n is None or y.shape[-1] == n:
        return y
    if y.shape[-1] > n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def _wav_data_chunk(path):
    """``(declared, available)`` bytes of a RIFF/WAVE file's data chunk: the size its header
    declares (0 and 0xFFFFFFFF mean "unknown": a streamed or RF64 file) and the bytes the
    file holds after the chunk header. None for another format or a file without a data chunk."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                return chunk_size, size - pos - 8
            pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _wav_truncation(path):
    """Message if a RIFF/WAVE file holds fewer data bytes than its header declares, else None.

    libsndfile silently shortens such files, so this is checked by hand.
    """
    chunk = _wav_data_chunk(path)
    if chunk is None:
        return None
    declared, available = chunk
    if declared not in (0, 0xFFFFFFFF) and available < declared:
        return f"truncated: its header declares {declared} bytes of audio data but the file holds only {available}"
    return None


def _read(path, sr, mono):
    """Decode one file; returns ``(y, file_sr)`` with ``y`` resampled to ``sr``, no warning."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(
            errno.EISDIR, "Is a directory, not an audio file (pass the files inside it)", path
        )
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such audio file", path)
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file (0 bytes), not audio")
    problem = _wav_truncation(path)
    if problem is None:
        try:
            with sf.SoundFile(path) as f:
                file_sr, declared = f.samplerate, f.frames
                y = f.read(dtype="float32", always_2d=True).T  # (channels, samples)
        except sf.SoundFileError as e:
            raise AudioError(
                f"{path}: cannot decode as audio (not a wav/flac file, or corrupt/truncated): {e}"
            ) from e
        if y.shape[1] < declared:
            problem = f"truncated: decoded {y.shape[1]} of the {declared} samples its header declares"
    if problem is not None:
        raise AudioError(f"{path}: {problem}")
    if y.shape[1] == 0:
        raise AudioError(f"{path}: zero-length audio (the file holds no samples)")
    if not np.isfinite(y).all():
        raise AudioError(f"{path}: the decoded waveform contains NaN or infinite values")
    if mono:
        y = y.mean(axis=0)
    if file_sr != sr:
        y = np.clip(librosa.resample(y, orig_sr=file_sr, target_sr=sr, axis=-1), -1.0, 1.0)
    return np.ascontiguousarray(y, dtype=np.float32), file_sr


def load_audio(path, sr=16000, mono=True, duration=None):
    """Read a wav/flac file as a float32 waveform at ``sr`` Hz.

    Parameters
    ----------
    path : str or path-like
        Audio file (any format libsndfile reads: wav, flac, ogg, ...).
    sr : int, default=16000
        Target sample rate. A file at another rate is resampled (soxr via
        :func:`librosa.resample`) and a :class:`UserWarning` says so.
    mono : bool, default=True
        Mix multichannel files down to mono (mean of the channels). With
        ``mono=False`` the result is 2-D ``(n_channels, n_samples)``, also for mono files.
    duration : float, default=None
        Length in seconds: longer clips are cropped, shorter ones zero-padded at the end
        to exactly ``round(duration * sr)`` samples. ``None`` keeps the file's length.

    Returns
    -------
    y : ndarray of float32, shape (n_samples,) or (n_channels, n_samples)
        Samples in [-1, 1] for PCM files (float-encoded files are returned as stored).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    IsADirectoryError
        ``path`` is a directory.
    AudioError
        Not audio, corrupt or truncated, zero-length, or NaN/inf samples.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> from skasd import load_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> sf.write(path, 0.1 * np.sin(np.arange(8000) / 5), 8000)
    >>> y = load_audio(path, sr=8000)
    >>> y.dtype, y.shape
    (dtype('float32'), (8000,))
    >>> load_audio(path, sr=8000, duration=2.0).shape  # zero-padded
    (16000,)
    """
    _check_sr(sr)
    n = _n_samples(duration, sr)
    y, file_sr = _read(path, sr, mono)
    if file_sr != sr:
        warnings.warn(
            f"{os.fspath(path)}: resampled from {file_sr} Hz to {sr} Hz", UserWarning, stacklevel=2
        )
    return _fix_length(y, n)


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def _row_scan(rows):
    """``(non_finite, silent)`` row indices of a 2-D float32 array, from one pass of row sums."""
    sums = rows.sum(axis=1)
    # A row sum is NaN/inf when a sample is; confirm, as a huge finite row could overflow it.
    bad = [i for i in np.flatnonzero(~np.isfinite(sums)) if not np.isfinite(rows[i]).all()]
    silent = [i for i in np.flatnonzero(sums == 0) if not rows[i].any()]
    return bad, silent


def _non_finite_error(names):
    return AudioError(f"{listing(names)}: NaN or infinite values in the waveform")


def _check_waveform(W, name, finite=True):
    """Validate a numeric waveform array (1-D clip or 2-D batch); returns it as float32."""
    if W.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported; pass real-valued waveforms")
    if W.dtype.kind not in "biuf":
        try:
            W = W.astype(np.float32)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: waveforms must be numeric, got dtype {W.dtype}") from e
    if W.shape[-1] == 0:
        # Worded like scikit-learn's check_array for (n, 0) arrays.
        raise AudioError(
            f"{name}: zero-length waveform, 0 feature(s) (shape={W.shape}) while a minimum of 1 is required."
        )
    W = np.ascontiguousarray(W, dtype=np.float32)
    if finite:
        bad, _ = _row_scan(W.reshape(-1, W.shape[-1]))
        if bad:
            raise _non_finite_error([f"clip {i}" for i in bad] if W.ndim == 2 else [name])
    return W


def _check_clips(X, finite=True):
    """Split and validate ``X`` without decoding files.

    Returns ``("paths", list_of_paths)``, ``("waveforms", list_of_float32_1d)`` or
    ``("array", float32_2d)``. Used by ``transform`` and, as a cheap check, by ``fit``.
    ``finite=False`` leaves the NaN/inf check of waveforms to the caller.
    """
    if _is_path(X):
        raise TypeError(
            f"got a single path {os.fspath(X)!r}; pass a list of paths, e.g. [path], "
            "or a list/2-D array of waveforms"
        )
    if hasattr(X, "toarray") or hasattr(X, "tocoo"):
        raise TypeError("sparse input is not supported; pass dense waveforms or a list of paths")
    if hasattr(X, "to_numpy") and getattr(X, "ndim", None) == 1:  # pandas Series / Index
        X = X.to_numpy()
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUS" and X.size and _is_path(X.flat[0]):
        if X.ndim == 2 and X.shape[1] == 1:  # e.g. df[["path"]].to_numpy()
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"got a {X.ndim}-D array of paths, shape {X.shape}; pass a 1-D list of paths")
        X = list(X)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("got no clips: X is empty")
        kinds = {_is_path(x) for x in X}
        if kinds == {True}:
            return "paths", list(X)
        if kinds != {False}:
            raise TypeError("X mixes paths and waveforms; pass either a list of paths or a list of waveforms")
        clips = []
        for i, x in enumerate(X):
            x = np.asarray(x)
            if x.ndim != 1:
                raise ValueError(f"clip {i} has shape {x.shape}; each waveform in a list must be 1-D")
            clips.append(_check_waveform(x, f"clip {i}", finite))
        return "waveforms", clips
    if not (isinstance(X, np.ndarray) or hasattr(X, "__array__")):
        raise TypeError(
            f"cannot read clips from a {type(X).__name__}; pass a list of paths, "
            "a list of 1-D waveforms or a 2-D array (n_clips, n_samples)"
        )
    W = np.asarray(X)
    if W.ndim < 2:
        raise ValueError(
            f"got a {W.ndim}-D array of shape {W.shape}. Reshape your data: pass a 2-D array "
            "(n_clips, n_samples), e.g. X[np.newaxis] for a single clip, or a list of paths"
        )
    if W.ndim > 2:
        raise ValueError(
            f"got {W.ndim}-D input of shape {W.shape}: looks like features already (e.g. the output "
            "of LogMelTransformer); pass waveforms (n_clips, n_samples) or a list of paths"
        )
    if W.shape[0] == 0:
        raise ValueError(f"got no clips: X has shape {W.shape}")
    return "array", _check_waveform(W, "X", finite)


def _stack(clips, names, n):
    """Stack 1-D clips, cropping/padding to ``n`` samples, or failing on unequal lengths."""
    if n is not None:
        return np.stack([_fix_length(c, n) for c in clips])
    lengths = np.array([c.shape[-1] for c in clips])
    if (lengths != lengths[0]).any():
        values, counts = np.unique(lengths, return_counts=True)
        common = values[np.argmax(counts)]
        odd = [f"{names[i]} ({lengths[i]} samples)" for i in np.flatnonzero(lengths != common)]
        raise AudioError(
            f"clips differ in length: most have {common} samples but {listing(odd)}; "
            "pass duration= (seconds) to crop/zero-pad every clip to one length"
        )
    return np.stack(clips)


def _decode_all(paths, sr, n_jobs, verbose):
    jobs = (delayed(_read)(p, sr, True) for p in paths)
    results = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(jobs)
    if verbose and len(paths) >= _PROGRESS_MIN_FILES:
        results = tqdm(results, total=len(paths), desc="decoding", unit="file")
    return list(results)


def _load_batch(X, *, sr=16000, duration=None, n_jobs=None, verbose=False, warn_resampled=True):
    """Turn a batch of clips into a float32 array ``(n_clips, n_samples)`` at ``sr`` Hz.

    ``X`` is a list/tuple/pandas Series/1-D object array of paths (decoded in parallel
    with joblib threads, ``n_jobs``; a tqdm bar when ``verbose`` and many files), a list of
    1-D waveforms, or a 2-D array. ``duration`` (seconds) crops/pads every clip; without it
    all clips must have the same length. Warns once per batch about resampled files (unless
    ``warn_resampled=False``: callers for which resampling is the rule) and about silent
    (all-zero) clips.
    """
    _check_sr(sr)
    n = _n_samples(duration, sr)
    kind, clips = _check_clips(X, finite=False)  # checked below, in one pass with silence
    if kind == "array":
        names = [f"clip {i}" for i in range(len(clips))]
        W = _fix_length(clips, n)
    elif kind == "waveforms":
        names = [f"clip {i}" for i in range(len(clips))]
        W = _stack(clips, names, n)
    else:
        names = [os.fspath(p) for p in clips]
        decoded = _decode_all(clips, sr, n_jobs, verbose)
        resampled = [(name, fsr) for name, (_, fsr) in zip(names, decoded) if fsr != sr]
        if resampled and warn_resampled:
            rates = sorted({fsr for _, fsr in resampled})
            warnings.warn(
                f"{len(resampled)} file(s) resampled from {'/'.join(map(str, rates))} Hz to {sr} Hz: "
                f"{listing(name for name, _ in resampled)}",
                UserWarning,
                stacklevel=3,
            )
        W = _stack([y for y, _ in decoded], names, n)
    bad, silent = _row_scan(W)
    if bad:
        raise _non_finite_error([names[i] for i in bad])
    if silent:
        warnings.warn(
            f"{len(silent)} of {len(W)} clip(s) are silent (all zeros, e.g. a dead microphone); "
            f"their features sit at the log floor: {listing(names[i] for i in silent)}",
            UserWarning,
            stacklevel=3,
        )
    return W
