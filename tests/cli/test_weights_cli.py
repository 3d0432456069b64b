"""``skasd weights``: fetch published weights into the user's cache (offline here, from a local copy), list them."""

import subprocess

import pytest

from skasd.cli import main
from skasd.features import _weights


@pytest.fixture
def checkpoint(shared_data):
    path = shared_data.parent / "models" / "aisfx" / "checkpoint.pth"
    if not path.is_file():
        pytest.skip(f"no aisfx checkpoint at {path}")
    return path


def test_fetch_from_a_local_checkpoint_then_list(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path))
    assert main(["weights", "list"]) == 0
    assert "aisfx: missing at " + str(tmp_path / "weights" / "aisfx-0.1.2.safetensors") in capsys.readouterr().out
    assert main(["weights", "fetch", "aisfx", "--from", str(checkpoint)]) == 0
    assert "checked and stored at" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "aisfx: present" in out and "CC BY 4.0" in out and "Ma and A. Lerch" in out
    # a damaged cache file is reported, and fetched again
    (tmp_path / "weights" / "aisfx-0.1.2.safetensors").write_bytes(b"junk")
    assert main(["weights", "list"]) == 0
    assert "aisfx: refused" in capsys.readouterr().out
    assert main(["weights", "fetch", "aisfx", "--from", str(checkpoint)]) == 0  # no --force needed
    assert "fetching the weights again" in capsys.readouterr().err
    _weights.read_aisfx_weights(tmp_path / "weights" / "aisfx-0.1.2.safetensors")


def test_fetch_failures_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKASD_CACHE", str(tmp_path))
    fake = tmp_path / "checkpoint.pth"
    fake.write_bytes(b"PK not the checkpoint")
    assert main(["weights", "fetch", "aisfx", "--from", str(fake)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pth: sha256" in err and "is not that of the published aisfx checkpoint" in err

    def no_index(cmd, **kw):  # pip without network
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for aisfx==0.1.2")

    monkeypatch.setattr(_weights.subprocess, "run", no_index)
    assert main(["weights", "fetch", "aisfx"]) == 2
    err = capsys.readouterr().err
    assert "pip download aisfx==0.1.2 --no-deps" in err and "No matching distribution" in err
    assert not (tmp_path / "weights").exists()
