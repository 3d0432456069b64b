"""From audio files to features: decoding, log-mel and MFCC, clip statistics, the feature cache.

- :func:`load_audio` reads one file (``_audio``, also the batch decoding every transformer uses).
- :class:`LogMelTransformer`, :class:`MFCCTransformer` (``_spectral``): siblings on one base,
  with a librosa and a torch backend (``_torch_backend``, which imports torch when first used).
- :class:`ClipStatsTransformer` (``_clip_stats``): one row of summary statistics per clip.
- :class:`SpectrumTransformer` (``_spectrum``): one fine-resolution, level-normalised log power
  spectrum per clip (the default recipe's feature for DCASE-style data).
- :class:`PretrainedEmbedding` (``_pretrained``): one row per clip from a frozen pretrained
  encoder (``_encoders``: aisfx, whose network and input are ``_aisfx``; transformers models;
  user modules), its weights checked and kept in the user's cache (``_weights``).
- The per-clip feature cache (``_cache``), :class:`FeatureStore` (``_stream``: features of more
  clips than fit in memory) and :func:`dask_transform` (``_dask``).

Nothing here imports torch at import time.
"""

from ..exceptions import AudioError
from ._audio import load_audio
from ._clip_stats import ClipStatsTransformer
from ._dask import dask_transform
from ._pretrained import PretrainedEmbedding
from ._spectral import LogMelTransformer, MFCCTransformer
from ._spectrum import SpectrumTransformer
from ._stream import FeatureStore

__all__ = [
    "AudioError",
    "ClipStatsTransformer",
    "FeatureStore",
    "LogMelTransformer",
    "MFCCTransformer",
    "PretrainedEmbedding",
    "SpectrumTransformer",
    "dask_transform",
    "load_audio",
]
