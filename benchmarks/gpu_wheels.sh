#!/usr/bin/env bash
# Fetch, here, the wheels the GPU machine lacks (its image has torch, numpy, scipy, scikit-learn,
# pandas, accelerate, safetensors, jinja2, tqdm, numba...; see /work/.library/device/KINDS.md) for
# its Python 3.12 on x86-64, into .whl/ (git-ignored). benchmarks/gpu_check.sh installs them there.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
for pkg in skorch librosa soundfile soxr audioread pooch decorator standard-aifc standard-sunau \
           standard-chunk platformdirs; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl "$pkg" || echo "note: no wheel for $pkg" >&2
done
ls .whl
