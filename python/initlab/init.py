"""In-place initializers: torch.nn.init's names, positional parameters and defaults, plus
Keras/JAX variance scaling, LeCun, sparse and ZerO.

Every random initializer takes keyword-only ``seed`` (int: stateless; Generator: one stream per
call; None: the default generator) and ``global_shape``/``offset`` (the array is the block of a
larger tensor starting at ``offset``; fans come from the global shape and the values equal that
block of the global fill). Determinism contract: the value at an element is a pure function of
(seed, stream, distribution, parameters, dtype, logical index in the global tensor), so it is
bit-identical for any thread count, memory layout, sharding and SIMD path.

All arguments are validated before anything is written; on error the destination is unchanged.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeVar

import numpy as np

from . import _core
from ._buffers import BF16, Target, as_target, c_strides, store
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


def _real(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    return float(v)


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


def _finish(t: Target) -> None:
    # A torch tensor written through raw memory: bump its version so autograd notices.
    if t.obj is not t.array and hasattr(t.obj, "_version"):
        import torch

        inc = getattr(torch.autograd.graph, "increment_version", None)
        if inc is not None:
            inc(t.obj)


def _fill(t: Target, dist: int, p0: float, p1: float, lo: float, hi: float, seed: Any,
          gst: list[int], gbase: int) -> None:
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return
    _core.fill(t.array, t.code, dist, p0, p1, lo, hi, key, stream, gst, gbase, get_num_threads(), _isa_code())
    _finish(t)


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

    Values are ``a + (b - a) * u`` with ``u = (w >> 8) * 2**-24`` (float32/16/bf16) or
    ``(x >> 11) * 2**-53`` (float64), clamped to the largest representable value below ``b``
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
    _check_params(_UNIFORM, a, b, code=t.code)
    _fill(t, _UNIFORM, a, b, 0.0, 0.0, seed, gst, gbase)
    return tensor


def normal_(tensor: T, mean: float = 0.0, std: float = 1.0, *, seed: Any = None, global_shape: Any = None,
            offset: Any = None) -> T:
    """Fill with N(mean, std**2) in place (Box-Muller on Philox words) and return the same object.

    ``std = 0`` fills ``mean``. Raises ``ValueError`` for a negative or non-finite std or mean.
    See :func:`uniform_` for the other parameters and errors.
    """
    t = as_target(tensor)
    mean, std = _real("mean", mean), _real("std", std)
    _, gst, gbase = _block(t, global_shape, offset)
    _check_params(_NORMAL, mean, std, code=t.code)
    _fill(t, _NORMAL, mean, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


def trunc_normal_(tensor: T, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, *,
                  seed: Any = None, global_shape: Any = None, offset: Any = None) -> T:
    """Fill with N(mean, std**2) truncated to the **absolute** interval [a, b] (torch's meaning).

    Exact inverse-CDF sampling with one uniform per element: tails are evaluated in log space,
    so intervals far in a tail (e.g. [5σ, 6σ], [-40σ, -39σ]), very narrow ones and one-sided
    ones (``a=-inf`` or ``b=inf``) are all sampled correctly. No value ever leaves [a, b],
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
    _check_params(_TRUNC, mean, std, a, b, code=t.code)
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
        _core.fill(t.array, t.code, _CONSTANT, v, 0.0, 0.0, 0.0, 0, 0, c_strides(t.shape), 0,
                   get_num_threads(), _isa_code())
        _finish(t)
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
    gain = _real("gain", gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    if t.size == 0:
        return tensor
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fi + fo))
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


def xavier_normal_(tensor: T, gain: float = 1.0, *, seed: Any = None, layout: Any = "torch",
                   global_shape: Any = None, offset: Any = None) -> T:
    """Glorot/Xavier normal (untruncated, as torch): N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    t = as_target(tensor)
    gain = _real("gain", gain)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    if t.size == 0:
        return tensor
    std = gain * math.sqrt(2.0 / float(fi + fo))
    _fill(t, _NORMAL, 0.0, abs(std), 0.0, 0.0, seed, gst, gbase)
    return tensor


def _kaiming_std(t: Target, a: Any, mode: Any, nonlinearity: Any, layout: Any, global_shape: Any,
                 offset: Any) -> tuple[float, list[int], int]:
    m = check_mode(mode, lower=True)
    gain = calculate_gain(nonlinearity, a)
    fi, fo, gst, gbase = _fans(t, layout, global_shape, offset)
    fan = fan_for_mode(fi, fo, m)
    return (gain / math.sqrt(fan) if fan > 0 else 0.0), gst, gbase


def kaiming_uniform_(tensor: T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     seed: Any = None, layout: Any = "torch", global_shape: Any = None, offset: Any = None) -> T:
    """He/Kaiming uniform: U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan_mode), with
    gain = calculate_gain(nonlinearity, a). torch's defaults (a=0, fan_in, leaky_relu -> sqrt 2).

    Raises
    ------
    ValueError
        Unknown mode (``fan_in``, ``fan_out``, ``fan_avg``, ``fan_geo_avg``; case-insensitive as
        torch) or nonlinearity, fewer than 2 dimensions.
    """
    t = as_target(tensor)
    std, gst, gbase = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset)
    if t.size == 0:
        return tensor
    bound = math.sqrt(3.0) * std
    _fill(t, _UNIFORM, -bound, bound, 0.0, 0.0, seed, gst, gbase)
    return tensor


def kaiming_normal_(tensor: T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    seed: Any = None, layout: Any = "torch", global_shape: Any = None, offset: Any = None) -> T:
    """He/Kaiming normal (untruncated, as torch): N(0, std**2), std = gain / sqrt(fan_mode)."""
    t = as_target(tensor)
    std, gst, gbase = _kaiming_std(t, a, mode, nonlinearity, layout, global_shape, offset)
    if t.size == 0:
        return tensor
    _fill(t, _NORMAL, 0.0, std, 0.0, 0.0, seed, gst, gbase)
    return tensor


_DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")


def variance_scaling_(tensor: T, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                      *, seed: Any = None, layout: Any = "torch", global_shape: Any = None,
                      offset: Any = None) -> T:
    """Keras/JAX variance scaling: variance = scale / n, n the fan of ``mode``.

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
    if t.size == 0:
        return tensor
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


def sparse_(tensor: T, sparsity: float, std: float = 0.01, *, seed: Any = None) -> T:
    """Martens' sparse init for a 2-D (rows, cols) tensor: N(0, std**2), then in every column
    ``ceil(sparsity * rows)`` entries set to zero.

    Unlike torch, the zero mask is seeded too: it comes from the same call's stream with its top
    bit set (the rows with the smallest Philox uniforms of each column), so one seed fixes both
    the values and the mask.

    Raises
    ------
    ValueError
        Not 2-D, ``sparsity`` outside [0, 1], negative or non-finite std.
    """
    t = as_target(tensor)
    if t.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    sp, std = _real("sparsity", sparsity), _real("std", std)
    if not 0.0 <= sp <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sp}")
    _check_params(_NORMAL, 0.0, std, code=t.code)
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return tensor
    rows, cols = t.shape
    nz = int(math.ceil(sp * rows))
    gst = c_strides(t.shape)
    nt, isa = get_num_threads(), _isa_code()
    _core.fill(t.array, t.code, _NORMAL, 0.0, std, 0.0, 0.0, key, stream, gst, 0, nt, isa)
    if nz:
        keys = np.empty((rows, cols), np.float64)
        _core.fill(keys, 1, _UNIFORM, 0.0, 1.0, 0.0, 0.0, key, stream | _SPARSE_MASK_STREAM, gst, 0, nt, isa)
        idx = np.argsort(keys, axis=0, kind="stable")[:nz]
        t.array[idx, np.arange(cols)[None, :]] = 0
    _finish(t)
    return tensor


def _hadamard(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def zero_init_(tensor: T, *, constant: str = "code") -> T:
    """ZerO initialization (Zhao, Schäfer, Anandkumar 2021): deterministic, Hadamard-based.

    For W of shape (out, in) (torch layout): out <= in gives the partial identity
    eye(out, in); out > in gives c * I* H_m I* with m = ceil(log2 out) and H_m the 2^m x 2^m
    Sylvester Hadamard matrix. ``constant="code"`` (default) uses c = 2^(-m/2), as the authors'
    released notebook (H_m / sqrt(2^m) is orthonormal); ``constant="paper"`` uses the paper's
    c = 2^(-(m-1)/2). For a 3/4/5-D conv kernel (out, in, *k) the matrix sits at the centre tap
    (k - 1) // 2 and every other tap is zero.

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
    if p_out <= p_in:
        mat = np.eye(p_out, p_in)
    else:
        m = math.ceil(math.log2(p_out))
        c = 2.0 ** (-m / 2.0) if constant == "code" else 2.0 ** (-(m - 1) / 2.0)
        mat = c * (np.eye(p_out, 2**m) @ _hadamard(2**m) @ np.eye(2**m, p_in))
    full = np.zeros(t.shape)
    full[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in t.shape[2:])] = mat
    store(t, full)
    _finish(t)
    return tensor
