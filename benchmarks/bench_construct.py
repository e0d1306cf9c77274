"""Constructing a ~1 B-parameter Llama-style model: ordinary Hugging Face vs initlab's routes,
with each route's time broken down (issue 21 item 1).

Routes, each in a **fresh process** (after a warm-up on a tiny model there), alternated round by
round (ordinary, fast_init, materialize, touch, ordinary, ...), so no route finds pages or
allocator state left by another, and a slow spell of this noisy VM hits every route alike:

1. ``ordinary``: ``AutoModelForCausalLM.from_config(config)`` (torch's ``reset_parameters``, then
   HF's ``_init_weights``, on torch's fills);
2. ``fast_init``: the same call inside ``initlab.torch.fast_init(seed=0)``;
3. ``meta + materialize``: built under ``torch.device("meta")``, then
   ``initlab.torch.materialize(model, recipe="hf", seed=0)``;
4. ``touch``: the physical limit, ``torch.empty(n)`` then ``fill_(1.0)`` (torch's multi-threaded
   fill) over the same number of bytes;
5. ``plan (hf)``: ``initlab.torch.plan(model, "hf")`` on the meta-built model.

Breakdown (seconds inside the timed call, measured by wrapping the library's own functions in
the benchmark process; nothing in initlab is changed for it):

* ``core``: wall time inside initlab's C++ fill calls (``initlab._core.fill`` on non-empty
  destinations): sampling plus the first-touch page faults of that memory;
* ``sampling (warm)``: the same fills again into the same, now resident memory (``init_module``
  with the same recipe after the construction): the sampling alone; ``faults`` is
  ``core - sampling (warm)``, the cost of first touch inside the fills;
* ``python``: the rest of the call (per-parameter planning and dispatch, module construction,
  torch's own small fills), i.e. ``total - core`` minus the phases named separately:
  ``plan`` (materialize's rule planning on the meta model), ``buffers`` (buffer plan: the
  buffer-only twin, and their copy), ``alloc`` (``to_empty`` / ``torch.empty``: allocation
  without touching);
* ``user``/``sys``: CPU seconds of the process during the call (``getrusage``; system time is
  the page faults, backed on first use by the VM's host in this Firecracker guest), ``minflt``
  its minor page faults (one per 4 KiB page touched for the first time), and ``peak/bytes``
  the process's peak RSS growth during the call over the parameters' bytes.

For ``touch``: ``alloc`` is ``torch.empty``, ``core`` the first ``fill_`` (faults + write),
``sampling (warm)`` a second ``fill_`` (the write alone).

Medians over rounds, with the spread (min-max) next to them; the machine's load average is
printed with the table (other work on the machine shows up as spread).

Configuration: INITLAB_BENCH_LLAMA="hidden,layers,vocab,intermediate,heads" (default
"2048,16,32000,5632,16", about 0.95e9 parameters), INITLAB_BENCH_DTYPE (float32 | bfloat16;
default float32), INITLAB_BENCH_THREADS (first value; default: initlab's default thread count),
INITLAB_BENCH_ROUNDS (default 3), INITLAB_BENCH_ROUTES (comma-separated subset of the routes).
Run as a script (``python benchmarks/bench_construct.py``) for the table, or with pytest
(``pytest benchmarks/bench_construct.py -s``): the figures go to the benchmark's extra_info.
Goals (issue 21): both initlab routes <= 1.3x touch and >= 3x faster than ordinary; plan < 1 s.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import time
from typing import Any, Callable

import initlab

HIDDEN, LAYERS, VOCAB, INTER, HEADS = (
    int(v) for v in os.environ.get("INITLAB_BENCH_LLAMA", "2048,16,32000,5632,16").split(","))
DTYPE = os.environ.get("INITLAB_BENCH_DTYPE", "float32")
_threads_env = os.environ.get("INITLAB_BENCH_THREADS")
THREADS = int(_threads_env.split(",")[0]) if _threads_env else initlab.get_num_threads()
ROUNDS = int(os.environ.get("INITLAB_BENCH_ROUNDS", "3"))

ROUTES = ("ordinary", "fast_init", "meta + materialize", "touch", "plan (hf)")
_env_routes = os.environ.get("INITLAB_BENCH_ROUTES")
SELECTED = tuple(r.strip() for r in _env_routes.split(",")) if _env_routes else ROUTES
PHASES = ("total", "core", "sampling (warm)", "faults", "plan", "buffers", "alloc", "python", "user", "sys",
          "minflt", "peak/bytes")


def _config(hidden: int, layers: int, vocab: int, inter: int, heads: int, dtype: str = DTYPE) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, vocab_size=vocab, intermediate_size=inter,
                       num_attention_heads=heads, num_key_value_heads=heads, dtype=dtype)


class _Clock:
    """Accumulates wall time of wrapped callables, by phase name (instrumentation only)."""

    def __init__(self) -> None:
        self.t: dict[str, float] = {}
        self.depth: dict[str, int] = {}

    def wrap(self, phase: str, fn: Callable, skip: Callable[..., bool] | None = None) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if (skip is not None and skip(*args, **kwargs)) or self.depth.get(phase, 0):
                return fn(*args, **kwargs)
            self.depth[phase] = self.depth.get(phase, 0) + 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.t[phase] = self.t.get(phase, 0.0) + time.perf_counter() - t0
                self.depth[phase] -= 1
        return timed

    def reset(self) -> None:
        self.t.clear()


def _instrument(clock: _Clock) -> None:
    """Wrap the functions whose time is reported (in this benchmark process only)."""
    import sys

    import torch

    import initlab.init as il
    import initlab.torch.buffers  # noqa: F401 - loads the submodules below
    import initlab.torch.materialize  # noqa: F401

    tb = sys.modules["initlab.torch.buffers"]
    tm = sys.modules["initlab.torch.materialize"]  # the package's attribute is the function

    class _CoreProxy:
        def __init__(self, core: Any) -> None:
            self._core = core
            # Empty probes validate parameters (python overhead); real fills are the core's time.
            self.fill = clock.wrap("core", core.fill, skip=lambda a, *r, **k: getattr(a, "size", 1) == 0)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._core, name)

    import initlab.torch._direct  # noqa: F401 - the whole-model write loop's direct core calls

    if not isinstance(il._core, _CoreProxy):
        proxy = _CoreProxy(il._core)
        for mod in list(sys.modules.values()):  # every initlab module that calls the core's fill
            if getattr(mod, "__name__", "").startswith("initlab") and getattr(mod, "_core", None) is proxy._core:
                mod._core = proxy
    tm._make_plan = clock.wrap("plan", tm._make_plan)
    tb.plan_buffers = clock.wrap("buffers", tb.plan_buffers)
    tb.apply_buffers = clock.wrap("buffers", tb.apply_buffers)
    torch.nn.Module.to_empty = clock.wrap("alloc", torch.nn.Module.to_empty)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(route: str, hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB, inter: int = INTER,
            heads: int = HEADS, threads: int = THREADS, dtype: str = DTYPE) -> dict[str, Any]:
    """Time one route in this process (after a warm-up on a tiny model): {"phases": {...}, "params"}."""
    import torch
    from transformers import AutoModelForCausalLM

    import initlab.torch as itorch
    from initlab.torch.fast_init import fast_init

    torch.set_num_threads(threads)
    cfg = _config(hidden, layers, vocab, inter, heads, dtype)
    tiny = _config(64, 1, 128, 128, 4, dtype)
    tdt = getattr(torch, dtype)
    clock = _Clock()
    _instrument(clock)

    def meta(c: Any = cfg) -> Any:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(c)

    def ordinary(c: Any = cfg) -> Any:
        return AutoModelForCausalLM.from_config(c)

    def fast(c: Any = cfg) -> Any:
        with fast_init(seed=0):
            return AutoModelForCausalLM.from_config(c)

    def materialized(c: Any = cfg) -> Any:
        return itorch.materialize(meta(c), recipe="hf", seed=0)

    n_params = sum(p.numel() for p in meta().parameters())
    nbytes = n_params * torch.empty(0, dtype=tdt).element_size()

    def touch(c: Any = None) -> Any:
        n = n_params if c is None else 1000
        t0 = time.perf_counter()
        x = torch.empty(n, dtype=tdt)
        t1 = time.perf_counter()
        x.fill_(1.0)
        t2 = time.perf_counter()
        clock.t["alloc"], clock.t["core"] = t1 - t0, t2 - t1
        return x

    fns: dict[str, Callable[..., Any]] = {"ordinary": ordinary, "fast_init": fast, "meta + materialize": materialized,
                                          "touch": touch}
    ph: dict[str, float] = {}
    with initlab.num_threads(threads):
        if route == "plan (hf)":
            model = meta()
            itorch.plan(meta(tiny), "hf", seed=0)  # warm-up
            gc.collect()
            t0 = time.perf_counter()
            itorch.plan(model, "hf", seed=0)
            ph["total"] = time.perf_counter() - t0
            return {"phases": ph, "params": n_params, "bytes": nbytes}
        fns[route](tiny)  # warm-up: imports, lazy registries, thread pools
        gc.collect()
        clock.reset()
        rss0 = _rss_bytes()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        out = fns[route]()
        ph["total"] = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        ph.update(clock.t)
        ph["user"], ph["sys"] = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
        ph["minflt"] = float(r1.ru_minflt - r0.ru_minflt)
        ph["peak/bytes"] = (r1.ru_maxrss * 1024 - rss0) / nbytes  # ru_maxrss: KiB on Linux
        # The sampling alone: the same fills into the same, now resident memory.
        clock.reset()
        if route == "touch":
            t0 = time.perf_counter()
            out.fill_(2.0)
            ph["sampling (warm)"] = time.perf_counter() - t0
        elif route in ("fast_init", "meta + materialize"):
            itorch.init_module(out, "hf", seed=0)
            ph["sampling (warm)"] = clock.t.get("core", 0.0)
        if "core" in ph and "sampling (warm)" in ph:
            ph["faults"] = ph["core"] - ph["sampling (warm)"]
        named = sum(ph.get(k, 0.0) for k in ("core", "plan", "buffers", "alloc"))
        ph["python"] = ph["total"] - named
        del out
    return {"phases": ph, "params": n_params, "bytes": nbytes}


def _measure_in_subprocess(route: str, dims: tuple[int, ...], threads: int, dtype: str) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    env = dict(os.environ, INITLAB_BENCH_LLAMA=",".join(map(str, dims)), INITLAB_BENCH_THREADS=str(threads),
               INITLAB_BENCH_DTYPE=dtype)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--route", route], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:  # one broken route does not lose the others' figures
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skip": f"{route} failed: {last[:300]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB, inter: int = INTER, heads: int = HEADS,
        threads: int = THREADS, rounds: int = ROUNDS, dtype: str = DTYPE,
        routes: tuple[str, ...] = SELECTED) -> dict[str, Any]:
    """Every route, each in a fresh process, alternated round by round; return
    {"runs": {route: [phases, ...]}, "params", "bytes", "threads", "notes", "load"}."""
    dims = (hidden, layers, vocab, inter, heads)
    runs: dict[str, list[dict[str, float]]] = {}
    notes: list[str] = []
    n_params = nbytes = 0
    load = [os.getloadavg()[0]]
    for _ in range(rounds):
        for route in routes:
            r = _measure_in_subprocess(route, dims, threads, dtype)
            if "skip" in r:
                if r["skip"] not in notes:
                    notes.append(r["skip"])
                continue
            n_params, nbytes = r["params"], r["bytes"]
            runs.setdefault(route, []).append(r["phases"])
        load.append(os.getloadavg()[0])
    return {"runs": runs, "params": n_params, "bytes": nbytes, "threads": threads, "notes": notes,
            "shape": (hidden, layers, vocab), "dtype": dtype, "load": load}


def median(res: dict[str, Any], route: str, phase: str = "total") -> float:
    vals = [r[phase] for r in res["runs"].get(route, []) if phase in r]
    return statistics.median(vals) if vals else float("nan")


def _cell(vals: list[float], fmt: str) -> str:
    if not vals:
        return "-"
    m = statistics.median(vals)
    if len(vals) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} [{format(min(vals), fmt)}-{format(max(vals), fmt)}]"


def table(res: dict[str, Any]) -> str:
    runs = res["runs"]
    lines = [
        f"Llama-style {res['params'] / 1e9:.3f} B params {res['dtype']} ({res['bytes'] / 2**30:.2f} GiB), "
        "hidden {}, {} layers, vocab {}; ".format(*res["shape"]) + f"{res['threads']} threads (torch and initlab); "
        f"each route in a fresh process, routes alternated, {max((len(v) for v in runs.values()), default=0)} "
        f"rounds; median [min-max]; load average during the run {min(res['load']):.2f}-{max(res['load']):.2f}",
    ]
    touch = median(res, "touch")
    ordinary = median(res, "ordinary")
    for route in ROUTES:
        if route not in runs:
            continue
        tot = [r["total"] for r in runs[route]]
        head = f"{route:<20} total {_cell(tot, '.3f')} s"
        if route not in ("touch", "plan (hf)"):
            head += f"   / touch {median(res, route) / touch:.2f}x   ordinary / route {ordinary / median(res, route):.2f}x"
        lines.append(head)
        for phase in PHASES[1:]:
            vals = [r[phase] for r in runs[route] if phase in r]
            if vals:
                fmt = ".0f" if phase == "minflt" else (".3f" if phase != "peak/bytes" else ".3f")
                lines.append(f"    {phase:<17}{_cell(vals, fmt)}")
    lines.append("goals (issue 21): initlab routes <= 1.3x touch and >= 3x faster than ordinary; plan < 1 s")
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def test_construct(benchmark):
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    res: dict[str, Any] = {}

    def go():
        res.update(run())

    benchmark.group = f"construct Llama {HIDDEN}x{LAYERS} {DTYPE} t={THREADS}"
    benchmark.pedantic(go, rounds=1, iterations=1)
    benchmark.extra_info.update(
        threads=res["threads"], params=res["params"], dtype=res["dtype"], notes=res["notes"], load=res["load"],
        runs=res["runs"], median={r: median(res, r) for r in res["runs"]},
        over_touch={r: median(res, r) / median(res, "touch") for r in res["runs"] if r != "plan (hf)"})
    print("\n" + table(res))


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--route":
        print(json.dumps(measure(sys.argv[2])))
    else:
        print(table(run()))
