"""Per-sampler throughput, interleaved with ndarray.fill on the same prefaulted buffer (issue 13).

    python benchmarks/bench_samplers.py [--sizes 4096,16384] [--threads 1,2] [--rounds 7] [--peers]
    python benchmarks/bench_samplers.py --incache     # ns and cycles per value, 1 thread, L2-resident

Every figure is a median over interleaved rounds (each round runs every case once, in turn), so
the share of ndarray.fill and the ratios to the peers come from the same minutes of the machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import initlab

try:
    import ml_dtypes
    BF16 = ml_dtypes.bfloat16
except ImportError:  # pragma: no cover
    BF16 = None

DTS = {"float32": np.float32, "float16": np.float16, "bfloat16": BF16, "float64": np.float64}
SAMPLERS = {
    "uniform_": lambda a: initlab.uniform_(a, -1.0, 1.0, seed=1),
    "normal_": lambda a: initlab.normal_(a, 0.0, 0.02, seed=1),
    "trunc_normal_": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, -2.0, 2.0, seed=1),
    "trunc_normal_(tail 5..6)": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, 5.0, 6.0, seed=1),
    "trunc_normal_(narrow)": lambda a: initlab.trunc_normal_(a, 0.0, 1.0, 0.3, 0.3 + 1e-4, seed=1),
}
GHZ = 2.445  # nominal clock of this guest (no cycle counters in the VM): cycles = ns * GHZ


def timeit(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def peers(dt, n_el):
    out = {}
    if dt in (np.float32, np.float64):
        rng = np.random.Generator(np.random.PCG64(1))
        out["numpy random(out=)"] = ("uniform_", lambda a: rng.random(out=a, dtype=a.dtype))
        out["numpy standard_normal(out=)"] = ("normal_", lambda a: rng.standard_normal(out=a, dtype=a.dtype))
    try:
        import torch
    except ImportError:
        return out
    def tw(f):
        def g(a):
            t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16) if dt is BF16 else torch.from_numpy(a)
            f(t)
        return g
    out["torch uniform_"] = ("uniform_", tw(lambda t: torch.nn.init.uniform_(t, -1.0, 1.0)))
    out["torch normal_"] = ("normal_", tw(lambda t: torch.nn.init.normal_(t, 0.0, 0.02)))
    if n_el <= 4096 * 4096:  # torch's trunc_normal_(std=1) re-samples the whole tensor: minutes at 16384^2
        out["torch trunc_normal_"] = ("trunc_normal_", tw(lambda t: torch.nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)))
    return out


def run(sizes, threads, rounds, dtypes, samplers, with_peers):
    print(f"# initlab {initlab.__version__} simd={initlab.simd_path()} rounds={rounds} (medians; G values/s)")
    for n in sizes:
        for dn in dtypes:
            dt = DTS[dn]
            if dt is None:
                continue
            a = np.empty((n, n), dt)
            a.fill(0)
            for t in threads:
                cases = {"ndarray.fill": lambda a: a.fill(0.5)}
                for s in samplers:
                    cases[s] = SAMPLERS[s]
                pe = peers(dt, n * n) if with_peers else {}
                if with_peers:
                    try:
                        import torch
                        torch.set_num_threads(t)
                    except ImportError:
                        pass
                for k, (_, f) in pe.items():
                    cases[k] = f
                times = {k: [] for k in cases}
                with initlab.num_threads(t):
                    for f in cases.values():
                        f(a)
                    for _ in range(rounds):
                        for k, f in cases.items():
                            times[k].append(timeit(lambda: f(a)))
                med = {k: statistics.median(v) for k, v in times.items()}
                gv = {k: n * n / v / 1e9 for k, v in med.items()}
                fill = gv["ndarray.fill"]
                print(f"\n## {n}^2 {dn} threads={t}: ndarray.fill {fill:.2f} G values/s ({fill * a.itemsize:.1f} GB/s)")
                print("| sampler | G values/s | share of fill | vs peers |")
                print("|---|---|---|---|")
                for s in samplers:
                    rat = ", ".join(f"{gv[s] / gv[k]:.1f}x {k}" for k, (ps, _) in pe.items() if ps == s)
                    print(f"| {s} | {gv[s]:.3f} | {gv[s] / fill:.2f} | {rat} |")
                for k in pe:
                    print(f"| ({k}) | {gv[k]:.3f} | {gv[k] / fill:.2f} | |")


def incache(rounds, dtypes, samplers):
    # 2^18 elements: 1 MiB of float32, L2-resident; the kernel's arithmetic, not the memory.
    print(f"# in-cache, 1 thread, simd={initlab.simd_path()}: ns/value and cycles/value at {GHZ} GHz nominal")
    print("| sampler | " + " | ".join(dtypes) + " |")
    print("|---|" + "---|" * len(dtypes))
    rows = {}
    with initlab.num_threads(1):
        for s in samplers:
            cells = []
            for dn in dtypes:
                dt = DTS[dn]
                a = np.zeros(1 << 18, dt)
                f = SAMPLERS[s]
                f(a)
                reps = 20 if "tail" not in s and "narrow" not in s else 1
                ts = []
                for _ in range(rounds):
                    ts.append(timeit(lambda: [f(a) for _ in range(reps)]) / reps)
                ns = statistics.median(ts) / a.size * 1e9
                cells.append(f"{ns:.3f} ns / {ns * GHZ:.2f} cyc")
            print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="4096,16384")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--dtypes", default="float32,float16,bfloat16,float64")
    p.add_argument("--samplers", default="uniform_,normal_,trunc_normal_")
    p.add_argument("--peers", action="store_true")
    p.add_argument("--incache", action="store_true")
    ns = p.parse_args()
    dts = ns.dtypes.split(",")
    sm = ns.samplers.split(",")
    if ns.incache:
        incache(ns.rounds, dts, sm)
    else:
        run([int(x) for x in ns.sizes.split(",")], [int(x) for x in ns.threads.split(",")], ns.rounds, dts, sm, ns.peers)
