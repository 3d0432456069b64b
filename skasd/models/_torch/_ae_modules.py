"""torch modules of the autoencoder detectors: the module contract and the three networks."""

import torch

__all__ = ["AEModule"]

_CHANNELS = (32, 64, 128, 256)
_DROPOUT = (0.0, 0.2, 0.3, 0.3)
_LATENT_CHANNELS = 40


class AEModule(torch.nn.Module):
    """Contract of the torch modules the detectors train.

    ``forward(x)`` takes a batch of windows ``(batch, width, n_mels)`` and returns
    ``(reconstruction, penalty)``: the reconstruction has the shape of ``x`` and is
    compared with ``x`` by mean squared error; ``penalty`` is the scalar the model adds to
    that loss (KL term, SVDD distance; ``0`` for a plain autoencoder). ``embed(x)`` returns
    one latent vector ``(batch, embed_dim)`` per window.
    """

    embed_dim: int

    def init_from_data(self, batches):
        """Set data-dependent state (e.g. an SVDD centre) before training; no-op here.

        ``batches`` iterates over ``(windows, windows)`` batches of the training set.
        """

    def window_errors(self, x):
        """Mean squared reconstruction error of each window, shape ``(batch,)``."""
        return self.error_map(x).flatten(1).mean(1)

    def error_map(self, x):
        """Squared reconstruction error of each value of each window, the shape of ``x``."""
        recon, _ = self(x)
        return (recon - x).square()


def dense_stack(sizes, batch_norm=True):
    """Linear (+ BatchNorm1d) + ReLU for each consecutive pair in ``sizes``."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append(torch.nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(torch.nn.BatchNorm1d(n_out))
        layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def keras_init_(module):
    """Re-initialise like Keras, the framework of the DCASE baseline and the report:
    Glorot-uniform weights and zero biases for Linear layers, BatchNorm momentum 0.01
    (Keras' 0.99) and eps 1e-3."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.BatchNorm1d):
            m.momentum, m.eps = 0.01, 1e-3
    return module


class _DenseAEModule(AEModule):
    """DCASE 2020 baseline: D-128-128-128-128-8-128-128-128-128-D, BN + ReLU inside."""

    def __init__(self, n_inputs, hidden=128, bottleneck=8):
        super().__init__()
        self.encoder = dense_stack([n_inputs, hidden, hidden, hidden, hidden, bottleneck])
        self.decoder = torch.nn.Sequential(
            dense_stack([bottleneck, hidden, hidden, hidden, hidden]),
            torch.nn.Linear(hidden, n_inputs),
        )
        self.embed_dim = bottleneck
        keras_init_(self)

    def forward(self, x):
        recon = self.decoder(self.encoder(x.flatten(1))).view_as(x)
        return recon, recon.new_zeros(())

    def embed(self, x):
        return self.encoder(x.flatten(1))


class _VAEModule(AEModule):
    """D-400-400-(mu, logvar: 20)-400-400-D, ReLU, optional batch norm."""

    def __init__(self, n_inputs, batch_norm, beta, hidden=400, latent=20):
        super().__init__()
        self.encoder = dense_stack([n_inputs, hidden, hidden], batch_norm)
        self.mu = torch.nn.Linear(hidden, latent)
        self.logvar = torch.nn.Linear(hidden, latent)
        self.decoder = torch.nn.Sequential(
            dense_stack([latent, hidden, hidden], batch_norm), torch.nn.Linear(hidden, n_inputs)
        )
        self.beta, self.n_inputs, self.embed_dim = beta, n_inputs, latent
        keras_init_(self)

    def forward(self, x):
        h = self.encoder(x.flatten(1))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        recon = self.decoder(z).view_as(x)
        kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1).mean()
        return recon, self.beta * kl / self.n_inputs

    def embed(self, x):
        return self.mu(self.encoder(x.flatten(1)))


def _halvings(n, times):
    """Sizes of a dimension of ``n`` after each stride-2 conv (kernel 3, padding 1)."""
    sizes = [n]
    for _ in range(times):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


def _conv_relu(conv, dropout=0.0):
    return torch.nn.Sequential(conv, torch.nn.ReLU(), *([torch.nn.Dropout(dropout)] if dropout else []))


class _CNNAEModule(AEModule):
    """Conv encoder 1-32-64-128-256 (stride 2) -> 40-channel latent map -> mirrored decoder.

    Patches ``(frames, n_mels)`` are images of one channel. Each encoder stage is a 3x3
    stride-2 convolution + ReLU (+ dropout); a 3x3 convolution maps to the linear latent
    map; the decoder is a 3x3 transposed convolution + ReLU back to 256 channels and one
    stride-2 transposed convolution per encoder stage (the last one linear, to 1
    channel), sized to give back exactly the input shape. ``skip`` concatenates each
    encoder map to the decoder input of the same resolution. ``svdd_weight`` > 0 adds
    ``svdd_weight * mean((z - center)**2)``, ``center`` being the mean latent map of the
    training patches at the start of training (a buffer, so it pickles).
    """

    def __init__(self, height, width, skip=False, svdd_weight=0.0):
        super().__init__()
        conv, convt = torch.nn.Conv2d, torch.nn.ConvTranspose2d
        hs, ws = _halvings(height, len(_CHANNELS)), _halvings(width, len(_CHANNELS))
        c_in, encoder = 1, []
        for c, p in zip(_CHANNELS, _DROPOUT):
            encoder.append(_conv_relu(conv(c_in, c, 3, stride=2, padding=1), p))
            c_in = c
        self.encoder = torch.nn.ModuleList(encoder)
        self.to_latent = conv(c_in, _LATENT_CHANNELS, 3, padding=1)
        self.from_latent = _conv_relu(convt(_LATENT_CHANNELS, c_in, 3, padding=1))
        decoder = []
        for stage, c_out in zip(range(len(_CHANNELS), 0, -1), (*_CHANNELS[-2::-1], 1)):
            # output_padding restores odd/even sizes: out = 2 * in - 1 + output_padding
            pad = (hs[stage - 1] - 2 * hs[stage] + 1, ws[stage - 1] - 2 * ws[stage] + 1)
            layer = convt(c_in * (2 if skip else 1), c_out, 3, stride=2, padding=1, output_padding=pad)
            decoder.append(layer if c_out == 1 else _conv_relu(layer))
            c_in = c_out
        self.decoder = torch.nn.ModuleList(decoder)
        self.skip, self.svdd_weight = skip, svdd_weight
        self.embed_dim = _LATENT_CHANNELS * hs[-1] * ws[-1]
        self.register_buffer("center", torch.zeros(_LATENT_CHANNELS, hs[-1], ws[-1]))

    def _encode(self, x):
        maps, h = [], x.unsqueeze(1)
        for stage in self.encoder:
            h = stage(h)
            maps.append(h)
        return self.to_latent(h), maps

    def forward(self, x):
        z, maps = self._encode(x)
        h = self.from_latent(z)
        for stage, enc_map in zip(self.decoder, reversed(maps)):
            h = stage(torch.cat([h, enc_map], 1) if self.skip else h)
        penalty = self.svdd_weight * (z - self.center).square().mean() if self.svdd_weight else z.new_zeros(())
        return h.squeeze(1), penalty

    def embed(self, x):
        return self._encode(x)[0].flatten(1)

    def init_from_data(self, batches):
        if self.svdd_weight:
            total, n = 0.0, 0
            for x, _ in batches:
                z = self._encode(x)[0]
                total, n = total + z.sum(0), n + len(z)
            self.center.copy_(total / n)
