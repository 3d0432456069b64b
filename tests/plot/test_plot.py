"""Tests of skasd.plot: what each display draws, checked against sklearn / librosa."""

import doctest
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

import librosa  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402
from sklearn.ensemble import IsolationForest  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from skasd.plot import (  # noqa: E402
    LossHistoryDisplay,
    RocDisplay,
    ScoreHistogramDisplay,
    SpectrogramDisplay,
    plot_clips,
)
from skasd.plot import _explain, _history, _roc, _scores, _spectrogram  # noqa: E402

SR, HOP = 16000, 512


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _logmel(clip, n_mels=64):
    mel = librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=1024, hop_length=HOP, n_mels=n_mels)
    return librosa.power_to_db(mel)


def _tone(freq, seconds=1.0, seed=0):
    t = np.arange(int(SR * seconds)) / SR
    return np.sin(2 * np.pi * freq * t) + 0.01 * np.random.RandomState(seed).randn(t.size)


@pytest.fixture
def scores_and_labels():
    """40 normals, 10 anomalies scored by an imperfect detector (AUC strictly in (0.5, 1))."""
    rng = np.random.RandomState(0)
    y = np.r_[np.zeros(40, dtype=int), np.ones(10, dtype=int)]
    return rng.normal(size=50) + 1.5 * y, y


@pytest.fixture
def iforest_data():
    rng = np.random.RandomState(0)
    X = np.r_[rng.normal(size=(80, 2)), rng.normal(3, 1, size=(12, 2))]
    y = np.r_[np.zeros(80, dtype=int), np.ones(12, dtype=int)]
    return X, y


class _AnomalyScoreDetector(BaseEstimator):
    """Fitted detector whose anomaly_score must be preferred to score_samples."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def anomaly_score(self, X):
        return np.asarray(X)[:, 0]

    def score_samples(self, X):
        raise AssertionError("anomaly_score should have been used")


class _NetDetector(BaseEstimator):
    """Stand-in for a skasd neural detector: ``net_.history`` is a skorch History."""

    def __init__(self, history=None):
        self.history = history

    def fit(self, X=None, y=None):
        self.net_ = SimpleNamespace(history=self.history)
        return self


def _skorch_history(train, valid=None):
    from skorch.history import History

    history = History()
    for epoch, loss in enumerate(train, start=1):
        history.new_epoch()
        history.record("epoch", epoch)
        history.record("train_loss", loss)
        if valid is not None and valid[epoch - 1] is not None:
            history.record("valid_loss", valid[epoch - 1])
    return history


def _legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def _polygon_area(vertices):
    x, y = vertices[:, 0], vertices[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# --- optional dependency -------------------------------------------------------------


def test_import_skasd_does_not_import_matplotlib():
    code = "import sys, skasd; dir(skasd); assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_matplotlib_names_the_extra():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "try:\n    import skasd.plot\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install skasd[plot]" in out.stdout


@pytest.mark.parametrize("module", [_spectrogram, _roc, _scores, _history, _explain])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- spectrograms --------------------------------------------------------------------


def test_logmel_image_holds_features_on_time_and_mel_axes():
    S = _logmel(_tone(1000))
    disp = SpectrogramDisplay.from_features(S, sr=SR, hop_length=HOP)

    np.testing.assert_array_equal(disp.image_.get_array(), S)
    coords = disp.image_.get_coordinates()  # (n_mels + 1, n_frames + 1, 2) cell corners
    column_centres = (coords[0, :-1, 0] + coords[0, 1:, 0]) / 2
    np.testing.assert_allclose(
        column_centres, librosa.frames_to_time(np.arange(S.shape[1]), sr=SR, hop_length=HOP)
    )
    loudest = S.mean(axis=1).argmax()  # the 1 kHz tone's mel band
    assert coords[loudest, 0, 1] <= 1000 <= coords[loudest + 1, 0, 1]
    assert disp.ax_.get_xlabel() == "Time (s)"
    assert disp.ax_.get_ylabel() == "Mel frequency (Hz)"
    assert "dB" in disp.colorbar_.ax.get_ylabel()
    assert disp.figure_ is disp.ax_.figure


def test_mfcc_image_has_coefficient_axis():
    M = librosa.feature.mfcc(y=_tone(500), sr=SR, n_mfcc=20, n_fft=1024, hop_length=HOP)
    _, ax = plt.subplots()
    disp = SpectrogramDisplay.from_features(M, kind="mfcc", ax=ax, colorbar=False, name="clip")

    assert disp.ax_ is ax
    np.testing.assert_array_equal(disp.image_.get_array(), M)
    centres = disp.image_.get_coordinates()[:, 0, 1]
    np.testing.assert_allclose((centres[:-1] + centres[1:]) / 2, np.arange(20))
    assert ax.get_ylabel() == "MFCC coefficient"
    assert ax.get_title() == "clip"
    assert disp.colorbar_ is None


def test_plot_clips_grid_normal_beside_anomalous_on_one_colour_scale():
    normal = [_logmel(_tone(1000, seed=s)) for s in range(2)]
    anomalous = np.stack([_logmel(_tone(3000, seed=s)) for s in range(3)])  # a batch (3, 64, 32)
    displays = plot_clips(normal, anomalous, titles=("OK", "Broken"))

    assert displays.shape == (3, 2)
    assert displays[2, 0] is None and displays[2, 1] is not None
    fig = displays[0, 0].figure_
    hidden = [ax for ax in fig.axes if not ax.axison]
    assert len(hidden) == 1  # the empty normal cell of row 3
    low = min(S.min() for S in [*normal, *anomalous])
    high = max(S.max() for S in [*normal, *anomalous])
    for col, clips, title in [(0, normal, "OK"), (1, anomalous, "Broken")]:
        for row, S in enumerate(clips):
            disp = displays[row, col]
            assert disp.figure_ is fig
            np.testing.assert_array_equal(disp.image_.get_array(), S)
            assert disp.ax_.get_title() == f"{title} {row + 1}"
            assert disp.image_.get_clim() == pytest.approx((low, high))


def test_plot_clips_single_pair_mfcc_titles():
    M = librosa.feature.mfcc(y=_tone(500), sr=SR, n_mfcc=13)
    displays = plot_clips(M, M + 1, kind="mfcc", sr=SR)
    assert displays.shape == (1, 2)
    assert [d.ax_.get_title() for d in displays[0]] == ["Normal", "Anomalous"]
    assert displays[0, 1].ax_.get_ylabel() == "MFCC coefficient"


@pytest.mark.parametrize(
    "S, match",
    [
        (np.zeros(10), r"2-D \(n_mels, n_frames\).*got shape \(10,\)"),
        (np.zeros((4, 64, 32)), r"got shape \(4, 64, 32\).*S\[0\]"),
        (np.zeros((64, 0)), "non-empty"),
        (np.full((2, 3), np.nan), "S contains NaN"),
    ],
)
def test_spectrogram_bad_shapes_and_values(S, match):
    with pytest.raises(ValueError, match=match):
        SpectrogramDisplay.from_features(S)


def test_spectrogram_bad_kind_and_empty_clip_lists():
    with pytest.raises(ValueError, match="kind must be one of"):
        SpectrogramDisplay.from_features(np.zeros((4, 4)), kind="stft")
    with pytest.raises(ValueError, match="features_anomalous holds no clips"):
        plot_clips(np.zeros((4, 4)), [])
    with pytest.raises(ValueError, match="titles must hold 2"):
        plot_clips(np.zeros((4, 4)), np.zeros((4, 4)), titles=("a",))


# --- ROC -----------------------------------------------------------------------------


@pytest.mark.parametrize("max_fpr", [0.1, 0.13, 1.0])
def test_roc_line_region_and_legend_match_sklearn(scores_and_labels, max_fpr):
    scores, y = scores_and_labels
    disp = RocDisplay.from_predictions(y, scores, max_fpr=max_fpr, name="det")

    fpr, tpr, _ = roc_curve(y, scores)
    np.testing.assert_array_equal(disp.line_.get_xdata(), fpr)
    np.testing.assert_array_equal(disp.line_.get_ydata(), tpr)
    auc, pauc = roc_auc_score(y, scores), roc_auc_score(y, scores, max_fpr=max_fpr)
    assert 0.5 < auc < 1 and (disp.roc_auc, disp.pauc) == (auc, pauc)
    assert f"det (AUC = {auc:.3f}, pAUC = {pauc:.3f})" in _legend_texts(disp.ax_)

    region = disp.pauc_region_.get_paths()[0].vertices
    assert region[:, 0].min() == 0 and region[:, 0].max() == pytest.approx(max_fpr)
    # The shaded area is the partial area that sklearn standardises into pAUC (McClish).
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    partial_area = min_area + (2 * pauc - 1) * (max_area - min_area)
    assert _polygon_area(region) == pytest.approx(partial_area)
    np.testing.assert_array_equal(disp.chance_level_.get_xdata(), [0, 1])


def test_roc_from_estimator_uses_minus_score_samples_and_pipeline_name(iforest_data):
    X, y = iforest_data
    pipe = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X[:60])
    disp = RocDisplay.from_estimator(pipe, X, y, plot_chance_level=False)

    expected = RocDisplay.from_predictions(y, -pipe.score_samples(X))
    np.testing.assert_array_equal(disp.line_.get_ydata(), expected.line_.get_ydata())
    assert disp.roc_auc == expected.roc_auc > 0.9
    assert disp.chance_level_ is None
    assert _legend_texts(disp.ax_)[0].startswith("IsolationForest (AUC = ")


def test_roc_from_estimator_prefers_anomaly_score():
    X = np.c_[np.arange(6.0), np.zeros(6)]
    disp = RocDisplay.from_estimator(_AnomalyScoreDetector().fit(X), X, [0, 0, 0, 0, 1, 1])
    assert disp.roc_auc == 1.0


@pytest.mark.parametrize(
    "y_true, scores, match",
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], r"both normal \(0\) and anomalous \(1\)"),
        ([1, -1, 1], [0.1, 0.2, 0.3], r"1 = anomaly, 0 = normal; found values \[-1\]"),
        ([0, 1], [0.1, 0.2, 0.3], "one entry per clip"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "anomaly_score contains 1 NaN"),
        ([0, 1], [[0.1, 0.2], [0.3, 0.4]], "1-D array"),
    ],
)
def test_roc_bad_labels_and_scores(y_true, scores, match):
    with pytest.raises(ValueError, match=match):
        RocDisplay.from_predictions(y_true, scores)


def test_roc_bad_max_fpr_and_estimators(scores_and_labels, iforest_data):
    scores, y = scores_and_labels
    with pytest.raises(ValueError, match="max_fpr"):
        RocDisplay.from_predictions(y, scores, max_fpr=0)
    X, y = iforest_data
    with pytest.raises(NotFittedError):
        RocDisplay.from_estimator(IsolationForest(), X, y)
    with pytest.raises(TypeError, match="neither anomaly_score nor score_samples"):
        RocDisplay.from_estimator(StandardScaler().fit(X), X, y)


# --- score histograms ----------------------------------------------------------------


def _bar_heights(bars):
    return np.array([patch.get_height() for patch in bars])


def test_histogram_counts_groups_and_threshold(scores_and_labels):
    scores, y = scores_and_labels
    disp = ScoreHistogramDisplay.from_predictions(scores, y, threshold=0.7, bins=8)

    normal, anomaly = disp.bars_["normal"], disp.bars_["anomaly"]
    assert _bar_heights(normal).sum() == 40 and _bar_heights(anomaly).sum() == 10
    edges = np.histogram_bin_edges(scores, bins=8)
    np.testing.assert_array_equal(_bar_heights(normal), np.histogram(scores[y == 0], edges)[0])
    np.testing.assert_allclose([p.get_x() for p in anomaly], edges[:-1])  # shared bins
    np.testing.assert_array_equal(disp.threshold_line_.get_xdata(), [0.7, 0.7])
    assert _legend_texts(disp.ax_) == ["normal (n=40)", "anomaly (n=10)", "threshold = 0.7"]


def test_histogram_without_labels_or_threshold(scores_and_labels):
    scores, _ = scores_and_labels
    disp = ScoreHistogramDisplay.from_predictions(scores, density=True)
    assert list(disp.bars_) == ["all"]
    widths = np.array([p.get_width() for p in disp.bars_["all"]])
    assert np.sum(_bar_heights(disp.bars_["all"]) * widths) == pytest.approx(1.0)
    assert disp.threshold_line_ is None
    assert disp.ax_.get_ylabel() == "Density"


def test_histogram_from_estimator_threshold_is_decision_boundary(iforest_data):
    X, y = iforest_data
    pipe = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X[:60])
    disp = ScoreHistogramDisplay.from_estimator(pipe, X, y)

    threshold = disp.threshold_line_.get_xdata()[0]
    assert threshold == -pipe[-1].offset_
    # Clips right of the line are exactly those the pipeline predicts anomalous.
    np.testing.assert_array_equal(-pipe.score_samples(X) > threshold, pipe.predict(X) == -1)
    assert _bar_heights(disp.bars_["anomaly"]).sum() == 12
    assert disp.ax_.get_title() == "IsolationForest"


def test_histogram_from_estimator_without_offset_draws_no_line():
    X = np.c_[np.arange(6.0), np.zeros(6)]
    disp = ScoreHistogramDisplay.from_estimator(_AnomalyScoreDetector().fit(X), X)
    assert disp.threshold_line_ is None
    assert _bar_heights(disp.bars_["all"]).sum() == 6


def test_histogram_errors(scores_and_labels):
    scores, y = scores_and_labels
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        ScoreHistogramDisplay.from_predictions(scores, y, threshold=np.nan)
    with pytest.raises(ValueError, match="one entry per clip"):
        ScoreHistogramDisplay.from_predictions(scores, y[:-1])
    with pytest.raises(NotFittedError):
        ScoreHistogramDisplay.from_estimator(IsolationForest(), np.zeros((3, 2)))


# --- loss history --------------------------------------------------------------------


def test_loss_lines_one_point_per_epoch_from_skorch_history():
    train, valid = [0.9, 0.5, 0.3, 0.25], [1.0, 0.7, 0.6, 0.65]
    detector = _NetDetector(_skorch_history(train, valid)).fit()
    disp = LossHistoryDisplay.from_estimator(detector)

    np.testing.assert_array_equal(disp.train_line_.get_xdata(), [1, 2, 3, 4])
    np.testing.assert_array_equal(disp.train_line_.get_ydata(), train)
    np.testing.assert_array_equal(disp.valid_line_.get_ydata(), valid)
    assert _legend_texts(disp.ax_) == ["training loss", "validation loss"]
    assert (disp.ax_.get_xlabel(), disp.ax_.get_title()) == ("Epoch", "_NetDetector")


def test_loss_history_of_pipeline_without_or_with_partial_validation():
    pipe = make_pipeline(FunctionTransformer(), _NetDetector(_skorch_history([3.0, 2.0, 1.0])))
    disp = LossHistoryDisplay.from_estimator(pipe.fit(np.zeros((2, 1))), log_scale=True)
    np.testing.assert_array_equal(disp.train_line_.get_ydata(), [3.0, 2.0, 1.0])
    assert disp.valid_line_ is None
    assert disp.ax_.get_yscale() == "log"

    partial = _NetDetector(_skorch_history([3.0, 2.0, 1.0], [None, 2.5, 1.5])).fit()
    disp = LossHistoryDisplay.from_estimator(partial)
    np.testing.assert_array_equal(disp.valid_line_.get_ydata(), [np.nan, 2.5, 1.5])


def test_loss_from_history():
    disp = LossHistoryDisplay.from_history([0.5, 0.4], name="run 1")
    np.testing.assert_array_equal(disp.train_line_.get_xdata(), [1, 2])
    assert disp.valid_line_ is None and disp.ax_.get_title() == "run 1"


def test_loss_history_errors(iforest_data):
    with pytest.raises(NotFittedError):
        LossHistoryDisplay.from_estimator(_NetDetector(_skorch_history([1.0])))
    X, _ = iforest_data
    with pytest.raises(TypeError, match="no skorch net in `net_`"):
        LossHistoryDisplay.from_estimator(IsolationForest(random_state=0).fit(X))
    with pytest.raises(KeyError, match="no 'train_loss'.*0 epochs"):
        LossHistoryDisplay.from_estimator(_NetDetector(_skorch_history([])).fit())
    with pytest.raises(ValueError, match=r"valid_loss has shape \(1,\); expected \(2,\)"):
        LossHistoryDisplay.from_history([1.0, 0.5], [1.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        LossHistoryDisplay.from_history([])


def test_explanation_display_draws_a_spectrum_pipeline_on_its_windows():
    from skasd import KNNDetector, SpectrumTransformer
    from skasd.datasets import make_machine_sounds
    from skasd.inspection import explain, frame_scores
    from skasd.plot import ExplanationDisplay

    b = make_machine_sounds(n_normal=10, n_anomaly=1, anomaly_types="whine", duration=3.0, random_state=0)
    pipe = make_pipeline(SpectrumTransformer(n_fft=1024), KNNDetector(metric="euclidean")).fit(b.data[:10])
    clip = b.data[10]
    disp = ExplanationDisplay.from_estimator(pipe, clip)
    fs = frame_scores(pipe, clip[None])
    assert disp.frequency == "linear" and disp.S.shape == (513, len(fs.times))
    np.testing.assert_allclose(disp.line_.get_xdata(), fs.times)
    np.testing.assert_allclose(disp.line_.get_ydata(), fs.scores[0])
    assert disp.ax_.get_title() == explain(pipe, clip[None])["summary"].iloc[0]
    assert disp.ax_.get_ylim()[1] == pytest.approx(8000, rel=0.01)  # a linear axis to sr / 2
    plt.close("all")


def test_explanation_display_draws_explain():
    from skasd import DenseAE, LogMelTransformer
    from skasd.datasets import make_machine_sounds
    from skasd.inspection import explain, frame_scores
    from skasd.plot import ExplanationDisplay

    b = make_machine_sounds(n_normal=10, n_anomaly=1, anomaly_types="whine", duration=3.0, random_state=0)
    pipe = make_pipeline(LogMelTransformer(n_mels=64), DenseAE(max_epochs=2, random_state=0)).fit(b.data[:10])
    clip = b.data[10]
    disp = ExplanationDisplay.from_estimator(pipe, clip)
    table = explain(pipe, clip[None])
    assert disp.ax_.get_title() == table["summary"].iloc[0] == disp.summary
    np.testing.assert_allclose(disp.line_.get_ydata(), frame_scores(pipe, clip[None], relative=True).scores[0])
    assert disp.score_ax_.get_ylabel() == "frame score"
    # the heatmap hides deviations within 6 dB (and twice the band's spread) of normal
    hidden = np.ma.getmaskarray(np.ma.masked_invalid(disp.heatmap_.get_array())).ravel()
    dev = disp.deviation.ravel()
    assert hidden[np.abs(dev) < 6].all() and not hidden.all()
    boxes = [p for p in disp.ax_.patches if p.get_linewidth() == 1.5]
    assert len(boxes) == 1 and boxes[0].get_y() == pytest.approx(table["band_low_hz"].iloc[0])
    plt.close("all")
