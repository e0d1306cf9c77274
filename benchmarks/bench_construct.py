"""Constructing a ~1 B-parameter Llama-style model: ordinary Hugging Face vs initlab's routes.

In one run, same process, same thread count (torch and initlab):

1. ``ordinary``: ``AutoModelForCausalLM.from_config(config)`` (torch's ``reset_parameters``, then
   HF's ``_init_weights``, on torch's fills);
2. ``fast_init``: the same call inside ``initlab.torch.fast_init(seed=0)``;
3. ``meta + materialize``: built under ``torch.device("meta")``, then
   ``initlab.torch.materialize(model, recipe="hf", seed=0)`` (skipped with a message where
   ``materialize`` is not available);
4. ``touch``: the physical limit, allocating the same number of bytes and writing them once
   (the faster of ``torch.empty(n).fill_(1.0)`` and ``np.ones(n, np.float32)``).

Also timed: ``initlab.torch.plan(model, "hf")`` on the meta-built model (where available).
Targets (issue 8): both initlab routes >= 3x faster than ordinary and within 1.3x of touch;
plan < 1 s.

Configuration: INITLAB_BENCH_LLAMA="hidden,layers,vocab,intermediate,heads" (default
"2048,16,32000,5632,16", float32, about 1.0e9 parameters, ~4 GB per model; one model alive at
a time), INITLAB_BENCH_THREADS (first value; default: initlab's default thread count),
INITLAB_BENCH_ROUNDS (default 1; the best of each route is kept, routes interleaved).
Run as a script (``python benchmarks/bench_construct.py``) for the table, or with pytest
(``pytest benchmarks/bench_construct.py -s``): the figures go to the benchmark's extra_info.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any, Callable

import numpy as np

import initlab

HIDDEN, LAYERS, VOCAB, INTER, HEADS = (
    int(v) for v in os.environ.get("INITLAB_BENCH_LLAMA", "2048,16,32000,5632,16").split(","))
_threads_env = os.environ.get("INITLAB_BENCH_THREADS")
THREADS = int(_threads_env.split(",")[0]) if _threads_env else initlab.get_num_threads()
ROUNDS = int(os.environ.get("INITLAB_BENCH_ROUNDS", "1"))


def _config(hidden: int, layers: int, vocab: int, inter: int, heads: int) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=hidden, num_hidden_layers=layers, vocab_size=vocab, intermediate_size=inter,
                       num_attention_heads=heads, num_key_value_heads=heads, dtype="float32")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB, inter: int = INTER, heads: int = HEADS,
        threads: int = THREADS, rounds: int = ROUNDS) -> dict[str, Any]:
    """Time every route; return {"seconds": {route: s}, "params": n, "threads": t, "notes": [...]}."""
    import torch
    from transformers import AutoModelForCausalLM

    import initlab.torch as itorch
    from initlab.torch.fast_init import fast_init

    torch.set_num_threads(threads)
    cfg = _config(hidden, layers, vocab, inter, heads)
    have_materialize = hasattr(itorch, "materialize")
    have_plan = hasattr(itorch, "plan")
    notes: list[str] = []
    if not have_materialize:
        notes.append("initlab.torch.materialize is not available: the meta + materialize route is skipped")
    if not have_plan:
        notes.append("initlab.torch.plan is not available: plan is not timed")

    def ordinary():
        return AutoModelForCausalLM.from_config(cfg)

    def fast():
        with fast_init(seed=0):
            return AutoModelForCausalLM.from_config(cfg)

    def meta():
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg)

    def materialized():
        return itorch.materialize(meta(), recipe="hf", seed=0)

    with initlab.num_threads(threads):
        # Warm-up on a tiny model: imports, lazy registries, thread pools.
        tiny = _config(64, 1, 128, 128, 4)
        AutoModelForCausalLM.from_config(tiny)
        with fast_init(seed=0):
            AutoModelForCausalLM.from_config(tiny)
        if have_materialize:
            with torch.device("meta"):
                m = AutoModelForCausalLM.from_config(tiny)
            itorch.materialize(m, recipe="hf", seed=0)
        n_params = sum(p.numel() for p in meta().parameters())
        n_bytes = 4 * n_params
        best: dict[str, float] = {}
        routes: list[tuple[str, Callable[[], Any]]] = [("ordinary", ordinary), ("fast_init", fast)]
        if have_materialize:
            routes.append(("meta + materialize", materialized))
        routes.append(("touch", lambda: torch.empty(n_params, dtype=torch.float32).fill_(1.0)))
        routes.append(("touch (numpy)", lambda: np.ones(n_params, dtype=np.float32)))
        for _ in range(rounds):
            for name, fn in routes:
                s, out = _timed(fn)
                del out
                best[name] = min(best.get(name, float("inf")), s)
        # The physical limit: the faster of the two ways of allocating and writing the bytes once.
        best["touch"] = min(best["touch"], best.pop("touch (numpy)"))
        if have_plan:
            model = meta()
            s, _ = _timed(lambda: itorch.plan(model, "hf", seed=0))
            best["plan (hf)"] = s
            del model
    return {"seconds": best, "params": n_params, "bytes": n_bytes, "threads": threads, "notes": notes,
            "shape": (hidden, layers, vocab)}


def table(res: dict[str, Any]) -> str:
    s = res["seconds"]
    lines = [
        f"Llama-style {res['params'] / 1e9:.3f} B params float32 ({res['bytes'] / 2**30:.2f} GiB), "
        "hidden {}, {} layers, vocab {}; ".format(*res["shape"]) + f"{res['threads']} threads (torch and initlab)",
        f"{'route':<22}{'seconds':>10}{'ordinary / route':>19}{'route / touch':>16}",
    ]
    for name, v in s.items():
        if name == "plan (hf)":
            continue
        sp = s["ordinary"] / v if name != "touch" else float("nan")
        lines.append(f"{name:<22}{v:>10.3f}{sp:>18.2f}x{v / s['touch']:>15.2f}x")
    if "plan (hf)" in s:
        lines.append(f"{'plan (hf)':<22}{s['plan (hf)']:>10.3f}   (target < 1 s)")
    lines.append("targets: initlab routes >= 3x faster than ordinary, <= 1.3x touch")
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)


def test_construct(benchmark):
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    res: dict[str, Any] = {}

    def go():
        res.update(run())

    benchmark.group = f"construct Llama {HIDDEN}x{LAYERS} t={THREADS}"
    benchmark.pedantic(go, rounds=1, iterations=1)
    s = res["seconds"]
    benchmark.extra_info.update(threads=res["threads"], params=res["params"], seconds=s,
                                speedup={k: s["ordinary"] / v for k, v in s.items() if k not in ("touch", "plan (hf)")},
                                over_touch={k: v / s["touch"] for k, v in s.items() if k != "plan (hf)"})
    print("\n" + table(res))


if __name__ == "__main__":
    print(table(run()))
