"""initlab.stats vs the NumPy expressions computing the same figures, and vs the read bandwidth.

Same prefaulted float32 n x n buffer (standard normal data) for every case; thread count
stated. The NumPy peer computes mean, var, min, max, abs max, zero count and non-finite count
(what initlab.stats gives in one pass); the read bandwidth is measured in the same run by
reading the same buffer on the same number of threads (``_core.read_probe``).

Run: ``pytest benchmarks/bench_stats.py -s`` (sizes via INITLAB_BENCH_STATS_SIZES, default
"4096,16384"; threads via INITLAB_BENCH_STATS_THREADS, default "2"). A table of ratios is
printed at the end.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import initlab
from initlab import _core

SIZES = [int(s) for s in os.environ.get("INITLAB_BENCH_STATS_SIZES", "4096,16384").split(",")]
THREADS = [int(s) for s in os.environ.get("INITLAB_BENCH_STATS_THREADS", "2").split(",")]
RESULTS: dict[tuple[int, int], dict[str, float]] = {}
_buf: dict[int, np.ndarray] = {}


def data(n: int) -> np.ndarray:
    if n not in _buf:
        _buf.clear()  # one big buffer at a time
        a = np.empty((n, n), np.float32)
        initlab.normal_(a, seed=0)  # writes every page: prefaulted
        _buf[n] = a
    return _buf[n]


def numpy_same_set(a: np.ndarray) -> tuple:
    return (a.mean(dtype=np.float64), a.var(dtype=np.float64), a.min(), a.max(), np.abs(a).max(),
            np.count_nonzero(a == 0), a.size - np.count_nonzero(np.isfinite(a)))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    if not RESULTS:
        return
    print("\ninitlab.stats vs NumPy (same set of figures) and vs the read bandwidth of the same buffer")
    for (n, t), r in sorted(RESULTS.items()):
        nbytes = n * n * 4
        mine = r.get("initlab.stats")
        if mine is None:
            continue
        line = f"  float32 {n}x{n}, {t} threads: initlab.stats {nbytes / mine / 1e9:.2f} GB/s"
        if "numpy" in r:
            line += f"; {r['numpy'] / mine:.1f}x faster than NumPy ({nbytes / r['numpy'] / 1e9:.2f} GB/s)"
        if "read bandwidth" in r:
            line += f"; {r['read bandwidth'] / mine:.0%} of the read bandwidth ({nbytes / r['read bandwidth'] / 1e9:.2f} GB/s)"
        print(line)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", ["initlab.stats", "numpy", "read bandwidth"])
def test_stats(benchmark, case, n, threads):
    a = data(n)
    benchmark.group = f"stats f32 {n}^2 t={threads}"
    benchmark.extra_info["threads"] = threads
    if case == "initlab.stats":
        def fn():
            with initlab.num_threads(threads):
                return initlab.stats(a)
    elif case == "numpy":
        fn = lambda: numpy_same_set(a)  # noqa: E731  (NumPy's reductions are single-threaded)
    else:
        fn = lambda: _core.read_probe(a, threads)  # noqa: E731
    fn()  # warm-up
    benchmark.pedantic(fn, rounds=1 if (case == "numpy" and n > 8192) else 5, iterations=1)
    if benchmark.stats is not None and getattr(benchmark.stats, "stats", None) is not None:
        RESULTS.setdefault((n, threads), {})[case] = benchmark.stats.stats.min
