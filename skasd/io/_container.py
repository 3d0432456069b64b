"""The skasd model file: a zip archive of a JSON manifest and the arrays, written and read safely.

A model file is a zip archive of two members:

- ``manifest.json``: the format version, library versions, creation time, the SHA-256
  of the other member, metadata (feature parameters, input shapes, training set) and
  the *estimator tree* (see :mod:`skasd.io._codec`).
- ``arrays.safetensors``: every fitted array and network weight, referenced from the
  tree by key.

:func:`load` checks the archive (members, hashes, format version) before the codec rebuilds
anything, and never unpickles, so a crafted file cannot run code. See ``docs/model_files.rst``.
"""

import datetime
import hashlib
import json
import os
import sys
import zipfile
from importlib import metadata as _metadata
from pathlib import Path

from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays
from sklearn.base import BaseEstimator

from ..exceptions import ModelFileError
from ..features._spectral import _SpectralTransformer
from ..utils._atomic import atomic_path
from ._codec import TRUST_HINT, Decoder, Encoder

__all__ = ["is_model_file", "load", "model_info", "save"]

FORMAT = "skasd-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_MANIFEST_BYTES = 256 * 2**20


# ------------------------------------------------------------------------ metadata
def _walk(est, path="estimator"):
    """``(path, estimator)`` for ``est`` and every estimator nested in its parameters."""
    yield path, est
    for key, value in est.get_params(deep=False).items():
        items = value if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if isinstance(item, tuple):  # (name, estimator) steps
                item = item[-1]
            if isinstance(item, BaseEstimator):
                suffix = f"[{i}]" if isinstance(value, (list, tuple)) else ""
                yield from _walk(item, f"{path}.{key}{suffix}")


def _describe(estimator, metadata):
    runtime = {"backend", "device", "n_jobs", "verbose", "cache"}
    features, inputs = [], []
    for path, est in _walk(estimator):
        if isinstance(est, _SpectralTransformer):
            params = {k: v for k, v in est.get_params().items() if k not in runtime}
            features.append({"path": path, "class": type(est).__name__, **params})
        if hasattr(est, "n_features_in_") and "n_features_in_" in vars(est):
            entry = {"path": path, "class": type(est).__name__, "n_features_in": int(est.n_features_in_)}
            if hasattr(est, "_input_ndim"):
                entry["input_ndim"] = int(est._input_ndim)
            inputs.append(entry)
    info = {"features": features, "inputs": inputs}
    extra = dict(metadata or {})
    files = extra.pop("training_files", None)
    if files is not None:
        names = sorted(os.fspath(f) for f in files)
        info["n_training_files"] = len(names)
        info["training_files_sha256"] = hashlib.sha256("\n".join(names).encode()).hexdigest()
    clash = sorted(set(extra) & set(info))
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved")
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be plain JSON data (str, numbers, lists, dicts): {exc}") from exc
    return {**info, **extra}


def _versions():
    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("skasd", "numpy", "scikit-learn", "torch", "skorch", "safetensors"):
        try:
            out[dist] = _metadata.version(dist)
        except _metadata.PackageNotFoundError:
            out[dist] = None
    return out


# ------------------------------------------------------------------------ public API
def save(estimator, path, *, metadata=None):
    """Save a (fitted or unfitted) estimator as a skasd model file, without pickle.

    Parameters
    ----------
    estimator : estimator
        A skasd estimator, or a scikit-learn ``Pipeline`` of skasd estimators and the
        scikit-learn pieces listed in ``docs/model_files.rst``.
    path : str or path-like
        File to write (written atomically: temporary file + rename).
    metadata : dict, default=None
        Extra JSON-able information stored in the file. The key ``"training_files"``
        (a list of paths) is stored as its count and the SHA-256 of the sorted list.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    ModelFileError
        The estimator holds something the format cannot store (the message names it);
        use :func:`joblib.dump` for such estimators, and load those files only where
        you trust them.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skasd import DenseAE
    >>> from skasd import load, save
    >>> X = np.random.default_rng(0).normal(size=(6, 16, 20)).astype("float32")
    >>> det = DenseAE(max_epochs=2, random_state=0).fit(X)
    >>> path = save(det, os.path.join(tempfile.mkdtemp(), "model.skasd"))
    >>> np.array_equal(load(path).score_samples(X), det.score_samples(X))
    True
    """
    encoder = Encoder()
    tree = encoder.value(estimator, type(estimator).__name__)
    if not (isinstance(tree, dict) and tree.get("@") == "estimator"):
        raise ModelFileError(f"save expects an estimator, got {type(estimator).__name__}")
    blob = save_arrays(encoder.arrays)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "members": {ARRAYS: hashlib.sha256(blob).hexdigest()},
        "metadata": _describe(estimator, metadata),
        "estimator": tree,
    }
    text = json.dumps(manifest, indent=1, allow_nan=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(MANIFEST, text, compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(ARRAYS, blob, compress_type=zipfile.ZIP_STORED)
    return path


def _open(path):
    """Open and check the archive; returns ``(ZipFile, manifest)``."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"model file not found: {source}")
    with open(source, "rb") as f:
        head = f.read(4)
    if not head.startswith(_ZIP_MAGIC):
        kind = "a pickle/joblib file" if head[:1] == b"\x80" or head[:1] in (b"x", b"\x1f") else "not a zip archive"
        raise ModelFileError(
            f"{source}: not a skasd model file ({kind}); a joblib file executes code when "
            "loaded: load it with joblib.load only if you trust it"
        )
    try:
        zf = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{source}: truncated or corrupt model file ({exc})") from exc
    try:
        names = zf.namelist()
        if len(set(names)) != len(names):
            raise ModelFileError(f"{source}: corrupt model file (duplicate members)")
        for name in names:
            if name in (MANIFEST, ARRAYS):
                continue
            try:
                with zf.open(name) as member:
                    start = member.read(1)
            except (zipfile.BadZipFile, EOFError, OSError):
                start = b""
            if start == b"\x80" or name.endswith((".pkl", ".pickle", ".joblib", ".pt", ".pth")):
                raise ModelFileError(
                    f"{source}: contains a Python pickle (member {name!r}); skasd model files never "
                    f"hold pickles and load never unpickles; {TRUST_HINT}"
                )
            raise ModelFileError(f"{source}: unexpected member {name!r}: not a skasd model file")
        if MANIFEST not in names:
            raise ModelFileError(f"{source}: missing member {MANIFEST!r}: not a skasd model file")
        if zf.getinfo(MANIFEST).file_size > _MAX_MANIFEST_BYTES:
            raise ModelFileError(f"{source}: {MANIFEST} is implausibly large")
        manifest = json.loads(_read_member(zf, MANIFEST, source))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ModelFileError(f"{source}: {MANIFEST} does not describe a skasd model")
        version = manifest.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ModelFileError(f"{source}: {MANIFEST} has no integer format_version")
        if version > FORMAT_VERSION:
            written = (manifest.get("versions") or {}).get("skasd")
            raise ModelFileError(
                f"{source}: model format version {version} (written by skasd {written}) is newer "
                f"than this skasd reads (up to {FORMAT_VERSION}); upgrade skasd"
            )
        return zf, manifest
    except ModelFileError:
        zf.close()
        raise
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        zf.close()
        raise ModelFileError(f"{source}: {MANIFEST} is not valid JSON ({exc})") from exc


def _read_member(zf, name, source):
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ModelFileError(
            f"{source}: member {name!r} is corrupt or was modified ({exc})"
        ) from exc


def model_info(path):
    """The metadata of a model file, without rebuilding the estimator.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    info : dict
        ``format_version``, ``created`` (UTC), ``versions`` (of Python, skasd, numpy,
        scikit-learn, torch, skorch, safetensors at save time), ``estimator`` (the
        top-level class) and ``metadata``: ``features`` (parameters of every
        LogMel/MFCC transformer), ``inputs`` (``n_features_in`` and input dimension of
        each fitted estimator), ``n_training_files`` and ``training_files_sha256`` when
        given at save, plus the caller's own metadata keys.

    Raises
    ------
    ModelFileError
        Not a skasd model file, truncated, or from a newer format version. Member
        hashes are checked by :func:`load`, not here.
    """
    zf, manifest = _open(path)
    zf.close()
    return {
        "format_version": manifest["format_version"],
        "created": manifest.get("created"),
        "versions": manifest.get("versions"),
        "estimator": (manifest.get("estimator") or {}).get("class"),
        "metadata": manifest.get("metadata"),
    }


def load(path):
    """Load a skasd model file written by :func:`save`; never unpickles.

    Only allowlisted classes are rebuilt (estimators exported by ``skasd`` and
    ``skasd.models``, the scikit-learn classes in ``docs/model_files.rst``, torch
    optimizer classes as parameters). Network weights go to the device the estimator's
    ``device`` parameter names; a model saved with ``device="cuda"`` loads on the CPU,
    with a warning, where CUDA is not available.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    estimator : estimator
        The rebuilt estimator; scores equal those of the saved one.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ModelFileError
        One clear message per problem: not a model file (e.g. a joblib pickle), a
        truncated archive, a member that is missing, corrupt or does not match its
        SHA-256 (tampered), a Python pickle inside, a newer format version, or a class,
        callable or attribute the format does not allow.
    """
    source = os.fspath(path)
    zf, manifest = _open(path)
    with zf:
        members = manifest.get("members")
        if not isinstance(members, dict) or ARRAYS not in members:
            raise ModelFileError(f"{source}: {MANIFEST} lists no {ARRAYS} member")
        names = set(zf.namelist())
        for name, digest in members.items():
            if name not in names:
                raise ModelFileError(f"{source}: missing member {name!r}: the file is incomplete")
            if hashlib.sha256(data := _read_member(zf, name, source)).hexdigest() != digest:
                raise ModelFileError(
                    f"{source}: member {name!r} does not match its SHA-256 in {MANIFEST}: "
                    "the file is corrupt or was tampered with"
                )
            if name == ARRAYS:
                blob = data
    try:
        arrays = load_arrays(blob)
    except SafetensorError as exc:
        raise ModelFileError(f"{source}: {ARRAYS} is not valid safetensors ({exc})") from exc
    tree = manifest.get("estimator")
    if not (isinstance(tree, dict) and tree.get("@") == "estimator"):
        raise ModelFileError(f"{source}: {MANIFEST} holds no estimator")
    return Decoder(arrays, source, ARRAYS).value(tree, str(tree.get("class", "estimator")).rpartition(".")[2])


def is_model_file(path):
    """Whether ``path`` starts like a zip archive (a skasd model file), not a joblib pickle."""
    with open(path, "rb") as f:
        return f.read(4).startswith(_ZIP_MAGIC)
