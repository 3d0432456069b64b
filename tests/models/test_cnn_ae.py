"""CNNAE: the report's conv layout, exact shapes for any patch size, skips, Deep SVDD."""

import numpy as np
import pytest
import torch

from skasd.models import CNNAE
from skasd.models._torch._datasets import _WindowDataset


def build(height=32, n_mels=128, **params):
    cls, kwargs = CNNAE(**params)._module(height, n_mels)
    return cls(**kwargs)


def test_report_layout():
    module = build()
    convs = [(m.in_channels, m.out_channels, m.stride) for m in module.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [(1, 32, (2, 2)), (32, 64, (2, 2)), (64, 128, (2, 2)), (128, 256, (2, 2))]
    assert [m.p for m in module.encoder.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.3, 0.3]
    assert module.to_latent.out_channels == 40
    dec = [(m.in_channels, m.out_channels) for m in module.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert dec == [(256, 128), (128, 64), (64, 32), (32, 1)]
    z = module.eval().embed(torch.zeros(2, 32, 128))
    assert z.shape == (2, 40 * 2 * 8) == (2, module.embed_dim)


@pytest.mark.parametrize("skip", [False, True])
def test_skip_concatenates_encoder_maps(skip):
    module = build(skip=skip).eval()
    dec = [m.in_channels for m in module.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert dec == ([512, 256, 128, 64] if skip else [256, 128, 64, 32])
    # cut the latent path: only skip connections still carry the input to the output
    x = torch.randn(2, 32, 128)
    with torch.no_grad():
        for p in module.to_latent.parameters():
            p.zero_()
        out_a, _ = module(x)
        out_b, _ = module(x + 1)
    assert torch.allclose(out_a, out_b) != skip


@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("shape", [(32, 128), (21, 37), (1, 1), (33, 64), (7, 128)])
def test_reconstruction_has_input_shape(shape, skip):
    module = build(*shape, skip=skip).eval()
    x = torch.randn(3, *shape)
    recon, penalty = module(x)
    assert recon.shape == x.shape and penalty.shape == ()


def test_svdd_center_is_mean_latent_of_training_patches():
    torch.manual_seed(0)
    module = build(16, 24).eval()
    X = torch.randn(5, 24, 50)
    ds = _WindowDataset(X, 16, 16)
    batches = [ds.__getitems__(list(range(i, min(i + 4, len(ds))))) for i in range(0, len(ds), 4)]
    with torch.no_grad():
        module.init_from_data(iter(batches))
        expected = torch.cat([module._encode(w)[0] for w, _ in batches]).mean(0)
        assert torch.allclose(module.center, expected, atol=1e-6)
        z = module._encode(batches[0][0])[0]
        _, penalty = module(batches[0][0])
    assert penalty.item() == pytest.approx(0.1 * (z - module.center).square().mean().item(), rel=1e-5)
    assert "center" in module.state_dict()


def test_loss_options():
    X = np.random.default_rng(0).normal(size=(6, 16, 64)).astype(np.float32)
    svdd = CNNAE(max_epochs=1, random_state=0).fit(X).net_.module_
    assert svdd.center.abs().sum() > 0 and svdd.svdd_weight == 0.1
    mse = CNNAE(loss="mse", max_epochs=1, random_state=0).fit(X).net_.module_
    assert mse.center.abs().sum() == 0 and mse.svdd_weight == 0.0
    assert mse(torch.zeros(1, 32, 16))[1].item() == 0.0
