#!/usr/bin/env bash
# One-command GPU check (issue 16): the CUDA-marked tests, then benchmarks/gpu_check.py's sections
# (features vs librosa, training throughput with/without autocast, a GridSearchCV, a GPU-trained model
# file scored with CUDA hidden), ending in one summary table. Meant to fit in 8 minutes on one GPU.
#
# On the lent device machine (no package index there), carry the wheels it lacks, fetched here with
# `bash benchmarks/gpu_wheels.sh` (into .whl/, git-ignored), and run from the repository root:
#     bash benchmarks/gpu_check.sh [--clips 2800] [--epochs 2]
# Figures go to $OUT/summary.json when $OUT is set (the device tool's output folder).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/skasd-site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed" >&2; exit 2; }
  export PYTHONPATH="$PWD:/tmp/skasd-site${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.cuda.is_available())"
echo "== CUDA-marked tests"
"$PY" -m pytest -q -p no:cacheprovider -m cuda tests -rs --no-header 2>&1 | tail -15
tests_rc=${PIPESTATUS[0]}
[ "$tests_rc" -eq 5 ] && tests_rc=0  # none selected (no CUDA-marked test collected) is not a failure here
echo "== benchmarks/gpu_check.py"
"$PY" benchmarks/gpu_check.py ${OUT:+--out "$OUT"} "$@"
check_rc=$?
echo "CUDA-marked tests exit $tests_rc; gpu_check.py exit $check_rc"
[ "$tests_rc" -eq 0 ] && [ "$check_rc" -eq 0 ]
