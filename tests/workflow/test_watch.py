import errno
import json
import os
import signal
import subprocess
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import skasd
from skasd.datasets import make_machine_sounds
from skasd.exceptions import UsageError
from skasd.workflow import Monitor, WatchLog, build_pipeline, load_clips, read_records, score_clips


@pytest.fixture(scope="module")
def sounds():
    """1 s generated clips of one machine: 24 normals and 6 anomalies."""
    return make_machine_sounds(n_normal=24, n_anomaly=6, duration=1.0, random_state=0)


@pytest.fixture(scope="module")
def model(sounds, tmp_path_factory):
    """A k-NN on log-mel statistics fitted on the first 16 normals, saved as a model file."""
    normal = np.flatnonzero(sounds.target == 0)
    pipe = build_pipeline("knn", {"n_neighbors": 2}, verbose=False).fit(sounds.data[normal[:16]])
    path = tmp_path_factory.mktemp("model") / "m.skasd"
    skasd.save(pipe, path)
    return path


def _write(folder, sounds, rows, gain=1.0, prefix="1"):
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in rows:
        label = "anomaly" if sounds.target[i] else "normal"
        name = folder / f"{label}_id_00_{prefix}{i:04d}.wav"
        sf.write(name, np.clip(sounds.data[i] * gain, -1, 1), sounds.sr, subtype="PCM_16")
        names.append(name)
    return names


@pytest.fixture
def watched(sounds, tmp_path):
    """A folder with the 8 held-out normals and the 6 anomalies, in a sub-folder for the anomalies."""
    normal, anomaly = np.flatnonzero(sounds.target == 0), np.flatnonzero(sounds.target == 1)
    _write(tmp_path / "in", sounds, normal[16:])
    _write(tmp_path / "in" / "sub", sounds, anomaly)
    return tmp_path / "in"


def _records(log, event=None):
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if event is None or r["event"] == event]


def _run(model, data, log, **kw):
    monitor = Monitor(model, data, log, interval=kw.pop("interval", 0), **kw)
    monitor.run(once=True)
    return monitor


def test_each_clip_once_across_runs_and_new_files(model, watched, sounds, tmp_path):
    log = tmp_path / "w.jsonl"
    first = _run(model, watched, log)
    assert (first.n_scored_, first.n_flagged_, first.n_errors_) == (14, first.n_flagged_, 0)
    assert _run(model, watched, log).n_scored_ == 0  # nothing new
    _write(watched / "new", sounds, np.flatnonzero(sounds.target == 0)[:2], prefix="2")
    assert _run(model, watched, log).n_scored_ == 2
    records = _records(log, "score")
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)) == 16 and all(os.path.isabs(p) for p in paths)
    # the scores, thresholds and flags are those of `skasd score` (score_clips) on the same files
    pipe = skasd.load(model)
    clips = pd.DataFrame({"path": paths, "section_or_id": "id_00"})
    _, score, decision = score_clips(pipe, clips)
    np.testing.assert_allclose([r["score"] for r in records], score, rtol=1e-6)
    assert [r["flagged"] for r in records] == (decision == -1).tolist()
    assert {r["threshold"] for r in records} == {-pipe[-1].offset_}
    assert {r["section"] for r in records} == {"id_00"} and all(r["time"].endswith("+00:00") for r in records)
    # the anomalies (in sub/) are flagged, most normals not
    assert sum(r["flagged"] for r in records if "anomaly" in r["path"]) >= 5
    assert sum(r["flagged"] for r in records if "normal" in r["path"]) <= 3


def test_undecodable_file_error_record_and_retry_only_if_changed(model, watched, sounds, tmp_path):
    log = tmp_path / "w.jsonl"
    bad = watched / "broken.flac"
    bad.write_bytes(b"not audio")
    assert _run(model, watched, log).n_scored_ == 14  # the others go on
    errors = _records(log, "error")
    assert len(errors) == 1 and errors[0]["path"] == str(bad) and "cannot decode" in errors[0]["error"]
    assert "score" not in errors[0]
    run = _run(model, watched, log)
    assert run.n_scored_ == run.n_errors_ == 0  # unchanged: not tried again
    bad.write_bytes(b"still not audio")  # changed: tried again, fails again
    assert _run(model, watched, log).n_errors_ == 1
    sf.write(bad, sounds.data[0], sounds.sr, format="FLAC")  # repaired: scored
    run = _run(model, watched, log)
    assert (run.n_scored_, run.n_errors_) == (1, 0)
    assert [r["event"] for r in _records(log) if r["path"] == str(bad)] == ["error", "error", "score"]


class _Clock:
    """Stands in for the ``time`` module of :mod:`skasd.workflow._watch`: ``sleep`` moves the clock
    on at once, then calls ``on_sleep(clock)``, where a test writes files or sends a signal."""

    def __init__(self, on_sleep=None):
        self.now, self.naps, self.on_sleep = time.time(), [], on_sleep

    def time(self):
        return self.now

    monotonic = time

    def sleep(self, seconds):
        self.naps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(self)


def _touch(path, when):
    os.utime(path, ns=(int(when * 1e9), int(when * 1e9)))


def test_file_being_written_is_not_scored_until_complete(model, sounds, tmp_path, monkeypatch):
    from skasd.workflow import _watch

    data, log = tmp_path / "in", tmp_path / "w.jsonl"
    full = _write(tmp_path / "src", sounds, [0])[0].read_bytes()
    data.mkdir()
    part = data / "normal_id_00_00000001.wav"  # its header declares all of the audio; half is there
    part.write_bytes(full[: len(full) // 2])
    assert _run(model, data, log, interval=3600).n_scored_ == 0  # fresh and incomplete: waits
    assert not log.read_text()
    i = full.find(b"data") + 4  # a streaming writer's WAV: data size unknown (0xFFFFFFFF) until it closes
    streamed = full[:i] + b"\xff\xff\xff\xff" + full[i + 4 :]
    stream = data / "normal_id_00_00000002.wav"
    stream.write_bytes(streamed[: len(full) // 2])
    # both grow by a piece at every nap of the watch (10 per 1 s interval), with mtime = now, up to full size
    pieces = np.linspace(len(full) // 2, len(full), 31).astype(int)[1:]

    def write(clock):
        for path, content in ((part, full), (stream, streamed)):
            size = path.stat().st_size
            if size < len(content):
                with open(path, "ab") as f:
                    f.write(content[size : pieces[np.searchsorted(pieces, size, side="right")]])
                _touch(path, clock.now)

    clock, stop, seen = _Clock(write), threading.Event(), []
    monkeypatch.setattr(_watch, "time", clock)
    monitor = Monitor(model, data, log, interval=1.0)
    real_poll = monitor._poll

    def poll():
        sizes = (part.stat().st_size, stream.stat().st_size)
        real_poll()
        seen.append((sizes, sorted(r["path"][-6:-4] for r in _records(log))))
        if len(seen) == 6:
            stop.set()

    monkeypatch.setattr(monitor, "_poll", poll)
    monitor.run(stop=stop)
    n = len(full)
    assert sum(a < n for (a, _), _ in seen) >= 3, seen  # polled while growing
    for k, ((a, b), scored) in enumerate(seen):
        assert ("01" in scored) == (a == n), seen  # complete as its header says: scored at once
        assert ("02" in scored) == (k > 0 and seen[k - 1][0][1] == b == n), seen  # unchanged for an interval
    assert [r["event"] for r in _records(log)] == ["score", "score"]
    assert part.read_bytes() == full and stream.read_bytes() == streamed


def test_incomplete_wav_unchanged_for_an_interval_is_tried(model, sounds, tmp_path):
    data, log = tmp_path / "in", tmp_path / "w.jsonl"
    full = _write(tmp_path / "src", sounds, [0])[0].read_bytes()
    data.mkdir()
    part = data / "normal_id_00_00000001.wav"
    part.write_bytes(full[: len(full) // 2])
    _touch(part, time.time() - 7200)  # the writer gave up two hours ago
    run = _run(model, data, log, interval=3600)
    assert (run.n_scored_, run.n_errors_) == (0, 1) and "truncated" in _records(log, "error")[0]["error"]


def test_a_signal_only_sets_a_flag_and_a_second_one_gets_the_earlier_handler(model, watched, tmp_path, monkeypatch):
    # the handler must take no lock (threading.Event.set can deadlock in a handler: cpython issue 126434)
    calls, earlier_got = [], []

    class Event(threading.Event):
        def set(self):
            calls.append("set")
            super().set()

    def poll():  # Ctrl-C in the middle of a poll, then again (os.kill runs the handler before it returns)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    def earlier(signum, frame):
        earlier_got.append(signum)

    previous = signal.signal(signal.SIGINT, earlier)
    try:
        monitor = Monitor(model, watched, tmp_path / "w.jsonl", interval=3600)
        monkeypatch.setattr(monitor, "_poll", poll)
        monitor.run(stop=Event())  # returns after the poll, without the hour's sleep
        assert signal.getsignal(signal.SIGINT) is earlier  # restored on return
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == [] and earlier_got == [signal.SIGINT]


def test_a_signal_ends_the_sleep_between_polls(model, watched, tmp_path, monkeypatch):
    from skasd.workflow import _watch

    clock = _Clock(lambda clock: len(clock.naps) == 3 and os.kill(os.getpid(), signal.SIGTERM))
    monkeypatch.setattr(_watch, "time", clock)
    previous = signal.getsignal(signal.SIGTERM)
    monitor = Monitor(model, watched, tmp_path / "w.jsonl", interval=3600)
    monitor.run()
    assert monitor.n_scored_ == 14 and len(clock.naps) == 3 and sum(clock.naps) < 1  # not the hour
    assert signal.getsignal(signal.SIGTERM) is previous


def test_complete_fresh_file_is_scored_at_once(model, sounds, tmp_path):
    # a WAV that holds all its header declares is complete, however fresh (cron right after a copy)
    data = tmp_path / "in"
    _write(data, sounds, [20])
    assert _run(model, data, tmp_path / "w.jsonl", interval=3600).n_scored_ == 1


def test_torn_last_line_is_cut_and_the_clip_scored(model, watched, tmp_path):
    log = tmp_path / "w.jsonl"
    _run(model, watched, log)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]) + lines[-1][:25])  # a crash in the middle of the last write
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert _run(model, watched, log).n_scored_ == 1
    records = _records(log)
    assert len(records) == 14 and len({r["path"] for r in records}) == 14


def test_corrupt_line_in_the_middle_is_an_error(model, watched, tmp_path):
    log = tmp_path / "w.jsonl"
    log.write_text('{"event": "score"\n{}\n')
    with pytest.raises(UsageError, match="line 1 is not a JSON record"):
        _run(model, watched, log)


def test_second_writer_refused(model, watched, tmp_path):
    log = tmp_path / "w.jsonl"
    with WatchLog(log):
        with pytest.raises(UsageError, match="another skasd watch is writing"):
            _run(model, watched, log)
    assert _run(model, watched, log).n_scored_ == 14  # released on exit


def test_bad_input(model, watched, tmp_path):
    with pytest.raises(UsageError, match="data folder not found"):
        _run(model, tmp_path / "missing", tmp_path / "w.jsonl")
    (tmp_path / "file").write_text("x")  # a log "inside" a file cannot be created, even by root
    with pytest.raises(UsageError, match="cannot write the log"):
        _run(model, watched, tmp_path / "file" / "w.jsonl")


def test_full_disk_leaves_no_half_record(model, watched, tmp_path, monkeypatch):
    log = tmp_path / "w.jsonl"
    real_write, calls = os.write, []

    def short_write(fd, data):  # the 3rd record meets a full disk after 10 bytes
        calls.append(len(data))
        return real_write(fd, data[:10]) if len(calls) == 3 else real_write(fd, data)

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(UsageError, match="cannot write to the log"):
        _run(model, watched, log)
    monkeypatch.undo()
    assert len(_records(log)) == 2  # every line whole
    assert _run(model, watched, log).n_scored_ == 12  # and nothing lost


def test_on_anomaly_gets_the_record_and_a_failing_command_is_logged(model, watched, tmp_path):
    log, got = tmp_path / "w.jsonl", tmp_path / "hook.txt"
    run = _run(model, watched, log, on_anomaly=f"cat >> {got}")
    hooked = [json.loads(line) for line in got.read_text().splitlines()]
    assert len(hooked) == run.n_flagged_ > 0 and all(r["flagged"] for r in hooked)
    assert hooked == [r for r in _records(log, "score") if r["flagged"]]
    log2 = tmp_path / "w2.jsonl"
    run = _run(model, watched, log2, on_anomaly="echo boom >&2; exit 3")
    failures = _records(log2, "on_anomaly_failed")
    assert len(failures) == run.n_flagged_ and failures[0]["error"] == "exit status 3: boom"
    assert run.n_scored_ == 14  # the watch went on


def test_drift_record_on_a_level_change(model, sounds, tmp_path):
    normal = np.flatnonzero(sounds.target == 0)
    data, log = tmp_path / "in", tmp_path / "w.jsonl"
    _write(data, sounds, normal[16:24], prefix="3")
    _write(data, sounds, normal[:4], prefix="4")
    run = _run(model, data, log, window=10)
    assert run.n_flagged_ <= 2 and not _records(log, "drift")  # normal operation: no drift
    _write(data, sounds, normal[4:16], gain=4.0, prefix="5")  # the machine now runs 12 dB louder
    with pytest.warns(UserWarning, match=r"drift: .*skasd evaluate .*skasd adapt"):
        _run(model, data, log, window=10)
    drift = _records(log, "drift")
    assert {(r["test"], r["state"]) for r in drift} == {("flag_rate", "start"), ("median", "start")}
    rate = next(r for r in drift if r["test"] == "flag_rate")
    assert rate["p_value"] < 0.001 and rate["flagged_clips"] >= 6 and rate["expected_rate"] == 0.1
    # written once per drift, not again on the next run
    _write(data, sounds, normal[16:20], gain=4.0, prefix="6")
    _run(model, data, log, window=10)
    assert len(_records(log, "drift")) == 2
    # the log's clips are what `skasd evaluate --data LOG.jsonl` inspects
    clips = load_clips(log, split="test")
    assert len(clips) == 28 and set(clips["label"]) == {"normal"} and clips["path"].is_unique


def test_median_shift_uses_the_training_quartiles(model):
    pipe = skasd.load(model)
    monitor = Monitor(pipe, ".", "unused.jsonl")
    monitor._check()
    q1, q2, q3 = pipe[-1].train_score_quartiles_
    tests = monitor.drift_tests([q2 + 1.6 * (q3 - q1)] * 10, [False] * 10)
    assert tests["median"][0] and not tests["flag_rate"][0]
    assert not monitor.drift_tests([q2 + 1.4 * (q3 - q1)] * 10, [False] * 10)["median"][0]
    assert monitor.drift_tests([q2] * 10, [True] * 6 + [False] * 4)["flag_rate"][0]
    assert not monitor.drift_tests([q2] * 10, [True] * 2 + [False] * 8)["flag_rate"][0]


def test_per_file_state_is_a_key_and_memory_flat(model, tmp_path):
    # 10,000 files already in the log: a pass over them keeps one key each, no audio
    data, log = tmp_path / "in", tmp_path / "w.jsonl"
    for d in range(10):
        (data / f"d{d}").mkdir(parents=True)
    with open(log, "w") as f:
        for i in range(10_000):
            path = data / f"d{i % 10}" / f"normal_id_00_{i:08d}.wav"
            path.touch()
            f.write(json.dumps({"event": "score", "path": str(path), "section": "id_00", "domain": None,
                                "score": 0.0, "threshold": 1.0, "flagged": False, "time": "x"}) + "\n")
    monitor = Monitor(model, data, log, interval=0, window=50)
    tracemalloc.start()
    monitor.run(once=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert monitor.n_scored_ == 0 and len(monitor._done) == 10_000 and len(monitor._recent) == 50
    assert not monitor._errors and not monitor._pending
    assert peak < 8e6, f"{peak / 1e6:.1f} MB for 10,000 files"


def test_read_records_skips_a_torn_last_line(tmp_path):
    log = tmp_path / "w.jsonl"
    log.write_text('{"event": "score", "path": "a"}\n{"event": "sco')
    assert list(read_records(log)) == [{"event": "score", "path": "a"}]


def test_model_without_training_quartiles_runs_the_flag_rate_test_only(model, watched, tmp_path):
    pipe = skasd.load(model)
    del pipe[-1].train_score_quartiles_  # as in model files of earlier versions
    monitor = Monitor(pipe, watched, tmp_path / "w.jsonl", interval=0, window=5)
    with pytest.warns(UserWarning, match="only the flag-rate drift test runs"):
        monitor.run(once=True)
    assert monitor.n_scored_ == 14 and set(monitor.drift_tests([0.0] * 5, [False] * 5)) == {"flag_rate"}


def test_log_lock_released_when_opening_fails_with_any_error(tmp_path):
    # the torn-line warning turned into an error fails __enter__ with a non-OSError: the lock must go
    log = tmp_path / "w.jsonl"
    log.write_text('{"event": "score", "path": "a"}\n{"event": "sco')
    with pytest.raises(UserWarning, match="incomplete last line"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with WatchLog(log):
                pass
    with WatchLog(log) as opened:  # the lock is free again: no "another skasd watch is writing"
        assert [dict(r) for r in opened.records()] == [{"event": "score", "path": "a"}]


def _running(pid):
    """True while process ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_on_anomaly_time_out_kills_the_command_and_its_children(model, watched, tmp_path, monkeypatch):
    pid_file = tmp_path / "child.pid"
    real = subprocess.Popen.communicate

    def communicate(self, input=None, timeout=None):  # the hook's time-out, once its child runs
        if timeout is None:
            return real(self, input, timeout)
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise subprocess.TimeoutExpired(self.args, timeout)

    monkeypatch.setattr(subprocess.Popen, "communicate", communicate)
    log = tmp_path / "w.jsonl"
    monitor = Monitor(model, watched, log, interval=0, on_anomaly=f"sleep 300 & echo $! > {pid_file}; wait")
    monitor._check()
    with WatchLog(log) as opened:
        monitor._log = opened
        monitor._hook({"path": "x", "flagged": True})
    child = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 10  # a killed child is reaped by init
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _running(child), "the hook's child outlived its time-out"
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)
    (failure,) = _records(log, "on_anomaly_failed")
    assert failure["error"] == "did not finish within 60 s"


def test_non_finite_score_is_an_error_record_and_null_scores_are_not_replayed(model, watched, tmp_path, monkeypatch):
    from skasd.workflow import _watch

    real = _watch.score_stream

    def nan_for_the_first(pipe, paths, **kw):
        score, decision, failed = real(pipe, paths, **kw)
        return np.where(np.arange(len(score)) == 0, np.nan, score), decision, failed

    monkeypatch.setattr(_watch, "score_stream", nan_for_the_first)
    log = tmp_path / "w.jsonl"
    run = _run(model, watched, log, batch_size=100)
    monkeypatch.undo()
    (error,) = _records(log, "error")
    assert "non-finite anomaly score (nan)" in error["error"] and "score" not in error
    assert (run.n_scored_, run.n_errors_) == (13, 1)
    assert all(np.isfinite(r["score"]) for r in _records(log, "score"))
    # a log of an earlier version with null scores (written for NaN) fills the window: replayed, not scored again
    old = tmp_path / "old.jsonl"
    with open(old, "w") as f:
        for path in sorted(str(p) for p in watched.rglob("*.wav")):
            f.write(json.dumps({"event": "score", "path": path, "section": "id_00", "domain": None, "score": None,
                                "threshold": 1.0, "flagged": False, "time": "x"}) + "\n")
    monitor = _run(model, watched, old, window=5)
    assert monitor.n_scored_ == 0 and len(monitor._recent) == 0
    (watched / "new").mkdir()
    os.link(sorted(watched.rglob("*.wav"))[0], watched / "new" / "normal_id_00_90000000.wav")
    assert _run(model, watched, old, window=5).n_scored_ == 1  # no TypeError from a None in the window


def test_a_file_name_reused_is_scored_again_once_per_version(model, sounds, tmp_path):
    # a recorder that writes its ring buffer rec_000.wav, rec_001.wav, ... again and again
    data, log = tmp_path / "in", tmp_path / "w.jsonl"
    normal = np.flatnonzero(sounds.target == 0)
    (path,) = _write(data, sounds, normal[16:17])
    assert _run(model, data, log).n_scored_ == 1
    assert _run(model, data, log).n_scored_ == 0  # unchanged: done
    sf.write(path, sounds.data[np.flatnonzero(sounds.target == 1)[0]], sounds.sr, subtype="PCM_16")  # same size
    _touch(path, path.stat().st_mtime + 60)
    assert _run(model, data, log).n_scored_ == 1  # a new recording under the same name
    assert _run(model, data, log).n_scored_ == 0
    first, second = _records(log, "score")
    assert first["path"] == second["path"] == str(path) and first["size"] == second["size"] == path.stat().st_size
    assert second["mtime_ns"] == path.stat().st_mtime_ns != first["mtime_ns"]
    assert second["score"] > first["score"] and second["flagged"]  # the anomaly's score, not the normal's
    # a log of an earlier version, without size and mtime_ns: its files are done by path, whatever they hold
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({k: v for k, v in first.items() if k not in ("size", "mtime_ns")}) + "\n")
    _touch(path, path.stat().st_mtime + 60)
    assert _run(model, data, old).n_scored_ == 0


def test_io_error_leaves_the_file_for_a_later_poll_not_an_error_record(model, watched, tmp_path, monkeypatch):
    from skasd.features import _audio
    from skasd.workflow import _watch

    log = tmp_path / "w.jsonl"
    real_stream, real_chunk = _watch.score_stream, _audio._wav_data_chunk

    def too_many_open_files(*args, **kw):  # the whole batch meets EMFILE
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(_watch, "score_stream", too_many_open_files)
    with pytest.warns(UserWarning, match="cannot score .* now: .*Too many open files; trying it again later"):
        run = _run(model, watched, log)
    assert (run.n_scored_, run.n_errors_, run.n_deferred_) == (0, 0, 14) and not log.read_text()
    monkeypatch.setattr(_watch, "score_stream", real_stream)

    def share_glitch(path):  # one file's reads fail (a network share), in the batch and alone
        if "_10017" in str(path):
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_chunk(path)

    monkeypatch.setattr(_audio, "_wav_data_chunk", share_glitch)
    with pytest.warns(UserWarning, match=r"_10017\.wav now: .*Input/output error"):
        run = _run(model, watched, log)
    assert (run.n_scored_, run.n_errors_, run.n_deferred_) == (13, 0, 1) and not _records(log, "error")
    # polled on: tried at each poll, at most 3 times in a run
    clock, stop = _Clock(lambda clock: len(clock.naps) == 60 and stop.set()), threading.Event()
    monkeypatch.setattr(_watch, "time", clock)
    monitor = Monitor(model, watched, log, interval=1.0)
    with pytest.warns(UserWarning) as got:
        monitor.run(stop=stop)
    assert monitor.n_deferred_ == 3 and "not trying it again in this run" in str(got[-1].message)
    monkeypatch.undo()
    run = _run(model, watched, log)  # the share is back
    assert (run.n_scored_, run.n_errors_) == (1, 0)
    paths = [r["path"] for r in _records(log, "score")]
    assert len(paths) == len(set(paths)) == 14 and not _records(log, "error")
