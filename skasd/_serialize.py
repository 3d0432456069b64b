"""The skasd model file: save and load fitted estimators without pickle.

A model file is a zip archive of two members:

- ``manifest.json``: the format version, library versions, creation time, the SHA-256
  of the other member, metadata (feature parameters, input shapes, training set) and
  the *estimator tree*: every estimator as ``{"@": "estimator", "class": ...,
  "params": {...}, "fitted": {...}}``, nested estimators (Pipeline steps, estimators
  held in parameters or fitted attributes) in place.
- ``arrays.safetensors``: every fitted array and network weight, referenced from the
  tree by key.

:func:`load` rebuilds estimators only from an allowlist (the estimators exported by
``skasd`` and ``skasd.models``, a fixed list of scikit-learn classes) and never
unpickles, so a crafted file cannot run code. See ``docs/model_files.rst``.
"""

import datetime
import hashlib
import importlib
import json
import math
import os
import re
import sys
import warnings
import zipfile
from importlib import metadata as _metadata
from pathlib import Path, PurePath

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import Bunch

from ._io import atomic_path

__all__ = ["ModelFileError", "load", "model_info", "save"]

FORMAT = "skasd-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.safetensors"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_MANIFEST_BYTES = 256 * 2**20
_TRUST_HINT = "use joblib.dump if you trust the file"

# Public modules whose exported estimator classes may be rebuilt (looked up by name at
# load time, so newly exported classes are covered without a list to maintain).
_SKASD_MODULES = ("skasd", "skasd.models")
# scikit-learn classes skasd pipelines use.
_SKLEARN_CLASSES = (
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.preprocessing.StandardScaler",
    "sklearn.preprocessing.MinMaxScaler",
    "sklearn.preprocessing.MaxAbsScaler",
    "sklearn.preprocessing.RobustScaler",
    "sklearn.preprocessing.Normalizer",
    "sklearn.decomposition.PCA",
    "sklearn.neighbors.NearestNeighbors",
    "sklearn.mixture.GaussianMixture",
    "sklearn.covariance.EmpiricalCovariance",
    "sklearn.covariance.LedoitWolf",
    "sklearn.covariance.OAS",
    "sklearn.covariance.ShrunkCovariance",
    "sklearn.covariance.MinCovDet",
)
# Fitted attributes not stored but rebuilt from the others at load (a KD-/ball tree is
# a compiled object: rebuilding it from the stored training data is exact and safe).
_DERIVED = {"sklearn.neighbors.NearestNeighbors": ("_tree",)}
# Callables allowed as parameter values, besides torch optimizers and torch.nn modules.
_NUMPY_FUNCTIONS = ("mean", "median", "max", "min", "sum", "std")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Parameters holding a handle on the machine that trained the model (not data): stored as
# None, so the loaded model runs on its ``device``.
_RUNTIME_PARAMS = ("accelerator",)


class ModelFileError(ValueError):
    """A model file cannot be written or read: unsupported content, corrupt, or too new.

    Subclass of :class:`ValueError`; the message names the file and the problem.
    """


# ------------------------------------------------------------------------ allowlist
def _skasd_class(name):
    """The class exported as ``name`` (``"skasd.models.CNNAE"``), or None."""
    module, _, attr = name.rpartition(".")
    if module not in _SKASD_MODULES or not _NAME.match(attr) or attr.startswith("_"):
        return None
    cls = getattr(importlib.import_module(module), attr, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseEstimator) else None


def _sklearn_class(name):
    if name not in _SKLEARN_CLASSES:
        return None
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _allowed_class(name):
    """The estimator class allowlisted under ``name``, else None."""
    if not isinstance(name, str):
        return None
    return _skasd_class(name) or _sklearn_class(name)


def _class_name(cls):
    """Allowlisted name of ``cls`` (exactly that class, not a subclass), else None."""
    if cls.__module__.split(".")[0] == "skasd":
        for module in _SKASD_MODULES:
            name = f"{module}.{cls.__name__}"
            if _skasd_class(name) is cls:
                return name
        return None
    for name in _SKLEARN_CLASSES:
        if cls.__name__ == name.rpartition(".")[2] and _sklearn_class(name) is cls:
            return name
    return None


def _allowed_callable(name):
    """The callable allowlisted under ``name``: a torch optimizer or torch.nn module
    class, or one of a few numpy reductions; else None."""
    module, _, attr = str(name).rpartition(".")
    if not _NAME.match(attr) or attr.startswith("_"):
        return None
    if module == "numpy" and attr in _NUMPY_FUNCTIONS:
        return getattr(np, attr)
    if module in ("torch.optim", "torch.nn"):
        import torch

        base = torch.optim.Optimizer if module == "torch.optim" else torch.nn.Module
        obj = getattr(importlib.import_module(module), attr, None)
        if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
            return obj
    return None


def _callable_name(obj):
    for module in ("torch.optim", "torch.nn", "numpy"):
        name = f"{module}.{getattr(obj, '__name__', '')}"
        if module.split(".")[0] in sys.modules and _allowed_callable(name) is obj:
            return name
    return None


def _module_loaded_instance(value, module, attr):
    """``isinstance(value, module.attr)`` without importing ``module`` (not loaded: False)."""
    if module.split(".")[0] not in sys.modules:
        return False
    return isinstance(value, getattr(importlib.import_module(module), attr))


# ------------------------------------------------------------------------ encoding
class _Encoder:
    """Turn an estimator into the JSON tree, collecting arrays into ``self.arrays``."""

    def __init__(self):
        self.arrays = {}
        self.seen = {}  # id(estimator) -> reference number, so shared estimators stay shared

    def _unsupported(self, path, what):
        return ModelFileError(
            f"cannot store {path}: {what} is not supported by the skasd model format "
            f"(it stores skasd estimators, the scikit-learn pieces skasd pipelines use and "
            f"plain data); {_TRUST_HINT} (joblib runs code from the file when loading it)"
        )

    def _array(self, path, arr, **extra):
        key = path
        while key in self.arrays:  # paths are unique; guard anyway
            key += "_"
        self.arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return {"@": "ndarray", "key": key, **extra}

    def value(self, v, path):
        if v is None or type(v) in (bool, str, int):  # exact types: np.str_ is a str
            return v
        if type(v) is float:
            return v if math.isfinite(v) else {"@": "float", "value": repr(v)}
        if isinstance(v, np.ndarray):
            return self.ndarray(v, path)
        if isinstance(v, np.generic):
            if v.dtype.kind not in "biufU":
                raise self._unsupported(path, f"a numpy {v.dtype} scalar")
            return {"@": "npscalar", "dtype": v.dtype.str, "value": self.value(v.item(), path)}
        if isinstance(v, np.dtype):
            return {"@": "dtype", "name": v.str}
        if isinstance(v, type) and issubclass(v, np.generic):
            return {"@": "dtype_type", "name": np.dtype(v).str}
        if isinstance(v, list):
            return [self.value(x, f"{path}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, tuple) and type(v) is tuple:
            return {"@": "tuple", "items": [self.value(x, f"{path}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict) and type(v) in (dict, Bunch):
            if type(v) is Bunch:
                if not all(isinstance(k, str) for k in v):
                    raise self._unsupported(path, "a Bunch with non-string keys")
                return {"@": "bunch", "items": {k: self.value(x, f"{path}.{k}") for k, x in v.items()}}
            items = []
            for i, (k, x) in enumerate(v.items()):
                if not (k is None or isinstance(k, (str, int, float, tuple))):
                    raise self._unsupported(path, f"a dict key of type {type(k).__name__}")
                items.append([self.value(k, f"{path}.key{i}"), self.value(x, f"{path}[{k!r}]")])
            return {"@": "dict", "items": items}
        if isinstance(v, PurePath):
            return {"@": "path", "value": os.fspath(v)}
        if isinstance(v, np.random.RandomState):
            return {"@": "random_state", "state": self.value(v.get_state(legacy=True), path)}
        if isinstance(v, BaseEstimator):
            return self.estimator(v, path)
        if _module_loaded_instance(v, "torch", "Tensor"):
            return self.tensor(v, path)
        if _module_loaded_instance(v, "torch", "device"):
            return {"@": "torch_device", "value": str(v)}
        if isinstance(v, type) or callable(v):
            name = _callable_name(v)
            if name is None:
                what = getattr(v, "__qualname__", type(v).__name__)
                raise self._unsupported(path, f"the callable {getattr(v, '__module__', '?')}.{what}")
            return {"@": "callable", "name": name}
        raise self._unsupported(path, f"a {type(v).__module__}.{type(v).__qualname__} object")

    def ndarray(self, v, path):
        if v.dtype.kind in "biuf" and v.dtype.itemsize <= 8:
            return self._array(path, v)
        if v.dtype.kind in "UO":
            items = v.ravel().tolist()
            if not all(x is None or isinstance(x, (str, int, float)) for x in items):
                raise self._unsupported(path, "an object array holding non-scalar items")
            return {"@": "ndarray_list", "dtype": v.dtype.str, "shape": list(v.shape),
                    "items": [self.value(x, path) for x in items]}
        raise self._unsupported(path, f"an array of dtype {v.dtype}")

    def tensor(self, t, path):
        import torch

        t = t.detach().cpu().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: store the bits
            t = t.view(torch.int16)
        return self._array(path, t.numpy(), torch_dtype=dtype)

    def estimator(self, est, path):
        if id(est) in self.seen:
            return {"@": "ref", "id": self.seen[id(est)]}
        cls = type(est)
        name = _class_name(cls)
        if name is None:
            raise self._unsupported(path, f"the estimator class {cls.__module__}.{cls.__qualname__}")
        params = est.get_params(deep=False)
        self.seen[id(est)] = len(self.seen)
        params = {k: None if k in _RUNTIME_PARAMS else v for k, v in params.items()}
        node = {"@": "estimator", "id": self.seen[id(est)], "class": name,
                "params": {k: self.value(v, f"{path}.{k}") for k, v in params.items()}, "fitted": {}}
        derived = _DERIVED.get(name, ())
        for attr, v in vars(est).items():
            if attr in params or attr in derived:
                continue
            if _module_loaded_instance(v, "skorch", "NeuralNet"):
                node["net"] = self.net(est, attr, v, f"{path}.{attr}")
            else:
                node["fitted"][attr] = self.value(v, f"{path}.{attr}")
        return node

    def net(self, est, attr, net, path):
        """The torch protocol: see ``_net_args``."""
        if attr != "net_" or not hasattr(est, "_make_net"):
            raise self._unsupported(path, "a skorch net outside the skasd torch-estimator protocol")
        if not getattr(net, "initialized_", False):
            raise self._unsupported(path, "an uninitialised skorch net")
        module = net.module_
        if getattr(est, "accelerator", None) is not None:  # as trained, possibly wrapped
            module = est.accelerator.unwrap_model(module)
        state = module.state_dict()
        return {
            "@": "net",
            "args": self.value(_net_args(est), f"{path}.args"),
            "state": [[k, self.tensor(t, f"{path}.module.{k}")] for k, t in state.items()],
            "history": self.value([dict(epoch) for epoch in net.history], f"{path}.history"),
        }


def _net_args(est):
    """Keyword arguments of ``est._make_net`` (besides ``device``) for the fitted geometry.

    An estimator may define ``_net_args()``; without it, ``_make_net`` must read what it
    needs from the fitted attributes (restored before it is called) and gets none. The
    autoencoders (``BaseAEDetector``) take ``width`` (frames per window, 1 for 2-D input)
    and ``n_mels`` (``n_features_in_``).
    """
    if hasattr(est, "_net_args"):
        return dict(est._net_args())
    from .models._base import BaseAEDetector

    if isinstance(est, BaseAEDetector):
        width = 1 if est._input_ndim == 2 else est._window()[0]
        return {"width": int(width), "n_mels": int(est.n_features_in_)}
    return {}


# ------------------------------------------------------------------------ decoding
class _Decoder:
    """Rebuild objects from the JSON tree and the arrays; refuse anything else."""

    def __init__(self, arrays, source):
        self.arrays, self.source = arrays, source
        self.built = {}  # reference number -> estimator

    def error(self, path, what):
        return ModelFileError(f"{self.source}: {path}: {what}")

    def value(self, v, path):
        if v is None or isinstance(v, (bool, str, int, float)):
            return v
        if isinstance(v, list):
            return [self.value(x, f"{path}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            raise self.error(path, f"malformed value of JSON type {type(v).__name__}")
        tag = v.get("@")
        method = getattr(self, f"tag_{tag}", None) if isinstance(tag, str) and _NAME.match(tag) else None
        if method is None:
            raise self.error(path, f"unknown entry type {tag!r} (a file from a newer or foreign writer)")
        try:
            return method(v, path)
        except ModelFileError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise self.error(path, f"malformed {tag!r} entry ({type(exc).__name__}: {exc})") from exc

    def tag_float(self, v, path):
        value = float(v["value"])
        if math.isfinite(value):
            raise ValueError("finite floats are stored as JSON numbers")
        return value

    def tag_tuple(self, v, path):
        return tuple(self.value(x, f"{path}[{i}]") for i, x in enumerate(v["items"]))

    def tag_dict(self, v, path):
        return {self.value(k, path): self.value(x, f"{path}[{k!r}]") for k, x in v["items"]}

    def tag_path(self, v, path):
        return Path(str(v["value"]))

    def tag_npscalar(self, v, path):
        dtype = np.dtype(v["dtype"])
        if dtype.kind not in "biufU":
            raise ValueError(f"dtype {dtype} not allowed")
        return dtype.type(self.value(v["value"], path))

    def tag_dtype(self, v, path):
        dtype = np.dtype(str(v["name"]))
        if dtype.kind not in "biufUb":
            raise ValueError(f"dtype {dtype} not allowed")
        return dtype

    def tag_dtype_type(self, v, path):
        return self.tag_dtype(v, path).type

    def tag_ndarray(self, v, path):
        key = v["key"]
        if key not in self.arrays:
            raise self.error(path, f"array {key!r} is missing from {ARRAYS}")
        arr = self.arrays[key]
        if "torch_dtype" in v:
            return self._tensor(arr, v["torch_dtype"], path)
        return arr

    def _tensor(self, arr, dtype, path):
        import torch

        target = getattr(torch, str(dtype), None)
        if not isinstance(target, torch.dtype):
            raise self.error(path, f"unknown torch dtype {dtype!r}")
        t = torch.from_numpy(np.array(arr))
        return t.view(target) if t.dtype != target else t

    def tag_ndarray_list(self, v, path):
        dtype = np.dtype(v["dtype"])
        if dtype.kind not in "UO":
            raise ValueError(f"dtype {dtype} not allowed")
        items = [self.value(x, path) for x in v["items"]]
        arr = np.empty(len(items), dtype=dtype)
        arr[:] = items
        return arr.reshape([int(n) for n in v["shape"]])

    def tag_random_state(self, v, path):
        rs = np.random.RandomState()
        rs.set_state(self.value(v["state"], path))
        return rs

    def tag_torch_device(self, v, path):
        import torch

        return torch.device(str(v["value"]))

    def tag_callable(self, v, path):
        obj = _allowed_callable(v["name"])
        if obj is None:
            raise self.error(
                path, f"the callable {v['name']!r} is not one the skasd model format may load "
                f"(torch optimizers, torch.nn modules, numpy {', '.join(_NUMPY_FUNCTIONS)}); {_TRUST_HINT}"
            )
        return obj

    def tag_bunch(self, v, path):
        return Bunch(**{str(k): self.value(x, f"{path}.{k}") for k, x in v["items"].items()})

    def tag_ref(self, v, path):
        if v["id"] not in self.built:
            raise self.error(path, f"reference to estimator {v['id']!r} before its definition")
        return self.built[v["id"]]

    def tag_estimator(self, v, path):
        name = v["class"]
        cls = _allowed_class(name)
        if cls is None:
            raise self.error(
                path, f"class {name!r} is not a skasd estimator or one of the scikit-learn "
                f"classes the skasd model format may load; {_TRUST_HINT}"
            )
        params = {}
        for key, raw in v["params"].items():
            params[key] = self.value(raw, f"{path}.{key}")
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise self.error(path, f"{name} has no parameter(s) {', '.join(unknown)} in this "
                                   "version of skasd/scikit-learn (a file from a newer version?)")
        params = _portable_device(params, name)
        est = cls(**params)
        if "id" in v:
            if not isinstance(v["id"], int) or v["id"] in self.built:
                raise self.error(path, f"duplicate estimator id {v['id']!r}")
            self.built[v["id"]] = est
        for attr, raw in v["fitted"].items():
            self._check_attr(est, attr, params, f"{path}.{attr}")
            setattr(est, attr, self.value(raw, f"{path}.{attr}"))
        if "net" in v:
            est.net_ = self.net(est, v["net"], f"{path}.net_")
        if name in _DERIVED and hasattr(est, "_fit_X"):  # refit on the stored training data
            refit = clone(est).fit(est._fit_X)
            for attr in _DERIVED[name]:
                setattr(est, attr, getattr(refit, attr))
        return est

    def _check_attr(self, est, attr, params, path):
        if not (isinstance(attr, str) and _NAME.match(attr)) or attr.startswith("__") or attr in params:
            raise self.error(path, f"{attr!r} is not a valid fitted attribute name")
        if hasattr(type(est), attr):
            raise self.error(path, f"{attr!r} would replace a {type(est).__name__} class attribute")

    def net(self, est, v, path):
        import torch
        from skorch.history import History

        from .models._base import resolve_device

        if not hasattr(est, "_make_net"):
            raise self.error(path, f"{type(est).__name__} is not a torch estimator")
        args = self.value(v["args"], f"{path}.args")
        if not isinstance(args, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in args):
            raise self.error(path, "malformed net arguments")
        state = {str(k): self.value(t, f"{path}.module.{k}") for k, t in v["state"]}
        if not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise self.error(path, "network weights must be tensors")
        device = resolve_device(getattr(est, "device", "cpu"))
        with torch.random.fork_rng(devices=[]):  # initialisation must not move the user's RNG
            net = est._make_net(device=device, **args)
            net.initialize()
        try:
            net.module_.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[:2]
            raise self.error(path, f"the weights do not fit the network: {' '.join(first)}") from exc
        net.history = History(self.value(v["history"], f"{path}.history"))
        return net


def _wants_cuda(device):
    return str(device).startswith("cuda")


def _portable_device(params, name):
    """A ``device`` parameter naming CUDA becomes ``"cpu"`` (with a warning) without CUDA."""
    device = params.get("device")
    if device is None or not _wants_cuda(device):
        return params
    import torch

    if torch.cuda.is_available():
        return params
    warnings.warn(
        f"{name.rpartition('.')[2]} was saved with device={str(device)!r} but CUDA is not "
        "available here: loading it on the CPU (device='cpu')",
        UserWarning,
        stacklevel=4,
    )
    return {**params, "device": "cpu"}


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
    from ._features import LogMelTransformer, MFCCTransformer

    runtime = {"backend", "device", "n_jobs", "verbose", "cache"}
    features, inputs = [], []
    for path, est in _walk(estimator):
        if isinstance(est, LogMelTransformer):
            params = {k: v for k, v in est.get_params().items() if k not in runtime}
            kind = "MFCCTransformer" if isinstance(est, MFCCTransformer) else "LogMelTransformer"
            features.append({"path": path, "class": kind, **params})
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
    >>> from skasd._serialize import load, save
    >>> X = np.random.default_rng(0).normal(size=(6, 16, 20)).astype("float32")
    >>> det = DenseAE(max_epochs=2, random_state=0).fit(X)
    >>> path = save(det, os.path.join(tempfile.mkdtemp(), "model.skasd"))
    >>> np.array_equal(load(path).score_samples(X), det.score_samples(X))
    True
    """
    from safetensors.numpy import save as save_arrays

    encoder = _Encoder()
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
                    f"hold pickles and load never unpickles; {_TRUST_HINT}"
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
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_arrays

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
    return _Decoder(arrays, source).value(tree, str(tree.get("class", "estimator")).rpartition(".")[2])


def is_model_file(path):
    """Whether ``path`` starts like a zip archive (a skasd model file), not a joblib pickle."""
    with open(path, "rb") as f:
        return f.read(4).startswith(_ZIP_MAGIC)
