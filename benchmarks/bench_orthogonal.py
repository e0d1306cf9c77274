"""Orthogonal initialization: initlab vs torch / SciPy / NumPy QR routes, same run, same threads.

Cases: square n = 1024, 2048 (and 4096 with INITLAB_BENCH_ORTHO_LARGE=1, which adds minutes),
tall 4096 x 1024; float32 and float64; threads from INITLAB_BENCH_THREADS (default 1,2).
Peers, each with the Haar sign fix and on the same thread count (OpenBLAS limited through
threadpoolctl, torch through set_num_threads):
  torch      torch.nn.init.orthogonal_ (MKL geqrf + orgqr)
  scipy-f32  scipy.linalg.qr(mode="economic") of a float32 Gaussian, q * sign(diag r)
  numpy      numpy.linalg.qr of a Gaussian (NumPy always computes in float64) + sign fix
and the machine's matrix-multiply speed (np.matmul, torch.mm at the same dtype and threads).
At the end a table gives every ratio (peer time / initlab time, > 1 = initlab faster), the
GFLOP/s initlab achieves (its flop count: 2mn^2 - 2n^3/3 to form Q from n reflectors) and that
as a fraction of the best matmul GFLOP/s measured in the same run.

Run: ``pytest benchmarks/bench_orthogonal.py -s`` (shared machines are noisy: compare only
numbers of one run).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import initlab

try:
    import torch
except ImportError:  # optional peer
    torch = None
try:
    import scipy.linalg as sla
except ImportError:  # optional peer
    sla = None
try:
    from threadpoolctl import threadpool_limits
except ImportError:  # without it OpenBLAS keeps its own thread count: those peers are skipped
    threadpool_limits = None

THREADS = [int(s) for s in os.environ.get("INITLAB_BENCH_THREADS", "1,2").split(",")]
SHAPES = [(1024, 1024), (2048, 2048), (4096, 1024)]
if os.environ.get("INITLAB_BENCH_ORTHO_LARGE"):
    SHAPES.append((4096, 4096))
DTYPES = ["float32", "float64"]
RESULTS: dict[tuple, dict[str, float]] = {}

# Routes whose speed initlab must beat, and the matmul reference (not a peer).
PEERS = ["torch orthogonal_", "scipy qr economic f32 + sign", "numpy qr + sign"]
MATMUL = ["np.matmul", "torch.mm"]


def _mm_size(shape: tuple[int, int]) -> int:
    """Size of the square matmul that measures the machine's GEMM speed for a case."""
    return min(max(shape), 2048)


def _flops_form_q(m: int, n: int) -> float:
    return 2.0 * m * n * n - 2.0 * n**3 / 3.0


class _Threads:
    """Set every library's thread count for the duration of one case."""

    def __init__(self, n: int):
        self.n = n
        self._blas = None
        self._torch = None

    def __enter__(self):
        self._init = initlab.num_threads(self.n)
        self._init.__enter__()
        if torch is not None:
            self._torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        if threadpool_limits is not None:
            self._blas = threadpool_limits(self.n)
        return self

    def __exit__(self, *exc):
        if self._blas is not None:
            self._blas.unregister()
        if self._torch is not None:
            torch.set_num_threads(self._torch)
        self._init.__exit__(*exc)


def _sign_fix(q, r):
    return q * np.sign(np.diag(r))


def _route(case: str, shape: tuple[int, int], dtype: str):
    """A zero-argument callable doing one orthogonal init (or one matmul) of ``shape``."""
    m, n = shape
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    if case == "initlab orthogonal_":
        out = np.zeros(shape, dt)
        return lambda: initlab.orthogonal_(out, seed=1)
    if case == "torch orthogonal_":
        t = torch.zeros(shape, dtype=getattr(torch, dtype))
        return lambda: torch.nn.init.orthogonal_(t)
    if case == "scipy qr economic f32 + sign":
        if dtype != "float32":
            return None  # the float32 LAPACK route (the fastest SciPy route); float64 is "numpy"
        def f():
            g = rng.standard_normal(shape, dtype=np.float32)
            return _sign_fix(*sla.qr(g, mode="economic", overwrite_a=True, check_finite=False))
        return f
    if case == "numpy qr + sign":
        def f():
            return _sign_fix(*np.linalg.qr(rng.standard_normal(shape).astype(dt, copy=False)))
        return f
    k = _mm_size(shape)
    if case == "np.matmul":
        a = rng.standard_normal((k, k)).astype(dt)
        c = np.empty((k, k), dt)
        return lambda: np.matmul(a, a, out=c)
    if case == "torch.mm":
        a = torch.randn(k, k, dtype=getattr(torch, dtype))
        c = torch.empty(k, k, dtype=a.dtype)
        return lambda: torch.mm(a, a, out=c)
    raise AssertionError(case)


@pytest.fixture(scope="module", autouse=True)
def _ratio_table(request):
    yield
    if not RESULTS:
        return
    rep = request.config.pluginmanager.get_plugin("terminalreporter")
    w = rep.write_line if rep is not None else print
    w("")
    w("orthogonal: peer time / initlab time (>1 = initlab faster); same run, same threads")
    for key in sorted(RESULTS):
        (m, n), dtype, threads = key
        r = RESULTS[key]
        mine = r.get("initlab orthogonal_")
        if mine is None:
            continue
        gfs = _flops_form_q(m, n) / mine / 1e9
        mm = [2.0 * _mm_size((m, n)) ** 3 / r[k] / 1e9 for k in MATMUL if k in r]
        parts = [f"initlab {mine * 1e3:.1f} ms, {gfs:.1f} GFLOP/s"]
        if mm:
            parts.append(f"{gfs / max(mm):.0%} of matmul ({max(mm):.0f} GFLOP/s)")
        for p in PEERS:
            if p in r:
                parts.append(f"{r[p] / mine:.2f}x {p}")
        fastest = min((r[p] for p in PEERS if p in r), default=None)
        if fastest is not None:
            parts.append(f"vs fastest peer {fastest / mine:.2f}x")
        w(f"  {m}x{n} {dtype} t={threads}: " + "; ".join(parts))


CASES = ["initlab orthogonal_"] + PEERS + MATMUL


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{m}x{n}" for m, n in SHAPES])
@pytest.mark.parametrize("case", CASES)
def test_orthogonal(benchmark, case, shape, dtype, threads):
    if case.startswith("torch") and torch is None:
        pytest.skip("torch not installed")
    if case.startswith("scipy") and sla is None:
        pytest.skip("scipy not installed")
    if case in ("scipy qr economic f32 + sign", "numpy qr + sign", "np.matmul") and threadpool_limits is None:
        pytest.skip("threadpoolctl is needed to run OpenBLAS on the same thread count")
    # Let the previous case's thread pools (OpenMP, OpenBLAS, MKL spin-wait after each call)
    # go to sleep, so that no case runs against another library's spinning threads.
    time.sleep(0.5)
    with _Threads(threads):
        fn = _route(case, shape, dtype)
        if fn is None:
            pytest.skip("route not defined for this dtype")
        benchmark.group = f"orthogonal {shape[0]}x{shape[1]} {dtype} t={threads}"
        benchmark.extra_info.update(threads=threads, dtype=dtype, shape=shape)
        # Large cases: two rounds and no separate warm-up (compute dwarfs thread start-up),
        # which keeps the default run to a few minutes on a quiet 2-core machine.
        big = shape[0] * shape[1] * max(shape) >= 2048**3
        if not big:
            fn()  # warm-up: thread pools, first touch
        benchmark.pedantic(fn, rounds=2 if big else 3, iterations=1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        RESULTS.setdefault((shape, dtype, threads), {})[case] = stats.stats.median
