"""Thread scaling of the samplers and of model construction (issue 21 item 3).

    python benchmarks/bench_scaling.py [--threads 1,2,4,8,16] [--mib 1024] [--rounds 5]
                                       [--model 2048,16,32000,5632,16] [--construct-rounds 3] [--no-construct]

At each thread count, in the same run and interleaved round by round (each round visits every
thread count in turn, so a slow spell of the machine hits all of them):

* ``fill_``: the write bandwidth, torch's multi-threaded ``Tensor.fill_`` over a prefaulted
  buffer of ``--mib`` MiB (``torch.set_num_threads(t)``);
* ``touch``: a fresh ``torch.empty`` of the same size then ``fill_`` (allocation + first-touch
  faults + write), the physical limit of constructing that many bytes;
* the samplers into the same prefaulted buffer: float32 ``uniform_``, ``normal_``,
  ``trunc_normal_``, and bfloat16 ``normal_`` (``initlab.num_threads(t)``), as GB/s of output
  and as a fraction of ``fill_``;
* ``normal_ (fresh)``: ``normal_`` into a fresh ``torch.empty`` (faults + sampling);
* construction (``bench_construct``'s routes ``meta + materialize``, ``fast_init`` and
  ``touch`` on the Llama-style ``--model``), each run in a fresh process at that thread count,
  thread counts alternated, ``--construct-rounds`` each.

Medians over rounds with [min-max]; the load average is printed. The default thread counts are
1, 2, 4, 8, 16 capped at the machine's processors (the core never runs more threads than
processors). Ready for a 16-core host; on the 2-core development VM only 1 and 2 are measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

import initlab

HERE = os.path.dirname(os.path.abspath(__file__))


def _default_threads() -> list[int]:
    n = os.cpu_count() or 1
    return [t for t in (1, 2, 4, 8, 16) if t <= n] + ([n] if n > 16 or n not in (1, 2, 4, 8, 16) else [])


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def kernels(threads: list[int], mib: int, rounds: int) -> dict[int, dict[str, list[float]]]:
    """GB/s of every in-process case at every thread count, interleaved."""
    import torch

    n = (mib << 20) // 4
    buf = torch.empty(n, dtype=torch.float32)
    buf.fill_(0.0)  # prefault
    b16 = torch.empty(2 * n, dtype=torch.bfloat16)  # the same bytes
    b16.fill_(0.0)
    nbytes = 4 * n
    cases: dict[str, Callable[[], Any]] = {
        "fill_": lambda: buf.fill_(1.0),
        "uniform_": lambda: initlab.uniform_(buf, -1.0, 1.0, seed=1),
        "normal_": lambda: initlab.normal_(buf, 0.0, 0.02, seed=1),
        "trunc_normal_": lambda: initlab.trunc_normal_(buf, 0.0, 1.0, -2.0, 2.0, seed=1),
        "normal_ bf16": lambda: initlab.normal_(b16, 0.0, 0.02, seed=1),
    }
    out: dict[int, dict[str, list[float]]] = {t: {} for t in threads}
    for t in threads:  # warm-up: thread pools at every size
        torch.set_num_threads(t)
        with initlab.num_threads(t):
            for fn in cases.values():
                fn()
    for _ in range(rounds):
        for t in threads:
            torch.set_num_threads(t)
            with initlab.num_threads(t):
                for name, fn in cases.items():
                    out[t].setdefault(name, []).append(nbytes / _timed(fn) / 1e9)
                # fresh memory: allocation + first-touch faults (+ sampling)
                fresh = torch.empty(n, dtype=torch.float32)
                out[t].setdefault("touch", []).append(nbytes / _timed(lambda: fresh.fill_(1.0)) / 1e9)
                del fresh
                fresh = torch.empty(n, dtype=torch.float32)
                out[t].setdefault("normal_ (fresh)", []).append(
                    nbytes / _timed(lambda: initlab.normal_(fresh, 0.0, 0.02, seed=1)) / 1e9)
                del fresh
    return out


def construction(threads: list[int], dims: tuple[int, ...], rounds: int) -> dict[int, dict[str, list[float]]]:
    """Seconds of bench_construct's routes at every thread count, fresh process each, alternated."""
    sys.path.insert(0, HERE)
    import bench_construct as bc

    out: dict[int, dict[str, list[float]]] = {t: {} for t in threads}
    for _ in range(rounds):
        for t in threads:
            for route in ("meta + materialize", "fast_init", "touch"):
                r = bc._measure_in_subprocess(route, dims, t, "float32")
                if "skip" in r:
                    print(r["skip"], file=sys.stderr)
                    continue
                out[t].setdefault(route, []).append(r["phases"]["total"])
    return out


def _c(v: list[float], fmt: str = ".2f") -> str:
    if not v:
        return "-"
    return f"{format(statistics.median(v), fmt)} [{format(min(v), fmt)}-{format(max(v), fmt)}]"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", default=",".join(map(str, _default_threads())))
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--model", default="2048,16,32000,5632,16")
    ap.add_argument("--construct-rounds", type=int, default=3)
    ap.add_argument("--no-construct", action="store_true")
    a = ap.parse_args(argv)
    threads = [int(x) for x in a.threads.split(",")]
    cpus = os.cpu_count() or 1
    if max(threads) > cpus:
        print(f"note: this machine has {cpus} processors; counts above it run {cpus} threads (the core's cap)")
    load = [os.getloadavg()[0]]
    k = kernels(threads, a.mib, a.rounds)
    load.append(os.getloadavg()[0])
    print(f"samplers and memory, {a.mib} MiB buffer (float32; bf16 the same bytes), GB/s of output, median "
          f"[min-max] over {a.rounds} interleaved rounds; {cpus} processors; load average "
          f"{min(load):.2f}-{max(load):.2f}")
    names = ("fill_", "touch", "uniform_", "normal_", "trunc_normal_", "normal_ bf16", "normal_ (fresh)")
    print(f"{'threads':>8} " + " ".join(f"{n:>22}" for n in names))
    for t in threads:
        print(f"{t:>8} " + " ".join(f"{_c(k[t].get(n, [])):>22}" for n in names))
    print(f"{'threads':>8} " + " ".join(f"{n + ' / fill_':>22}" for n in names[1:]))
    for t in threads:
        f = statistics.median(k[t]["fill_"])
        print(f"{t:>8} " + " ".join(f"{statistics.median(k[t][n]) / f:>22.2f}" for n in names[1:]))
    if a.no_construct:
        return
    dims = tuple(int(x) for x in a.model.split(","))
    c = construction(threads, dims, a.construct_rounds)
    load.append(os.getloadavg()[0])
    print(f"\nconstruction of Llama-style {a.model} (float32), seconds, fresh process per run, thread counts "
          f"alternated, median [min-max] of {a.construct_rounds}; load average {min(load):.2f}-{max(load):.2f}")
    routes = ("meta + materialize", "fast_init", "touch")
    print(f"{'threads':>8} " + " ".join(f"{r:>22}" for r in routes) + f"{'materialize / touch':>22}")
    for t in threads:
        m = c[t].get("meta + materialize", [])
        tt = c[t].get("touch", [])
        ratio = statistics.median(m) / statistics.median(tt) if m and tt else float("nan")
        print(f"{t:>8} " + " ".join(f"{_c(c[t].get(r, [])):>22}" for r in routes) + f"{ratio:>22.2f}")


if __name__ == "__main__":
    main()
