"""ClassifierEmbedding: a small CNN trained to classify auxiliary labels; its embedding per clip.

The state-of-the-art family of DCASE 2020-2024 (STgram-MFN, the DCASE 2023 baseline's
successors): a network learns to tell machine IDs / sections / attributes apart, and a
simple inlier model (k-NN, Mahalanobis, GMM) scores each clip by its distance to the
training clips in that embedding. This module is the embedding half; any skasd detector
that accepts 2-D input is the other.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, clone
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import ProgressBar

from ._base import _mean_std, _RaiseOnNonFiniteLoss, resolve_device, skorch_params, torch_seed
from ._outlier import normal_mask

__all__ = ["ClassifierEmbedding"]

# ArcFace scale and additive angular margin (Deng et al. 2019 use s=64, m=0.5 for faces;
# s=30 is the usual choice for the few classes of DCASE).
_ARC_SCALE, _ARC_MARGIN = 30.0, 0.5
# Sub-clusters per class of the sub-cluster AdaCos head (Wilkinghoff, ICASSP 2021).
_N_SUBCLUSTERS = 16
# AdaCos's scale is kept in this range: its update can run away (to overflow, or to 0
# where the non-target centres are as close as the target one) on tiny, easy problems.
_ADACOS_SCALE_RANGE = (1.0, 64.0)


# ------------------------------------------------------------------------- network
class _ResBlock(torch.nn.Module):
    """Two 3x3 conv + batch-norm layers with a (1x1 strided, where needed) shortcut."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        conv = torch.nn.Conv2d
        self.body = torch.nn.Sequential(
            conv(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            torch.nn.BatchNorm2d(c_out),
            torch.nn.ReLU(),
            conv(c_out, c_out, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            torch.nn.Identity()
            if stride == 1 and c_in == c_out
            else torch.nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), torch.nn.BatchNorm2d(c_out))
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class _Encoder(torch.nn.Module):
    """ResNet-like encoder of a ``(n_mels, patch_frames)`` log-mel patch to ``embed_dim``.

    A 3x3 stride-2 stem conv, one residual block per entry of ``channels`` (stride 2 from
    the second on), mean and standard deviation over time (statistics pooling: steady
    spectra and transients), then a linear layer over (2 x channels x remaining mel
    bins) -- a learned weighting of frequency, like MobileFaceNet's global depthwise conv
    -- and batch normalisation: the embedding.
    """

    def __init__(self, n_mels, channels, embed_dim):
        super().__init__()
        c0 = channels[0]
        self.stem = torch.nn.Sequential(
            torch.nn.Conv2d(1, c0, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(c0), torch.nn.ReLU()
        )
        blocks, c_in, height = [], c0, (n_mels + 1) // 2
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            blocks.append(_ResBlock(c_in, c, stride))
            c_in, height = c, (height - 1) // stride + 1
        self.blocks = torch.nn.Sequential(*blocks)
        self.project = torch.nn.Linear(2 * c_in * height, embed_dim, bias=False)
        self.norm = torch.nn.BatchNorm1d(embed_dim)

    def forward(self, x):  # x: (batch, n_mels, frames)
        h = self.blocks(self.stem(x.unsqueeze(1)))  # (batch, c, mel', frames')
        return self.norm(self.project(torch.cat([h.mean(3), h.std(3, correction=0)], 1).flatten(1)))


class _SoftmaxHead(torch.nn.Module):
    """Plain linear classifier: logits ``W z + b``."""

    def __init__(self, embed_dim, n_classes):
        super().__init__()
        self.linear = torch.nn.Linear(embed_dim, n_classes)

    def forward(self, z, target):
        return self.linear(z)


class _CosineHead(torch.nn.Module):
    """Cosine similarities between the normalised embedding and ``n_centres`` learned centres."""

    def __init__(self, embed_dim, n_centres):
        super().__init__()
        self.centres = torch.nn.Parameter(torch.empty(n_centres, embed_dim))
        torch.nn.init.xavier_uniform_(self.centres)

    def cosines(self, z):
        return torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(self.centres, dim=1).T


class _ArcFaceHead(_CosineHead):
    """ArcFace (Deng et al., CVPR 2019): ``s * cos(theta + m)`` for the target class.

    With mixup the target is soft: each class's logit is the target weight's mix of
    ``cos(theta + m)`` and ``cos(theta)``, which is ArcFace for a one-hot target.
    """

    def __init__(self, embed_dim, n_classes):
        super().__init__(embed_dim, n_classes)

    def forward(self, z, target):
        cos = self.cosines(z)
        if target is None:
            return _ARC_SCALE * cos
        theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
        # beyond pi - m, cos(theta + m) would increase again: the reference implementation
        # then uses cos(theta) - m sin(m)
        with_margin = torch.where(
            theta + _ARC_MARGIN < math.pi, torch.cos(theta + _ARC_MARGIN), cos - _ARC_MARGIN * math.sin(_ARC_MARGIN)
        )
        return _ARC_SCALE * (target * with_margin + (1 - target) * cos)


class _AdaCosHead(_CosineHead):
    """(Sub-cluster) AdaCos: cosine logits with a scale adapted to the batch, no margin.

    AdaCos (Zhang et al., CVPR 2019) starts at ``s = sqrt(2) log(C - 1)`` and, on every
    training batch, sets ``s = log(B_avg) / cos(min(pi/4, theta_med))`` where ``B_avg`` is
    the mean over the batch of ``sum over non-target centres of exp(s cos)`` and
    ``theta_med`` the median angle to the target class. Sub-cluster AdaCos (Wilkinghoff,
    ICASSP 2021) gives each class ``n_sub`` centres; a class's logit is the log-sum-exp of
    its centres' scaled cosines. ``s`` is a buffer, so it is saved with the weights; it is
    kept within ``_ADACOS_SCALE_RANGE``.
    """

    def __init__(self, embed_dim, n_classes, n_sub=1):
        super().__init__(embed_dim, n_classes * n_sub)
        self.n_classes, self.n_sub = n_classes, n_sub
        self.register_buffer("scale", torch.tensor(math.sqrt(2) * math.log(max(n_classes * n_sub - 1, 2))))

    def forward(self, z, target):
        cos = self.cosines(z).view(len(z), self.n_classes, self.n_sub)
        if self.training and target is not None:
            with torch.no_grad():
                s = self.scale
                weight = target[:, :, None]  # soft target weight of each centre's class
                # log B_avg in log space: exp(s cos) overflows float32 for large s
                per_clip = torch.logsumexp((torch.log1p(-weight.clamp_max(1 - 1e-6)) + s * cos).flatten(1), 1)
                log_b_avg = torch.logsumexp(per_clip, 0) - math.log(len(z))
                target_cos = (weight * cos.max(2, keepdim=True).values).sum((1, 2)) / weight.sum((1, 2))
                theta_med = torch.acos(target_cos.clamp(-1 + 1e-6, 1 - 1e-6)).median()
                scale = log_b_avg / torch.cos(theta_med.clamp_max(math.pi / 4))
                self.scale.copy_(scale.clamp(_ADACOS_SCALE_RANGE[0], _ADACOS_SCALE_RANGE[1]))
        return torch.logsumexp(self.scale * cos, dim=2)


_HEADS = {
    "softmax": lambda d, c: _SoftmaxHead(d, c),
    "arcface": lambda d, c: _ArcFaceHead(d, c),
    "adacos": lambda d, c: _AdaCosHead(d, c, 1),
    "subcluster_adacos": lambda d, c: _AdaCosHead(d, c, _N_SUBCLUSTERS),
}


class _ClassifierModule(torch.nn.Module):
    """Encoder + classification head; ``forward(x, target)`` returns class logits."""

    def __init__(self, n_mels, n_classes, channels, embed_dim, loss):
        super().__init__()
        self.encoder = _Encoder(n_mels, channels, embed_dim)
        self.head = _HEADS[loss](embed_dim, n_classes)
        self.embed_dim = embed_dim

    def forward(self, x, target=None):
        return self.head(self.encoder(x), target)


class _CropDataset(torch.utils.data.Dataset):
    """Random crops of ``width`` frames with their one-hot (mixup: mixed) class targets.

    An epoch has ``n_crops`` items per clip (as many as non-overlapping crops fit in a
    clip), so that it sees about every frame once. ``__getitems__`` gathers a whole
    batch: random clip offsets, standardisation ``(x - loc) / scale``, the band of
    ``len(bands[0])`` mel bins selected by a random pseudo class (``bands[0]`` is the
    clip's own class, ``bands[j]`` its mel-shifted copy number ``j``: target ``code *
    len(bands) + j``), and with ``mixup > 0`` each crop mixed with another crop of the
    batch by a ``Beta(mixup, mixup)`` weight, targets mixed alike. Randomness comes from
    torch's generator, which ``fit`` seeds.
    """

    def __init__(self, X, codes, n_classes, width, loc, scale, mixup, bands):
        self.X, self.codes, self.width, self.loc, self.scale, self.mixup = X, codes, width, loc, scale, mixup
        self.bands = bands  # (n_pseudo, n_bins) mel-bin indices
        self.n_targets = n_classes * len(bands)
        self.n_crops = max(1, X.shape[2] // width)

    def __len__(self):
        return len(self.X) * self.n_crops

    def __getitems__(self, indices):
        device = self.X.device
        clip = torch.as_tensor(indices, device=device) // self.n_crops
        start = torch.randint(0, self.X.shape[2] - self.width + 1, (len(clip),), device=device)
        pseudo = torch.randint(0, len(self.bands), (len(clip),), device=device)
        frames = start[:, None] + torch.arange(self.width, device=device)  # (b, width)
        bins = self.bands[pseudo]  # (b, n_bins)
        x = self.X[clip[:, None, None], bins[:, :, None], frames[:, None, :]]  # (b, n_bins, width)
        x = (x - self.loc) / self.scale
        codes = self.codes[clip] * len(self.bands) + pseudo
        target = torch.nn.functional.one_hot(codes, self.n_targets).float()
        if self.mixup > 0 and len(clip) > 1:
            lam = torch.distributions.Beta(self.mixup, self.mixup).sample((len(clip),)).to(device)
            perm = torch.randperm(len(clip), device=device)
            x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[perm]
            target = lam[:, None] * target + (1 - lam[:, None]) * target[perm]
        return {"x": x, "target": target}, target


class _ClassifierNet(NeuralNet):
    """skorch net: cross-entropy of the logits against (possibly soft) targets."""

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return torch.nn.functional.cross_entropy(y_pred, y_true)


# ----------------------------------------------------------------------- estimator
class ClassifierEmbedding(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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
    max_epochs : int, default=30
        Training epochs.
    batch_size : int, default=32
        Crops per training batch; also the patch budget of a ``transform`` chunk.
    lr : float, default=1e-3
        Learning rate of the optimiser.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Called with the module parameters and ``lr``.
    callbacks : list of skorch callbacks or None, default=None
        Extra skorch callbacks (``LRScheduler``, ...), cloned at fit.
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the crops, mixup and the batch order, without touching
        torch's global random state.
    verbose : int, default=0
        0 silent, 1 one line per epoch (skorch's table), 2 also a progress bar.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net: ``net_.module_.encoder`` maps patches to embeddings,
        ``net_.history`` holds the per-epoch ``train_loss``.
    classes_ : ndarray
        The class labels trained on.
    loc_, scale_ : float
        Scalar input standardisation fitted on the training clips.
    n_features_in_ : int
        Number of mel bands seen in fit.

    See Also
    --------
    CNNAE : Autoencoder detector for a single machine without auxiliary labels.

    Examples
    --------
    >>> import numpy as np
    >>> from skasd.models._embedding import ClassifierEmbedding
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 32, 40)).astype("float32")
    >>> X[4:] += np.linspace(-3, 3, 32)[:, None]  # a second machine, another spectrum
    >>> ids = ["id_00"] * 4 + ["id_02"] * 4
    >>> emb = ClassifierEmbedding(embed_dim=16, patch_frames=16, max_epochs=2, random_state=0)
    >>> emb.fit(X, ids).transform(X).shape  # mean and standard deviation of the patches
    (8, 32)
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
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [callable],
        "callbacks": [list, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

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
        max_epochs=30,
        batch_size=32,
        lr=1e-3,
        optimizer=torch.optim.Adam,
        callbacks=None,
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
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.callbacks = callbacks
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _validate_input(self, X, reset):
        name = type(self).__name__
        if reset and (not self.channels or not all(isinstance(c, Integral) and c > 0 for c in self.channels)):
            raise ValueError(f"{name}: channels must be a non-empty tuple of positive ints; got {self.channels!r}.")
        shifts = self.pseudo_shifts
        if reset and (not all(isinstance(k, Integral) and k != 0 for k in shifts) or len(set(shifts)) != len(shifts)):
            raise ValueError(f"{name}: pseudo_shifts must be distinct non-zero ints (mel bins); got {shifts!r}.")
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(
                f"{name} expects a 3-D array (n_clips, n_mels, n_frames) of log-mel spectrograms, e.g. "
                f"from LogMelTransformer; got {X.ndim}-D input of shape {X.shape}."
            )
        if X.shape[2] < self.patch_frames:
            raise ValueError(
                f"{name} needs clips of at least patch_frames={self.patch_frames} frames; got "
                f"n_frames={X.shape[2]} (input shape {X.shape}). Lower patch_frames."
            )
        if reset and X.shape[1] <= 2 * self._margin():
            raise ValueError(
                f"{name}: pseudo_shifts={shifts!r} leave no mel band of the {X.shape[1]} given; use smaller shifts."
            )
        return X if X.flags.writeable else X.copy()

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
            return (X, labels) if mask is None else (X[mask], labels[mask])
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
        X : array-like of shape (n_clips, n_mels, n_frames)
            Log-mel spectrograms (e.g. from ``LogMelTransformer``).
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
        self._validate_params()
        name = type(self).__name__
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
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        loc, scale = _mean_std(X, np.arange(len(X)))
        Xt = torch.from_numpy(X).to(device)
        bands = torch.from_numpy(self._bands(X.shape[1])).to(device)
        dataset = _CropDataset(
            Xt, torch.from_numpy(codes).to(device), len(encoder.classes_), self.patch_frames, loc, scale, self.mixup,
            bands,
        )
        callbacks = [("nonfinite_loss", _RaiseOnNonFiniteLoss(name))]
        if self.verbose and self.verbose > 1:
            callbacks.append(("progress_bar", ProgressBar()))
        callbacks += [clone(cb, safe=False) for cb in self.callbacks or []]
        self.classes_ = encoder.classes_  # _make_net reads the class count
        with torch_seed(seed, device):
            net = self._make_net(
                device,
                callbacks=callbacks,
                # a last batch of a single crop would break batch normalisation
                iterator_train__drop_last=len(dataset) % self.batch_size == 1,
            )
            net.fit(dataset, None)
        self.net_, self.loc_, self.scale_ = net, loc, scale
        self._n_features_out = self.embed_dim * (2 if self.pooling == "mean_std" else 1)
        return self

    def _make_net(self, device, **kwargs):
        """The (uninitialised) skorch net for the fitted ``n_features_in_`` and ``classes_``.

        ``kwargs`` override or add skorch arguments. A model file is rebuilt by calling
        this on the fitted estimator, then ``initialize()`` and loading the saved weights.
        """
        params = skorch_params(
            self,
            device,
            module__n_mels=self.n_features_in_ - 2 * self._margin(),
            module__n_classes=len(self.classes_) * (1 + len(self.pseudo_shifts)),
            module__channels=tuple(self.channels),
            module__embed_dim=self.embed_dim,
            module__loss=self.loss,
            criterion=torch.nn.CrossEntropyLoss,
        )
        params.update(kwargs)
        return _ClassifierNet(_ClassifierModule, **params)

    # -------------------------------------------------------------- transform
    def transform(self, X):
        """One embedding per clip: its patches' embeddings pooled by ``pooling``.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames)
            Log-mel spectrograms, as in fit.

        Returns
        -------
        Z : ndarray of shape (n_clips, embed_dim) or (n_clips, 2 * embed_dim)
            Clip embeddings: the patches' mean (then, with ``pooling="mean_std"``, their
            standard deviation); unit L2 norm with ``normalize=True``.
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        encoder, device = self.net_.module_.encoder.eval(), self.net_.device
        margin = self._margin()
        X = X[:, margin : X.shape[1] - margin]
        n_patches = (X.shape[2] - self.patch_frames) // self.patch_hop + 1
        chunk = max(1, self.batch_size // n_patches)
        out = []
        with torch.no_grad():
            for start in range(0, len(X), chunk):
                xb = (torch.from_numpy(X[start : start + chunk]).to(device) - self.loc_) / self.scale_
                patches = xb.unfold(2, self.patch_frames, self.patch_hop)  # (b, mels, n_patches, frames)
                patches = patches.permute(0, 2, 1, 3).reshape(-1, X.shape[1], self.patch_frames)
                z = encoder(patches).reshape(len(xb), n_patches, -1).double()
                parts = [z.mean(1)] + ([z.std(1, correction=0)] if self.pooling == "mean_std" else [])
                if self.normalize:
                    parts = [torch.nn.functional.normalize(part, dim=1) for part in parts]
                out.append(torch.cat(parts, 1).cpu())
        Z = torch.cat(out)
        if self.normalize:
            Z = torch.nn.functional.normalize(Z, dim=1)
        return Z.numpy()

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        return tags
