"""Run a script in a subprocess with a math library's CPU kernel forced by an environment variable.

OpenBLAS (numpy, scipy: ``OPENBLAS_CORETYPE``) and MKL (torch: ``MKL_ENABLE_INSTRUCTIONS``)
pick their kernels by CPU, and kernels round differently, so a result that two code paths
share bit for bit on one CPU may differ on another. Tests that guard such a guarantee run
their check once per kernel the CPU here can run, so the trap shows whatever CPU runs them.
"""

import os
import subprocess
import sys
from pathlib import Path


def cpu_flags():
    """The CPU flags of ``/proc/cpuinfo`` (SSE3 is ``pni`` there); empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((l for l in text.splitlines() if l.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def run_forced(script, args, variable, kernel, **env):
    """stdout of ``python -c script *args`` with ``variable=kernel`` (unset for ``"default"``),
    one OpenMP thread and ``env``; a failing script fails the test with its stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    env.pop(variable, None)
    if kernel != "default":
        env[variable] = kernel
    run = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout
