import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    pytest.importorskip("pydata_sphinx_theme")
    pytest.importorskip("sphinx_gallery")
    pytest.importorskip("matplotlib")
    if not (DOCS / "conf.py").is_file():
        pytest.skip("docs/ not in this checkout")
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True, text=True,
        # the gallery executes the quickstart only: tests/test_examples.py runs every example
        env={**os.environ, "OMP_NUM_THREADS": "1", "SKASD_DOCS_EXAMPLES": r"quickstart\.py$"},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "api.html").read_text()
    for name in ("LogMelTransformer", "CNNAE", "NormalTrainCV", "pauc_score", "load_dcase"):
        assert name in html
    # the gallery ran the examples: their printed tables and their figures are on the pages
    quickstart = (tmp_path / "auto_examples" / "quickstart.html").read_text()
    assert "sphx-glr-script-out" in quickstart and "AUC" in quickstart
    assert "sphx_glr_quickstart_001.png" in quickstart
    assert (tmp_path / "_images" / "sphx_glr_quickstart_001.png").stat().st_size > 1000
    # offline: no page loads anything from the network
    remote = re.compile(r'<(script|link|img)[^>]+(src|href)="(https?:)?//')
    fetching = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.html") if remote.search(p.read_text())]
    assert not fetching, f"pages that load from the network: {fetching}"
