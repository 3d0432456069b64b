"""The frozen encoders behind :class:`~skasd.PretrainedEmbedding`: aisfx, Hugging Face transformers, user modules.

Each adapter gives the encoder's ``sample_rate``, the ``min_samples`` its window needs, the
``digest`` of its weights (:func:`._weights.state_digest`; None for a user module) and
``embed(W, layer, device, batch_size)``: float32 waveforms ``(n_clips, n_samples)`` at
``sample_rate`` to float32 ``(n_clips, n_dims, n_steps)``, the embedding of every time step
(aisfx: every 2.3 s block; transformers: every output frame or token) before pooling.

Loaded encoders are kept per process (:func:`load_encoder`), keyed by their weights file and
its size and modification time, so clones, pipelines and cross-validation folds read the
weights once. torch and transformers are imported inside the functions.
"""

import contextlib
import inspect
import math
import os
import warnings

import numpy as np

from ._aisfx import AISFX, aisfx_blocks, aisfx_logmel, aisfx_net, inference_net
from ._weights import FETCH_HINT, read_aisfx_weights, state_digest, weights_file

__all__ = ["load_encoder", "module_encoder"]

_LOADED = {}  # key -> adapter
_MAX_LOADED = 4


def _file_key(path):
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


def _remember(key, make):
    if key not in _LOADED:
        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = make()
    return _LOADED[key]


def load_encoder(model, weights=None):
    """The adapter of a named encoder: ``"aisfx"`` (weights from ``weights`` or the user's cache)
    or a transformers model id / local directory."""
    if model == "aisfx":
        if weights is None:
            path = weights_file("aisfx")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"the aisfx weights are not in the skasd cache ({path}): {FETCH_HINT}")
        else:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no aisfx weights file at {path}: {FETCH_HINT}")
        return _remember(("aisfx", *_file_key(path)), lambda: _Aisfx(path))
    if weights is not None:
        raise ValueError(
            f"weights= is for model='aisfx'; a transformers model ({model!r}) brings its own weights"
        )
    source = os.fspath(model)
    if os.path.isdir(source):
        config = os.path.join(source, "config.json")
        if not os.path.isfile(config):
            raise ValueError(f"model={source!r} is a directory without config.json: not a transformers model "
                             "directory (save_pretrained writes one)")
        key = ("hf", *_file_key(config))
    else:
        key = ("hf", source)
    return _remember(key, lambda: _Transformers(source))


def module_encoder(module, sr):
    """The adapter of a user's ``torch.nn.Module`` (see :class:`~skasd.PretrainedEmbedding`)."""
    return _Module(module, sr)


def _as_steps(E):
    """An encoder output as ``(n_clips, n_dims, n_steps)``: (B, T, D) is transposed, (B, C, H, W)
    has its two last axes flattened into steps, (B, D) is one step."""
    if E.ndim == 2:
        return E[:, :, None]
    if E.ndim == 3:
        return E.transpose(1, 2)
    if E.ndim == 4:
        return E.flatten(2)
    raise ValueError(f"the encoder returned an array of shape {tuple(E.shape)}; expected (B, D), (B, T, D) "
                     "or (B, C, H, W)")


class _Aisfx:
    name = "aisfx"
    sample_rate = AISFX.sample_rate
    min_samples = AISFX.min_samples
    layers = range(1, len(AISFX.channels) + 1)

    def __init__(self, path):
        import torch

        state, self.digest = read_aisfx_weights(path)
        self.path = path
        self.module = aisfx_net({k: torch.from_numpy(np.array(v)) for k, v in state.items()})  # the published layers
        self.net = inference_net(self.module)
        self._device = None

    def check_layer(self, layer):
        if layer is not None and layer not in self.layers:
            raise ValueError(f"layer={layer!r}: aisfx has the blocks 1 to 4 (64, 128, 256, 512 values); None means 4")

    def n_dims(self, layer):
        return AISFX.channels[(layer or 4) - 1]

    def embed(self, W, layer, device, batch_size):
        import torch

        if self._device != device:
            self.net.to(device)
            self._device = device
        B = aisfx_blocks(aisfx_logmel(W))
        n, n_blocks = B.shape[:2]
        flat = torch.from_numpy(np.ascontiguousarray(B.reshape(n * n_blocks, AISFX.block, AISFX.n_mels)))
        out = []
        with torch.inference_mode():
            for i in range(0, len(flat), batch_size):
                out.append(self.net(flat[i : i + batch_size].to(device), layer or 4).float().cpu())
        E = torch.cat(out).numpy().reshape(n, n_blocks, -1)
        return np.ascontiguousarray(E.transpose(0, 2, 1))


@contextlib.contextmanager
def _quiet_transformers(transformers):
    """transformers' loading messages and progress bars off inside the block, as they were after it."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


class _Transformers:
    def __init__(self, source):
        try:
            import transformers
        except ImportError as e:
            raise ImportError(f"model={source!r} needs Hugging Face transformers: pip install 'skasd[pretrained]'") from e
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel
        from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor

        self.name = source
        where = "local directory" if os.path.isdir(source) else "Hugging Face model id (looked up online or in the HF cache)"
        try:
            config = AutoConfig.from_pretrained(source)
        except (OSError, ValueError) as e:
            raise ValueError(
                f"model={source!r} is not 'aisfx', a torch.nn.Module, nor a transformers model that can be loaded "
                f"as a {where}: {str(e).splitlines()[0]}"
            ) from e
        not_audio = (f"model={source!r} ({config.model_type}) is not an audio encoder: PretrainedEmbedding takes "
                     "transformers audio encoders (AST, wav2vec2, HuBERT, WavLM, CLAP, Whisper, ...) whose feature "
                     "extractor reads waveforms")
        try:
            fe = AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"{not_audio}; it has no audio feature extractor ({str(e).splitlines()[0]})") from e
        if not isinstance(fe, SequenceFeatureExtractor) or not getattr(fe, "sampling_rate", None):
            raise ValueError(f"{not_audio}; its preprocessor is a {type(fe).__name__}")
        with _quiet_transformers(transformers):  # e.g. "some weights not used" for a model with heads
            model = AutoModel.from_pretrained(source)
        if hasattr(model, "audio_model"):  # CLAP: the audio tower
            model = model.audio_model
        elif getattr(model.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):  # Whisper
            model = model.get_encoder()
        if getattr(model, "main_input_name", None) not in ("input_values", "input_features"):
            raise ValueError(f"{not_audio}; its model reads {getattr(model, 'main_input_name', '?')!r}")
        self.fe, self.model = fe, model.eval()
        self.sample_rate = int(fe.sampling_rate)
        self.min_samples = self._receptive_field(model.config)
        self.n_fixed = getattr(fe, "n_samples", None)  # Whisper pads/crops to 30 s
        self.digest = state_digest(model.state_dict())
        self._accepts = set(inspect.signature(model.forward).parameters)
        self._device = None

    @staticmethod
    def _receptive_field(config):
        kernels, strides = getattr(config, "conv_kernel", None), getattr(config, "conv_stride", None)
        if not kernels or not strides:
            return 1
        field, jump = 1, 1
        for k, s in zip(kernels, strides):
            field += (k - 1) * jump
            jump *= s
        return field

    def check_layer(self, layer):
        n = getattr(self.model.config, "num_hidden_layers", None)
        if layer is not None and n is not None and not -(n + 1) <= layer <= n:
            raise ValueError(f"layer={layer}: {self.name} has hidden states 0 (input embeddings) to {n}; "
                             "None means the last hidden state")

    def embed(self, W, layer, device, batch_size):
        import torch

        if self._device != device:
            self.model.to(device)
            self._device = device
        if self.n_fixed is not None and W.shape[1] > self.n_fixed:
            warnings.warn(
                f"{self.name} reads at most {self.n_fixed / self.sample_rate:g} s: clips of "
                f"{W.shape[1] / self.sample_rate:g} s are cropped to it", UserWarning, stacklevel=4,
            )
        longest = getattr(self.fe, "nb_max_samples", None)
        if getattr(self.fe, "truncation", None) == "rand_trunc" and longest and W.shape[1] > longest:
            warnings.warn(
                f"{self.name}'s feature extractor crops clips longer than {longest / self.sample_rate:g} s at a "
                f"random place (truncation='rand_trunc'), so their rows vary between calls; pass "
                f"duration={longest / self.sample_rate:g}", UserWarning, stacklevel=4,
            )
        out = []
        with torch.inference_mode():
            for i in range(0, len(W), batch_size):
                inputs = self.fe(list(W[i : i + batch_size]), sampling_rate=self.sample_rate, return_tensors="pt")
                inputs = {k: v.to(device) for k, v in inputs.items() if k in self._accepts}
                res = self.model(**inputs, output_hidden_states=layer is not None)
                E = res.last_hidden_state if layer is None else res.hidden_states[layer]
                E = _as_steps(E.float()).cpu()
                if self.n_fixed is not None and W.shape[1] < self.n_fixed:  # drop the frames of the padding
                    E = E[:, :, : max(1, math.ceil(E.shape[2] * W.shape[1] / self.n_fixed))]
                out.append(E)
        return torch.cat(out).numpy()


class _Module:
    name = None
    digest = None

    def __init__(self, module, sr):
        self.module = module
        self.sample_rate = int(getattr(module, "sample_rate", sr))
        self.min_samples = int(getattr(module, "min_samples", 1))

    def check_layer(self, layer):
        pass

    def embed(self, W, layer, device, batch_size):
        import torch

        was_training = self.module.training
        self.module.to(device).eval()
        out = []
        try:
            with torch.inference_mode():
                for i in range(0, len(W), batch_size):
                    E = self.module(torch.from_numpy(W[i : i + batch_size]).to(device))
                    if isinstance(E, (tuple, list)):
                        E = E[-1 if layer is None else layer]
                    elif layer is not None:
                        raise ValueError(f"layer={layer}: the module returns one tensor, not a tuple or list of layers")
                    if not isinstance(E, torch.Tensor):
                        raise TypeError(f"the module returned a {type(E).__name__}, not a tensor")
                    out.append(_as_steps(E.float()).cpu())
        finally:
            self.module.train(was_training)
        return torch.cat(out).numpy()
