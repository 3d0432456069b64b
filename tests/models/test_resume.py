"""Checkpoint every N epochs and resume after an interruption: the same model as an
uninterrupted run with the same seed.

Tolerance: on the CPU resumed scores equal the uninterrupted run's exactly in practice; the
tests allow 1e-6 relative, the reproducibility guarantee of ``random_state``.
"""

import json
import os

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from skorch.callbacks import Callback

from skasd import LogMelTransformer
from skasd.models import CNNAE, VAE, DenseAE

PARAMS = {DenseAE: {}, VAE: {}, CNNAE: {"patch_frames": 16, "patch_hop": 8}}


class Interrupt(Callback):
    """Press Ctrl-C at the end of epoch ``at`` (skorch catches the KeyboardInterrupt in fit)."""

    def __init__(self, at=3):
        self.at = at

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.at:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(16, 1)) * 5 - 40 + rng.normal(size=(8, 16, 64))).astype(np.float32)


def make(cls, **params):
    return cls(**{"max_epochs": 5, "batch_size": 32, "random_state": 0, **PARAMS[cls], **params})


@pytest.mark.parametrize("cls", [DenseAE, VAE, CNNAE])
def test_resume_after_interrupt_equals_uninterrupted_run(cls, X, tmp_path):
    """Interrupted in epoch 3 (last checkpoint: epoch 2), resumed: epochs 3-5 replay exactly
    (batch order, dropout, VAE sampling all come from the restored torch RNG)."""
    expected = make(cls).fit(X)
    with pytest.warns(UserWarning, match=r"interrupted after epoch 3 of 5.*fit again to resume"):
        partial = make(cls, checkpoint=tmp_path, checkpoint_every=2, callbacks=[Interrupt(3)]).fit(X)
    assert len(partial.net_.history) == 3  # skorch stopped training and fit returned
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["epoch"] == 2 and os.path.exists(tmp_path / latest["slot"] / "rng.pt")
    resumed = make(cls, checkpoint=tmp_path, checkpoint_every=2).fit(X)
    assert resumed.net_.history[:, "epoch"] == [1, 2, 3, 4, 5]
    assert_allclose(resumed.net_.history[:, "train_loss"], expected.net_.history[:, "train_loss"], rtol=1e-6)
    assert_allclose(resumed.score_samples(X), expected.score_samples(X), rtol=1e-6)
    assert resumed.offset_ == pytest.approx(expected.offset_, rel=1e-6)
    # the run is complete: fitting again loads the final checkpoint and trains no epoch
    again = make(cls, checkpoint=tmp_path, checkpoint_every=2).fit(X)
    assert len(again.net_.history) == 5
    assert_array_equal(again.score_samples(X), resumed.score_samples(X))


def test_without_the_rng_state_resume_would_differ(X, tmp_path, monkeypatch):
    """The RNG restore is what makes the replay exact (VAE samples its latent)."""
    expected = make(VAE).fit(X).score_samples(X)
    with pytest.warns(UserWarning, match="interrupted"):
        make(VAE, checkpoint=tmp_path, callbacks=[Interrupt(2)]).fit(X)
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    resumed = make(VAE, checkpoint=tmp_path).fit(X).score_samples(X)
    assert not np.allclose(resumed, expected, rtol=1e-6)


def test_longer_run_continues_a_finished_one(X, tmp_path):
    """max_epochs is not part of the run: raising it trains on from the last checkpoint."""
    make(DenseAE, max_epochs=3, checkpoint=tmp_path).fit(X)
    longer = make(DenseAE, max_epochs=5, checkpoint=tmp_path).fit(X)
    assert_allclose(longer.score_samples(X), make(DenseAE).fit(X).score_samples(X), rtol=1e-6)


def test_resume_while_streaming(X, tmp_path):
    store = LogMelTransformer(cache=tmp_path / "cache", lazy=True, n_mels=16).transform(
        np.random.default_rng(0).uniform(-0.1, 0.1, size=(10, 8000))
    )
    params = dict(stream_buffer=3, checkpoint=tmp_path / "cp")
    expected = make(DenseAE, stream_buffer=3).fit(store).score_samples(store)
    with pytest.warns(UserWarning, match="interrupted"):
        make(DenseAE, callbacks=[Interrupt(2)], **params).fit(store)
    assert_allclose(make(DenseAE, **params).fit(store).score_samples(store), expected, rtol=1e-6)


def test_checkpoint_of_another_run_is_refused(X, tmp_path):
    make(DenseAE, max_epochs=2, checkpoint=tmp_path).fit(X)
    with pytest.raises(ValueError, match=r"checkpoint in .* belongs to another run \(different lr\)"):
        make(DenseAE, lr=2e-3, checkpoint=tmp_path).fit(X)
    with pytest.raises(ValueError, match="belongs to another run .*first_last_clip_sha256"):
        make(DenseAE, checkpoint=tmp_path).fit(X + 1)
    with pytest.raises(ValueError, match="belongs to another run .*estimator"):
        make(VAE, checkpoint=tmp_path).fit(X)


def test_crash_while_saving_keeps_the_previous_checkpoint(X, tmp_path, monkeypatch):
    """A save that fails half-way (here: torch's RNG file of epoch 3) is never marked
    complete; latest.json still names epoch 2's, and resuming from it is exact."""
    expected = make(DenseAE).fit(X).score_samples(X)
    save = torch.save

    def failing(obj, f, *args, **kwargs):
        if str(f).endswith("rng.pt") and "/b/" in str(f):  # the second save goes to slot b
            raise OSError(28, "No space left on device")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing)
    est = make(DenseAE, checkpoint=tmp_path, checkpoint_every=2)
    with pytest.raises(OSError, match="No space left"):
        est.fit(X)
    assert not hasattr(est, "net_")
    assert json.loads((tmp_path / "latest.json").read_text())["epoch"] == 2
    monkeypatch.setattr(torch, "save", save)
    assert_allclose(make(DenseAE, checkpoint=tmp_path, checkpoint_every=2).fit(X).score_samples(X), expected, rtol=1e-6)
