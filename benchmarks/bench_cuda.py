"""Device fills on a CUDA GPU: initlab's Triton kernels vs torch.nn.init on the same GPU, against
the write bandwidth of ``Tensor.fill_`` measured in the same run, and the staged route against the
pinned host->device copy bandwidth. Skipped without CUDA.

Run: ``pytest benchmarks/bench_cuda.py -s`` (``INITLAB_BENCH_CUDA_SIZES=28,30``: log2 of the
element counts). Every figure is a ratio to a peer or limit timed in the same process on the same
buffer; the GPU's name is printed with them. The first call of each kernel includes Triton's
compile: reported separately, later calls hit Triton's cache.
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

import initlab  # noqa: E402

SIZES = [int(s) for s in os.environ.get("INITLAB_BENCH_CUDA_SIZES", "28,30").split(",")]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


def _time(fn, reps: int = 5) -> float:
    """Best of ``reps`` wall times of ``fn`` on the GPU (synchronized), in seconds."""
    best = float("inf")
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def _fits(n: int, dt) -> bool:
    free, _ = torch.cuda.mem_get_info()
    return n * torch.empty((), dtype=dt).element_size() < 0.45 * free


@pytest.mark.parametrize("dt", DTYPES, ids=["f32", "f16", "bf16", "f64"])
@pytest.mark.parametrize("log2n", SIZES)
def test_cuda_fill_rates(log2n, dt):
    n = 1 << log2n
    if not _fits(n, dt):
        pytest.skip(f"2^{log2n} {dt} does not fit")
    x = torch.empty(n, dtype=dt, device="cuda")
    x.fill_(0.0)  # allocate and touch
    name = torch.cuda.get_device_name()
    t_fill = _time(lambda: x.fill_(1.0))
    gbps = n * x.element_size() / t_fill / 1e9
    rows = [f"\n{name}: 2^{log2n} {dt}: Tensor.fill_ {gbps:.0f} GB/s ({t_fill * 1e3:.2f} ms)"]
    cases = [
        ("uniform_", lambda: initlab.uniform_(x, -1, 1, seed=1), lambda: torch.nn.init.uniform_(x, -1, 1)),
        ("normal_", lambda: initlab.normal_(x, 0, 0.02, seed=1), lambda: torch.nn.init.normal_(x, 0, 0.02)),
        ("trunc_normal_", lambda: initlab.trunc_normal_(x, 0, 1, -2, 2, seed=1),
         lambda: torch.nn.init.trunc_normal_(x, 0, 1, -2, 2)),
    ]
    for label, ours, theirs in cases:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        ours()  # first call: includes Triton's compile (or its cache)
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        t_ours = _time(ours)
        t_torch = _time(theirs)
        rows.append(f"  {label:14s} {t_ours * 1e3:8.2f} ms = {t_fill / t_ours:.2f} of fill_ bandwidth, "
                    f"{t_torch / t_ours:.2f}x torch.nn.init ({t_torch * 1e3:.2f} ms); first call {first:.2f} s")
    print("\n".join(rows))
    assert initlab.device_backend(x) == "triton"


@pytest.mark.parametrize("log2n", [26, 28])
def test_staged_route_vs_pinned_copy(log2n, monkeypatch):
    n = 1 << log2n
    x = torch.empty(n, dtype=torch.float32, device="cuda")
    x.fill_(0.0)
    host = torch.empty(n, dtype=torch.float32, pin_memory=True)
    host.fill_(1.0)
    t_copy = _time(lambda: x.copy_(host, non_blocking=True))
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "staged")
    t_staged = _time(lambda: initlab.uniform_(x, seed=1), reps=3)
    t_staged_n = _time(lambda: initlab.normal_(x, seed=1), reps=3)
    print(f"\n{torch.cuda.get_device_name()}: staged 2^{log2n} float32, {initlab.get_num_threads()} host threads: "
          f"pinned H2D copy {n * 4 / t_copy / 1e9:.1f} GB/s; staged uniform_ {t_copy / t_staged:.2f}, "
          f"normal_ {t_copy / t_staged_n:.2f} of the copy bandwidth")
