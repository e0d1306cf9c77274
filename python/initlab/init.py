"""In-place initializers: torch.nn.init's names, positional parameters and defaults, plus
Keras/JAX variance scaling, LeCun, sparse and ZerO.

Every random initializer takes keyword-only ``seed`` (int: stateless; Generator: one stream per
call; None: the default generator) and ``global_shape``/``offset`` (the array is the block of a
larger tensor starting at ``offset``; fans come from the global shape and the values equal that
block of the global fill). Determinism contract: the value at an element is a pure function of
(seed, stream, distribution, parameters, dtype, logical index in the global tensor), so it is
bit-identical for any thread count, memory layout, sharding, SIMD path and device (a torch
tensor on any device takes the route :func:`initlab.device_backend` names, with the same bits).

All arguments are validated before anything is written; on error the destination is unchanged.
Every random initializer validates its seed and parameters and takes one stream from a
:class:`Generator` even for a zero-element tensor (which it leaves as it is).

Interrupts: a long fill checks for signals between its tasks, so Ctrl-C raises
``KeyboardInterrupt`` within about 20 ms; the destination is then partly written (whole tasks of
the new values, the rest as before) and should be filled again. ``sparse_`` draws its mask
first and applies it even when the value fill is interrupted, so its zeros are always in place.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Sequence

import numpy as np

from . import _core
from ._docs import shared_doc
from ._buffers import BF16, DeviceTarget, Target, as_target, c_strides, mark_written, store
from ._simd import _isa_code
from ._threads import get_num_threads
from ._typing import Layout, TensorT
from .fans import calculate_gain, check_mode, compute_fans, fan_for_mode
from .generator import SeedLike, resolve_seed

__all__ = [
    "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "lecun_uniform_",
    "lecun_normal_", "variance_scaling_", "sparse_", "zero_init_", "calculate_gain", "compute_fans",
]

# Distribution codes shared with the core (distributions.hpp: Dist).
_UNIFORM, _NORMAL, _TRUNC, _CONSTANT = 0, 1, 2, 3
# std of N(0, 1) truncated to [-2, 2]: Keras/JAX's variance-scaling correction.
TRUNC_STD_2SIGMA = 0.87962566103423978
_SPARSE_MASK_STREAM = 1 << 63  # sparse_'s mask: the call's stream with the top bit set
_SPARSE_MASK_TAG = 0x4D41534B  # "MASK": the mask's own key for streams that already use the top bit


def _sparse_mask_coord(key: int, stream: int) -> tuple[int, int]:
    """Philox (key, stream) of ``sparse_``'s mask uniforms for a call on (key, stream).

    Streams below 2**63 use the same key and the stream with its top bit set (never a value
    stream of such a call); streams at or above 2**63 already have that bit, so their mask uses
    a key derived from the call's key through Philox (the construction ``Generator.spawn`` uses).
    """
    if stream < _SPARSE_MASK_STREAM:
        return key, stream | _SPARSE_MASK_STREAM
    w = _core.philox4x32_10([_SPARSE_MASK_TAG, 0, 0, 0], [key & 0xFFFFFFFF, key >> 32])
    return int(w[0]) | (int(w[1]) << 32), stream


def _real(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:  # e.g. 10**400: documented as a ValueError, as every out-of-range value
        raise ValueError(f"{name} = {v!r} is beyond the float64 range") from None


def _finite_gain(v: Any) -> float:
    g = _real("gain", v)
    if not math.isfinite(g):
        raise ValueError(f"gain must be finite, got {g}")
    return g


def _block(t: Target | DeviceTarget, global_shape: Any, offset: Any) -> tuple[tuple[int, ...], list[int], int]:
    """Validate the shard description; return (global shape, global C-strides, global base index)."""
    if global_shape is None:
        if offset is not None:
            raise ValueError("offset given without global_shape")
        return t.shape, c_strides(t.shape), 0
    gs = tuple(global_shape) if isinstance(global_shape, (tuple, list)) else None
    if gs is None or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in gs):
        raise ValueError(f"global_shape must be a tuple of non-negative ints, got {global_shape!r}")
    gs = tuple(int(s) for s in gs)
    if len(gs) != t.ndim:
        raise ValueError(f"global_shape {gs} has {len(gs)} dimensions but the array has {t.ndim}")
    off = (0,) * len(gs) if offset is None else offset
    if not isinstance(off, (tuple, list)) or len(off) != len(gs):
        raise ValueError(f"offset must be a tuple with one start per dimension of global_shape {gs}, got {offset!r}")
    if any(isinstance(o, bool) or not isinstance(o, numbers.Integral) for o in off):
        raise ValueError(f"offset must contain ints, got {offset!r}")
    off = tuple(int(o) for o in off)
    for k, (o, n, g) in enumerate(zip(off, t.shape, gs)):
        if o < 0:
            raise ValueError(f"offset[{k}] = {o} is negative")
        if o + n > g:
            raise ValueError(f"the block runs past global_shape in dimension {k}: offset {o} + size {n} > {g}")
    if math.prod(gs) >= 1 << 62:
        raise ValueError(f"global_shape {gs} has more than 2**62 elements")
    gst = c_strides(gs)
    return gs, gst, sum(o * s for o, s in zip(off, gst))


def _core_fill(t: Target | DeviceTarget, dist: int, p0: float, p1: float, lo: float, hi: float, key: int,
               stream: int, gst: list[int], gbase: int) -> None:
    """Fill by the target's route: the core on its memory (or on a device target's host copy, once
    one exists), else the device route (``initlab.device.fill``); the same bits either way."""
    if isinstance(t, DeviceTarget) and not t.has_mirror:
        from .device.fill import fill as device_fill

        try:
            device_fill(t.tensor, t.code, t.route, dist, p0, p1, lo, hi, key, stream, gst, gbase, get_num_threads(),
                        _isa_code())
        finally:
            mark_written(t)
        return
    try:
        _core.fill(t.array, t.code, dist, p0, p1, lo, hi, key, stream, gst, gbase, get_num_threads(), _isa_code())
    finally:
        mark_written(t)  # also after an interrupt: part of the tensor has changed


def _fill(t: Target | DeviceTarget, dist: int, p0: float, p1: float, lo: float, hi: float, seed: SeedLike,
          gst: list[int], gbase: int) -> None:
    """Validate the parameters (even for an empty tensor), take the stream, fill."""
    _check_params(dist, p0, p1, lo, hi, code=t.code)
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return
    _core_fill(t, dist, p0, p1, lo, hi, key, stream, gst, gbase)


_PROBE_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint16}


def _check_params(dist: int, p0: float, p1: float, lo: float = 0.0, hi: float = 0.0, code: int = 1) -> None:
    # The core validates the parameters for the output dtype (e.g. that [a, b] holds a
    # representable value) on an empty probe, so nothing is written and zero-size arrays get
    # the same errors as the others.
    _core.fill(np.empty(0, _PROBE_DTYPES[code]), code, dist, p0, p1, lo, hi, 0, 0, [1], 0, 1, 0)


# ---- base samplers ---------------------------------------------------------------------------


@shared_doc
def uniform_(tensor: TensorT, a: float = 0.0, b: float = 1.0, *, seed: SeedLike = None,
             global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Fill ``tensor`` with values from the uniform distribution U[a, b), in place.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
    a : float, default 0.0
        Lower bound (included).
    b : float, default 1.0
        Upper bound (excluded); ``a <= b``, both finite. ``a == b`` fills ``a``.
    {{seed}}
    global_shape : tuple of int, optional, keyword-only
        Shape of the full tensor of which ``tensor`` is one block: the block gets exactly its
        part of the full fill. Default: ``tensor.shape``.
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    {{raises_type}}
    ValueError
        Non-finite bounds, ``a > b``, no value of the dtype in ``[a, b)``, ``b - a`` overflowing
        the float arithmetic; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    normal_, trunc_normal_, xavier_uniform_, kaiming_uniform_

    Notes
    -----
    Values are ``a + (b - a) * u`` with ``u = x * 2**-24`` for 24 random bits ``x`` (float32;
    five values per Philox block), ``h * 2**-16`` for 16 random bits ``h`` (float16/bfloat16)
    or ``(x >> 11) * 2**-53`` for a 64-bit word ``x`` (float64), clamped to the largest
    representable value below ``b`` (so ``b`` never appears, even after rounding to a
    low-precision dtype).

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = np.empty((3, 4), np.float32)
    >>> initlab.uniform_(w, -1.0, 1.0, seed=0) is w
    True
    >>> bool(((w >= -1.0) & (w < 1.0)).all())
    True

    One block of a larger tensor, filled alone, equals that block of the full fill:

    >>> full = initlab.uniform_(np.empty((6, 8), np.float32), seed=3)
    >>> block = initlab.uniform_(np.empty((2, 8), np.float32), seed=3, global_shape=(6, 8), offset=(4, 0))
    >>> np.array_equal(block, full[4:6])
    True
    """
    t = as_target(tensor)
    a, b = _real("a", a), _real("b", b)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _UNIFORM, a, b, 0.0, 0.0, seed, gst, gbase)
    return tensor


@shared_doc
def normal_(tensor: TensorT, mean: float = 0.0, std: float = 1.0, *, seed: SeedLike = None,
            global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Fill ``tensor`` with values from the normal distribution N(mean, std²), in place.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
    mean : float, default 0.0
        Mean, finite.
    std : float, default 1.0
        Standard deviation, finite and ``>= 0``; ``std = 0`` fills ``mean``.
    {{seed}}
    global_shape : tuple of int, optional, keyword-only
        Shape of the full tensor of which ``tensor`` is one block: the block gets exactly its
        part of the full fill. Default: ``tensor.shape``.
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    {{raises_type}}
    ValueError
        A negative or non-finite ``std``, a non-finite ``mean``, or parameters with which a
        sample could overflow the dtype (see Notes); a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    trunc_normal_, xavier_normal_, kaiming_normal_, Generator.normal

    Notes
    -----
    Box-Muller on Philox words. Its ``|z|`` is at most 6.661 (float32), 7.632
    (float16/bfloat16, whose rare tail pairs refine the radius with a word of their own) or
    8.653 (float64), so ``|mean| + zmax * std`` must not exceed the dtype's largest finite value:
    every value written is finite. float16/bfloat16 draw 16 random bits per value (one Philox
    word per Box-Muller pair), not the float32 sampler's 32.

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> x = initlab.normal_(np.empty(100_000, np.float32), mean=1.0, std=0.5, seed=0)
    >>> round(float(x.mean()), 2), round(float(x.std()), 2)
    (1.0, 0.5)

    An ``int`` seed is stateless; a :class:`~initlab.Generator` gives a new stream per call:

    >>> a = initlab.normal_(np.empty(4, np.float32), seed=7)
    >>> np.array_equal(a, initlab.normal_(np.empty(4, np.float32), seed=7))
    True
    >>> g = initlab.Generator(7)
    >>> first = initlab.normal_(np.empty(4, np.float32), seed=g)
    >>> second = initlab.normal_(np.empty(4, np.float32), seed=g)
    >>> np.array_equal(first, a), np.array_equal(second, a)
    (True, False)
    """
    t = as_target(tensor)
    mean, std = _real("mean", mean), _real("std", std)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _NORMAL, mean, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


@shared_doc
def trunc_normal_(tensor: TensorT, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *,
                  seed: SeedLike = None, global_shape: Sequence[int] | None = None,
                  offset: Sequence[int] | None = None) -> TensorT:
    """Fill ``tensor`` with N(mean, std²) truncated to the **absolute** interval [a, b], in place.

    The bounds are values, not multiples of ``std`` (torch's meaning). No variance correction is
    applied (as torch): for ``std=1, a=-2, b=2`` the output std is 0.8796; Keras/JAX's corrected
    truncated normal is :func:`variance_scaling_`.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
    mean : float, default 0.0
        Mean of the untruncated normal, finite.
    std : float, default 1.0
        Standard deviation of the untruncated normal, finite and ``> 0``.
    a : float, default -2.0
        Lower bound (may be ``-inf``).
    b : float, default 2.0
        Upper bound (may be ``inf``); ``a < b``.
    {{seed}}
    global_shape : tuple of int, optional, keyword-only
        Shape of the full tensor of which ``tensor`` is one block: the block gets exactly its
        part of the full fill. Default: ``tensor.shape``.
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    {{raises_type}}
    ValueError
        ``std <= 0`` or non-finite, a non-finite mean, NaN bounds, ``a >= b``, or no value of
        the dtype in ``[a, b]`` (an interval with no representable mass); a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    normal_, variance_scaling_, Generator.truncated_normal

    Notes
    -----
    Exact sampling: float32/float16/bfloat16 use the inverse CDF of one uniform per element
    where its p-values resolve the interval; intervals far in a tail (e.g. [5σ, 6σ],
    [-40σ, -39σ]), very narrow ones, and every float64 interval use exact rejection from each
    element's own counters (uniform, exponential or normal proposals), so one-sided intervals
    (``a=-inf`` or ``b=inf``) and far tails are all sampled correctly. No value ever leaves
    ``[a, b]``, in any dtype.

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> x = initlab.trunc_normal_(np.empty(100_000, np.float32), std=1.0, a=-2.0, b=2.0, seed=0)
    >>> bool(x.min() >= -2.0 and x.max() <= 2.0), round(float(x.std()), 2)
    (True, 0.88)
    """
    t = as_target(tensor)
    mean, std, a, b = _real("mean", mean), _real("std", std), _real("a", a), _real("b", b)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _TRUNC, mean, std, a, b, seed, gst, gbase)
    return tensor


def constant_(tensor: TensorT, val: float) -> TensorT:
    """Fill ``tensor`` with the value ``val``, in place.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination: a writable float32, float64, float16 or bfloat16 array or tensor, any
        layout, torch tensors on any device.
    val : float
        A real number finite in the dtype, or ``inf``/``NaN`` passed explicitly (as torch). It
        is rounded to the dtype: directly for float64/float32, through float32 for
        float16/bfloat16 (as the samplers do).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype; ``val``
        is not a real number (``bool`` included).
    ValueError
        ``val`` beyond the float64 range (e.g. ``10**400``), or a finite ``val`` that overflows
        the dtype (``1e300`` into float32); a read-only array or elements overlapping in memory.
        On error ``tensor`` is unchanged.

    See Also
    --------
    zeros_, ones_

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> initlab.constant_(np.empty((2, 3), np.float32), 0.5)
    array([[0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5]], dtype=float32)
    """
    t = as_target(tensor)
    v = _real("val", val)
    _check_params(_CONSTANT, v, 0.0, code=t.code)  # the core refuses a finite value that overflows the dtype
    if t.size:
        _core_fill(t, _CONSTANT, v, 0.0, 0.0, 0.0, 0, 0, c_strides(t.shape), 0)
    return tensor


def zeros_(tensor: TensorT) -> TensorT:
    """Fill ``tensor`` with 0, in place; ``constant_(tensor, 0.0)``.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, as for :func:`constant_`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype.
    ValueError
        A read-only array or elements overlapping in memory.

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> initlab.zeros_(np.empty(3, np.float64))
    array([0., 0., 0.])
    """
    return constant_(tensor, 0.0)


def ones_(tensor: TensorT) -> TensorT:
    """Fill ``tensor`` with 1, in place; ``constant_(tensor, 1.0)``.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, as for :func:`constant_`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype.
    ValueError
        A read-only array or elements overlapping in memory.

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> initlab.ones_(np.empty(3, np.float16))
    array([1., 1., 1.], dtype=float16)
    """
    return constant_(tensor, 1.0)


def _one(t: Target | DeviceTarget) -> Any:
    return np.uint16(0x3F80) if t.code == BF16 else 1


def eye_(tensor: TensorT) -> TensorT:
    """Fill a 2-D ``tensor`` with the identity matrix, in place (as ``torch.nn.init.eye_``).

    Ones on the main diagonal, zeros elsewhere; rectangular shapes are allowed (the diagonal
    has ``min(rows, cols)`` ones). Deterministic: no seed.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable 2-D float32, float64, float16 or bfloat16 destination, any layout, torch
        tensors on any device.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype.
    ValueError
        ``"Only tensors with 2 dimensions are supported"``; a read-only array or elements
        overlapping in memory.

    See Also
    --------
    dirac_, zero_init_, orthogonal_

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> initlab.eye_(np.empty((2, 3), np.float32))
    array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    t = as_target(tensor)
    if t.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    zeros_(tensor)
    n = min(t.shape)
    t.array[np.arange(n), np.arange(n)] = _one(t)
    mark_written(t)
    return tensor


def dirac_(tensor: TensorT, groups: int = 1) -> TensorT:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta, in place (as torch).

    The convolution then preserves the identity of its inputs: in each of ``groups`` groups,
    output channel ``d`` of the group copies input channel ``d`` (for ``d`` below
    ``min(out // groups, in)``) at the centre tap ``k // 2`` of every spatial dimension (torch's
    convention; :func:`delta_orthogonal_` uses ``(k - 1) // 2``). Every other entry is zero.
    Deterministic: no seed.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable kernel in torch layout ``(out, in, *k)`` with 1, 2 or 3 spatial dimensions;
        float32, float64, float16 or bfloat16; torch tensors on any device.
    groups : int, default 1
        Number of groups of the convolution; must divide ``out``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype.
    ValueError
        ``"Only tensors with 3, 4, or 5 dimensions are supported"``, ``groups`` not a positive
        int, ``"dim 0 must be divisible by groups"``; a read-only array or elements overlapping
        in memory. On error ``tensor`` is unchanged.

    See Also
    --------
    eye_, delta_orthogonal_

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> k = initlab.dirac_(np.empty((2, 2, 3), np.float32))
    >>> k[:, :, 1]
    array([[1., 0.],
           [0., 1.]], dtype=float32)
    """
    t = as_target(tensor)
    if t.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    if t.shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    if t.size == 0:
        return tensor
    zeros_(tensor)
    out_per = t.shape[0] // groups
    centre = tuple(k // 2 for k in t.shape[2:])
    for g in range(groups):
        for d in range(min(out_per, t.shape[1])):
            t.array[(g * out_per + d, d) + centre] = _one(t)
    mark_written(t)
    return tensor


# ---- fan-based schemes -------------------------------------------------------------------------


def _fans(t: Target | DeviceTarget, layout: Any, global_shape: Any, offset: Any) -> tuple[int, int, list[int], int]:
    gs, gst, gbase = _block(t, global_shape, offset)
    fi, fo = compute_fans(gs, layout=layout)
    return fi, fo, gst, gbase


@shared_doc
def xavier_uniform_(tensor: TensorT, gain: float = 1.0, *, seed: SeedLike = None, layout: Layout = "torch",
                    global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Glorot/Xavier uniform initialization (Glorot & Bengio 2010), in place.

    Values from U(-bound, bound) with ``bound = gain * sqrt(6 / (fan_in + fan_out))``, so the
    variance is ``gain**2 * 2 / (fan_in + fan_out)``. The same values as
    ``uniform_(tensor, -bound, bound, seed=seed)``.

    Parameters
    ----------
    {{tensor}}
    gain : float, default 1.0
        Scaling factor, finite (e.g. :func:`~initlab.calculate_gain` of the nonlinearity).
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); a non-real ``gain``; ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Fewer than 2 dimensions, a non-finite ``gain``, an unknown ``layout``;
        a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    xavier_normal_, kaiming_uniform_, compute_fans

    Notes
    -----
    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.xavier_uniform_(np.empty((256, 128), np.float32), seed=0)
    >>> bound = np.sqrt(6 / (128 + 256))
    >>> bool(np.abs(w).max() < bound), round(float(w.std() / (bound / np.sqrt(3))), 2)
    (True, 1.0)
    """
    t = as_target(tensor)
    gain = _finite_gain(gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fi + fo)) if fi + fo else 0.0
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


@shared_doc
def xavier_normal_(tensor: TensorT, gain: float = 1.0, *, seed: SeedLike = None, layout: Layout = "torch",
                   global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Glorot/Xavier normal initialization (Glorot & Bengio 2010), in place.

    Values from N(0, std²) with ``std = gain * sqrt(2 / (fan_in + fan_out))``, untruncated
    (as torch; Keras's ``glorot_normal`` is ``variance_scaling_(t, 1.0, "fan_avg")``).

    Parameters
    ----------
    {{tensor}}
    gain : float, default 1.0
        Scaling factor, finite.
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); a non-real ``gain``; ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Fewer than 2 dimensions, a non-finite ``gain``, an unknown ``layout``;
        a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    xavier_uniform_, kaiming_normal_, variance_scaling_

    Notes
    -----
    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.xavier_normal_(np.empty((256, 128), np.float32), seed=0)
    >>> round(float(w.std() / np.sqrt(2 / (128 + 256))), 2)
    1.0
    """
    t = as_target(tensor)
    gain = _finite_gain(gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    std = gain * math.sqrt(2.0 / float(fi + fo)) if fi + fo else 0.0
    _fill(t, _NORMAL, 0.0, abs(std), 0.0, 0.0, seed, gst, gbase)
    return tensor


_EMPTY_WARNING = "Initializing zero-element tensors is a no-op"  # torch's words, for kaiming_*


def _kaiming_std(t: Target | DeviceTarget, a: Any, mode: Any, nonlinearity: Any, layout: Any, global_shape: Any,
                 offset: Any, seed: SeedLike) -> tuple[float, list[int], int] | None:
    """(std, global strides, base), or None for a zero-element tensor (after torch's warning)."""
    m = check_mode(mode, lower=True)
    gain = calculate_gain(nonlinearity, a)
    if t.size == 0:
        # As torch: warn and return before the fans (so 1-D empty tensors are fine), but still
        # validate the seed and take its stream like every other random initializer.
        _block(t, global_shape, offset)
        resolve_seed(seed)
        warnings.warn(_EMPTY_WARNING, UserWarning, stacklevel=3)
        return None
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    fan = fan_for_mode(fi, fo, m)
    return (gain / math.sqrt(fan) if fan > 0 else 0.0), gst, gbase


@shared_doc
def kaiming_uniform_(tensor: TensorT, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     seed: SeedLike = None, layout: Layout = "torch", global_shape: Sequence[int] | None = None,
                     offset: Sequence[int] | None = None) -> TensorT:
    """He/Kaiming uniform initialization (He et al. 2015), in place, with torch's semantics.

    Values from U(-bound, bound) with ``bound = gain * sqrt(3 / fan_mode)``, so the variance is
    ``gain**2 / fan_mode``; ``gain = calculate_gain(nonlinearity, a)``. torch's defaults
    (``a=0``, ``mode="fan_in"``, ``nonlinearity="leaky_relu"``: gain √2) give the same
    distribution as ``torch.nn.init.kaiming_uniform_`` (not torch's numbers: initlab's come from
    its own seeded Philox streams).

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
        At least 2 dimensions, unless it has no elements.
    {{a}}
    {{mode}}
    {{nonlinearity}}
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Unknown ``mode`` or ``nonlinearity``; a leaky_relu slope ``a`` that is not a number or is
        beyond the float64 range;
        fewer than 2 dimensions (``"Fan in and fan out can not be computed for tensor with
        fewer than 2 dimensions"``); an unknown ``layout``; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    Warns
    -----
    UserWarning
        ``tensor`` has no elements (nothing is written).

    See Also
    --------
    kaiming_normal_, xavier_uniform_, calculate_gain, compute_fans

    Notes
    -----
    For a weight of shape ``(out, in, *k)`` (``layout="torch"``, the default: ``nn.Linear``
    and ``nn.ConvNd``), ``fan_in = in * prod(k)`` and ``fan_out = out * prod(k)``; with
    ``layout="keras"`` (``(*k, in, out)``, Keras/Flax kernels) the same quantities are read
    from the other axes. Transposed convolutions and groups follow torch's rules
    (:func:`~initlab.compute_fans`). A zero-element tensor is left as it is with torch's
    ``UserWarning("Initializing zero-element tensors is a no-op")``, for any number of
    dimensions (as torch).

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = np.empty((256, 128), np.float32)   # an nn.Linear(128, 256) weight: fan_in = 128
    >>> initlab.kaiming_uniform_(w, seed=0) is w
    True
    >>> bound = np.sqrt(2.0) * np.sqrt(3 / 128)
    >>> bool(np.abs(w).max() < bound), round(float(w.std()), 3)   # std = sqrt(2 / 128) = 0.125
    (True, 0.125)
    """
    t = as_target(tensor)
    r = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset, seed)
    if r is None:
        return tensor
    std, gst, gbase = r
    bound = math.sqrt(3.0) * std
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


@shared_doc
def kaiming_normal_(tensor: TensorT, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    seed: SeedLike = None, layout: Layout = "torch", global_shape: Sequence[int] | None = None,
                    offset: Sequence[int] | None = None) -> TensorT:
    """He/Kaiming normal initialization (He et al. 2015), in place, with torch's semantics.

    Values from N(0, std²), untruncated (as torch), with

    ``std = gain / sqrt(fan_mode)``, ``gain = calculate_gain(nonlinearity, a)``.

    torch's defaults (``a=0``, ``mode="fan_in"``, ``nonlinearity="leaky_relu"``: gain √2, so
    ``std = sqrt(2 / fan_in)``) give the same distribution as ``torch.nn.init.kaiming_normal_``
    (not torch's numbers: initlab's come from its own seeded Philox streams). Described in
    "Delving deep into rectifiers: Surpassing human-level performance on ImageNet
    classification", He, K. et al. (2015).

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
        At least 2 dimensions, unless it has no elements.
    {{a}}
    {{mode}}
    {{nonlinearity}}
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Unknown ``mode`` or ``nonlinearity``; a leaky_relu slope ``a`` that is not a number or is
        beyond the float64 range;
        fewer than 2 dimensions (``"Fan in and fan out can not be computed for tensor with
        fewer than 2 dimensions"``); an unknown ``layout``; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    Warns
    -----
    UserWarning
        ``tensor`` has no elements (nothing is written).

    See Also
    --------
    kaiming_uniform_, xavier_normal_, variance_scaling_, calculate_gain, compute_fans

    Notes
    -----
    For a weight of shape ``(out, in, *k)`` (``layout="torch"``, the default: ``nn.Linear``
    and ``nn.ConvNd``), ``fan_in = in * prod(k)`` and ``fan_out = out * prod(k)``; with
    ``layout="keras"`` (``(*k, in, out)``, Keras/Flax kernels) the same quantities are read
    from the other axes. Transposed convolutions and groups follow torch's rules
    (:func:`~initlab.compute_fans`). A zero-element tensor is left as it is with torch's
    ``UserWarning("Initializing zero-element tensors is a no-op")``, for any number of
    dimensions (as torch).

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = np.empty((256, 128), np.float32)   # an nn.Linear(128, 256) weight: fan_in = 128
    >>> initlab.kaiming_normal_(w, seed=0) is w
    True
    >>> round(float(w.std()), 3)               # sqrt(2 / 128) = 0.125
    0.125

    ``mode="fan_out"`` for the backward pass (fan_out = 256), and a Keras-layout kernel
    ``(kh, kw, in, out)`` whose fan_in is ``3 * 3 * 64``:

    >>> w = initlab.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", seed=0)
    >>> round(float(w.std()), 3)               # sqrt(2 / 256) = 0.0884
    0.089
    >>> k = initlab.kaiming_normal_(np.empty((3, 3, 64, 128), np.float32), layout="keras", seed=0)
    >>> round(float(k.std()), 3)               # sqrt(2 / 576) = 0.059
    0.059
    """
    t = as_target(tensor)
    r = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset, seed)
    if r is None:
        return tensor
    std, gst, gbase = r
    _fill(t, _NORMAL, 0.0, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")


@shared_doc
def variance_scaling_(tensor: TensorT, scale: float = 1.0, mode: str = "fan_in",
                      distribution: str = "truncated_normal", *, seed: SeedLike = None, layout: Layout = "torch",
                      global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Keras/JAX variance scaling, in place: values with variance ``scale / n``, ``n`` the fan of ``mode``.

    .. warning::
       ``distribution="normal"`` follows **Keras**, where it is an alias of
       ``"truncated_normal"``. In **JAX** (``jax.nn.initializers.variance_scaling``) ``"normal"``
       means the *untruncated* normal: code ported from JAX must pass
       ``"untruncated_normal"``, also with ``layout="jax"`` (the layout changes only the fans).

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
        At least 2 dimensions (with a named layout).
    scale : float, default 1.0
        Scaling factor of the variance, finite and ``> 0``.
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}, default "fan_in"
        Which fan ``n`` is (case-sensitive, as Keras): ``fan_in``, ``fan_out``,
        ``(fan_in + fan_out) / 2`` or ``sqrt(fan_in * fan_out)``. ``n`` is clamped to at least 1
        (as Keras).
    distribution : {"truncated_normal", "normal", "untruncated_normal", "uniform"}, default "truncated_normal"
        ``"truncated_normal"`` (alias ``"normal"``, as Keras): ``N(0, s**2)`` truncated to
        ``[-2s, 2s]`` with ``s = sqrt(scale / n) / 0.87962566103423978``, so the std after
        truncation is exactly ``sqrt(scale / n)``. ``"untruncated_normal"``: N(0, scale / n).
        ``"uniform"``: U(-limit, limit), ``limit = sqrt(3 * scale / n)``. Case-insensitive.
    {{seed}}
    layout : {"torch", "keras", "jax"} or (in_axis, out_axis), keyword-only
        How the fans are read from the shape (:func:`~initlab.compute_fans`): ``"torch"``
        (default; pass ``layout="keras"`` for Keras/Flax kernels) reads ``(out, in, *k)``, ``"keras"``/``"jax"`` read ``(*k, in, out)``; a pair
        of axes (ints or tuples of ints) names them, the other axes counting as receptive field.
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); a non-real ``scale``; ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        ``scale <= 0`` or non-finite, an unknown ``mode`` or ``distribution``, fewer than 2
        dimensions, an unknown ``layout``; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    lecun_normal_, lecun_uniform_, kaiming_normal_, trunc_normal_

    Notes
    -----
    Keras's ``glorot_normal`` is ``variance_scaling_(t, 1.0, "fan_avg", layout="keras")``,
    ``he_normal`` is ``variance_scaling_(t, 2.0, "fan_in", layout="keras")`` and
    ``lecun_normal`` is :func:`lecun_normal_`.

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.variance_scaling_(np.empty((512, 256), np.float32), scale=1.0, seed=0)
    >>> round(float(w.std()), 3)               # sqrt(1 / 256) = 0.0625, after truncation
    0.063
    >>> bool(np.abs(w).max() <= 2 * 0.0625 / 0.87962566103423978)
    True
    """
    t = as_target(tensor)
    scale = _real("scale", scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
    m = check_mode(mode, lower=False)
    dist = distribution.lower() if isinstance(distribution, str) else distribution
    if dist not in _DISTRIBUTIONS:
        raise ValueError(f"Invalid `distribution` argument: {distribution}. Please use one of {list(_DISTRIBUTIONS)}")
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    var = scale / max(1.0, fan_for_mode(fi, fo, m))
    if dist in ("truncated_normal", "normal"):
        s = math.sqrt(var) / TRUNC_STD_2SIGMA
        _fill(t, _TRUNC, 0.0, s, -2.0 * s, 2.0 * s, seed, gst, gbase)
    elif dist == "untruncated_normal":
        _fill(t, _NORMAL, 0.0, math.sqrt(var), 0.0, 0.0, seed, gst, gbase)
    else:
        bound = math.sqrt(3.0 * var)
        _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


@shared_doc
def lecun_uniform_(tensor: TensorT, *, seed: SeedLike = None, layout: Layout = "torch",
                   global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """LeCun uniform initialization (as Keras/JAX), in place: U(-limit, limit), ``limit = sqrt(3 / fan_in)``.

    ``variance_scaling_(tensor, 1.0, "fan_in", "uniform")``: variance ``1 / fan_in``.

    Parameters
    ----------
    {{tensor}}
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Fewer than 2 dimensions, an unknown ``layout``; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    lecun_normal_, variance_scaling_

    Notes
    -----
    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.lecun_uniform_(np.empty((256, 128), np.float32), seed=0)
    >>> bool(np.abs(w).max() < np.sqrt(3 / 128)), round(float(w.std()), 3)   # sqrt(1 / 128) = 0.088
    (True, 0.088)
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", seed=seed, layout=layout,
                             global_shape=global_shape, offset=offset)


@shared_doc
def lecun_normal_(tensor: TensorT, *, seed: SeedLike = None, layout: Layout = "torch",
                  global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """LeCun normal initialization as Keras/JAX/Flax, in place: truncated at ±2σ, variance ``1 / fan_in``.

    ``variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal")``: the std of the
    untruncated normal is corrected (divided by 0.8796) so the values' variance is exactly
    ``1 / fan_in`` (SELU networks, Klambauer et al. 2017).

    Parameters
    ----------
    {{tensor}}
    {{seed}}
    {{layout}}
    {{global_shape}}
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or its dtype is not float32, float64,
        float16 or bfloat16 (integer, bool, complex, object); ``layout`` axes that are not ints; ``seed`` is not an int,
        Generator or None.
    ValueError
        Fewer than 2 dimensions, an unknown ``layout``; a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    lecun_uniform_, variance_scaling_

    Notes
    -----
    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.lecun_normal_(np.empty((256, 128), np.float32), seed=0)
    >>> round(float(w.std()), 3)               # sqrt(1 / 128) = 0.088
    0.088
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", seed=seed, layout=layout,
                             global_shape=global_shape, offset=offset)


@shared_doc
def sparse_(tensor: TensorT, sparsity: float, std: float = 0.01, *, seed: SeedLike = None,
            global_shape: Sequence[int] | None = None, offset: Sequence[int] | None = None) -> TensorT:
    """Sparse initialization (Martens 2010), in place: N(0, std²) with a fraction of each column zeroed.

    A 2-D ``(rows, cols)`` tensor gets N(0, std²) values, then in every column
    ``ceil(sparsity * rows)`` entries are set to zero (as ``torch.nn.init.sparse_``). Unlike
    torch, the zero mask is seeded too: one seed fixes both the values and the mask.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Destination, filled in place: a writable float32, float64, float16 or bfloat16
        (``ml_dtypes.bfloat16``, ``torch.bfloat16``) array or tensor of any memory layout (C,
        Fortran, strided views). Torch tensors and ``nn.Parameter`` on any device (zero-copy on
        the CPU; autograd sees the write, the graph is untouched).
        Exactly 2 dimensions.
    sparsity : float
        Fraction of each column set to zero, in ``[0, 1]``.
    std : float, default 0.01
        Standard deviation of the non-zero values, finite and ``>= 0``.
    {{seed}}
    global_shape : tuple of int, optional, keyword-only
        Shape of the full tensor of which ``tensor`` is one block: the block gets exactly its
        part of the full fill (mask included; ``rows`` is then the global number of rows). Default: ``tensor.shape``.
    {{offset}}

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    {{raises_type}}
    ValueError
        Not 2-D, ``sparsity`` outside ``[0, 1]``, a negative or non-finite ``std``;
        a read-only array, elements overlapping in memory (zero strides), non-native byte
        order; ``seed`` outside ``[0, 2**64)``; ``offset`` without ``global_shape``, or a block
        that does not fit in it. Everything is checked before anything is written: on error
        ``tensor`` is unchanged.

    See Also
    --------
    normal_

    Notes
    -----
    Each column zeroes the rows with the smallest Philox uniforms of a mask stream derived from
    the call's (the call's stream with its top bit set; for streams ``>= 2**63``, which already
    have it, the same stream under a key derived from the seed). A block of few rows still
    ranks whole global columns, so it costs ``global rows x block cols`` float64 scratch. The
    mask is drawn before any value is written; if the value fill is interrupted (Ctrl-C) the
    mask is still applied before ``KeyboardInterrupt`` propagates.

    Determinism contract: the value written at each element is a pure function of (seed,
    stream, distribution, parameters, dtype, the element's C-order index in the global tensor).
    It is bit-identical for any thread count, memory layout, shard (``global_shape`` /
    ``offset``), SIMD path and device: a torch tensor on any device takes the route
    :func:`initlab.device_backend` names and gets the same bits as a NumPy array. A
    :class:`~initlab.Generator` gives up one stream per call, also for a zero-element tensor
    (which is left as it is).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.sparse_(np.empty((10, 4), np.float32), sparsity=0.3, seed=0)
    >>> (w == 0).sum(axis=0)                   # ceil(0.3 * 10) zeros in every column
    array([3, 3, 3, 3])
    """
    t = as_target(tensor)
    if t.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    sp, std = _real("sparsity", sparsity), _real("std", std)
    if not 0.0 <= sp <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sp}")
    gs, gst, gbase = _block(t, global_shape, offset)
    _check_params(_NORMAL, 0.0, std, code=t.code)
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return tensor
    rows, cols = t.shape
    row0, col0 = (0, 0) if offset is None else (int(offset[0]), int(offset[1]))
    nz = int(math.ceil(sp * gs[0]))
    zr = zc = None
    if nz:
        # Rank whole global columns (rows 0..R-1 of this block's columns), keep this block's rows.
        keys = np.empty((gs[0], cols), np.float64)
        mkey, mstream = _sparse_mask_coord(key, stream)
        _core.fill(keys, 1, _UNIFORM, 0.0, 1.0, 0.0, 0.0, mkey, mstream, gst, col0 * gst[1], get_num_threads(),
                   _isa_code())
        gr, zc = _smallest_per_column(keys, nz)
        del keys
        inside = (gr >= row0) & (gr < row0 + rows)
        zr, zc = gr[inside] - row0, zc[inside]
    try:
        _core.fill(t.array, t.code, _NORMAL, 0.0, std, 0.0, 0.0, key, stream, gst, gbase, get_num_threads(),
                   _isa_code())
    finally:
        if zr is not None:
            t.array[zr, zc] = 0
        mark_written(t)
    return tensor


_MASK_COLUMNS = 256  # columns per step of the mask selection (Ctrl-C is seen between steps)


def _smallest_per_column(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the ``k`` smallest entries of every column of ``keys``, ties to the lower
    row: the set a stable ``argsort(keys, axis=0)[:k]`` selects, found by partition (linear per
    column) in blocks of columns instead of a full sort."""
    n = keys.shape[0]
    if k >= n:
        r, c = np.nonzero(np.ones(keys.shape, bool))
        return r, c
    rows, cols = [], []
    for c0 in range(0, keys.shape[1], _MASK_COLUMNS):
        blk = keys[:, c0:c0 + _MASK_COLUMNS]
        kth = np.take_along_axis(blk, np.argpartition(blk, k - 1, axis=0)[k - 1:k], axis=0)  # k-th smallest
        less = blk < kth
        eq = blk == kth  # of these, the lowest rows fill what `less` leaves of the k
        chosen = less | (eq & (np.cumsum(eq, axis=0) <= k - less.sum(axis=0)))
        r, c = np.nonzero(chosen)
        rows.append(r)
        cols.append(c + c0)
    return np.concatenate(rows), np.concatenate(cols)


def _hadamard_block(rows: range, n_cols: int) -> np.ndarray:
    """Rows ``rows`` and columns 0..n_cols-1 of the Sylvester Hadamard matrix: (-1)^popcount(i & j)."""
    i = np.arange(rows.start, rows.stop, dtype=np.uint64)[:, None]
    j = np.arange(n_cols, dtype=np.uint64)[None, :]
    both = i & j
    if hasattr(np, "bitwise_count"):
        parity = np.bitwise_count(both) & 1
    else:  # NumPy < 2: fold the bits
        for sh in (32, 16, 8, 4, 2, 1):
            both ^= both >> np.uint64(sh)
        parity = both & np.uint64(1)
    return 1.0 - 2.0 * parity.astype(np.float64)


_ZERO_ROWS_PER_CHUNK = 1 << 20  # elements per chunk of the Hadamard block (bounded scratch)


def zero_init_(tensor: TensorT, *, constant: str = "code") -> TensorT:
    """ZerO initialization (Zhao, Schäfer & Anandkumar 2021), in place: deterministic, Hadamard-based.

    For a weight W of shape ``(out, in)`` (torch layout): ``out <= in`` gives the partial
    identity ``eye(out, in)``; ``out > in`` gives ``c * I* H_m I*`` with ``m = ceil(log2 out)``
    and ``H_m`` the ``2**m x 2**m`` Sylvester Hadamard matrix, where ``I* H_m I*`` is the
    top-left ``out x in`` block of ``H_m`` (entries ``(-1)**popcount(i & j)``). For a 3-, 4- or
    5-D convolution kernel ``(out, in, *k)`` the matrix sits at the centre tap ``(k - 1) // 2``
    and every other tap is zero. No seed: the result depends only on the shape, dtype and
    ``constant``.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable destination with at least 2 dimensions (torch layout), float32, float64,
        float16 or bfloat16, any layout; torch tensors on any device.
    constant : {"code", "paper"}, keyword-only, default "code"
        ``"code"``: ``c = 2**(-m/2)``, as the authors' released notebook (``H_m / sqrt(2**m)``
        is orthonormal). ``"paper"``: the paper's ``c = 2**(-(m-1)/2)``.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype.
    ValueError
        Fewer than 2 dimensions, an unknown ``constant``; a read-only array or elements
        overlapping in memory. On error ``tensor`` is unchanged.

    See Also
    --------
    eye_, dirac_

    Notes
    -----
    The Hadamard block is written in row chunks, so time and scratch memory are
    ``O(out * in)``, never ``O(4**m)``.

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> initlab.zero_init_(np.empty((4, 2), np.float32))
    array([[ 0.5,  0.5],
           [ 0.5, -0.5],
           [ 0.5,  0.5],
           [ 0.5, -0.5]], dtype=float32)
    """
    t = as_target(tensor)
    if constant not in ("code", "paper"):
        raise ValueError(f"constant must be 'code' or 'paper', got {constant!r}")
    if t.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if t.size == 0:
        return tensor
    p_out, p_in = t.shape[0], t.shape[1]
    constant_(tensor, 0.0)
    centre = t.array[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in t.shape[2:])]
    if p_out <= p_in:
        centre[np.arange(p_out), np.arange(p_out)] = _one(t)
    else:
        m = math.ceil(math.log2(p_out))
        c = 2.0 ** (-m / 2.0) if constant == "code" else 2.0 ** (-(m - 1) / 2.0)
        step = max(1, _ZERO_ROWS_PER_CHUNK // p_in)
        for r0 in range(0, p_out, step):
            rows = range(r0, min(p_out, r0 + step))
            store(Target(t.obj, centre[rows.start:rows.stop], t.code), c * _hadamard_block(rows, p_in))
    mark_written(t)
    return tensor
