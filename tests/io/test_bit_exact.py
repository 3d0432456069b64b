"""A loaded model computes what the saved one computed, bit for bit, whatever BLAS kernel runs.

OpenBLAS picks its kernels by CPU, so a layout change on loading (a Fortran-ordered
``PCA.components_`` coming back C-ordered) shows on some machines and not on others. These
tests force the kernels every x86-64 CPU of the last decade runs (``OPENBLAS_CORETYPE``), each in
a subprocess, so the trap shows here whatever CPU the suite happens to run on.
"""

import json
import platform

import pytest
from threadpoolctl import threadpool_info

from tests._forced_kernels import cpu_flags, run_forced

# kernel -> the CPU flag it needs (Prescott: SSE3, every x86-64 CPU since 2004; /proc/cpuinfo
# calls SSE3 "pni": with "sse3" here the Prescott case was always skipped)
KERNELS = {"Prescott": "pni", "Sandybridge": "avx", "Haswell": "avx2"}
# what threadpoolctl reports once a kernel is forced: builds without OpenBLAS's oldest kernels
# (numpy's and scipy's wheels) alias Katmai, Coppermine and Northwood to Prescott and name it Katmai
REPORTED = {"Prescott": {"Prescott", "Katmai"}}

SCRIPT = r"""
import json, os, sys, warnings
import numpy as np
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from threadpoolctl import threadpool_info
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
import skasd

rng = np.random.default_rng(0)
X, Xt = rng.normal(size=(120, 24)), rng.normal(size=(30, 24))
L = rng.normal(size=(12, 16, 40)).astype(np.float32)
cases = {
    "pca+knn": (make_pipeline(StandardScaler(), PCA(n_components=8, random_state=0), skasd.KNNDetector()), X, Xt),
    "pca+mahalanobis": (make_pipeline(PCA(n_components=6, random_state=0), skasd.MahalanobisDetector()), X, Xt),
    "pca+gmm": (make_pipeline(PCA(n_components=6, random_state=0), skasd.GMMDetector(random_state=0)), X, Xt),
    "knn-sections": (skasd.KNNDetector(domain_norm="zscore"), X, Xt),
    "denseae": (skasd.DenseAE(max_epochs=1, random_state=0), L, L[:4]),
}
out = {"arch": [i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"]}
for name, (est, data, test) in cases.items():
    fit_kw = {"domain": np.where(np.arange(len(data)) % 10 == 0, "target", "source")} if name == "knn-sections" else {}
    est.fit(data, **fit_kw)
    path = skasd.save(est, os.path.join(sys.argv[1], name + ".skasd"))
    a, b = est.score_samples(test), skasd.load(path).score_samples(test)
    out[name] = None if np.array_equal(a, b) else float(np.abs(a - b).max())
print(json.dumps(out))
"""


def _kernels():
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    if not any(i.get("internal_api") == "openblas" for i in threadpool_info()):
        return []
    flags = cpu_flags()
    return [k for k, flag in KERNELS.items() if flag in flags]


@pytest.mark.parametrize("kernel", ["default", *KERNELS])
def test_loaded_model_is_bit_identical_under_forced_blas_kernel(kernel, tmp_path):
    if kernel != "default" and kernel not in _kernels():
        pytest.skip(f"OpenBLAS kernel {kernel} cannot be forced here (not x86-64 OpenBLAS, or no CPU support)")
    out = run_forced(SCRIPT, [str(tmp_path)], "OPENBLAS_CORETYPE", kernel, OPENBLAS_NUM_THREADS="1")
    result = json.loads(out.strip().splitlines()[-1])
    arch = result.pop("arch")
    if kernel != "default":  # the kernel was really forced, or this test proves nothing
        assert arch and set(arch) <= REPORTED.get(kernel, {kernel}), f"OPENBLAS_CORETYPE={kernel} ran {arch}"
    differ = {name: diff for name, diff in result.items() if diff is not None}
    assert not differ, f"scores differ after save/load under {kernel} ({arch}): max abs diff {differ}"
