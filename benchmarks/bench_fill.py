"""Random fills: initlab vs NumPy (PCG64) and torch, float32, same prefaulted buffer, same threads.

Run: ``pytest benchmarks/bench_fill.py -s`` (sizes/threads via INITLAB_BENCH_SIZES / _THREADS).
The ratio table printed at the end is what the README and the closing notes quote.
"""

from __future__ import annotations

import numpy as np
import pytest

import initlab

from conftest import SIZES, THREADS, buffer, record

try:
    import torch
except ImportError:  # torch is optional: its cases skip
    torch = None


def _run(benchmark, fn, rounds=3):
    fn()  # warm-up (thread pool start, first touch)
    benchmark.pedantic(fn, rounds=rounds, iterations=1)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(
    "case",
    ["initlab uniform_", "numpy PCG64 random(out=)", "fill (write bandwidth)", "torch uniform_"],
)
def test_uniform(benchmark, case, n, threads):
    a = buffer(n)
    benchmark.group = f"uniform f32 {n}^2 t={threads}"
    benchmark.extra_info["threads"] = threads
    if case == "initlab uniform_":
        with initlab.num_threads(threads):
            _run(benchmark, lambda: initlab.uniform_(a, -1.0, 1.0, seed=1))
    elif case == "numpy PCG64 random(out=)":
        rng = np.random.Generator(np.random.PCG64(1))
        _run(benchmark, lambda: rng.random(out=a, dtype=np.float32))
    elif case == "fill (write bandwidth)":
        _run(benchmark, lambda: a.fill(0.5))
    else:
        if torch is None:
            pytest.skip("torch not installed")
        t = torch.from_numpy(a)
        torch.set_num_threads(threads)
        _run(benchmark, lambda: torch.nn.init.uniform_(t, -1.0, 1.0))
    record(("uniform", n, threads), case, benchmark)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(
    "case", ["initlab normal_", "numpy PCG64 standard_normal(out=)", "torch normal_", "fill (write bandwidth)"]
)
def test_normal(benchmark, case, n, threads):
    a = buffer(n)
    benchmark.group = f"normal f32 {n}^2 t={threads}"
    benchmark.extra_info["threads"] = threads
    if case == "initlab normal_":
        with initlab.num_threads(threads):
            _run(benchmark, lambda: initlab.normal_(a, seed=1))
    elif case == "numpy PCG64 standard_normal(out=)":
        rng = np.random.Generator(np.random.PCG64(1))
        _run(benchmark, lambda: rng.standard_normal(out=a, dtype=np.float32), rounds=1 if n > 8192 else 3)
    elif case == "fill (write bandwidth)":
        _run(benchmark, lambda: a.fill(0.5))
    else:
        if torch is None:
            pytest.skip("torch not installed")
        t = torch.from_numpy(a)
        torch.set_num_threads(threads)
        _run(benchmark, lambda: torch.nn.init.normal_(t))
    record(("normal", n, threads), case, benchmark)


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("case", ["initlab trunc_normal_", "torch trunc_normal_"])
def test_trunc_normal(benchmark, case, n, threads):
    a = buffer(n)
    benchmark.group = f"trunc_normal(std=1,a=-2,b=2) f32 {n}^2 t={threads}"
    benchmark.extra_info["threads"] = threads
    if case == "initlab trunc_normal_":
        with initlab.num_threads(threads):
            _run(benchmark, lambda: initlab.trunc_normal_(a, 0.0, 1.0, -2.0, 2.0, seed=1))
    else:
        if torch is None:
            pytest.skip("torch not installed")
        t = torch.from_numpy(a)
        torch.set_num_threads(threads)
        # torch 2.13 redraws until no element is out of range: tens of seconds at 16384^2
        benchmark.pedantic(lambda: torch.nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0), rounds=1, iterations=1)
    record(("trunc_normal", n, threads), case, benchmark)


@pytest.mark.parametrize("threads", [max(THREADS)])
@pytest.mark.parametrize("n", SIZES[:1])
@pytest.mark.parametrize(
    "case",
    ["initlab uniform_", "initlab kaiming_uniform_", "initlab xavier_uniform_", "initlab normal_",
     "initlab kaiming_normal_", "initlab lecun_normal_", "initlab trunc_normal_"],
)
def test_named_cost(benchmark, case, n, threads):
    """Named initializers cost what their base sampler costs (one pass over memory)."""
    a = buffer(n)
    benchmark.group = f"named vs base f32 {n}^2 t={threads}"
    fn = getattr(initlab, case.split()[1])
    with initlab.num_threads(threads):
        _run(benchmark, lambda: fn(a, seed=1))
    record(("named", n, threads), case, benchmark)


@pytest.mark.parametrize("threads", [max(THREADS)])
@pytest.mark.parametrize("n", SIZES[:1])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("dist", ["uniform_", "normal_"])
def test_dtypes(benchmark, dist, dtype, n, threads):
    """Elements per second by dtype (low precision is written directly, block by block)."""
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dt = ml_dtypes.bfloat16
    else:
        dt = np.dtype(dtype)
    a = np.zeros((n, n), dtype=dt)
    benchmark.group = f"{dist} by dtype {n}^2 t={threads}"
    fn = getattr(initlab, dist)
    with initlab.num_threads(threads):
        _run(benchmark, lambda: fn(a, seed=1))
    record((f"dtype {dist}", n, threads), f"initlab {dtype}", benchmark)
