"""A clip's score does not depend on the clips scored with it, whatever MKL kernel runs.

torch's float32 matmuls (MKL sgemm) round a row differently depending on how many rows are
multiplied with it, and which row counts do so depends on the kernel MKL picks for the CPU:
with AVX-512 a DenseAE scored 12 clips alike one at a time and all at once, with AVX2 (an AMD
EPYC, an older Xeon) they differed by 1e-7 relative, and a ClassifierEmbedding's embeddings
by 1e-6 with SSE4.2. Scoring in chunks (``skasd score --chunk-size``,
a SectionwiseDetector's per-section subsets, a FeatureStore) must give the scores of one
call, so the CPU scores one clip per forward pass. These tests force the kernels with
``MKL_ENABLE_INSTRUCTIONS`` in subprocesses, so the trap shows whatever CPU runs the suite.
"""

import json
import platform
import re

import pytest

from tests._forced_kernels import cpu_flags, run_forced

# MKL instruction set -> the CPU flag it needs
KERNELS = {"AVX2": "avx2", "SSE4_2": "sse4_2"}

SCRIPT = r"""
import json, warnings
import numpy as np
warnings.filterwarnings("ignore")
import torch
torch.set_num_threads(1)
from skasd.models import CNNAE, VAE, ClassifierEmbedding, DenseAE

with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):  # prints the kernel MKL chose
    torch.ones(8, 8) @ torch.ones(8, 8)
rng = np.random.default_rng(0)
X = (rng.normal(size=(16, 1)) * 5 - 40 + rng.normal(size=(12, 16, 40))).astype(np.float32)
ids = np.repeat(["a", "b", "c"], 4)
# batch sizes that put several clips in one chunk, as the old chunking did
cases = {
    "DenseAE": (DenseAE(max_epochs=1, batch_size=512, random_state=0), None, "score_samples"),
    "DenseAE frames": (DenseAE(max_epochs=1, batch_size=512, random_state=0), None, "frame_scores"),
    "VAE": (VAE(max_epochs=1, batch_size=512, random_state=0), None, "score_samples"),
    "CNNAE": (CNNAE(max_epochs=1, patch_frames=8, patch_hop=4, batch_size=128, random_state=0), None, "score_samples"),
    "ClassifierEmbedding": (ClassifierEmbedding(embed_dim=8, channels=(8,), patch_frames=16, patch_hop=4,
                                                max_epochs=1, batch_size=128, random_state=0), ids, "transform"),
}
out = {}
for name, (est, y, method) in cases.items():
    f = getattr(est.fit(X, y), method)
    whole = f(X)
    diffs = {}
    for k in (1, 2, 5):
        parts = np.concatenate([f(X[i : i + k]) for i in range(0, len(X), k)])
        if not np.array_equal(parts, whole):
            diffs[k] = float(np.abs(parts - whole).max())
    out[name] = diffs or None
print("RESULT " + json.dumps(out))
"""


def _kernels():
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    import torch

    if not torch.backends.mkl.is_available():
        return []
    flags = cpu_flags()
    return [k for k, flag in KERNELS.items() if flag in flags]


@pytest.mark.parametrize("kernel", ["default", *KERNELS])
def test_clip_scores_do_not_depend_on_the_chunk_under_forced_mkl_kernel(kernel):
    if kernel != "default" and kernel not in _kernels():
        pytest.skip(f"MKL kernel {kernel} cannot be forced here (not x86-64 MKL, or no CPU support)")
    stdout = run_forced(SCRIPT, [], "MKL_ENABLE_INSTRUCTIONS", kernel, MKL_NUM_THREADS="1")
    if kernel != "default":  # the kernel was really forced, or this test proves nothing
        banner = next((line for line in stdout.splitlines() if line.startswith("MKL_VERBOSE oneMKL")), "")
        wanted = {"AVX2": r"\(Intel\(R\) AVX2\)", "SSE4_2": r"\(Intel\(R\) SSE4\.2\)"}[kernel]
        assert re.search(wanted, banner), f"MKL_ENABLE_INSTRUCTIONS={kernel} ran: {banner!r}"
    result = json.loads(next(l for l in stdout.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
    differ = {name: diffs for name, diffs in result.items() if diffs}
    assert not differ, f"chunked outputs differ from one call under MKL {kernel}: {{chunk: max abs diff}} {differ}"
