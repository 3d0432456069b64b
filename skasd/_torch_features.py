"""torch backend of the log-mel transformers: batched ``torch.stft`` + sparse mel matmul.

Imported lazily by :mod:`skasd._features` (``backend="torch"``), so ``import skasd`` does
not import torch. Numerically it follows :func:`librosa.feature.melspectrogram` in float32:
the same periodic Hann window, the same librosa mel filter matrix, the same padding.

Speed notes (CPU, measured with ``benchmarks/bench_features.py``): the work is memory-bound,
so clips go through in small chunks whose intermediates stay in cache; the mel filter bank is
~98 % zeros (each FFT bin feeds at most two bands), so it is applied as a sparse CSR matmul on
the ``(n_bins, n_frames)`` power spectrogram.
"""

import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

# Clips per torch call. CPU: small chunks keep the ~1.3 MB/clip complex spectrogram in cache
# (one call on 64 clips was memory-bound and barely faster than librosa). CUDA: large chunks.
_CPU_CHUNK = 2
_CUDA_CHUNK = 64


@contextmanager
def _torch_threads(n):
    """Temporarily set torch's intra-op thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resolve_device(device):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e


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

    device = _resolve_device(device)
    on_cpu = device.type == "cpu"
    chunk = _CPU_CHUNK if on_cpu else _CUDA_CHUNK
    n_mels, n_bins = mel_basis.shape
    n_frames = 1 + (W.shape[1] - (0 if center else n_fft)) // hop_length
    if n_frames < 1:
        raise ValueError(
            f"clips of {W.shape[1]} samples are shorter than n_fft={n_fft}; use center=True or a smaller n_fft"
        )
    out = np.empty((W.shape[0], n_mels, n_frames), dtype=np.float32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        basis = torch.from_numpy(mel_basis).to(device).to_sparse_csr()
    win = torch.from_numpy(np.asarray(window, dtype=np.float32)).to(device)
    x_all = torch.from_numpy(W)

    def run_chunk(start):
        with torch.inference_mode():
            x = x_all[start : start + chunk].to(device)
            k = x.shape[0]
            spec = torch.stft(
                x, n_fft, hop_length, window=win, center=center, pad_mode=pad_mode, return_complex=True
            )  # (k, n_bins, n_frames), a transposed view of a (k, n_frames, n_bins) buffer
            parts = torch.view_as_real(spec.transpose(1, 2)).square_()  # (k, n_frames, n_bins, [re, im])
            # |S|^2 written straight into the (n_bins, k, n_frames) layout the sparse matmul wants.
            pwr = torch.empty((n_bins, k, n_frames), device=device)
            torch.add(parts[..., 0], parts[..., 1], out=pwr.permute(1, 2, 0))
            if power != 2:
                pwr.pow_(power / 2)
            mel = torch.sparse.mm(basis, pwr.view(n_bins, -1)).view(n_mels, k, n_frames)
            logmel = mel.add_(sys.float_info.epsilon).log10_().mul_(20.0 / power)
            torch.from_numpy(out[start : start + k]).permute(1, 0, 2).copy_(logmel)

    starts = range(0, W.shape[0], chunk)
    if not on_cpu:
        for start in starts:
            run_chunk(start)
        return out
    # CPU: one single-threaded torch worker per thread torch would use. Under CPU contention,
    # torch's own multi-threaded kernels stall at every OpenMP barrier (64 clips took 2-10 s
    # instead of 0.05 s on the shared 2-core machine); independent workers do not.
    n_workers = min(torch.get_num_threads(), len(starts))
    with _torch_threads(1), ThreadPoolExecutor(n_workers) as pool:
        list(pool.map(run_chunk, starts))
    return out
