"""Inlier models on clip embeddings: k-NN, Mahalanobis and Gaussian-mixture detectors.

Every top DCASE 2021-2024 system scores a clip by how far its embedding lies from the
embeddings of the normal training clips. These detectors do that on any 2-D embedding
(``ClassifierEmbedding``, an autoencoder's ``transform``, ``ClipStatsTransformer``) with the
outlier API of :class:`~skasd.models._outlier.BaseDetector`, and the DCASE 2022+ domain rule:
fitted with per-clip ``domain`` labels ("source"/"target"), a clip's anomaly score is the
minimum over the domains of its score against that domain's training clips only. Fitted with
per-clip ``section`` labels (machine IDs), they hold one model per (section, domain) and one
threshold per section, and score each clip by its own section's models.
"""

import warnings
from abc import abstractmethod
from numbers import Integral, Real

import numpy as np
import scipy.stats
from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf, ShrunkCovariance
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils._docstring import Substitution
from ..utils._sklearn_compat import Interval, StrOptions, fitted_rows, validate_data
from ..utils._validation import clip_labels, normal_mask
from ._base import _GAMMA_QUANTILE, CONTAMINATION_DOC, BaseDetector, SectionScoringMixin
from ._frames import DEFAULT_WINDOW, band_profile, check_frames, window_starts, windows_to_frames

__all__ = ["GMMDetector", "KNNDetector", "MahalanobisDetector"]

# partial_fit warns when more of the new clips than the contamination share score above the old
# threshold, and normal clips would do that with a probability under this
_CHANCE = 0.05

_INPUT_DOC = """\
**Input.** ``X`` is 2-D ``(n_clips, n_features)``: one embedding or feature vector per
clip. A 3-D log-mel array ``(n_clips, n_mels, n_frames)`` is accepted too and reduced
to the per-band mean and standard deviation over frames, ``(n_clips, 2 * n_mels)``
(means first), so ``make_pipeline(LogMelTransformer(), {name}())`` runs as is."""

_NORM_DOC = """\
domain_norm : {"zscore"} or None, default=None
    ``"zscore"``: standardise each (section, domain) model's anomaly scores by the mean
    and standard deviation of its own training clips' scores (leave-one-out for k-NN)
    before taking the minimum over domains. A dense source domain and a sparse target
    domain of 10 clips then score on one scale, instead of every target clip looking far
    away. On the real DCASE 2023 ToyCar section it lifts k-NN's AUC (target) from .41 to
    .59, at a cost in AUC (source) (``benchmarks/README.md``). With one domain it changes
    no ranking. None: raw scores."""

_GROUPS_DOC = """\
band_profile_ : ndarray of shape (2, n_mels) or (2, n_features)
    For 3-D log-mel input: mean and standard deviation over the training clips' frames of
    each mel band (dB), the normal level :func:`skasd.inspection.explain` compares a clip's
    bands with. For 2-D input: each column's mean and standard deviation over the training
    clips (for :class:`~skasd.SpectrumTransformer` rows, each frequency bin's normal level).
model_profiles_ : ndarray of shape (n_models, 2, n_mels) or (n_models, 2, n_features)
    ``band_profile_`` of each of ``models_``' training clips alone: the normal level of
    each (section, domain) group (:meth:`normal_profile`).
model_scales_ : ndarray of shape (n_models, 2)
    ``(location, scale)`` standardising each of ``models_`` (``(0, 1)`` without
    ``domain_norm``).
model_groups_ : list of tuple
    ``(section, domain)`` of each of ``models_``, None where fitted without that label.
domains_ : ndarray of object or None
    The domain labels seen in ``fit``; None when fitted without domains.
sections_ : ndarray of object or None
    The section labels seen in ``fit``; None when fitted without sections.
section_offsets_ : dict or None
    Section label -> threshold from that section's training scores alone (same
    ``contamination`` rule as ``offset_``); None when fitted without sections.
train_scores_ : ndarray of shape (n_training_clips,)
    ``score_samples`` of each normal training clip as the thresholds saw it (leave-one-out
    for k-NN), in the order of ``fit``'s clips, then of each ``partial_fit``'s: what
    :class:`~skasd.ScoreFusion` standardises the detector's scores with."""

_DOMAIN_DOC = """\
**Domains** (DCASE 2022+). ``fit(X, domain=d)`` with one label per clip (e.g.
``"source"``/``"target"``, the ``domain`` column of :func:`~skasd.datasets.load_dcase`)
fits one model per domain; a clip's anomaly score is the minimum over the domains of its
score against that domain's model, so a target-domain clip is judged by the few target
training clips instead of drowning among the source clips. Test clips need no domain
label. In a :class:`~sklearn.pipeline.Pipeline` with
``sklearn.set_config(enable_metadata_routing=True)``, request it with
``detector.set_fit_request(domain=True)`` and pass ``pipe.fit(X, domain=d)``.

**Sections** (machine IDs). ``fit(X, section=s)`` fits one model per section (and
domain) on a shared embedding, as the DCASE protocol does, and sets one threshold per
section (``section_offsets_``); ``offset_`` stays the threshold of all training clips,
each scored by its own section's models. ``score_samples``, ``anomaly_score``,
``decision_function`` and ``predict`` then take ``section=`` too: each clip is scored by
its own section's models and, in ``decision_function``/``predict``, compared with its
section's threshold; a label not seen in ``fit`` raises a ``ValueError``. Without
``section`` a clip is scored by all sections' models (its nearest section; for
``KNNDetector(1)`` the same as one k-NN on all clips) against ``offset_``. In a
Pipeline, request ``section`` with ``set_fit_request``, ``set_decision_function_request``
and ``set_predict_request``; ``Pipeline.score_samples`` routes no metadata (sklearn
1.9), so it gives the nearest-section scores."""


def _groups(labels, n):
    """``(label, row mask)`` per distinct label; ``[(None, all rows)]`` without labels."""
    if labels is None:
        return [(None, np.ones(n, dtype=bool))]
    names, codes = np.unique(labels, return_inverse=True)
    return [(name, codes == i) for i, name in enumerate(names.tolist())]


def _profile(X):
    """``band_profile`` of clips ``(n, bands, frames)`` or of rows ``(n, features)``."""
    return band_profile(X if X.ndim == 3 else X[:, :, None])


def _pool_profiles(profiles, weights):
    """One ``(2, n_bands)`` profile (mean, standard deviation) of groups with these profiles and
    shares (weights summing to 1) of the pooled frames."""
    profiles, weights = np.asarray(profiles), np.asarray(weights, dtype=np.float64)[:, None]
    mean = (weights * profiles[:, 0]).sum(axis=0)
    square = (weights * (profiles[:, 1] ** 2 + profiles[:, 0] ** 2)).sum(axis=0)
    return np.stack([mean, np.sqrt(np.maximum(square - mean**2, 0.0))])


def _reduce_3d(X):
    """Per-band mean and standard deviation over frames: (n, b, t) -> (n, 2b)."""
    return np.concatenate([X.mean(axis=2), X.std(axis=2)], axis=1)


class _InlierDetector(SectionScoringMixin, BaseDetector):
    """Shared fit/score logic: input checks, anomaly-label filtering, per-domain models.

    Subclasses implement ``_fit_domain(X)`` -> model, ``_anomaly(model, X)`` -> anomaly
    scores (higher = more anomalous) and may override ``_train_anomaly(model, X)`` (the
    training clips' own scores, e.g. leave-one-out).
    """

    _parameter_constraints = {**BaseDetector._parameter_constraints, "domain_norm": [StrOptions({"zscore"}), None]}

    @abstractmethod
    def _fit_domain(self, X):
        """Fit and return the model of one domain's training clips ``X``."""

    @abstractmethod
    def _anomaly(self, model, X):
        """Anomaly scores (higher = more anomalous) of ``X`` against ``model``."""

    def _train_anomaly(self, model, X):
        """Anomaly scores of the training clips ``X`` that fitted ``model``."""
        return self._anomaly(model, X)

    def _validate_input(self, X, reset, reduce=True):
        name = type(self).__name__
        X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X", estimator=name)
        if X.ndim > 3:
            raise ValueError(
                f"{name} expects a 2-D array (n_clips, n_features) of embeddings or a 3-D "
                f"log-mel array (n_clips, n_mels, n_frames); got {X.ndim}-D input of shape {X.shape}."
            )
        if not reset and X.ndim != self._input_ndim:
            raise ValueError(
                f"{name} was fitted on {self._input_ndim}-D input but got {X.ndim}-D input of shape {X.shape}."
            )
        X = validate_data(self, X, reset=reset, allow_nd=True, dtype=np.float64)
        if reset:
            self._input_ndim = X.ndim
        return _reduce_3d(X) if X.ndim == 3 and reduce else X

    def fit(self, X, y=None, domain=None, section=None):
        """Fit the model(s) on the normal clips and set the decision threshold(s).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features) or (n_clips, n_mels, n_frames)
            Embeddings (or features) of the training clips.
        y : array-like of shape (n_clips,), default=None
            Optional labels, 1 (or ``"anomaly"``) = anomaly, 0 (or ``"normal"``) = normal;
            clips labelled anomalous are left out. A non-binary ``y`` is ignored.
        domain : array-like of shape (n_clips,), default=None
            Domain of each training clip (e.g. ``"source"``/``"target"``): one model per
            domain, and scores are the minimum over domains. None: one model.
        section : array-like of shape (n_clips,), default=None
            Section (machine ID) of each training clip: one model per section (and domain),
            and one threshold per section in ``section_offsets_``. None: one section.

        Returns
        -------
        self : object
            The fitted detector.
        """
        self._validate_params()
        X = self._validate_input(X, reset=True, reduce=False)
        X, domain, section = self._normal_clips(X, y, domain, section)
        Xr = _reduce_3d(X) if X.ndim == 3 else X
        models, groups, scales, profiles, rows, owns = [], [], [], [], [], []
        self._train_group = np.empty(len(X), dtype=np.intp)  # the model of each training clip, in clip order
        for s, d, mask in self._label_groups(domain, section, len(X)):
            self._train_group[mask] = len(models)
            model, own, scale = self._fit_group(Xr[mask], s, d)
            models.append(model)
            groups.append((s, d))
            scales.append(scale)
            profiles.append(_profile(X[mask]))
            rows.append(Xr[mask])
            owns.append(own)
        self.models_, self.model_groups_, self.model_scales_ = models, groups, np.array(scales)
        self.model_profiles_ = np.stack(profiles)
        self.band_profile_ = _profile(X)
        if self._stores_rows:
            self.model_rows_ = rows
        self.domains_ = None if domain is None else np.unique(domain).astype(object)
        self.sections_ = None if section is None else np.unique(section).astype(object)
        if hasattr(models[0], "n_iter_"):
            self.n_iter_ = max(model.n_iter_ for model in models)
        # what shapes the groups' models, for partial_fit to refuse a change (contamination and
        # n_jobs may change: the threshold is recomputed from every clip, n_jobs changes no result)
        self._group_params = {k: v for k, v in self.get_params().items() if k not in ("contamination", "n_jobs")}
        self._set_train_scores(self._set_thresholds(owns))
        return self

    def _set_train_scores(self, train):
        """``train_scores_`` in clip order from each model's clips' threshold scores (anomaly sign)."""
        scores = np.empty(len(self._train_group))
        for i, own in enumerate(train):
            scores[self._train_group == i] = -own
        self.train_scores_ = scores

    def partial_fit(self, X, y=None, domain=None, section=None):
        """Add normal clips to the fitted model as a domain (or section), without refitting the rest.

        The clips join the (section, domain) group their labels name: a group the model
        holds is refitted on its training clips and the new ones (a k-NN's bank grows, a
        Gaussian's statistics are re-estimated), a new group gets its own model. The other
        groups' models stay as they are. Then the domain normalisation of the touched groups,
        the band profiles and the threshold(s) are recomputed by the ``contamination`` rule
        from all training clips, so the result is what ``fit`` on all the clips at once gives
        (for :class:`GMMDetector`, up to the initialisation of a refitted mixture). Before any
        ``fit``, ``partial_fit`` is ``fit``.

        Only normal clips may go in: an anomaly among them becomes normal for the model, and
        nothing can tell it apart afterwards. A ``UserWarning`` says when more of the new clips
        than the ``contamination`` share (the DCASE rule's 10 % for ``"auto"``) score above
        the threshold the model had before, by more than chance gives normal clips (a
        binomial tail under 5 %: 4 or more of 10 clips). Each new clip's score there is its
        training score in the updated model (leave-one-out for k-NN), as the threshold's
        clips are scored.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features) or (n_clips, n_mels, n_frames)
            The new clips, in the layout of ``fit``.
        y : array-like of shape (n_clips,), default=None
            Optional labels as in ``fit``; clips labelled anomalous are left out.
        domain : str or array-like of shape (n_clips,), default=None
            Domain of the new clips (one label for all, or one per clip). Required, and
            only allowed, for a model fitted with ``domain``.
        section : str or array-like of shape (n_clips,), default=None
            Section of the new clips (one label for all, or one per clip). Required, and
            only allowed, for a model fitted with ``section``; a new label adds a section
            (with its own threshold).

        Returns
        -------
        self : object
            The updated detector.
        """
        domain, section = (clip_labels(v, key, len(X), type(self).__name__, one_for_all=True)
                           for key, v in (("domain", domain), ("section", section)))
        if not self.__sklearn_is_fitted__():
            return self.fit(X, y, domain=domain, section=section)
        self._validate_params()
        name = type(self).__name__
        X = self._validate_input(X, reset=False, reduce=False)
        labels = {}
        for key, value, fitted in (("domain", domain, self.domains_), ("section", section, self.sections_)):
            if (value is None) != (fitted is None):
                how = "with" if fitted is not None else "without"
                raise ValueError(
                    f"{name} was fitted {how} {key} labels, so partial_fit needs "
                    f"{f'{key}=... (one of {fitted.tolist()} or a new one)' if fitted is not None else f'no {key}'}."
                )
            labels[key] = value
        X, domain, section = self._normal_clips(X, y, labels["domain"], labels["section"])
        if not len(X):
            raise ValueError(f"{name}.partial_fit: no normal clips to add.")
        if self._stores_rows and vars(self).get("model_rows_") is None:
            raise ValueError(
                f"{name} was saved by an earlier skasd without its training rows (model_rows_), so clips cannot be "
                "added to it; refit it on the old and the new clips."
            )
        fitted = vars(self).get("_group_params")  # absent from models of earlier skasd versions
        if fitted is not None:
            params = self.get_params()
            changed = sorted(k for k, v in fitted.items() if params.get(k) != v)
            if changed:
                raise ValueError(
                    f"{name}.partial_fit: {', '.join(f'{k}={params[k]!r}' for k in changed)} differ from "
                    f"the fit's ({', '.join(f'{k}={fitted[k]!r}' for k in changed)}), which the other groups' models "
                    "keep; set them back, or fit on all the clips."
                )
        old_offset = self.offset_
        old_section_offsets = dict(self.section_offsets_ or {})
        rows = [self._model_rows(i) for i in range(len(self.models_))]
        counts = [len(r) for r in rows]
        models, groups, n = list(self.models_), list(self.model_groups_), len(self.models_)
        # models of earlier skasd versions: no scales (0.1: raw scores), no per-group profiles (0.2: the
        # pooled one stands for every group; it pools back exactly), no profile at all (0.1)
        scales = list(vars(self).get("model_scales_", [(0.0, 1.0)] * n))
        profiles = vars(self).get("model_profiles_")
        if profiles is None and vars(self).get("band_profile_") is not None:
            profiles = [self.band_profile_] * n
        profiles = None if profiles is None else list(profiles)
        owns, added = [None] * n, {}
        clip_group = vars(self).get("_train_group")  # absent from models of earlier skasd versions
        new_group = np.empty(len(X), dtype=np.intp)
        for s, d, mask in self._label_groups(domain, section, len(X)):
            new = _reduce_3d(X[mask]) if X.ndim == 3 else X[mask]
            profile = _profile(X[mask]) if profiles is not None else None
            if (s, d) in groups:  # more clips for a group the model holds: its model refitted on all
                i = groups.index((s, d))
                if profiles is not None:
                    w = counts[i] / (counts[i] + len(new))
                    profile = _pool_profiles([profiles[i], profile], [w, 1 - w])
                new = np.concatenate([rows[i], new])
            else:
                i = len(models)
                for items in (models, scales, rows, owns) + (() if profiles is None else (profiles,)):
                    items.append(None)
                groups.append((s, d)), counts.append(0)
            added[(s, d)] = int(mask.sum())
            new_group[mask] = i
            models[i], owns[i], scales[i] = self._fit_group(new, s, d)
            rows[i], counts[i] = new, len(new)
            if profiles is not None:
                profiles[i] = profile
        order = sorted(range(len(models)), key=lambda i: groups[i])  # as fit orders them
        pick = lambda items: [items[i] for i in order]  # noqa: E731
        self.models_, self.model_groups_, self.model_scales_ = pick(models), pick(groups), np.array(pick(scales))
        if profiles is not None:
            counts = pick(counts)
            self.model_profiles_ = np.stack(pick(profiles))
            self.band_profile_ = _pool_profiles(self.model_profiles_, np.array(counts) / sum(counts))
        if self._stores_rows:
            self.model_rows_ = pick(rows)
        for key, value in (("domains_", domain), ("sections_", section)):
            if value is not None:
                setattr(self, key, np.unique(np.concatenate([getattr(self, key), value]).astype(object)).astype(object))
        if hasattr(self.models_[0], "n_iter_"):
            self.n_iter_ = max(model.n_iter_ for model in self.models_)
        train = self._set_thresholds(pick(owns))
        if clip_group is not None:  # the new clips after the earlier ones, each group's in clip order as its rows
            rank = np.empty(len(order), dtype=np.intp)
            rank[order] = np.arange(len(order))
            self._train_group = rank[np.concatenate([clip_group, new_group])]
            self._set_train_scores(train)
        # the new clips (the last of their group's rows) against the threshold before this call
        above = total = 0
        for i, (s, d) in enumerate(self.model_groups_):
            if (s, d) in added:
                mine = train[i][-added[(s, d)] :]
                offset = old_section_offsets.get(s, old_offset)
                above, total = above + int(np.sum(-mine < offset)), total + len(mine)
        share = round(1 - _GAMMA_QUANTILE, 12) if self.contamination == "auto" else self.contamination
        # more than the share, beyond what chance gives normal clips (a binomial tail under 5 %): 2 of 10 above
        # happens to one set of normal clips in four
        if above > share * total and scipy.stats.binom.sf(above - 1, total, share) < _CHANCE:
            warnings.warn(
                f"{name}.partial_fit: {above} of the {total} added clips score above the threshold the model had "
                f"before, more than the contamination share ({share:.0%}) and than chance gives normal clips: if some "
                "are anomalies, the model now takes them for normal. Add only normal clips.",
                UserWarning, stacklevel=2,
            )
        return self

    _stores_rows = True  # keep each group's training rows (model_rows_) for partial_fit

    def _model_rows(self, i):
        """The training rows (reduced) of fitted model ``i``."""
        return self.model_rows_[i]

    def _normal_clips(self, X, y, domain, section):
        """``X`` and its labels checked, without the clips ``y`` marks anomalous."""
        domain, section = self._check_labels("domain", domain, len(X)), self._check_labels("section", section, len(X))
        if y is not None:
            mask = normal_mask(y, len(X), type(self).__name__)
            if mask is not None:
                X = X[mask]
                domain, section = (None if a is None else a[mask] for a in (domain, section))
        return X, domain, section

    @staticmethod
    def _label_groups(domain, section, n):
        """``(section, domain, row mask)`` of each group of clips, sorted by section then domain."""
        out = []
        for s, srows in _groups(section, n):
            where = np.flatnonzero(srows)
            for d, drows in _groups(None if domain is None else domain[srows], len(where)):
                mask = np.zeros(n, dtype=bool)
                mask[where[drows]] = True
                out.append((s, d, mask))
        return out

    def _fit_group(self, X, section, domain):
        """``(model, its training clips' own anomaly scores, scale)`` of one (section, domain) group."""
        where = ", ".join(f"{k} {str(v)!r}" for k, v in (("section", section), ("domain", domain)) if v is not None)
        self._check_domain_size(len(X), f" in {where}" if where else "")
        model = self._fit_domain(X)
        own = self._train_anomaly(model, X)
        return model, own, self._scale(own)

    def _set_thresholds(self, owns):
        """``offset_`` and ``section_offsets_`` from every training clip's score: its minimum over its
        section's models (its own model's score ``owns[i]``, None: recomputed, leave-one-out where the
        model has one), standardised. Returns each model's clips' scores (anomaly sign)."""
        train, offsets, sections = [], {}, []
        for s, _ in self.model_groups_:
            if s not in sections:
                sections.append(s)
        for s in sections:
            own = [i for i, (si, _) in enumerate(self.model_groups_) if si == s]
            for i in own:
                rows = self._model_rows(i)
                mine = owns[i] if owns[i] is not None else self._train_anomaly(self.models_[i], rows)
                location, scale = self.model_scales_[i]
                best = (mine - location) / scale
                for j in own:
                    if j != i:
                        best = np.minimum(best, self._model_anomaly(j, rows))
                train.append(best)
            if s is not None:
                offsets[s] = self._offset(-np.concatenate([train[i] for i in own]))
        self.section_offsets_ = offsets if self.model_groups_[0][0] is not None else None
        self._set_offset(-np.concatenate(train))
        return train

    def _scale(self, own):
        """``(location, scale)`` that standardise one model's anomaly scores: its training
        clips' own (leave-one-out where the model has one) scores' mean and standard
        deviation with ``domain_norm="zscore"``, else ``(0, 1)``."""
        if self.domain_norm is None:
            return (0.0, 1.0)
        mean = float(np.mean(own))
        return (mean, max(float(np.std(own)), 1e-12 * max(1.0, abs(mean))))

    def _model_anomaly(self, i, X):
        """Anomaly scores of ``X`` against fitted model ``i``, standardised by its scale."""
        scales = vars(self).get("model_scales_")  # absent from models saved by skasd 0.1.0
        location, scale = (0.0, 1.0) if scales is None else scales[i]
        return (self._anomaly(self.models_[i], X) - location) / scale

    def _check_labels(self, name, labels, n):
        """Per-clip ``domain``/``section`` labels as a 1-D array (None stays None)."""
        return clip_labels(labels, name, n, type(self).__name__)

    def _check_domain_size(self, n, where):
        if n < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 normal training clips{where}; got {n}."
            )

    def _score(self, X, section):
        """``score_samples`` and the offsets to compare it with: ``offset_``, or with
        ``section`` each clip's section offset."""
        check_is_fitted(self)
        return self._score_rows(self._validate_input(X, reset=False), section)

    def _score_rows(self, X, section):
        """``_score`` of validated (reduced) rows."""
        if section is None:  # all models: the nearest section
            return -np.min([self._model_anomaly(i, X) for i in range(len(self.models_))], axis=0), self.offset_
        name = type(self).__name__
        if self.sections_ is None:
            raise ValueError(f"{name} was fitted without sections; fit it with section=... to score by section.")
        codes = self._section_codes(self._check_labels("section", section, len(X)))
        scores = np.empty(len(X))
        for code in np.unique(codes):
            rows, label = codes == code, self.sections_[code]
            own = [i for i, (s, _) in enumerate(self.model_groups_) if s == label]
            scores[rows] = -np.min([self._model_anomaly(i, X[rows]) for i in own], axis=0)
        return scores, self._section_offsets(codes)

    def score_samples(self, X, section=None):
        """Minus the anomaly score of each clip (higher = more normal).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features) or (n_clips, n_mels, n_frames)
            Clips to score, in the layout the detector was fitted on.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, for a detector fitted with ``section``: each clip is
            scored by its own section's models. None: by all sections' models (the
            nearest section). ``Pipeline.score_samples`` routes no metadata, so inside a
            pipeline use ``decision_function``/``predict`` or call the last step directly.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            Minus the minimum over the models (domains; sections without ``section``)
            of the clip's anomaly score.
        """
        return self._score(X, section)[0]

    def frame_scores(self, X, section=None, *, window=DEFAULT_WINDOW):
        """Anomaly score of each frame: the model's score of the band statistics of the
        ``window`` frames around it.

        The clip score is the model's score of the whole clip's per-band mean and standard
        deviation; a frame score is the same model's score of the mean and standard
        deviation over a window of ``window`` frames (windows every ``window // 4`` frames,
        one more ending at the last frame; a frame gets the mean over the windows covering
        it). A short event raises the scores of the windows holding it only. Frame scores
        are not pooled into the clip score, and a window is less varied than a whole clip:
        compare frame scores within a clip, not with the clip scores.

        Needs a model fitted on 3-D log-mel input; a model fitted on 2-D features (clip
        statistics, embeddings) has no time axis. For an embedding's patch-level scores use
        :func:`skasd.inspection.frame_scores` on the whole pipeline.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames)
            Log-mel clips, as in ``fit``.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, as in ``score_samples``.
        window : int, default=32
            Frames per window (32: about 1 s at 16 kHz with hop 512).

        Returns
        -------
        scores : ndarray of shape (n_clips, n_frames)
            Anomaly score of each frame (higher = more anomalous, the sign of
            ``anomaly_score``). For times in seconds, use
            :func:`skasd.inspection.frame_scores`.
        """
        check_is_fitted(self)
        name = type(self).__name__
        if self._input_ndim != 3:
            raise ValueError(
                f"{name} was fitted on 2-D features (n_clips, n_features), which have no time axis, "
                "so it has no frame scores. Fit it on 3-D log-mel clips "
                f"(make_pipeline(LogMelTransformer(), {name}())), put it after a ClassifierEmbedding and call "
                "skasd.inspection.frame_scores(pipeline, X) (patch-level scores), or use an autoencoder "
                "(DenseAE, VAE, CNNAE)."
            )
        if not isinstance(window, Integral) or isinstance(window, bool) or window < 2:
            raise ValueError(f"{name}.frame_scores: window must be an int of at least 2 frames; got {window!r}.")
        X = self._validate_input(X, reset=False, reduce=False)
        n_clips, n_mels, n_frames = X.shape
        check_frames(name, n_frames, window, "window")
        starts = window_starts(n_frames, window, max(1, window // 4), cover_end=True)
        csum = np.concatenate([np.zeros((n_clips, n_mels, 1)), np.cumsum(X, axis=2)], axis=2)
        csq = np.concatenate([np.zeros((n_clips, n_mels, 1)), np.cumsum(np.square(X), axis=2)], axis=2)
        mean = (csum[:, :, starts + window] - csum[:, :, starts]) / window  # (clips, mels, windows)
        std = np.sqrt(np.maximum((csq[:, :, starts + window] - csq[:, :, starts]) / window - mean**2, 0.0))
        rows = np.concatenate([mean, std], axis=1).transpose(0, 2, 1).reshape(n_clips * len(starts), 2 * n_mels)
        if section is not None:
            section = np.repeat(self._check_labels("section", section, n_clips), len(starts))
        scores = -self._score_rows(rows, section)[0].reshape(n_clips, len(starts))
        return windows_to_frames(scores, starts, window, n_frames)

    def normal_profile(self, X, section=None):
        """The normal level of each band that each clip is compared with: that of the training
        clips of its own (section, domain) group.

        Each clip's group is the one whose model gives it its score (the smallest
        standardised anomaly score among its section's models); the profile is that group's
        row of ``model_profiles_``. :func:`skasd.inspection.explain` names the bands where a
        clip departs from it, so that the gap between the domains is not taken for the
        anomaly. (The mean of the clip's nearest training clips instead localised generated
        anomalies worse, ``benchmarks/README.md``.)

        Parameters
        ----------
        X : array-like of shape (n_clips, n_features) or (n_clips, n_mels, n_frames)
            Clips, in the layout of ``fit``.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, as in ``score_samples``.

        Returns
        -------
        profiles : ndarray of shape (n_clips, 2, n_bands)
            Mean and standard deviation of each band (mel band, or feature of 2-D input),
            as ``band_profile_``. Models saved without ``model_profiles_`` (skasd 0.2) give
            ``band_profile_`` for every clip.
        """
        check_is_fitted(self)
        Xr = self._validate_input(X, reset=False)
        groups = vars(self).get("model_profiles_")
        if groups is None:
            return np.repeat(self.band_profile_[None], len(Xr), axis=0)
        anomaly = np.stack([self._model_anomaly(i, Xr) for i in range(len(self.models_))], axis=1)
        if section is not None and self.sections_ is not None:
            codes = self._section_codes(self._check_labels("section", section, len(Xr)))
            own = np.array([[s == label for s, _ in self.model_groups_] for label in self.sections_[codes]])
            anomaly = np.where(own, anomaly, np.inf)
        return groups[anomaly.argmin(axis=1)]

    def fit_predict(self, X, y=None, domain=None, section=None):
        """Fit, then label the training clips by their own section's threshold.

        Parameters
        ----------
        X, y, domain, section
            As in ``fit``; ``section`` is passed to ``predict`` too.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
            1 for inliers, -1 for outliers.
        """
        return self.fit(X, y, domain=domain, section=section).predict(X, section)

    def __sklearn_is_fitted__(self):
        # n_features_in_ is set while validating, before fitting can still fail
        return hasattr(self, "models_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


@Substitution(
    contamination=CONTAMINATION_DOC, domain_norm=_NORM_DOC, input=_INPUT_DOC.format(name="KNNDetector"),
    domain=_DOMAIN_DOC, groups=_GROUPS_DOC,
)
class KNNDetector(_InlierDetector):
    """k-nearest-neighbour detector: mean distance to the closest normal training clips.

    The inlier model of most top DCASE 2021-2024 systems, on classifier embeddings.
    Neighbours are found by :class:`sklearn.neighbors.NearestNeighbors`; its brute-force
    euclidean search works through the queries in small chunks, so memory stays linear in
    the number of training clips (``benchmarks/bench_knn.py``). Cosine distances are computed
    as half the squared euclidean distance of the L2-normalised vectors, which takes that
    path too (a zero vector is then at distance 0.5 from every clip, not 1).

    Parameters
    ----------
    n_neighbors : int, default=1
        Number of nearest training clips averaged (k).
    metric : {"cosine", "euclidean"} or str, default="cosine"
        Distance, any metric :class:`~sklearn.neighbors.NearestNeighbors` accepts. Cosine
        distance (``1 - cos``) is the usual choice on classifier embeddings.
    algorithm : {"auto", "brute", "ball_tree", "kd_tree"}, default="auto"
        Neighbour search, passed to ``NearestNeighbors``.
    n_jobs : int, default=None
        Parallel jobs of the neighbour search.
    {domain_norm}
    {contamination}

    Attributes
    ----------
    models_ : list of NearestNeighbors
        One fitted index per (section, domain) group.
    {groups}
    offset_ : float
        Threshold of ``decision_function``, from the leave-one-out training scores.
    train_score_quartiles_ : ndarray of shape (3,)
        Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).
    n_features_in_ : int
        Number of features (or mel bands for 3-D input) seen in ``fit``.

    See Also
    --------
    MahalanobisDetector : distance to the Gaussian of the training clips.
    GMMDetector : likelihood under a Gaussian mixture.

    Notes
    -----
    Anomaly score = mean distance to the ``n_neighbors`` nearest training clips. The
    training clips' scores behind ``offset_`` are **leave-one-out**: each training clip's
    own entry is excluded from its neighbours (its distance to itself is 0), so the
    threshold reflects unseen normal clips. Scoring the training clips with
    ``score_samples`` does not exclude them (a clip is its own nearest neighbour).
    Each (section, domain) group needs at least ``n_neighbors + 1`` normal training clips.

    With ``n_neighbors=1`` the domain rule changes nothing: the smallest of the nearest
    source and the nearest target distance is the nearest distance overall. Domains matter
    for ``n_neighbors > 1``, where a target clip's k neighbours come from the few target
    clips instead of the many source clips.

    {input}

    {domain}

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import KNNDetector
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(100, 8))
    >>> knn = KNNDetector(n_neighbors=3, metric="euclidean").fit(train)
    >>> knn.predict([np.zeros(8), np.full(8, 5.0)])
    array([ 1, -1])

    One model and threshold per section (machine ID) of a shared embedding: a clip 2 units
    off in every direction is normal for the loud section and abnormal for the quiet one,
    which the single threshold of all clips misses.

    >>> loud = np.repeat([1, 10], 50)[:, None]
    >>> section = np.repeat(["quiet", "loud"], 50)
    >>> knn = KNNDetector(n_neighbors=3, metric="euclidean").fit(train * loud, section=section)
    >>> x = np.full(8, 2.0)
    >>> knn.predict([x, x], section=["quiet", "loud"])
    array([-1,  1])
    >>> knn.predict([x])  # no section: nearest section, global threshold offset_
    array([1])
    """

    _parameter_constraints = {
        **_InlierDetector._parameter_constraints,
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "metric": [str, callable],
        "algorithm": [StrOptions({"auto", "brute", "ball_tree", "kd_tree"})],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self, n_neighbors=1, *, metric="cosine", algorithm="auto", domain_norm=None, contamination="auto", n_jobs=None
    ):
        self.n_neighbors = n_neighbors
        self.domain_norm = domain_norm
        self.metric = metric
        self.algorithm = algorithm
        self.contamination = contamination
        self.n_jobs = n_jobs

    def _check_domain_size(self, n, where):
        if n < self.n_neighbors + 1:
            raise ValueError(
                f"KNNDetector with n_neighbors={self.n_neighbors} needs at least "
                f"{self.n_neighbors + 1} normal training clips{where} (k neighbours plus the "
                f"clip left out of its own training score); got {n}."
            )

    _stores_rows = False  # the neighbour index holds them

    def _model_rows(self, i):
        return fitted_rows(self.models_[i])

    def _fit_domain(self, X):
        cosine = self.metric == "cosine"
        return NearestNeighbors(
            n_neighbors=self.n_neighbors,
            metric="euclidean" if cosine else self.metric,
            algorithm=self.algorithm,
            n_jobs=self.n_jobs,
        ).fit(normalize(X) if cosine else X)

    def _distances(self, model, X):
        # X=None: sklearn's leave-one-out query of the fitted points (none is its own neighbour)
        if X is not None and self.metric == "cosine":
            X = normalize(X)
        dist = model.kneighbors(X, n_neighbors=self.n_neighbors)[0]
        # unit vectors: cosine distance 1 - a.b = |a - b|^2 / 2
        return (np.square(dist) / 2 if self.metric == "cosine" else dist).mean(axis=1)

    def _anomaly(self, model, X):
        return self._distances(model, X)

    def _train_anomaly(self, model, X):
        return self._distances(model, None)


_COVARIANCES = {"ledoit_wolf": LedoitWolf, "oas": OAS, "empirical": EmpiricalCovariance}


@Substitution(
    contamination=CONTAMINATION_DOC, domain_norm=_NORM_DOC, input=_INPUT_DOC.format(name="MahalanobisDetector"),
    domain=_DOMAIN_DOC, groups=_GROUPS_DOC,
)
class MahalanobisDetector(_InlierDetector):
    """Mahalanobis distance to the Gaussian of the normal training clips.

    The DCASE 2022/2023 baselines' score. Fitted with ``domain`` labels it is the 2023
    baseline's "selective Mahalanobis": one mean and covariance per domain, and a clip's
    score is its smaller distance.

    Parameters
    ----------
    covariance : {"ledoit_wolf", "oas", "empirical"} or float in [0, 1], default="ledoit_wolf"
        Covariance estimator: Ledoit-Wolf or OAS shrinkage (:class:`~sklearn.covariance.LedoitWolf`,
        :class:`~sklearn.covariance.OAS`), the plain sample covariance (``"empirical"``; its
        pseudo-inverse where singular, which needs more clips than features to mean much),
        or a fixed shrinkage towards the scaled identity (:class:`~sklearn.covariance.ShrunkCovariance`).
        Shrinkage matters with few clips, e.g. ~10 target-domain clips.
    {domain_norm}
    {contamination}

    Attributes
    ----------
    models_ : list of sklearn covariance estimators
        One fitted estimator (``location_``, ``precision_``) per (section, domain) group.
    model_rows_ : list of ndarray
        The training rows of each of ``models_`` (reduced to band means and standard
        deviations for 3-D input), which :meth:`partial_fit` refits a group on and scores
        for the threshold.
    {groups}
    offset_ : float
        Threshold of ``decision_function``, from the training clips' in-sample scores.
    train_score_quartiles_ : ndarray of shape (3,)
        Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).
    n_features_in_ : int
        Number of features (or mel bands for 3-D input) seen in ``fit``.

    See Also
    --------
    KNNDetector : distance to the nearest training clips.

    Notes
    -----
    Anomaly score = Mahalanobis distance ``sqrt((x - mu)' P (x - mu))`` with the domain's
    mean ``mu`` and precision ``P`` (not squared, as the DCASE baselines). The training
    scores behind ``offset_`` are in-sample.

    {input}

    {domain}

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import MahalanobisDetector
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(200, 4)) * [1, 1, 1, 10]
    >>> maha = MahalanobisDetector().fit(train)
    >>> maha.predict([[0, 0, 0, 20], [5, 0, 0, 0]])  # far along the wide axis is normal
    array([ 1, -1])
    """

    _parameter_constraints = {
        **_InlierDetector._parameter_constraints,
        "covariance": [StrOptions(set(_COVARIANCES)), Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, *, covariance="ledoit_wolf", domain_norm=None, contamination="auto"):
        self.covariance = covariance
        self.domain_norm = domain_norm
        self.contamination = contamination

    def _fit_domain(self, X):
        if isinstance(self.covariance, str):
            est = _COVARIANCES[self.covariance]()
        else:
            est = ShrunkCovariance(shrinkage=self.covariance)
        return est.fit(X)

    def _anomaly(self, model, X):
        # model.mahalanobis(X), by matrix products: scipy's per-row distance is ~20x slower on
        # the many windows of frame_scores
        diff = X - model.location_
        return np.sqrt(np.maximum(np.einsum("ij,ij->i", diff @ model.get_precision(), diff), 0.0))


@Substitution(
    contamination=CONTAMINATION_DOC, domain_norm=_NORM_DOC, input=_INPUT_DOC.format(name="GMMDetector"),
    domain=_DOMAIN_DOC, groups=_GROUPS_DOC,
)
class GMMDetector(_InlierDetector):
    """Gaussian mixture of the normal training clips; anomaly score = minus log-likelihood.

    Parameters
    ----------
    n_components : int, default=1
        Mixture components per model (at most the training clips of a (section, domain) group).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance form, as in :class:`~sklearn.mixture.GaussianMixture`.
    reg_covar : float, default=1e-6
        Added to the covariance diagonals for stability.
    max_iter : int, default=100
        EM iterations.
    n_init : int, default=1
        EM restarts; the best is kept.
    random_state : int, RandomState instance or None, default=None
        Seed of the initialisation.
    {domain_norm}
    {contamination}

    Attributes
    ----------
    models_ : list of GaussianMixture
        One fitted mixture per (section, domain) group.
    model_rows_ : list of ndarray
        The training rows of each of ``models_`` (reduced to band means and standard
        deviations for 3-D input), which :meth:`partial_fit` refits a group on and scores
        for the threshold.
    {groups}
    n_iter_ : int
        Most EM iterations any group's mixture ran.
    offset_ : float
        Threshold of ``decision_function``, from the training clips' in-sample scores.
    train_score_quartiles_ : ndarray of shape (3,)
        Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).
    n_features_in_ : int
        Number of features (or mel bands for 3-D input) seen in ``fit``.

    Notes
    -----
    ``score_samples`` is the log-likelihood under the mixture (the maximum over domains).
    Log-likelihoods are densities, so with domains the rule compares densities of models of
    different sizes; with full covariances in high dimension and few target clips prefer
    ``covariance_type="diag"`` or a larger ``reg_covar``.

    {input}

    {domain}

    Examples
    --------
    >>> import numpy as np
    >>> from skasd import GMMDetector
    >>> rng = np.random.default_rng(0)
    >>> train = np.concatenate([rng.normal(-3, 1, size=(100, 2)), rng.normal(3, 1, size=(100, 2))])
    >>> gmm = GMMDetector(n_components=2, random_state=0).fit(train)
    >>> gmm.predict([[3, 3], [0, 0]])  # between the two clusters is abnormal
    array([ 1, -1])
    """

    _parameter_constraints = {
        **_InlierDetector._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        random_state=None,
        domain_norm=None,
        contamination="auto",
    ):
        self.n_components = n_components
        self.domain_norm = domain_norm
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state
        self.contamination = contamination

    def _check_domain_size(self, n, where):
        if n < max(2, self.n_components):
            raise ValueError(
                f"GMMDetector with n_components={self.n_components} needs at least "
                f"{max(2, self.n_components)} normal training clips{where}; got {n}."
            )

    def _fit_domain(self, X):
        return GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            n_init=self.n_init,
            random_state=self.random_state,
        ).fit(X)

    def _anomaly(self, model, X):
        return -model.score_samples(X)
