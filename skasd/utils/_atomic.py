"""Atomic writes of output files (submission CSVs, models, reports)."""

import contextlib
import os
import tempfile
from pathlib import Path


def _umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    An interrupted or failed write never leaves a half-written file where a good
    one was: the temporary file is removed and ``path`` is untouched. The file gets
    the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask),
    not the private ``0o600`` of the temporary file.

    Examples
    --------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "scores.csv")
    >>> with atomic_path(target) as tmp:
    ...     _ = open(tmp, "w").write("a.wav,1.0\\n")
    >>> open(target).read()
    'a.wav,1.0\\n'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
