"""One-pass summary statistics of arrays and tensors, computed in initlab's C++ core.

``initlab.stats(a)`` reads the memory of ``a`` in place (NumPy arrays of any layout, read-only
ones included, and torch CPU tensors, zero-copy), accumulates in float64 and returns a
:class:`Stats` whose figures are attributes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._buffers import as_source as _as_input
from ._simd import _isa_code
from ._threads import get_num_threads

__all__ = ["stats", "Stats"]

# Below this many elements a second thread costs more than it saves.
_SERIAL_BELOW = 1 << 16

FIGURES = (
    "count",
    "mean",
    "var",
    "std",
    "min",
    "max",
    "abs_max",
    "rms",
    "zero_fraction",
    "nonfinite_count",
)


class Stats:
    """Summary statistics of an array, or of each slice of it.

    Attributes
    ----------
    count : int or ndarray of int64
        Number of elements (per slice).
    mean, var, std : float or ndarray
        Mean, population variance (ddof 0) and standard deviation of the finite elements.
    min, max, abs_max : float or ndarray
        Smallest, largest and largest absolute finite value.
    rms : float or ndarray
        Root mean square of the finite elements, ``sqrt(var + mean**2)``.
    zero_fraction : float or ndarray
        Fraction of all elements equal to zero (``+0.0`` or ``-0.0``).
    nonfinite_count : int or ndarray of int64
        Number of NaN and ±inf elements.
    shape : tuple of int
        Shape of every figure: ``()`` without ``axis``, else the shape of the remaining axes.

    Notes
    -----
    Finite data near the float64 limits (e.g. spanning ±1e308) has a finite ``mean``; ``var``,
    ``std`` and ``rms`` are ``inf`` only when the variance itself exceeds float64. Every figure is
    bit-identical for any memory layout of the same values (C, Fortran, strided, reversed), any
    thread count and any SIMD path: elements are summed in logical (C) order.

    Non-finite rule: NaN and ±inf are counted in ``nonfinite_count`` and left out of every
    other figure except ``count`` and ``zero_fraction`` (which are over all elements). They
    never poison the moments silently: check ``nonfinite_count`` (``repr`` shows it). A slice
    without any finite element has NaN for mean, var, std, min, max, abs_max and rms; an empty
    slice has NaN ``zero_fraction`` too.
    """

    __slots__ = ("count", "mean", "var", "std", "min", "max", "abs_max", "rms", "zero_fraction", "nonfinite_count", "shape")
    # Each figure is a Python scalar (no ``axis``) or an ndarray (per slice): typed Any for callers.
    count: Any
    mean: Any
    var: Any
    std: Any
    min: Any
    max: Any
    abs_max: Any
    rms: Any
    zero_fraction: Any
    nonfinite_count: Any
    shape: tuple[int, ...]

    def __init__(self, raw: dict[str, np.ndarray], count: int, shape: tuple[int, ...]) -> None:
        finite = raw["finite"].reshape(shape)
        n = np.maximum(finite, 1).astype(np.float64)
        mean = raw["mean"].reshape(shape)
        var = raw["m2"].reshape(shape) / n
        mn, mx = raw["min"].reshape(shape), raw["max"].reshape(shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            zf = raw["zeros"].reshape(shape) / np.float64(count) if count else np.full(shape, np.nan)
        cnt = np.full(shape, count, dtype=np.int64)
        nonfinite = cnt - finite
        with np.errstate(over="ignore"):  # data near +-1e308: var and rms beyond float64 are inf
            rms = np.sqrt(var + mean * mean)
        figures: dict[str, np.ndarray] = {
            "count": cnt,
            "mean": mean,
            "var": var,
            "std": np.sqrt(var),
            "min": mn,
            "max": mx,
            "abs_max": np.maximum(np.abs(mn), np.abs(mx)),
            "rms": rms,
            "zero_fraction": np.asarray(zf, dtype=np.float64),
            "nonfinite_count": nonfinite,
        }
        self.shape = shape
        for k, v in figures.items():
            if shape == ():
                object.__setattr__(self, k, int(v) if v.dtype.kind == "i" else float(v))
            else:
                object.__setattr__(self, k, v)

    def to_dict(self) -> dict[str, Any]:
        """The figures as a dict (Python scalars without ``axis``, lists of the slices' figures with it)."""
        out: dict[str, Any] = {}
        for k in FIGURES:
            v = getattr(self, k)
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out

    def __repr__(self) -> str:
        if self.shape == ():
            body = ", ".join(
                f"{k}={getattr(self, k)}" if k in ("count", "nonfinite_count") else f"{k}={getattr(self, k):.6g}"
                for k in FIGURES
            )
            return f"Stats({body})"
        return f"Stats(shape={self.shape}, count={int(self.count.flat[0]) if self.count.size else 0}, nonfinite_count={int(self.nonfinite_count.sum())} in all)"


def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"axis must be None, an int or a tuple of ints, got {type(axis).__name__}") from None
    out = []
    for ax in axes:
        if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
            raise TypeError(f"axis must be None, an int or a tuple of ints, got element {ax!r}")
        if not -ndim <= ax < ndim:
            raise ValueError(f"axis {int(ax)} is out of bounds for an array of dimension {ndim}")
        out.append(int(ax) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {tuple(int(x) for x in axes)}")
    return tuple(out)


def stats(a: Any, axis: int | tuple[int, ...] | None = None) -> Stats:
    """Count, mean, variance, std, min, max, abs max, rms, zero fraction and non-finite count.

    One pass over memory in initlab's C++ core, accumulated in float64.

    Parameters
    ----------
    a : array_like or torch.Tensor
        float16, bfloat16 (``ml_dtypes``), float32 or float64 data in any layout (strided,
        transposed, negative strides, read-only); torch CPU tensors are read zero-copy, tensors on
        other devices through a host copy. Lists
        and Python scalars are converted (integers to float64).
    axis : None, int or tuple of int, optional
        Axes to reduce, with NumPy's meaning: ``None`` reduces everything; otherwise every figure
        has the shape of the remaining axes (e.g. ``axis=(0, 2, 3)`` on NCHW data gives
        per-channel figures).

    Returns
    -------
    Stats
        The figures as attributes (Python scalars without ``axis``, arrays with it).

    Raises
    ------
    TypeError
        For integer/bool/complex/object arrays or tensors, or a malformed ``axis``.
    ValueError
        For an out-of-range or repeated axis, or a tensor that is not on the CPU.

    Notes
    -----
    Determinism: each slice's elements are cut into fixed blocks of 32768 (in a canonical memory
    order), reduced in 16 float64 lanes with shifted sums (no catastrophic cancellation for data far from zero) and
    merged in block order with Chan et al.'s update, so the result is bit-identical for any
    thread count and any SIMD path. The variance is the population variance (ddof 0).
    Non-finite values (NaN, ±inf) are counted in ``nonfinite_count`` and excluded from the
    other figures (see :class:`Stats`). The GIL is released during the computation.

    Examples
    --------
    >>> import numpy as np, initlab
    >>> s = initlab.stats(np.array([1.0, 2.0, np.nan, 0.0]))
    >>> s.count, s.nonfinite_count, s.mean, s.zero_fraction
    (4, 1, 1.0, 0.25)
    """
    arr, code = _as_input(a)
    axes = _normalize_axis(axis, arr.ndim)
    reduce = [1 if k in axes else 0 for k in range(arr.ndim)]
    shape = tuple(n for k, n in enumerate(arr.shape) if not reduce[k])
    count = math.prod(n for k, n in enumerate(arr.shape) if reduce[k])
    n_threads = 1 if arr.size < _SERIAL_BELOW else get_num_threads()
    raw = _core.reduce_stats(arr, code, reduce, n_threads, _isa_code())
    return Stats(raw, count, shape)
