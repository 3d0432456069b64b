"""ClassifierEmbedding: a small CNN trained to classify auxiliary labels; its embedding per clip.

The state-of-the-art family of DCASE 2020-2024 (STgram-MFN, the DCASE 2023 baseline's
successors): a network learns to tell machine IDs / sections / attributes apart, and a
simple inlier model (k-NN, Mahalanobis, GMM) scores each clip by its distance to the
training clips in that embedding. This module is the embedding half; any skasd detector
that accepts 2-D input is the other. The network is ``_torch._embedding_modules``; training,
inference and model files are the shared torch base's
(:class:`~skasd.models._torch._estimator.BaseTorchEstimator`).
"""

import hashlib
import os
from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from ..features._aisfx import AISFX, aisfx_logmel
from ..features._audio import _check_clips
from ..features._encoders import load_encoder
from ..features._pretrained import load_waveforms
from ..features._stream import FeatureStore
from ..utils._docstring import Substitution
from ..utils._sklearn_compat import Interval, StrOptions, validate_data
from ..utils._validation import normal_mask
from ._frames import band_profile, clip_chunks
from ._torch._datasets import _CropDataset, _CropStream
from ._torch._embedding_modules import _HEADS, _ClassifierModule
from ._torch._estimator import BaseTorchEstimator, parameter_docs
from ._torch._nets import _ClassifierNet

__all__ = ["ClassifierEmbedding"]

# Clips decoded at once with a backbone (32 clips of 10 s at 44.1 kHz: 56 MB of audio).
_CHUNK = 32


def _unit(Z):
    """Rows of ``Z`` (last axis) scaled to unit L2 norm (zero rows stay zero)."""
    norm = np.linalg.norm(Z, axis=-1, keepdims=True)
    return Z / np.maximum(norm, 1e-12)


@Substitution(
    optimizer=parameter_docs("optimizer"),
    training=parameter_docs(
        "validation_fraction", "early_stopping", "callbacks", "stream_buffer", "checkpoint", "checkpoint_every",
        "accelerator", validation_fraction=0.0, item="crop", result="embeddings",
        same_run="data shape, first/last training clip and labels",
    ),
    verbose=parameter_docs("verbose"),
)
class ClassifierEmbedding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseTorchEstimator):
    """Clip embeddings from a small CNN trained to classify auxiliary labels.

    The state-of-the-art recipe of DCASE 2020-2024 anomalous sound detection: a network
    learns to tell apart the labels the training data already carries (machine IDs,
    sections, attributes, or clips of other machines as extra classes), and an inlier
    model (k-NN, Mahalanobis, GMM) scores a clip by its distance to the normal training
    clips in that embedding. Subtle changes of a machine's sound move its clips away
    from where the classifier put that machine, even if the loudness does not change.

    Network: a ResNet-like CNN on log-mel patches of ``patch_frames`` frames (a 3x3
    stride-2 stem, one residual block per entry of ``channels``, each halving time and
    frequency from the second on), mean and standard deviation over time, a linear
    layer over them x mel bins to ``embed_dim`` and batch normalisation. It is trained by cross-entropy through
    one of four heads (``loss``) on random crops of the training clips (one epoch = as
    many crops per clip as fit side by side), optionally with mixup. ``transform`` cuts
    each clip into patches every ``patch_hop`` frames and pools their embeddings over the
    clip (``pooling``): their mean, and by default also their standard deviation, which
    keeps short events (a knock, a dropout) from being averaged away. Input is
    standardised with the training set's scalar mean and standard deviation.

    Training shares the autoencoders' machinery: a clip-level validation split
    (``validation_fraction``), early stopping, resumable checkpoints, Hugging Face Accelerate,
    and a :class:`~skasd.FeatureStore` input (``LogMelTransformer(cache=DIR, lazy=True)``),
    streamed from disk ``stream_buffer`` clips at a time.

    Labels: ``fit(X, y)`` trains on the classes of ``y``. In a Pipeline scored with
    anomaly labels (GridSearchCV with ``auc_scorer``), route the machine IDs as metadata
    instead: ``sklearn.set_config(enable_metadata_routing=True)``,
    ``ClassifierEmbedding().set_fit_request(machine_id=True)``, then
    ``pipe.fit(X, y, machine_id=ids)``. With ``machine_id`` given, ``y`` is read as
    anomaly labels (1 / ``"anomaly"`` = anomaly): anomalous clips are left out, and a
    ``y`` that is not binary is ignored.

    A single class (one machine ID) trains on the self-supervised ``pseudo_shifts``
    classes alone; with ``pseudo_shifts=()`` there is nothing to classify and ``fit``
    raises. Other classes help more: other machine IDs or sections, attributes, or
    clips of other machines ("outlier exposure"); else use an autoencoder (``CNNAE``,
    ``DenseAE``) or an inlier model on clip statistics.

    Parameters
    ----------
    embed_dim : int, default=128
        Size of the embedding.
    loss : {"subcluster_adacos", "adacos", "arcface", "softmax"}, default="subcluster_adacos"
        Classification head: sub-cluster AdaCos (16 learned centres per class, adaptive
        scale; Wilkinghoff 2021), AdaCos (one centre per class), ArcFace (scale 30,
        angular margin 0.5), or a plain linear softmax classifier.
    mixup : float, default=0.0
        Mixup ``Beta(mixup, mixup)`` parameter for mixing pairs of training crops and
        their targets; 0 turns mixup off.
    channels : tuple of int, default=(16, 32, 64, 128)
        Channels of the residual stages (their number sets the depth).
    patch_frames : int, default=16
        Frames per crop/patch (about 0.5 s at the default log-mel hop; short patches keep
        short events apart: 16 frames beat 32 and 64 on the generated and MIMII fan sets,
        see ``benchmarks/README.md``).
    patch_hop : int, default=4
        Frames between the starts of the patches pooled by ``transform``.
    normalize : bool, default=True
        L2-normalise each clip's embedding (for cosine-like distances); with
        ``pooling="mean_std"`` each half first, so both weigh alike.
    pooling : {"mean_std", "mean"}, default="mean_std"
        How ``transform`` pools the patch embeddings of a clip: ``"mean_std"`` their mean
        and standard deviation, ``(n_clips, 2 * embed_dim)``; ``"mean"`` their mean,
        ``(n_clips, embed_dim)``. A clip of a single patch has a zero standard deviation.
    pseudo_shifts : tuple of int, default=(-1, 1)
        Self-supervised extra classes: for each shift ``k`` (in mel bins), every class
        gets a copy whose crops are the mel bands moved by ``k`` bins (about a pitch
        shift), to be told apart from the original. The network then has to resolve
        where the harmonics and resonances lie, not only which machine it hears (telling
        machines apart is often too easy to learn anything subtle), and a single machine
        ID becomes trainable. The network sees ``n_mels - 2 max|k|`` bands (the centre
        band; shifted copies read the neighbouring bands, so no padding gives the copies
        away). ``()`` turns this off.
    backbone : {"aisfx"} or None, default=None
        None: the CNN above, trained from scratch on log-mel input. ``"aisfx"``: fine-tune a
        pretrained encoder instead, the sound-effects CNN of A. B. Ma and A. Lerch,
        "Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR
        2022 (weights CC BY 4.0; skasd's implementation, as in
        :class:`~skasd.PretrainedEmbedding`): its four conv blocks give a 512-d vector per block
        of 100 frames (2.3 s), followed by the embedding layer (linear to ``embed_dim``, batch
        normalisation) and the ``loss`` head, trained as above. It computes its own input from
        the clips (44.1 kHz, peak-normalised, 96 HTK mel bands, not standardised): ``fit`` and
        ``transform`` then take a list of paths or waveforms at ``sr`` Hz, and refuse log-mel
        input. The patches are its blocks of 100 frames, hopped by 50 (``patch_frames``,
        ``patch_hop`` and ``channels`` are not used); ``pseudo_shifts`` shift its 96 bands.
    backbone_weights : str, path-like or None, default=None
        The backbone's pretrained weights, found as ``PretrainedEmbedding(weights=...)`` finds
        them: the published ``checkpoint.pth`` or the safetensors file that ``skasd weights
        fetch aisfx`` writes; None reads the user's skasd cache. Read by ``fit`` only: a model
        file stores the trained network (the fine-tuned backbone included) and the digest of the
        weights it started from, not the weights file.
    trainable_blocks : int in [0, 4], default=0
        How many of the backbone's last conv blocks train with the embedding layer and the head:
        0 keeps the backbone frozen; ``n`` trains blocks ``5 - n`` to 4. Frozen blocks keep their
        weights and, in eval mode, their batch-normalisation statistics. Only with a backbone.
    sr : int, default=16000
        With a backbone: sample rate of waveforms given in memory (resampled to 44.1 kHz);
        files are decoded at 44.1 kHz directly. Unused without a backbone.
    max_epochs : int, default=30
        Training epochs (fewer with ``early_stopping``).
    batch_size : int, default=32
        Crops per training batch; also the patch budget of a ``transform`` chunk, except that
        the CPU embeds clips of several patches one at a time, so that a clip's embedding does
        not depend on the clips embedded with it.
    lr : float, default=1e-3
        Learning rate of the optimiser.
    {optimizer}
    {training}
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the validation split, the crops, mixup and the batch order,
        without touching torch's global random state.
    {verbose}

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net: ``net_.module_.encoder`` maps patches to embeddings,
        ``net_.history`` holds the per-epoch ``train_loss`` (and ``valid_loss`` with a
        validation split).
    classes_ : ndarray
        The class labels trained on.
    loc_, scale_ : float
        Scalar input standardisation fitted on the training clips.
    band_profile_ : ndarray of shape (2, n_mels)
        Mean and standard deviation over the training clips' frames of each mel band (dB),
        the normal level :func:`skasd.inspection.explain` compares a clip's bands with.
    n_features_in_ : int
        Number of mel bands seen in fit (96 with a backbone).
    backbone_sha256_ : str or None
        Digest of the pretrained weights the backbone started from (as
        ``PretrainedEmbedding.weights_sha256_``); None without a backbone.

    See Also
    --------
    CNNAE : Autoencoder detector for a single machine without auxiliary labels.
    PretrainedEmbedding : The pretrained encoders, frozen and untrained, one row per clip.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import ClassifierEmbedding
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 32, 40)).astype("float32")
    >>> X[4:] += np.linspace(-3, 3, 32)[:, None]  # a second machine, another spectrum
    >>> ids = ["id_00"] * 4 + ["id_02"] * 4
    >>> emb = ClassifierEmbedding(embed_dim=16, patch_frames=16, max_epochs=2, random_state=0)
    >>> emb.fit(X, ids).transform(X).shape  # mean and standard deviation of the patches
    (8, 32)

    Fine-tuning the pretrained aisfx CNN on clips (its weights from ``skasd weights fetch
    aisfx``; its last conv block trains, the others stay frozen):

    >>> finetuned = ClassifierEmbedding(backbone="aisfx", trainable_blocks=1)  # doctest: +SKIP
    >>> finetuned.fit(paths, section_attribute_domain).transform(paths)  # doctest: +SKIP
    """

    _parameter_constraints = {
        "embed_dim": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions(set(_HEADS))],
        "mixup": [Interval(Real, 0, None, closed="left")],
        "channels": [tuple],
        "patch_frames": [Interval(Integral, 1, None, closed="left")],
        "patch_hop": [Interval(Integral, 1, None, closed="left")],
        "normalize": ["boolean"],
        "pooling": [StrOptions({"mean_std", "mean"})],
        "pseudo_shifts": [tuple],
        "backbone": [StrOptions({"aisfx"}), None],
        "backbone_weights": [str, os.PathLike, None],
        "trainable_blocks": [Interval(Integral, 0, len(AISFX.channels), closed="both")],
        "sr": [Interval(Integral, 1, None, closed="left")],
        **BaseTorchEstimator._parameter_constraints,
    }
    _fitted_attributes = (*BaseTorchEstimator._fitted_attributes, "classes_", "band_profile_", "backbone_sha256_")

    def __init__(
        self,
        embed_dim=128,
        loss="subcluster_adacos",
        mixup=0.0,
        channels=(16, 32, 64, 128),
        patch_frames=16,
        patch_hop=4,
        normalize=True,
        pooling="mean_std",
        pseudo_shifts=(-1, 1),
        *,
        backbone=None,
        backbone_weights=None,
        trainable_blocks=0,
        sr=16000,
        max_epochs=30,
        batch_size=32,
        lr=1e-3,
        optimizer=torch.optim.Adam,
        validation_fraction=0.0,
        early_stopping=None,
        callbacks=None,
        stream_buffer=256,
        checkpoint=None,
        checkpoint_every=1,
        accelerator=None,
        device="auto",
        random_state=None,
        verbose=0,
    ):
        self.embed_dim = embed_dim
        self.loss = loss
        self.mixup = mixup
        self.channels = channels
        self.patch_frames = patch_frames
        self.patch_hop = patch_hop
        self.normalize = normalize
        self.pooling = pooling
        self.pseudo_shifts = pseudo_shifts
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.trainable_blocks = trainable_blocks
        self.sr = sr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.callbacks = callbacks
        self.stream_buffer = stream_buffer
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.accelerator = accelerator
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _patch(self):
        """``(frames, hop)`` of the patches: the backbone's blocks, else ``patch_frames`` and ``patch_hop``."""
        if self.backbone is not None:
            return AISFX.block, AISFX.block_hop
        return self.patch_frames, self.patch_hop

    def _backbone_input(self, X):
        """The backbone's own input of the clips ``X``: aisfx log-mel, float32 ``(n_clips, 96, n_frames)``."""
        name = type(self).__name__
        if isinstance(X, FeatureStore) or getattr(X, "ndim", None) == 3:
            raise ValueError(
                f"{name}(backbone={self.backbone!r}) computes the backbone's own input (44.1 kHz, peak-normalised "
                "96-band log-mel) from the clips: give a list of paths or waveforms (n_clips, n_samples) at sr Hz, "
                "not log-mel spectrograms or a FeatureStore. For log-mel input (e.g. from LogMelTransformer), "
                "use backbone=None."
            )
        _, clips = _check_clips(X, finite=False)  # waveforms are checked for NaN/inf by load_waveforms
        parts = []
        for start in range(0, len(clips), _CHUNK):
            W = load_waveforms(clips[start : start + _CHUNK], AISFX.sample_rate, AISFX.min_samples, sr=self.sr,
                               stacklevel=6)
            parts.append(aisfx_logmel(W).transpose(0, 2, 1))
        if len({p.shape[2] for p in parts}) > 1:
            raise ValueError(
                f"{name}(backbone={self.backbone!r}) needs clips of one length; got clips of "
                f"{sorted({p.shape[2] for p in parts})} frames. Crop or pad them to one duration."
            )
        return np.ascontiguousarray(np.concatenate(parts))

    def _validate_input(self, X, reset):
        name = type(self).__name__
        if reset and self.backbone is None and self.trainable_blocks:
            raise ValueError(
                f"{name}: trainable_blocks={self.trainable_blocks} is for a pretrained backbone "
                "(backbone='aisfx'); without one the whole network trains."
            )
        if self.backbone is not None:
            X = self._backbone_input(X)
        if reset and (not self.channels or not all(isinstance(c, Integral) and c > 0 for c in self.channels)):
            raise ValueError(f"{name}: channels must be a non-empty tuple of positive ints; got {self.channels!r}.")
        shifts = self.pseudo_shifts
        if reset and (not all(isinstance(k, Integral) and k != 0 for k in shifts) or len(set(shifts)) != len(shifts)):
            raise ValueError(f"{name}: pseudo_shifts must be distinct non-zero ints (mel bins); got {shifts!r}.")
        if isinstance(X, FeatureStore):
            validate_data(self, X, reset=reset, skip_check_array=True)
        else:
            X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(
                f"{name} expects a 3-D array (n_clips, n_mels, n_frames) of log-mel spectrograms, e.g. "
                f"from LogMelTransformer; got {X.ndim}-D input of shape {X.shape}."
            )
        if X.shape[2] < self._patch()[0]:
            raise ValueError(
                f"{name} needs clips of at least patch_frames={self._patch()[0]} frames; got "
                f"n_frames={X.shape[2]} (input shape {X.shape}). Lower patch_frames."
            )
        if reset and X.shape[1] <= 2 * self._margin():
            raise ValueError(
                f"{name}: pseudo_shifts={shifts!r} leave no mel band of the {X.shape[1]} given; use smaller shifts."
            )
        if isinstance(X, np.ndarray) and not X.flags.writeable:  # torch.from_numpy cannot share it
            X = X.copy()
        return X

    def _margin(self):
        """Mel bins left out at each edge so that every pseudo-shifted band exists."""
        return max((abs(k) for k in self.pseudo_shifts), default=0)

    def _bands(self, n_mels):
        """``(1 + len(pseudo_shifts), n_bins)`` mel-bin indices: the centre band, then its shifts."""
        margin = self._margin()
        centre = np.arange(margin, n_mels - margin)
        return np.stack([centre] + [centre + k for k in self.pseudo_shifts])

    def _training_labels(self, X, y, machine_id):
        """``(X, labels)`` to train on: ``machine_id`` (minus anomalies by ``y``) or ``y``."""
        name = type(self).__name__
        if machine_id is not None:
            labels = np.asarray(machine_id)
            if labels.ndim != 1 or len(labels) != len(X):
                raise ValueError(
                    f"{name}: machine_id must hold one label per clip ({len(X)}); got shape {labels.shape}."
                )
            mask = None if y is None else normal_mask(y, len(X), name)
            if mask is None:
                return X, labels
            return (X.subset(mask) if isinstance(X, FeatureStore) else X[mask]), labels[mask]
        if y is None:
            raise ValueError(
                f"{name} is trained to classify auxiliary labels: call fit(X, y) with a label per clip "
                "(machine ID, section, attribute), or route machine_id=... as metadata in a Pipeline."
            )
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(X):
            raise ValueError(f"{name}: y must hold one label per clip ({len(X)}); got shape {labels.shape}.")
        return X, labels

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None, machine_id=None):
        """Train the classifier on the auxiliary labels.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames), or FeatureStore
            Log-mel spectrograms (e.g. from ``LogMelTransformer``); a
            :class:`~skasd.FeatureStore` is streamed from disk, ``stream_buffer`` clips at a time.
            With a ``backbone``: the clips, as a list of paths, a list of 1-D waveforms or an
            array ``(n_clips, n_samples)`` at ``sr`` Hz, all of one length.
        y : array-like of shape (n_clips,), default=None
            Class labels to learn (machine IDs, sections, attributes) when
            ``machine_id`` is None. With ``machine_id`` given: anomaly labels (1 /
            ``"anomaly"`` clips are left out; a non-binary ``y`` is ignored).
        machine_id : array-like of shape (n_clips,), default=None
            Class labels passed as metadata (see the class docstring).

        Returns
        -------
        self : object
            The fitted transformer.
        """
        return self._fit_or_clean(self._fit, X, y, machine_id)

    def _fit(self, X, y, machine_id):
        name = type(self).__name__
        # the weights the backbone starts from, checked before any clip is decoded (cached per
        # process: the module reads them again)
        digest = None if self.backbone is None else load_encoder(self.backbone, self.backbone_weights).digest
        X = self._validate_input(X, reset=True)
        X, labels = self._training_labels(X, y, machine_id)
        encoder = LabelEncoder()
        codes = encoder.fit_transform(labels)
        if len(encoder.classes_) < 2 and not self.pseudo_shifts:
            raise ValueError(
                f"{name}: nothing to classify: all {len(X)} training clips carry one class, "
                f"{encoder.classes_[0].tolist()!r}. The embedding is learnt by telling classes apart; give it "
                "at least two (other machine IDs or sections, attributes, or clips of other machines as "
                "extra classes), set pseudo_shifts (self-supervised classes), or use an autoencoder "
                "(CNNAE, DenseAE) for a single machine."
            )
        n_classes, n_mels = len(encoder.classes_), X.shape[1]
        width = self._patch()[0]

        def make_dataset(loc, scale, device):
            codes_t = torch.from_numpy(codes).to(device)
            bands = torch.from_numpy(self._bands(n_mels)).to(device)
            if isinstance(X, FeatureStore):
                return _CropStream(X, codes_t, n_classes, width, loc, scale, self.mixup, bands,
                                   self.stream_buffer, device)
            return _CropDataset(torch.from_numpy(X).to(device), codes_t, n_classes, width, loc, scale,
                                self.mixup, bands)

        labels_digest = hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
        labels_digest.update(repr(encoder.classes_.tolist()).encode())
        net, loc, scale = self._train(
            X, make_dataset,
            partial(self._make_net, n_mels=n_mels - 2 * self._margin(),
                    n_classes=n_classes * (1 + len(self.pseudo_shifts)), pretrained=True),
            # a pretrained backbone reads its own input scale, unstandardised
            items_per_clip=max(1, X.shape[2] // width), item="crop", standardize=self.backbone is None,
            run={"labels_sha256": labels_digest.hexdigest(), "backbone_sha256": digest},
        )
        # fitted attributes only once training succeeded
        self.net_, self.loc_, self.scale_, self.classes_ = net, loc, scale, encoder.classes_
        self.backbone_sha256_ = digest
        self.band_profile_ = band_profile(X, self.stream_buffer)
        self._n_features_out = self.embed_dim * (2 if self.pooling == "mean_std" else 1)
        return self

    def _make_net(self, device, n_mels=None, n_classes=None, pretrained=False, **kwargs):
        """The (uninitialised) skorch net for ``n_mels`` mel bins and ``n_classes`` targets.

        Without them, for the fitted ``n_features_in_`` and ``classes_``: a model file is
        rebuilt by calling this on the fitted estimator, then ``initialize()`` and loading the
        saved weights. ``pretrained``: a backbone starts from ``backbone_weights`` (fit), else
        from random weights that the saved ones replace (a model file needs no weights file).
        ``kwargs`` override or add skorch arguments.
        """
        if n_mels is None:
            n_mels = self.n_features_in_ - 2 * self._margin()
        if n_classes is None:
            n_classes = len(self.classes_) * (1 + len(self.pseudo_shifts))
        module_params = dict(
            n_mels=n_mels, n_classes=n_classes, channels=tuple(self.channels), embed_dim=self.embed_dim,
            loss=self.loss,
        )
        if self.backbone is not None:
            module_params.update(backbone=self.backbone, trainable_blocks=self.trainable_blocks, pretrained=pretrained,
                                 weights=self.backbone_weights)
        return self._build_net(
            _ClassifierNet, _ClassifierModule, module_params, device, criterion=torch.nn.CrossEntropyLoss, **kwargs
        )

    # -------------------------------------------------------------- transform
    def transform(self, X):
        """One embedding per clip: its patches' embeddings pooled by ``pooling``.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames), or FeatureStore
            Log-mel spectrograms, as in fit; a FeatureStore is read chunk by chunk. With a
            ``backbone``: clips, as in fit.

        Returns
        -------
        Z : ndarray of shape (n_clips, embed_dim) or (n_clips, 2 * embed_dim)
            Clip embeddings: the patches' mean (then, with ``pooling="mean_std"``, their
            standard deviation); unit L2 norm with ``normalize=True``.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        # stream_buffer clips at a time: their patch embeddings are pooled before the next
        return np.concatenate([self._pool(self._patch_embeddings(part)) for part in clip_chunks(X, self.stream_buffer)])

    def _patch_embeddings(self, X):
        """Embedding of each patch of each (validated) clip: ``(n_clips, n_patches, embed_dim)``."""
        encoder, margin, (width, hop) = self.net_.module_.encoder, self._margin(), self._patch()
        n_bins, n_patches = X.shape[1] - 2 * margin, (X.shape[2] - width) // hop + 1

        def embed(xb):
            xb = (xb[:, margin : xb.shape[1] - margin] - self.loc_) / self.scale_
            patches = xb.unfold(2, width, hop)  # (b, mels, n_patches, frames)
            patches = patches.permute(0, 2, 1, 3).reshape(-1, n_bins, width)
            return encoder(patches).reshape(len(xb), n_patches, -1)

        return self._map_clips(X, n_patches, embed)

    def _pool(self, Z):
        """Pool patch embeddings ``(..., n_patches, embed_dim)`` into one embedding by ``pooling``."""
        parts = [Z.mean(-2)] + ([Z.std(-2)] if self.pooling == "mean_std" else [])
        if self.normalize:
            parts = [_unit(part) for part in parts]
        Z = np.concatenate(parts, -1)
        return _unit(Z) if self.normalize else Z

    def occlusion_transform(self, X, window=None):
        """Each clip's embedding with one window of its patches left out, for every window.

        ``transform`` pools all of a clip's patches; here, for each run of consecutive
        patches spanning about ``window`` frames, the clip's other patches are pooled the
        same way. An inlier model fitted on ``transform``'s embeddings then says how much
        each window adds to the clip's anomaly score (its score with minus without the
        window): :func:`skasd.inspection.frame_scores` maps that to frames.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames), or FeatureStore
            Log-mel clips, as in ``fit``.
        window : int, default=None
            Frames per window, at least ``patch_frames``; None: two patches
            (``patch_frames + patch_hop``).

        Returns
        -------
        Z : ndarray of shape (n_clips, n_windows, n_features_out)
            The clip's embedding without each window.
        Z_clip : ndarray of shape (n_clips, n_features_out)
            The clip's embedding with all its patches (``transform(X)``, from the same
            patch embeddings).
        starts : ndarray of shape (n_windows,)
            First frame of each window.
        width : int
            Frames per window (``patch_frames`` plus a whole number of ``patch_hop``).
        """
        check_is_fitted(self)
        name = type(self).__name__
        frames, hop = self._patch()
        window = frames + hop if window is None else window
        if not isinstance(window, Integral) or isinstance(window, bool) or window < frames:
            raise ValueError(
                f"{name}.occlusion_transform: window must be an int of at least patch_frames={frames} "
                f"frames; got {window!r}."
            )
        X = self._validate_input(X, reset=False)
        Z = self._patch_embeddings(X)
        n_patches = Z.shape[1]
        per_window = (window - frames) // hop + 1
        if per_window >= n_patches:
            raise ValueError(
                f"{name}: a window of {window} frames covers all {n_patches} patches of the clips "
                f"({X.shape[2]} frames); leaving it out leaves nothing. Use a smaller window or longer clips."
            )
        zeros = np.zeros((len(Z), 1, Z.shape[2]))
        cum, cum_sq = np.concatenate([zeros, np.cumsum(Z, 1)], 1), np.concatenate([zeros, np.cumsum(Z**2, 1)], 1)
        starts = np.arange(n_patches - per_window + 1)
        rest = n_patches - per_window
        mean = (cum[:, -1:] - cum[:, starts + per_window] + cum[:, starts]) / rest
        mean_sq = (cum_sq[:, -1:] - cum_sq[:, starts + per_window] + cum_sq[:, starts]) / rest
        parts = [mean] + ([np.sqrt(np.maximum(mean_sq - mean**2, 0.0))] if self.pooling == "mean_std" else [])
        if self.normalize:
            parts = [_unit(part) for part in parts]
        out = np.concatenate(parts, -1)
        return (_unit(out) if self.normalize else out), self._pool(Z), starts * hop, (
            frames + (per_window - 1) * hop)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags
