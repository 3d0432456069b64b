"""The one skorch estimator base the torch estimators share (autoencoders, ClassifierEmbedding).

- ``_estimator``: :class:`BaseTorchEstimator` (parameters and constraints, seeding, the training
  loop with the clip-level validation split, callbacks, checkpoint/resume and Accelerate,
  chunked inference) and the shared parameter docs;
- ``_datasets``: windows and crops of clips in memory or streamed from a FeatureStore, the split;
- ``_nets``: the skorch nets (losses, resuming, Accelerate variants);
- ``_callbacks``: checkpoint/resume, data-dependent module state, non-finite loss;
- ``_ae_modules``, ``_embedding_modules``: the torch modules.

Private: the public estimators are in :mod:`skasd.models`.
"""
