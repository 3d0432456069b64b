"""Training and validation loss per epoch of a skorch-trained detector."""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._scores import _final_estimator, _finish


def _per_epoch(values, key, n_epochs):
    """``values`` as a float array of shape (n_epochs,), with an error naming ``key``."""
    values = np.asarray(values, dtype=float)
    if values.shape != (n_epochs,):
        raise ValueError(
            f"{key} has shape {values.shape}; expected ({n_epochs},), one value per "
            "epoch like train_loss."
        )
    return values


class LossHistoryDisplay:
    """Training (and validation) loss per epoch.

    Use :meth:`from_estimator` on a fitted skasd detector (or a Pipeline
    ending in one), or :meth:`from_history` on loss sequences.

    Parameters
    ----------
    train_loss : array-like of shape (n_epochs,)
        Training loss of each epoch.
    valid_loss : array-like of shape (n_epochs,), default=None
        Validation loss of each epoch; NaN where an epoch has none.
    epochs : array-like of shape (n_epochs,), default=None
        Epoch numbers; ``1, ..., n_epochs`` if None.
    name : str, default=None
        Title of the axes.

    Attributes
    ----------
    train_line_ : matplotlib Line2D
    valid_line_ : matplotlib Line2D or None
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> from skasd.plot import LossHistoryDisplay
    >>> disp = LossHistoryDisplay.from_history([1.0, 0.6, 0.4], [1.1, 0.8, 0.7])
    >>> disp.valid_line_.get_ydata().tolist()
    [1.1, 0.8, 0.7]
    """

    def __init__(self, *, train_loss, valid_loss=None, epochs=None, name=None):
        self.train_loss = train_loss
        self.valid_loss = valid_loss
        self.epochs = epochs
        self.name = name

    def plot(self, ax=None, *, name=None, log_scale=False, **kwargs):
        """Draw one line per loss, one point per epoch.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; a new figure is created if None.
        name : str, default=None
            Axes title; overrides the one given at construction.
        log_scale : bool, default=False
            Use a logarithmic loss axis.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both lines.

        Returns
        -------
        display : LossHistoryDisplay
        """
        import matplotlib.pyplot as plt

        train = np.asarray(self.train_loss, dtype=float)
        if train.ndim != 1 or train.size == 0:
            raise ValueError(
                f"train_loss must be a non-empty 1-D sequence (one value per epoch); "
                f"got shape {train.shape}."
            )
        n_epochs = train.size
        valid = self.valid_loss
        if valid is not None:
            valid = _per_epoch(valid, "valid_loss", n_epochs)
        epochs = np.arange(1, n_epochs + 1)
        if self.epochs is not None:
            epochs = _per_epoch(self.epochs, "epochs", n_epochs)
        if ax is None:
            _, ax = plt.subplots()
        line_kw = {"marker": "o", "markersize": 3, **kwargs}
        (self.train_line_,) = ax.plot(epochs, train, label="training loss", **line_kw)
        self.valid_line_ = None
        if valid is not None:
            (self.valid_line_,) = ax.plot(epochs, valid, label="validation loss", **line_kw)
        ax.set(xlabel="Epoch", ylabel="Loss", yscale="log" if log_scale else "linear")
        return _finish(self, ax, name)

    @classmethod
    def from_history(cls, train_loss, valid_loss=None, *, name=None, ax=None, **kwargs):
        """Plot loss sequences, epoch 1 first.

        Parameters
        ----------
        train_loss : array-like of shape (n_epochs,)
        valid_loss : array-like of shape (n_epochs,), default=None
        name, ax, **kwargs
            See :meth:`plot`.

        Returns
        -------
        display : LossHistoryDisplay
        """
        return cls(train_loss=train_loss, valid_loss=valid_loss, name=name).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, name=None, ax=None, **kwargs):
        """Plot the losses recorded by a fitted detector's skorch net.

        Reads ``estimator.net_.history`` (a :class:`skorch.history.History`) of
        the detector, or of the last step of a Pipeline: ``"train_loss"`` and,
        if recorded, ``"valid_loss"`` (NaN for epochs without it).

        Parameters
        ----------
        estimator : fitted skasd detector or Pipeline ending in one
        name, ax, **kwargs
            See :meth:`plot`; ``name`` defaults to the detector's class name.

        Returns
        -------
        display : LossHistoryDisplay
        """
        detector = _final_estimator(estimator)
        check_is_fitted(detector)
        net = getattr(detector, "net_", None)
        if net is None or not hasattr(net, "history"):
            raise TypeError(
                f"{type(detector).__name__} has no skorch net in `net_`; LossHistoryDisplay."
                "from_estimator needs a fitted skasd neural detector (DenseAE, VAE, CNNAE). "
                "Use from_history(train_loss, valid_loss) for other losses."
            )
        rows = list(net.history)
        if not any("train_loss" in row for row in rows):
            raise KeyError(
                f"the history of {type(detector).__name__}.net_ has no 'train_loss' "
                f"({len(rows)} epochs recorded); was the net trained?"
            )

        def column(key):
            return [row.get(key, np.nan) for row in rows]

        has_valid = any("valid_loss" in row for row in rows)
        disp = cls(
            train_loss=column("train_loss"),
            valid_loss=column("valid_loss") if has_valid else None,
            epochs=[row.get("epoch", i) for i, row in enumerate(rows, start=1)],
            name=type(detector).__name__ if name is None else name,
        )
        return disp.plot(ax=ax, **kwargs)
