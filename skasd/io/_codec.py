"""The estimator tree of a skasd model file: estimators to JSON and arrays, and back, without pickle.

:class:`Encoder` turns an estimator into a JSON tree (every estimator as ``{"@": "estimator",
"class": ..., "params": {...}, "fitted": {...}}``, nested estimators -- Pipeline steps,
estimators held in parameters or fitted attributes -- in place), collecting its arrays and
network weights by key. :class:`Decoder` rebuilds objects from that tree and the arrays, only
from an allowlist (the estimators exported by ``skasd`` and ``skasd.models``, a fixed list of
scikit-learn classes, torch optimizers and modules as parameters), so a crafted file cannot run
code. The archive around them is :mod:`skasd.io._container`.

Class names are recorded as their public names (``skasd.DenseAE``, ``skasd.LogMelTransformer``),
never as the module that defines them, so moving a class between modules keeps old files
loading; ``tests/fixtures`` holds files written by earlier releases to check it.

A torch estimator stores its net through ``_net_args()`` (the keyword arguments that rebuild
the net with ``_make_net(device=..., **args)`` besides the fitted attributes) and the module's
``state_dict``; see :class:`skasd.models._torch._estimator.BaseTorchEstimator`.
"""

import importlib
import math
import os
import re
import sys
import warnings
from pathlib import Path, PurePath

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import Bunch

from ..exceptions import ModelFileError

__all__ = ["Decoder", "Encoder"]

TRUST_HINT = "use joblib.dump if you trust the file"

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


def _restore_layout(arr, v, path, error):
    """A fresh array (own, aligned memory, as a fitted one has) in the saved order and byte order."""
    order = v.get("order", "C")
    if order not in ("C", "F"):
        raise error(path, f"unknown array order {order!r}")
    if "dtype" in v:
        dtype = np.dtype(str(v["dtype"]))
        if dtype.kind not in "biuf" or dtype.newbyteorder("<") != arr.dtype.newbyteorder("<"):
            raise error(path, f"array dtype {dtype} does not match its stored {arr.dtype}")
        arr = arr.astype(dtype)
    return np.array(arr, order=order, copy=True)


# ------------------------------------------------------------------------ encoding
class Encoder:
    """Turn an estimator into the JSON tree, collecting arrays into ``self.arrays``."""

    def __init__(self):
        self.arrays = {}
        self.seen = {}  # id(estimator) -> reference number, so shared estimators stay shared

    def _unsupported(self, path, what):
        return ModelFileError(
            f"cannot store {path}: {what} is not supported by the skasd model format "
            f"(it stores skasd estimators, the scikit-learn pieces skasd pipelines use and "
            f"plain data); {TRUST_HINT} (joblib runs code from the file when loading it)"
        )

    def _array(self, path, arr, **extra):
        key = path
        while key in self.arrays:  # paths are unique; guard anyway
            key += "_"
        # safetensors holds C-ordered little-endian bytes. What else decides an output's bits on
        # loading is recorded beside them: BLAS picks another kernel path for a Fortran-ordered
        # matrix (PCA.components_ is one: 1e-17 differences after a round trip otherwise), and
        # a big-endian array must come back big-endian.
        if arr.flags.f_contiguous and not arr.flags.c_contiguous:
            extra["order"] = "F"
        if not arr.dtype.isnative or arr.dtype.byteorder == ">":
            extra["dtype"] = arr.dtype.str
            arr = arr.astype(arr.dtype.newbyteorder("<"))
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
        why = est._unstorable() if hasattr(est, "_unstorable") else None  # e.g. a parameter that is code
        if why:
            raise ModelFileError(f"cannot store {path}: {why}")
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
        """The torch protocol: ``est._net_args()`` and the module's weights (see the module docstring)."""
        if attr != "net_" or not hasattr(est, "_net_args"):
            raise self._unsupported(path, "a skorch net outside the skasd torch-estimator protocol")
        if not getattr(net, "initialized_", False):
            raise self._unsupported(path, "an uninitialised skorch net")
        module = net.module_
        if getattr(est, "accelerator", None) is not None:  # as trained, possibly wrapped
            module = est.accelerator.unwrap_model(module)
        state = module.state_dict()
        return {
            "@": "net",
            "args": self.value(dict(est._net_args()), f"{path}.args"),
            "state": [[k, self.tensor(t, f"{path}.module.{k}")] for k, t in state.items()],
            "history": self.value([dict(epoch) for epoch in net.history], f"{path}.history"),
        }


# ------------------------------------------------------------------------ decoding
class Decoder:
    """Rebuild objects from the JSON tree and the arrays; refuse anything else."""

    def __init__(self, arrays, source, arrays_name):
        self.arrays, self.source, self.arrays_name = arrays, source, arrays_name
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
            raise self.error(path, f"array {key!r} is missing from {self.arrays_name}")
        arr = self.arrays[key]
        if "torch_dtype" in v:
            return self._tensor(arr, v["torch_dtype"], path)
        return _restore_layout(arr, v, path, self.error)

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
                f"(torch optimizers, torch.nn modules, numpy {', '.join(_NUMPY_FUNCTIONS)}); {TRUST_HINT}"
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
                f"classes the skasd model format may load; {TRUST_HINT}"
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

        from ..utils._torch_compat import resolve_device

        if not hasattr(est, "_make_net"):
            raise self.error(path, f"{type(est).__name__} is not a torch estimator")
        args = self.value(v["args"], f"{path}.args")
        if not isinstance(args, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in args):
            raise self.error(path, "malformed net arguments")
        state = {str(k): self.value(t, f"{path}.module.{k}") for k, t in v["state"]}
        if not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise self.error(path, "network weights must be tensors")
        device = str(resolve_device(getattr(est, "device", "cpu")))
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


