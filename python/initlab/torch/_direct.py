"""The write loop's shortcut: a planned random fill written by the core directly.

``initlab.normal_`` / ``uniform_`` / ``trunc_normal_`` validate, per call, what a whole-model
call has already validated once for the whole plan: the numbers (the plan runs each distinct
fill on a scratch tensor of the parameter's dtype through the public function, see
``initialize._check_numbers``), the seed (resolved once by ``named_seeds``) and the shard
description (none here). What they still check per tensor — the destination itself: layout,
overlap, inference tensors, dtype — is checked here too (``core_torch_target``, ``as_target``'s
checks for a CPU tensor; the route, the core's unless ``INITLAB_DEVICE_BACKEND`` forces another,
is decided once per call). The core call and the version-counter bump are the public function's
own, with the same arguments, so the bits are the same. Small constants are written as ``execute`` writes them (torch's ``fill_``), without
making the parameter's seed; everything else (device routes, shards, post-fill edits, large
constants, orthogonal, callables) goes through :func:`initlab.torch.rules.execute`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .. import _core
from .._buffers import c_strides, core_torch_target, mark_written
from .._simd import _isa_code
from .._threads import get_num_threads
from ..device import _ENV
from ..generator import NamedSeeds, name_stream
from .rules import Fill, _small_constant

__all__ = ["DirectWriter"]

_PLAIN = (torch.Tensor, nn.Parameter)  # tensor subclasses (DTensor, ...) take execute
_ZEROS = [0.0, 0.0, 0.0, 0.0]
# the core's distribution codes (init._UNIFORM, _NORMAL, _TRUNC) and the Fill params they read
_DIST = {"uniform": (0, ("a", "b")), "normal": (1, ("mean", "std")), "trunc_normal": (2, ("mean", "std", "a", "b"))}


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
        if _small_constant(fill, t):  # as execute writes it (torch's fill_, the core's bits), no seed needed
            t.detach().fill_(fill.params["value"])
            return True
        spec = _DIST.get(fill.init)
        if spec is None or fill.post or self.key is None or type(t) not in _PLAIN or t.device.type != "cpu":
            return False
        p = fill.params
        args = [p[k] for k in spec[1]]  # the core's p0, p1, lo, hi (trailing zeros added below)
        for v in args:
            if type(v) is not float:  # what the public function would convert first: its route
                return False
        target = core_torch_target(t)  # the destination's own checks, as the public fill makes them
        if target.size == 0:
            return True
        shape = target.array.shape
        strides = self._strides.get(shape)
        if strides is None:
            strides = self._strides[shape] = c_strides(shape)
        args += _ZEROS[len(args):]
        try:
            _core.fill(target.array, target.code, spec[0], args[0], args[1], args[2], args[3], self.key,
                       name_stream(name), strides, 0, self.threads, self.isa)
        finally:
            mark_written(target)  # also after an interrupt: part of the tensor has changed
        return True
