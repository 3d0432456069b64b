"""Read a written report back: tables, ranked clips and every image/audio source."""

import base64
import io
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote


class Page(HTMLParser):
    """Parse the report: ``tables[id] -> {header, rows, foot}``, ``sections[id] -> [clip attrs]``,
    ``sources -> [(tag, src)]``, ``links -> [href/src of every element]``, ``text``."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tables, self.sections, self.sources, self.links, self.meta = {}, {}, [], [], []
        self._table = self._row = self._cell = self._section = self._clip = None
        self._explain = False
        self._part = "body"
        self.text = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "meta":
            self.meta.append(a)
        elif tag == "table" and "id" in a:
            self._table = self.tables.setdefault(a["id"], {"header": [], "rows": [], "foot": []})
        elif self._table is not None and tag in ("thead", "tbody", "tfoot"):
            self._part = {"thead": "header", "tbody": "rows", "tfoot": "foot"}[tag]
        elif self._table is not None and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("th", "td"):
            self._cell = {"text": "", "value": a.get("data-value")}
        elif tag == "section" and "id" in a:
            self._section = self.sections.setdefault(a["id"], [])
        elif tag == "li" and a.get("class") == "clip":
            self._clip = {**a, "audio": None, "img": None, "badges": [], "explain": None}
            self._section.append(self._clip)
        elif tag == "p" and a.get("class") == "explain" and self._clip is not None:
            self._explain, self._clip["explain"] = True, ""
        elif tag in ("img", "audio"):
            self.sources.append((tag, a.get("src")))
            if self._clip is not None:
                self._clip[tag] = a.get("src")

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._part == "header":
                self._table["header"] = [c["text"] for c in self._row]
            else:
                self._table[self._part].append(self._row)
            self._row = None
        elif tag == "table":
            self._table, self._part = None, "body"
        elif tag == "li":
            self._clip = None
        elif tag == "p":
            self._explain = False
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
        if self._explain:
            self._clip["explain"] += data
        if self._clip is not None and data.startswith(("label: ", "flagged: ")):
            self._clip["badges"].append(data)


def read_source(src, page_path):
    """The bytes a src points to: a base64 data URI or a path relative to the page."""
    if src.startswith("data:"):
        header, payload = src.split(",", 1)
        assert header.endswith(";base64"), header
        return header[5:].split(";")[0], base64.b64decode(payload, validate=True)
    assert "://" not in src and not src.startswith("/"), f"not a relative link: {src}"
    target = Path(page_path).parent / unquote(src)
    assert target.is_file(), f"{src} does not resolve beside the page"
    return None, target.read_bytes()


def decode_audio(payload):
    import soundfile as sf

    return sf.read(io.BytesIO(payload), dtype="float32")


def decode_image(payload):
    from PIL import Image

    with Image.open(io.BytesIO(payload)) as img:
        img.load()
        return img.format, img.size


def write_scored_report(scored, name, clips=None, **kwargs):
    """``write_report`` of the ``scored`` fixture's clips, as the CLI calls it."""
    from skasd.report import write_report

    kwargs = {"estimator": scored["pipe"], "model_path": scored["root"] / "model.joblib",
              "data_dir": scored["root"] / "data", **kwargs}
    clips = scored["clips"] if clips is None else clips
    return write_report(scored["root"] / name, clips, scored["score"], **kwargs)
