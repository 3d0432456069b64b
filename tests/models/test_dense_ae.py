"""DenseAE is the DCASE 2020 Task 2 baseline: architecture, initialisation, raw input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skasd.models import VAE, DenseAE


def test_architecture_is_the_dcase_baseline():
    module = DenseAE()._module(5, 128)
    module = module[0](**module[1])
    linears = [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(640, 128), (128, 128), (128, 128), (128, 128), (128, 8),
                       (8, 128), (128, 128), (128, 128), (128, 128), (128, 640)]
    norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [128] * 4 + [8] + [128] * 4
    assert sum(isinstance(m, torch.nn.ReLU) for m in module.modules()) == 9
    # Keras defaults of the reference implementation
    assert all(m.bias.abs().sum() == 0 for m in module.modules() if isinstance(m, torch.nn.Linear))
    assert all((m.momentum, m.eps) == (0.01, 1e-3) for m in norms)
    # the output layer is linear: the last module is the Linear(128, 640)
    assert isinstance(list(module.modules())[-1], torch.nn.Linear)


def test_baseline_hyperparameters():
    est = DenseAE()
    assert (est.frames, est.max_epochs, est.batch_size, est.lr, est.validation_fraction) == (5, 100, 512, 1e-3, 0.1)
    assert est.optimizer is torch.optim.Adam and est._window() == (5, 1)


def test_raw_log_mel_no_normalisation():
    X = np.random.default_rng(0).normal(-40, 5, size=(4, 8, 20)).astype(np.float32)
    est = DenseAE(max_epochs=1, random_state=0).fit(X)
    assert (est.loc_, est.scale_) == (0.0, 1.0)


@pytest.mark.parametrize("cls", [DenseAE, VAE])
def test_tabular_2d_input(cls):
    """2-D rows are windows of width 1: a tabular detector that finds far-away points."""
    rng = np.random.default_rng(0)
    cov = rng.normal(size=(6, 6))
    train = rng.normal(size=(400, 6)) @ cov
    test = np.r_[rng.normal(size=(50, 6)) @ cov, rng.normal(size=(50, 6)) @ cov + 8.0]
    est = cls(max_epochs=30, batch_size=64, random_state=0).fit(train)
    assert est.n_features_in_ == 6 and est.transform(test).shape[0] == 100
    assert roc_auc_score(np.r_[np.zeros(50), np.ones(50)], est.anomaly_score(test)) > 0.95
