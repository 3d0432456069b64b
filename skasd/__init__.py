"""skasd: scikit-learn compatible anomalous sound detection for machines.

Public names are imported lazily, so that ``import skasd`` stays fast and
does not import torch until a torch-backed object is used (the inlier detectors,
``skasd.KNNDetector`` and friends, never import it). The layout and the dependency
rule between the subpackages are in ``ARCHITECTURE.md``.

Sign conventions
----------------
- ``score_samples``: higher = more normal (scikit-learn convention).
- ``anomaly_score``: higher = more anomalous (DCASE convention), ``= -score_samples``.
- Labels for metrics: 1 = anomaly, 0 = normal.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "load_audio": "skasd.features",
    "AudioError": "skasd.exceptions",
    "LogMelTransformer": "skasd.features",
    "MFCCTransformer": "skasd.features",
    "DenseAE": "skasd.models",
    "VAE": "skasd.models",
    "CNNAE": "skasd.models",
    "KNNDetector": "skasd.models",
    "MahalanobisDetector": "skasd.models",
    "GMMDetector": "skasd.models",
    "ScoreFusion": "skasd.models",
    "SectionwiseDetector": "skasd.models",
    "ClassifierEmbedding": "skasd.models",
    "ClipStatsTransformer": "skasd.features",
    "SpectrumTransformer": "skasd.features",
    "PretrainedEmbedding": "skasd.features",
    "FeatureStore": "skasd.features",
    "dask_transform": "skasd.features",
    "save": "skasd.io",
    "load": "skasd.io",
    "model_info": "skasd.io",
    "ModelFileError": "skasd.exceptions",
    "write_submission": "skasd.io",
    "Monitor": "skasd.workflow",
}
_SUBMODULES = (
    "datasets", "exceptions", "features", "inspection", "io", "metrics", "model_selection", "models", "plot", "report",
    "workflow",
)

__all__ = sorted([*_LAZY, *_SUBMODULES])


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"skasd.{name}")
    raise AttributeError(f"module 'skasd' has no attribute {name!r}")


def __dir__():
    return __all__
