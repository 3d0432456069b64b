"""KNNDetector, MahalanobisDetector, GMMDetector: sklearn checks, scores against
numpy/scipy references, the domain rule, metadata routing, input errors."""

import numpy as np
import pytest
import scipy.signal
import scipy.spatial.distance
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.covariance import LedoitWolf
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from skasd import ClipStatsTransformer
from skasd import LogMelTransformer
from skasd.datasets import load_dcase, make_machine_sounds
from skasd.metrics import auc_score as auc
from skasd.metrics import dcase_report
from skasd.models import DenseAE
from skasd.models import GMMDetector, KNNDetector, MahalanobisDetector

DETECTORS = [KNNDetector, MahalanobisDetector, GMMDetector]

_KNN_TRAIN_SELF = (
    "by design the threshold comes from leave-one-out training scores while predict(X_train) "
    "scores each training clip against itself (distance 0 to its own entry), so fitting and "
    "predicting the same clips flags fewer than `contamination` of them"
)


def _expected_failures(estimator):
    if isinstance(estimator, KNNDetector):
        return dict.fromkeys(["check_outliers_train", "check_outliers_fit_predict"], _KNN_TRAIN_SELF)
    return {}


@parametrize_with_checks(
    [
        KNNDetector(),
        KNNDetector(n_neighbors=3, metric="euclidean"),
        MahalanobisDetector(),
        MahalanobisDetector(covariance=0.2),
        GMMDetector(random_state=0),
        KNNDetector(domain_norm="zscore"),
        MahalanobisDetector(domain_norm="zscore"),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 5)) * [1, 2, 3, 1, 1]
    test = rng.normal(size=(20, 5)) * 2
    return train, test


# ------------------------------------------------------------------ scores vs references
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 4])
def test_knn_matches_brute_force(data, metric, k):
    train, test = data
    knn = KNNDetector(n_neighbors=k, metric=metric).fit(train)
    D = scipy.spatial.distance.cdist(test, train, metric=metric)
    expected = np.sort(D, axis=1)[:, :k].mean(axis=1)
    assert_allclose(knn.anomaly_score(test), expected, rtol=1e-10, atol=1e-12)
    # the threshold comes from leave-one-out training scores (own distance excluded)
    Dt = scipy.spatial.distance.cdist(train, train, metric=metric)
    np.fill_diagonal(Dt, np.inf)
    loo = np.sort(Dt, axis=1)[:, :k].mean(axis=1)
    est = KNNDetector(n_neighbors=k, metric=metric, contamination=0.1).fit(train)
    assert est.offset_ == pytest.approx(np.percentile(-loo, 10))


def test_mahalanobis_matches_scipy(data):
    train, test = data
    maha = MahalanobisDetector(covariance="empirical").fit(train)
    VI = np.linalg.inv(np.cov(train, rowvar=False, bias=True))
    mu = train.mean(axis=0)
    expected = [scipy.spatial.distance.mahalanobis(x, mu, VI) for x in test]
    assert_allclose(maha.anomaly_score(test), expected, rtol=1e-8)
    lw = LedoitWolf().fit(train)
    expected = [scipy.spatial.distance.mahalanobis(x, lw.location_, lw.precision_) for x in test]
    assert_allclose(MahalanobisDetector().fit(train).anomaly_score(test), expected, rtol=1e-8)


def test_gmm_is_minus_log_likelihood(data):
    train, test = data
    gmm = GMMDetector(n_components=2, covariance_type="diag", random_state=0).fit(train)
    ref = GaussianMixture(n_components=2, covariance_type="diag", random_state=0).fit(train)
    assert_allclose(gmm.score_samples(test), ref.score_samples(test), rtol=1e-10)
    assert gmm.n_iter_ == ref.n_iter_


@pytest.mark.parametrize("cls", DETECTORS)
def test_outlier_api(cls, data):
    train, test = data
    est = (KNNDetector(metric="euclidean") if cls is KNNDetector else cls()).fit(train)
    s = est.score_samples(test)
    assert s.shape == (len(test),) and s.dtype == np.float64
    assert_array_equal(est.anomaly_score(test), -s)
    assert_array_equal(est.decision_function(test), s - est.offset_)
    assert_array_equal(est.predict(test), np.where(s < est.offset_, -1, 1))
    far = train.mean(axis=0) + 50 * train.std(axis=0)
    assert est.predict(far[None])[0] == -1


@pytest.mark.parametrize("cls", DETECTORS)
def test_fit_with_labels_drops_anomalies(cls, data):
    train, test = data
    X = np.concatenate([train, train[:5] + 30])
    y = np.r_[np.zeros(len(train)), np.ones(5)]
    ref = cls().fit(train)
    for labels in (y, np.where(y == 1, "anomaly", "normal")):
        est = cls().fit(X, labels)
        assert_allclose(est.score_samples(test), ref.score_samples(test))
        assert est.offset_ == pytest.approx(ref.offset_)
    with pytest.raises(ValueError, match="all n_samples=60 clips are labelled anomalous"):
        cls().fit(train, np.ones(len(train)))


@pytest.mark.parametrize("cls", DETECTORS)
def test_3d_log_mel_reduced_to_band_mean_and_std(cls):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 8, 20))
    est = cls().fit(X)
    flat = np.concatenate([X.mean(axis=2), X.std(axis=2)], axis=1)
    assert_allclose(est.score_samples(X[:5]), cls().fit(flat).score_samples(flat[:5]))
    assert est.n_features_in_ == 8
    with pytest.raises(ValueError, match="fitted on 3-D input but got 2-D"):
        est.score_samples(flat)
    # the normal level of each band over all training frames; of each column for 2-D input
    assert_allclose(est.band_profile_, [X.mean(axis=(0, 2)), X.std(axis=(0, 2))])
    assert_allclose(cls().fit(flat).band_profile_, [flat.mean(axis=0), flat.std(axis=0)])


# -------------------------------------------------------------------------- domains
def _two_domains(rng, n_source=80, n_target=10):
    """Source around 0, target around a shifted centre: two separate clusters."""
    source = rng.normal(size=(n_source, 4))
    target = rng.normal(size=(n_target, 4)) * 0.5 + [6, 0, 0, 0]
    return np.concatenate([source, target]), np.array(["source"] * n_source + ["target"] * n_target)


@pytest.mark.parametrize(
    "make", [lambda: KNNDetector(3), MahalanobisDetector, lambda: GMMDetector(covariance_type="diag")]
)
def test_domain_score_is_min_over_domain_models(make):
    rng = np.random.default_rng(0)
    X, domain = _two_domains(rng)
    test = rng.normal(size=(15, 4)) * 2 + [3, 0, 0, 0]
    est = make().fit(X, domain=domain)
    assert est.domains_.tolist() == ["source", "target"]
    per_domain = [make().fit(X[domain == d]).anomaly_score(test) for d in ("source", "target")]
    assert_allclose(est.anomaly_score(test), np.minimum(*per_domain))
    # differs from the domain-blind model, which sees one blob
    assert not np.allclose(make().fit(X).anomaly_score(test), est.anomaly_score(test), rtol=1e-3)


def test_knn_with_one_neighbour_is_domain_blind():
    """min(nearest source, nearest target) is the nearest overall: documented."""
    rng = np.random.default_rng(0)
    X, domain = _two_domains(rng)
    test = rng.normal(size=(15, 4)) * 2
    assert_allclose(KNNDetector().fit(X, domain=domain).score_samples(test), KNNDetector().fit(X).score_samples(test))


def test_domain_aware_knn_threshold_uses_leave_one_out_within_domain():
    rng = np.random.default_rng(0)
    X, domain = _two_domains(rng, n_source=20, n_target=6)
    est = KNNDetector(metric="euclidean", contamination=0.2).fit(X, domain=domain)
    D = scipy.spatial.distance.cdist(X, X)
    np.fill_diagonal(D, np.inf)
    source, target = domain == "source", domain == "target"
    train = np.minimum(D[:, source].min(axis=1), D[:, target].min(axis=1))
    assert est.offset_ == pytest.approx(np.percentile(-train, 20))


@pytest.mark.parametrize(
    "make", [lambda **kw: KNNDetector(3, **kw), MahalanobisDetector, lambda **kw: GMMDetector(covariance_type="diag", **kw)]
)
def test_domain_norm_standardises_each_domain_by_its_training_scores(make):
    rng = np.random.default_rng(0)
    X, domain = _two_domains(rng)
    test = rng.normal(size=(15, 4)) * 2 + [3, 0, 0, 0]
    est = make(domain_norm="zscore").fit(X, domain=domain)
    expected = []
    for d in ("source", "target"):
        plain = make().fit(X[domain == d])
        # the training clips' own scores: leave-one-out for k-NN, in-sample otherwise
        own = -plain.score_samples(X[domain == d]) if not isinstance(plain, KNNDetector) else np.sort(
            scipy.spatial.distance.cdist(X[domain == d], X[domain == d], "cosine"), axis=1)[:, 1:4].mean(axis=1)
        expected.append((plain.anomaly_score(test) - own.mean()) / own.std())
    assert_allclose(est.anomaly_score(test), np.minimum(*expected), rtol=1e-6, atol=1e-9)
    assert_allclose(est.model_scales_[:, 1] > 0, True)


@pytest.mark.parametrize("cls", DETECTORS)
def test_domain_norm_keeps_the_ranking_of_one_domain(cls, data):
    train, test = data
    plain, normed = cls().fit(train), cls(domain_norm="zscore").fit(train)
    assert_array_equal(np.argsort(plain.score_samples(test)), np.argsort(normed.score_samples(test)))
    assert_array_equal(plain.predict(test), normed.predict(test))


def test_domain_norm_lifts_the_sparse_domain_off_the_threshold():
    """Without normalisation the 6 spread target clips sit far from each other, so target
    normals look anomalous next to the dense source; standardised, each domain's normals
    score alike."""
    rng = np.random.default_rng(1)
    source = rng.normal(size=(200, 4))
    target = rng.normal(size=(6, 4)) * 3 + [12, 0, 0, 0]
    X = np.concatenate([source, target])
    domain = np.array(["source"] * 200 + ["target"] * 6)
    test_source, test_target = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) * 3 + [12, 0, 0, 0]
    y = np.r_[np.zeros(60), np.ones(20)]
    anomalies = rng.normal(size=(20, 4)) * 0.5 + [0, 5, 0, 0]
    test = np.concatenate([test_source, test_target, anomalies])
    plain = KNNDetector(metric="euclidean").fit(X, domain=domain).anomaly_score(test)
    normed = KNNDetector(metric="euclidean", domain_norm="zscore").fit(X, domain=domain).anomaly_score(test)
    assert auc(y, normed) > auc(y, plain) + 0.1


def test_domain_is_routed_in_a_pipeline():
    rng = np.random.default_rng(0)
    X, domain = _two_domains(rng)
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), KNNDetector().set_fit_request(domain=True))
        pipe.fit(X, domain=domain)
        assert pipe[-1].domains_.tolist() == ["source", "target"]
        manual = KNNDetector().fit(StandardScaler().fit_transform(X), domain=domain)
        assert_allclose(pipe.score_samples(X[:7]), manual.score_samples(pipe[0].transform(X[:7])))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("cls", DETECTORS)
def test_errors(cls, data):
    train, test = data
    with pytest.raises(NotFittedError, match=cls.__name__):
        cls().score_samples(test)
    bad = train.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(bad)
    est = cls().fit(train)
    with pytest.raises(ValueError, match="X has 4 features, but .* is expecting 5"):
        est.score_samples(test[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        est.score_samples(np.full_like(test, np.nan))
    with pytest.raises(ValueError, match="expects a 2-D array .* got 4-D"):
        cls().fit(train[:, :, None, None])
    with pytest.raises(ValueError, match=r"domain must hold one label per clip \(60\)"):
        cls().fit(train, domain=["source"] * 59)
    with pytest.raises(ValueError, match="at least .* normal training clips in domain 'target'.*got 1"):
        cls().fit(train, domain=["source"] * 59 + ["target"])
    with pytest.raises(ValueError, match="domain contains missing values"):
        cls().fit(train, domain=["source"] * 59 + [None])
    failed = cls()
    with pytest.raises(ValueError):
        failed.fit(train[:1])
    with pytest.raises(NotFittedError):  # a failed fit leaves no fitted model behind
        failed.score_samples(test)


def test_knn_k_larger_than_training_set():
    X = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match="n_neighbors=5 needs at least 6 normal training clips.*got 5"):
        KNNDetector(n_neighbors=5).fit(X)
    KNNDetector(n_neighbors=4).fit(X)
    with pytest.raises(ValueError, match="n_components=8 needs at least 8"):
        GMMDetector(n_components=8).fit(X)


@pytest.mark.parametrize("cls", DETECTORS)
def test_clone_keeps_params(cls):
    est = cls(contamination=0.1)
    assert clone(est).get_params() == est.get_params()


# ------------------------------------------------------------- simulated domain shift
def _shift(W, sr=16000):
    """Target domain: a +12 dB resonance at 3 kHz and a high-frequency tilt, same RMS."""
    b, a = scipy.signal.iirpeak(3000, Q=3, fs=sr)
    out = scipy.signal.lfilter([1, -0.7], [1], W + 3 * scipy.signal.lfilter(b, a, W, axis=1), axis=1)
    rms = lambda x: np.sqrt(np.mean(x**2, axis=1, keepdims=True))  # noqa: E731
    return (out * rms(W) / rms(out)).astype(np.float32)


@pytest.mark.slow
def test_domain_rule_keeps_target_auc_from_collapsing():
    """100 source + 10 target normal training clips; test: 20+20 normals, 10+10 anomalies.

    Measured target AUC (DCASE: target normals vs all anomalies) over seeds 0-4, domain-blind
    -> domain-aware: GMM (diag) .535->.760, .545->.840, .685->.828, .653->.795, .520->.660;
    here seed 0, asserted with half the margin. Mahalanobis does not collapse on this shift
    (the pooled covariance absorbs it) and k-NN's min rule equals the blind model when a
    clip's neighbours all come from one domain (see docs/inlier.rst)."""
    s = make_machine_sounds(n_normal=150, n_anomaly=20, duration=1.0, random_state=0)
    normal = np.random.default_rng(0).permutation(np.flatnonzero(s.target == 0))
    anomaly = np.flatnonzero(s.target == 1)
    W = s.data
    train = np.concatenate([W[normal[:100]], _shift(W[normal[100:110]])])
    domain = np.repeat(["source", "target"], [100, 10])
    test = np.concatenate([W[normal[110:130]], _shift(W[normal[130:150]]), W[anomaly[:10]], _shift(W[anomaly[10:]])])
    y = np.repeat([0, 1], [40, 20])
    test_domain = np.repeat(["source", "target", "source", "target"], [20, 20, 10, 10])
    logmel = LogMelTransformer(n_mels=64)
    F_train, F_test = logmel.fit_transform(train), logmel.transform(test)

    def target_auc(det):
        report = dcase_report(y, det.anomaly_score(F_test), groups=["id_00"] * len(y), domains=test_domain)
        return report.loc["id_00", "AUC (target)"]

    make = lambda: GMMDetector(covariance_type="diag", random_state=0)  # noqa: E731
    blind, aware = target_auc(make().fit(F_train)), target_auc(make().fit(F_train, domain=domain))
    assert blind < 0.6 and aware > blind + 0.11, (blind, aware)
    knn = [target_auc(KNNDetector(5).fit(F_train, domain=d)) for d in (None, domain)]
    assert knn[0] == knn[1]  # separated domains: the same 5 neighbours either way


@pytest.mark.slow
def test_dcase2023_clips_domain_code_path(shared_data):
    """The shared DCASE 2023 samples (2 source training clips per machine type): train on
    all types' training clips plus the target-domain test normals as target training clips,
    through ClipStats + scaler + detector with routed domains."""
    root = shared_data / "minchala-dcase2023-samples"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    df = load_dcase(root)
    fit_rows = (df.split == "train") | ((df.domain == "target") & (df.label == "normal"))
    stats = ClipStatsTransformer(duration=10.0)
    F = stats.fit_transform(df.path.tolist())
    test = (df.split == "test").to_numpy()
    assert set(df.domain[fit_rows]) == {"source", "target"}
    for det in (KNNDetector(2), MahalanobisDetector(), GMMDetector(covariance_type="diag", random_state=0)):
        with sklearn.config_context(enable_metadata_routing=True):
            pipe = make_pipeline(StandardScaler(), det.set_fit_request(domain=True))
            pipe.fit(F[fit_rows], y=df.label[fit_rows], domain=df.domain[fit_rows].to_numpy())
        assert pipe[-1].domains_.tolist() == ["source", "target"]
        scores = pipe[-1].anomaly_score(pipe[0].transform(F[test]))
        assert scores.shape == (test.sum(),) and np.all(np.isfinite(scores))
        per_domain = [clone(det).fit(pipe[0].transform(F[fit_rows][df.domain[fit_rows] == d]))
                      .anomaly_score(pipe[0].transform(F[test])) for d in ("source", "target")]
        assert_allclose(scores, np.minimum(*per_domain))


@pytest.mark.slow
def test_generated_anomalies_above_loudness_and_on_an_autoencoder_embedding():
    """make_machine_sounds seed 0, 1 s clips, 64-band log-mel; fit on 30 normals, test 30
    normals + 20 loudness-matched anomalies. Measured AUC (seeds 0/1/2): KNN .845/.807/.728,
    Mahalanobis .850/.878/.825, GMM(diag) .878/.885/.837, loudness (either sign) .53/.61/.59;
    DenseAE(max_epochs=5).transform -> KNN .720/.730/.585 (.58 for seed 0 with one torch thread)."""
    s = make_machine_sounds(n_normal=60, n_anomaly=20, duration=1.0, random_state=0)
    F = LogMelTransformer(n_mels=64).fit_transform(s.data)
    train, test, y = F[:30], F[30:], s.target[30:]
    loudness = max(auc(y, test.mean(axis=(1, 2))), auc(y, -test.mean(axis=(1, 2))))
    for det in (KNNDetector(), MahalanobisDetector(), GMMDetector(covariance_type="diag", random_state=0)):
        score = auc(y, det.fit(train).anomaly_score(test))
        assert score > 0.75 and score > loudness + 0.15, (det, score, loudness)
    # on an autoencoder's embedding (AUC there is seed-sensitive: not asserted)
    pipe = make_pipeline(DenseAE(max_epochs=2, random_state=0), KNNDetector()).fit(train)
    ae = pipe[0]
    assert_allclose(pipe.score_samples(test), KNNDetector().fit(ae.transform(train)).score_samples(ae.transform(test)))


def test_per_section_loop_of_the_user_guide():
    """docs/inlier.rst "Sections": one clone per section, scores put back in the table's order."""
    import pandas as pd

    s = make_machine_sounds(n_normal=16, n_anomaly=6, machine_ids=("id_00", "id_02"), duration=0.5, random_state=0)
    df = pd.DataFrame({"section_or_id": s.machine_id, "label": s.target}).sample(frac=1, random_state=0)
    df["split"] = np.where((df.label == 0) & (df.groupby("section_or_id").cumcount() < 10), "train", "test")
    train, test = df[df.split == "train"], df[df.split == "test"]
    features = LogMelTransformer(n_mels=32).fit_transform(s.data)
    pipe = make_pipeline(StandardScaler(), MahalanobisDetector())
    F = lambda part: features[part.index].mean(axis=2).astype(np.float64)  # noqa: E731  (per-band means)
    models, scores = {}, []
    for section, part in train.groupby("section_or_id"):
        models[section] = clone(pipe).fit(F(part))
    for section, part in test.groupby("section_or_id"):
        scores.append(pd.Series(-models[section].score_samples(F(part)), index=part.index))
    report = dcase_report(test.label, pd.concat(scores)[test.index], test.section_or_id)
    assert list(report.index[:2]) == ["id_00", "id_02"]
    for section in ("id_00", "id_02"):
        part = test[test.section_or_id == section]
        own = -models[section].score_samples(F(part))
        assert report.loc[section, "AUC"] == pytest.approx(auc(part.label, own))
    # each section's model saw only its own training clips
    id0 = train[train.section_or_id == "id_00"]
    assert_allclose(models["id_00"][0].mean_, F(id0).mean(axis=0), rtol=1e-6)


def test_train_score_quartiles_are_those_of_the_training_scores():
    # what `skasd watch` measures a drift of the median score against
    from skasd import MahalanobisDetector

    X = np.random.default_rng(0).normal(size=(40, 3))
    det = MahalanobisDetector().fit(X)
    np.testing.assert_allclose(det.train_score_quartiles_, np.quantile(det.anomaly_score(X), [0.25, 0.5, 0.75]))
