"""Tests of skasd.report.write_report: the page read back against dcase_report, the scores and the clips."""

import doctest
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from skasd import load_audio  # noqa: E402
from skasd.workflow import build_pipeline, score_clips  # noqa: E402
from skasd.datasets import load_dcase  # noqa: E402
from skasd.metrics import dcase_report  # noqa: E402
from skasd.report import _html, write_report  # noqa: E402
from tests.report._page import Page, decode_audio, decode_image, read_source, write_scored_report  # noqa: E402

TOP_K = 4
SR = 16000


def _write(scored, name, clips=None, **kwargs):
    path = write_scored_report(scored, name, clips=clips, **{"top_k": TOP_K, **kwargs})
    return path, Page(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def embedded(scored):
    return _write(scored, "report.html", audio="embed")


def _values(rows):
    return {r[0]["text"]: [float(c["value"]) for c in r[1:]] for r in rows}


def test_table_equals_dcase_report(scored, embedded):
    _, page = embedded
    clips = scored["clips"]
    expected = dcase_report(clips["label"], scored["score"], clips["section_or_id"])
    table = page.tables["metrics"]
    assert table["header"] == ["ID / section", "AUC", "pAUC"]
    got = {**_values(table["rows"]), **_values(table["foot"])}
    assert list(got) == list(expected.index)  # ids sorted, then the two means
    for name, row in expected.iterrows():
        assert got[name] == row.tolist()  # exact: the page keeps repr() of each float
    counts = page.tables["counts"]
    assert counts["header"] == ["ID / section", "clips", "normal", "anomaly", "unlabelled", "flagged"]
    total = [int(c["text"]) for c in counts["foot"][0][1:]]
    n_anomaly = int((clips["label"] == "anomaly").sum())
    assert total == [len(clips), len(clips) - n_anomaly, n_anomaly, 0, int((scored["decision"] == -1).sum())]


def test_per_domain_table(scored):
    clips = scored["clips"].copy()
    clips["domain"] = np.where(np.arange(len(clips)) % 2, "target", "source")
    _, page = _write(scored, "domains.html", clips=clips, audio="none")
    expected = dcase_report(clips["label"], scored["score"], clips["section_or_id"], domains=clips["domain"])
    table = page.tables["metrics"]
    assert table["header"][1:] == ["AUC (source)", "AUC (target)", "pAUC"]
    got = {**_values(table["rows"]), **_values(table["foot"])}
    assert got == {name: row.tolist() for name, row in expected.iterrows()}
    assert page.tables["counts"]["header"][-3:] == ["source", "target", "flagged"]


def test_ranked_lists(scored, embedded):
    _, page = embedded
    clips, score, pipe = scored["clips"], scored["score"], scored["pipe"]
    threshold = -pipe[-1].offset_
    by_score = np.argsort(-score, kind="stable")
    normals = np.flatnonzero(clips["label"] == "normal")
    expected = {
        "anomalous": by_score[:TOP_K],
        "false-alarms": normals[np.argsort(-score[normals], kind="stable")][:TOP_K],
        "borderline": np.argsort(np.abs(score - threshold), kind="stable")[:TOP_K],
        "reference": by_score[-3:],
    }
    assert set(expected) <= set(page.sections)
    predicted = {i: d == -1 for i, d in enumerate(scored["decision"])}
    for key, indices in expected.items():
        cards = page.sections[key]
        shown = [int(c["data-index"]) for c in cards]
        assert sorted(shown) == sorted(indices.tolist()), key
        scores = [float(c["data-score"]) for c in cards]
        assert scores == sorted(scores, reverse=True), f"{key} not ranked by score"
        assert scores == [score[i] for i in shown]
        for c in cards:
            i = int(c["data-index"])
            assert f"label: {clips['label'][i]}" in c["badges"]
            assert f"flagged: {'yes' if predicted[i] else 'no'}" in c["badges"]  # the CLI's predict()
    assert all(clips["label"][int(c["data-index"])] == "normal" for c in page.sections["false-alarms"])
    text = " ".join(page.text)  # clips are named by their path inside the data folder
    assert all(f"fan/test/{Path(clips['path'][int(c['data-index'])]).name}" in text for c in page.sections["anomalous"])
    # each clip is embedded once; later lists link back to it
    players = [c["data-index"] for cards in page.sections.values() for c in cards if c["audio"]]
    assert len(players) == len(set(players)) == len({i for v in expected.values() for i in v.tolist()})


def test_every_source_decodes(scored, embedded):
    path, page = embedded
    clips = scored["clips"]
    images = [src for tag, src in page.sources if tag == "img"]
    assert len(images) >= 3 + len(set(int(c["data-index"]) for v in page.sections.values() for c in v))
    for src in images:
        mime, payload = read_source(src, path)
        fmt, (width, height) = decode_image(payload)
        assert mime == f"image/{fmt.lower()}" and fmt in ("PNG", "JPEG") and width > 100 and height > 50
    assert {c["img"].split(";")[0] for v in page.sections.values() for c in v if c["img"]} == {"data:image/jpeg"}
    for card in (c for v in page.sections.values() for c in v if c["audio"]):
        mime, payload = read_source(card["audio"], path)
        assert mime == "audio/flac"
        wave, sr = decode_audio(payload)
        original = load_audio(clips["path"][int(card["data-index"])], sr=SR)
        assert sr == SR and wave.shape == original.shape
        np.testing.assert_allclose(wave, original, atol=1.01 / 2**15)  # 16-bit round trip


def test_no_network_and_figures(embedded):
    path, page = embedded
    for link in page.links:
        assert link.startswith(("data:", "#")) or "://" not in link, link
    csp = [m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]
    text = " ".join(page.text)
    for caption in ("ROC curve", "Score histogram", "Training loss", "DenseAE", "LogMelTransformer"):
        assert caption in text


def test_audio_folder(scored, embedded, monkeypatch):
    path, page = _write(scored, "folder.html", audio="folder")
    audio = [src for tag, src in page.sources if tag == "audio"]
    assert audio and all(src.startswith("folder_audio/") for src in audio)
    for src in audio:
        assert read_source(src, path)[0] is None
        assert decode_audio(read_source(src, path)[1])[1] == SR
    assert "data:audio" not in path.read_text()
    folder_bytes = sum(f.stat().st_size for f in (path.parent / "folder_audio").iterdir())
    assert embedded[0].stat().st_size - path.stat().st_size > folder_bytes  # base64 adds a third
    # "auto" embeds under the limit and moves the clips out above it
    _, page = _write(scored, "auto.html", top_k=2)
    assert all(src.startswith("data:audio/flac") for tag, src in page.sources if tag == "audio")
    monkeypatch.setattr(_html, "EMBED_LIMIT", 1000)
    _, page = _write(scored, "auto.html", top_k=2)
    assert all(src.startswith("auto_audio/") for tag, src in page.sources if tag == "audio")
    assert "auto_audio/" in " ".join(page.text)  # the page says where the clips are


def test_unlabelled(scored):
    clips = scored["clips"].assign(label=None)
    path, page = _write(scored, "unlabelled.html", clips=clips, audio="none")
    assert "metrics" not in page.tables
    text = " ".join(page.text)
    assert "unlabelled" in text and "ROC curve" not in text and "Score histogram" in text
    assert "false-alarms" not in page.sections
    assert [int(c["data-index"]) for c in page.sections["anomalous"]] == np.argsort(-scored["score"])[:TOP_K].tolist()
    assert all("label: unknown" in c["badges"] for c in page.sections["anomalous"])
    assert not [tag for tag, _ in page.sources if tag == "audio"]
    # no estimator and no threshold: no decisions, no borderline list
    path = write_report(path, list(clips["path"]), scored["score"], audio="none", top_k=2)
    page = Page(path.read_text())
    assert "borderline" not in page.sections and "flagged" not in page.tables["counts"]["header"]


def test_scores_from_estimator(scored):
    clips = scored["clips"]
    path = write_report(scored["root"] / "est.html", clips, estimator=scored["pipe"], audio="none", top_k=2)
    cards = Page(path.read_text()).sections["anomalous"]
    assert [float(c["data-score"]) for c in cards] == sorted(scored["score"], reverse=True)[:2]


def test_everything_is_escaped(scored, tmp_path):
    evil = tmp_path / "<b>x&y\"q.wav"
    shutil.copy(scored["clips"]["path"][0], evil)
    clips = pd.DataFrame({"path": [str(evil)], "section_or_id": ["<i>id</i>"], "label": ["normal"]})
    title = "<script>alert('x')</script> & co"
    path = write_report(tmp_path / "r.html", clips, [0.5], title=title, data_dir="<dir>", threshold=0.1)
    html = path.read_text()
    for raw in (title, "<b>x&y\"q", "<i>id</i>", "<dir>"):
        assert raw not in html
    text = " ".join(Page(html).text)
    for raw in (title, "<b>x&y\"q.wav", "<i>id</i>", "<dir>"):
        assert raw in text


def test_bad_input(scored, tmp_path):
    clips, score = scored["clips"], scored["score"]
    out = tmp_path / "r.html"
    cases = [
        ((clips.drop(columns="path"), score), {}, "'path' column"),
        ((clips, score[:-1]), {}, "one score per clip"),
        ((clips, np.r_[np.nan, score[1:]]), {}, "NaN or infinite"),
        ((clips,), {}, "pass anomaly_score"),
        ((clips, score), {"top_k": 0}, "top_k"),
        ((clips, score), {"audio": "mp3"}, "audio must be one of"),
        ((clips, score), {"threshold": np.inf}, "threshold"),
        ((clips.assign(label="broken"), score), {}, "clips['label']"),
        ((clips.iloc[:0], score[:0]), {}, "empty"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
            write_report(out, *args, **kwargs)
    gone = clips.assign(path=clips["path"].where(clips.index != int(np.argmax(score)), str(tmp_path / "gone.wav")))
    with pytest.raises(FileNotFoundError, match="gone.wav"):
        write_report(out, gone, score)
    assert not list(tmp_path.iterdir())  # nothing written on failure


def test_atomic_write(scored, tmp_path, monkeypatch):
    out = tmp_path / "r.html"
    out.write_text("previous report")

    def broken(context):
        raise RuntimeError("template failed")

    monkeypatch.setattr(_html, "render", broken)
    with pytest.raises(RuntimeError, match="template failed"):
        write_report(out, scored["clips"], scored["score"], audio="none", top_k=1)
    assert out.read_text() == "previous report" and [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_docstring_example():
    assert doctest.testmod(_html, raise_on_error=True).attempted > 0


@pytest.mark.slow
def test_real_fan_clips(fan_dir, tmp_path):
    """MIMII fan id_00: trained on 8 normals, the other 32 clips (10 s each) reported, audio embedded."""
    clips = load_dcase(fan_dir)
    normal = clips.index[clips["label"] == "normal"]
    pipe = build_pipeline("denseae", {"max_epochs": 2, "random_state": 0}, verbose=False)
    pipe.fit(list(clips.loc[normal[:8], "path"]))
    test = clips.drop(index=normal[:8]).reset_index(drop=True)
    _, score, _ = score_clips(pipe, test)
    path = write_report(tmp_path / "fan.html", test, score, estimator=pipe, data_dir=fan_dir, top_k=5)
    page = Page(path.read_text())
    expected = dcase_report(test["label"], score, test["section_or_id"])
    got = {**_values(page.tables["metrics"]["rows"]), **_values(page.tables["metrics"]["foot"])}
    assert got == {name: row.tolist() for name, row in expected.iterrows()}
    cards = page.sections["anomalous"]
    assert [float(c["data-score"]) for c in cards] == sorted(score, reverse=True)[:5]
    for card in (c for v in page.sections.values() for c in v if c["audio"]):
        wave, sr = decode_audio(read_source(card["audio"], path)[1])
        assert sr == SR and wave.shape == (10 * SR,)
    assert path.stat().st_size < _html.EMBED_LIMIT * 4 / 3 + 2**20


def test_without_matplotlib(scored, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.warns(UserWarning, match="matplotlib is not installed"):
        path, page = _write(scored, "nompl.html", top_k=2)
    assert not [src for tag, src in page.sources if tag == "img"]
    assert len([src for tag, src in page.sources if tag == "audio"]) >= 2
    assert "skasd[plot]" in " ".join(page.text) and "metrics" in page.tables


def test_flagged_clips_are_explained(scored, embedded):
    """Each flagged clip's card carries explain's summary under its player and the overlay image."""
    from skasd.inspection import explain

    _, page = embedded
    clips, pipe = scored["clips"], scored["pipe"]
    first_cards = [c for cards in page.sections.values() for c in cards if c["audio"]]
    flagged = [c for c in first_cards if "flagged: yes" in c["badges"]]
    assert flagged, "the fixture flags no clip"
    for card in first_cards:
        i = int(card["data-index"])
        if card in flagged:
            expected = explain(pipe, [load_audio(clips["path"][i], sr=SR)], n_segments=3)["summary"].iloc[0]
            assert card["explain"] == expected
            assert decode_image(read_source(card["img"], scored["root"])[1])[0] == "JPEG"
        else:
            assert card["explain"] is None


def test_unexplainable_model_gets_a_note(scored, tmp_path):
    from sklearn.pipeline import make_pipeline

    from skasd import ClipStatsTransformer, KNNDetector

    clips = scored["clips"]
    pipe = make_pipeline(ClipStatsTransformer(), KNNDetector()).fit(list(clips["path"][:8]))
    path = write_report(tmp_path / "r.html", clips, -pipe.score_samples(list(clips["path"])), estimator=pipe,
                        threshold=0.0, top_k=2)
    text = path.read_text()
    assert "The flagged clips are not explained: frame scores need a time axis" in text
    assert 'class="explain"' not in text
