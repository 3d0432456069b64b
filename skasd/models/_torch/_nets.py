"""The skorch nets of the torch estimators, and the skorch arguments they all take.

:class:`_Net` is the shared skorch ``NeuralNet``: a net resumed from a checkpoint trains only
the epochs left. Its subclasses set the loss; each has an Accelerate variant (``accelerated``)
that trains through Hugging Face Accelerate (skorch's ``AccelerateMixin``).
"""

import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin

from ._datasets import _batch_as_is

__all__ = ["_AENet", "_ClassifierNet", "skorch_params"]


class _Net(NeuralNet):
    """skorch ``NeuralNet`` that resumes: ``fit`` trains the epochs left to reach ``max_epochs``."""

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # A net resumed from a checkpoint (history loaded at on_train_begin) trains only the
        # epochs left to reach max_epochs; a fresh net has an empty history.
        if epochs is None:
            epochs = max(self.max_epochs - len(self.history), 0)
        return super().fit_loop(X, y, epochs=epochs, **fit_params)


class _AENet(_Net):
    """skorch net whose loss is MSE(reconstruction, input) + the module's penalty.

    ``l2`` adds ``l2 * sum of squared parameters`` to the training loss only (the
    validation loss stays comparable across ``l2`` values).
    """

    def __init__(self, *args, l2=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.l2 = l2

    def get_loss(self, y_pred, y_true, X=None, training=False):
        recon, penalty = y_pred
        loss = self.criterion_(recon, y_true) + penalty
        if training and self.l2:
            loss = loss + self.l2 * sum(p.square().sum() for p in self.module_.parameters())
        return loss


class _ClassifierNet(_Net):
    """skorch net: cross-entropy of the logits against (possibly soft) targets."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return torch.nn.functional.cross_entropy(y_pred, y_true)


class _AccelerateAENet(AccelerateMixin, _AENet):
    """``_AENet`` trained through Hugging Face Accelerate (skorch's integration)."""


class _AccelerateClassifierNet(AccelerateMixin, _ClassifierNet):
    """``_ClassifierNet`` trained through Hugging Face Accelerate (skorch's integration)."""


_AENet.accelerated = _AccelerateAENet
_ClassifierNet.accelerated = _AccelerateClassifierNet


def skorch_params(estimator, device, **kwargs):
    """The skorch arguments every skasd net takes from its estimator's parameters.

    Batches come ready-made from the datasets' ``__getitems__`` (``_batch_as_is``); no
    skorch-side validation split (``train_split=None``, callers pass their own).
    ``kwargs`` add or override arguments (``criterion``, ...).
    """
    return dict(
        optimizer=estimator.optimizer,
        lr=estimator.lr,
        max_epochs=estimator.max_epochs,
        batch_size=estimator.batch_size,
        train_split=None,
        iterator_train__shuffle=True,
        iterator_train__collate_fn=_batch_as_is,
        iterator_valid__collate_fn=_batch_as_is,
        device=device,
        verbose=estimator.verbose,
        **kwargs,
    )
