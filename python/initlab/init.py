"""In-place initializers: torch.nn.init's names, positional parameters and defaults, plus
Keras/JAX variance scaling, LeCun, sparse and ZerO.

Every random initializer takes keyword-only ``seed`` (int: stateless; Generator: one stream per
call; None: the default generator) and ``global_shape``/``offset`` (the array is the block of a
larger tensor starting at ``offset``; fans come from the global shape and the values equal that
block of the global fill). Determinism contract: the value at an element is a pure function of
(seed, stream, distribution, parameters, dtype, logical index in the global tensor), so it is
bit-identical for any thread count, memory layout, sharding and SIMD path.

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
from typing import Any, TypeVar

import numpy as np

from . import _core
from ._buffers import BF16, DeviceTarget, Target, as_target, c_strides, mark_written, store
from ._simd import _isa_code
from ._threads import get_num_threads
from .fans import calculate_gain, check_mode, compute_fans, fan_for_mode
from .generator import resolve_seed

__all__ = [
    "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "lecun_uniform_",
    "lecun_normal_", "variance_scaling_", "sparse_", "zero_init_", "calculate_gain", "compute_fans",
]

T = TypeVar("T")

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


def _block(t: Target, global_shape: Any, offset: Any) -> tuple[tuple[int, ...], list[int], int]:
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


def _fill(t: Target, dist: int, p0: float, p1: float, lo: float, hi: float, seed: Any,
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


def uniform_(tensor: T, a: float = 0.0, b: float = 1.0, *, seed: Any = None, global_shape: Any = None,
             offset: Any = None) -> T:
    """Fill with U[a, b) in place and return the same object.

    Values are ``a + (b - a) * u`` with ``u = x * 2**-24`` for 24 random bits ``x`` (float32; five
    values per Philox block), ``h * 2**-16`` for 16 random bits ``h`` (float16/bfloat16) or
    ``(x >> 11) * 2**-53`` for a 64-bit word ``x`` (float64), clamped to the largest representable value below ``b``
    (so ``b`` itself never appears, even after rounding to a low-precision dtype); ``a == b``
    fills ``a``.

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable float32/float64/float16/bfloat16 destination, any layout.
    a, b : float
        Finite bounds, ``a <= b``.
    seed : int, Generator or None
        See the module docstring.
    global_shape, offset : tuple of int, optional
        Fill ``tensor`` as the block at ``offset`` of a tensor of shape ``global_shape``.

    Raises
    ------
    TypeError
        Unsupported destination or dtype.
    ValueError
        Non-finite bounds, ``a > b``, no representable value in [a, b), read-only array, bad shard.
    """
    t = as_target(tensor)
    a, b = _real("a", a), _real("b", b)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _UNIFORM, a, b, 0.0, 0.0, seed, gst, gbase)
    return tensor


def normal_(tensor: T, mean: float = 0.0, std: float = 1.0, *, seed: Any = None, global_shape: Any = None,
            offset: Any = None) -> T:
    """Fill with N(mean, std**2) in place (Box-Muller on Philox words) and return the same object.

    ``std = 0`` fills ``mean``. Raises ``ValueError`` for a negative or non-finite std or mean,
    and when a sample could overflow the dtype: Box-Muller's |z| is at most 6.661 (float32),
    7.632 (float16/bfloat16, whose rare tail pairs refine the radius with a word of their own) or
    8.653 (float64), so ``|mean| + zmax * std`` must not exceed the dtype's largest finite value
    (every value written is finite). float16/bfloat16 draw 16 random bits per value (one Philox
    word per Box-Muller pair), not the float32 value's 32. See :func:`uniform_` for the
    other parameters and errors.
    """
    t = as_target(tensor)
    mean, std = _real("mean", mean), _real("std", std)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _NORMAL, mean, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


def trunc_normal_(tensor: T, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *,
                  seed: Any = None, global_shape: Any = None, offset: Any = None) -> T:
    """Fill with N(mean, std**2) truncated to the **absolute** interval [a, b] (torch's meaning).

    Exact sampling: float32/float16/bfloat16 use the inverse CDF of one uniform per element
    where its p-values resolve the interval; intervals far in a tail (e.g. [5σ, 6σ],
    [-40σ, -39σ]), very narrow ones, and every float64 interval use exact rejection from each
    element's own counters (uniform, exponential or normal proposals), so one-sided ones
    (``a=-inf`` or ``b=inf``) and far tails are all sampled correctly. No value ever leaves [a, b],
    in any dtype. No variance correction is applied (as torch): for std=1, a=-2, b=2 the
    output std is 0.8796.

    Raises
    ------
    ValueError
        ``std <= 0`` or non-finite, NaN bounds, ``a >= b``, or no value of the dtype in [a, b].
    """
    t = as_target(tensor)
    mean, std, a, b = _real("mean", mean), _real("std", std), _real("a", a), _real("b", b)
    _, gst, gbase = _block(t, global_shape, offset)
    _fill(t, _TRUNC, mean, std, a, b, seed, gst, gbase)
    return tensor


def constant_(tensor: T, val: float) -> T:
    """Fill with ``val`` in place and return the same object.

    ``val`` is rounded to the dtype: directly for float64/float32, through float32 for
    float16/bfloat16 (as the samplers do). Any real value is accepted, inf and NaN included (as torch).
    """
    t = as_target(tensor)
    v = _real("val", val)
    if t.size:
        _core_fill(t, _CONSTANT, v, 0.0, 0.0, 0.0, 0, 0, c_strides(t.shape), 0)
    return tensor


def zeros_(tensor: T) -> T:
    """Fill with 0 in place and return the same object."""
    return constant_(tensor, 0.0)


def ones_(tensor: T) -> T:
    """Fill with 1 in place and return the same object."""
    return constant_(tensor, 1.0)


def _one(t: Target) -> Any:
    return np.uint16(0x3F80) if t.code == BF16 else 1


def eye_(tensor: T) -> T:
    """Fill a 2-D tensor with the identity (ones on the main diagonal; rectangular allowed, as torch).

    Raises ``ValueError("Only tensors with 2 dimensions are supported")`` otherwise.
    """
    t = as_target(tensor)
    if t.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    zeros_(tensor)
    n = min(t.shape)
    t.array[np.arange(n), np.arange(n)] = _one(t)
    mark_written(t)
    return tensor


def dirac_(tensor: T, groups: int = 1) -> T:
    """Fill a 3/4/5-D conv weight (torch layout) with the Dirac delta, preserving the identity of
    the inputs in each of ``groups`` groups; the centre tap is ``k // 2`` (torch's convention).

    Raises
    ------
    ValueError
        Wrong number of dimensions, ``groups`` not a positive int, or dim 0 not divisible by it.
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


def _fans(t: Target, layout: Any, global_shape: Any, offset: Any) -> tuple[int, int, list[int], int]:
    gs, gst, gbase = _block(t, global_shape, offset)
    fi, fo = compute_fans(gs, layout=layout)
    return fi, fo, gst, gbase


def xavier_uniform_(tensor: T, gain: float = 1.0, *, seed: Any = None, layout: Any = "torch",
                    global_shape: Any = None, offset: Any = None) -> T:
    """Glorot/Xavier uniform: U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).

    Same values as ``uniform_(t, -bound, bound, seed=...)``. Raises ``ValueError`` for fewer
    than 2 dimensions. See the module docstring for ``seed``, ``layout`` and sharding.
    """
    t = as_target(tensor)
    gain = _finite_gain(gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fi + fo)) if fi + fo else 0.0
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


def xavier_normal_(tensor: T, gain: float = 1.0, *, seed: Any = None, layout: Any = "torch",
                   global_shape: Any = None, offset: Any = None) -> T:
    """Glorot/Xavier normal (untruncated, as torch): N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    t = as_target(tensor)
    gain = _finite_gain(gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    std = gain * math.sqrt(2.0 / float(fi + fo)) if fi + fo else 0.0
    _fill(t, _NORMAL, 0.0, abs(std), 0.0, 0.0, seed, gst, gbase)
    return tensor


_EMPTY_WARNING = "Initializing zero-element tensors is a no-op"  # torch's words, for kaiming_*


def _kaiming_std(t: Target, a: Any, mode: Any, nonlinearity: Any, layout: Any, global_shape: Any,
                 offset: Any, seed: Any) -> tuple[float, list[int], int] | None:
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


def kaiming_uniform_(tensor: T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     seed: Any = None, layout: Any = "torch", global_shape: Any = None, offset: Any = None) -> T:
    """He/Kaiming uniform: U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan_mode), with
    gain = calculate_gain(nonlinearity, a). torch's defaults (a=0, fan_in, leaky_relu -> sqrt 2).

    ``mode="fan_avg"`` and ``"fan_geo_avg"`` are **initlab extensions**: torch accepts only
    ``fan_in``/``fan_out`` (and raises for the others). A zero-element tensor is left as it is
    with torch's ``UserWarning("Initializing zero-element tensors is a no-op")``, for any number
    of dimensions (as torch).

    Raises
    ------
    ValueError
        Unknown mode (``fan_in``, ``fan_out``, ``fan_avg``, ``fan_geo_avg``; case-insensitive as
        torch) or nonlinearity, fewer than 2 dimensions.
    """
    t = as_target(tensor)
    r = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset, seed)
    if r is None:
        return tensor
    std, gst, gbase = r
    bound = math.sqrt(3.0) * std
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


def kaiming_normal_(tensor: T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    seed: Any = None, layout: Any = "torch", global_shape: Any = None, offset: Any = None) -> T:
    """He/Kaiming normal (untruncated, as torch): N(0, std**2), std = gain / sqrt(fan_mode).

    Modes, zero-element tensors and errors as :func:`kaiming_uniform_` (``fan_avg`` and
    ``fan_geo_avg`` are initlab extensions; torch raises for them).
    """
    t = as_target(tensor)
    r = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset, seed)
    if r is None:
        return tensor
    std, gst, gbase = r
    _fill(t, _NORMAL, 0.0, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")


def variance_scaling_(tensor: T, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                      *, seed: Any = None, layout: Any = "torch", global_shape: Any = None,
                      offset: Any = None) -> T:
    """Keras/JAX variance scaling: variance = scale / n, n the fan of ``mode``.

    .. warning::
       ``distribution="normal"`` follows **Keras**, where it is an alias of
       ``"truncated_normal"``. In **JAX** (``jax.nn.initializers.variance_scaling``) ``"normal"``
       means the *untruncated* normal: code ported from JAX must pass
       ``"untruncated_normal"``, also with ``layout="jax"`` (the layout changes only the fans).

    ``truncated_normal`` (alias ``normal``, as Keras): N(0, s**2) truncated to ±2s with
    s = sqrt(variance) / 0.87962566103423978, so the post-truncation std is exactly
    sqrt(variance). ``untruncated_normal``: N(0, variance). ``uniform``: U(±sqrt(3 variance)).
    The fan is clamped to at least 1 (as Keras). Default layout is ``"torch"``; pass
    ``layout="keras"`` for (*k, in, out) kernels.

    Raises
    ------
    ValueError
        ``scale <= 0`` or non-finite, unknown mode (case-sensitive, as Keras) or distribution.
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


def lecun_uniform_(tensor: T, *, seed: Any = None, layout: Any = "torch", global_shape: Any = None,
                   offset: Any = None) -> T:
    """LeCun uniform: U(±sqrt(3 / fan_in)) (variance scaling, scale 1, fan_in, uniform)."""
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", seed=seed, layout=layout,
                             global_shape=global_shape, offset=offset)


def lecun_normal_(tensor: T, *, seed: Any = None, layout: Any = "torch", global_shape: Any = None,
                  offset: Any = None) -> T:
    """LeCun normal as Keras/JAX/Flax: truncated at ±2σ with the std corrected so Var = 1/fan_in."""
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", seed=seed, layout=layout,
                             global_shape=global_shape, offset=offset)


def sparse_(tensor: T, sparsity: float, std: float = 0.01, *, seed: Any = None, global_shape: Any = None,
            offset: Any = None) -> T:
    """Martens' sparse init for a 2-D (rows, cols) tensor: N(0, std**2), then in every column
    ``ceil(sparsity * rows)`` entries set to zero.

    Unlike torch, the zero mask is seeded too: each column zeroes the rows with the smallest
    Philox uniforms of a mask stream derived from the call's (the call's stream with its top bit
    set; for streams >= 2**63, which already have it, the same stream under a key derived from
    the seed), so one seed fixes both the values and the mask. With ``global_shape``/``offset``
    the block gets exactly its part of the global fill, mask included (``rows`` is then the
    global number of rows; a block of few rows still ranks whole global columns, so it costs
    ``global rows x block cols`` float64 scratch).

    Raises
    ------
    ValueError
        Not 2-D, ``sparsity`` outside [0, 1], negative or non-finite std, bad shard.

    Notes
    -----
    The mask is drawn before any value is written; if the value fill is interrupted (Ctrl-C) the
    mask is still applied before ``KeyboardInterrupt`` propagates.
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
        idx = np.argsort(keys, axis=0, kind="stable")[:nz]
        del keys
        inside = (idx >= row0) & (idx < row0 + rows)
        zr = idx[inside] - row0
        zc = np.nonzero(inside)[1]
    try:
        _core.fill(t.array, t.code, _NORMAL, 0.0, std, 0.0, 0.0, key, stream, gst, gbase, get_num_threads(),
                   _isa_code())
    finally:
        if zr is not None:
            t.array[zr, zc] = 0
        mark_written(t)
    return tensor


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


def zero_init_(tensor: T, *, constant: str = "code") -> T:
    """ZerO initialization (Zhao, Schäfer, Anandkumar 2021): deterministic, Hadamard-based.

    For W of shape (out, in) (torch layout): out <= in gives the partial identity
    eye(out, in); out > in gives c * I* H_m I* with m = ceil(log2 out) and H_m the 2^m x 2^m
    Sylvester Hadamard matrix. ``constant="code"`` (default) uses c = 2^(-m/2), as the authors'
    released notebook (H_m / sqrt(2^m) is orthonormal); ``constant="paper"`` uses the paper's
    c = 2^(-(m-1)/2). For a 3/4/5-D conv kernel (out, in, *k) the matrix sits at the centre tap
    (k - 1) // 2 and every other tap is zero.

    I* H_m I* is the top-left out x in block of H_m, whose entries are (-1)^popcount(i & j):
    it is written in row chunks, so time and scratch memory are O(out * in), never O(4^m).

    Raises
    ------
    ValueError
        Fewer than 2 dimensions or an unknown ``constant``.
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
