"""Headless Chromium opens written reports from disk: the page renders, has no console errors,
and every audio element loads and decodes in the browser."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.report._page import Page, write_scored_report

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found (Debian package 'chromium'; .ci/run installs it when it runs as root)",
)
# Reports that audio elements could play: written into the page's DOM once loading settles.
PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var audio = Array.prototype.slice.call(document.querySelectorAll("audio"));
  document.body.setAttribute("data-probe", JSON.stringify(audio.map(function (a) {
    return [a.readyState, a.duration, a.error ? a.error.code : 0]; })));
}, 1500); });
</script></body>"""


def _chromium(page, tmp_path, *args):
    """Run headless Chromium on the page (no network); return (stdout, console lines)."""
    res = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",  # nothing reachable
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         *args, page.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, [line for line in res.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.parametrize("width, height", [(1280, 1600), (390, 1600)], ids=["laptop", "phone"])
def test_screenshot_not_blank(scored, tmp_path, width, height):
    from PIL import Image

    page = write_scored_report(scored, f"shot_{width}.html", top_k=3)
    shot = tmp_path / "shot.png"
    _, console = _chromium(page, tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}")
    assert not console, console
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.shape == (height, width)
    assert pixels.std() > 20  # text, tables and figures, not one flat colour
    assert (pixels < 128).mean() > 0.01  # and a fair amount of dark ink on the light page


@pytest.mark.parametrize("audio", ["embed", "folder"])
def test_dom_and_audio_play(scored, tmp_path, audio):
    report = write_scored_report(scored, f"dom_{audio}.html", top_k=3, audio=audio)
    probed = report.with_name(f"probe_{audio}.html")  # beside it, so the audio folder resolves
    probed.write_text(report.read_text().replace("</body>", PROBE), encoding="utf-8")
    dom, console = _chromium(probed, tmp_path, "--dump-dom", "--virtual-time-budget=10000")
    assert not console, console
    page = Page(dom)
    assert len(page.tables["metrics"]["rows"]) == 2 and page.tables["counts"]["rows"]
    n_audio = sum(tag == "audio" for tag, _ in page.sources)
    assert n_audio >= 3
    assert 'tabindex="0"' in dom  # the sorting script ran
    probe = json.loads(re.search(r'data-probe="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    assert len(probe) == n_audio
    for ready, duration, error in probe:
        assert error == 0 and ready >= 1 and duration == pytest.approx(1.0, abs=0.01)
