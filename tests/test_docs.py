import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    if not (DOCS / "conf.py").is_file():
        pytest.skip("docs/ not in this checkout")
    res = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "api.html").read_text()
    for name in ("LogMelTransformer", "CNNAE", "NormalTrainCV", "pauc_score", "load_dcase"):
        assert name in html
