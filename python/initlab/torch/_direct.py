"""The write loop's shortcut: a planned random fill written by the core directly.

``initlab.normal_`` / ``uniform_`` / ``trunc_normal_`` validate, per call, what a whole-model
call has already validated once for the whole plan: the numbers (the plan runs each distinct
fill on a scratch tensor of the parameter's dtype through the public function, see
``initialize._check_numbers``), the seed (resolved once by ``named_seeds``) and the shard
description (none here). What they still check per tensor — the destination itself: layout,
overlap, inference tensors, dtype — is checked here too (``core_torch_target``, ``as_target``'s
checks for a CPU tensor; the route, the core's unless ``INITLAB_DEVICE_BACKEND`` forces another,
is decided once per call). A C-contiguous float32/float64/float16 tensor with no lazy bit that
is not an inference tensor passes all of them, and is recognized at a glance (``_plain_view``);
anything else goes through ``core_torch_target`` itself (its checks, its messages). The core
call and the version-counter bump are the public function's own, with the same arguments, so
the bits are the same. Small constants are written as ``execute`` writes them (torch's
``fill_``), without making the parameter's seed; everything else (device routes, shards,
post-fill edits, large constants, orthogonal, callables) goes through
:func:`initlab.torch.rules.execute`.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import _core
from .._buffers import F16, F32, F64, c_strides, core_torch_target, mark_written
from .._simd import _isa_code
from .._threads import get_num_threads
from ..device import _ENV
from ..generator import NamedSeeds, name_stream
from .rules import Fill, _small_constant

__all__ = ["DirectWriter"]

_PLAIN = (torch.Tensor, nn.Parameter)  # tensor subclasses (DTensor, ...) take execute
# the core's distribution codes (init._UNIFORM, _NORMAL, _TRUNC)
_UNIFORM, _NORMAL, _TRUNC = 0, 1, 2
# the core's dtype codes of the dtypes whose NumPy view is the tensor itself (bfloat16, viewed
# through int16, takes core_torch_target)
_PLAIN_CODES = {torch.float32: F32, torch.float64: F64, torch.float16: F16}
# what mark_written calls for a CPU tensor that is not an inference tensor (nothing where torch lacks it)
_increment_version: Callable[[torch.Tensor], None] = \
    getattr(torch.autograd.graph, "increment_version", None) or (lambda t: None)


def _core_args(fill: Fill) -> tuple[int, float, float, float, float] | None:
    """The core's (distribution, p0, p1, lo, hi) of a plain random fill whose numbers are all
    Python floats (anything else — an int, a NumPy or torch number — takes the public
    function's conversions, by ``execute``), or None."""
    init, p = fill.init, fill.params
    if init == "normal":
        a = (_NORMAL, p["mean"], p["std"], 0.0, 0.0)
        n = 3
    elif init == "uniform":
        a = (_UNIFORM, p["a"], p["b"], 0.0, 0.0)
        n = 3
    elif init == "trunc_normal":
        a = (_TRUNC, p["mean"], p["std"], p["a"], p["b"])
        n = 5
    else:
        return None
    for k in range(1, n):
        if type(a[k]) is not float:
            return None
    return a


def _plain_view(t: torch.Tensor) -> tuple[np.ndarray, int] | None:
    """The NumPy view and dtype code of a CPU tensor (of type Tensor or Parameter) that passes
    every check of :func:`core_torch_target` at a glance: no lazy conjugate/negative bit, not an
    inference tensor, dense strided, float32/float64/float16, C-contiguous. None for anything
    else: :func:`core_torch_target` then decides (its own checks, its own messages)."""
    if t.is_conj() or t.is_neg() or t.is_inference() or t.is_nested or t.layout is not torch.strided:
        return None
    code = _PLAIN_CODES.get(t.dtype)
    if code is None:
        return None
    arr = t.detach().numpy()
    return (arr, code) if arr.flags.c_contiguous else None


class DirectWriter:
    """Writes plain random fills of CPU tensors for one whole-model call (the thread count and
    SIMD path read once, as a public fill reads them at its start; CPU tensors take the core's
    route unless ``INITLAB_DEVICE_BACKEND`` is set, and then every fill goes by ``execute``)."""

    def __init__(self, seeds: Any) -> None:
        # the key named_seeds resolved (None: no shortcut, every fill by execute)
        self.key = seeds.key if isinstance(seeds, NamedSeeds) and _ENV not in os.environ else None
        self.threads = get_num_threads()
        self.isa = _isa_code()
        self._strides: dict[tuple[int, ...], list[int]] = {}  # C strides by shape (read, never changed)

    def write(self, fill: Fill, t: torch.Tensor, name: str) -> bool:
        """Write ``fill`` into ``t`` (the parameter named ``name``) and return True, or return
        False without touching anything when the fill is not one this shortcut takes."""
        if fill.init == "constant":
            if _small_constant(fill, t):  # as execute writes it (torch's fill_, the core's bits), no seed needed
                t.detach().fill_(fill.params["value"])
                return True
            return False
        if fill.post or self.key is None or type(t) not in _PLAIN or not t.is_cpu:
            return False
        args = _core_args(fill)
        if args is None:
            return False
        view = _plain_view(t)
        if view is None:  # the destination's own checks, as the public fill makes them
            target = core_torch_target(t)
            arr, code = target.array, target.code
            bump: Callable[[], None] = lambda: mark_written(target)  # noqa: E731
        else:
            arr, code = view
            bump = lambda: _increment_version(t)  # noqa: E731
        if arr.size == 0:
            return True
        try:
            _core.fill(arr, code, args[0], args[1], args[2], args[3], args[4], self.key, name_stream(name),
                       self._strides_of(arr.shape), 0, self.threads, self.isa)
        finally:
            bump()  # also after an interrupt: part of the tensor has changed
        return True

    def _strides_of(self, shape: tuple[int, ...]) -> list[int]:
        strides = self._strides.get(shape)
        if strides is None:
            strides = self._strides[shape] = c_strides(shape)
        return strides
