"""Run-time choice of the SIMD path used by the sampling kernels.

Every path writes the same bits (the kernels use only correctly rounded IEEE operations, no
FMA contraction); forcing one is for testing and benchmarking. The environment variable
``INITLAB_SIMD`` (``scalar``, ``sse2``, ``avx2``, ``avx512``) sets the path at import.
"""

from __future__ import annotations

import os
import threading

from . import _core

__all__ = ["simd_path", "set_simd_path", "available_simd_paths"]

_NAMES = ("scalar", "sse2", "avx2", "avx512")
_lock = threading.Lock()
_current: int = int(_core.best_isa())


def available_simd_paths() -> list[str]:
    """Names of the SIMD paths this build can run on this CPU, slowest first."""
    return [n for i, n in enumerate(_NAMES) if _core.isa_supported(i)]


def simd_path() -> str:
    """The SIMD path in use (by default the fastest the CPU supports)."""
    return _NAMES[_current]


def set_simd_path(name: str) -> None:
    """Force a SIMD path by name ("scalar", "sse2", "avx2", "avx512", or "auto").

    Raises
    ------
    ValueError
        If the name is unknown or the CPU cannot run that path.
    """
    global _current
    if name == "auto":
        code = int(_core.best_isa())
    elif name in _NAMES:
        code = _NAMES.index(name)
        if not _core.isa_supported(code):
            raise ValueError(f"SIMD path {name!r} is not supported on this CPU; available: {available_simd_paths()}")
    else:
        raise ValueError(f"unknown SIMD path {name!r}; accepted: {list(_NAMES) + ['auto']}")
    with _lock:
        _current = code


def _isa_code() -> int:
    return _current


_env = os.environ.get("INITLAB_SIMD")
if _env:
    set_simd_path(_env.strip().lower())
