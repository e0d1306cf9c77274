"""The ``"triton"`` route: fill a torch tensor on its device with the Triton kernels.

The kernels (``_tkernels``) are compiled with ``enable_fp_fusion=False`` (no contraction of a
multiply and an add into an FMA, which would round once instead of twice) and use IEEE division
and square root, so they compute exactly what the C++ core computes. With ``TRITON_INTERPRET=1``
Triton's interpreter runs them on CPU tensors instead: that is how CI checks them bit for bit.
"""

from __future__ import annotations

import os
from typing import Any

from ._layout import merge_dims, row_groups

# Programs' tile sizes (in blocks, super-blocks or elements) per kernel; every value is a power
# of two. They change the speed, never the values.
_TILES = {"uniform_f32": 16, "uniform_16": 8, "uniform_f64": 512, "normal_f32": 256, "normal_f64": 512,
          "normal_16": 8, "trunc_inv": 256, "trunc_exact": 256}
_ELEMS = {"uniform_f32": 80, "uniform_16": 128, "uniform_f64": 2, "normal_f32": 4, "normal_f64": 2,
          "normal_16": 128, "trunc_inv": 4, "trunc_exact": 1}
_ALIGN = _ELEMS  # a tile starts on a global multiple of its super-block

PARAM_ORDER = ("shift", "scale", "lo", "hi", "alpha", "beta", "pa", "qb", "m", "a", "b", "c", "lb", "lam")
_UNIFORM, _NORMAL, _TRUNC = 0, 1, 2
F32, F64, F16, BF16 = 0, 1, 2, 3


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def kernel_for(dist: int, code: int, prep: dict) -> tuple[str, dict]:
    """The kernel name and its compile-time arguments for a sampler and output dtype."""
    if dist == _UNIFORM:
        if code == F32:
            return "uniform_f32", {"S": _TILES["uniform_f32"]}
        if code == F64:
            return "uniform_f64", {"B": _TILES["uniform_f64"]}
        return "uniform_16", {"S": _TILES["uniform_16"], "OUT": code}
    if dist == _NORMAL:
        if code == F32:
            return "normal_f32", {"B": _TILES["normal_f32"]}
        if code == F64:
            return "normal_f64", {"B": _TILES["normal_f64"]}
        return "normal_16", {"S": _TILES["normal_16"], "OUT": code}
    if prep["exact"]:
        return "trunc_exact", {"T": _TILES["trunc_exact"], "OUT": code, "MODE": int(prep["mode"]),
                               "FLIP": bool(prep["flip"])}
    return "trunc_inv", {"B": _TILES["trunc_inv"], "OUT": code}


def _kernels() -> dict[str, Any]:
    import triton.language as tl

    # Triton decides when it is imported whether jitted functions (its own tl.zeros, tl.sum ...
    # and these kernels) are interpreted; a mix cannot run.
    if interpreting() != (type(tl.zeros).__name__ == "InterpretedFunction"):
        raise RuntimeError("TRITON_INTERPRET changed after Triton was imported: set it before the first "
                           "`import triton` (e.g. in the environment before Python starts)")
    from . import _tkernels as k

    return {"uniform_f32": k.uniform_f32_kernel, "uniform_16": k.uniform_16_kernel, "uniform_f64": k.uniform_f64_kernel,
            "normal_f32": k.normal_f32_kernel, "normal_16": k.normal_16_kernel, "normal_f64": k.normal_f64_kernel,
            "trunc_inv": k.trunc_inv_kernel, "trunc_exact": k.trunc_exact_kernel}


def _as_i64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def fill(tensor: Any, code: int, dist: int, prep: dict, key: int, stream: int, gstrides: list[int],
         gbase: int) -> None:
    """Fill ``tensor`` (any device Triton runs on; CPU under the interpreter) in place.

    ``prep`` is ``_core.prepare_sampler``'s result for these parameters and dtype (validated);
    ``gstrides``/``gbase`` place the tensor in its global tensor as for the core.
    """
    import torch

    name, meta = kernel_for(dist, code, prep)
    kern = _kernels()[name]
    dev = tensor.device
    shape, strides, gst = merge_dims(list(tensor.shape), list(tensor.stride()), list(gstrides))
    n_last, stride_last = int(shape[-1]), int(strides[-1])
    if n_last == 0 or 0 in shape:
        return
    # The kernel addresses the destination from one flat view over the memory it spans.
    span = 1 + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride()))
    dst = tensor.view(torch.int16) if code in (F16, BF16) else tensor
    flat = dst.as_strided((span,), (1,), dst.storage_offset())
    prm = torch.tensor([float(prep[k]) for k in PARAM_ORDER], dtype=torch.float64, device=dev)
    keys = torch.tensor([key & 0xFFFFFFFF, key >> 32, stream & 0xFFFFFFFF, stream >> 32], dtype=torch.int64,
                        device=dev)
    tile = tile_elements(name)
    align = _ALIGN[name]
    # Tiles per row: enough for a row of n_last elements starting anywhere within an aligned span.
    tiles = -(-(n_last + align - 1) // tile)
    import contextlib

    # Triton launches on the current CUDA device: make it the tensor's (a model on cuda:1, say).
    on_dev = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    with on_dev:
        for g_rows, m_rows in row_groups(shape, strides, gst, gbase):
            rg = torch.from_numpy(g_rows).to(dev)
            rm = torch.from_numpy(m_rows).to(dev)
            grid = (len(g_rows) * tiles,)
            kern[grid](flat, prm, keys, rg, rm, n_last, stride_last, tiles, **meta)


def tile_elements(name: str) -> int:
    """Elements one program covers (for tests and the benchmark)."""
    return _TILES[name] * _ELEMS[name]

