"""Seeds and streams: the stateless int seed, the stateful :class:`Generator`, the default generator.

A fill's numbers are a pure function of (key, stream, distribution, parameters, dtype, element
index). An ``int`` seed uses key = seed, stream 0. A :class:`Generator` keeps its key and hands
out stream 0, 1, 2, ... one per call, whatever the tensor's size.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

from . import _core

if TYPE_CHECKING:
    from typing import TypeAlias

    from numpy.typing import DTypeLike

    from ._typing import TensorLike

__all__ = ["Generator", "manual_seed", "default_generator", "SeedLike"]

_U64 = 1 << 64
_SPAWN_TAG = 0x5350574E  # "SPWN": keeps spawned keys apart from every sampling counter


def _check_seed_int(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, an initlab.Generator or None, got {type(seed).__name__}")
    s = int(seed)
    if not 0 <= s < _U64:
        raise ValueError(f"seed must be in [0, 2**64), got {s}")
    return s


class Generator:
    """A stateful, thread-safe source of independent Philox streams.

    Pass it as ``seed=`` to any random initializer: each call takes the generator's next stream,
    so successive calls give different numbers and the whole sequence is reproducible from the
    generator's seed. It also samples new arrays, as NumPy's ``Generator`` does
    (:meth:`uniform`, :meth:`normal`, :meth:`truncated_normal`, :meth:`orthogonal`).

    Parameters
    ----------
    seed : int or None, default None
        64-bit key, ``0 <= seed < 2**64`` (a NumPy integer is accepted too). ``None`` draws one
        from OS entropy.
    stream : int, keyword-only, default 0
        The first stream the generator hands out, in ``[0, 2**64)`` (e.g. a stream derived from
        a parameter's name, so that one parameter's numbers do not depend on the others).

    Attributes
    ----------
    key : int
        The 64-bit Philox key.
    streams_used : int
        The next stream to be handed out (the number handed out so far, for ``stream=0``).

    Raises
    ------
    TypeError
        ``seed`` is not an int or None (``bool`` and ``float`` included).
    ValueError
        ``seed`` outside ``[0, 2**64)``; ``stream`` not an int in ``[0, 2**64)``.

    See Also
    --------
    manual_seed, default_generator

    Notes
    -----
    Each call that takes randomness from the generator consumes exactly one stream, whatever
    the tensor's size (also for a zero-element tensor), so successive calls differ and the
    whole sequence is reproducible from the seed. The first call of ``Generator(s)`` gives the
    same numbers as ``seed=s``. Streams are handed out under a lock, so the generator may be
    shared by Python threads (the order of the calls then decides which call gets which
    stream).

    Determinism contract: a fill's values are a pure function of (key, stream, distribution,
    parameters, dtype, element index): bit-identical for any thread count, memory layout,
    shard, SIMD path and device.

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> g = initlab.Generator(42)
    >>> a = initlab.normal_(np.empty(3, np.float32), seed=g)
    >>> b = initlab.normal_(np.empty(3, np.float32), seed=g)
    >>> np.array_equal(a, b), g.streams_used
    (False, 2)
    >>> np.array_equal(a, initlab.normal_(np.empty(3, np.float32), seed=42))   # first call = int seed
    True
    """

    def __init__(self, seed: int | np.integer | None = None, *, stream: int = 0) -> None:
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
        """The next stream the generator hands out: the number of streams it has handed out when
        it was created with ``stream=0`` (the default)."""
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
        """Return ``n`` independent child generators (e.g. one per worker or per shard).

        Parameters
        ----------
        n : int
            Number of children, ``>= 0``.

        Returns
        -------
        list of Generator
            New generators, each with its own key and ``streams_used == 0``.

        Raises
        ------
        ValueError
            ``n`` is not a non-negative int.

        Notes
        -----
        Each child's key is derived from this generator's key, the spawn call and the child's
        index through Philox itself, so children of one parent never share a key and repeated
        ``spawn`` calls give new children. Spawning takes no stream from the parent.
        Reproducible: the same parent seed and the same sequence of ``spawn`` calls give the
        same children.

        Examples
        --------
        >>> import initlab
        >>> kids = initlab.Generator(0).spawn(2)
        >>> len(kids), kids[0].key != kids[1].key
        (2, True)
        >>> [k.key for k in kids] == [k.key for k in initlab.Generator(0).spawn(2)]
        True
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

    def __getstate__(self) -> dict:
        # pickle, copy and deepcopy: the key, the next stream and the spawn count (not the lock),
        # so a copy continues exactly where the original stood.
        with self._lock:
            return {"key": self._key, "next": self._next, "spawned": self._spawned}

    def __setstate__(self, state: dict) -> None:
        self._key, self._next, self._spawned = int(state["key"]), int(state["next"]), int(state["spawned"])
        self._lock = threading.Lock()

    # -- array-producing sampling (NumPy Generator shape) -------------------------------------

    def _out(self, size: int | Sequence[int] | None, dtype: DTypeLike, out: TensorLike | None) -> Any:
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

    def uniform(self, size: int | Sequence[int] | None = None, low: float = 0.0, high: float = 1.0,
                dtype: DTypeLike = np.float32, out: TensorLike | None = None) -> Any:
        """Samples from U[low, high): a new array of ``size`` and ``dtype``, or ``out`` filled.

        :func:`~initlab.uniform_` with this generator as the seed: takes one stream.

        Parameters
        ----------
        size : int or tuple of int, optional
            Shape of a new array. ``None`` (default) gives a 0-d array, or ``out``'s shape.
        low, high : float
            Bounds, finite, ``low <= high``.
        dtype : dtype-like, default numpy.float32
            ``float32``, ``float64``, ``float16`` or ``"bfloat16"`` (needs ``ml_dtypes``) for a
            new array; ignored with ``out``.
        out : numpy.ndarray or torch.Tensor, optional
            Fill this destination in place instead (any layout, any device); its shape must
            equal ``size`` when both are given.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The new array, or ``out`` itself.

        Raises
        ------
        TypeError
            An unsupported ``dtype``, an ``out`` that is not a float array or tensor.
        ModuleNotFoundError
            ``dtype="bfloat16"`` without ``ml_dtypes`` installed.
        ValueError
            Negative dimensions, ``size`` not matching ``out.shape``, bad bounds; a read-only
            ``out``.

        Examples
        --------
        >>> import initlab
        >>> x = initlab.Generator(0).uniform((2, 3), low=-1.0, high=1.0)
        >>> x.shape, x.dtype.name, bool(((x >= -1) & (x < 1)).all())
        ((2, 3), 'float32', True)
        """
        from .init import uniform_

        return uniform_(self._out(size, dtype, out), low, high, seed=self)

    def normal(self, size: int | Sequence[int] | None = None, mean: float = 0.0, std: float = 1.0,
               dtype: DTypeLike = np.float32, out: TensorLike | None = None) -> Any:
        """Samples from N(mean, std²): a new array of ``size`` and ``dtype``, or ``out`` filled.

        :func:`~initlab.normal_` with this generator as the seed: takes one stream.

        Parameters
        ----------
        size : int or tuple of int, optional
            Shape of a new array. ``None`` (default) gives a 0-d array, or ``out``'s shape.
        mean, std : float
            Mean (finite) and standard deviation (finite, ``>= 0``).
        dtype : dtype-like, default numpy.float32
            ``float32``, ``float64``, ``float16`` or ``"bfloat16"`` (needs ``ml_dtypes``) for a
            new array; ignored with ``out``.
        out : numpy.ndarray or torch.Tensor, optional
            Fill this destination in place instead (any layout, any device); its shape must
            equal ``size`` when both are given.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The new array, or ``out`` itself.

        Raises
        ------
        TypeError
            An unsupported ``dtype``, an ``out`` that is not a float array or tensor.
        ModuleNotFoundError
            ``dtype="bfloat16"`` without ``ml_dtypes`` installed.
        ValueError
            Negative dimensions, ``size`` not matching ``out.shape``, a negative or non-finite ``std``; a read-only
            ``out``.

        Examples
        --------
        >>> import initlab
        >>> x = initlab.Generator(0).normal(100_000, std=2.0, dtype="float64")
        >>> x.dtype.name, round(float(x.std()), 1)
        ('float64', 2.0)
        """
        from .init import normal_

        return normal_(self._out(size, dtype, out), mean, std, seed=self)

    def truncated_normal(
        self, size: int | Sequence[int] | None = None, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
        b: float = 2.0, dtype: DTypeLike = np.float32, out: TensorLike | None = None,
    ) -> Any:
        """Samples from N(mean, std²) truncated to the absolute interval [a, b] (as torch).

        :func:`~initlab.trunc_normal_` with this generator as the seed: takes one stream.

        Parameters
        ----------
        size : int or tuple of int, optional
            Shape of a new array. ``None`` (default) gives a 0-d array, or ``out``'s shape.
        mean, std : float
            Mean and standard deviation (``> 0``) of the untruncated normal.
        a, b : float
            Absolute bounds, ``a < b`` (may be infinite).
        dtype : dtype-like, default numpy.float32
            ``float32``, ``float64``, ``float16`` or ``"bfloat16"`` (needs ``ml_dtypes``) for a
            new array; ignored with ``out``.
        out : numpy.ndarray or torch.Tensor, optional
            Fill this destination in place instead (any layout, any device); its shape must
            equal ``size`` when both are given.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The new array, or ``out`` itself.

        Raises
        ------
        TypeError
            An unsupported ``dtype``, an ``out`` that is not a float array or tensor.
        ModuleNotFoundError
            ``dtype="bfloat16"`` without ``ml_dtypes`` installed.
        ValueError
            Negative dimensions, ``size`` not matching ``out.shape``, bad parameters or an interval with no value of the dtype; a read-only
            ``out``.

        Examples
        --------
        >>> import initlab
        >>> x = initlab.Generator(0).truncated_normal(1000, a=-1.0, b=1.0)
        >>> bool(x.min() >= -1.0 and x.max() <= 1.0)
        True
        """
        from .init import trunc_normal_

        return trunc_normal_(self._out(size, dtype, out), mean, std, a, b, seed=self)

    def orthogonal(self, size: int | Sequence[int] | None, gain: float = 1.0, dtype: DTypeLike = np.float32,
                   out: TensorLike | None = None) -> Any:
        """A Haar-distributed (semi-)orthogonal array times ``gain``, torch's flattening (rows = dim 0).

        :func:`~initlab.orthogonal_` with this generator as the seed: takes one stream.

        Parameters
        ----------
        size : int or tuple of int, optional
            Shape of a new array. ``None``: ``out``'s shape.
        gain : float, default 1.0
            Multiplier, finite.
        dtype : dtype-like, default numpy.float32
            ``float32``, ``float64``, ``float16`` or ``"bfloat16"`` (needs ``ml_dtypes``) for a
            new array; ignored with ``out``.
        out : numpy.ndarray or torch.Tensor, optional
            Fill this destination in place instead (any layout, any device); its shape must
            equal ``size`` when both are given.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The new array, or ``out`` itself.

        Raises
        ------
        TypeError
            An unsupported ``dtype``, an ``out`` that is not a float array or tensor.
        ModuleNotFoundError
            ``dtype="bfloat16"`` without ``ml_dtypes`` installed.
        ValueError
            Negative dimensions, ``size`` not matching ``out.shape``, fewer than 2 dimensions, a non-finite ``gain``; a read-only
            ``out``.

        Examples
        --------
        >>> import numpy as np
        >>> import initlab
        >>> q = initlab.Generator(0).orthogonal((5, 3), dtype=np.float64)
        >>> np.allclose(q.T @ q, np.eye(3))
        True
        """
        from .orthogonal import orthogonal_

        return orthogonal_(self._out(size, dtype, out), gain, seed=self)


def _resolve_dtype(dtype: DTypeLike) -> Any:
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


SeedLike: TypeAlias = Union[int, np.integer, Generator, None]
"""What every ``seed`` parameter takes: an ``int`` in ``[0, 2**64)`` (stateless), a
:class:`Generator` (its next stream) or ``None`` (the default generator)."""


def default_generator() -> Generator:
    """Return the module-wide generator that ``seed=None`` uses.

    It is seeded from OS entropy at import, so ``seed=None`` calls differ from run to run until
    :func:`manual_seed` reseeds it.

    Returns
    -------
    Generator
        The current default generator (a new object after each :func:`manual_seed`).

    See Also
    --------
    manual_seed, Generator

    Examples
    --------
    >>> import initlab
    >>> g = initlab.manual_seed(0)
    >>> initlab.default_generator() is g
    True
    """
    with _default_lock:
        return _default


def manual_seed(seed: int) -> Generator:
    """Reseed the module-wide default generator: calls with ``seed=None`` become reproducible.

    The default generator is replaced by ``Generator(seed)``, so the ``seed=None`` calls that
    follow take streams 0, 1, 2, ... of key ``seed``.

    Parameters
    ----------
    seed : int
        64-bit key, ``0 <= seed < 2**64``.

    Returns
    -------
    Generator
        The new default generator.

    Raises
    ------
    TypeError
        ``seed`` is not an int.
    ValueError
        ``seed`` outside ``[0, 2**64)``.

    See Also
    --------
    default_generator, Generator

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> _ = initlab.manual_seed(123)
    >>> a = initlab.uniform_(np.empty(3, np.float32))
    >>> _ = initlab.manual_seed(123)
    >>> np.array_equal(a, initlab.uniform_(np.empty(3, np.float32)))
    True
    """
    global _default
    g = Generator(_check_seed_int(seed))
    with _default_lock:
        _default = g
    return g


def resolve_seed(seed: SeedLike) -> tuple[int, int]:
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


class NamedSeeds:
    """``name -> Generator(key, stream=name_stream(name))``, the seeds :func:`named_seeds` returns.

    ``key`` (already resolved and validated) with ``name_stream(name)`` is the same Philox (key,
    stream) without building a :class:`Generator`: what a whole-model call's write loop needs
    per parameter."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key

    def __call__(self, name: str) -> Generator:
        return Generator(self.key, stream=name_stream(name))


def named_seeds(seed: SeedLike) -> NamedSeeds:
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
    return NamedSeeds(key)
