import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

from skasd.metrics import auc_scorer, make_anomaly_scorer, pauc_scorer
from skasd.model_selection import DCASESplit, NormalTrainCV


def _check_invariants(cv, y, groups=None):
    y = np.asarray(y)
    folds = list(cv.split(np.zeros((len(y), 1)), y, groups))
    assert len(folds) == cv.get_n_splits()
    tested = np.zeros(len(y), int)
    for train, test in folds:
        assert (y[train] == 0).all(), "anomaly in a training fold"
        assert set(y[test]) == {0, 1}, "test fold lacks a class"
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == len(y)
        assert np.array_equal(np.flatnonzero(y == 1), test[y[test] == 1])  # all anomalies
        tested[test] += 1
    assert (tested[y == 0] == 1).all(), "every normal is tested exactly once"
    assert (tested[y == 1] == len(folds)).all()
    return folds


def test_invariants_over_random_labels():
    rng = np.random.default_rng(0)
    n_grouped = 0
    for trial in range(300):
        n_splits = int(rng.integers(2, 6))
        n = int(rng.integers(n_splits + 1, 60))
        y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
        order = rng.permutation(n)
        y[order[:n_splits]], y[order[n_splits]] = 0, 1  # enough normals, one anomaly
        shuffle = bool(trial % 2)
        cv = NormalTrainCV(n_splits, shuffle=shuffle, random_state=trial if shuffle else None)
        _check_invariants(cv, y)
        groups = rng.integers(0, 2, n)
        if min(np.sum((y == 0) & (groups == g)) for g in (0, 1)) >= n_splits:
            n_grouped += 1
            for train, test in _check_invariants(cv, y, groups):
                assert set(groups[train]) == set(groups[test][y[test] == 0]) == {0, 1}
        else:
            with pytest.raises(ValueError, match="fewer than n_splits"):
                list(cv.split(y, y, groups))
    assert n_grouped > 50


def test_normal_folds_follow_kfold():
    y = np.array([0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0])
    normals = np.flatnonzero(y == 0)
    cv = NormalTrainCV(3, random_state=4)
    kfold = KFold(3, shuffle=True, random_state=4).split(normals)
    for (train, test), (k_train, k_test) in zip(cv.split(y, y), kfold):
        assert np.array_equal(train, normals[k_train])
        assert np.array_equal(test, np.sort(np.r_[normals[k_test], [1, 4, 9]]))
    unshuffled = [test for _, test in NormalTrainCV(2, shuffle=False).split(y, y)]
    assert np.array_equal(unshuffled[0], [0, 1, 2, 3, 4, 5, 9])
    # reproducible for a seed, different across seeds
    split = lambda seed: [t.tolist() for _, t in NormalTrainCV(3, random_state=seed).split(y, y)]
    assert split(0) == split(0) and split(0) != split(1)


def test_string_labels():
    y = np.array(["normal"] * 8 + ["anomaly"] * 2)
    folds = list(NormalTrainCV(4, random_state=0).split(y, y))
    assert all((y[train] == "normal").all() for train, _ in folds)
    assert all({8, 9} <= set(test) for _, test in folds)


def test_groups_stratify_every_fold():
    rng = np.random.default_rng(1)
    ids = np.repeat(["id_00", "id_02", "id_04"], [9, 30, 13])
    y = (rng.random(len(ids)) < 0.2).astype(int)
    y[[0, 9, 39]] = 0
    cv = NormalTrainCV(4, random_state=0)
    for train, test in _check_invariants(cv, y, groups=ids):
        assert set(ids[train]) == set(ids[test][y[test] == 0]) == set(ids)
    for g in set(ids):
        per_fold = [np.sum((ids[test] == g) & (y[test] == 0)) for _, test in cv.split(y, y, ids)]
        assert max(per_fold) - min(per_fold) <= 1
    # unshuffled: plain folds are contiguous (id_00 only in the first), grouped ones are not
    plain = [set(ids[test][y[test] == 0]) for _, test in NormalTrainCV(4, shuffle=False).split(y, y)]
    assert plain[0] >= {"id_00"} and all("id_00" not in s for s in plain[1:])
    for _, test in NormalTrainCV(4, shuffle=False).split(y, y, ids):
        assert set(ids[test][y[test] == 0]) == set(ids)


@pytest.mark.parametrize(
    "cv, y, groups, match",
    [
        (NormalTrainCV(), None, None, r"needs y \(1 = anomaly, 0 = normal\)"),
        (NormalTrainCV(2), [0, 0, 0], None, "holds no anomalies"),
        (NormalTrainCV(5), [0, 0, 0, 0, 1], None, r"n_splits=5\) needs at least 5 normal clips, got 4"),
        (NormalTrainCV(1), [0, 0, 1], None, "n_splits must be at least 2, got 1"),
        (NormalTrainCV(2.5), [0, 0, 1], None, "n_splits must be an integer"),
        (NormalTrainCV(2, shuffle=False, random_state=0), [0, 0, 1], None, "shuffle=False"),
        (NormalTrainCV(2), [1, -1, 1], None, r"found values \[-1\]"),
        (NormalTrainCV(2), ["normal", "normal", None], None, "unlabelled"),
        (NormalTrainCV(2), [0, 0, 0, 0, 1], ["a", "a", "a", "b", "b"], r"groups \['b'\] have fewer than n_splits=2"),
    ],
)
def test_normal_train_cv_errors(cv, y, groups, match):
    n = 3 if y is None else len(y)
    with pytest.raises(ValueError, match=match):
        list(cv.split(np.zeros((n, 1)), y, groups))


def test_length_mismatch_and_get_n_splits():
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        list(NormalTrainCV(2).split(np.zeros((4, 1)), [0, 0, 1]))
    assert NormalTrainCV(7).get_n_splits() == 7
    assert repr(NormalTrainCV(3, random_state=0)) == "NormalTrainCV(n_splits=3, random_state=0, shuffle=True)"


def _blobs(seed=0, ids=("id_00", "id_02")):
    rng = np.random.default_rng(seed)
    n = 60
    X = np.r_[rng.normal(size=(n, 3)), rng.normal(3.0, 1.0, size=(10, 3))]
    y = np.r_[np.zeros(n, int), np.ones(10, int)]
    groups = np.array(ids)[rng.integers(0, len(ids), len(y))]
    return X, y, groups


def test_groups_reach_the_splitter_from_cross_validate_and_grid_search():
    X, y, ids = _blobs()
    cv = NormalTrainCV(3, random_state=0)
    expected = [test for _, test in cv.split(X, y, ids)]
    assert any(not np.array_equal(a, b) for a, b in zip(expected, [t for _, t in cv.split(X, y)]))
    forest = IsolationForest(n_estimators=10, random_state=0)
    out = cross_validate(forest, X, y, groups=ids, cv=cv, scoring=auc_scorer, return_indices=True)
    assert all(np.array_equal(a, b) for a, b in zip(out["indices"]["test"], expected))
    with sklearn.config_context(enable_metadata_routing=True):  # groups requested by default
        out = cross_validate(forest, X, y, params={"groups": ids}, cv=cv, scoring=auc_scorer, return_indices=True)
    assert all(np.array_equal(a, b) for a, b in zip(out["indices"]["test"], expected))
    gs = GridSearchCV(forest, {"max_samples": [16, 32]}, scoring=pauc_scorer, cv=cv).fit(X, y, groups=ids)
    assert gs.best_score_ > 0.8


# --- metadata routing of machine IDs ------------------------------------------------------

_LOG = []


class _PerMachineCentroid(OutlierMixin, BaseEstimator):
    """Distance to the training mean of the clip's own machine; needs ``machine_id``."""

    def __init__(self, shrink=0.0):
        self.shrink = shrink

    def fit(self, X, y=None, machine_id=None):
        X = check_array(X)
        if machine_id is None or len(machine_id) != len(X):
            raise ValueError("machine_id missing or of the wrong length")
        machine_id = np.asarray(machine_id)
        _LOG.append(("fit", machine_id))
        self.centers_ = {g: (1 - self.shrink) * X[machine_id == g].mean(0) for g in np.unique(machine_id)}
        self.offset_ = -1.0
        return self

    def score_samples(self, X, machine_id=None):
        check_is_fitted(self)
        X = check_array(X)
        if machine_id is None or len(machine_id) != len(X):
            raise ValueError("machine_id missing or of the wrong length")
        machine_id = np.asarray(machine_id)
        _LOG.append(("score", machine_id))
        return -np.array([np.linalg.norm(x - self.centers_[g]) for x, g in zip(X, machine_id)])

    def decision_function(self, X, machine_id=None):
        return self.score_samples(X, machine_id=machine_id) - self.offset_


def _two_machines(seed=0):
    """Anomalies of each machine sound like the *other* machine's normals: only a
    detector that knows each clip's machine finds them."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(["id_00", "id_02"], 40)
    centre = np.where(ids == "id_00", 0.0, 4.0)[:, None]
    y = np.zeros(80, int)
    y[[3, 11, 20, 45, 52, 70]] = 1
    X = rng.normal(size=(80, 2)) * 0.3 + np.where(y[:, None] == 1, 4.0 - centre, centre)
    return X, y, ids


@pytest.mark.parametrize("in_pipeline", [False, True])
def test_machine_id_routed_to_fit_and_scoring(in_pipeline):
    X, y, ids = _two_machines()
    cv = NormalTrainCV(4, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        detector = _PerMachineCentroid().set_fit_request(machine_id=True)
        if in_pipeline:  # Pipeline.score_samples routes nothing: the scorer uses decision_function
            detector.set_decision_function_request(machine_id=True)
            model, param = Pipeline([("scale", StandardScaler()), ("det", detector)]), "det__shrink"
        else:
            model, param = detector, "shrink"
        scoring = {name: make_anomaly_scorer(name).set_score_request(machine_id=True) for name in ("auc", "pauc")}
        cv.set_split_request(groups="machine_id")  # the same ids stratify the folds
        _LOG.clear()
        gs = GridSearchCV(model, {param: [0.0, 0.5]}, scoring=scoring, refit="pauc", cv=cv)
        gs.fit(X, y, machine_id=ids)

    folds = list(cv.split(X, y, groups=ids))
    expected = []
    for _ in range(2):  # candidates
        for train, test in folds:
            expected += [("fit", ids[train]), ("score", ids[test]), ("score", ids[test])]
    expected.append(("fit", ids))  # refit on everything
    assert [k for k, _ in _LOG] == [k for k, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(_LOG, expected))
    assert gs.best_params_ == {param: 0.0}
    assert gs.cv_results_["mean_test_auc"][0] == 1.0
    # the pooled IsolationForest, which cannot know the machine, is fooled
    pooled = cross_validate(IsolationForest(random_state=0), X, y, cv=cv, scoring=auc_scorer)
    assert pooled["test_score"].mean() < 0.8


def test_without_routing_groups_still_reach_the_splitter():
    X, y, ids = _two_machines()
    gs = GridSearchCV(IsolationForest(n_estimators=10, random_state=0), {"max_features": [1, 2]},
                      scoring={"auc": auc_scorer, "pauc": pauc_scorer}, refit="auc",
                      cv=NormalTrainCV(4, random_state=0)).fit(X, y, groups=ids)
    assert len(gs.cv_results_["params"]) == 2


# --- DCASESplit ----------------------------------------------------------------------------


def _frame():
    return pd.DataFrame({
        "path": [f"clip{i}.wav" for i in range(8)],
        "split": ["train", "train", "train", "test", "test", "train", "test", "test"],
        "label": ["normal", "normal", "normal", "normal", "anomaly", "anomaly", "anomaly", "normal"],
    })


def test_dcase_split_from_frame():
    df = _frame()
    cv = DCASESplit.from_frame(df)
    assert cv.get_n_splits() == 1
    [(train, test)] = list(cv.split(df["path"].tolist(), df["label"]))
    assert train.tolist() == [0, 1, 2]  # the train-folder anomaly (5) is left out
    assert test.tolist() == [3, 4, 6, 7]
    [(train, _)] = list(DCASESplit(df["split"]).split(df["path"]))
    assert train.tolist() == [0, 1, 2, 5]  # y=None: all train-folder clips


def test_dcase_split_in_grid_search():
    X, y, _ = _blobs(1)
    folds = np.where(np.arange(len(y)) < 40, "train", "test")
    gs = GridSearchCV(IsolationForest(n_estimators=10, random_state=0), {"max_features": [1, 3]},
                      scoring=auc_scorer, cv=DCASESplit(folds)).fit(X, y)
    assert "split1_test_score" not in gs.cv_results_
    forest = IsolationForest(n_estimators=10, random_state=0, **gs.best_params_).fit(X[:40])
    assert gs.best_score_ == auc_scorer(forest, X[40:], y[40:])


@pytest.mark.parametrize(
    "folds, y, match",
    [
        (["train", "test"], [0, 1, 0], "got 2 fold labels for 3 clips"),
        (["train", None, "test"], None, r"must be 'train' or 'test'; found \[None\]"),
        (["test", "test", "test"], None, "no training clips"),
        (["train", "train", "test"], [1, 1, 0], "no training clips"),
        (["train", "train", "train"], None, "no 'test' clips"),
        (["train", "test", "test"], [0, 2, 1], r"found values \[2\]"),
    ],
)
def test_dcase_split_errors(folds, y, match):
    with pytest.raises(ValueError, match=match):
        list(DCASESplit(folds).split(np.zeros((3, 1)), y))


def test_from_frame_needs_split_column():
    with pytest.raises(ValueError, match="'split' column"):
        DCASESplit.from_frame(pd.DataFrame({"path": ["a"]}))


def test_dcase_split_on_shared_slider_folder(slider_dir):
    from skasd.datasets import load_dcase

    df = load_dcase(slider_dir)
    [(train, test)] = list(DCASESplit.from_frame(df).split(df["path"].tolist(), df["label"]))
    assert len(train) == 75 and (df["split"].iloc[train] == "train").all()
    assert (df["label"].iloc[train] == "normal").all()
    assert df["label"].iloc[test].tolist() == ["anomaly"]  # the one test clip here
