"""VAE: the report's architecture, the loss it documents, deterministic scoring."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from skasd.models import VAE


def build(**params):
    cls, kwargs = VAE(**params)._module(5, 128)
    return cls(**kwargs)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_architecture(batch_norm):
    module = build(batch_norm=batch_norm)
    linears = [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(640, 400), (400, 400), (400, 20), (400, 20), (20, 400), (400, 400), (400, 640)]
    norms = [m.num_features for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms == ([400] * 4 if batch_norm else [])
    assert module.embed_dim == 20


@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_loss_is_mse_plus_beta_kl_per_input(beta):
    torch.manual_seed(0)
    module = build(beta=beta).eval()
    x = torch.randn(7, 5, 128)
    recon, penalty = module(x)
    h = module.encoder(x.flatten(1))
    mu, logvar = module.mu(h), module.logvar(h)
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1).mean()
    assert penalty.item() == pytest.approx(beta * kl.item() / 640, rel=1e-5, abs=1e-12)
    # scoring uses the mean latent: the reconstruction of mu, no sampling
    assert torch.allclose(recon, module.decoder(mu).view_as(x))
    assert torch.allclose(module.embed(x), mu)


def test_training_samples_scoring_does_not():
    torch.manual_seed(0)
    module = build()
    x = torch.randn(4, 5, 128)
    module.train()
    assert not torch.equal(module(x)[0], module(x)[0])
    module.eval()
    assert torch.equal(module(x)[0], module(x)[0])


def test_standardises_input_and_scores_repeatably():
    X = np.random.default_rng(0).normal(-40, 5, size=(6, 8, 20)).astype(np.float32)
    est = VAE(max_epochs=1, validation_fraction=0.0, random_state=0).fit(X)
    assert est.loc_ == pytest.approx(X.mean(dtype=np.float64))
    assert est.scale_ == pytest.approx(X.std(dtype=np.float64))
    assert_array_equal(est.score_samples(X), est.score_samples(X))
