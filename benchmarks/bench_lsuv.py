"""LSUV and whole-module initialization on torch models.

1. ``test_lsuv_overhead``: torch MLP of DEPTH Linear+ReLU layers x WIDTH units, batch BATCH,
   float32. LSUV's total wall time against the time of exactly the forward passes it performed
   (replayed afterwards as plain ``model[:k](x)`` calls: the discovery pass, then for each
   layer one pass up to that layer per measurement). Target: ratio <= 1.3. The orthonormal
   pre-initialization is a separate, reported cost (``orthogonal=False`` in the timed ratio,
   ``test_lsuv_orthogonal_preinit`` times the whole call).
2. ``test_init_module_vs_reset_parameters``: ``initlab.torch.init_module(m, "torch_default")``
   against calling every module's ``reset_parameters()``, same model, same threads. Target >= 5x.

Threads: INITLAB_BENCH_THREADS (first value, default 2) for both torch and initlab. Sizes:
INITLAB_BENCH_LSUV="depth,width,batch" (default "20,4096,256", the issue's size) and
INITLAB_BENCH_INIT_PARAMS (default 1e9 float32 parameters, the issue's size: ~4 GB, ~30 s); INITLAB_BENCH_ROUNDS (default 1)
interleaved LSUV/replay rounds, the best of each kept. Run:
``pytest benchmarks/bench_lsuv.py -s`` (the ratios are printed and stored in extra_info).
"""

from __future__ import annotations

import math
import os
import time

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
import initlab.torch as itorch  # noqa: E402

THREADS = int(os.environ.get("INITLAB_BENCH_THREADS", "2").split(",")[0])
DEPTH, WIDTH, BATCH = (int(v) for v in os.environ.get("INITLAB_BENCH_LSUV", "20,4096,256").split(","))
INIT_PARAMS = float(os.environ.get("INITLAB_BENCH_INIT_PARAMS", "1e9"))
ROUNDS = int(os.environ.get("INITLAB_BENCH_ROUNDS", "1"))


def _mlp(depth: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _replay(model: nn.Sequential, x: torch.Tensor, rep) -> tuple[float, float]:
    """(wall, CPU) seconds of the forward passes LSUV performed, done again without LSUV."""
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model(x)  # discovery pass (full)
        for k, layer in enumerate(rep.layers):
            sub = model[: 2 * k + 1]  # up to and including Linear k (LSUV stops the pass there)
            for _ in range(layer.iterations + 1):
                sub(x)
    return time.perf_counter() - t0, time.process_time() - c0


def test_lsuv_overhead(benchmark):
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = _mlp(DEPTH, WIDTH)
    x = torch.randn(BATCH, WIDTH)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(x)  # warm-up (allocator, thread pool)
    walls, cpus, fwd_walls, fwd_cpus = [], [], [], []
    rep = None

    def run():
        nonlocal rep
        model.load_state_dict(state)
        t0, c0 = time.perf_counter(), time.process_time()
        with initlab.num_threads(THREADS):
            rep = itorch.lsuv(model, x, orthogonal=False)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)

    benchmark.group = f"lsuv torch MLP {DEPTH}x{WIDTH} batch {BATCH} t={THREADS}"
    # Other processes share the cores: LSUV and its replay are interleaved, the minimum of each kept.
    for r in range(ROUNDS):
        if r == 0:
            benchmark.pedantic(run, rounds=1, iterations=1)
        else:
            run()
        assert rep is not None and rep.converged
        w, c = _replay(model, x, rep)
        fwd_walls.append(w)
        fwd_cpus.append(c)
    ratio, ratio_cpu = min(walls) / min(fwd_walls), min(cpus) / min(fwd_cpus)
    benchmark.extra_info.update(threads=THREADS, lsuv_s=min(walls), forward_s=min(fwd_walls), ratio=ratio,
                                ratio_cpu=ratio_cpu, forward_passes=rep.forward_passes, rounds=ROUNDS)
    print(f"\nLSUV {DEPTH}x{WIDTH} batch {BATCH} f32, {THREADS} threads, best of {ROUNDS}: LSUV {min(walls):.2f} s, "
          f"its {rep.forward_passes} forward passes {min(fwd_walls):.2f} s -> ratio {ratio:.3f} wall, "
          f"{ratio_cpu:.3f} CPU time (target <= 1.3)")


def test_lsuv_orthogonal_preinit(benchmark):
    """The whole call including the orthonormal pre-init (Householder QR of every weight)."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    depth = min(DEPTH, 4)
    model = _mlp(depth, WIDTH)
    x = torch.randn(BATCH, WIDTH)

    def run():
        with initlab.num_threads(THREADS):
            itorch.lsuv(model, x, orthogonal=True, seed=0)

    benchmark.group = f"lsuv+orthogonal torch MLP {depth}x{WIDTH} t={THREADS}"
    benchmark.extra_info["threads"] = THREADS
    benchmark.pedantic(run, rounds=1, iterations=1)


def _big_model(n_params: float) -> nn.Module:
    """Linear layers of 4096x4096 (+ bias), an Embedding and a LayerNorm: about n_params parameters."""
    d = 4096
    emb = nn.Embedding(8192, d)
    n_lin = max(1, int((n_params - 8192 * d) // (d * d + d)))
    layers: list[nn.Module] = [emb]
    layers += [nn.Linear(d, d) for _ in range(n_lin)]
    layers.append(nn.LayerNorm(d))
    return nn.Sequential(*layers)


def _reset_all(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def test_init_module_vs_reset_parameters(benchmark):
    torch.set_num_threads(THREADS)
    model = _big_model(INIT_PARAMS)
    n = sum(p.numel() for p in model.parameters())
    _reset_all(model)  # prefault every parameter
    t_torch = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        _reset_all(model)
        t_torch = min(t_torch, time.perf_counter() - t0)

    def run():
        with initlab.num_threads(THREADS):
            itorch.init_module(model, "torch_default", seed=0)

    run()  # warm-up
    benchmark.group = f"init_module {n / 1e6:.0f}M params f32 t={THREADS}"
    benchmark.pedantic(run, rounds=3, iterations=1)
    if getattr(benchmark, "stats", None):
        t_ours = benchmark.stats.stats.min
    else:
        t0 = time.perf_counter()
        run()
        t_ours = time.perf_counter() - t0
    ratio = t_torch / t_ours
    benchmark.extra_info.update(threads=THREADS, params=n, torch_reset_s=t_torch, init_module_s=t_ours, ratio=ratio)
    print(f"\ninit_module torch_default, {n / 1e6:.0f}M float32 params, {THREADS} threads: initlab {t_ours:.3f} s, "
          f"reset_parameters() {t_torch:.3f} s -> {ratio:.1f}x faster (target >= 5x)")
