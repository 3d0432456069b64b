"""Per-section fitting of KNNDetector, MahalanobisDetector and GMMDetector: equal to one
detector per section fitted by hand, per-section thresholds, the no-section fallback,
domains within sections, metadata routing, errors."""

import numpy as np
import pytest
import scipy.spatial.distance
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skasd import load, save
from skasd.models import GMMDetector, KNNDetector, MahalanobisDetector

MAKERS = {
    "knn": lambda **kw: KNNDetector(3, metric="euclidean", **kw),
    "maha": lambda **kw: MahalanobisDetector(**kw),
    "gmm": lambda **kw: GMMDetector(2, covariance_type="diag", random_state=0, **kw),
}
SECTIONS = ("id_00", "id_02", "id_04")


@pytest.fixture(scope="module")
def data():
    """Three sections of different centre and spread, clips shuffled across sections."""
    rng = np.random.default_rng(0)
    sizes, scales = (40, 30, 25), (1.0, 3.0, 0.5)
    X = np.concatenate([rng.normal(size=(n, 4)) * s + 4 * i for i, (n, s) in enumerate(zip(sizes, scales))])
    section = np.repeat(SECTIONS, sizes)
    order = rng.permutation(len(X))
    test = rng.normal(size=(30, 4)) * 2 + rng.integers(0, 3, size=(30, 1)) * 4
    return X[order], section[order], test, rng.choice(SECTIONS, size=len(test))


def _train_scores(det, X):
    """score_samples of a detector's own training clips behind its offset_: leave-one-out
    for k-NN (brute force), in-sample otherwise."""
    if isinstance(det, KNNDetector):
        D = scipy.spatial.distance.cdist(X, X)
        np.fill_diagonal(D, np.inf)
        return -np.sort(D, axis=1)[:, : det.n_neighbors].mean(axis=1)
    return det.score_samples(X)


@pytest.mark.parametrize("name", list(MAKERS))
def test_per_section_fit_equals_one_detector_per_section(name, data):
    X, section, test, test_section = data
    make = MAKERS[name]
    est = make(contamination=0.1).fit(X, section=section)
    by_hand = {s: make(contamination=0.1).fit(X[section == s]) for s in SECTIONS}
    assert est.sections_.tolist() == list(SECTIONS) and est.domains_ is None
    assert est.model_groups_ == [(s, None) for s in SECTIONS]
    expected = np.empty(len(test))
    for s in SECTIONS:
        rows = test_section == s
        expected[rows] = by_hand[s].score_samples(test[rows])
        assert est.section_offsets_[s] == pytest.approx(by_hand[s].offset_, rel=1e-12)
        assert_allclose(est.decision_function(test[rows], section=test_section[rows]),
                        by_hand[s].decision_function(test[rows]), rtol=1e-12)
        assert_array_equal(est.predict(test[rows], section=[s] * rows.sum()), by_hand[s].predict(test[rows]))
    assert_allclose(est.score_samples(test, section=test_section), expected, rtol=1e-12)
    assert_allclose(est.anomaly_score(test, section=test_section), -expected, rtol=1e-12)
    # offset_: every training clip scored by its own section's model
    train = np.concatenate([_train_scores(by_hand[s], X[section == s]) for s in SECTIONS])
    assert est.offset_ == pytest.approx(np.percentile(train, 10), rel=1e-12)
    # "auto" (Gamma rule) per section too
    auto = make().fit(X, section=section)
    for s in SECTIONS:
        assert auto.section_offsets_[s] == pytest.approx(make().fit(X[section == s]).offset_, rel=1e-12)


@pytest.mark.parametrize("name", list(MAKERS))
def test_without_section_the_nearest_section_scores(name, data):
    """No section at scoring: the minimum anomaly over all sections' models, against offset_."""
    X, section, test, _ = data
    est = MAKERS[name]().fit(X, section=section)
    per_section = [MAKERS[name]().fit(X[section == s]).score_samples(test) for s in SECTIONS]
    assert_allclose(est.score_samples(test), np.max(per_section, axis=0), rtol=1e-12)
    assert_allclose(est.decision_function(test), est.score_samples(test) - est.offset_)
    assert_array_equal(est.predict(test), np.where(est.score_samples(test) < est.offset_, -1, 1))


def test_knn_1_without_section_is_one_global_knn(data):
    X, section, test, _ = data
    assert_allclose(KNNDetector().fit(X, section=section).score_samples(test), KNNDetector().fit(X).score_samples(test))


@pytest.mark.parametrize("name", list(MAKERS))
def test_sections_and_domains(name, data):
    """One model per (section, domain): the by-hand domain-aware detector of each section.
    id_04 has no target clips: it gets one model."""
    X, section, test, test_section = data
    rng = np.random.default_rng(1)
    domain = np.where((section != "id_04") & (rng.random(len(X)) < 0.3), "target", "source")
    X = X + (domain == "target")[:, None] * [3, 0, 0, 0]
    est = MAKERS[name]().fit(X, domain=domain, section=section)
    assert est.model_groups_ == [("id_00", "source"), ("id_00", "target"), ("id_02", "source"),
                                 ("id_02", "target"), ("id_04", "source")]
    assert est.domains_.tolist() == ["source", "target"]
    for s in SECTIONS:
        rows, own = section == s, test_section == s
        ref = MAKERS[name]().fit(X[rows], domain=domain[rows])
        assert_allclose(est.decision_function(test[own], section=test_section[own]),
                        ref.decision_function(test[own]), rtol=1e-12)
    with pytest.raises(ValueError, match=r"at least 4 normal training clips in section 'id_04', domain 'target'.*got 1"):
        KNNDetector(3).fit(X, domain=np.where(np.arange(len(X)) == np.flatnonzero(section == "id_04")[0],
                                              "target", domain), section=section)


def test_per_section_thresholds_catch_the_quiet_sections_anomalies():
    """Two sections whose k-NN distances differ by 10x: anomalies of the quiet section lie
    far beyond its own training distances but within the loud section's, so the threshold
    of all training clips (offset_) misses them and the section's threshold flags them."""
    rng = np.random.default_rng(0)
    section = np.repeat(["quiet", "loud"], 60)
    X = rng.normal(size=(120, 6)) * np.where(section == "quiet", 1.0, 10.0)[:, None]
    est = KNNDetector(3, metric="euclidean").fit(X, section=section)
    anomalies = rng.normal(size=(10, 6)) + rng.choice([-1, 1], size=(10, 6)) * 4
    normals = rng.normal(size=(30, 6))
    quiet = ["quiet"] * 10
    assert (est.predict(anomalies, section=quiet) == -1).all()
    assert (est.score_samples(anomalies, section=quiet) >= est.offset_).all()  # global threshold: all missed
    assert (est.predict(normals, section=["quiet"] * 30) == -1).mean() < 0.25
    ratio = est.section_offsets_["loud"] / est.section_offsets_["quiet"]
    assert 8 < ratio < 12, ratio


@pytest.mark.parametrize("name", list(MAKERS))
def test_labels_drop_anomalies_with_their_sections(name, data):
    X, section, test, test_section = data
    Xa = np.concatenate([X, X[:5] + 30])
    sa = np.concatenate([section, section[:5]])
    y = np.r_[np.zeros(len(X)), np.ones(5)]
    est, ref = MAKERS[name]().fit(Xa, y, section=sa), MAKERS[name]().fit(X, section=section)
    assert_allclose(est.score_samples(test, section=test_section), ref.score_samples(test, section=test_section))
    assert est.section_offsets_ == pytest.approx(ref.section_offsets_)
    assert_array_equal(est.fit_predict(Xa, y, section=sa), est.predict(Xa, section=sa))


def test_section_is_routed_in_a_pipeline(data):
    X, section, test, test_section = data
    with sklearn.config_context(enable_metadata_routing=True):
        det = (KNNDetector(3).set_fit_request(section=True).set_decision_function_request(section=True)
               .set_predict_request(section=True))
        pipe = make_pipeline(StandardScaler(), det).fit(X, section=section)
        manual = KNNDetector(3).fit(StandardScaler().fit_transform(X), section=section)
        Z = pipe[0].transform(test)
        assert pipe[-1].sections_.tolist() == list(SECTIONS)
        assert_allclose(pipe.decision_function(test, section=test_section),
                        manual.decision_function(Z, section=test_section))
        assert_array_equal(pipe.predict(test, section=test_section), manual.predict(Z, section=test_section))
        # Pipeline.score_samples routes nothing: the nearest-section fallback
        assert_allclose(pipe.score_samples(test), manual.score_samples(Z))
        assert_array_equal(clone(pipe).fit_predict(X, section=section), manual.predict(
            StandardScaler().fit_transform(X), section=section))


@pytest.mark.parametrize("name", list(MAKERS))
def test_section_errors(name, data):
    X, section, test, _ = data
    est = MAKERS[name]().fit(X, section=section)
    with pytest.raises(ValueError, match=r"sections not seen in fit: \['id_09'\]; fitted sections: "
                                         r"\['id_00', 'id_02', 'id_04'\]"):
        est.predict(test[:3], section=["id_00", "id_09", "id_09"])
    with pytest.raises(ValueError, match=r"section must hold one label per clip \(3\); got shape \(2,\)"):
        est.score_samples(test[:3], section=["id_00", "id_02"])
    with pytest.raises(ValueError, match="was fitted without sections"):
        MAKERS[name]().fit(X).decision_function(test, section=np.repeat("id_00", len(test)))
    with pytest.raises(ValueError, match="section contains missing values"):
        MAKERS[name]().fit(X, section=np.append(section[:-1], None))
    with pytest.raises(ValueError, match=r"section must hold one label per clip \(95\)"):
        MAKERS[name]().fit(X, section=section[:-1])
    with pytest.raises(ValueError, match="at least .* normal training clips in section 'id_09'.*got 1"):
        MAKERS[name]().fit(X, section=np.append(section[:-1], "id_09"))


def test_integer_sections_and_persistence(data, tmp_path):
    """Machine IDs as integers; the fitted sections survive skasd's save/load."""
    X, section, test, test_section = data
    codes = {s: int(s[-2:]) for s in SECTIONS}
    to_int = np.vectorize(codes.get)
    est = KNNDetector(3).fit(X, section=to_int(section))
    assert est.sections_.tolist() == [0, 2, 4] and sorted(est.section_offsets_) == [0, 2, 4]
    by_label = KNNDetector(3).fit(X, section=section)
    assert_allclose(est.decision_function(test, section=to_int(test_section)),
                    by_label.decision_function(test, section=test_section))
    back = load(save(est, tmp_path / "knn.skasd"))
    assert_array_equal(back.decision_function(test, section=to_int(test_section).tolist()),
                       est.decision_function(test, section=to_int(test_section)))


def test_docs_pipeline_shared_embedding_per_section_knn():
    """docs/inlier.rst "Sections": one ClassifierEmbedding for all sections, routed
    machine_id/domain/section, scores from the last step on the embedding."""
    from skasd.models import ClassifierEmbedding

    rng = np.random.default_rng(0)
    spectra = rng.normal(size=(3, 16, 1)) * 4 - 40
    X = np.concatenate([s + rng.normal(size=(12, 16, 40)) for s in spectra]).astype(np.float32)
    ids, domain = np.repeat(SECTIONS, 12), np.tile(np.repeat(["source", "target"], [8, 4]), 3)
    train = np.tile(np.arange(12) % 6 != 5, 3)  # every 6th clip is a test clip
    emb = ClassifierEmbedding(embed_dim=8, channels=(8,), patch_frames=16, patch_hop=8, max_epochs=2, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        knn = (KNNDetector(2).set_fit_request(domain=True, section=True)
               .set_decision_function_request(section=True).set_predict_request(section=True))
        pipe = make_pipeline(emb.set_fit_request(machine_id=True), knn)
        pipe.fit(X[train], machine_id=ids[train], domain=domain[train], section=ids[train])
        labels = pipe.predict(X[~train], section=ids[~train])
        scores = pipe[-1].anomaly_score(pipe[:-1].transform(X[~train]), section=ids[~train])
    assert pipe[-1].model_groups_ == [(s, d) for s in SECTIONS for d in ("source", "target")]
    Z = pipe[0].transform(X)
    for s in SECTIONS:
        fit, test = train & (ids == s), ~train & (ids == s)
        ref = KNNDetector(2).fit(Z[fit], domain=domain[fit])
        own = ids[~train] == s
        assert_allclose(scores[own], ref.anomaly_score(Z[test]), rtol=1e-6)
        assert_array_equal(labels[own], ref.predict(Z[test]))
