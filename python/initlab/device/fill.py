"""Random and constant fills of torch tensors off the core route (``"triton"`` or ``"staged"``).

The parameters are validated and derived by the core itself (``_core.prepare_sampler``: the same
checks, messages and numbers as a CPU fill), so every route agrees on what a call means before
any route writes anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from . import staged, triton_route

_UNIFORM, _NORMAL, _TRUNC, _CONSTANT = 0, 1, 2, 3
_F32, _F64, _F16, _BF16 = 0, 1, 2, 3
_NP = {_F32: np.float32, _F64: np.float64, _F16: np.float16, _BF16: np.uint16}


def host_array(t: Any, code: int) -> np.ndarray:
    """Zero-copy NumPy view of a CPU tensor (bfloat16 as uint16 bits)."""
    import torch

    d = t.detach()
    return d.view(torch.int16).numpy().view(np.uint16) if code == _BF16 else d.numpy()


def _constant(tensor: Any, code: int, value: float) -> None:
    import torch

    # The core's own rounding of the value to the dtype (float32 first for 16-bit outputs).
    one = np.empty(1, _NP[code])
    _core.fill(one, code, _CONSTANT, float(value), 0.0, 0.0, 0.0, 0, 0, [1], 0, 1, 0)
    with torch.no_grad():
        if code in (_F16, _BF16):
            tensor.detach().view(torch.int16).fill_(int(one.view(np.int16)[0]))
        else:
            tensor.detach().fill_(float(one[0]))


def check_exact_range(prep: dict, dist: int, shape: tuple[int, ...], gstrides: list[int], gbase: int) -> None:
    """The core's limit for the rejection route: global indices below 2^55 (distributions.hpp)."""
    if dist != _TRUNC or not prep["exact"] or prep["has_constant"] or 0 in shape:
        return
    last = gbase + sum((n - 1) * g for n, g in zip(shape, gstrides))
    if last >= 1 << 55:
        raise ValueError(f"trunc_normal_: global element indices must stay below 2^55 for this interval/dtype "
                         f"(got {last})")


def fill(tensor: Any, code: int, route: str, dist: int, p0: float, p1: float, lo: float, hi: float, key: int,
         stream: int, gstrides: list[int], gbase: int, n_threads: int, isa: int) -> None:
    """Fill a torch tensor by ``route`` with exactly the values the core gives a CPU tensor."""
    prep = _core.prepare_sampler(code, dist, p0, p1, lo, hi)  # validates; raises before any write
    check_exact_range(prep, dist, tuple(tensor.shape), gstrides, gbase)
    if tensor.numel() == 0:
        return
    if dist == _CONSTANT or prep["has_constant"]:
        _constant(tensor, code, prep["constant"])
        return
    if route == "triton":
        if tensor.device.type == "cpu" and not triton_route.interpreting():
            raise ValueError("INITLAB_DEVICE_BACKEND=triton on a CPU tensor runs the Triton kernels in Triton's "
                             "interpreter: set TRITON_INTERPRET=1 before Python starts (or unset the variable)")
        triton_route.fill(tensor, code, dist, prep, key, stream, gstrides, gbase)
        return

    def core_fill(host: Any, gs: list[int], gb: int) -> None:
        _core.fill(host_array(host, code), code, dist, p0, p1, lo, hi, key, stream, gs, gb, n_threads, isa)

    staged.fill(tensor, gstrides, gbase, core_fill)
