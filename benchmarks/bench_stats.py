"""initlab.stats vs the NumPy expressions computing the same figures, and vs the read bandwidth.

Same prefaulted n x n buffer (standard normal data) for every case of a (dtype, n); thread count
stated. The NumPy peer computes mean, var, min, max, abs max, zero count and non-finite count
(what initlab.stats gives in one pass; float32, C layout); the read bandwidth is measured in the
same run by reading the same buffer on the same number of threads (``_core.read_probe``).
Layouts: ``C`` (the array), ``F`` (its transpose: the same memory, a Fortran-ordered view, whose
logical order strides through memory), and ``axis0`` (per-column statistics of the C array).

Run: ``pytest benchmarks/bench_stats.py -s`` (sizes via INITLAB_BENCH_STATS_SIZES, default
"4096,16384"; threads via INITLAB_BENCH_STATS_THREADS, default "1,2"; dtypes via
INITLAB_BENCH_STATS_DTYPES, default "float32,bfloat16,float64"). A table of ratios is printed at
the end.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import initlab
from initlab import _core

SIZES = [int(s) for s in os.environ.get("INITLAB_BENCH_STATS_SIZES", "4096,16384").split(",")]
THREADS = [int(s) for s in os.environ.get("INITLAB_BENCH_STATS_THREADS", "1,2").split(",")]
DTYPES = os.environ.get("INITLAB_BENCH_STATS_DTYPES", "float32,bfloat16,float64").split(",")
RESULTS: dict[tuple[str, int, int], dict[str, float]] = {}
_buf: dict[tuple[str, int], np.ndarray] = {}


def _dtype(name: str):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def data(dt: str, n: int) -> np.ndarray:
    if (dt, n) not in _buf:
        _buf.clear()  # one big buffer at a time
        a = np.empty((n, n), _dtype(dt))
        initlab.normal_(a, seed=0)  # writes every page: prefaulted
        _buf[(dt, n)] = a
    return _buf[(dt, n)]


def numpy_same_set(a: np.ndarray) -> tuple:
    return (a.mean(dtype=np.float64), a.var(dtype=np.float64), a.min(), a.max(), np.abs(a).max(),
            np.count_nonzero(a == 0), a.size - np.count_nonzero(np.isfinite(a)))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    print("\ninitlab.stats vs the read bandwidth of the same buffer (and NumPy's same figures)")
    for (dt, n, t), r in sorted(RESULTS.items()):
        read = r.get("read bandwidth")
        nbytes = n * n * _dtype(dt).itemsize
        parts = [f"{dt} {n}x{n}, {t} thread(s): read {nbytes / read / 1e9:.1f} GB/s" if read else f"{dt} {n}x{n}"]
        for lay in ("C", "F", "axis0"):
            mine = r.get(lay)
            if mine is not None:
                parts.append(f"{lay} {nbytes / mine / 1e9:.1f} GB/s" + (f" ({read / mine:.0%})" if read else ""))
        numpy_t = RESULTS.get((dt, n, THREADS[0]), {}).get("numpy")  # NumPy's reductions: one thread
        if numpy_t and "C" in r:
            parts.append(f"{numpy_t / r['C']:.1f}x NumPy")
        print("  " + "; ".join(parts))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("case", ["C", "F", "axis0", "numpy", "read bandwidth"])
def test_stats(benchmark, case, dt, n, threads):
    if case == "numpy" and (dt != "float32" or threads != THREADS[0]):
        pytest.skip("NumPy peer: float32, once per size (its reductions are single-threaded)")
    a = data(dt, n)
    benchmark.group = f"stats {dt} {n}^2 t={threads}"
    benchmark.extra_info["threads"] = threads

    def ours(x, axis=None):
        def fn():
            with initlab.num_threads(threads):
                return initlab.stats(x, axis=axis)
        return fn

    fn = {"C": ours(a), "F": ours(a.T), "axis0": ours(a, 0),
          "numpy": lambda: numpy_same_set(a), "read bandwidth": lambda: _core.read_probe(a, threads)}[case]
    fn()  # warm-up
    benchmark.pedantic(fn, rounds=1 if (case == "numpy" and n > 8192) else 5, iterations=1)
    if benchmark.stats is not None and getattr(benchmark.stats, "stats", None) is not None:
        RESULTS.setdefault((dt, n, threads), {})[case] = benchmark.stats.stats.min
