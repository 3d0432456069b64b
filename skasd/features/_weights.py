"""Pretrained weights: the user's skasd cache, reading and checking checkpoints, and fetching them.

The cache is ``$SKASD_CACHE`` if set, else ``$XDG_CACHE_HOME/skasd`` (``~/.cache/skasd``); weights
live in its ``weights/`` folder as safetensors files (plain tensors: reading them runs no code).

A checkpoint is accepted only when it is the published one: the aisfx ``.pth`` by its SHA-256,
a safetensors file of the cache by the digest of its tensors (:func:`state_digest`, which does
not depend on the file's layout), and in both cases by its layer shapes. The ``.pth`` is a torch
pickle holding numpy scalars; it is read with ``torch.load(weights_only=True)`` and those
scalars allow-listed, never with ``weights_only=False``.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..utils._atomic import atomic_path
from ._aisfx import AISFX

__all__ = ["WEIGHTS", "cache_dir", "fetch_weights", "read_aisfx_weights", "state_digest", "weights_file"]

FETCH_HINT = "get them with `skasd weights fetch aisfx` (or pass weights=PATH to the published checkpoint.pth)"
# The digest (state_digest) of the aisfx embedding network's weights, as the published checkpoint holds them.
AISFX_STATE_DIGEST = "3706707dcd1ffa8e0620a20dfede984d987126add7801c2eff1a10f5c7df7e0a"
# The weights skasd knows by name: what `skasd weights fetch NAME` gets.
WEIGHTS = {
    "aisfx": {
        "file": f"aisfx-{AISFX.version}.safetensors",
        "pip": f"aisfx=={AISFX.version}",
        "licence": "CC BY 4.0",
        "credit": AISFX.credit,
    },
}


def cache_dir():
    """The user's skasd cache folder: ``$SKASD_CACHE``, else ``$XDG_CACHE_HOME/skasd`` or ``~/.cache/skasd``."""
    if os.environ.get("SKASD_CACHE"):
        return os.path.abspath(os.path.expanduser(os.environ["SKASD_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "skasd")


def weights_file(name):
    """Where the cache keeps the weights ``name`` (``"aisfx"``)."""
    return os.path.join(cache_dir(), "weights", WEIGHTS[name]["file"])


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_digest(state):
    """SHA-256 of a state dict's tensors (name, dtype, shape and values, in name order): the
    identity of a set of weights, whatever file holds them. ``state``: name -> numpy array or tensor."""
    h = hashlib.sha256()
    for name in sorted(state):
        a = state[name]
        if not isinstance(a, np.ndarray):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _check_shapes(state, path):
    """Refuse an aisfx state dict whose layers are not the network's, naming the file."""
    expected = {}
    n_in = 1
    for k, n_out in enumerate(AISFX.channels, start=1):
        for conv, c_in in (("conv1", n_in), ("conv2", n_out)):
            expected[f"conv_block{k}.{conv}.weight"] = (n_out, c_in, 3, 3)
        for bn in ("bn1", "bn2"):
            for p in ("weight", "bias", "running_mean", "running_var"):
                expected[f"conv_block{k}.{bn}.{p}"] = (n_out,)
            expected[f"conv_block{k}.{bn}.num_batches_tracked"] = ()
        n_in = n_out
    got = {k: tuple(v.shape) for k, v in state.items()}
    wrong = [f"{k} {got[k]} (expected {s})" for k, s in expected.items() if k in got and got[k] != s]
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if wrong or missing or extra:
        parts = ([f"wrong shapes: {', '.join(wrong[:3])}"] if wrong else []) + (
            [f"missing layers: {', '.join(missing[:3])}"] if missing else []) + (
            [f"unexpected layers: {', '.join(extra[:3])}"] if extra else [])
        raise ValueError(f"{path}: not the aisfx embedding network's weights ({'; '.join(parts)})")


def _load_pth(path):
    """The state dict of the published aisfx ``checkpoint.pth`` (after its SHA-256 is checked)."""
    import torch

    # numpy scalars in the pickled (state_dict, datasets) tuple; the pickle names the numpy 1.x module
    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype,
               type(np.dtype(np.int64))]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # an UnpicklingError or a zip error: not the published checkpoint after all
        raise ValueError(f"{path}: cannot read the aisfx checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    state = obj[0] if isinstance(obj, tuple) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not an aisfx checkpoint (holds a {type(state).__name__}, not a state dict)")
    return {k[len(AISFX.prefix):]: v.numpy() for k, v in state.items() if k.startswith(AISFX.prefix)}


def read_aisfx_weights(path):
    """The aisfx embedding network's weights in ``path`` (the published ``checkpoint.pth`` or a
    safetensors file written by :func:`fetch_weights`), checked: ``(state, digest)`` with
    ``state`` a dict of name -> float32/int64 numpy array.

    Raises FileNotFoundError naming the path and how to get the weights; ValueError naming the
    file when its SHA-256, its tensors or its layer shapes are not the published ones.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no aisfx weights file at {path}: {FETCH_HINT}")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":  # a torch zip checkpoint
        sha = file_sha256(path)
        if sha != AISFX.checkpoint_sha256:
            raise ValueError(
                f"{path}: sha256 {sha} is not that of the published aisfx checkpoint "
                f"({AISFX.checkpoint_sha256}); refusing it. {FETCH_HINT}"
            )
        state = _load_pth(path)
    else:
        try:
            state = load_file(path)
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(
                f"{path}: neither the published aisfx checkpoint.pth nor a safetensors file ({e}); {FETCH_HINT}"
            ) from e
        # safetensors stores 0-d arrays as 1-d
        state = {k: v.reshape(()) if k.endswith("num_batches_tracked") and v.size == 1 else v for k, v in state.items()}
    _check_shapes(state, path)
    digest = state_digest(state)
    if digest != AISFX_STATE_DIGEST:
        raise ValueError(
            f"{path}: its weights (digest {digest}) are not the published aisfx weights "
            f"({AISFX_STATE_DIGEST}); refusing them. {FETCH_HINT}"
        )
    return state, digest


_PIP_TIMEOUT_S = 300


def _pip_download(spec, dest):
    """``pip download SPEC --no-deps -d DEST`` with this Python's pip; the path of the wheel."""
    cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary", ":all:", "--no-input",
           "-d", dest]
    try:  # never a prompt (an index asking for credentials), never a hang
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"`{' '.join(cmd[2:])}` did not finish in {_PIP_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise OSError(f"`{' '.join(cmd[2:])}` failed: {' '.join(tail)}")
    wheels = [f for f in os.listdir(dest) if f.endswith(".whl")]
    if len(wheels) != 1:
        raise OSError(f"`pip download {spec}` gave {wheels or 'no wheel'}, expected one wheel")
    return os.path.join(dest, wheels[0])


def fetch_weights(name, *, source=None, force=False):
    """Get the published weights ``name`` into the user's skasd cache, checked, as safetensors.

    Parameters
    ----------
    name : {"aisfx"}
        Which weights.
    source : str or path-like, default=None
        None: download the wheel with pip (``pip download aisfx==0.1.2 --no-deps``) from the
        package index pip is configured with. Else a local copy of that wheel or of the
        ``checkpoint.pth`` inside it (for machines without the index).
    force : bool, default=False
        Fetch again even when the cache holds the weights already.

    Returns
    -------
    path : str
        The safetensors file in the cache.

    Raises
    ------
    ValueError
        Unknown name, or a wheel/checkpoint whose SHA-256 is not the published one (the message
        names the file).
    OSError
        pip failed (no network, no index).
    """
    if name not in WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    target = weights_file(name)
    if os.path.isfile(target) and not force:
        try:
            read_aisfx_weights(target)
            return target
        except ValueError as exc:  # a damaged or foreign file: fetched again below, replacing it
            warnings.warn(f"{exc}; fetching the weights again", UserWarning, stacklevel=2)
    with tempfile.TemporaryDirectory(prefix="skasd-weights-") as tmp:
        if source is None:
            source = _pip_download(WEIGHTS[name]["pip"], tmp)
        source = os.fspath(source)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no such file: {source}")
        if source.endswith(".whl"):
            sha = file_sha256(source)
            if sha != AISFX.wheel_sha256:
                raise ValueError(f"{source}: sha256 {sha} is not that of {AISFX.wheel} ({AISFX.wheel_sha256})")
            checkpoint = os.path.join(tmp, "checkpoint.pth")
            with zipfile.ZipFile(source) as zf, zf.open(AISFX.wheel_member) as src, open(checkpoint, "wb") as dst:
                shutil.copyfileobj(src, dst)
            source = checkpoint
        state, _ = read_aisfx_weights(source)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with atomic_path(target) as out:
            save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, out,
                      metadata={"source": AISFX.wheel, "checkpoint_sha256": AISFX.checkpoint_sha256,
                                "licence": WEIGHTS[name]["licence"], "credit": WEIGHTS[name]["credit"]})
    return target
