"""Peak memory of fills: at most the destination plus a bounded block, for every dtype and layout.

Each case runs in a fresh subprocess: allocate and touch the destination, read the peak RSS,
fill, read the peak RSS again. The growth is what the fill itself needed (no full-size
temporary: low precision is rounded chunk by chunk, strided layouts are written in place).
Run: ``pytest benchmarks/bench_memory.py -s``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

N = 8192  # 8192 x 8192: 256 MiB in float32

_SCRIPT = r"""
import json, resource, sys
import numpy as np, initlab
dtype, layout, fn = sys.argv[1], sys.argv[2], sys.argv[3]
if dtype == "bfloat16":
    import ml_dtypes
    dt = ml_dtypes.bfloat16
else:
    dt = np.dtype(dtype)
n = int(sys.argv[4])
base = np.empty((n, n) if layout != "strided" else (n, 2 * n), dtype=dt)
base[...] = 0  # touch every page: np.zeros would map them lazily and the fill would pay for them
a = {"C": base, "F": np.asfortranarray(base) if layout == "F" else base, "T": base.T,
     "strided": base[:, ::2]}[layout]
if layout == "F":
    del base
f = getattr(initlab, fn)
f(a[:8, :8], seed=0)  # load everything, start the thread pool
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
f(a, seed=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "dest_kib": a.nbytes // 1024}))
"""


@pytest.mark.parametrize("fn", ["uniform_", "normal_", "trunc_normal_"])
@pytest.mark.parametrize("layout", ["C", "F", "T", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_peak_memory(dtype, layout, fn):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    out = subprocess.run([sys.executable, "-c", _SCRIPT, dtype, layout, fn, str(N)], capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{fn} {dtype} {layout}: peak RSS growth {r['growth_kib']} KiB for a {r['dest_kib'] // 1024} MiB "
          "destination")
    # A bounded block: per-thread chunk buffers are a few tens of KiB; allow 16 MiB of noise.
    assert r["growth_kib"] < 16 * 1024
