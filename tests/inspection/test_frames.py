"""Frame scores: every detector's per-frame scores, how they pool, and their errors."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline

from skasd import (
    CNNAE,
    ClassifierEmbedding,
    ClipStatsTransformer,
    DenseAE,
    GMMDetector,
    KNNDetector,
    LogMelTransformer,
    MahalanobisDetector,
    ScoreFusion,
    SectionwiseDetector,
    SpectrumTransformer,
)
from skasd.inspection import band_edges, frame_scores
from skasd.models._frames import window_starts


def _logmel(n=12, n_frames=80, seed=0):
    return np.random.default_rng(seed).normal(-40, 3, size=(n, 16, n_frames)).astype(np.float32)


@pytest.mark.parametrize("model", [DenseAE(frames=3, max_epochs=1, random_state=0),
                                   CNNAE(patch_frames=16, patch_hop=16, max_epochs=1, random_state=0)])
def test_autoencoder_frame_scores_pool_to_the_clip_score(model):
    X = _logmel(n_frames=70)
    model.fit(X)
    f, maps = model.frame_scores(X), model.frame_scores(X, per_band=True)
    assert f.shape == (12, 70) and maps.shape == (12, 16, 70)
    np.testing.assert_allclose(maps.mean(axis=1), f)
    width, hop = model._window()
    cover = np.zeros(70)
    for start in window_starts(70, width, hop):
        cover[start : start + width] += 1
    assert np.isfinite(f).all()
    pooled = (f * cover).sum(axis=1) / cover.sum()  # the documented weighted mean
    if (cover == 0).any():  # CNNAE: the tail gets one more patch, ending at the last frame
        tail = model.frame_scores(X[:, :, -16:], per_band=True)
        np.testing.assert_allclose(maps[:, :, cover == 0], tail[:, :, 16 - (cover == 0).sum():], rtol=1e-5)
    np.testing.assert_allclose(pooled, model.anomaly_score(X), rtol=1e-5)
    assert model.band_profile_.shape == (2, 16)
    np.testing.assert_allclose(model.band_error_, maps.mean(axis=(0, 2)), rtol=1e-6)  # fitted on X
    relative = model.frame_scores(X, relative=True)
    np.testing.assert_allclose(relative, (maps / model.band_error_[:, None]).mean(axis=1))
    np.testing.assert_allclose(frame_scores(model, X, relative=True, features=LogMelTransformer(n_mels=16)).scores,
                               relative)


@pytest.mark.parametrize("model", [KNNDetector(), MahalanobisDetector(), GMMDetector(random_state=0)])
def test_inlier_frame_scores_find_a_local_change(model):
    X = _logmel(n=30)
    test = _logmel(n=3, seed=1)
    test[:, 5:8, 50:60] += 12  # a narrowband event at frames 50-59
    f = model.fit(X).frame_scores(test, window=16)
    assert f.shape == (3, 80) and np.isfinite(f).all()
    assert ((40 <= f.argmax(axis=1)) & (f.argmax(axis=1) < 70)).all()
    profile = model.band_profile_
    np.testing.assert_allclose(profile[0], X.mean(axis=(0, 2)), atol=1e-4)
    np.testing.assert_allclose(profile[1], X.transpose(1, 0, 2).reshape(16, -1).std(axis=1), rtol=1e-4)


def test_inlier_frame_scores_errors():
    X = _logmel()
    with pytest.raises(ValueError, match="no time axis.*ClassifierEmbedding.*DenseAE"):
        KNNDetector().fit(X.mean(axis=2)).frame_scores(X.mean(axis=2))
    knn = KNNDetector().fit(X)
    with pytest.raises(ValueError, match="at least one window of 32 frames; got n_frames=20"):
        knn.frame_scores(X[:, :, :20])
    bad = X[:2].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn.frame_scores(bad)
    with pytest.raises(ValueError, match="window must be an int"):
        knn.frame_scores(X, window=1)
    with pytest.raises(NotFittedError, match="fit"):
        KNNDetector().frame_scores(X)
    with pytest.raises(ValueError, match="needs clips of at least 5 frames"):
        DenseAE(max_epochs=1, random_state=0).fit(X).frame_scores(X[:, :, :3])


def test_sections_route_to_their_models():
    X = np.concatenate([_logmel(n=10), _logmel(n=10, seed=2) + 20])
    section = np.repeat(["a", "b"], 10)
    knn = KNNDetector().fit(X, section=section)
    by_section = knn.frame_scores(X[:2], section=["b", "b"])
    own = KNNDetector().fit(X[10:]).frame_scores(X[:2])
    np.testing.assert_allclose(by_section, own)
    wrapped = SectionwiseDetector(KNNDetector()).fit(X, section=section)
    np.testing.assert_allclose(wrapped.frame_scores(X[:2], section=["b", "b"]), own)
    assert (wrapped.section_codes(X[[0, 15]]) == [0, 1]).all()


def test_fusion_standardises_frame_scores_like_clip_scores():
    X = _logmel()
    fusion = ScoreFusion([("gmm", GMMDetector(random_state=0)), ("maha", MahalanobisDetector())]).fit(X)
    parts = [d.frame_scores(X[:2]) for d in fusion.detectors_]
    expected = sum(w * (p - loc) / scale for w, p, loc, scale in zip(fusion.weights_, parts, fusion.loc_, fusion.scale_))
    np.testing.assert_allclose(fusion.frame_scores(X[:2]), expected)
    np.testing.assert_allclose(frame_scores(fusion, X[:2], features=LogMelTransformer(n_mels=16)).scores, expected)
    waves = np.random.default_rng(0).normal(0, 0.05, size=(8, 16000)).astype(np.float32)
    lm = LogMelTransformer(n_mels=16)
    of_pipelines = ScoreFusion([("gmm", make_pipeline(lm, GMMDetector(random_state=0))),
                                ("maha", make_pipeline(lm, MahalanobisDetector()))]).fit(waves)
    parts = [frame_scores(p, waves[:2]).scores for p in of_pipelines.detectors_]
    np.testing.assert_allclose(frame_scores(of_pipelines, waves[:2]).scores, of_pipelines.fuse_frame_scores(parts))
    from skasd.inspection import explain

    table = explain(of_pipelines, waves[:2], n_segments=1, window=16)  # the fusion's verdict, not a member's
    np.testing.assert_allclose(table["anomaly_score"], -of_pipelines.score_samples(waves[:2]))
    assert (table["threshold"] == -of_pipelines.offset_).all()
    gap = parts[0].copy()
    gap[:, -2:] = np.nan  # frames one sub-detector does not score stay unscored
    rank = ScoreFusion([("gmm", GMMDetector(random_state=0)), ("maha", MahalanobisDetector())], method="rank").fit(X)
    fused = rank.fuse_frame_scores([gap, parts[1]])
    assert np.isnan(fused[:, -2:]).all() and np.isfinite(fused[:, :-2]).all()


def test_pipeline_frame_scores_have_times_and_bands():
    waves = np.random.default_rng(0).normal(0, 0.05, size=(6, 16000)).astype(np.float32)
    pipe = make_pipeline(LogMelTransformer(n_mels=32), KNNDetector()).fit(waves)
    fs = frame_scores(pipe, waves[:2])
    assert fs.scores.shape == (2, 32) and fs.features.shape == (2, 32, 32)
    np.testing.assert_allclose(fs.times, np.arange(32) * 512 / 16000)
    edges = fs.band_edges
    assert edges.shape == (32, 2) and (edges[1:, 0] == edges[:-1, 1]).all() and edges[-1, 1] < 8000
    np.testing.assert_allclose(band_edges(LogMelTransformer(n_mels=32)), edges)
    stats = make_pipeline(ClipStatsTransformer(), KNNDetector()).fit(waves)
    with pytest.raises(ValueError, match=r"time axis: the pipeline \['ClipStatsTransformer', 'KNNDetector'\] has no "
                                         r"LogMelTransformer.*autoencoders on log-mel \(DenseAE"):
        frame_scores(stats, waves[:2])
    with pytest.raises(ValueError, match="per_band.*autoencoders"):
        frame_scores(pipe, waves[:2], per_band=True)
    with pytest.raises(ValueError, match="bands but the assumed LogMelTransformer gives 128"):
        frame_scores(pipe[-1], fs.features)


def test_embedding_occlusion_scores_what_each_window_adds():
    X = _logmel(n=8, n_frames=48)
    ids = np.repeat(["a", "b"], 4)
    X[4:] += np.linspace(-3, 3, 16)[:, None]
    emb = ClassifierEmbedding(embed_dim=8, channels=(4, 8), patch_frames=16, patch_hop=4, max_epochs=1,
                              random_state=0).fit(X, ids)
    Z, clip, starts, width = emb.occlusion_transform(X, window=20)  # two patches of the 9 left out at a time
    np.testing.assert_allclose(clip, emb.transform(X))
    assert Z.shape == (8, 8, 16) and width == 20 and (starts == np.arange(8) * 4).all()
    patches = emb._patch_embeddings(X)
    for k in (0, 5):  # the clip without patches k, k+1, pooled as transform pools
        np.testing.assert_allclose(Z[:, k], emb._pool(np.delete(patches, [k, k + 1], axis=1)), atol=1e-9)
    with pytest.raises(ValueError, match="covers all 9 patches"):
        emb.occlusion_transform(X, window=48)
    knn = KNNDetector().fit(emb.transform(X))
    pipe = make_pipeline(emb, knn)
    fs = frame_scores(pipe, X[:2], features=LogMelTransformer(n_mels=16))
    assert fs.scores.shape == (2, 48) and np.isfinite(fs.scores).all()
    without = knn.anomaly_score(Z[:2].reshape(-1, 16)).reshape(2, 8)
    added = knn.anomaly_score(emb.transform(X[:2]))[:, None] - without
    np.testing.assert_allclose(fs.scores[:, :4], np.repeat(added[:, :1], 4, axis=1))  # frames 0-3: the first window only


def test_spectrum_frame_scores_are_what_each_window_adds_to_the_clip_score():
    """A SpectrumTransformer + inlier pipeline: frames are windows of Welch frames; a window's
    score is the clip's anomaly score minus that of the clip's spectrum without it."""
    rng = np.random.default_rng(0)
    waves = rng.normal(0, 0.05, size=(12, 16000)).astype(np.float32)
    t = np.arange(16000) / 16000
    test = waves[:2].copy()
    test[1, 8000:10000] += 0.2 * np.sin(2 * np.pi * 3000 * t[:2000])  # a tone in 0.5-0.625 s
    spectrum = SpectrumTransformer(n_fft=512)  # hop 256: 61 Welch frames of 1 s
    pipe = make_pipeline(spectrum, KNNDetector(metric="euclidean")).fit(waves[2:])
    fs = frame_scores(pipe, test, window=4)  # windows of 4 frames, every frame
    assert fs.scores.shape == (2, 58) and fs.features.shape == (2, 257, 58) and fs.hop == 256 / 16000
    np.testing.assert_allclose(fs.times, (np.arange(58) * 256 + (512 + 3 * 256) / 2) / 16000)
    np.testing.assert_allclose(fs.band_edges[:2], [[0, 15.625], [15.625, 46.875]])
    np.testing.assert_allclose(band_edges(spectrum), fs.band_edges)
    # occlusion, by hand for window 10 of the first clip
    P = spectrum._frame_powers(test)[0]
    rest = np.delete(P[0], np.s_[10:14], axis=1).mean(axis=1)
    knn = pipe[-1]
    added = knn.anomaly_score(spectrum.transform(test[:1])) - knn.anomaly_score(spectrum._db(rest)[None])
    np.testing.assert_allclose(fs.scores[0, 10], added[0], atol=1e-4)  # float32 transform vs float64 frames
    # features: each window's own spectrum
    np.testing.assert_allclose(fs.features[0, :, 10], spectrum._db(P[0][:, 10:14].mean(axis=1)), atol=1e-4)
    # the tone's windows add the most to the second clip's score
    assert 0.45 <= fs.times[np.argmax(fs.scores[1])] <= 0.68
    # a clip no longer than a window is one window, scored as the clip
    one = frame_scores(pipe, test, window=100)
    np.testing.assert_allclose(one.scores[:, 0], knn.anomaly_score(spectrum.transform(test)), rtol=1e-6)
    with pytest.raises(ValueError, match="per_band: KNNDetector scores windows"):
        frame_scores(pipe, test, per_band=True)
    with pytest.raises(ValueError, match="window must be a positive int"):
        frame_scores(pipe, test, window=0)
    three = make_pipeline(SpectrumTransformer(n_fft=512), MahalanobisDetector(), KNNDetector())
    with pytest.raises(ValueError, match=r"SpectrumTransformer followed by a detector; got \['SpectrumTransformer', "
                                         r"'MahalanobisDetector', 'KNNDetector'\]"):
        frame_scores(three, test)
    with pytest.raises(NotFittedError):
        frame_scores(make_pipeline(SpectrumTransformer(n_fft=512), KNNDetector()), test)


def test_spectrum_frame_scores_per_section_and_in_a_fusion():
    from skasd.inspection import explain

    rng = np.random.default_rng(1)
    waves = rng.normal(0, 0.05, size=(16, 8000)).astype(np.float32)
    waves[8:] += 0.05 * np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000)  # a second section, a tone
    sections = np.repeat(["a", "b"], 8)
    spectrum = SpectrumTransformer(n_fft=512)
    rows = spectrum.transform(waves)
    knn = KNNDetector(metric="euclidean").fit(rows[:-2], section=sections[:-2])
    wrapped = SectionwiseDetector(KNNDetector(metric="euclidean")).fit(rows[:-2], section=sections[:-2])
    test, test_sections = waves[-2:], ["b", "a"]  # the last clip judged by the wrong section's model
    by_section = {}
    for name, det in (("knn", knn), ("sectionwise", wrapped)):
        pipe = make_pipeline(spectrum, det)
        fs = frame_scores(pipe, test, section=test_sections, window=4)
        own = [frame_scores(make_pipeline(spectrum, KNNDetector(metric="euclidean").fit(
            rows[:-2][sections[:-2] == s])), test[i : i + 1], window=4).scores[0] for i, s in enumerate(test_sections)]
        np.testing.assert_allclose(fs.scores, np.stack(own), rtol=1e-5, atol=1e-6)
        by_section[name] = fs.scores
        table = explain(pipe, test, section=test_sections, n_segments=1)
        assert len(table) == 2 and table["summary"].str.contains(" Hz|kHz").all()
    np.testing.assert_allclose(by_section["knn"], by_section["sectionwise"], rtol=1e-5, atol=1e-6)
    fusion = ScoreFusion([("spectrum", make_pipeline(spectrum, KNNDetector())),
                          ("logmel", make_pipeline(LogMelTransformer(n_mels=16), KNNDetector()))], cv=2).fit(waves)
    with pytest.raises(ValueError, match="ScoreFusion with a SpectrumTransformer pipeline.*explain each pipeline"):
        frame_scores(fusion, test)
