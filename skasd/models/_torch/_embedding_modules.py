"""torch modules of ClassifierEmbedding: a ResNet-like encoder of log-mel patches, the pretrained
aisfx CNN as an alternative encoder (frozen or with its last blocks trainable), and the
classification heads they are trained through."""

import math

import torch

from ...features._aisfx import AISFX, aisfx_net
from ...features._encoders import load_encoder

__all__ = ["_ClassifierModule"]

# ArcFace scale and additive angular margin (Deng et al. 2019 use s=64, m=0.5 for faces;
# s=30 is the usual choice for the few classes of DCASE).
_ARC_SCALE, _ARC_MARGIN = 30.0, 0.5
# Sub-clusters per class of the sub-cluster AdaCos head (Wilkinghoff, ICASSP 2021).
_N_SUBCLUSTERS = 16
# AdaCos's scale is kept in this range: its update can run away (to overflow, or to 0
# where the non-target centres are as close as the target one) on tiny, easy problems.
_ADACOS_SCALE_RANGE = (1.0, 64.0)


class _ResBlock(torch.nn.Module):
    """Two 3x3 conv + batch-norm layers with a (1x1 strided, where needed) shortcut."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        conv = torch.nn.Conv2d
        self.body = torch.nn.Sequential(
            conv(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            torch.nn.BatchNorm2d(c_out),
            torch.nn.ReLU(),
            conv(c_out, c_out, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            torch.nn.Identity()
            if stride == 1 and c_in == c_out
            else torch.nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(c_out))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class _Encoder(torch.nn.Module):
    """ResNet-like encoder of a ``(n_mels, patch_frames)`` log-mel patch to ``embed_dim``.

    A 3x3 stride-2 stem conv, one residual block per entry of ``channels`` (stride 2 from
    the second on), mean and standard deviation over time (statistics pooling: steady
    spectra and transients), then a linear layer over (2 x channels x remaining mel
    bins) -- a learned weighting of frequency, like MobileFaceNet's global depthwise conv
    -- and batch normalisation: the embedding.
    """

    def __init__(self, n_mels, channels, embed_dim):
        super().__init__()
        c0 = channels[0]
        self.stem = torch.nn.Sequential(
            torch.nn.Conv2d(1, c0, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(c0), torch.nn.ReLU()
        )
        blocks, c_in, height = [], c0, (n_mels + 1) // 2
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            blocks.append(_ResBlock(c_in, c, stride))
            c_in, height = c, (height - 1) // stride + 1
        self.blocks = torch.nn.Sequential(*blocks)
        self.project = torch.nn.Linear(2 * c_in * height, embed_dim, bias=False)
        self.norm = torch.nn.BatchNorm1d(embed_dim)

    def forward(self, x):  # x: (batch, n_mels, frames)
        h = self.blocks(self.stem(x.unsqueeze(1)))  # (batch, c, mel', frames')
        return self.norm(self.project(torch.cat([h.mean(3), h.std(3, correction=0)], 1).flatten(1)))


class _AisfxEncoder(torch.nn.Module):
    """The aisfx CNN (:mod:`skasd.features._aisfx`) as the encoder of ``(n_mels, frames)`` aisfx log-mel blocks.

    Its four conv blocks give one 512-d vector per block (mean over frequency, max over time);
    then the embedding layer of :class:`_Encoder` (a linear layer to ``embed_dim`` and batch
    normalisation). The first ``4 - trainable_blocks`` conv blocks are frozen: their parameters
    do not require gradients and their batch normalisation stays in eval mode (running
    statistics unchanged) while the module trains. ``pretrained``: load the published weights
    from ``weights`` (a path, or None for the user's skasd cache, as
    :class:`~skasd.PretrainedEmbedding` does); else the CNN starts random, to be filled with a
    saved state dict (a model file).
    """

    def __init__(self, embed_dim, trainable_blocks, pretrained=False, weights=None):
        super().__init__()
        self.backbone = aisfx_net()
        if pretrained:
            self.backbone.load_state_dict(load_encoder("aisfx", weights).module.state_dict())
        self.n_frozen = len(AISFX.channels) - trainable_blocks
        for block in self.frozen_blocks():
            block.requires_grad_(False)
        self.project = torch.nn.Linear(AISFX.channels[-1], embed_dim, bias=False)
        self.norm = torch.nn.BatchNorm1d(embed_dim)
        self.train()

    def frozen_blocks(self):
        return [getattr(self.backbone, f"conv_block{k}") for k in range(1, self.n_frozen + 1)]

    def train(self, mode=True):
        super().train(mode)
        for block in self.frozen_blocks():  # frozen batch norm keeps its pretrained statistics
            block.eval()
        return self

    def forward(self, x):  # x: (batch, n_mels, frames); aisfx reads time first
        return self.norm(self.project(self.backbone(x.transpose(1, 2))))


class _SoftmaxHead(torch.nn.Module):
    """Plain linear classifier: logits ``W z + b``."""

    def __init__(self, embed_dim, n_classes):
        super().__init__()
        self.linear = torch.nn.Linear(embed_dim, n_classes)

    def forward(self, z, target):
        return self.linear(z)


class _CosineHead(torch.nn.Module):
    """Cosine similarities between the normalised embedding and ``n_centres`` learned centres."""

    def __init__(self, embed_dim, n_centres):
        super().__init__()
        self.centres = torch.nn.Parameter(torch.empty(n_centres, embed_dim))
        torch.nn.init.xavier_uniform_(self.centres)

    def cosines(self, z):
        return torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(self.centres, dim=1).T


class _ArcFaceHead(_CosineHead):
    """ArcFace (Deng et al., CVPR 2019): ``s * cos(theta + m)`` for the target class.

    With mixup the target is soft: each class's logit is the target weight's mix of
    ``cos(theta + m)`` and ``cos(theta)``, which is ArcFace for a one-hot target.
    """

    def __init__(self, embed_dim, n_classes):
        super().__init__(embed_dim, n_classes)

    def forward(self, z, target):
        cos = self.cosines(z)
        if target is None:
            return _ARC_SCALE * cos
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        # beyond pi - m, cos(theta + m) would increase again: the reference implementation
        # then uses cos(theta) - m sin(m)
        with_margin = torch.where(
            theta + _ARC_MARGIN < math.pi, torch.cos(theta + _ARC_MARGIN), cos - _ARC_MARGIN * math.sin(_ARC_MARGIN)
        )
        return _ARC_SCALE * (target * with_margin + (1 - target) * cos)


class _AdaCosHead(_CosineHead):
    """(Sub-cluster) AdaCos: cosine logits with a scale adapted to the batch, no margin.

    AdaCos (Zhang et al., CVPR 2019) starts at ``s = sqrt(2) log(C - 1)`` and, on every
    training batch, sets ``s = log(B_avg) / cos(min(pi/4, theta_med))`` where ``B_avg`` is
    the mean over the batch of ``sum over non-target centres of exp(s cos)`` and
    ``theta_med`` the median angle to the target class. Sub-cluster AdaCos (Wilkinghoff,
    ICASSP 2021) gives each class ``n_sub`` centres; a class's logit is the log-sum-exp of
    its centres' scaled cosines. ``s`` is a buffer, so it is saved with the weights; it is
    kept within ``_ADACOS_SCALE_RANGE``.
    """

    def __init__(self, embed_dim, n_classes, n_sub=1):
        super().__init__(embed_dim, n_classes * n_sub)
        self.n_classes, self.n_sub = n_classes, n_sub
        self.register_buffer("scale", torch.tensor(math.sqrt(2) * math.log(max(n_classes * n_sub - 1, 2))))

    def forward(self, z, target):
        cos = self.cosines(z).view(len(z), self.n_classes, self.n_sub)
        if self.training and target is not None:
            with torch.no_grad():
                s = self.scale
                weight = target[:, :, None]  # soft target weight of each centre's class
                # log B_avg in log space: exp(s cos) overflows float32 for large s
                per_clip = torch.logsumexp((torch.log1p(-weight.clamp_max(1 - 1e-6)) + s * cos).flatten(1), 1)
                log_b_avg = torch.logsumexp(per_clip, 0) - math.log(len(z))
                target_cos = (weight * cos.max(2, keepdim=True).values).sum((1, 2)) / weight.sum((1, 2))
                theta_med = torch.acos(target_cos.clamp(-1 + 1e-6, 1 - 1e-6)).median()
                scale = log_b_avg / torch.cos(theta_med.clamp_max(math.pi / 4))
                self.scale.copy_(scale.clamp(_ADACOS_SCALE_RANGE[0], _ADACOS_SCALE_RANGE[1]))
        return torch.logsumexp(self.scale * cos, dim=2)


_HEADS = {
    "softmax": lambda d, c: _SoftmaxHead(d, c),
    "arcface": lambda d, c: _ArcFaceHead(d, c),
    "adacos": lambda d, c: _AdaCosHead(d, c, 1),
    "subcluster_adacos": lambda d, c: _AdaCosHead(d, c, _N_SUBCLUSTERS),
}


class _ClassifierModule(torch.nn.Module):
    """Encoder + classification head; ``forward(x, target)`` returns class logits.

    ``backbone="aisfx"``: the encoder is :class:`_AisfxEncoder` (``n_mels`` and ``channels``
    unused); ``trainable_blocks``, ``pretrained`` and ``weights`` go to it.
    """

    def __init__(self, n_mels, n_classes, channels, embed_dim, loss, backbone=None, trainable_blocks=0,
                 pretrained=False, weights=None):
        super().__init__()
        if backbone == "aisfx":
            self.encoder = _AisfxEncoder(embed_dim, trainable_blocks, pretrained, weights)
        else:
            self.encoder = _Encoder(n_mels, channels, embed_dim)
        self.head = _HEADS[loss](embed_dim, n_classes)
        self.embed_dim = embed_dim

    def forward(self, x, target=None):
        return self.head(self.encoder(x), target)
