"""Shared pytest fixtures: the real clips in ``../shared/data`` (skipped when absent)."""

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    # One torch thread: with torch's default OpenMP threads on a 2-core machine that anything
    # else also uses, every small op waits at a barrier (CNNAE epochs ran 30x slower here).
    import atexit
    import shutil
    import tempfile

    import torch

    torch.set_num_threads(1)
    # Tests never download: the default recipe's weights are not fetched (it falls back), and an
    # empty skasd cache of the session's own keeps a developer's cached weights from changing what
    # the default trains. Tests that need the aisfx weights pass the shared checkpoint.
    os.environ["SKASD_OFFLINE"] = "1"
    os.environ["SKASD_CACHE"] = cache = tempfile.mkdtemp(prefix="skasd-test-cache-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)


_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data_dir():
    """Folder of the shared real clips, from ``$SKASD_SHARED_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("SKASD_SHARED_DATA", _DEFAULT))


@pytest.fixture(scope="session")
def shared_data():
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"shared real clips not found at {root} (set SKASD_SHARED_DATA)")
    return root


@pytest.fixture(scope="session")
def slider_dir(shared_data):
    """DCASE 2020 slider id_00: 75 train normals + 1 test anomaly."""
    return shared_data / "zyy438-abnormal-listener"


@pytest.fixture(scope="session")
def fan_dir(shared_data):
    """MIMII fan id_00: 20 normal + 20 abnormal clips."""
    return shared_data / "mimii-fan-id00"


@pytest.fixture(scope="session")
def toycar_dir(shared_data):
    """DCASE 2023 ToyCar section 00: 490 source + 10 target train normals, 101 labelled test clips."""
    return shared_data / "dcase2023-toycar"


@pytest.fixture(scope="session")
def aisfx_weights(shared_data):
    """The published aisfx checkpoint kept beside the data (``../shared/models/aisfx``)."""
    path = shared_data.parent / "models" / "aisfx" / "checkpoint.pth"
    if not path.is_file():
        pytest.skip(f"no aisfx checkpoint at {path}")
    return path
