"""CUDA paths, run by ``benchmarks/gpu_check.sh`` on a GPU machine; skipped without CUDA."""

import numpy as np
import pytest
import torch

import skasd
from skasd.datasets import make_machine_sounds

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run benchmarks/gpu_check.sh there)"),
]


@pytest.fixture(scope="module")
def waves():
    X, y = make_machine_sounds(n_normal=24, n_anomaly=4, duration=4.0, random_state=0, return_X_y=True)
    return np.asarray(X, dtype=np.float32), np.asarray(y)


def test_torch_features_on_cuda_match_librosa(waves):
    W, _ = waves
    cuda = skasd.LogMelTransformer(backend="torch", device="cuda").fit_transform(W)
    ref = skasd.LogMelTransformer(backend="librosa").fit_transform(W)
    assert np.max(np.abs(cuda - ref)) <= 1e-3


@pytest.mark.parametrize("cls", [skasd.DenseAE, skasd.VAE, skasd.CNNAE])
def test_autoencoders_train_on_cuda(cls, waves):
    W, y = waves
    X = skasd.LogMelTransformer().fit_transform(W)
    est = cls(max_epochs=2, random_state=0, device="cuda").fit(X[y == 0])
    assert next(est.net_.module_.parameters()).is_cuda
    assert np.all(np.isfinite(est.score_samples(X)))


def test_gpu_model_file_loads_on_cpu(waves, tmp_path):
    W, y = waves
    X = skasd.LogMelTransformer().fit_transform(W)
    est = skasd.DenseAE(max_epochs=2, random_state=0, device="cuda").fit(X[y == 0])
    scores = est.score_samples(X)
    skasd.save(est, tmp_path / "m.skasd")
    back = skasd.load(tmp_path / "m.skasd")
    np.testing.assert_allclose(back.score_samples(X), scores, rtol=1e-4)


def test_bf16_autocast_through_accelerate(waves):
    accelerate = pytest.importorskip("accelerate")
    W, y = waves
    X = skasd.LogMelTransformer().fit_transform(W)
    est = skasd.CNNAE(max_epochs=2, random_state=0, accelerator=accelerate.Accelerator(mixed_precision="bf16"))
    assert np.all(np.isfinite(est.fit(X[y == 0]).score_samples(X)))
