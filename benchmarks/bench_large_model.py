"""The largest model that fits (issue 21 item 2): a 7 B-parameter Llama-style config in bfloat16
(and a ~3 B one in float32) built on ``torch.device("meta")`` and ``materialize(model, "hf",
seed=0)``-ed on this machine, against allocating and touching the same bytes.

Skipped unless ``INITLAB_BENCH_LARGE=1`` (it needs ~14 GiB of free memory for the 7 B model).
Every route runs in a **fresh process**, routes alternated (touch, materialize, touch, ...),
``INITLAB_BENCH_ROUNDS`` times each (default 3); the parent watches each child's RSS and the
machine's ``MemAvailable`` and kills a child that passes ``INITLAB_BENCH_RSS_LIMIT_GIB``
(default 22) or leaves less than 1 GiB available.

Routes:

* ``touch``: ``torch.empty(n, dtype)`` then ``fill_(1.0)`` (torch's multi-threaded fill): the
  physical limit, the same bytes allocated and written once;
* ``materialize``: the meta-built model, ``initlab.torch.materialize(model, "hf", seed=0)``,
  with the breakdown of ``bench_construct`` (core fills, python, plan, buffers, allocation,
  user/system CPU, minor faults); after the timing, a **values check**: (a) a one-layer model
  of the same config (same names and shapes for the embedding, layer 0, the final norm and the
  head) is given storage and ``init_module(twin, "hf", seed=0)``-ed, and those parameters
  must equal the materialized ones bit for bit (``init_module``'s streams come from the names);
  (b) windows of the last layer's weights are compared with
  ``initlab.normal_(block, std=..., seed=Generator(0, stream=...), global_shape=..., offset=...)``
  using the numbers ``plan(model, "hf", seed=0)`` gives (the model is never built eagerly);
* ``fast_init`` (only when named in ``INITLAB_BENCH_LARGE_ROUTES``): ordinary construction
  inside ``fast_init(seed=0)``, for its peak memory.

Reported per route: median [min-max] of the wall time, ``peak/bytes`` (the process's peak RSS
growth during the call over the parameters' bytes; goal <= 1.05), user and system CPU seconds,
minor faults. The load average is printed: on this 2-core VM other work shows as spread.

Configuration: ``INITLAB_BENCH_LARGE_MODEL`` = ``7b-bf16`` (default; hidden 4096, 32 layers,
vocab 32000, intermediate 11008, 6.74 B parameters, 12.55 GiB), ``3b-f32`` (hidden 3072, 26
layers, vocab 32000, intermediate 8192, 3.14 B parameters, 11.7 GiB) or
``0.95b-f32`` (bench_construct's model), or ``hidden,layers,vocab,intermediate,heads,dtype``;
``INITLAB_BENCH_LARGE_ROUTES`` (default ``touch,materialize``), ``INITLAB_BENCH_THREADS``.
Run: ``INITLAB_BENCH_LARGE=1 python benchmarks/bench_large_model.py`` (or under pytest with
``-s``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

MODELS = {
    "7b-bf16": (4096, 32, 32000, 11008, 32, "bfloat16"),
    "3b-f32": (3072, 26, 32000, 8192, 24, "float32"),
    "0.95b-f32": (2048, 16, 32000, 5632, 16, "float32"),
}
GiB = 1 << 30


def _model_spec() -> tuple[int, int, int, int, int, str]:
    v = os.environ.get("INITLAB_BENCH_LARGE_MODEL", "7b-bf16")
    if v in MODELS:
        return MODELS[v]
    h, l, voc, i, hd, dt = v.split(",")
    return int(h), int(l), int(voc), int(i), int(hd), dt


def _threads() -> int:
    e = os.environ.get("INITLAB_BENCH_THREADS")
    if e:
        return int(e.split(",")[0])
    import initlab

    return initlab.get_num_threads()


def _config(spec: tuple, layers: int | None = None) -> Any:
    from transformers import LlamaConfig

    h, l, voc, i, hd, dt = spec
    return LlamaConfig(hidden_size=h, num_hidden_layers=l if layers is None else layers, vocab_size=voc,
                       intermediate_size=i, num_attention_heads=hd, num_key_value_heads=hd, dtype=dt)


def _meta_model(cfg: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, cfg.dtype if isinstance(cfg.dtype, str)
                                                                 else str(cfg.dtype).split(".")[-1]))
    return m


def _check_values(model: Any, spec: tuple) -> dict[str, Any]:
    """Spot-check the materialized values against init_module (see the module docstring)."""
    import torch

    import initlab
    import initlab.torch as itorch

    h, l, *_ = spec
    checked, windows = [], 0
    # (a) a one-layer twin: same names and shapes for embed, layer 0, norm, head.
    twin = _meta_model(_config(spec, layers=1))
    twin.to_empty(device="cpu")
    itorch.init_module(twin, "hf", seed=0)
    big = dict(model.named_parameters())
    for name, p in twin.named_parameters():
        q = big[name]
        assert q.shape == p.shape and q.dtype == p.dtype, name
        if not torch.equal(q.view(torch.int16) if q.dtype == torch.bfloat16 else q, p.view(torch.int16)
                           if p.dtype == torch.bfloat16 else p):
            raise AssertionError(f"{name}: materialize differs from init_module on the same-structure twin")
        checked.append(name)
    del twin
    # (b) windows of the last layer, from plan()'s numbers, filled alone with global_shape/offset.
    man = itorch.plan(_meta_model(_config(spec)), "hf", seed=0)
    last = f"model.layers.{l - 1}."
    for e in man.entries:
        if not e.name.startswith(last) or e.init != "normal" or len(e.shape) != 2:
            continue
        t = model.get_parameter(e.name)
        rows, cols = e.shape
        for r0, c0 in ((0, 0), (rows // 2 + 3, cols // 3 + 5), (rows - 17, cols - 129)):
            blk = torch.empty(17, 129, dtype=t.dtype)
            initlab.normal_(blk, e.params.get("mean", 0.0), e.params["std"],
                            seed=initlab.Generator(0, stream=e.stream), global_shape=tuple(e.shape), offset=(r0, c0))
            if not torch.equal(blk.view(torch.int16) if blk.dtype == torch.bfloat16 else blk,
                               t[r0:r0 + 17, c0:c0 + 129].contiguous().view(torch.int16)
                               if t.dtype == torch.bfloat16 else t[r0:r0 + 17, c0:c0 + 129]):
                raise AssertionError(f"{e.name}[{r0}:, {c0}:]: materialize differs from the window fill")
            windows += 1
    std = float(model.get_parameter(f"{last}mlp.down_proj.weight")[:256].float().std())
    return {"equal_to_twin": len(checked), "windows_equal": windows, "std_down_proj_last": std}


def measure(route: str) -> dict[str, Any]:
    """One route in this process; phases as bench_construct, plus the values check for materialize."""
    import gc
    import resource

    import torch

    import initlab

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_construct as bc

    spec = _model_spec()
    threads = _threads()
    torch.set_num_threads(threads)
    tdt = getattr(torch, spec[5])
    cfg = _config(spec)
    clock = bc._Clock()
    bc._instrument(clock)
    import initlab.torch as itorch
    from initlab.torch.fast_init import fast_init

    n_params = sum(p.numel() for p in _meta_model(cfg).parameters())
    nbytes = n_params * torch.empty(0, dtype=tdt).element_size()
    tiny = _config((64, 1, 128, 128, 4, spec[5]))
    ph: dict[str, Any] = {}
    out: Any = None
    with initlab.num_threads(threads):
        # warm-up on a tiny model: imports, registries, thread pools
        if route == "materialize":
            itorch.materialize(_meta_model(tiny), "hf", seed=0)
        elif route == "fast_init":
            from transformers import AutoModelForCausalLM

            with fast_init(seed=0):
                AutoModelForCausalLM.from_config(tiny)
        else:
            torch.empty(1000, dtype=tdt).fill_(1.0)
        model = _meta_model(cfg) if route == "materialize" else None
        gc.collect()
        clock.reset()
        rss0 = bc._rss_bytes()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if route == "touch":
            out = torch.empty(n_params, dtype=tdt)
            out.fill_(1.0)
        elif route == "materialize":
            out = itorch.materialize(model, "hf", seed=0)
        elif route == "fast_init":
            from transformers import AutoModelForCausalLM

            with fast_init(seed=0):
                out = AutoModelForCausalLM.from_config(cfg)
        ph["total"] = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        ph.update(clock.t)
        ph["user"], ph["sys"] = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
        ph["minflt"] = float(r1.ru_minflt - r0.ru_minflt)
        ph["peak/bytes"] = (r1.ru_maxrss * 1024 - rss0) / nbytes
        ph["peak RSS GiB"] = r1.ru_maxrss * 1024 / GiB  # the whole process: interpreter, torch, transformers
        ph["RSS before GiB"] = rss0 / GiB
        if route == "touch":
            ph["core"] = ph["total"]  # torch's fill_: faults + write
        else:
            ph["python"] = ph["total"] - sum(ph.get(k, 0.0) for k in ("core", "plan", "buffers", "alloc"))
        if route != "touch":
            assert all(p.dtype == tdt for p in out.parameters()), "parameters are not in the config's dtype"
        check = _check_values(out, spec) if route == "materialize" else None
    return {"phases": ph, "params": n_params, "bytes": nbytes, "threads": threads, "check": check}


def _watch(proc: subprocess.Popen, limit: float, stop: threading.Event, why: list[str]) -> None:
    while not stop.wait(0.2):
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                rss = next(int(x.split()[1]) * 1024 for x in f if x.startswith("VmRSS:"))
            with open("/proc/meminfo") as f:
                avail = next(int(x.split()[1]) * 1024 for x in f if x.startswith("MemAvailable:"))
        except (OSError, StopIteration):
            continue
        if rss > limit or avail < GiB:
            why.append(f"killed: RSS {rss / GiB:.1f} GiB, MemAvailable {avail / GiB:.1f} GiB")
            proc.kill()
            return


def _in_subprocess(route: str) -> dict[str, Any]:
    limit = float(os.environ.get("INITLAB_BENCH_RSS_LIMIT_GIB", "22")) * GiB
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--route", route], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stop, why = threading.Event(), []
    th = threading.Thread(target=_watch, args=(proc, limit, stop, why), daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode != 0:
        last = (why or err.strip().splitlines() or ["no output"])[-1]
        return {"skip": f"{route} failed: {last[:300]}"}
    return json.loads(out.strip().splitlines()[-1])


def run(rounds: int | None = None) -> dict[str, Any]:
    rounds = rounds or int(os.environ.get("INITLAB_BENCH_ROUNDS", "3"))
    routes = os.environ.get("INITLAB_BENCH_LARGE_ROUTES", "touch,materialize").split(",")
    res: dict[str, Any] = {"runs": {}, "checks": [], "notes": [], "load": [os.getloadavg()[0]]}
    for _ in range(rounds):
        for route in routes:
            r = _in_subprocess(route)
            if "skip" in r:
                res["notes"].append(r["skip"])
                continue
            res["runs"].setdefault(route, []).append(r["phases"])
            res.update(params=r["params"], bytes=r["bytes"], threads=r["threads"])
            if r.get("check"):
                res["checks"].append(r["check"])
            print(route, {k: round(v, 3) for k, v in r["phases"].items()}, flush=True)
        res["load"].append(os.getloadavg()[0])
    return res


def table(res: dict[str, Any]) -> str:
    spec = _model_spec()
    runs = res["runs"]
    if not runs:
        return "no route completed: " + "; ".join(res["notes"])
    lines = [f"Llama-style {res['params'] / 1e9:.2f} B params {spec[5]} ({res['bytes'] / GiB:.2f} GiB), hidden "
             f"{spec[0]}, {spec[1]} layers, vocab {spec[2]}, intermediate {spec[3]}; {res['threads']} threads; "
             f"fresh process per route, alternated; median [min-max]; load average {min(res['load']):.2f}-"
             f"{max(res['load']):.2f}"]

    def cell(route: str, k: str, fmt: str) -> str:
        v = [r[k] for r in runs.get(route, []) if k in r]
        if not v:
            return "-"
        return f"{format(statistics.median(v), fmt)} [{format(min(v), fmt)}-{format(max(v), fmt)}] (n={len(v)})"

    for route in runs:
        lines.append(f"{route:<12} total {cell(route, 'total', '.2f')} s")
        for k in ("core", "plan", "buffers", "alloc", "python", "user", "sys", "minflt", "peak/bytes",
                  "peak RSS GiB", "RSS before GiB"):
            if any(k in r for r in runs[route]):
                lines.append(f"    {k:<15}{cell(route, k, '.0f' if k == 'minflt' else '.3f')}")
    if "touch" in runs and "materialize" in runs:
        t = statistics.median(r["total"] for r in runs["touch"])
        m = statistics.median(r["total"] for r in runs["materialize"])
        lines.append(f"materialize / touch (medians): {m / t:.2f}x   (goal <= 1.3x; peak/bytes goal <= 1.05)")
    for c in res["checks"][:1]:
        lines.append(f"values: {c['equal_to_twin']} parameters equal init_module on the one-layer twin, "
                     f"{c['windows_equal']} windows of the last layer equal the window fills; "
                     f"std of a down_proj block {c['std_down_proj_last']:.5f}")
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def test_large_model():
    import pytest

    if os.environ.get("INITLAB_BENCH_LARGE") != "1":
        pytest.skip("set INITLAB_BENCH_LARGE=1 to build the 7 B model (needs ~14 GiB free)")
    pytest.importorskip("transformers")
    res = run()
    print("\n" + table(res))
    assert res["runs"], res["notes"]


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--route":
        print(json.dumps(measure(sys.argv[2])))
    elif os.environ.get("INITLAB_BENCH_LARGE") != "1":
        print("set INITLAB_BENCH_LARGE=1 to run (builds a 7 B-parameter model; needs ~14 GiB free)")
    else:
        print(table(run()))
