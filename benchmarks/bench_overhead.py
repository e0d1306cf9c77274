"""Per-parameter overhead of the whole-model calls (issue 21 item 4): ``init_module`` and
``materialize`` on a model with 10,000 small parameters against the cost of its fills alone.

Goal: each call costs what its fills cost plus at most 20 µs per parameter.

Models (10,000 parameters each, float32, CPU):

* ``layernorm``: ``nn.ModuleList`` of 5,000 ``LayerNorm(64)`` (weight + bias, 64 elements each);
* ``linear``: ``nn.Sequential`` of 5,000 ``Linear(64, 64)`` (weight 64x64 + bias 64).

Recipes: ``"torch_default"`` and ``"kaiming_normal"`` (``seed=0``); ``"hf"`` does not apply to
plain torch modules.

Routes (each one in a **fresh process**, the routes alternated, ``INITLAB_BENCH_ROUNDS`` rounds
(default 3); in each process one warm-up call, then ``INITLAB_BENCH_REPS`` (default 5) timed
calls whose median is that process's figure; the table gives the median over the processes and
their min-max):

* ``fills``: the same fills the recipe makes (read from ``plan(model, recipe, seed=0)``, each
  parameter's seed ``Generator(key, stream=name_stream(name))`` made before the clock starts)
  called through initlab's **public** functions ``initlab.init.normal_`` / ``uniform_`` /
  ``trunc_normal_`` / ``constant_`` on the eagerly built model's parameters. After the timing
  the process checks that they wrote exactly the bits ``init_module`` writes (``same bits``).
* ``core``: the same fills as direct ``initlab._core.fill`` calls on the parameters' NumPy
  views, every argument precomputed: the physical cost, no Python validation at all.
* ``init_module``: ``initlab.torch.init_module(model, recipe, seed=0)`` on the eager model.
* ``alloc+fills``: a meta-built model, ``model.to_empty(device="cpu")`` (timed: ``alloc``),
  then the public fills on that fresh storage (timed: ``fills fresh``).
* ``materialize``: ``initlab.torch.materialize(meta_model, recipe, seed=0)`` (a new meta model
  for each call, built before the clock starts).

Overhead per parameter: ``(init_module - fills) / n`` and ``(materialize - alloc - fills fresh)
/ n`` in µs (medians), and the same against ``core`` (the fills with no Python validation).

Threads: 1 (``OMP_NUM_THREADS=1``, ``initlab.set_num_threads(1)``, ``torch.set_num_threads(1)``);
``INITLAB_BENCH_THREADS`` changes it. Python's cyclic collector runs as usual (the whole-model
calls pause it themselves).

Run: ``python benchmarks/bench_overhead.py`` (about 3 minutes), or
``pytest benchmarks/bench_overhead.py -s``. ``INITLAB_BENCH_MODELS`` / ``INITLAB_BENCH_RECIPES``
(comma-separated) restrict the cases.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable

MODELS = ("layernorm", "linear")
RECIPES = ("torch_default", "kaiming_normal")
ROUTES = ("fills", "core", "init_module", "alloc+fills", "materialize")
N_MODULES = 5000
WIDTH = 64
GOAL_US = 20.0


def _threads() -> int:
    return int(os.environ.get("INITLAB_BENCH_THREADS", "1"))


def _build(kind: str, meta: bool = False) -> Any:
    import torch
    from torch import nn

    def make() -> Any:
        if kind == "layernorm":
            return nn.ModuleList(nn.LayerNorm(WIDTH) for _ in range(N_MODULES))
        return nn.Sequential(*[nn.Linear(WIDTH, WIDTH) for _ in range(N_MODULES)])

    if meta:
        with torch.device("meta"):
            return make()
    return make()


def _fill_calls(model: Any, recipe: str, core: bool) -> Callable[[], Callable[[], None]]:
    """A maker of a no-argument function that makes the recipe's fills on ``model``'s parameters
    (seeds made by the maker, before the clock starts)."""
    import initlab
    from initlab import _core
    from initlab._buffers import c_strides
    from initlab._simd import _isa_code
    from initlab.generator import Generator, name_stream, resolve_seed
    from initlab.torch import plan

    key = resolve_seed(0)[0]
    params = dict(model.named_parameters())
    work = [(params[e.name], e.init, e.params, name_stream(e.name)) for e in plan(model, recipe, seed=0).entries]
    assert len(work) == len(params), "every parameter is filled"
    if core:
        dist = {"uniform": 0, "normal": 1, "trunc_normal": 2, "constant": 3}
        calls = []
        for p, init, q, stream in work:
            arr = p.detach().numpy()
            if init == "normal":
                a = (q["mean"], q["std"], 0.0, 0.0)
            elif init == "uniform":
                a = (q["a"], q["b"], 0.0, 0.0)
            elif init == "trunc_normal":
                a = (q["mean"], q["std"], q["a"], q["b"])
            else:
                a = (q["value"], 0.0, 0.0, 0.0)
            calls.append((arr, 0, dist[init], *a, key, stream if init != "constant" else 0,
                          c_strides(tuple(arr.shape)), 0, _threads(), _isa_code()))

        def maker_core() -> Callable[[], None]:
            def run() -> None:
                fill = _core.fill
                for c in calls:
                    fill(*c)
            return run

        return maker_core

    I = initlab.init

    def maker() -> Callable[[], None]:
        seeded = [(p, init, q, Generator(key, stream=s)) for p, init, q, s in work]

        def run() -> None:
            for p, init, q, g in seeded:
                if init == "normal":
                    I.normal_(p, q["mean"], q["std"], seed=g)
                elif init == "uniform":
                    I.uniform_(p, q["a"], q["b"], seed=g)
                elif init == "trunc_normal":
                    I.trunc_normal_(p, q["mean"], q["std"], q["a"], q["b"], seed=g)
                else:
                    I.constant_(p, q["value"])
        return run

    return maker


def _clock(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(route: str, kind: str, recipe: str) -> dict[str, Any]:
    """One process's figures (seconds, medians of the timed calls)."""
    import torch

    import initlab
    from initlab.torch import init_module, materialize

    torch.set_num_threads(_threads())
    initlab.set_num_threads(_threads())
    reps = int(os.environ.get("INITLAB_BENCH_REPS", "5"))
    out: dict[str, Any] = {"threads": _threads()}
    times: dict[str, list[float]] = {}
    with torch.no_grad():
        if route in ("fills", "core", "init_module"):
            model = _build(kind)
            out["params"] = sum(1 for _ in model.parameters())
            if route == "init_module":
                run = lambda: init_module(model, recipe, seed=0)  # noqa: E731
                for k in range(reps + 1):
                    dt = _clock(run)
                    if k:
                        times.setdefault("total", []).append(dt)
            else:
                maker = _fill_calls(model, recipe, core=route == "core")
                for k in range(reps + 1):
                    run = maker()
                    dt = _clock(run)
                    if k:
                        times.setdefault("total", []).append(dt)
                twin = _build(kind)
                init_module(twin, recipe, seed=0)
                out["same_bits"] = all(torch.equal(a.view(torch.uint8), b.view(torch.uint8))
                                       for a, b in zip(model.parameters(), twin.parameters()))
        elif route == "alloc+fills":
            for k in range(reps + 1):
                model = _build(kind, meta=True)
                if not k:
                    out["params"] = sum(1 for _ in model.parameters())
                alloc = _clock(lambda: model.to_empty(device="cpu"))
                run = _fill_calls(model, recipe, core=False)()
                fills = _clock(run)
                if k:
                    times.setdefault("alloc", []).append(alloc)
                    times.setdefault("fills fresh", []).append(fills)
        elif route == "materialize":
            for k in range(reps + 1):
                model = _build(kind, meta=True)
                if not k:
                    out["params"] = sum(1 for _ in model.parameters())
                dt = _clock(lambda: materialize(model, recipe, seed=0))
                if k:
                    times.setdefault("total", []).append(dt)
        else:
            raise ValueError(route)
    out["times"] = {k: statistics.median(v) for k, v in times.items()}
    return out


def _in_subprocess(route: str, kind: str, recipe: str) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(_threads()))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--route", route, kind, recipe],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{route} {kind} {recipe} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cases() -> list[tuple[str, str]]:
    models = os.environ.get("INITLAB_BENCH_MODELS", ",".join(MODELS)).split(",")
    recipes = os.environ.get("INITLAB_BENCH_RECIPES", ",".join(RECIPES)).split(",")
    return [(m, r) for m in models for r in recipes]


def run(rounds: int | None = None) -> dict[str, Any]:
    """{(model, recipe): {route: [per-process figures]}}, routes alternated over the rounds."""
    rounds = rounds or int(os.environ.get("INITLAB_BENCH_ROUNDS", "3"))
    res: dict[str, Any] = {"runs": {}, "load": [os.getloadavg()[0]], "rounds": rounds}
    for _ in range(rounds):
        for kind, recipe in _cases():
            for route in ROUTES:
                r = _in_subprocess(route, kind, recipe)
                case = res["runs"].setdefault(f"{kind} {recipe}", {})
                case.setdefault(route, []).append(r)
                res["params"], res["threads"] = r["params"], r["threads"]
                print(kind, recipe, route, {k: round(v * 1e3, 2) for k, v in r["times"].items()}, "ms",
                      file=sys.stderr, flush=True)
        res["load"].append(os.getloadavg()[0])
    return res


def _vals(runs: list[dict[str, Any]], k: str) -> list[float]:
    return [r["times"][k] for r in runs if k in r["times"]]


def table(res: dict[str, Any]) -> str:
    n = res["params"]
    us = 1e6 / n

    def cell(v: list[float]) -> str:
        return f"{statistics.median(v) * us:6.1f} [{min(v) * us:.1f}-{max(v) * us:.1f}]"

    lines = [f"per-parameter cost in µs ({n} parameters, float32, CPU; {res['threads']} thread(s); fresh process "
             f"per route, routes alternated, {res['rounds']} rounds; median [min-max] over processes; load average "
             f"{min(res['load']):.2f}-{max(res['load']):.2f})",
             f"{'model recipe':<28}{'route':<14}{'µs/param':<22}overhead µs/param over fills (over core)"]
    for case, runs in res["runs"].items():
        med = {(route, k): statistics.median(_vals(rr, k)) for route, rr in runs.items() for k in rr[0]["times"]}
        fills, core = med[("fills", "total")], med[("core", "total")]
        alloc, fresh = med[("alloc+fills", "alloc")], med[("alloc+fills", "fills fresh")]
        same = all(r.get("same_bits") for r in runs["fills"] + runs["core"])
        rows = [
            ("fills", _vals(runs["fills"], "total"), f"public initlab.init fills; same bits as init_module: {same}"),
            ("core", _vals(runs["core"], "total"), "_core.fill, arguments precomputed"),
            ("init_module", _vals(runs["init_module"], "total"),
             _verdict(med[("init_module", "total")] - fills, med[("init_module", "total")] - core, n)),
            ("alloc", _vals(runs["alloc+fills"], "alloc"), "to_empty(device='cpu')"),
            ("fills fresh", _vals(runs["alloc+fills"], "fills fresh"), "public fills on fresh to_empty storage"),
            ("materialize", _vals(runs["materialize"], "total"),
             _verdict(med[("materialize", "total")] - alloc - fresh,
                      med[("materialize", "total")] - alloc - fresh + (fills - core), n)),
        ]
        for route, v, note in rows:
            lines.append(f"{case:<28}{route:<14}{cell(v):<22}{note}")
    return "\n".join(lines)


def _verdict(over: float, over_core: float, n: int) -> str:
    o, oc = over / n * 1e6, over_core / n * 1e6
    return f"{o:5.1f} ({oc:.1f})  {'<=' if o <= GOAL_US else '>'} {GOAL_US:g} goal"


def test_overhead():
    import pytest

    pytest.importorskip("torch")
    res = run()
    print("\n" + table(res))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--route":
        print(json.dumps(measure(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        print(table(run()))
