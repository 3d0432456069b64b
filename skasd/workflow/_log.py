"""The JSON-lines log of ``skasd watch``: one record per line, appended whole, read back after a crash.

A record is written as one ``os.write`` of a complete line to a file opened ``O_APPEND``,
then ``fsync``-ed: after a crash the log holds whole records plus at most one torn last line,
which :class:`WatchLog` cuts off when it opens the log again. One writer at a time: the
writer holds ``fcntl.flock`` on ``<log>.lock``.
"""

import errno
import fcntl
import json
import math
import os
import warnings
from pathlib import Path

import pandas as pd

from ..datasets._dcase import COLUMNS, _parse
from ..exceptions import UsageError

__all__ = ["WatchLog", "log_clips", "read_records"]


def _clean(value):
    """``value`` with non-finite floats as None, so that every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_records(path, complete_only=True):
    """The records of a watch log, one dict per line, in order (a generator: one line in memory).

    A last line without its newline (a record torn by a crash, or one being written) is left
    out. Any other line that is not a JSON object raises :class:`~skasd.exceptions.UsageError`
    naming the line.
    """
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n") and complete_only:
                return
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise UsageError(f"{path} line {number} is not a JSON record: {line[:60]!r}")
            yield record


def _end_of_last_line(fd):
    """Offset just after the last newline of the open file ``fd`` (0 when it has none)."""
    size = os.fstat(fd).st_size
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        block = os.pread(fd, pos - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


class WatchLog:
    """The watch log opened for appending, under its lock (a context manager).

    Opening takes ``fcntl.flock`` on ``<path>.lock`` (a second writer gets a
    :class:`~skasd.exceptions.UsageError`), creates the log if needed and truncates a torn
    last line. :meth:`append` writes one record as one line, all or nothing.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._fd = self._lock_fd = None

    def __enter__(self):
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"cannot write the log {self.path}: {exc.strerror} ({lock})") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise UsageError(
                f"another skasd watch is writing {self.path} (it holds {lock}): stop it, or give this one "
                "another --log"
            ) from None
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
            end = _end_of_last_line(self._fd)
            if end < os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, end)  # the torn record of an interrupted write
                os.fsync(self._fd)
                warnings.warn(f"{self.path}: cut off an incomplete last line (a write interrupted by a crash)")
        except OSError as exc:
            self.__exit__(None, None, None)
            raise UsageError(f"cannot write the log {self.path}: {exc.strerror}") from None
        except BaseException:  # anything else (a warning turned into an error, Ctrl-C) must not keep the lock
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for fd in (self._fd, self._lock_fd):  # closing the lock file releases the lock
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None

    def records(self):
        """The records already in the log (:func:`read_records`)."""
        return read_records(self.path)

    def append(self, record):
        """Write ``record`` as one JSON line and ``fsync`` it. A failed or short write (a full disk)
        is cut back off the log and raises :class:`~skasd.exceptions.UsageError`."""
        data = (json.dumps({k: _clean(v) for k, v in record.items()}, allow_nan=False) + "\n").encode()
        size = os.fstat(self._fd).st_size
        try:
            if os.write(self._fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise UsageError(f"cannot write to the log {self.path}: {exc.strerror or exc}") from None


def log_clips(path):
    """The clips a watch log scored, as rows of :func:`skasd.datasets.load_dcase`: what
    ``skasd evaluate --data LOG.jsonl`` scores and reports on.

    Each scored file once, with the section and domain of its record and the label its DCASE
    name gives (None for other names); the machine type is the log's name. Files that are gone
    are left out with a warning; a log without score records raises
    :class:`~skasd.exceptions.UsageError`.
    """
    rows, seen, gone = [], set(), []
    for record in read_records(path):
        if record.get("event") != "score" or record.get("path") in seen:
            continue
        seen.add(record["path"])
        if not os.path.isfile(record["path"]):
            gone.append(record["path"])
            continue
        parsed = _parse(Path(record["path"])) or {}
        rows.append({"path": record["path"], "machine_type": Path(path).stem, "split": "test",
                     "section_or_id": record.get("section") or "section_00", "domain": record.get("domain"),
                     "label": parsed.get("label"), "attributes": parsed.get("attributes", {})})
    if gone:
        warnings.warn(f"{len(gone)} file(s) of {path} are gone and left out, e.g. {gone[0]}")
    if not rows:
        raise UsageError(f"no clips to evaluate in {path}: it holds no score record of an existing file")
    return pd.DataFrame(rows, columns=COLUMNS, dtype=object).astype({"path": str, "section_or_id": str})
