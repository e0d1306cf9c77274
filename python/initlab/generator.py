"""Seeds and streams: the stateless int seed, the stateful :class:`Generator`, the default generator.

A fill's numbers are a pure function of (key, stream, distribution, parameters, dtype, element
index). An ``int`` seed uses key = seed, stream 0. A :class:`Generator` keeps its key and hands
out stream 0, 1, 2, ... one per call, whatever the tensor's size.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any, Callable

import numpy as np

from . import _core

__all__ = ["Generator", "manual_seed", "default_generator"]

_U64 = 1 << 64
_SPAWN_TAG = 0x5350574E  # "SPWN": keeps spawned keys apart from every sampling counter


def _check_seed_int(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, an initlab.Generator or None, got {type(seed).__name__}")
    s = int(seed)
    if not 0 <= s < _U64:
        raise ValueError(f"seed must be in [0, 2**64), got {s}")
    return s


class Generator:
    """A stateful, thread-safe source of independent Philox streams.

    Parameters
    ----------
    seed : int or None
        64-bit key (``0 <= seed < 2**64``). ``None`` draws one from OS entropy.
    stream : int, keyword-only, default 0
        The first stream the generator hands out (e.g. a stream derived from a parameter's
        name, so that one parameter's numbers do not depend on the others).

    Notes
    -----
    Each call that takes randomness from the generator consumes exactly one stream, so
    successive calls differ and the whole sequence is reproducible from the seed. The first
    call of ``Generator(s)`` gives the same numbers as ``seed=s``. Streams are handed out under
    a lock, so the generator may be shared by Python threads (which call order then decides).
    """

    def __init__(self, seed: int | None = None, *, stream: int = 0) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little")
        self._key = _check_seed_int(seed)
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or not 0 <= int(stream) < _U64:
            raise ValueError(f"stream must be an int in [0, 2**64), got {stream!r}")
        self._next = int(stream)
        self._spawned = 0
        self._lock = threading.Lock()

    @property
    def key(self) -> int:
        """The 64-bit Philox key."""
        return self._key

    @property
    def streams_used(self) -> int:
        """How many streams the generator has handed out."""
        with self._lock:
            return self._next

    def _take_stream(self) -> int:
        with self._lock:
            s = self._next
            self._next += 1
        if s >= _U64:
            raise ValueError("this Generator has used all 2**64 streams; create a new one (or spawn children)")
        return s

    def spawn(self, n: int) -> list[Generator]:
        """Return ``n`` independent child generators.

        Each child's key is derived from this generator's key, the spawn call and the child's
        index through Philox itself, so children of one parent never share a key and
        repeated ``spawn`` calls give new children.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 0:
            raise ValueError(f"spawn expects a non-negative int, got {n!r}")
        with self._lock:
            call = self._spawned
            self._spawned += 1
        k = [self._key & 0xFFFFFFFF, self._key >> 32]
        kids = []
        for i in range(int(n)):
            w = _core.philox4x32_10([i & 0xFFFFFFFF, (i >> 32) & 0xFFFFFFFF, _SPAWN_TAG, call & 0xFFFFFFFF], k)
            kids.append(Generator(int(w[0]) | (int(w[1]) << 32)))
        return kids

    def __repr__(self) -> str:
        return f"initlab.Generator(key={self._key:#018x}, streams_used={self.streams_used})"

    # -- array-producing sampling (NumPy Generator shape) -------------------------------------

    def _out(self, size: Any, dtype: Any, out: Any) -> Any:
        from ._buffers import as_target

        shape = None if size is None else (tuple(int(s) for s in size) if np.iterable(size) else (int(size),))
        if out is not None:
            t = as_target(out)
            if shape is not None and shape != t.shape:
                raise ValueError(f"size {size} does not match out.shape {t.shape}")
            return out
        if shape is not None and any(s < 0 for s in shape):
            raise ValueError(f"negative dimensions are not allowed, got size={size}")
        return np.empty(() if shape is None else shape, dtype=_resolve_dtype(dtype))

    def uniform(self, size: Any = None, low: float = 0.0, high: float = 1.0, dtype: Any = np.float32, out: Any = None) -> Any:
        """Samples from U[low, high) of the given size and dtype (or into ``out``). Consumes one stream."""
        from .init import uniform_

        return uniform_(self._out(size, dtype, out), low, high, seed=self)

    def normal(self, size: Any = None, mean: float = 0.0, std: float = 1.0, dtype: Any = np.float32, out: Any = None) -> Any:
        """Samples from N(mean, std**2). Consumes one stream."""
        from .init import normal_

        return normal_(self._out(size, dtype, out), mean, std, seed=self)

    def truncated_normal(
        self, size: Any = None, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
        dtype: Any = np.float32, out: Any = None,
    ) -> Any:
        """Samples from N(mean, std**2) truncated to the absolute interval [a, b] (as torch). One stream."""
        from .init import trunc_normal_

        return trunc_normal_(self._out(size, dtype, out), mean, std, a, b, seed=self)

    def orthogonal(self, size: Any, gain: float = 1.0, dtype: Any = np.float32, out: Any = None) -> Any:
        """A (semi-)orthogonal array with torch's flattening (rows = dim 0), times ``gain``. One stream."""
        from .orthogonal import orthogonal_

        return orthogonal_(self._out(size, dtype, out), gain, seed=self)


def _resolve_dtype(dtype: Any) -> Any:
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError as e:
            raise ModuleNotFoundError(
                "dtype='bfloat16' for NumPy output needs the optional package ml_dtypes: "
                "pip install 'initlab[bfloat16]' (or pip install ml_dtypes), or pass a torch.bfloat16 tensor as out=",
                name="ml_dtypes",
            ) from e

        return ml_dtypes.bfloat16
    dt = np.dtype(dtype)
    if dt.name not in ("float32", "float64", "float16", "bfloat16"):
        raise TypeError(f"unsupported dtype {dt}; accepted: float32, float64, float16 or bfloat16")
    return dt


_default_lock = threading.Lock()
_default: Generator = Generator()


def default_generator() -> Generator:
    """The module-wide generator used when ``seed=None`` (seeded from OS entropy at import)."""
    with _default_lock:
        return _default


def manual_seed(seed: int) -> Generator:
    """Reseed the module-wide default generator; returns it. Calls with ``seed=None`` become reproducible."""
    global _default
    g = Generator(_check_seed_int(seed))
    with _default_lock:
        _default = g
    return g


def resolve_seed(seed: Any) -> tuple[int, int]:
    """Map a ``seed`` argument to Philox (key, stream). Takes one stream from a Generator."""
    if seed is None:
        seed = default_generator()
    if isinstance(seed, Generator):
        return seed.key, seed._take_stream()
    return _check_seed_int(seed), 0


# ---- one stream per name (whole-model initialization) ------------------------------------------

_DERIVE_TAG = 0x4C535556  # keeps derived keys apart from sampling counters (value frozen: it fixes the numbers)


def name_stream(name: str) -> int:
    """The Philox stream of a qualified name: blake2b (8 bytes, little endian), top bit cleared.

    The top bit is left free because initlab uses it for auxiliary streams (e.g. sparse masks).
    """
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little") & ((1 << 63) - 1)


def named_seeds(seed: Any) -> Callable[[str], Any]:
    """Resolve ``seed`` once and return ``name -> seed`` giving every name its own stream.

    Rule (documented contract): with an ``int`` seed ``s`` a name's numbers are those of key
    ``s`` and stream :func:`name_stream` ``(name)``; with a :class:`~initlab.Generator` (or
    ``None``, the default generator) the call takes **one** stream ``t`` from it and the key
    becomes ``philox(key, counter=(t, tag))``, names then map to streams of that key as above.
    So adding or removing a parameter never changes another parameter's numbers, and successive
    calls with one Generator differ.
    """
    from . import _core

    if isinstance(seed, (Generator, type(None))):
        key, stream = resolve_seed(seed)
        w = _core.philox4x32_10([stream & 0xFFFFFFFF, stream >> 32, _DERIVE_TAG, 0], [key & 0xFFFFFFFF, key >> 32])
        key = int(w[0]) | (int(w[1]) << 32)
    else:
        key, _ = resolve_seed(seed)  # validates the int

    def at(name: str) -> Any:
        return Generator(key, stream=name_stream(name))

    return at
