"""Pretrained weights in the user's skasd cache: what ``skasd weights fetch`` and ``skasd weights list`` do."""

import os

from ..exceptions import UsageError
from ..features._weights import WEIGHTS, cache_dir, read_aisfx_weights, weights_file
from ..features._weights import fetch_weights as _fetch

__all__ = ["ensure_weights", "fetch_weights", "list_weights"]

# Set (to anything but "" or "0") to keep skasd from downloading weights by itself (tests, air-gapped sites).
OFFLINE_ENV = "SKASD_OFFLINE"


def fetch_weights(name, *, source=None, force=False):
    """Get the published weights ``name`` (``"aisfx"``) into the user's skasd cache, checked.

    Downloads the wheel with pip (``pip download aisfx==0.1.2 --no-deps``) unless ``source`` is
    a local copy of the wheel or of its ``checkpoint.pth``; checks the SHA-256 of both and
    stores the embedding network's weights as safetensors. Returns the file's path. Problems of
    the request (an unknown name, a file that is not the published one, pip failing) raise
    :class:`~skasd.exceptions.UsageError`.
    """
    if name not in WEIGHTS:
        raise UsageError(f"unknown weights {name!r}; 'skasd weights list' shows the known ones: "
                         f"{', '.join(sorted(WEIGHTS))}")
    try:
        return _fetch(name, source=source, force=force)
    except (ValueError, OSError) as e:
        raise UsageError(str(e)) from e


def ensure_weights(name, announce=None):
    """``(path, None)`` when the cache holds the weights ``name`` or they could be fetched into it
    now (pip, as ``skasd weights fetch``), else ``(None, why)``: offline (``$SKASD_OFFLINE``)
    or the fetch failed. ``announce(message)`` is called before a download. What ``skasd train``
    asks before fitting a default recipe that needs them."""
    path, status = weights_file(name), _status(name)
    if status == "present":
        return path, None
    # a damaged file is fetched again below, when allowed
    where = "not in the skasd cache" if status == "missing" else "refused in the skasd cache (not the published weights)"
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return None, f"the {name} weights are {where} ({path}) and {OFFLINE_ENV} is set"
    if announce is not None:
        announce(f"fetching the {name} weights ({WEIGHTS[name]['licence']}) into the skasd cache, once")
    try:
        return _fetch(name), None
    except (ValueError, OSError) as e:
        return None, f"the {name} weights are {where} and fetching them failed ({e})"


def list_weights():
    """One dict per known set of weights: ``name``, ``path`` (in the cache), ``status``
    ("present", "missing" or why the file is refused), ``licence`` and ``credit``."""
    return [{"name": name, "path": weights_file(name), "status": _status(name), "licence": info["licence"],
             "credit": info["credit"]} for name, info in WEIGHTS.items()]


def _status(name):
    """"present", "missing", or why the cache's file of the weights ``name`` is refused."""
    path = weights_file(name)
    if not os.path.isfile(path):
        return "missing"
    try:
        read_aisfx_weights(path)
        return "present"
    except ValueError as e:
        return f"refused ({str(e).splitlines()[0]})"


def describe_weights():
    """The text of ``skasd weights list``."""
    lines = [f"skasd cache: {cache_dir()} (set SKASD_CACHE to move it)"]
    for row in list_weights():
        lines.append(f"{row['name']}: {row['status']} at {row['path']}")
        lines.append(f"  licence {row['licence']}: {row['credit']}")
    return "\n".join(lines)
