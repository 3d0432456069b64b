"""BaseAEDetector's training safeguards and the Accelerate code path (on the CPU)."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback
from skorch.hf import AccelerateMixin

from skasd import LogMelTransformer
from skasd.models import CNNAE, VAE, DenseAE

PARAMS = {DenseAE: {}, VAE: {}, CNNAE: {"patch_frames": 16, "patch_hop": 8}}
FITTED = ("net_", "loc_", "scale_", "offset_", "n_features_in_", "_input_ndim", "_n_features_out")


def make(cls, **params):
    return cls(**{"max_epochs": 3, "batch_size": 32, "random_state": 0, **PARAMS[cls], **params})


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(16, 1)) * 5 - 40 + rng.normal(size=(8, 16, 64))).astype(np.float32)


class PoisonWeights(Callback):
    """Inject a NaN into the first parameter at the start of epoch ``at``."""

    def __init__(self, at):
        self.at = at

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.at:
            with torch.no_grad():
                next(net.module_.parameters()).view(-1)[0] = float("nan")


@pytest.mark.parametrize("cls", [DenseAE, VAE, CNNAE])
def test_injected_nan_stops_training_naming_the_epoch(cls, X):
    est = make(cls).fit(X)  # a fitted model: a failed refit must not leave it behind either
    est.set_params(max_epochs=5, callbacks=[PoisonWeights(3)])
    with pytest.raises(FloatingPointError, match=r"training loss became nan in epoch 3\. Try a lower learning "
                       r"rate \(lr=0\.001\) or standardised input"):
        est.fit(X)
    assert not any(hasattr(est, a) for a in FITTED)
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_interrupt_without_checkpoint_warns_and_early_stopping_does_not(X):
    class Interrupt(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match=r"DenseAE: training was interrupted after epoch 1 of 3; the model is "
                      r"only partly trained\.$"):
        est = make(DenseAE, callbacks=[Interrupt()]).fit(X)
    assert len(est.net_.history) == 1 and np.all(np.isfinite(est.score_samples(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = make(DenseAE, lr=1e-12, max_epochs=30, early_stopping=1).fit(X)
    assert len(est.net_.history) < 30


@pytest.mark.parametrize(
    "param, value, match",
    [
        ("stream_buffer", 0, "stream_buffer"),
        ("checkpoint_every", 0, "checkpoint_every"),
        ("checkpoint", 3, "checkpoint"),
        ("accelerator", "gpu", "accelerator"),
    ],
)
@pytest.mark.parametrize("cls", [DenseAE, VAE, CNNAE])
def test_new_parameters_are_validated(cls, param, value, match, X):
    assert {"stream_buffer", "checkpoint", "checkpoint_every", "accelerator"} <= set(cls().get_params())
    with pytest.raises(InvalidParameterError, match=f"'{match}' parameter of {cls.__name__}"):
        make(cls, **{param: value}).fit(X)


# ------------------------------------------------------------------------ Accelerate
@pytest.fixture(scope="module")
def accelerator():
    accelerate = pytest.importorskip("accelerate")
    return accelerate.Accelerator(cpu=True)


@pytest.mark.parametrize("cls", [DenseAE, VAE, CNNAE])
def test_accelerate_path_matches_plain_training(cls, X, accelerator, capsys):
    plain = make(cls).fit(X)
    acc = make(cls, accelerator=accelerator).fit(X)
    assert isinstance(acc.net_, AccelerateMixin) and acc.net_.accelerator is accelerator
    assert capsys.readouterr().out == ""  # verbose=0 stays silent (accelerate's print is the sink)
    # single CPU process: same batches and updates as the plain net
    assert_allclose(acc.score_samples(X), plain.score_samples(X), rtol=1e-6)
    assert_allclose(acc.transform(X), plain.transform(X), rtol=1e-5, atol=1e-6)
    loaded = pickle.loads(pickle.dumps(acc))
    assert_array_equal(loaded.score_samples(X), acc.score_samples(X))
    assert_allclose(clone(acc).fit(X).score_samples(X), plain.score_samples(X), rtol=1e-6)


def test_accelerate_with_a_streamed_store(accelerator, tmp_path):
    store = LogMelTransformer(cache=tmp_path, lazy=True, n_mels=16).transform(
        np.random.default_rng(0).uniform(-0.1, 0.1, size=(6, 8000))
    )
    acc = make(DenseAE, accelerator=accelerator, stream_buffer=2).fit(store)
    plain = make(DenseAE, stream_buffer=2).fit(store)
    assert_allclose(acc.score_samples(store), plain.score_samples(store), rtol=1e-6)


_BF16_SCRIPT = """
import numpy as np, torch
from accelerate import Accelerator
from torch.nn.modules.module import register_module_forward_hook
from skasd.models import CNNAE
torch.set_num_threads(1)
rng = np.random.default_rng(0)
X = (rng.normal(size=(16, 1)) * 5 - 40 + rng.normal(size=(8, 16, 64))).astype(np.float32)
params = dict(max_epochs=3, batch_size=32, random_state=0, patch_frames=16, patch_hop=8)
dtypes = set()
hook = register_module_forward_hook(
    lambda m, i, o: dtypes.add(str(o.dtype)) if isinstance(m, torch.nn.Conv2d) and m.training else None)
amp = CNNAE(accelerator=Accelerator(cpu=True, mixed_precision="bf16"), **params).fit(X)
hook.remove()
fp32 = CNNAE(**params).fit(X)
print(sorted(dtypes))
print(next(amp.net_.module_.parameters()).dtype)
print(np.max(np.abs(np.array(amp.net_.history[:, "train_loss"]) / fp32.net_.history[:, "train_loss"] - 1)))
print(np.max(np.abs(amp.score_samples(X) / fp32.score_samples(X) - 1)))
"""


@pytest.mark.slow
def test_bf16_mixed_precision_through_accelerate():
    """Mixed precision is the accelerator's: Accelerator(mixed_precision="bf16") trains the
    convolutions in bfloat16 (float32 master weights), on the CPU too. A fresh process: the
    accelerator's state is global and set once per process."""
    pytest.importorskip("accelerate")
    out = subprocess.run([sys.executable, "-c", _BF16_SCRIPT], capture_output=True, text=True, check=True)
    dtypes, weights, loss_rel, score_rel = out.stdout.strip().splitlines()
    assert dtypes == "['torch.bfloat16']" and weights == "torch.float32"
    assert 0 < float(loss_rel) < 1e-3  # bf16 differs from float32, within 0.1 % (measured 2e-5)
    assert float(score_rel) < 1e-2
