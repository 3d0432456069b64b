"""``skasd watch`` as a user runs it: exit codes, kill -9 and SIGTERM, the lock, evaluate on the log."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

import skasd
from skasd.cli import main
from skasd.datasets import make_machine_sounds
from skasd.workflow import WatchLog, build_pipeline


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A k-NN model file fitted on 16 generated normals, and a folder of 6 anomalies and 8 normals."""
    bunch = make_machine_sounds(n_normal=24, n_anomaly=6, duration=1.0, random_state=0)
    root = tmp_path_factory.mktemp("watch")
    normal, anomaly = np.flatnonzero(bunch.target == 0), np.flatnonzero(bunch.target == 1)
    pipe = build_pipeline("knn", {"n_neighbors": 2}, verbose=False).fit(bunch.data[normal[:16]])
    skasd.save(pipe, root / "m.skasd")
    (root / "clips").mkdir()
    for i in [*normal[16:], *anomaly]:
        label = "anomaly" if bunch.target[i] else "normal"
        sf.write(root / "clips" / f"{label}_id_00_{i:08d}.wav", bunch.data[i], bunch.sr, subtype="PCM_16")
    return root


def _skasd(*args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "skasd.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def _lines(log):
    return log.read_text().splitlines() if log.exists() else []


def _wait_for(log, n, timeout=60):
    deadline = time.time() + timeout
    while len(_lines(log)) < n and time.time() < deadline:
        time.sleep(0.02)


def _anomalies(setup, tmp_path, copies):
    """A folder of ``copies`` copies of each anomaly clip (all flagged)."""
    data = tmp_path / "data"
    data.mkdir()
    for src in sorted((setup / "clips").glob("anomaly_*")):
        for k in range(copies):
            shutil.copy(src, data / src.name.replace("_000000", f"_{k}0000"))
    return data


def test_exit_codes(setup, tmp_path, capsys):
    log = tmp_path / "w.jsonl"
    args = ["watch", "--model", str(setup / "m.skasd"), "--log", str(log), "--once", "--interval", "0", "--quiet"]
    assert main([*args, "--data", str(setup / "clips")]) == 0  # anomalies flagged, as `score` without the flag
    assert len(_lines(log)) == 14
    (setup / "clips" / "more").mkdir()
    flagged = next(json.loads(line)["path"] for line in _lines(log) if json.loads(line)["flagged"])
    shutil.copy(flagged, setup / "clips" / "more")
    assert main([*args, "--fail-on-anomaly", "--data", str(setup / "clips")]) == 1  # a new clip flagged
    assert main([*args, "--fail-on-anomaly", "--data", str(setup / "clips")]) == 0  # nothing new
    shutil.rmtree(setup / "clips" / "more")
    capsys.readouterr()
    assert main([*args, "--data", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"skasd watch: error: data folder not found: "
                                                           f"{tmp_path / 'missing'}"]
    with WatchLog(log):  # another watcher holds the log
        assert main([*args, "--data", str(setup / "clips")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another skasd watch is writing" in err[0]


def test_kill_9_mid_run_then_resume_each_clip_once(setup, tmp_path):
    data, log, marks = _anomalies(setup, tmp_path, 5), tmp_path / "w.jsonl", tmp_path / "marks"
    marks.mkdir()
    # the hook of the 3rd flagged clip blocks (it runs after that clip's record is written), so that
    # the run is mid-way when killed, however slow the machine
    cmd = ["watch", "--model", str(setup / "m.skasd"), "--data", str(data), "--log", str(log), "--once",
           "--interval", "0", "--quiet"]
    blocked = tmp_path / "blocked.pid"
    hook = (f"cat > /dev/null; n=$(ls {marks} | wc -l); touch {marks}/$n; "
            f"if [ $n -ge 2 ]; then echo $$ > {blocked}.tmp; mv {blocked}.tmp {blocked}; exec sleep 300; fi")
    proc = _skasd(*cmd, "--on-anomaly", hook)
    deadline = time.time() + 120
    while not blocked.exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    if blocked.exists():
        os.kill(int(blocked.read_text()), signal.SIGKILL)  # the blocked hook, in a session of its own
    killed_at = len(_lines(log))
    assert 3 <= killed_at < 30
    with open(log, "ab") as f:  # as if killed in the middle of a write
        f.write(b'{"event": "score", "path": "/x')
    proc = _skasd(*cmd, "--fail-on-anomaly")
    assert proc.wait(timeout=120) == 1, proc.stderr.read()
    records = [json.loads(line) for line in _lines(log)]  # every line valid JSON
    paths = [r["path"] for r in records if r["event"] == "score"]
    assert len(paths) == len(set(paths)) == 30 == len(records)


def test_sigterm_finishes_the_clip_in_hand_and_exits_0(setup, tmp_path):
    data, log = _anomalies(setup, tmp_path, 2), tmp_path / "w.jsonl"
    proc = _skasd("watch", "--model", str(setup / "m.skasd"), "--data", str(data), "--log", str(log),
                  "--interval", "0.2", "--on-anomaly", "cat > /dev/null; sleep 0.1")
    _wait_for(log, 1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    records = [json.loads(line) for line in _lines(log)]
    assert 1 <= len(records) <= 12 and all(r["event"] == "score" for r in records)
    # a restart scores the rest and a new clip (its record shows the handlers are in place), then polls
    # on until SIGINT
    shutil.copy(setup / "clips" / "normal_id_00_00000016.wav", data)
    proc = _skasd("watch", "--model", str(setup / "m.skasd"), "--data", str(data), "--log", str(log),
                  "--interval", "0.2")
    _wait_for(log, 13)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()
    paths = [json.loads(line)["path"] for line in _lines(log)]
    assert len(paths) == len(set(paths)) == 13


def test_evaluate_report_on_the_log_clips(setup, tmp_path):
    log = tmp_path / "w.jsonl"
    base = ["--model", str(setup / "m.skasd"), "--quiet"]
    main(["watch", *base, "--data", str(setup / "clips"), "--log", str(log), "--once", "--interval", "0"])
    assert main(["evaluate", *base, "--data", str(log), "--out", str(tmp_path), "--report",
                 str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "anomaly_id_00" in html and (tmp_path / "result.csv").is_file()
