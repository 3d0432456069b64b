import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

import skasd
from skasd.models import DenseAE, KNNDetector, MahalanobisDetector, SectionwiseDetector

_KNN_TRAIN_SELF = (
    "as KNNDetector itself: its threshold comes from leave-one-out training scores while "
    "predict(X_train) scores each training clip against itself"
)


@parametrize_with_checks(
    [SectionwiseDetector(MahalanobisDetector()), SectionwiseDetector(KNNDetector())],
    expected_failed_checks=lambda est: dict.fromkeys(["check_outliers_train", "check_outliers_fit_predict"],
                                                     _KNN_TRAIN_SELF) if isinstance(est.estimator, KNNDetector) else {},
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _two_sections(seed=0):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(0, 1, (40, 4)), rng.normal(0, 4, (40, 4)) + 20]
    section = np.array(["id_00"] * 40 + ["id_02"] * 40, dtype=object)
    test = np.r_[rng.normal(0, 1, (10, 4)), rng.normal(0, 4, (10, 4)) + 20, rng.normal(0, 1, (5, 4)) + 6]
    test_section = np.array(["id_00"] * 10 + ["id_02"] * 10 + ["id_00"] * 5, dtype=object)
    return X, section, test, test_section


def test_each_section_is_its_own_model_and_threshold():
    X, section, test, test_section = _two_sections()
    det = SectionwiseDetector(MahalanobisDetector(), contamination=0.1).fit(X, section=section)
    assert det.sections_.tolist() == ["id_00", "id_02"]
    for i, label in enumerate(["id_00", "id_02"]):
        own = MahalanobisDetector().fit(X[section == label])
        rows = test_section == label
        assert_allclose(det.score_samples(test[rows], section=test_section[rows]), own.score_samples(test[rows]))
        assert det.section_offsets_[label] == pytest.approx(np.percentile(own.score_samples(X[section == label]), 10))
    # predict: each clip against its own section's threshold
    expected = np.where(det.score_samples(test, section=test_section)
                        < [det.section_offsets_[s] for s in test_section], -1, 1)
    assert_array_equal(det.predict(test, section=test_section), expected)
    assert (det.predict(test[-5:], section=test_section[-5:]) == -1).all()
    # without section: the best score over the sections' models
    assert_allclose(det.score_samples(test), np.max([e.score_samples(test) for e in det.estimators_], axis=0))


def test_errors():
    X, section, test, test_section = _two_sections()
    with pytest.raises(NotFittedError):
        SectionwiseDetector(KNNDetector()).score_samples(test)
    det = SectionwiseDetector(KNNDetector()).fit(X, section=section)
    with pytest.raises(ValueError, match=r"sections not seen in fit: \['id_04'\]"):
        det.score_samples(test[:2], section=["id_04", "id_00"])
    with pytest.raises(ValueError, match="one label per clip"):
        SectionwiseDetector(KNNDetector()).fit(X, section=section[:3])


def test_autoencoder_per_section_round_trips_through_a_model_file(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 16, 40)).astype(np.float32)
    section = np.array(["a"] * 6 + ["b"] * 6, dtype=object)
    det = SectionwiseDetector(DenseAE(max_epochs=1, random_state=0)).fit(X, section=section)
    assert len(det.estimators_) == 2
    skasd.save(det, tmp_path / "m.skasd")
    back = skasd.load(tmp_path / "m.skasd")
    assert_allclose(back.score_samples(X, section=section), det.score_samples(X, section=section), rtol=1e-6)
    assert back.section_offsets_ == pytest.approx(det.section_offsets_)
