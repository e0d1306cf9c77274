"""JAX/Flax initializers computed by initlab: ``(key, shape, dtype) -> jax.Array``.

The factories mirror ``jax.nn.initializers`` (same names, parameters and defaults, JAX's
semantics and fans) and return functions with JAX's initializer signature, so they plug into
Flax as ``kernel_init=`` (linen and nnx). The values are computed on the host by initlab's
NumPy fill behind :func:`jax.pure_callback` with a declared result shape, so the initializers
are traceable: ``jax.jit``, ``jax.eval_shape`` (what Flax does to evaluate initializers
abstractly) and ``jax.vmap`` (one fill per key) all work.

Determinism contract — the key → (seed, stream) mapping. The key's data
(``jax.random.key_data(key)`` for a typed key, the array itself for a raw ``uint32`` key) is
read as 32-bit words ``w``; initlab's seed is ``w[0] * 2**32 + w[1]`` and its stream is
``w[2] * 2**32 + w[3]`` when the key has four words (``rbg``) and 0 otherwise (``threefry2x32``,
the default). The fill is then exactly initlab's NumPy fill with ``seed=initlab.Generator(seed,
stream=stream)``: a pure function of the key, the same on every device and thread count.
Passing ``seed=`` (an int) to a factory ignores the key: the result equals the NumPy fill with
``seed=`` bit for bit.

Fans follow JAX (``in_axis``, ``out_axis``, ``batch_axis``; receptive field = the other axes,
batch axes excluded); ``*_normal`` variance-scaling initializers are truncated at ±2σ with the
0.8796 correction, as JAX. Requires JAX (``pip install initlab[jax]``).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:  # pragma: no cover - exercised only without jax
    raise ImportError("initlab.jax needs JAX; install it with `pip install initlab[jax]`") from e

from . import init as _init
from .generator import Generator
from .orthogonal import orthogonal_

__all__ = [
    "key_to_seed", "uniform", "normal", "truncated_normal", "variance_scaling", "glorot_uniform", "glorot_normal",
    "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "kaiming_uniform", "kaiming_normal",
    "lecun_uniform", "lecun_normal", "orthogonal",
]

Initializer = Callable[..., jax.Array]
_FLOATS = ("float16", "bfloat16", "float32", "float64")


def key_to_seed(key_data: Any) -> tuple[int, int]:
    """initlab's (seed, stream) for a JAX key's data (host-side; see the module docstring).

    Parameters
    ----------
    key_data : array of uint32
        ``jax.random.key_data(key)`` or a raw ``jax.random.PRNGKey``; 2 words (threefry) or 4 (rbg).
    """
    w = [int(x) for x in np.asarray(key_data, dtype=np.uint32).reshape(-1)]
    if len(w) not in (2, 4):
        raise ValueError(f"a JAX key has 2 (threefry2x32) or 4 (rbg) 32-bit words of data, got {len(w)}")
    return (w[0] << 32) | w[1], ((w[2] << 32) | w[3]) if len(w) == 4 else 0


def _key_data(key: Any) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        data = jax.random.key_data(key)
    elif key.dtype != jnp.uint32:
        raise TypeError(f"expected a JAX PRNG key (jax.random.key or PRNGKey), got an array of dtype {key.dtype}")
    else:
        data = key
    # Checked here, at trace time: inside the host callback it would surface as an internal error.
    if data.ndim != 1 or data.shape[0] not in (2, 4):
        raise ValueError(f"expected one JAX PRNG key: 2 (threefry2x32) or 4 (rbg) 32-bit words of data, got key "
                         f"data of shape {tuple(data.shape)} (vmap over a batch of keys instead of passing them at once)")
    return data


def _scalar(value: Any) -> Any:
    """A 0-d array parameter (``jnp.array(1.0)``, a NumPy 0-d array) as the number it holds, as JAX
    accepts it; anything else unchanged (and checked by the caller)."""
    if isinstance(value, numbers.Number) or getattr(value, "shape", None) != ():
        return value
    try:
        return value.item()
    except Exception as e:  # a tracer under jit: the parameter must be concrete (it is used on the host)
        raise TypeError(f"an initlab.jax parameter must be a concrete number, got {type(value).__name__}") from e


def _np_dtype(dtype: Any) -> np.dtype:
    dt = jax.dtypes.canonicalize_dtype(jnp.dtype(dtype))
    if dt.name not in _FLOATS:
        raise ValueError(f"initlab.jax initializers fill floating-point arrays ({', '.join(_FLOATS)}), got {dt}")
    return np.dtype(dt)


def _shape(shape: Any) -> tuple[int, ...]:
    out = tuple(shape) if not isinstance(shape, numbers.Integral) else (shape,)
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0]
    if bad:
        raise ValueError(f"shape must hold non-negative ints, got {shape!r} (bad entries: {bad})")
    return tuple(int(s) for s in out)


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must be None (use the key) or an int in [0, 2**64), got {seed!r}")
    return int(seed)


def _make(fill: Callable[[np.ndarray, Any], np.ndarray], seed: Any, default_dtype: Any, name: str) -> Initializer:
    """Wrap a host fill ``fill(out, seed_arg)`` as a traceable JAX initializer."""
    fixed = _check_seed(seed)

    def init(key: Any, shape: Any, dtype: Any = default_dtype) -> jax.Array:
        shp, dt = _shape(shape), _np_dtype(dtype)
        fill(np.empty((0,) * len(shp), dt), 0)  # validate now, at trace time, with a clear message
        result = jax.ShapeDtypeStruct(shp, dt)
        if fixed is not None:
            return jax.pure_callback(lambda: fill(np.empty(shp, dt), fixed), result)

        def host(data: np.ndarray) -> np.ndarray:
            k, stream = key_to_seed(data)
            return fill(np.empty(shp, dt), Generator(k, stream=stream))

        return jax.pure_callback(host, result, _key_data(key), vmap_method="sequential")

    init.__name__ = init.__qualname__ = name
    init.__doc__ = f"initlab {name} initializer: ``(key, shape, dtype={jnp.dtype(default_dtype).name}) -> jax.Array``."
    return init


def uniform(scale: float = 1e-2, dtype: Any = jnp.float_, *, seed: int | None = None) -> Initializer:
    """U[0, scale), as ``jax.nn.initializers.uniform``; initlab's ``uniform_(t, 0, scale)``."""
    scale = _scalar(scale)
    _init._check_params(_init._UNIFORM, 0.0, _init._real("scale", scale))
    return _make(lambda a, s: _init.uniform_(a, 0.0, scale, seed=s), seed, dtype, "uniform")


def normal(stddev: float = 1e-2, dtype: Any = jnp.float_, *, seed: int | None = None) -> Initializer:
    """N(0, stddev**2), as ``jax.nn.initializers.normal``; initlab's ``normal_(t, 0, stddev)``."""
    stddev = _scalar(stddev)
    _init._check_params(_init._NORMAL, 0.0, _init._real("stddev", stddev))
    return _make(lambda a, s: _init.normal_(a, 0.0, stddev, seed=s), seed, dtype, "normal")


def truncated_normal(stddev: float = 1e-2, dtype: Any = jnp.float_, lower: float = -2.0, upper: float = 2.0, *,
                     seed: int | None = None) -> Initializer:
    """``stddev`` times a standard normal truncated to [lower, upper] (no variance correction),
    as ``jax.nn.initializers.truncated_normal``; initlab's exact inverse-CDF
    ``trunc_normal_(t, 0, stddev, lower * stddev, upper * stddev)``."""
    sd, lo, hi = (_init._real("stddev", _scalar(stddev)), _init._real("lower", _scalar(lower)),
                  _init._real("upper", _scalar(upper)))
    _init._check_params(_init._TRUNC, 0.0, sd, lo * sd, hi * sd)
    return _make(lambda a, s: _init.trunc_normal_(a, 0.0, sd, lo * sd, hi * sd, seed=s), seed, dtype,
                 "truncated_normal")


def _axes(spec: Any, nd: int, what: str) -> tuple[int, ...]:
    items = spec if isinstance(spec, (tuple, list)) else (spec,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not -nd <= int(a) < nd:
            raise ValueError(f"Can't compute input and output sizes of a {nd}-dimensional weights tensor: "
                             f"{what}={spec!r} is not an axis of it")
        out.append(int(a) % nd)
    return tuple(out)


def _jax_fans(shape: tuple[int, ...], in_axis: Any, out_axis: Any, batch_axis: Any) -> tuple[float, float]:
    nd = len(shape)
    ins, outs, batch = _axes(in_axis, nd, "in_axis"), _axes(out_axis, nd, "out_axis"), _axes(batch_axis, nd,
                                                                                              "batch_axis")
    if set(ins) & set(outs) or (set(ins) | set(outs)) & set(batch):
        raise ValueError(f"in_axis {in_axis!r}, out_axis {out_axis!r} and batch_axis {batch_axis!r} must not overlap")
    rf = math.prod(s for k, s in enumerate(shape) if k not in ins + outs + batch)
    return float(math.prod(shape[k] for k in ins) * rf), float(math.prod(shape[k] for k in outs) * rf)


_MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_DISTS = ("truncated_normal", "normal", "uniform")


def variance_scaling(scale: float, mode: str, distribution: str, in_axis: Any = -2, out_axis: Any = -1,
                     batch_axis: Sequence[int] = (), dtype: Any = jnp.float_, *, seed: int | None = None) -> Initializer:
    """``jax.nn.initializers.variance_scaling``: variance = scale / n, n the fan of ``mode``
    (``fan_in``, ``fan_out``, ``fan_avg``, ``fan_geo_avg``) from JAX's ``in_axis``/``out_axis``/
    ``batch_axis``; ``distribution`` ``truncated_normal`` (±2σ, std divided by 0.8796 so the
    post-truncation std is exact), ``normal`` (untruncated, JAX's meaning) or ``uniform``.

    Same samplers and parameters as ``initlab.variance_scaling_(t, scale, mode, d,
    layout=(in_axis, out_axis))`` (``normal`` = ``"untruncated_normal"``), hence the same bits.

    Raises
    ------
    ValueError
        Non-positive scale, unknown mode or distribution (now); fans of a shape with too few
        axes (at call time, as JAX).
    """
    sc = _init._real("scale", _scalar(scale))
    if not (sc > 0 and math.isfinite(sc)):
        raise ValueError(f"scale must be a positive float, got {scale!r}")
    if mode not in _MODES:
        raise ValueError(f"invalid mode for variance scaling initializer: {mode!r}; accepted: {list(_MODES)}")
    if distribution not in _DISTS:
        raise ValueError(f"invalid distribution for variance scaling initializer: {distribution!r}; "
                         f"accepted: {list(_DISTS)}")

    def fill(a: np.ndarray, s: Any) -> np.ndarray:
        fi, fo = _jax_fans(a.shape, in_axis, out_axis, batch_axis)
        if a.size == 0:
            return a
        n = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2.0, "fan_geo_avg": math.sqrt(fi * fo)}[mode]
        var = sc / n
        if distribution == "truncated_normal":
            std = math.sqrt(var) / _init.TRUNC_STD_2SIGMA
            return _init.trunc_normal_(a, 0.0, std, -2.0 * std, 2.0 * std, seed=s)
        if distribution == "normal":
            return _init.normal_(a, 0.0, math.sqrt(var), seed=s)
        bound = math.sqrt(3.0 * var)
        return _init.uniform_(a, -bound, bound, seed=s)

    return _make(fill, seed, dtype, f"variance_scaling({scale}, {mode!r}, {distribution!r})")


def _named(name: str, scale: float, mode: str, distribution: str) -> Callable[..., Initializer]:
    def factory(in_axis: Any = -2, out_axis: Any = -1, batch_axis: Sequence[int] = (), dtype: Any = jnp.float_, *,
                seed: int | None = None) -> Initializer:
        return variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype, seed=seed)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = (f"``jax.nn.initializers.{name}``: ``variance_scaling({scale}, {mode!r}, {distribution!r})``; "
                       "see :func:`variance_scaling`.")
    return factory


glorot_uniform = xavier_uniform = _named("glorot_uniform", 1.0, "fan_avg", "uniform")
glorot_normal = xavier_normal = _named("glorot_normal", 1.0, "fan_avg", "truncated_normal")
he_uniform = kaiming_uniform = _named("he_uniform", 2.0, "fan_in", "uniform")
he_normal = kaiming_normal = _named("he_normal", 2.0, "fan_in", "truncated_normal")
lecun_uniform = _named("lecun_uniform", 1.0, "fan_in", "uniform")
lecun_normal = _named("lecun_normal", 1.0, "fan_in", "truncated_normal")


def orthogonal(scale: float = 1.0, column_axis: int = -1, dtype: Any = jnp.float_, *,
               seed: int | None = None) -> Initializer:
    """``jax.nn.initializers.orthogonal``: the shape read as a matrix whose columns are
    ``column_axis`` and whose rows are every other axis flattened; a Haar (semi-)orthogonal
    matrix times ``scale``. initlab's Householder ``orthogonal_(t, scale, layout="jax")`` on the
    array with ``column_axis`` moved last, then moved back.

    Raises ``ValueError`` for a non-finite ``scale`` (now) and a shape of rank < 2 (at call
    time, as JAX).
    """
    sc = _init._real("scale", _scalar(scale))
    if not math.isfinite(sc):  # now: inside the host callback it would surface as an internal error
        raise ValueError(f"scale must be finite, got {sc}")

    def fill(a: np.ndarray, s: Any) -> np.ndarray:
        if a.ndim < 2:
            raise ValueError(f"orthogonal initializer requires at least a 2D shape, got {a.shape}")
        col = int(column_axis) % a.ndim
        moved = np.empty(a.shape[:col] + a.shape[col + 1:] + (a.shape[col],), a.dtype)
        if a.size == 0:
            return a
        orthogonal_(moved, sc, seed=s, layout="jax")
        a[...] = np.moveaxis(moved, -1, col)
        return a

    return _make(fill, seed, dtype, "orthogonal")
