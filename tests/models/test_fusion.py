"""ScoreFusion: sklearn checks, fused scores against a manual z-score/ECDF, out-of-fold
standardisation, nested parameters in a grid search, pipelines on clips, errors."""

import numpy as np
import sklearn
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skasd import ClipStatsTransformer
from skasd import LogMelTransformer
from skasd.datasets import make_machine_sounds
from skasd.metrics import auc_score, auc_scorer
from skasd.model_selection import NormalTrainCV
from skasd.models import ScoreFusion
from skasd.models import GMMDetector, KNNDetector, MahalanobisDetector

_OUT_OF_FOLD = (
    "with cv the threshold comes from out-of-fold training scores while predict(X_train) uses "
    "the refitted sub-detectors' in-sample scores, so fitting and predicting the same clips "
    "flags a different fraction than `contamination` (by design, as KNNDetector)"
)


_LEAVE_ONE_OUT = (
    "the k-NN's threshold and standardisation come from its leave-one-out training scores while "
    "predict(X_train) finds each clip itself at distance 0, so fitting and predicting the same clips "
    "flags fewer than `contamination` (by design, as KNNDetector)"
)


def _expected_failures(estimator):
    if estimator.cv is not None:
        return dict.fromkeys(["check_outliers_train", "check_outliers_fit_predict"], _OUT_OF_FOLD)
    if any(isinstance(d, KNNDetector) for _, d in estimator.detectors):
        return dict.fromkeys(["check_outliers_train", "check_outliers_fit_predict"], _LEAVE_ONE_OUT)
    return {}


@parametrize_with_checks(
    [
        ScoreFusion([("maha", MahalanobisDetector()), ("gmm", GMMDetector(random_state=0))]),
        ScoreFusion(
            [("knn", KNNDetector(2, metric="euclidean")), ("maha", MahalanobisDetector())], method="rank", cv=3
        ),
        # cv=None: the k-NN's recorded leave-one-out training scores standardise it
        ScoreFusion([("knn", KNNDetector(metric="euclidean")), ("maha", MahalanobisDetector())], method="rank"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(80, 4)), rng.normal(size=(30, 4)) * 1.5


def _pair():
    return [("maha", MahalanobisDetector()), ("iforest", IsolationForest(n_estimators=50, random_state=0))]


def test_zscore_is_mean_of_standardised_scores(data):
    train, test = data
    fusion = ScoreFusion(_pair()).fit(train)
    expected = []
    for est in (MahalanobisDetector(), IsolationForest(n_estimators=50, random_state=0)):
        est.fit(train)
        ref = -est.score_samples(train)
        expected.append((-est.score_samples(test) - ref.mean()) / ref.std())
    assert_allclose(fusion.standardised_scores(test), np.column_stack(expected))
    assert_allclose(fusion.anomaly_score(test), np.mean(expected, axis=0))
    fused_train = np.mean([(-e.score_samples(train) - (-e.score_samples(train)).mean()) / e.score_samples(train).std()
                           for e in fusion.detectors_], axis=0)
    est = ScoreFusion(_pair(), contamination=0.1).fit(train)
    assert est.offset_ == pytest.approx(np.percentile(-fused_train, 10))
    assert np.sum(est.predict(train) == -1) == 8
    weighted = ScoreFusion(_pair(), weights=[3, 1]).fit(train)
    assert_allclose(weighted.anomaly_score(test), 0.75 * expected[0] + 0.25 * expected[1])


def test_rank_is_training_ecdf(data):
    train, test = data
    fusion = ScoreFusion(_pair(), method="rank").fit(train)
    cols = []
    for est in fusion.detectors_:
        ref = -est.score_samples(train)
        cols.append([(ref <= a).mean() for a in -est.score_samples(test)])
    assert_allclose(fusion.standardised_scores(test), np.column_stack(cols))
    assert np.all((fusion.standardised_scores(test) >= 0) & (fusion.standardised_scores(test) <= 1))


def test_cv_standardises_on_out_of_fold_scores(data):
    train, _ = data
    fusion = ScoreFusion([("knn", KNNDetector(3))], cv=KFold(4)).fit(train)
    oof = np.empty(len(train))
    for tr, te in KFold(4).split(train):
        oof[te] = KNNDetector(3).fit(train[tr]).anomaly_score(train[te])
    assert_allclose(fusion.reference_scores_[0], np.sort(oof))
    assert fusion.loc_[0] == pytest.approx(oof.mean())
    assert_allclose(fusion.detectors_[0].anomaly_score(train), KNNDetector(3).fit(train).anomaly_score(train))
    # without cv, the k-NN's recorded leave-one-out scores: not its in-sample zeros
    loo = ScoreFusion([("knn", KNNDetector())]).fit(train)
    assert_allclose(loo.reference_scores_[0], np.sort(-KNNDetector().fit(train).train_scores_))
    with pytest.raises(ValueError, match="'iforest' gives every training clip the same anomaly score"):
        ScoreFusion([("iforest", IsolationForest(n_estimators=1, max_samples=1, random_state=0))]).fit(train)


def test_nested_params_drop_and_grid_search():
    sounds = make_machine_sounds(n_normal=10, n_anomaly=4, duration=0.25, random_state=0)
    fusion = ScoreFusion([
        ("stats", make_pipeline(ClipStatsTransformer(n_mfcc=4), MahalanobisDetector())),
        ("logmel", make_pipeline(LogMelTransformer(n_mels=32), KNNDetector(2))),  # in-sample: 2nd neighbour
    ])
    params = fusion.get_params(deep=True)
    assert params["stats__clipstatstransformer__n_mfcc"] == 4
    assert params["logmel__knndetector__n_neighbors"] == 2
    fusion.set_params(logmel__knndetector__n_neighbors=3)
    assert fusion.detectors[1][1][-1].n_neighbors == 3
    assert clone(fusion).get_params()["logmel__knndetector__n_neighbors"] == 3
    grid = GridSearchCV(fusion, {"stats": ["drop", fusion.detectors[0][1]], "method": ["zscore", "rank"]},
                        scoring=auc_scorer, cv=NormalTrainCV(n_splits=2, random_state=0))
    grid.fit(sounds.data, sounds.target)
    assert len(grid.cv_results_["params"]) == 4 and np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    best = grid.best_estimator_
    assert len(best.detectors_) == (1 if dict(best.detectors)["stats"] == "drop" else 2)  # refit on the normal clips
    assert auc_score(sounds.target, best.anomaly_score(sounds.data)) > 0.5


def test_fit_with_labels_drops_anomalies(data):
    train, test = data
    X = np.concatenate([train, train[:6] + 20])
    y = ["normal"] * len(train) + ["anomaly"] * 6
    expected = ScoreFusion(_pair()).fit(train).score_samples(test)
    assert_allclose(ScoreFusion(_pair()).fit(X, y).score_samples(test), expected)


def test_errors(data):
    train, test = data
    with pytest.raises(NotFittedError):
        ScoreFusion(_pair()).score_samples(test)
    with pytest.raises(ValueError, match="non-empty list of \\(name, detector\\) tuples"):
        ScoreFusion([]).fit(train)
    with pytest.raises(ValueError, match="not unique"):
        ScoreFusion([("a", MahalanobisDetector()), ("a", GMMDetector())]).fit(train)
    with pytest.raises(TypeError, match="'scaler' must have fit and score_samples"):
        ScoreFusion([("scaler", StandardScaler())]).fit(train)
    with pytest.raises(ValueError, match="weights must hold 2 finite non-negative numbers"):
        ScoreFusion(_pair(), weights=[1]).fit(train)
    with pytest.raises(ValueError, match="at least one detector that is not 'drop'"):
        ScoreFusion([("a", "drop")]).fit(train)
    with pytest.raises(ValueError, match="NaN"):
        ScoreFusion(_pair()[:1]).fit(np.full_like(train, np.nan))
    fusion = ScoreFusion(_pair()[:1]).fit(train)
    with pytest.raises(ValueError, match="X has 3 features"):
        fusion.score_samples(test[:, :3])
    assert_array_equal(fusion.predict(test), np.where(fusion.decision_function(test) < 0, -1, 1))


def test_domain_is_routed_to_the_sub_detectors():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(40, 3)), rng.normal(size=(12, 3)) + 5, rng.normal(size=(4, 3)) + 30])
    domain = np.repeat(["source", "target", "source"], [40, 12, 4])
    y = np.repeat([0, 0, 1], [40, 12, 4])
    test = rng.normal(size=(10, 3)) + 2.5
    # without routing, domain goes to every sub-detector whose fit takes it
    fusion = ScoreFusion([("knn", KNNDetector(3)), ("iforest", IsolationForest(n_estimators=20, random_state=0)),
                          ("pipe", make_pipeline(StandardScaler(), MahalanobisDetector()))]).fit(X, y, domain=domain)
    assert fusion.named_detectors_.knn.domains_.tolist() == ["source", "target"]
    assert fusion.named_detectors_.pipe[-1].domains_.tolist() == ["source", "target"]
    with sklearn.config_context(enable_metadata_routing=True):
        for cv in (None, 3):
            fusion = ScoreFusion([
                ("knn", KNNDetector(3).set_fit_request(domain=True)),
                ("maha", MahalanobisDetector().set_fit_request(domain=True)),
                ("iforest", IsolationForest(n_estimators=20, random_state=0)),
            ], cv=cv).fit(X, y, domain=domain)
            knn, maha = fusion.named_detectors_.knn, fusion.named_detectors_.maha
            assert knn.domains_.tolist() == maha.domains_.tolist() == ["source", "target"]
            normal = y == 0
            expected = KNNDetector(3).fit(X[normal], domain=domain[normal])
            assert_allclose(knn.score_samples(test), expected.score_samples(test))
        with pytest.raises(ValueError, match=r"\[domain\] are passed but .*MahalanobisDetector.set_fit_request"):
            ScoreFusion([("maha", MahalanobisDetector())]).fit(X, domain=domain)


def _sections_and_domains(seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(30, 4)), rng.normal(size=(8, 4)) + 4,
                        rng.normal(size=(30, 4)) * 3, rng.normal(size=(8, 4)) * 3 - 6])
    section = np.repeat(["a", "a", "b", "b"], [30, 8, 30, 8]).astype(object)
    domain = np.tile(np.repeat(["source", "target"], [30, 8]), 2).astype(object)
    return X, domain, section, rng.normal(size=(12, 4)) * 2


def test_sections_get_their_own_thresholds_and_models():
    X, domain, section, test = _sections_and_domains()
    pair = [("knn", KNNDetector(metric="euclidean", domain_norm="zscore")),
            ("pipe", make_pipeline(StandardScaler(), MahalanobisDetector()))]
    fusion = ScoreFusion(pair, method="rank").fit(X, domain=domain, section=section)
    knn, pipe = fusion.named_detectors_.knn, fusion.named_detectors_.pipe
    assert knn.sections_.tolist() == pipe[-1].sections_.tolist() == fusion.sections_.tolist() == ["a", "b"]
    for label in ("a", "b"):  # each section's threshold from its own clips' fused training scores
        assert fusion.section_offsets_[label] == fusion._offset(fusion.train_scores_[section == label])
    sec = np.repeat(["a", "b"], 6).astype(object)
    cols = [knn.anomaly_score(test, section=sec), -pipe[-1].score_samples(pipe[:-1].transform(test), section=sec)]
    expected = -np.mean([np.searchsorted(ref, c, side="right") / len(ref)
                         for ref, c in zip(fusion.reference_scores_, cols)], axis=0)
    assert_allclose(fusion.score_samples(test, section=sec), expected)
    offsets = np.where(sec == "a", fusion.section_offsets_["a"], fusion.section_offsets_["b"])
    assert_array_equal(fusion.predict(test, section=sec), np.where(expected - offsets < 0, -1, 1))
    with pytest.raises(ValueError, match=r"sections not seen in fit: \['c'\]"):
        fusion.score_samples(test[:2], section=["a", "c"])
    with pytest.raises(ValueError, match="fitted without sections"):
        ScoreFusion(pair).fit(X, domain=domain).score_samples(test, section=sec)


def test_partial_fit_equals_fit_on_all_clips():
    X, domain, section, test = _sections_and_domains()
    pair = [("knn", KNNDetector(metric="euclidean", domain_norm="zscore")), ("maha", MahalanobisDetector())]
    first = np.ones(len(X), dtype=bool)
    first[[31, 33, 35, 36, 37, 70, 71]] = False  # target clips of both sections arrive later
    full = ScoreFusion(pair, method="rank").fit(np.concatenate([X[first], X[~first]]),
                                                domain=np.concatenate([domain[first], domain[~first]]),
                                                section=np.concatenate([section[first], section[~first]]))
    grown = ScoreFusion(pair, method="rank").fit(X[first], domain=domain[first], section=section[first])
    grown.partial_fit(X[~first], domain=domain[~first], section=section[~first])
    assert_allclose(grown.train_scores_, full.train_scores_, atol=1e-10)
    for a, b in zip(grown.reference_scores_, full.reference_scores_):
        assert_allclose(a, b, atol=1e-10)
    assert grown.offset_ == pytest.approx(full.offset_)
    assert grown.section_offsets_ == pytest.approx(full.section_offsets_)
    sec = np.repeat(["a", "b"], 6)
    assert_allclose(grown.score_samples(test, section=sec), full.score_samples(test, section=sec), atol=1e-10)


def test_partial_fit_refusals():
    X, domain, section, _ = _sections_and_domains()
    with_iforest = ScoreFusion([("knn", KNNDetector()), ("iforest", IsolationForest(n_estimators=5, random_state=0))])
    with pytest.raises(ValueError, match="'iforest' \\(IsolationForest\\) cannot add clips"):
        with_iforest.fit(X).partial_fit(X[:3])
    assert not hasattr(ScoreFusion([("knn", KNNDetector(2))], cv=3), "partial_fit")  # out-of-fold: needs refits
    # all or nothing: the 3-NN cannot take a new section of 3 clips, so the 1-NN does not take them either
    pair = ScoreFusion([("k1", KNNDetector()), ("k3", KNNDetector(3))]).fit(X, section=section)
    before = [d.train_scores_.copy() for d in pair.detectors_]
    with pytest.raises(ValueError, match="at least 4 normal training clips"):
        pair.partial_fit(X[:3], section="c")
    assert [len(d.train_scores_) for d in pair.detectors_] == [len(b) for b in before] == [len(X)] * 2
    assert pair.sections_.tolist() == pair.detectors_[0].sections_.tolist() == ["a", "b"]
    # routed labels: a sub-detector fitted without sections is scored and grown without them
    with sklearn.config_context(enable_metadata_routing=True):
        routed = ScoreFusion([("knn", KNNDetector().set_fit_request(domain=True, section=True)),
                              ("maha", MahalanobisDetector().set_fit_request(domain=False, section=False))])
        routed.fit(X, domain=domain, section=section)
        assert routed.named_detectors_.maha.sections_ is None
        routed.score_samples(X[:4], section=section[:4])
        routed.partial_fit(X[:4], domain="target", section="a")
        assert len(routed.named_detectors_.maha.train_scores_) == len(X) + 4
    with pytest.raises(ValueError, match="fitted with section labels, so partial_fit needs section"):
        ScoreFusion([("knn", KNNDetector())]).fit(X, section=section).partial_fit(X[:3])


def test_fit_predict_judges_each_clip_by_its_section_threshold():
    X, domain, section, _ = _sections_and_domains()
    fusion = ScoreFusion([("iforest", IsolationForest(n_estimators=20, random_state=0)), ("maha", MahalanobisDetector())])
    labels = clone(fusion).fit_predict(X, domain=domain, section=section)
    assert_array_equal(labels, fusion.fit(X, domain=domain, section=section).predict(X, section=section))
