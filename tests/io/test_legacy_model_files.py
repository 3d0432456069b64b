"""Model files written by an earlier skasd still load and score as they did.

The files in ``tests/fixtures`` were written by skasd 0.1.0 before the package was
restructured (see ``tests/fixtures/make_model_files.py``); ``expected.json`` holds the scores
that skasd computed from them then.
"""

import gzip
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import skasd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
NAMES = sorted(k for k in EXPECTED if k.endswith(".skasd"))

sys.path.insert(0, str(FIXTURES))
try:
    from make_model_files import scoring_input
finally:
    sys.path.remove(str(FIXTURES))


@pytest.fixture(scope="module")
def W():
    return scoring_input()


def _model_file(name, tmp_path):
    path = FIXTURES / name
    if path.exists():
        return path
    with gzip.open(f"{path}.gz", "rb") as src, open(tmp_path / name, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return tmp_path / name


@pytest.mark.parametrize("name", NAMES)
def test_old_model_file_loads_and_scores_as_before(name, W, tmp_path):
    expected = EXPECTED[name]
    path = _model_file(name, tmp_path)
    assert skasd.model_info(path)["versions"]["skasd"] == "0.1.0"
    model = skasd.load(path)
    assert_allclose(model.score_samples(W), expected["score_samples"], rtol=1e-5, atol=1e-7)
    assert_array_equal(model.predict(W), expected["predict"])
    if "transform" in expected:
        assert_allclose(model[1].transform(model[0].transform(W)), expected["transform"], rtol=1e-5, atol=1e-6)
    if "predict_section" in expected:
        sections = ["id_00", "id_02"] * 3
        Z = model[0].transform(W)
        assert_array_equal(model[-1].predict(Z, section=sections), expected["predict_section"])
        assert_allclose(model[-1].score_samples(Z, section=sections), expected["score_samples_section"], rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_old_model_file_saves_again(name, W, tmp_path):
    """A loaded old model is written in the current format and reads back with the same scores."""
    model = skasd.load(_model_file(name, tmp_path))
    again = skasd.load(skasd.save(model, tmp_path / "again.skasd"))
    assert_allclose(again.score_samples(W), EXPECTED[name]["score_samples"], rtol=1e-5, atol=1e-7)
    assert np.isfinite(again.score_samples(W)).all()
