"""Fan computation and gains: torch's rules, Keras/JAX layouts, explicit axes.

``layout="torch"`` reads (out, in, *kernel) (fan_in = size(1)*prod(kernel)); ``"keras"`` and
``"jax"`` read (*kernel, in, out); a pair ``(in_axis, out_axis)`` (ints or tuples of ints) names
the axes, every other axis counting as receptive field (JAX's rule). Transposed convolutions
swap roles and grouped convolutions do not divide fan_out by groups, exactly as in torch.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

__all__ = ["compute_fans", "calculate_gain", "fan_for_mode", "MODES"]

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
_LINEAR_GAIN = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")


def _prod(xs: Sequence[int]) -> int:
    p = 1
    for x in xs:
        p *= int(x)
    return p


def _axes(spec: Any, ndim: int, what: str) -> tuple[int, ...]:
    items = spec if isinstance(spec, (tuple, list)) else (spec,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{what} must be an int or a tuple of ints, got {spec!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{what} {a} is out of range for a {ndim}-D shape")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{what} repeats an axis: {spec!r}")
    return tuple(out)


def compute_fans(shape: Sequence[int], *, layout: Any = "torch") -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight shape.

    Parameters
    ----------
    shape : sequence of int
        The full (global) weight shape.
    layout : {"torch", "keras", "jax"} or (in_axis, out_axis)
        ``"torch"``: (out, in, *k). ``"keras"``/``"jax"``: (*k, in, out). An explicit pair of
        axes (each an int or a tuple of ints): fan_in = prod(in axes) * receptive, fan_out =
        prod(out axes) * receptive, receptive = product of the remaining axes. A 0-D shape
        with empty axes, ``compute_fans((), layout=((), ()))``, gives (1, 1) as JAX and Keras.
        The layout changes only the fans: with ``layout="jax"``,
        ``variance_scaling_(..., distribution="normal")`` is still **Keras's truncated
        alias**; JAX's untruncated ``"normal"`` is ``distribution="untruncated_normal"``.

    Raises
    ------
    ValueError
        Fewer than 2 dimensions (with a named layout), an unknown layout, bad or overlapping axes.
    """
    shape = tuple(int(s) for s in shape)
    nd = len(shape)
    if isinstance(layout, str):
        if layout not in ("torch", "keras", "jax"):
            raise ValueError(f"unknown layout {layout!r}; accepted: 'torch', 'keras', 'jax' or (in_axis, out_axis)")
        if nd < 2:
            raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
        if layout == "torch":
            rf = _prod(shape[2:])
            return shape[1] * rf, shape[0] * rf
        rf = _prod(shape[:-2])
        return shape[-2] * rf, shape[-1] * rf
    if not isinstance(layout, (tuple, list)) or len(layout) != 2:
        raise ValueError(f"unknown layout {layout!r}; accepted: 'torch', 'keras', 'jax' or (in_axis, out_axis)")
    # A 0-D shape with empty axes gives (1, 1), as JAX and Keras (empty products).
    ins = _axes(layout[0], nd, "in_axis")
    outs = _axes(layout[1], nd, "out_axis")
    if set(ins) & set(outs):
        raise ValueError(f"in_axis and out_axis overlap: {layout!r}")
    rf = _prod([s for k, s in enumerate(shape) if k not in ins and k not in outs])
    return _prod([shape[k] for k in ins]) * rf, _prod([shape[k] for k in outs]) * rf


def fan_for_mode(fan_in: int, fan_out: int, mode: str) -> float:
    """The fan a mode selects: fan_in, fan_out, (in+out)/2 or sqrt(in*out)."""
    if mode == "fan_in":
        return float(fan_in)
    if mode == "fan_out":
        return float(fan_out)
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    return math.sqrt(float(fan_in) * float(fan_out))


def check_mode(mode: Any, *, lower: bool) -> str:
    """Validate a mode name (torch lower-cases it; Keras/JAX-style functions do not)."""
    if not isinstance(mode, str):
        raise ValueError(f"Mode {mode!r} not supported, please use one of {list(MODES)}")
    m = mode.lower() if lower else mode
    if m not in MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {list(MODES)}")
    return m


def calculate_gain(nonlinearity: str, param: Any = None) -> float:
    """Recommended gain for a nonlinearity: torch's table, exactly.

    linear, conv*, conv_transpose*, sigmoid -> 1; tanh -> 5/3; relu -> sqrt(2);
    leaky_relu -> sqrt(2 / (1 + slope**2)) (slope = 0.01 when ``param`` is None);
    selu -> 3/4. Names are case-sensitive, as in torch.

    Raises
    ------
    ValueError
        ``Unsupported nonlinearity <name>``, or a leaky_relu slope that is not a number.
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        try:
            slope = float(slope)
        except OverflowError:  # an int beyond the float64 range (10**400): a value error, not a crash
            raise ValueError(f"negative_slope {param} not a valid number (beyond the float64 range)") from None
        if math.isnan(slope):
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope * slope))  # a product, not **: huge slopes give 0, not OverflowError
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
