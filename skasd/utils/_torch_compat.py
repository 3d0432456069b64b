"""torch helpers shared by the feature backend and the torch estimators (imports torch).

Imported only by modules that need torch, so that ``import skasd`` and the inlier detectors
do not load it.
"""

import contextlib

import torch

__all__ = ["resolve_device", "torch_threads"]


def resolve_device(device):
    """The ``torch.device`` a ``device`` parameter names: ``"auto"`` is CUDA when available, else the CPU.

    Raises ValueError for a string or object torch does not read as a device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from e


@contextlib.contextmanager
def torch_threads(n):
    """Temporarily set torch's intra-op thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
