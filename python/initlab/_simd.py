"""Run-time choice of the SIMD path used by the sampling kernels.

Every path writes the same bits (the kernels use only correctly rounded IEEE operations, no
FMA contraction); forcing one is for testing and benchmarking. The environment variable
``INITLAB_SIMD`` (``scalar``, ``sse2``, ``avx2``, ``avx512``, ``auto``) sets the path at import; an
unknown name or a path this CPU cannot run is ignored with a ``RuntimeWarning`` (the default stays).
"""

from __future__ import annotations

import os
import threading

from . import _core

__all__ = ["simd_path", "set_simd_path", "available_simd_paths"]

_NAMES = ("scalar", "sse2", "avx2", "avx512")
_lock = threading.Lock()


def _probe(isa: int) -> list[bytes]:
    # A few small fills through every kernel, at an offset that is not a multiple of a block.
    import numpy as np

    out = []
    for code, dt in ((0, np.float32), (1, np.float64), (2, np.float16), (3, np.uint16)):  # 3: bfloat16 bits
        for dist, p in ((0, (-1.0, 3.0, 0.0, 0.0)), (1, (0.5, 2.0, 0.0, 0.0)), (2, (0.0, 1.0, -2.0, 2.0)),
                        (2, (0.0, 1.0, 5.0, 6.0))):
            a = np.empty(259, dt)
            _core.fill(a, code, dist, *p, 12345, 7, [1], 2**33 + 3, 1, isa)
            out.append(a.tobytes())
    return out


def _self_test() -> tuple[set[int], list[str]]:
    """Every SIMD path must reproduce the scalar reference bit for bit; one that does not (a
    compiler or CPU problem) is disabled with a warning instead of giving different numbers."""
    ok, bad = {0}, []
    ref = _probe(0)
    for i in range(1, len(_NAMES)):
        if _core.isa_supported(i):
            if _probe(i) == ref:
                ok.add(i)
            else:
                bad.append(_NAMES[i])
    return ok, bad


_usable, _broken = _self_test()
if _broken:
    import warnings

    warnings.warn(f"initlab: SIMD path(s) {_broken} disagree with the scalar reference on this machine and "
                  "are disabled; results stay reproducible but slower", RuntimeWarning, stacklevel=2)
_current: int = max(_usable)


def available_simd_paths() -> list[str]:
    """Names of the SIMD paths this build can run on this CPU, slowest first.

    Each path is checked at import against the scalar reference on a probe fill; a path that
    does not reproduce it bit for bit is left out (and a ``RuntimeWarning`` says so).
    """
    return [n for i, n in enumerate(_NAMES) if i in _usable]


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
        code = max(_usable)
    elif name in _NAMES:
        code = _NAMES.index(name)
        if code not in _usable:
            raise ValueError(f"SIMD path {name!r} is not supported on this CPU; available: {available_simd_paths()}")
    else:
        raise ValueError(f"unknown SIMD path {name!r}; accepted: {list(_NAMES) + ['auto']}")
    with _lock:
        _current = code


def _isa_code() -> int:
    return _current


_env = os.environ.get("INITLAB_SIMD")
if _env and _env.strip():
    try:
        set_simd_path(_env.strip().lower())
    except ValueError as _e:  # a bad setting must not make `import initlab` fail: warn, keep the default
        import warnings

        warnings.warn(f"initlab: ignoring INITLAB_SIMD={_env!r}: {_e}; using {simd_path()!r}", RuntimeWarning,
                      stacklevel=2)
