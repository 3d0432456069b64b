import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hmean
from sklearn.metrics import roc_auc_score

from skasd.metrics import auc_score, dcase_report, pauc_score


def _random_case(seed, n=120):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    # ties included: rounding makes equal scores across classes
    return y, np.round(rng.normal(size=n) + 0.8 * y, 1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_fpr", [0.01, 0.05, 0.1, 0.3, 0.77, 1.0])
def test_matches_sklearn_exactly(seed, max_fpr):
    y, s = _random_case(seed)
    assert auc_score(y, s) == roc_auc_score(y, s)
    assert pauc_score(y, s, max_fpr=max_fpr) == roc_auc_score(y, s, max_fpr=max_fpr)


def test_pauc_default_is_dcase_max_fpr_and_differs_from_auc():
    y, s = _random_case(7)
    assert pauc_score(y, s) == roc_auc_score(y, s, max_fpr=0.1)
    assert pauc_score(y, s) != auc_score(y, s)
    assert pauc_score(y, s, max_fpr=1) == auc_score(y, s)


def test_sign_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1])
    assert auc_score(y, y * 2.0) == 1.0 and auc_score(y, -y * 2.0) == 0.0
    assert pauc_score(y, y * 2.0) == 1.0


def test_string_bool_and_series_labels():
    y, s = _random_case(3)
    names = np.where(y == 1, "anomaly", "normal")
    expected = roc_auc_score(y, s)
    assert auc_score(names, s) == expected
    assert auc_score(names.tolist(), s) == expected
    assert auc_score(pd.Series(names, dtype="str"), pd.Series(s)) == expected
    assert auc_score(y.astype(bool), s) == expected
    assert auc_score(y.astype(float), s) == expected
    assert pauc_score(names, s) == roc_auc_score(y, s, max_fpr=0.1)


@pytest.mark.parametrize(
    "y, score, match",
    [
        ([0, 0, 0], [1, 2, 3], "only normal clips"),
        (["anomaly"] * 3, [1, 2, 3], "only anomalous clips"),
        ([0, 1, 0], [1, np.nan, 3], r"1 NaN or infinite value\(s\), the first at clip 1"),
        ([0, 1, 0], [1, 2, np.inf], "NaN or infinite"),
        ([0, 1, 0], [1, 2], "one score per clip: 3 clips, got 2 scores"),
        ([0, 1], [[1], [2]], "must be a non-empty 1-D array"),
        ([[0, 1]], [1, 2], "y_true must be 1-D"),
        ([1, -1, 1], [1, 2, 3], r"1 = anomaly, 0 = normal; found values \[-1\].*predict"),
        ([0, 2, 1], [1, 2, 3], r"found values \[2\]"),
        ([0.0, np.nan, 1.0], [1, 2, 3], "NaN labels"),
        (["normal", None, "anomaly"], [1, 2, 3], "found \\[None\\].*unlabelled"),
        (["normal", "abnormal"], [1, 2], "found \\['abnormal'\\]"),
    ],
)
def test_input_errors(y, score, match):
    for metric in (auc_score, pauc_score):
        with pytest.raises(ValueError, match=match):
            metric(y, score)


@pytest.mark.parametrize("max_fpr", [0, -0.1, 1.5, np.nan, True, "0.1", None])
def test_max_fpr_out_of_range(max_fpr):
    with pytest.raises(ValueError, match=r"max_fpr must be a number in \(0, 1\]"):
        pauc_score([0, 1], [0, 1], max_fpr=max_fpr)
    with pytest.raises(ValueError, match="max_fpr"):
        dcase_report([0, 1], [0, 1], ["a", "a"], max_fpr=max_fpr)


def _three_sections(seed=0):
    rng = np.random.default_rng(seed)
    n = 300
    groups = np.array(["section_02", "section_00", "section_01"])[rng.integers(0, 3, n)]
    y = (rng.random(n) < 0.3).astype(int)
    domains = np.where(rng.random(n) < 0.5, "source", "target")
    shift = {"section_00": 2.0, "section_01": 0.5, "section_02": 1.0}
    s = rng.normal(size=n) + y * np.vectorize(shift.get)(groups) + (domains == "target") * 0.7
    return y, s, groups, domains


def test_report_without_domains_matches_manual():
    y, s, groups, _ = _three_sections()
    report = dcase_report(y, s, groups)
    names = ["section_00", "section_01", "section_02"]
    assert list(report.index) == names + ["arithmetic mean", "harmonic mean"]
    assert list(report.columns) == ["AUC", "pAUC"]
    assert report.index.name == "section"
    for g in names:
        m = groups == g
        assert report.loc[g, "AUC"] == roc_auc_score(y[m], s[m])
        assert report.loc[g, "pAUC"] == roc_auc_score(y[m], s[m], max_fpr=0.1)
    for col in ("AUC", "pAUC"):
        values = report.loc[names, col].to_numpy()
        assert report.loc["arithmetic mean", col] == pytest.approx(values.mean(), abs=1e-15)
        assert report.loc["harmonic mean", col] == pytest.approx(hmean(values), abs=1e-15)
    # the harmonic mean is below the arithmetic mean when sections differ
    assert (report.loc["harmonic mean"] < report.loc["arithmetic mean"]).all()
    # other max_fpr, string labels and integer groups
    labels = np.where(y == 1, "anomaly", "normal")
    ids = np.vectorize(lambda g: int(g[-1]))(groups)
    other = dcase_report(labels, s, ids, max_fpr=0.3)
    m = groups == "section_01"
    assert other.loc["1", "pAUC"] == roc_auc_score(y[m], s[m], max_fpr=0.3)


def test_report_with_domains_follows_dcase_rule():
    y, s, groups, domains = _three_sections(1)
    report = dcase_report(y, s, groups, domains=domains)
    assert list(report.columns) == ["AUC (source)", "AUC (target)", "pAUC"]
    for g in ["section_00", "section_01", "section_02"]:
        m = groups == g
        for d in ("source", "target"):
            sel = m & ((domains == d) | (y == 1))
            assert report.loc[g, f"AUC ({d})"] == roc_auc_score(y[sel], s[sel])
        assert report.loc[g, "pAUC"] == roc_auc_score(y[m], s[m], max_fpr=0.1)
    values = report.iloc[:3].to_numpy()
    np.testing.assert_allclose(report.loc["arithmetic mean"], values.mean(0), rtol=1e-15)
    np.testing.assert_allclose(report.loc["harmonic mean"], hmean(values, axis=0), rtol=1e-15)


def test_report_domain_auc_uses_anomalies_of_both_domains():
    # source normals .1 .2, target normals .5 .6, source anomaly .3, target anomaly .7
    y = [0, 0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.5, 0.6, 0.3, 0.7]
    domains = ["source", "source", "target", "target", "source", "target"]
    report = dcase_report(y, s, ["section_00"] * 6, domains=domains)
    assert report.loc["section_00", "AUC (source)"] == 1.0  # {.1,.2} vs {.3,.7}
    assert report.loc["section_00", "AUC (target)"] == 0.5  # {.5,.6} vs {.3,.7}: 2 of 4 pairs
    assert report.loc["section_00", "pAUC"] == roc_auc_score(y, s, max_fpr=0.1)


def test_report_harmonic_mean_floors_zero_at_eps():
    y = [0, 1, 0, 1]
    report = dcase_report(y, [0, 1, 1, 0], ["a", "a", "b", "b"])
    assert report.loc["b", "AUC"] == 0.0
    assert report.loc["harmonic mean", "AUC"] == pytest.approx(2 * sys.float_info.epsilon)
    assert report.loc["arithmetic mean", "AUC"] == 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=["a", "a", "b", "b"]), "group 'b' holds only normal clips"),
        (dict(groups=["a", "a", "b"]), r"one machine ID/section per clip: 4 clips, got shape \(3,\)"),
        (dict(groups=["a", None, "a", "a"]), "groups contains missing values"),
        (dict(groups=["a"] * 4, domains=["source"] * 3), "one 'source'/'target' per clip"),
        (dict(groups=["a"] * 4, domains=["source", None, "target", "x"]), r"found \[None, 'x'\]"),
        (dict(groups=["a"] * 4, domains=["source", "target", "source", "source"]),
         "group 'a' has no target-domain normal clips"),
    ],
)
def test_report_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dcase_report([0, 1, 0, 0], [0.1, 0.9, 0.2, 0.3], **kwargs)


def test_report_propagates_score_errors():
    with pytest.raises(ValueError, match="NaN or infinite"):
        dcase_report([0, 1], [np.nan, 1], ["a", "a"])
    with pytest.raises(ValueError, match="one score per clip"):
        dcase_report([0, 1], [0, 1, 2], ["a", "a"])


def _two_domain_clips(seed=0, n=40):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:4] = [0, 1, 0, 1]
    domains = np.array(["source", "source", "target", "target"] + list(rng.choice(["source", "target"], n - 4)))
    groups = np.array(["section_00"] * (n // 2) + ["section_01"] * (n - n // 2))
    for g in ("section_00", "section_01"):  # both classes in each (section, domain)
        for d in ("source", "target"):
            idx = np.flatnonzero((groups == g) & (domains == d))
            y[idx[:2]] = [0, 1]
    score = rng.normal(size=n) + y
    pred = (score > 0.5).astype(int)
    return y, score, pred, groups, domains


def test_result_table_matches_the_official_definitions():
    from sklearn.metrics import f1_score, precision_score, recall_score

    from skasd.metrics import dcase_result_table

    y, score, pred, groups, domains = _two_domain_clips()
    table = dcase_result_table(y, score, pred, groups, domains)
    assert list(table.index) == ["section_00", "section_01", "arithmetic mean", "harmonic mean"]
    assert list(table.columns) == [
        "AUC (source)", "AUC (target)", "pAUC", "pAUC (source)", "pAUC (target)",
        "precision (source)", "precision (target)", "recall (source)", "recall (target)",
        "F1 score (source)", "F1 score (target)"]
    for g in ("section_00", "section_01"):
        row, in_g = table.loc[g], groups == g
        for d in ("source", "target"):
            auc_rows = in_g & ((domains == d) | (y == 1))  # that domain's normals, all anomalies
            dom = in_g & (domains == d)
            assert row[f"AUC ({d})"] == pytest.approx(roc_auc_score(y[auc_rows], score[auc_rows]))
            assert row[f"pAUC ({d})"] == pytest.approx(roc_auc_score(y[dom], score[dom], max_fpr=0.1))
            assert row[f"precision ({d})"] == pytest.approx(precision_score(y[dom], pred[dom], zero_division=0))
            assert row[f"recall ({d})"] == pytest.approx(recall_score(y[dom], pred[dom]))
            assert row[f"F1 score ({d})"] == pytest.approx(f1_score(y[dom], pred[dom]))
        assert row["pAUC"] == pytest.approx(roc_auc_score(y[in_g], score[in_g], max_fpr=0.1))
    sections = table.iloc[:2].to_numpy(float)
    np.testing.assert_allclose(table.loc["arithmetic mean"], sections.mean(axis=0))
    np.testing.assert_allclose(table.loc["harmonic mean"], hmean(np.maximum(sections, sys.float_info.epsilon), axis=0))
    # the AUC columns are dcase_report's
    report = dcase_report(y, score, groups, domains=domains)
    np.testing.assert_allclose(table[report.columns].to_numpy(float), report.to_numpy(float))


def test_result_table_decisions_by_hand_as_the_official_evaluator():
    """Counted by hand, with the official evaluator's definitions (dcase2023_task2_evaluator.py and
    the 2023 baseline's test(): AUC per domain on that domain's normals plus all the section's
    anomalies, but precision, recall and F1 per domain on that domain's clips alone)."""
    from skasd.metrics import dcase_result_table

    #         source: 4 normals, 2 anomalies   target: 2 normals, 2 anomalies
    domains = ["source"] * 6 + ["target"] * 4
    y = [0, 0, 0, 0, 1, 1, 0, 0, 1, 1]
    pred = [1, 0, 0, 0, 1, 0, 0, 1, 1, 1]
    score = [0.5, 0.1, 0.2, 0.3, 0.9, 0.4, 0.15, 0.6, 0.8, 0.7]
    row = dcase_result_table(y, score, pred, ["00"] * 10, domains).loc["00"]
    # source clips: tp 1 (anomaly flagged), fp 1 (a normal flagged), fn 1 (an anomaly missed)
    assert (row["precision (source)"], row["recall (source)"], row["F1 score (source)"]) == pytest.approx((0.5, 0.5, 0.5))
    # target clips: tp 2, fp 1, fn 0 -> 2/3, 1, 0.8. Counting the source anomalies in as well (as
    # the AUC does) would give tp 3, fp 1, fn 1 -> 0.75, 0.75, 0.75: not the evaluator's figure
    assert (row["precision (target)"], row["recall (target)"], row["F1 score (target)"]) == pytest.approx((2 / 3, 1.0, 0.8))
    # AUC (source): source normals .5 .1 .2 .3 against all anomalies .9 .4 .8 .7: 15 of 16 pairs
    assert row["AUC (source)"] == pytest.approx(15 / 16)
    # AUC (target): target normals .15 .6 against .9 .4 .8 .7: 7 of 8 pairs
    assert row["AUC (target)"] == pytest.approx(7 / 8)


def test_result_table_with_no_clip_flagged_gives_zero_as_the_evaluator():
    from skasd.metrics import dcase_result_table

    domains = ["source"] * 4 + ["target"] * 4
    row = dcase_result_table([0, 0, 1, 1] * 2, [0.1, 0.2, 0.3, 0.4] * 2, [0] * 8, ["00"] * 8, domains).loc["00"]
    for d in ("source", "target"):  # tp / max(tp + fp, eps) and the like: 0, not NaN
        assert (row[f"precision ({d})"], row[f"recall ({d})"], row[f"F1 score ({d})"]) == (0.0, 0.0, 0.0)


def test_result_table_errors():
    from skasd.metrics import dcase_result_table

    y, score, pred, groups, domains = _two_domain_clips()
    with pytest.raises(ValueError, match="y_pred has 3 decisions for 40 clips"):
        dcase_result_table(y, score, pred[:3], groups, domains)
    with pytest.raises(ValueError, match="source"):
        dcase_result_table(y, score, pred, groups, np.where(domains == "target", "other", domains))
    one = (groups == "section_00") & (domains == "target") & (y == 1)
    keep = ~one
    with pytest.raises(ValueError, match="target-domain clips of group 'section_00' holds only normal"):
        dcase_result_table(y[keep], score[keep], pred[keep], groups[keep], domains[keep])
