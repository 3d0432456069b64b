"""skorch callbacks of the torch estimators: resumable checkpoints, data-dependent module state,
a clear error on a non-finite loss."""

import json
import os

import torch
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, LoadInitState

from ...utils._atomic import write_text_atomic

__all__ = ["_InitModuleFromData", "_RaiseOnNonFiniteLoss", "_ResumeRun", "_RunCheckpoint", "_stopped_early"]


class _RunCheckpoint(Checkpoint):
    """skorch ``Checkpoint`` every ``every`` epochs that a ``_ResumeRun`` can resume exactly.

    Besides skorch's files (weights, optimizer, criterion, history) it saves torch's random
    state (CPU and CUDA), which decides the batch order and dropout of the epochs to come.
    Saves alternate between the subfolders ``a`` and ``b``; ``latest.json`` (written
    atomically once a save is complete) names the complete one and describes the run, so an
    interruption while saving leaves the previous checkpoint usable.
    """

    def __init__(self, root, every, run, **kwargs):
        super().__init__(monitor=None, dirname=os.path.join(root, "a"), event_name=None, **kwargs)
        self.root, self.every, self.run = root, every, run

    def on_epoch_end(self, net, **kwargs):
        epoch = len(net.history)
        if epoch % self.every == 0 or epoch >= net.max_epochs:
            super().on_epoch_end(net, **kwargs)

    def save_model(self, net):
        latest = _read_latest(self.root)
        slot = "b" if latest and latest["slot"] == "a" else "a"
        self.dirname = os.path.join(self.root, slot)
        os.makedirs(self.dirname, exist_ok=True)
        super().save_model(net)
        torch.save(_rng_state(), os.path.join(self.dirname, "rng.pt"))
        info = {"slot": slot, "epoch": len(net.history), "run": self.run}
        write_text_atomic(os.path.join(self.root, "latest.json"), json.dumps(info, indent=1) + "\n")

    def _save_params(self, f, net, f_name, log_name):
        # skorch only logs a failed save; a checkpoint missing a part must not be marked complete
        net.save_params(**{f_name: f})


class _ResumeRun(LoadInitState):
    """skorch ``LoadInitState`` for a ``_RunCheckpoint``: resume from its latest complete save.

    Refuses a checkpoint of another run; restores torch's random state after the weights,
    optimizer and history, so the epochs that follow are those of an uninterrupted run.
    """

    def __init__(self, checkpoint, estimator_name):
        super().__init__(checkpoint)
        self.estimator_name = estimator_name

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        cp = self.checkpoint
        latest = _read_latest(cp.root)
        if latest is None:
            return
        if latest.get("run") != cp.run:
            saved, now = latest.get("run") or {}, cp.run
            differ = [k for k in sorted(set(saved) | set(now)) if k != "params" and saved.get(k) != now.get(k)]
            sp, np_ = saved.get("params", {}), now["params"]
            differ += [k for k in sorted(set(sp) | set(np_)) if sp.get(k) != np_.get(k)]
            raise ValueError(
                f"{self.estimator_name}: the checkpoint in {cp.root} belongs to another run "
                f"(different {', '.join(differ)}); delete the folder or choose another to start afresh."
            )
        cp.dirname = os.path.join(cp.root, latest["slot"])
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if len(net.history) != latest["epoch"]:
            raise ValueError(f"{self.estimator_name}: the checkpoint in {cp.dirname} is incomplete; delete it.")
        state = torch.load(os.path.join(cp.dirname, "rng.pt"), weights_only=True)
        torch.set_rng_state(state["cpu"])
        if torch.cuda.is_available() and state.get("cuda"):
            torch.cuda.set_rng_state_all(state["cuda"])


def _read_latest(root):
    try:
        with open(os.path.join(root, "latest.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _rng_state():
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


class _InitModuleFromData(Callback):
    """Let the module set data-dependent state from the training windows (eval mode)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        train_set, _ = net.get_split_datasets(X)
        net.module_.eval()
        with torch.no_grad():
            net.module_.init_from_data(net.get_iterator(train_set, training=False))


class _RaiseOnNonFiniteLoss(Callback):
    """Stop training with a clear error as soon as a batch loss is NaN or infinite."""

    def __init__(self, estimator_name):
        self.estimator_name = estimator_name

    def on_batch_end(self, net, batch=None, training=False, loss=None, **kwargs):
        if loss is not None and not torch.isfinite(loss):
            kind = "training" if training else "validation"
            raise FloatingPointError(
                f"{self.estimator_name}: the {kind} loss became {loss.item()} in epoch "
                f"{len(net.history)}. Try a lower learning rate (lr={net.lr}) or "
                "standardised input (log-mel in dB, not raw power)."
            )


def _stopped_early(net):
    """Whether skorch's EarlyStopping ended training (it stops it with a KeyboardInterrupt)."""
    return any(isinstance(cb, EarlyStopping) and cb.misses_ == cb.patience for _, cb in net.callbacks_)
