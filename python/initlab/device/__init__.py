"""Torch tensors on any device: which route fills them, and the routes themselves.

Routes (DESIGN.md, "Accelerators"):

* ``"core"``   — CPU tensors (and NumPy arrays): the C++ core writes their memory in place.
* ``"triton"`` — CUDA tensors when Triton imports: device kernels that implement the core's
  element -> counter mapping and its arithmetic exactly (``_tkernels``, ``_tmath``).
* ``"staged"`` — any other device (MPS, XPU, ROCm, CUDA without Triton, future backends): the
  core fills a pinned host buffer chunk by chunk, each chunk copied to the device while the next
  is sampled (``staged``).

Every route writes the same bits. ``INITLAB_DEVICE_BACKEND=triton`` or ``=staged`` forces a
route even for CPU tensors (with ``TRITON_INTERPRET=1`` the Triton kernels then run in Triton's
interpreter on the CPU): that is how the tests prove the device routes without a GPU.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["device_backend", "triton_available", "ROUTES"]

ROUTES = ("core", "triton", "staged")
_ENV = "INITLAB_DEVICE_BACKEND"
_FORCED = ("triton", "staged")
_triton_ok: bool | None = None


def triton_available() -> bool:
    """Whether Triton imports in this environment (checked once)."""
    global _triton_ok
    if _triton_ok is None:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
        except Exception:  # noqa: BLE001 - any import failure means "no Triton route"
            _triton_ok = False
        else:
            _triton_ok = True
    return _triton_ok


def forced_route() -> str | None:
    """The route ``INITLAB_DEVICE_BACKEND`` forces, or None (unset, empty or ``auto``).

    Raises
    ------
    ValueError
        For any other value, naming it and the accepted ones.
    """
    raw = os.environ.get(_ENV)
    if raw is None:
        return None
    v = raw.strip().lower()
    if v in ("", "auto"):
        return None
    if v not in _FORCED:
        raise ValueError(f"{_ENV}={raw!r} is not a route; accepted: 'triton', 'staged', 'auto' or unset")
    return v


def device_backend(tensor: Any) -> str:
    """Name the route initlab takes to fill ``tensor``: ``"core"``, ``"triton"`` or ``"staged"``.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        A destination (any device).

    Returns
    -------
    str
        ``"core"`` for NumPy arrays and CPU tensors, ``"triton"`` for CUDA tensors when Triton
        imports (NVIDIA; ROCm builds of torch take the staged route), ``"staged"`` for every
        other device. ``INITLAB_DEVICE_BACKEND=triton|staged`` forces that route for every
        torch tensor, CPU ones included (NumPy arrays always take the core).

    Raises
    ------
    ValueError
        For a tensor on the meta device (it has no memory to fill) or an unknown
        ``INITLAB_DEVICE_BACKEND`` value.

    Notes
    -----
    Determinism: every route gives the same bits as the core for the same arguments (the
    Triton kernels implement the core's mapping and arithmetic; the staged route runs the core).

    Examples
    --------
    >>> import numpy as np, initlab
    >>> initlab.device_backend(np.empty(3, np.float32))
    'core'
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(tensor, torch.Tensor):
        return "core"
    dev = tensor.device
    if dev.type == "cpu" and _ENV not in os.environ:
        return "core"  # the common case, first
    if dev.type == "meta":
        raise ValueError("a tensor on the meta device has no memory to fill: allocate it first "
                         "(initlab.torch.materialize(model, ...) or model.to_empty(device=...))")
    forced = forced_route()
    if forced is not None:
        return forced
    if dev.type == "cpu":
        return "core"
    if dev.type == "cuda" and getattr(torch.version, "hip", None) is None and triton_available():
        return "triton"
    return "staged"
