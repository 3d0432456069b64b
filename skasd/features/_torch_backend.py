"""torch backend of the log-mel transformers: framed ``rfft`` + sparse mel matmul, in chunks.

It computes what :func:`librosa.feature.melspectrogram` computes, in float32: the same
periodic Hann window, the same padding of centred frames (zeros by default, as librosa 0.11;
``torch.stft`` would reflect unless told), the same librosa mel filter matrix, and numpy's
log10 as in librosa users' code. torch is imported inside the
functions (at the first ``backend="torch"`` transform), so importing the feature transformers
does not import it.

Why it is built this way (CPU, 2 cores shared with other jobs; see ``benchmarks/README.md``):

- The work is memory-bound, so clips go through one at a time: the ~1.3 MB complex
  spectrogram of a 10 s clip stays in cache (one call on 64 clips was no faster than librosa).
- The mel filter bank is ~98 % zeros (each FFT bin feeds at most two bands): a sparse CSR
  matmul on the ``(n_bins, n_frames)`` power spectrogram is 3-5x cheaper than a dense one.
- Frames are cut from a reused zero-edged buffer, windowed and ``torch.fft.rfft``-ed (what
  ``torch.stft`` does, minus its padding copies); the mel matmul writes straight into the output,
  and the log runs once at the end with numpy's SIMD log10 (~3x faster than torch's here).
- Clips are spread over single-threaded workers (one per torch thread). torch's own
  multi-threaded kernels stall at every OpenMP barrier when other processes share the CPU
  (64 clips took 2-10 s instead of 0.05 s here); independent workers do not.
"""

import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Clips per step: one on CPU (see above); GPUs want large batches.
_CPU_CHUNK = 1
_CUDA_CHUNK = 64


def _log_mel_range(x, out, basis, win, *, chunk, device, power, n_fft, hop_length, center, pad_mode):
    """Log-mel of clips ``x`` (a torch CPU tensor) into the float32 ndarray ``out``."""
    import torch
    import torch.nn.functional as F

    n_bins, n_samples = basis.shape[1], x.shape[1]
    k_max, n_frames = min(chunk, x.shape[0]), out.shape[2]
    pad = n_fft // 2 if center else 0
    # Zero padding: clips are copied into the middle of a buffer whose edges stay zero.
    padded = None
    if center and pad_mode == "constant":
        padded = torch.zeros((k_max, n_samples + 2 * pad), device=device)
    frames = torch.empty((k_max, n_frames, n_fft), device=device)
    pwr = torch.empty((k_max, n_bins, n_frames), device=device)
    with torch.inference_mode():
        for start in range(0, x.shape[0], chunk):
            k = min(chunk, x.shape[0] - start)
            clips = x[start : start + k].to(device)
            if padded is not None:
                padded[:k, pad : pad + n_samples].copy_(clips)
                clips = padded[:k]
            elif center:
                clips = F.pad(clips, (pad, pad), mode=pad_mode)
            torch.mul(clips.unfold(-1, n_fft, hop_length), win, out=frames[:k])
            parts = torch.view_as_real(torch.fft.rfft(frames[:k])).square_()  # (k, frames, bins, [re, im])
            # |S|^2 written straight into the (n_bins, n_frames) layout the mel matmul wants.
            torch.add(parts[..., 0], parts[..., 1], out=pwr[:k].transpose(1, 2))
            if power != 2:
                pwr[:k].pow_(power / 2)
            dest = out[start : start + k]
            if basis.layout == torch.sparse_csr:  # CPU: one sparse matmul per clip, into the output
                for p, d in zip(pwr[:k], dest):
                    torch.mm(basis, p, out=torch.from_numpy(d))
            else:
                torch.from_numpy(dest).copy_(torch.matmul(basis, pwr[:k]))
    # numpy's SIMD log10 is ~3x faster than torch's here (and is the one librosa users run).
    np.add(out, sys.float_info.epsilon, out=out)
    np.log10(out, out=out)
    out *= 20.0 / power


def _constants(mel_basis, window, device):
    """Mel matrix (sparse CSR with int32 indices on CPU, dense on GPUs) and window as tensors."""
    import torch

    basis = torch.from_numpy(mel_basis).to(device)
    if device.type == "cpu":
        with warnings.catch_warnings():  # "sparse CSR support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            csr = basis.to_sparse_csr()
            basis = torch.sparse_csr_tensor(
                csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape
            )  # int32 indices: MKL would convert int64 ones on every call
    return basis, torch.from_numpy(np.asarray(window, dtype=np.float32)).to(device)


def log_mel_torch(W, *, mel_basis, window, n_fft, hop_length, power, center, pad_mode, device="auto"):
    """Log-mel spectrograms ``20/power * log10(mel + eps)`` of a waveform batch with torch.

    Parameters
    ----------
    W : ndarray of float32, shape (n_clips, n_samples)
    mel_basis : ndarray of float32, shape (n_mels, 1 + n_fft // 2)
        The librosa mel filter matrix.
    window : ndarray, shape (n_fft,)
        Analysis window (librosa's periodic Hann).
    n_fft, hop_length, power, center, pad_mode
        As in :func:`librosa.feature.melspectrogram`.
    device : str or torch.device, default="auto"
        ``"auto"`` = CUDA when available, else CPU.

    Returns
    -------
    ndarray of float32, shape (n_clips, n_mels, n_frames)
    """
    import torch

    from ..utils._torch_compat import resolve_device, torch_threads

    device = resolve_device(device)
    n_samples = W.shape[1]
    if center and pad_mode == "reflect" and n_samples <= n_fft // 2:
        raise ValueError(f"pad_mode='reflect' needs clips longer than n_fft // 2 = {n_fft // 2} samples")
    n_frames = 1 + (n_samples if center else n_samples - n_fft) // hop_length
    if n_frames < 1:
        raise ValueError(f"clips of {n_samples} samples are shorter than n_fft={n_fft}; use center=True")
    out = np.empty((W.shape[0], mel_basis.shape[0], n_frames), dtype=np.float32)
    x = torch.from_numpy(W)
    kwargs = dict(power=power, n_fft=n_fft, hop_length=hop_length, center=center, pad_mode=pad_mode)
    if device.type != "cpu":
        basis, win = _constants(mel_basis, window, device)
        _log_mel_range(x, out, basis, win, chunk=_CUDA_CHUNK, device=device, **kwargs)
        return out
    n_workers = min(torch.get_num_threads(), W.shape[0])
    bounds = np.linspace(0, W.shape[0], n_workers + 1).astype(int)
    # Everything, constants included, runs single-threaded: one multi-threaded op just before
    # the workers start would leave an OpenMP thread spinning, stealing a core from them.
    with torch_threads(1), ThreadPoolExecutor(n_workers) as pool:
        basis, win = _constants(mel_basis, window, device)
        jobs = [
            pool.submit(
                _log_mel_range, x[a:b], out[a:b], basis, win, chunk=_CPU_CHUNK, device=device, **kwargs
            )
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        for job in jobs:
            job.result()
    return out
