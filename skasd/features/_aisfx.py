"""The aisfx encoder: skasd's implementation of the CNN of Ma and Lerch (ISMIR 2022) and its input pipeline.

A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound Effects
Libraries", Proc. ISMIR 2022; the published weights are licensed CC BY 4.0. The network and its
input are rebuilt here from the checkpoint's layer shapes and the authors' description
(``../shared/models/aisfx/SOURCE.md``); the ``aisfx`` package is not a dependency.

- :func:`aisfx_logmel`: mono audio at 44.1 kHz, peak-normalised; mel power spectrogram (window
  2048, hop 1024, 96 HTK bands from 0 to 22.05 kHz, each filter of unit L1 norm), then
  ``log10(1 + 10000 * mel) / 9.4578``.
- :func:`aisfx_blocks`: blocks of 100 frames (about 2.3 s), hopped by 50, time first.
- :func:`aisfx_net`: the embedding network, four blocks of two bias-free 3x3 convolutions with
  batch norm and ReLU, 2x2 max pooling after the first three; its output at block ``k`` (after
  that block's pooling) is the mean over frequency, then the max over time: one vector per block of frames (64, 128, 256 or
  512 values for blocks 1 to 4).

torch is imported inside the functions, so importing this module does not load it.
"""

import copy
from functools import lru_cache

import librosa
import numpy as np

__all__ = ["AISFX", "aisfx_blocks", "aisfx_logmel", "aisfx_net", "inference_net"]


class AISFX:
    """Constants of the aisfx encoder, its input and its published checkpoint."""

    sample_rate = 44100
    n_fft = 2048
    hop_length = 1024
    n_mels = 96
    log_scale = 10000.0
    max_value = 9.4578  # the authors' global maximum of the log-mel
    block = 100  # frames per block (about 2.3 s)
    block_hop = 50
    channels = (64, 128, 256, 512)
    # clips shorter than this give fewer than one block of frames (librosa's centred frames)
    min_samples = (block - 1) * hop_length
    # The file aisfx/models/checkpoint.pth of the wheel aisfx==0.1.2 on PyPI.
    version = "0.1.2"
    wheel = "aisfx-0.1.2-py2.py3-none-any.whl"
    wheel_sha256 = "bfe219950715af179e9a1653e7117cc1852baef267cd6596c42cad74afe1d194"
    wheel_member = "aisfx/models/checkpoint.pth"
    checkpoint_sha256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
    prefix = "embedding_net."
    credit = (
        'A. B. Ma and A. Lerch, "Representation Learning for the Automatic Indexing of Sound Effects '
        'Libraries", Proc. ISMIR 2022; weights licensed CC BY 4.0'
    )


@lru_cache(maxsize=1)
def _mel_basis():
    return librosa.filters.mel(sr=AISFX.sample_rate, n_fft=AISFX.n_fft, n_mels=AISFX.n_mels, fmin=0.0,
                               fmax=AISFX.sample_rate / 2, htk=True, norm=1).astype(np.float32)


def aisfx_logmel(W):
    """The aisfx input of waveforms ``W`` (n_clips, n_samples) at 44.1 kHz: float32 (n_clips, n_frames, 96).

    Each clip is divided by its peak (a silent clip stays zero).
    """
    W = np.asarray(W, dtype=np.float32)
    peak = np.abs(W).max(axis=1, keepdims=True)
    W = W / np.where(peak > 0, peak, 1.0)
    S = np.abs(librosa.stft(W, n_fft=AISFX.n_fft, hop_length=AISFX.hop_length, window="hann", center=True)) ** 2
    mel = np.einsum("mf,nft->ntm", _mel_basis(), S.astype(np.float32, copy=False), optimize=True)
    return (np.log10(1.0 + AISFX.log_scale * mel) / AISFX.max_value).astype(np.float32, copy=False)


def aisfx_blocks(logmel):
    """Blocks of 100 frames hopped by 50 of a (n_clips, n_frames, 96) log-mel: float32 (n_clips, n_blocks, 100, 96).

    A tail shorter than a block after the last full block is dropped; clips of fewer than
    100 frames are zero-padded to one block (the caller warns about such clips).
    """
    n_frames = logmel.shape[1]
    if n_frames < AISFX.block:
        logmel = np.pad(logmel, [(0, 0), (0, AISFX.block - n_frames), (0, 0)])
        n_frames = AISFX.block
    starts = range(0, n_frames - AISFX.block + 1, AISFX.block_hop)
    return np.stack([logmel[:, s : s + AISFX.block] for s in starts], axis=1)


@lru_cache(maxsize=1)
def _net_class():
    import torch
    from torch import nn

    class ConvBlock(nn.Module):
        def __init__(self, n_in, n_out, pool):
            super().__init__()
            self.conv1 = nn.Conv2d(n_in, n_out, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(n_out)
            self.conv2 = nn.Conv2d(n_out, n_out, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(n_out)
            self.pool = pool

        def forward(self, x):
            # in place, as torchvision's ResNets: batch norm keeps its input, not its output, for
            # the backward pass; on the CPU a separate ReLU pass cost 10 % of an embedding
            x = torch.relu_(self.bn1(self.conv1(x)))
            x = torch.relu_(self.bn2(self.conv2(x)))
            return nn.functional.max_pool2d(x, 2) if self.pool else x

    class AisfxNet(nn.Module):
        """The aisfx embedding network: (batch, 100, 96) log-mel blocks, time first, to one
        vector per block at block ``layer`` (1-4): ``forward(x, layer=4)`` -> (batch, channels)."""

        def __init__(self):
            super().__init__()
            n_in = 1
            for k, n_out in enumerate(AISFX.channels, start=1):
                setattr(self, f"conv_block{k}", ConvBlock(n_in, n_out, pool=k < len(AISFX.channels)))
                n_in = n_out

        def forward(self, x, layer=4):
            x = x[:, None]  # (batch, 1, time, frequency)
            for k in range(1, layer + 1):
                x = getattr(self, f"conv_block{k}")(x)
            return x.mean(dim=3).amax(dim=2)

    return AisfxNet


def inference_net(net):
    """A frozen copy of the aisfx network for embedding: each batch norm folded into its
    convolution and the weights in channels-last memory, which oneDNN runs 1.35x faster on a
    CPU core (benchmarks/README.md); outputs agree with ``net``'s to float32 rounding (1e-6)."""
    import torch
    from torch.ao.quantization import fuse_modules

    net = copy.deepcopy(net).eval()
    pairs = [[f"conv_block{k}.conv{i}", f"conv_block{k}.bn{i}"] for k in range(1, len(AISFX.channels) + 1)
             for i in (1, 2)]
    fuse_modules(net, pairs, inplace=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.to(memory_format=torch.channels_last)


def aisfx_net(state=None):
    """The aisfx embedding network in eval mode, with the weights ``state`` (a dict of name ->
    tensor without the ``embedding_net.`` prefix) when given. Raises ValueError when ``state``
    does not fit the network (missing, unexpected or wrongly shaped layers)."""
    net = _net_class()()
    if state is not None:
        net.load_state_dict(state, strict=True)
    return net.eval()
