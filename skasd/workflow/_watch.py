"""What ``skasd watch`` does: score each new recording of a folder once into a JSON-lines log,
and tell when the recent scores drift away from the training clips'."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.stats

from ..datasets._dcase import AUDIO_EXTENSIONS, _parse
from ..exceptions import AudioError, UsageError
from ..features._audio import _wav_data_chunk, load_audio
from ..utils._validation import listing
from ._log import WatchLog
from ._pipeline import audio_step, load_model
from ._scoring import score_stream

__all__ = ["ALPHA", "MEDIAN_SHIFT", "Monitor"]

# The drift tests' settings (documented in docs/field.rst): the one-sided binomial test's
# significance level, and how far (in training IQRs) the window's median score may move.
ALPHA = 0.001
MEDIAN_SHIFT = 1.5
# The share of training clips the "auto" contamination rule (0.9 quantile) flags.
_AUTO_RATE = 0.1
_HOOK_TIMEOUT = 60
_MAX_TRIES = 3  # a file's attempts per run that meet an I/O (or the model's) error before it is left alone
_NAP = 0.1  # seconds: how soon a sleeping watch notices SIGINT/SIGTERM or `stop`


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _audio_files(root):
    """``(path, stat)`` of each audio file under ``root``, recursively, one folder listed at a time
    (names in order; hidden files and folders skipped; folder links not followed)."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            if folder == root:
                raise
            continue
        below = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                below.append(entry.path)
            elif entry.name.lower().endswith(AUDIO_EXTENSIONS):
                try:
                    yield entry.path, entry.stat()
                except FileNotFoundError:  # removed since listed
                    continue
        folders.extend(reversed(below))


def _version(record):
    """``(size, mtime_ns)`` of a record's file, or None where the record has not both."""
    size, mtime_ns = record.get("size"), record.get("mtime_ns")
    return (size, mtime_ns) if isinstance(size, int) and isinstance(mtime_ns, int) else None


def _incomplete(path, size):
    """True where a file is visibly still being written: empty, or a WAV whose data chunk is
    missing, of unknown size, or shorter than its header declares."""
    if size == 0:
        return True
    try:
        chunk = _wav_data_chunk(path)
    except OSError:
        return False
    if chunk is None:
        return path.lower().endswith(".wav")
    declared, available = chunk
    return declared in (0, 0xFFFFFFFF) or available < declared


class Monitor:
    """Score each new recording of a folder exactly once into a JSON-lines log, and watch for drift.

    What ``skasd watch`` runs. Every audio file (``.wav``, ``.flac``) under ``data``,
    recursively, is scored once by the model, by its own section's model and threshold
    (its DCASE/MIMII name gives section and domain), and gets one record in ``log``, across
    runs and restarts: the log itself is the memory of what was scored. Once means once per
    version of a file: a file whose size or modification time changes (a recorder that reuses
    its file names) is a new recording and is scored again. A file is scored once it is
    complete: its size and modification time have been stable for ``interval`` seconds, or it
    decodes fully (a WAV holds all the data its header declares). A file that cannot be
    scored as it is (it does not decode, another sample rate, a non-finite score) gets an
    error record and is tried again only if it changes; one that meets another error (an I/O
    error of a network share, too many open files, no memory) gets no record and a warning,
    and is tried again at the next poll (the next run with ``once=True``), at most 3 times
    per run.

    Records are JSON objects, one per line, each written whole and ``fsync``-ed, with an
    ``event`` key:

    - ``"score"``: ``path``, ``section``, ``domain``, ``score`` (anomaly score, higher = more
      anomalous), ``threshold`` (the clip's section's), ``flagged`` (``score > threshold``),
      ``size`` and ``mtime_ns`` (the version of the file scored), ``time`` (UTC, ISO 8601);
    - ``"error"``: ``path``, ``error``, ``size``, ``mtime_ns``, ``time``;
    - ``"drift"``: ``test`` (``"flag_rate"`` or ``"median"``), ``state`` (``"start"`` or
      ``"end"``), the window's figures and ``message`` (see :meth:`drift_tests`);
    - ``"on_anomaly_failed"``: ``path``, ``command``, ``error``, ``time``.

    Parameters
    ----------
    model : str, path-like or Pipeline
        Model file written by ``skasd train`` (loaded once), or a fitted pipeline.
    data : str or path-like
        Folder to watch.
    log : str or path-like
        JSON-lines log (created if missing). One writer at a time: a second monitor of the
        same log raises :class:`~skasd.exceptions.UsageError`.
    interval : float, default=10.0
        Seconds between polls (at least 0.1), and how long a file's size and modification
        time must be stable before it counts as complete.
    on_anomaly : str, default=None
        Shell command run for each flagged clip with its record (one JSON line) on its
        standard input. A failure (non-zero exit, or 60 s without finishing) is logged as an
        ``"on_anomaly_failed"`` record and warned about; the watch goes on.
    window : int, default=50
        Recent clips the drift tests look at.
    alpha : float, default=ALPHA (0.001)
        Significance level of the flag-rate test.
    median_shift : float, default=MEDIAN_SHIFT (1.5)
        How many training interquartile ranges the window's median score may move from the
        training median before it counts as drift.
    batch_size : int, default=8
        Files decoded and scored together; each record is written as soon as its batch is scored.
    verbose : bool, default=False
        Print a line per flagged clip and per poll that scored something.

    Attributes
    ----------
    n_scored_, n_flagged_, n_errors_ : int
        Clips scored, flagged and failed by this monitor (not counting earlier runs).
    n_deferred_ : int
        Attempts that met an I/O (or other passing) error, left to a later poll.

    Examples
    --------
    >>> import os, tempfile
    >>> import skasd
    >>> from skasd.datasets import make_machine_sounds
    >>> from skasd.workflow import build_pipeline, write_dcase_layout
    >>> root = tempfile.mkdtemp()
    >>> bunch = make_machine_sounds(n_normal=8, n_anomaly=2, duration=1.0, random_state=0)
    >>> _ = write_dcase_layout(bunch, root, machine_type="fan")
    >>> train = os.path.join(root, "fan", "train")
    >>> pipe = build_pipeline("knn", {"n_neighbors": 2}, verbose=False)
    >>> pipe = pipe.fit([os.path.join(train, f) for f in sorted(os.listdir(train))])
    >>> log = os.path.join(root, "watch.jsonl")
    >>> monitor = skasd.Monitor(pipe, os.path.join(root, "fan", "test"), log, interval=0)
    >>> _ = monitor.run(once=True)
    >>> monitor.n_scored_  # the 2 held-out normals and the 2 anomalies
    4
    >>> _ = skasd.Monitor(pipe, os.path.join(root, "fan", "test"), log, interval=0).run(once=True)  # nothing new
    >>> sum(1 for _ in open(log))
    4
    """

    def __init__(self, model, data, log, *, interval=10.0, on_anomaly=None, window=50, alpha=ALPHA,
                 median_shift=MEDIAN_SHIFT, batch_size=8, verbose=False):
        self.model, self.data, self.log = model, data, log
        self.interval, self.on_anomaly, self.window = interval, on_anomaly, window
        self.alpha, self.median_shift, self.batch_size, self.verbose = alpha, median_shift, batch_size, verbose

    # ------------------------------------------------------------------ set-up
    def _check(self):
        if not (isinstance(self.interval, (int, float)) and self.interval >= 0):
            raise UsageError(f"interval must be a number of seconds >= 0, got {self.interval!r}")
        for name in ("window", "batch_size"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.alpha < 1:
            raise UsageError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if not self.median_shift > 0:
            raise UsageError(f"median_shift must be positive, got {self.median_shift!r}")
        if not os.path.isdir(self.data):
            raise UsageError(f"data folder not found: {self.data}")
        self._root = os.path.abspath(self.data)
        self._pipe = load_model(self.model, verbose=False) if isinstance(self.model, (str, os.PathLike)) else self.model
        detector = self._pipe[-1]
        self._sections = getattr(detector, "sections_", None)
        contamination = getattr(detector, "contamination", "auto")
        self._rate = _AUTO_RATE if contamination == "auto" else float(contamination)
        self._quartiles = vars(detector).get("train_score_quartiles_")
        if self._quartiles is None:
            warnings.warn("the model file keeps no training score quartiles (saved by an earlier skasd): "
                          "only the flag-rate drift test runs; train it again for the median test")

    def _replay(self, log):
        """What the log says was done: scored file versions, failed files, the recent window, drift states."""
        self._done, self._errors, self._drifting = {}, {}, {}
        self._tries = {}  # {path: (version, failed attempts)} of files that met an I/O error (this run only)
        self._recent = deque(maxlen=self.window)
        for record in log.records():
            event, path = record.get("event"), record.get("path")
            if event == "score":
                # the version scored; None in records of earlier versions without size and mtime_ns:
                # done by path, whatever it holds
                self._done[path] = _version(record)
                self._errors.pop(path, None)
                score = record.get("score")
                if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
                    self._recent.append((score, bool(record.get("flagged"))))  # earlier versions wrote NaN as null
            elif event == "error":
                self._errors[path] = _version(record)
            elif event == "drift":
                self._drifting[record["test"]] = record["state"] == "start"

    # ------------------------------------------------------------------ running
    def run(self, once=False, stop=None):
        """Score what is new; with ``once=False`` keep polling every ``interval`` seconds until
        ``stop`` (a :class:`threading.Event`) is set or SIGINT/SIGTERM arrives (in the main
        thread), finishing the batch in hand; a second SIGINT/SIGTERM gets the handler that
        was there before (Python's: :class:`KeyboardInterrupt` for SIGINT, the end for SIGTERM)
        and stops at once. Returns ``n_flagged_``."""
        self._check()
        self._stop, self._signalled = stop, False
        self.n_scored_ = self.n_flagged_ = self.n_errors_ = self.n_deferred_ = 0
        self._pending = {}
        previous = {}

        def on_signal(signum, frame):
            # A plain flag: a handler that takes a lock (threading.Event.set) can deadlock when
            # the signal lands while the main thread holds it (cpython issue 126434).
            self._signalled = True
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handler = signal.signal(sig, on_signal)
                previous[sig] = signal.SIG_DFL if handler is None else handler  # None: set outside Python
        try:
            with WatchLog(self.log) as log:
                self._log = log
                self._replay(log)
                while True:
                    self._poll()
                    if once or self._stopping():
                        break
                    self._sleep(max(self.interval, 0.1))  # no busy loop at interval 0
                    if self._stopping():
                        break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.n_flagged_

    def _stopping(self):
        return self._signalled or (self._stop is not None and self._stop.is_set())

    def _sleep(self, seconds):
        """Wait ``seconds``, in short naps so that a signal or ``stop`` ends the wait within one."""
        end = time.monotonic() + seconds
        while not self._stopping():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _NAP))

    def _say(self, text):
        if self.verbose:
            print(text, flush=True)

    def _poll(self):
        """One pass over the folder: score the new complete files, a batch at a time."""
        now, pending, batch = time.time(), {}, []
        before = self.n_scored_, self.n_flagged_, self.n_errors_
        try:
            files = _audio_files(self._root)
            for path, st in files:
                key = (st.st_size, st.st_mtime_ns)
                if path in self._done and self._done[path] in (None, key):
                    continue  # scored as it is now: scored again once it changes (a name reused)
                if self._errors.get(path) == key:
                    continue  # failed as it is now: tried again once it changes
                if self._tries.get(path, (None, 0)) == (key, _MAX_TRIES):
                    continue  # given up on for this run
                settled = now - st.st_mtime >= self.interval or self._pending.get(path) == key
                if not settled and _incomplete(path, st.st_size):
                    pending[path] = key  # still being written
                    continue
                batch.append((path, key))
                if len(batch) == self.batch_size:
                    self._score(batch)
                    batch = []
                    if self._stopping():
                        break
            if batch:
                self._score(batch)
        except FileNotFoundError:
            raise UsageError(f"data folder not found: {self.data}") from None
        self._pending = pending
        scored, flagged, errors = (after - then for after, then in zip(
            (self.n_scored_, self.n_flagged_, self.n_errors_), before))
        if scored or errors:
            self._say(f"scored {scored} new clip(s) of {self.data}: {flagged} flagged"
                      + (f", {errors} could not be scored" if errors else ""))

    def _section_of(self, path):
        """``(section, domain, problem)`` of a file from its name."""
        row = _parse(Path(path))
        section, domain = (None, None) if row is None else (row["section_or_id"], row["domain"])
        if self._sections is not None and section not in set(self._sections.tolist()):
            told = "its name gives no section" if section is None else f"its section {section} is not among them"
            return section, domain, (f"the model has one threshold per section ({listing(self._sections.tolist())}) "
                                     f"and {told}")
        return section, domain, None

    def _scores(self, paths, sections):
        """``{path: (score, threshold, flagged)}``, ``{path: error}`` of the files that cannot be
        scored as they are, and ``{path: error}`` of those that met another error (I/O, memory, the
        model's), to try again later. Scored together; one file at a time where the batch as a
        whole fails (another sample rate or length, an I/O error)."""
        detector = self._pipe[-1]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                score, decision, failed = score_stream(self._pipe, paths, on_error="skip", chunk_size=len(paths),
                                                       sections=sections)
        except (ValueError, OSError, MemoryError) as exc:
            if len(paths) == 1:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                # the file's own problem (skasd's errors name the file and what is wrong with it), or not
                return ({}, {paths[0]: message}, {}) if isinstance(exc, (AudioError, UsageError)) else (
                    {}, {}, {paths[0]: message})
            done, failed, retry = {}, {}, {}
            for i, path in enumerate(paths):
                d, f, r = self._scores([path], None if sections is None else [sections[i]])
                done.update(d)
                failed.update(f)
                retry.update(r)
            return done, failed, retry
        retry = {path: failed.pop(path) for path in list(failed) if not self._own_fault(path)}
        kept = [(p, s) for p, s in zip(paths, sections or [None] * len(paths)) if p not in failed and p not in retry]
        done = {}
        for (path, section), s, d in zip(kept, score, decision):
            if not math.isfinite(s):  # never a score record: it would be null in the log and break the drift tests
                failed[path] = f"the model gave a non-finite anomaly score ({float(s)}) for it"
                continue
            threshold = -(detector.offset_ if section is None else detector.section_offsets_[section])
            done[path] = (float(s), float(threshold), bool(d == -1))
        return done, failed, retry

    def _own_fault(self, path):
        """Whether a file that ``score_stream`` left out fails to decode by its content
        (:class:`~skasd.exceptions.AudioError`), not by an I/O error that may pass."""
        feat = audio_step(self._pipe)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_audio(path, sr=feat.sr if feat is not None else 16000)
        except AudioError:
            return True
        except (OSError, ValueError, MemoryError):
            return False
        return False  # decodes now: it was a passing problem

    def _score(self, batch):
        """Score a batch and write each file's record, then run the hook and the drift tests."""
        paths, sections, meta, failed = [], [], {}, {}
        for path, key in batch:
            section, domain, problem = self._section_of(path)
            meta[path] = (section, domain, key)
            if problem:
                failed[path] = problem
            else:
                paths.append(path)
                sections.append(section)
        done, retry = {}, {}
        if paths:
            done, more, retry = self._scores(paths, sections if self._sections is not None else None)
            failed.update(more)
        for path, key in batch:
            section, domain, (size, mtime_ns) = meta[path]
            if path in retry:
                self._defer(path, key, retry[path])
            elif path in done:
                score, threshold, flagged = done[path]
                record = {"event": "score", "path": path, "section": section, "domain": domain, "score": score,
                          "threshold": threshold, "flagged": flagged, "size": size, "mtime_ns": mtime_ns,
                          "time": _now()}
                self._log.append(record)
                self._done[path] = key
                self._errors.pop(path, None)
                self._tries.pop(path, None)
                self.n_scored_ += 1
                self._recent.append((score, flagged))
                if flagged:
                    self.n_flagged_ += 1
                    self._say(f"FLAGGED {path}: anomaly score {score:.4g} > threshold {threshold:.4g}")
                    if self.on_anomaly:
                        self._hook(record)
                self._drift()
            else:
                error = failed.get(path, "not scored")
                self._log.append({"event": "error", "path": path, "error": error, "size": size,
                                  "mtime_ns": mtime_ns, "time": _now()})
                self._errors[path] = key
                self._tries.pop(path, None)
                self.n_errors_ += 1
                print(f"skasd watch: cannot score {path}: {error}", file=sys.stderr, flush=True)

    def _defer(self, path, key, error):
        """Leave a file that met a passing error (I/O, memory) unrecorded, to be tried at the next
        poll (the next run with ``once=True``); after ``_MAX_TRIES`` failures of the same version,
        not again in this run."""
        before, n = self._tries.get(path, (None, 0))
        n = n + 1 if before == key else 1
        self._tries[path] = (key, n)
        self.n_deferred_ += 1
        then = ("not trying it again in this run (it is tried again when it changes or at the next start)"
                if n >= _MAX_TRIES else "trying it again later")
        warnings.warn(f"cannot score {path} now: {error}; {then}")

    def _hook(self, record):
        """Run ``on_anomaly`` with the record on its standard input; log a failure, never raise.

        The command runs in a session (process group) of its own, so that a time-out kills
        whatever it started too, not only the shell."""
        try:
            proc = subprocess.Popen(self.on_anomaly, shell=True, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, start_new_session=True)
        except OSError as exc:
            problem = str(exc)
        else:
            try:
                _, err = proc.communicate(json.dumps(record) + "\n", timeout=_HOOK_TIMEOUT)
                lines = err.strip().splitlines()
                problem = None if proc.returncode == 0 else (
                    f"exit status {proc.returncode}" + (f": {lines[-1]}" if lines else ""))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:  # gone meanwhile
                    pass
                proc.wait()
                for pipe in (proc.stdin, proc.stderr):  # stderr not read to its end: a child that left
                    try:                                # the group may hold it open
                        pipe.close()
                    except OSError:
                        pass
                problem = f"did not finish within {_HOOK_TIMEOUT} s"
        if problem:
            self._log.append({"event": "on_anomaly_failed", "path": record["path"], "command": self.on_anomaly,
                              "error": problem, "time": _now()})
            print(f"skasd watch: --on-anomaly failed for {record['path']}: {problem}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ drift
    def drift_tests(self, scores, flagged):
        """The drift tests on a window of anomaly ``scores`` and ``flagged`` booleans.

        ``"flag_rate"``: the share of flagged clips is improbably high for the model's
        contamination (the share of training clips its threshold flags: 0.1 for ``"auto"``):
        one-sided binomial test (:func:`scipy.stats.binomtest`), p-value below ``alpha``.
        ``"median"``: the window's median score is more than ``median_shift`` training
        interquartile ranges (``train_score_quartiles_``) from the training median, either way.

        Returns
        -------
        tests : dict
            ``{test: (drifting, figures)}``, ``figures`` a dict of the numbers behind it.
        """
        n, k = len(flagged), int(np.sum(flagged))
        p = float(scipy.stats.binomtest(k, n, self._rate, alternative="greater").pvalue)
        tests = {"flag_rate": (p < self.alpha, {"flagged_clips": k, "expected_rate": self._rate, "p_value": p,
                                                "alpha": self.alpha})}
        if self._quartiles is not None:
            q1, q2, q3 = (float(q) for q in self._quartiles)
            median, iqr = float(np.median(scores)), max(q3 - q1, 1e-12)
            shift = (median - q2) / iqr
            tests["median"] = (abs(shift) > self.median_shift,
                               {"median_score": median, "training_median": q2, "training_iqr": q3 - q1,
                                "shift_iqr": shift, "max_shift_iqr": self.median_shift})
        return tests

    def _drift(self):
        """Write a drift record where a test's verdict on the full window changes; warn at a start."""
        if len(self._recent) < self.window:
            return
        scores, flagged = zip(*self._recent)
        for test, (drifting, figures) in self.drift_tests(scores, flagged).items():
            if drifting == self._drifting.get(test, False):
                continue
            self._drifting[test] = drifting
            n = len(flagged)
            if test == "flag_rate":
                what = (f"{figures['flagged_clips']} of the last {n} clips flagged, where the model's threshold "
                        f"flags {figures['expected_rate']:.0%} of normal clips (binomial p = {figures['p_value']:.2g})")
            else:
                what = (f"the median anomaly score of the last {n} clips is {figures['median_score']:.4g}, "
                        f"{figures['shift_iqr']:+.1f} training IQRs from the training median {figures['training_median']:.4g}")
            if drifting:
                message = (f"drift: {what}. Inspect the flagged clips (skasd evaluate --model MODEL --data "
                           f"{self.log} --report clips.html), or, if the machine now runs in a new normal "
                           "condition, adapt the model with normal clips of it (skasd adapt)")
                warnings.warn(message)
            else:
                message = f"drift over: {what}"
            self._log.append({"event": "drift", "test": test, "state": "start" if drifting else "end", "window": n,
                              **figures, "message": message, "time": _now()})
