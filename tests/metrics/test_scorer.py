import pickle

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skasd.metrics import auc_scorer, make_anomaly_scorer, pauc_scorer
from skasd.model_selection import NormalTrainCV


class _Oracle:
    """Not an sklearn estimator: anomaly score = sign * X (X holds the label)."""

    def __init__(self, sign):
        self.sign = sign

    def anomaly_score(self, X):
        return self.sign * np.asarray(X, float)


class _OnlyScoreSamples:
    def __init__(self, sign):
        self.sign = sign

    def score_samples(self, X):  # higher = more normal
        return -self.sign * np.asarray(X, float)


class _OnlyDecision:
    def __init__(self, sign):
        self.sign = sign

    def decision_function(self, X):
        return -self.sign * np.asarray(X, float) + 3.0


class _Conflicting(_Oracle):
    def score_samples(self, X):  # wrong on purpose: anomaly_score must win
        return np.asarray(X, float)


Y = np.array([0, 0, 0, 1, 1])
X1 = Y.astype(float)


@pytest.mark.parametrize("scorer", [auc_scorer, pauc_scorer, make_anomaly_scorer("pauc", max_fpr=0.3)])
@pytest.mark.parametrize("kind", [_Oracle, _OnlyScoreSamples, _OnlyDecision, _Conflicting])
def test_sign_perfect_is_one_negated_is_zero(scorer, kind):
    assert scorer(kind(1), X1, Y) == 1.0
    negated = scorer(kind(-1), X1, Y)
    if scorer is auc_scorer:
        assert negated == 0.0
    else:  # McClish-standardised pAUC of the worst ranking: (1 - f) / (2 - f)
        f = scorer._kwargs["max_fpr"]
        assert negated == roc_auc_score(Y, -X1, max_fpr=f)
        assert negated == pytest.approx((1 - f) / (2 - f))
    # string labels
    assert scorer(kind(1), X1, np.where(Y == 1, "anomaly", "normal")) == 1.0


def _blobs(seed=0, n_normal=80, n_anomaly=12):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(size=(n_normal, 3)), rng.normal(2.5, 1.0, size=(n_anomaly, 3))]
    y = np.r_[np.zeros(n_normal, int), np.ones(n_anomaly, int)]
    return X, y


def test_isolation_forest_uses_negated_score_samples():
    X, y = _blobs()
    forest = IsolationForest(random_state=0).fit(X[y == 0])
    expected = roc_auc_score(y, -forest.score_samples(X))
    assert auc_scorer(forest, X, y) == expected
    assert pauc_scorer(forest, X, y) == roc_auc_score(y, -forest.score_samples(X), max_fpr=0.1)
    assert expected > 0.9


def test_grid_search_pipeline_multimetric_refit_matches_manual():
    X, y = _blobs(1)
    pipe = Pipeline([("scale", StandardScaler()), ("forest", IsolationForest(random_state=0))])
    cv = NormalTrainCV(n_splits=3, random_state=0)
    grid = {"forest__n_estimators": [5, 50], "forest__max_samples": [16, "auto"]}
    gs = GridSearchCV(pipe, grid, scoring={"auc": auc_scorer, "pauc": pauc_scorer}, refit="pauc", cv=cv)
    gs.fit(X, y)
    res = gs.cv_results_
    folds = list(cv.split(X, y))
    for i, params in enumerate(res["params"]):
        for k, (train, test) in enumerate(folds):
            model = clone(pipe).set_params(**params).fit(X[train])
            s = -model.score_samples(X[test])
            assert res[f"split{k}_test_auc"][i] == roc_auc_score(y[test], s)
            assert res[f"split{k}_test_pauc"][i] == roc_auc_score(y[test], s, max_fpr=0.1)
    assert gs.best_index_ == np.argmax(res["mean_test_pauc"])
    assert gs.best_score_ == res["mean_test_pauc"].max() > 0.8
    assert hasattr(gs.best_estimator_, "score_samples")


class _CountingDetector(OutlierMixin, BaseEstimator):
    calls = []

    def fit(self, X, y=None):
        self.mean_ = np.mean(X, axis=0)
        self.offset_ = 0.0
        return self

    def score_samples(self, X):
        type(self).calls.append(len(X))
        return -np.linalg.norm(X - self.mean_, axis=1)


def test_multimetric_scoring_computes_scores_once_per_fold():
    X, y = _blobs(2)
    _CountingDetector.calls.clear()
    scoring = {"auc": auc_scorer, "pauc": pauc_scorer, "pauc05": make_anomaly_scorer("pauc", max_fpr=0.05)}
    out = cross_validate(_CountingDetector(), X, y, cv=NormalTrainCV(4, random_state=0), scoring=scoring)
    assert len(_CountingDetector.calls) == 4  # shared cache: once per fold, not 3 times
    assert (out["test_auc"] > 0.9).all()


def test_cross_validate_parallel_and_pickle():
    X, y = _blobs(3)
    cv = NormalTrainCV(3, random_state=0)
    forest = IsolationForest(n_estimators=20, random_state=0)
    serial = cross_validate(forest, X, y, cv=cv, scoring=pauc_scorer)["test_score"]
    parallel = cross_validate(forest, X, y, cv=cv, scoring=pauc_scorer, n_jobs=2)["test_score"]
    np.testing.assert_array_equal(serial, parallel)
    for scorer in (auc_scorer, pauc_scorer):
        clone_ = pickle.loads(pickle.dumps(scorer))
        assert repr(clone_) == repr(scorer)
        assert clone_(_Oracle(1), X1, Y) == 1.0
    assert repr(pauc_scorer) == "make_anomaly_scorer('pauc', max_fpr=0.1)"


def test_custom_metric_gets_binary_labels_and_anomaly_scores():
    X, y = _blobs(4)
    forest = IsolationForest(random_state=0).fit(X[y == 0])
    scorer = make_anomaly_scorer(average_precision_score)
    labels = np.where(y == 1, "anomaly", "normal")
    assert scorer(forest, X, labels) == average_precision_score(y, -forest.score_samples(X))
    assert repr(scorer) == "make_anomaly_scorer('average_precision_score')"


def test_factory_errors():
    with pytest.raises(ValueError, match=r"one of \['auc', 'pauc'\] or a callable, got 'roc'"):
        make_anomaly_scorer("roc")
    with pytest.raises(TypeError, match="string or a callable, got int"):
        make_anomaly_scorer(3)
    with pytest.raises(TypeError, match="invalid arguments .*max_fpr.* for metric 'auc'"):
        make_anomaly_scorer("auc", max_fpr=0.1)
    with pytest.raises(ValueError, match=r"max_fpr must be a number in \(0, 1\]"):
        make_anomaly_scorer("pauc", max_fpr=1.5)


def test_estimator_without_response_and_bad_scores():
    with pytest.raises(AttributeError, match="needs an estimator with one of anomaly_score, score_samples"
                       ", decision_function; LinearRegression has none"):
        auc_scorer(LinearRegression().fit(X1[:, None], Y), X1[:, None], Y)
    with pytest.raises(ValueError, match="NaN or infinite"):
        auc_scorer(_Oracle(1), np.array([0, np.nan, 0, 1, 1]), Y)
    with pytest.raises(ValueError, match="only normal clips"):
        auc_scorer(_Oracle(1), X1, np.zeros(5))


def test_routed_metadata_reaches_the_response_method():
    class PerMachine:
        def anomaly_score(self, X, machine_id=None):
            # perfect only when told which machine each clip is from
            return np.asarray(X, float) - (np.asarray(machine_id) == "b") * 10

    X = np.array([0.0, 0, 1, 10, 10, 11])
    y = np.array([0, 0, 1, 0, 0, 1])
    ids = np.array(["a", "a", "a", "b", "b", "b"])
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_anomaly_scorer("auc").set_score_request(machine_id=True)
        assert scorer(PerMachine(), X, y, machine_id=ids) == 1.0
        with pytest.raises(TypeError, match=r"routed \['machine_id'\] but none of .* IsolationForest"):
            scorer(IsolationForest().fit(X[:, None]), X[:, None], y, machine_id=ids)
