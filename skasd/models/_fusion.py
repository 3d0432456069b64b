"""ScoreFusion: one detector from several detectors' standardised anomaly scores."""

import copy
import inspect
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, indexable

from ..utils._docstring import Substitution
from ..utils._sklearn_compat import (
    StrOptions,
    _BaseComposition,
    _check_method_params,
    _num_samples,
    _raise_for_params,
    _routing_enabled,
    _safe_indexing,
)
from ..utils._validation import clip_labels, normal_mask
from ._base import CONTAMINATION_DOC, BaseDetector, SectionScoringMixin

__all__ = ["ScoreFusion"]


@Substitution(contamination=CONTAMINATION_DOC)
class ScoreFusion(SectionScoringMixin, BaseDetector, _BaseComposition):
    """Combine detectors by averaging their anomaly scores, each standardised on its own
    training-score distribution.

    Unsupervised (DCASE training data holds no anomalies): every sub-detector is fitted on
    the same normal clips, its training clips' anomaly scores (``-score_samples``) fix how
    its scores are standardised, and the fused anomaly score is the weighted mean of the
    standardised scores.

    Parameters
    ----------
    detectors : list of (str, estimator or "drop")
        Named sub-detectors, each with ``fit`` and ``score_samples`` (higher = more normal):
        a skasd detector or a whole :class:`~sklearn.pipeline.Pipeline` ending in one. All
        receive the same ``X``, so where they need different features each is a pipeline
        from the clips (paths or waveforms) to its detector, e.g. log-mel + autoencoder
        beside clip statistics + Mahalanobis. ``"drop"`` leaves one out (a grid can switch
        sub-detectors on and off). Their parameters are reachable as ``<name>__<param>``.
    method : {"zscore", "rank"}, default="zscore"
        ``"zscore"``: ``(a - mean) / std`` of the training anomaly scores. ``"rank"``: the
        empirical CDF of the training anomaly scores (fraction of training clips scoring at
        most ``a``; insensitive to outlying training scores, but every clip beyond the
        highest training score gets 1, so it cannot rank clearly abnormal clips among
        themselves).
    weights : array-like of shape (n_detectors,), default=None
        Weight of each sub-detector's standardised score (None = equal), including dropped ones.
    cv : int, cross-validation generator, iterable or None, default=None
        Which training scores standardise a sub-detector. None: the scores its fit recorded
        for its training clips, ``train_scores_`` (a skasd inlier detector's: leave-one-out
        for :class:`~skasd.KNNDetector`, as unseen normal clips are scored), else its
        ``score_samples`` of its own training clips (one fit each). An int or splitter:
        out-of-fold scores, each clip scored by a clone fitted without it (k + 1 fits each).
        Use it where a sub-detector's in-sample scores are optimistic and it records none
        (an autoencoder scores the clips it was trained on better than new ones).
    {contamination}

    Attributes
    ----------
    detectors_ : list of estimators
        The fitted sub-detectors (dropped ones left out), in order.
    named_detectors_ : Bunch
        The fitted sub-detectors by name.
    reference_scores_ : list of ndarray
        Sorted training anomaly scores of each fitted sub-detector (what standardises it).
    loc_, scale_ : ndarray of shape (n_fitted_detectors,)
        Mean and standard deviation of ``reference_scores_`` (the z-score).
    weights_ : ndarray of shape (n_fitted_detectors,)
        Weights of the fitted sub-detectors, normalised to sum to 1.
    offset_ : float
        Threshold of ``decision_function``, from the fused training scores.
    train_score_quartiles_ : ndarray of shape (3,)
        Quartiles of the training clips' anomaly scores (the normal spread drift is measured against).
    train_scores_ : ndarray of shape (n_training_clips,)
        Fused ``score_samples`` of each normal training clip, from the scores that standardise
        the sub-detectors.
    domains_, sections_ : ndarray of object or None
        The ``domain`` and ``section`` labels seen in ``fit``; None when fitted without them.
    section_offsets_ : dict or None
        Section label -> threshold from that section's fused training scores alone (same
        ``contamination`` rule as ``offset_``); None when fitted without sections.

    See Also
    --------
    KNNDetector, MahalanobisDetector

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> from skasd import MahalanobisDetector, ScoreFusion
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(200, 3))
    >>> fusion = ScoreFusion([("maha", MahalanobisDetector()),
    ...                       ("iforest", IsolationForest(random_state=0))]).fit(train)
    >>> fusion.predict([[0, 0, 0], [6, 6, 6]])
    array([ 1, -1])
    >>> fusion.get_params()["maha__covariance"]
    'ledoit_wolf'
    """

    _parameter_constraints = {
        "detectors": [list],
        "method": [StrOptions({"zscore", "rank"})],
        "weights": ["array-like", None],
        "cv": ["cv_object"],
        **BaseDetector._parameter_constraints,
    }

    def __init__(self, detectors, *, method="zscore", weights=None, cv=None, contamination="auto"):
        self.detectors = detectors
        self.method = method
        self.weights = weights
        self.cv = cv
        self.contamination = contamination

    def get_params(self, deep=True):
        """Parameters of the fusion and, with ``deep``, of every sub-detector (``<name>__<param>``).

        Parameters
        ----------
        deep : bool, default=True
            Include the sub-detectors and their parameters.

        Returns
        -------
        params : dict
        """
        return self._get_params("detectors", deep=deep)

    def set_params(self, **params):
        """Set parameters, including sub-detectors by name and ``<name>__<param>``.

        Parameters
        ----------
        **params : dict

        Returns
        -------
        self : ScoreFusion
        """
        self._set_params("detectors", **params)
        return self

    def _check_detectors(self):
        if not self.detectors or any(not isinstance(d, tuple) or len(d) != 2 for d in self.detectors):
            raise ValueError(
                "detectors must be a non-empty list of (name, detector) tuples; got "
                f"{self.detectors!r}."
            )
        names, ests = zip(*self.detectors)
        self._validate_names(names)
        for name, est in self.detectors:
            if est != "drop" and not (hasattr(est, "fit") and hasattr(est, "score_samples")):
                raise TypeError(
                    f"detector {name!r} must have fit and score_samples (higher = more normal) "
                    f"or be 'drop'; got {est!r}."
                )
        if self.weights is None:
            weights = np.ones(len(names))
        else:
            weights = np.asarray(self.weights, dtype=np.float64)
            if weights.shape != (len(names),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(
                    f"weights must hold {len(names)} finite non-negative numbers, one per detector; "
                    f"got {self.weights!r}."
                )
        kept = [i for i, est in enumerate(ests) if est != "drop"]
        if not kept or weights[kept].sum() == 0:
            raise ValueError("ScoreFusion needs at least one detector that is not 'drop' with a positive weight.")
        return [names[i] for i in kept], [ests[i] for i in kept], weights[kept]

    def fit(self, X, y=None, domain=None, section=None, **fit_params):
        """Fit every sub-detector on the normal clips and learn how to standardise its scores.

        Parameters
        ----------
        X : array-like or list of paths
            Training clips, in the form every sub-detector (pipeline) takes.
        y : array-like of shape (n_clips,), default=None
            Optional labels, 1 (or ``"anomaly"``) = anomaly; clips labelled anomalous are left
            out of every sub-detector's training and of the standardisation. A non-binary
            ``y`` is ignored.
        domain, section : array-like of shape (n_clips,), default=None
            Domain and section (machine ID) of each clip, passed to every sub-detector whose
            ``fit`` takes them (for a pipeline: its last step's), e.g. a skasd inlier detector:
            one model per (section, domain). With ``section``, one threshold per section
            (``section_offsets_``) and ``score_samples(X, section=...)`` as for those detectors.
            With metadata routing enabled they are routed like ``fit_params`` instead, so at
            least one sub-detector must request each label given (``set_fit_request(section=True)``).
        **fit_params : dict
            Other per-clip metadata for the sub-detectors' ``fit``, only with
            ``sklearn.set_config(enable_metadata_routing=True)``: each sub-detector receives
            what it requested (``KNNDetector().set_fit_request(domain=True)``), restricted to
            the normal clips and, with ``cv``, to each fold.

        Returns
        -------
        self : ScoreFusion
        """
        self._validate_params()
        _raise_for_params(fit_params, self, "fit")
        names, ests, weights = self._check_detectors()
        (X,) = indexable(X)  # sparse -> CSR, array-likes -> arrays, so folds and masks can index
        n = _num_samples(X)
        labels = {key: clip_labels(value, key, n, "ScoreFusion", dtype=object)
                  for key, value in (("domain", domain), ("section", section))}
        routed = None
        if _routing_enabled():  # domain and section are metadata like any other: each sub-detector's request decides
            routed = process_routing(self, "fit", **fit_params, **{k: v for k, v in labels.items() if v is not None})
        all_clips, keep = X, np.arange(n)
        if y is not None:
            mask = normal_mask(y, len(keep), "ScoreFusion")
            if mask is not None:
                keep = np.flatnonzero(mask)
                X = _safe_indexing(X, keep)
                labels = {key: None if v is None else v[keep] for key, v in labels.items()}
        fitted, train = [], []
        for name, est in zip(names, ests):
            # per-clip metadata restricted to the normal clips
            params = {} if routed is None else _check_method_params(all_clips, routed[name].fit, keep)
            if self.cv is None:
                model = clone(est).fit(X, **params, **_label_params(est, "fit", labels, routed=routed))
                scores = _recorded(model, _num_samples(X))
                if scores is None:
                    scores = -model.score_samples(X)
            else:
                scores = self._out_of_fold(est, X, params, {} if routed is not None else labels)
                model = clone(est).fit(X, **params, **_label_params(est, "fit", labels, routed=routed))
            fitted.append(model)
            train.append(self._check_scores(name, scores))
        self.detectors_ = fitted
        self.named_detectors_ = Bunch(**dict(zip(names, fitted)))
        self.weights_ = weights / weights.sum()
        self.domains_, self.sections_ = (None if v is None else np.unique(v).astype(object) for v in labels.values())
        self._train_section = labels["section"]
        self._standardise_from(train)
        return self

    def _check_scores(self, name, scores):
        scores = np.asarray(scores, dtype=np.float64)
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"detector {name!r} gave non-finite anomaly scores on its training clips.")
        if scores.std() <= 1e-12 * max(1.0, np.abs(scores).max()):
            hint = (" (a detector that records no leave-one-out scores scores its own training clips: pass cv=5 "
                    "for out-of-fold scores)") if self.cv is None else ""
            raise ValueError(
                f"detector {name!r} gives every training clip the same anomaly score "
                f"(standard deviation {scores.std():.3g}), so its scores cannot be standardised{hint}."
            )
        return scores

    def _standardise_from(self, train):
        """Standardisation, thresholds and ``train_scores_`` from each fitted sub-detector's
        training anomaly scores ``train`` (aligned clip by clip)."""
        self.reference_scores_ = [np.sort(scores) for scores in train]
        self.loc_ = np.array([scores.mean() for scores in train])
        self.scale_ = np.array([scores.std() for scores in train])
        fused = -(self._standardised(train) @ self.weights_)
        self.train_scores_ = fused
        self._set_offset(fused)
        section = self._train_section
        self.section_offsets_ = None if section is None else {
            label: self._offset(fused[section == label]) for label in self.sections_.tolist()}

    @available_if(lambda self: self.cv is None)
    def partial_fit(self, X, y=None, domain=None, section=None):
        """Add normal clips to every sub-detector (their ``partial_fit``), then re-standardise.

        Each sub-detector (for a pipeline: its last step, on the clips its earlier steps
        transform, those steps unchanged) adds the clips as its ``partial_fit`` does, e.g. a
        skasd inlier detector refits the (section, domain) group they join. The
        standardisation and the thresholds are then recomputed from every training clip's
        recorded score (``train_scores_``), as ``fit`` on all the clips gives where the
        sub-detectors' own ``partial_fit`` equals their ``fit``. Before any ``fit``,
        ``partial_fit`` is ``fit``. Only with ``cv=None`` (out-of-fold scores would need the
        earlier clips to refit). All or nothing: where a sub-detector refuses the clips, none of
        them is changed.

        Parameters
        ----------
        X : array-like or list of paths
            The new clips, in the form of ``fit``.
        y : array-like of shape (n_clips,), default=None
            Optional labels as in ``fit``; clips labelled anomalous are left out.
        domain, section : str or array-like of shape (n_clips,), default=None
            Labels of the new clips (one for all, or one per clip), as the sub-detectors'
            ``partial_fit`` takes them.

        Returns
        -------
        self : ScoreFusion
        """
        if not self.__sklearn_is_fitted__():
            return self.fit(X, y, domain=domain, section=section)
        self._validate_params()
        (X,) = indexable(X)
        n = _num_samples(X)
        labels = {key: clip_labels(value, key, n, "ScoreFusion", one_for_all=True, dtype=object)
                  for key, value in (("domain", domain), ("section", section))}
        if y is not None:
            mask = normal_mask(y, n, "ScoreFusion")
            if mask is not None:
                keep = np.flatnonzero(mask)
                X, n = _safe_indexing(X, keep), len(keep)
                labels = {key: None if v is None else v[keep] for key, v in labels.items()}
        if not n:
            raise ValueError("ScoreFusion.partial_fit: no normal clips to add.")
        names = list(self.named_detectors_)
        for name, model in zip(names, self.detectors_):
            final = _final(model)
            if not hasattr(final, "partial_fit"):
                raise ValueError(f"ScoreFusion.partial_fit: detector {name!r} ({type(final).__name__}) cannot add "
                                 "clips (it has no partial_fit, as skasd's inlier detectors have); fit on all the "
                                 "clips instead.")
            if "train_scores_" not in vars(final):
                raise ValueError(f"ScoreFusion.partial_fit: detector {name!r} ({type(final).__name__}) records no "
                                 "training scores (train_scores_): saved by an earlier skasd, or not a skasd inlier "
                                 "detector; fit on all the clips instead.")
        if (labels["section"] is None) != (self.sections_ is None):
            raise ValueError(f"ScoreFusion was fitted {'with' if self.sections_ is not None else 'without'} section "
                             f"labels, so partial_fit needs {'section=...' if self.sections_ is not None else 'none'}.")
        train, grown = [], []
        # on copies: the fusion changes only once every sub-detector took the clips, and says what they warned then
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            for model in self.detectors_:
                model = copy.deepcopy(model)
                final, Xt = _final_input(model, X)
                final.partial_fit(Xt, **_fitted_labels(final, labels))
                train.append(-np.asarray(final.train_scores_, dtype=np.float64))
                grown.append(model)
        sizes = {len(t) for t in train}
        if len(sizes) != 1:
            raise ValueError(f"ScoreFusion.partial_fit: the sub-detectors hold different numbers of training "
                             f"clips ({sorted(sizes)}); fit on all the clips instead.")
        self.detectors_ = grown
        self.named_detectors_ = Bunch(**dict(zip(names, grown)))
        for w in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if self.sections_ is not None:
            self._train_section = np.concatenate([self._train_section, labels["section"]])
            self.sections_ = np.unique(self._train_section).astype(object)
        if self.domains_ is not None and labels["domain"] is not None:
            self.domains_ = np.unique(np.concatenate([self.domains_, labels["domain"]])).astype(object)
        self._standardise_from(train)
        return self

    def fit_predict(self, X, y=None, domain=None, section=None, **fit_params):
        """Fit on ``X`` and label its clips, each by its section's threshold where fitted with ``section``.

        Parameters
        ----------
        X, y, domain, section, **fit_params
            As in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_clips,)
            1 normal, -1 anomalous.
        """
        return self.fit(X, y, domain=domain, section=section, **fit_params).predict(X, section=section)

    def _out_of_fold(self, est, X, params, labels):
        cv = check_cv(self.cv)
        scores = np.empty(_num_samples(X))
        for train, test in cv.split(np.zeros((len(scores), 1))):
            fold = {key: None if v is None else v[train] for key, v in labels.items()}
            model = clone(est).fit(_safe_indexing(X, train), **_check_method_params(X, params, train),
                                   **_label_params(est, "fit", fold))
            scores[test] = -model.score_samples(_safe_indexing(X, test))
        return scores

    def _standardise(self, i, scores):
        if self.method == "zscore":
            return (scores - self.loc_[i]) / self.scale_[i]
        ref = self.reference_scores_[i]
        return np.searchsorted(ref, scores, side="right") / len(ref)

    def _standardised(self, anomaly_scores):
        """Columns of standardised scores, one per fitted detector."""
        return np.column_stack([self._standardise(i, np.asarray(a, dtype=np.float64))
                                for i, a in enumerate(anomaly_scores)])

    def standardised_scores(self, X, section=None):
        """Each sub-detector's standardised anomaly score of each clip.

        Parameters
        ----------
        X : array-like or list of paths
            Clips to score.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, passed to the sub-detectors whose ``score_samples`` takes it.

        Returns
        -------
        scores : ndarray of shape (n_clips, n_fitted_detectors)
            Column ``i`` is detector ``detectors_[i]``'s z-score or training-CDF value.
        """
        return self._standardised_with_codes(X, section)[0]

    def _standardised_with_codes(self, X, section):
        """``standardised_scores`` and each clip's row of ``sections_`` (None without ``section``)."""
        check_is_fitted(self)
        (X,) = indexable(X)
        codes = None
        if section is not None:
            if vars(self).get("sections_") is None:
                raise ValueError("ScoreFusion was fitted without sections; fit it with section=... to score by section.")
            section = clip_labels(section, "section", _num_samples(X), "ScoreFusion", dtype=object)
            codes = self._section_codes(section)  # unknown labels named here, before any scoring
        return self._standardised([-_sub_score(d, X, section) for d in self.detectors_]), codes

    def _score(self, X, section):
        standardised, codes = self._standardised_with_codes(X, section)
        scores = -(standardised @ self.weights_)
        return scores, self.offset_ if codes is None else self._section_offsets(codes)

    def score_samples(self, X, section=None):
        """Minus the fused anomaly score (higher = more normal).

        Parameters
        ----------
        X : array-like or list of paths
            Clips to score, in the form the sub-detectors take.
        section : array-like of shape (n_clips,), default=None
            Section of each clip, for a fusion fitted with ``section``: passed to the
            sub-detectors that take it (each clip scored by its section's models).

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            Minus the weighted mean of the standardised anomaly scores.
        """
        return self._score(X, section)[0]

    def frame_scores(self, X):
        """Fused anomaly score of each frame: the sub-detectors' frame scores, each
        standardised as its clip scores are, then weighted as in ``score_samples``.

        Every sub-detector needs frame scores on the same frames (e.g. all on one log-mel).
        Where sub-detectors are pipelines from the clips, use
        :func:`skasd.inspection.frame_scores` on the fusion instead: it runs their steps.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_mels, n_frames)
            Clips, in the form the sub-detectors take.

        Returns
        -------
        scores : ndarray of shape (n_clips, n_frames)
            Weighted mean of the standardised frame scores (higher = more anomalous).
        """
        check_is_fitted(self)
        missing = [type(d).__name__ for d in self.detectors_ if not hasattr(d, "frame_scores")]
        if missing:
            raise ValueError(
                f"ScoreFusion: sub-detector(s) {missing} have no frame_scores; for pipelines use "
                "skasd.inspection.frame_scores(fusion, X)."
            )
        return self.fuse_frame_scores([d.frame_scores(X) for d in self.detectors_])

    def fuse_frame_scores(self, frame_scores):
        """Fuse the sub-detectors' frame scores computed elsewhere (``frame_scores``' last step).

        Parameters
        ----------
        frame_scores : list of ndarray of shape (n_clips, n_frames)
            Frame scores of each of ``detectors_``, in order.

        Returns
        -------
        scores : ndarray of shape (n_clips, n_frames)
            NaN where any sub-detector's frame score is NaN.
        """
        shapes = {np.shape(f) for f in frame_scores}
        if len(shapes) != 1:
            raise ValueError(f"ScoreFusion: the sub-detectors' frame scores differ in shape: {sorted(shapes)}.")
        frame_scores = [np.asarray(f, dtype=np.float64) for f in frame_scores]
        fused = sum(w * self._standardise(i, f) for i, (w, f) in enumerate(zip(self.weights_, frame_scores)))
        # a frame that a sub-detector does not score stays unscored (rank would make NaN its maximum)
        fused[np.any([np.isnan(f) for f in frame_scores], axis=0)] = np.nan
        return fused

    def get_metadata_routing(self):
        """Routing of ``fit`` metadata to each sub-detector's ``fit``.

        Returns
        -------
        routing : MetadataRouter
        """
        router = MetadataRouter(owner=self)
        for name, est in self.detectors:
            if est != "drop":
                router.add(**{name: est}, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
        return router

    @property
    def n_features_in_(self):
        """Number of features seen by the first sub-detector during ``fit``."""
        return self.detectors_[0].n_features_in_

    def __sklearn_is_fitted__(self):
        return hasattr(self, "detectors_")


def _final(est):
    """The estimator that takes the metadata: a pipeline's last step, else ``est``."""
    return est[-1] if isinstance(est, Pipeline) else est


def _takes(est, method, name):
    return name in inspect.signature(getattr(_final(est), method)).parameters


def _label_params(est, method, labels, direct=False, routed=None):
    """``domain``/``section`` for ``est.<method>`` where its (last step's) method takes them,
    as ``<step>__<name>`` for a pipeline's ``fit`` unless ``direct``; none where metadata is
    routed (``routed``: the requests decide)."""
    if routed is not None:
        return {}
    prefix = f"{est.steps[-1][0]}__" if isinstance(est, Pipeline) and not direct else ""
    return {prefix + key: value for key, value in labels.items() if value is not None and _takes(est, method, key)}


def _fitted_labels(final, labels):
    """The labels of ``labels`` a fitted detector was fitted with (its ``domains_``/``sections_``)."""
    return {key: value for key, value in labels.items()
            if value is not None and vars(final).get(f"{key}s_") is not None}


def _sub_score(est, X, section):
    """``est.score_samples(X)``, with ``section`` where its (last step) was fitted with sections."""
    if section is None or not _fitted_labels(_final(est), {"section": section}):
        return est.score_samples(X)
    final, Xt = _final_input(est, X)
    return final.score_samples(Xt, section=section)


def _final_input(est, X):
    """``est``'s last step and what it receives of ``X`` (through a pipeline's earlier steps)."""
    return (est[-1], est[:-1].transform(X)) if isinstance(est, Pipeline) else (est, X)


def _recorded(model, n):
    """The training scores a fitted sub-detector recorded (``train_scores_``, anomaly sign), if it has ``n``."""
    scores = vars(_final(model)).get("train_scores_")
    return None if scores is None or len(scores) != n else -np.asarray(scores, dtype=np.float64)

