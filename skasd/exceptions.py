"""The errors skasd raises for problems of the user's input.

All are :class:`ValueError` subclasses whose message names the file, clip or setting and the
problem; the ``skasd`` command line prints their first line as is.
"""

__all__ = ["AudioError", "ModelFileError", "UsageError"]


class AudioError(ValueError):
    """A clip cannot be used: not audio, corrupt or truncated, empty, non-finite, wrong length.

    Subclass of :class:`ValueError`; the message always names the file (or the clip's
    index for arrays) and the problem.
    """


class ModelFileError(ValueError):
    """A model file cannot be written or read: unsupported content, corrupt, or too new.

    Subclass of :class:`ValueError`; the message names the file and the problem.
    """


class UsageError(ValueError):
    """A request that cannot be carried out as given: a missing data folder, an unknown model
    or parameter, files that do not decode, a model file that is not a skasd pipeline.

    Raised by the workflow functions behind the command line (:mod:`skasd.workflow`);
    subclass of :class:`ValueError`, with a message meant to be shown to the user as is.
    """
