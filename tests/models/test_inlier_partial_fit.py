"""partial_fit of the inlier detectors: clips added as a domain or section give what a refit on all gives."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skasd import GMMDetector, KNNDetector, MahalanobisDetector

rng = np.random.default_rng(0)
SRC, TGT, QUERY = rng.normal(size=(40, 5)), rng.normal(3, 1, size=(8, 5)), rng.normal(1.5, 2, size=(15, 5))
DETECTORS = [
    KNNDetector(3, metric="euclidean", domain_norm="zscore"),
    KNNDetector(2),  # cosine: the index holds normalised rows
    MahalanobisDetector(domain_norm="zscore"),
    GMMDetector(covariance_type="diag", random_state=0),
]


def _same(a, b):
    assert a.model_groups_ == b.model_groups_
    assert_allclose(a.offset_, b.offset_, rtol=1e-10)
    assert_allclose(a.model_scales_, b.model_scales_, rtol=1e-10)
    assert_allclose(a.band_profile_, b.band_profile_, rtol=1e-10, atol=1e-12)
    assert_allclose(a.model_profiles_, b.model_profiles_, rtol=1e-10, atol=1e-12)
    assert_allclose(a.score_samples(QUERY), b.score_samples(QUERY), rtol=1e-10)


@pytest.mark.parametrize("est", DETECTORS, ids=lambda e: repr(e))
def test_new_domain_equals_refit(est):
    adapted = est.fit(SRC, domain=["source"] * 40)
    before = adapted.offset_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapted.partial_fit(TGT, domain="target")
    ref = type(est)(**est.get_params()).fit(np.r_[SRC, TGT], domain=["source"] * 40 + ["target"] * 8)
    _same(adapted, ref)
    assert adapted.domains_.tolist() == ["source", "target"] and adapted.offset_ != before


@pytest.mark.parametrize("est", DETECTORS[:3], ids=lambda e: repr(e))
def test_more_clips_of_a_domain_and_a_new_section_equal_refit(est):
    half = ["a"] * 20 + ["b"] * 20
    grown = type(est)(**est.get_params()).fit(SRC[:30], domain=["source"] * 30, section=half[:30])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown.partial_fit(SRC[30:], domain="source", section="b")  # extends (b, source): 10 -> 20 clips
        grown.partial_fit(TGT, domain="target", section=["c"] * 8)  # a new section with its threshold
    ref = type(est)(**est.get_params()).fit(np.r_[SRC, TGT], domain=["source"] * 40 + ["target"] * 8,
                                            section=half + ["c"] * 8)
    _same(grown, ref)
    assert grown.section_offsets_ == pytest.approx(ref.section_offsets_, rel=1e-10)
    assert grown.sections_.tolist() == ["a", "b", "c"]


def test_3d_log_mel_input_and_the_unfitted_call():
    X = rng.normal(size=(30, 6, 12))
    a = KNNDetector(2, metric="euclidean", domain_norm="zscore").partial_fit(X[:20], domain="source")  # = fit
    a.partial_fit(X[20:] + 2, domain="target")
    b = KNNDetector(2, metric="euclidean", domain_norm="zscore").fit(np.r_[X[:20], X[20:] + 2],
                                                                    domain=["source"] * 20 + ["target"] * 10)
    assert_allclose(a.offset_, b.offset_, rtol=1e-10)
    assert_allclose(a.band_profile_, b.band_profile_, rtol=1e-10)
    assert_allclose(a.score_samples(X), b.score_samples(X), rtol=1e-10)


def test_bad_partial_fit_calls_name_the_problem():
    est = KNNDetector(metric="euclidean").fit(SRC, domain=["source"] * 40)
    with pytest.raises(ValueError, match="fitted with domain labels, so partial_fit needs domain="):
        est.partial_fit(TGT)
    with pytest.raises(ValueError, match="fitted without section labels"):
        est.partial_fit(TGT, domain="target", section="x")
    with pytest.raises(ValueError, match="5 features"):
        est.partial_fit(TGT[:, :3], domain="target")
    with pytest.raises(ValueError, match="at least 2 normal training clips in domain 'target'"):
        est.partial_fit(TGT[:1], domain="target")
    old = MahalanobisDetector().fit(SRC)
    del old.model_rows_  # as a model file of an earlier skasd
    with pytest.raises(ValueError, match="without its training rows"):
        old.partial_fit(TGT)


@pytest.mark.parametrize("est, change", [
    (KNNDetector(3, metric="euclidean"), {"n_neighbors": 1}),
    (MahalanobisDetector(), {"covariance": "empirical"}),
    (GMMDetector(covariance_type="diag", random_state=0), {"n_components": 2}),
], ids=["knn", "mahalanobis", "gmm"])
def test_a_parameter_changed_since_fit_is_refused(est, change):
    """The untouched groups keep the fit's models: a changed hyperparameter would mix two models."""
    est = est.fit(SRC, domain=["source"] * 40)
    name = next(iter(change))
    est.set_params(**change)
    with pytest.raises(ValueError, match=f"partial_fit: {name}=.* differ from the fit's"):
        est.partial_fit(TGT, domain="target")
    est.set_params(**{name: est._group_params[name]}, contamination=0.2)  # the threshold rule may change
    est.partial_fit(TGT, domain="target")
    assert est.domains_.tolist() == ["source", "target"]


def test_warns_when_new_clips_look_anomalous():
    est = MahalanobisDetector().fit(SRC, domain=["source"] * 40)
    normal, odd = rng.normal(size=(8, 5)), rng.normal(6, 1, size=(4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        type(est)().fit(SRC, domain=["source"] * 40).partial_fit(normal, domain="source")  # 10 % may be above
    with pytest.warns(UserWarning, match=r"4 of the 12 added clips score above the threshold the model had before"):
        est.partial_fit(np.r_[normal, odd], domain="source")


def test_a_model_file_of_an_earlier_release_takes_new_clips():
    """tests/fixtures/knn_sections.skasd (skasd 0.1: no domain normalisation scales, no band profiles)."""
    from pathlib import Path

    from skasd import load

    pipe = load(Path(__file__).parents[1] / "fixtures" / "knn_sections.skasd")
    det = pipe[-1]
    rows = np.concatenate([det._model_rows(i) for i in (1, 3)])  # the target clips of both sections
    before = det.offset_
    det.partial_fit(rows[:4] * 1.01, domain="target", section="id_00")
    assert det.model_groups_ == [("id_00", "source"), ("id_00", "target"), ("id_02", "source"), ("id_02", "target")]
    assert det.offset_ != before and not hasattr(det, "model_profiles_")
    assert len(det._model_rows(1)) == len(rows) // 2 + 4
