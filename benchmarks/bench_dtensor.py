"""Sharded whole-model init (FSDP2, gloo on CPU) against the single-process init of the same model.

The issue's target: ``initlab.torch.init_module`` on 2 ranks x 1 thread, each rank filling only
its FSDP2 shard (``fully_shard`` on a model built on the meta device, then ``to_empty``: no rank
ever holds a full parameter), takes no longer than 1 process x 2 threads initializing the whole
model. The model is an MLP of ``INITLAB_BENCH_DT_LAYERS`` (default 8) Linear layers of
``INITLAB_BENCH_DT_WIDTH`` (default 4096) units, ``torch_default`` recipe, float32. Reported:
the single-process time, the slowest rank's time (after a barrier), their ratio, and each
rank's peak RSS growth during the init against its shard's size.

Run: ``python benchmarks/bench_dtensor.py`` or ``pytest benchmarks/bench_dtensor.py -s``.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time

import pytest

LAYERS = int(os.environ.get("INITLAB_BENCH_DT_LAYERS", "8"))
WIDTH = int(os.environ.get("INITLAB_BENCH_DT_WIDTH", "4096"))
ROUNDS = 3


def _mlp():
    from torch import nn

    return nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(LAYERS)])


def _single() -> float:
    import torch

    import initlab
    import initlab.torch as itorch

    torch.set_num_threads(2)
    model = _mlp()
    best = float("inf")
    with initlab.num_threads(2):
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            itorch.init_module(model, "torch_default", seed=0)
            best = min(best, time.perf_counter() - t0)
    return best


def _rank(rank: int, world: int, port: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import initlab
    import initlab.torch as itorch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    mesh = init_device_mesh("cpu", (world,))
    with torch.device("meta"):
        model = _mlp()
    for layer in model:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.to_empty(device="cpu")
    shard_bytes = sum(p.to_local().numel() * 4 for p in model.parameters())
    for p in model.parameters():  # touch the shard's pages so the timing is the fill, not page faults
        p.to_local().detach().zero_()
    best = float("inf")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with initlab.num_threads(1):
        for _ in range(ROUNDS):
            dist.barrier()
            t0 = time.perf_counter()
            itorch.init_module(model, "torch_default", seed=0)
            t = time.perf_counter() - t0
            worst = [None] * world
            dist.all_gather_object(worst, t)
            best = min(best, max(worst))
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"sharded_s": best, "shard_bytes": shard_bytes, "rss_growth_bytes_rank0": growth}, f)
    dist.destroy_process_group()


def run() -> dict:
    import tempfile

    import torch.multiprocessing as mp

    single = _single()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(tempfile.mkdtemp(), "dt.json")
    mp.start_processes(_rank, args=(2, port, out), nprocs=2, join=True, start_method="spawn")
    with open(out) as f:
        r = json.load(f)
    r.update(single_s=single, params=LAYERS * (WIDTH * WIDTH + WIDTH), ratio=single / r["sharded_s"])
    return r


def _report(r: dict) -> str:
    return (f"init_module torch_default, {r['params'] / 1e6:.0f} M float32 parameters ({LAYERS} x Linear({WIDTH})):\n"
            f"  1 process x 2 threads: {r['single_s']:.3f} s\n"
            f"  2 ranks x 1 thread (FSDP2 shards): {r['sharded_s']:.3f} s (slowest rank)\n"
            f"  single / sharded = {r['ratio']:.2f} (target >= 1.0)\n"
            f"  rank 0: shard {r['shard_bytes'] / 2**20:.0f} MiB, peak RSS growth during init "
            f"{r['rss_growth_bytes_rank0'] / 2**20:.1f} MiB")


def test_sharded_init_no_slower_than_single_process():
    pytest.importorskip("torch.distributed.fsdp")
    r = run()
    print("\n" + _report(r))


if __name__ == "__main__":
    res = run()
    print(_report(res))
    print(json.dumps(res), file=sys.stderr)
