"""Keras 3 initializers computed by initlab: one seed, the same weights on every backend.

Each class is a ``keras.initializers.Initializer`` (call with ``shape`` and ``dtype``;
``get_config``/``from_config``; registered as ``"initlab>Name"`` so saved models load back) with
Keras's semantics for its name, computed by initlab's NumPy fill in ``layout="keras"``
(``(*kernel, in, out)``; Keras's fans) and handed to the backend as a tensor.

Determinism contract: for an int ``seed``, ``Init(seed=s)(shape, dtype)`` equals the NumPy
fill with ``seed=s`` bit for bit, on every Keras backend (Keras's own initializers give
different numbers per backend), and every call returns the same values (stateless, as
Keras's int seeds). ``seed=None`` draws a seed from Python's ``random`` at construction, as
Keras does: one instance always returns the same values, ``keras.utils.set_random_seed`` makes
it reproducible, and ``from_config`` of an unseeded initializer draws a new one.

==================  ======================================================================
Keras name          initlab fill (``layout="keras"``)
==================  ======================================================================
RandomUniform       ``uniform_(t, minval, maxval)``
RandomNormal        ``normal_(t, mean, stddev)``
TruncatedNormal     ``trunc_normal_(t, mean, stddev, mean - 2 stddev, mean + 2 stddev)``
VarianceScaling     ``variance_scaling_(t, scale, mode, distribution)`` (truncated: 0.8796 correction)
GlorotUniform/Normal ``variance_scaling_(t, 1, "fan_avg", "uniform" / "truncated_normal")``
HeUniform/Normal    ``variance_scaling_(t, 2, "fan_in", "uniform" / "truncated_normal")``
LecunUniform/Normal ``variance_scaling_(t, 1, "fan_in", "uniform" / "truncated_normal")``
Orthogonal          ``orthogonal_(t, gain, layout="keras")`` (leading dims flattened)
==================  ======================================================================

Shapes of rank 0 and 1 take Keras's fans ((1, 1) and (n, n)). Requires Keras 3 with a working
backend (``KERAS_BACKEND=jax``, ``numpy``, ``torch`` or ``tensorflow``).
"""

from __future__ import annotations

import math
import numbers
import random
from typing import Any

import numpy as np

try:
    import keras
except ImportError as e:  # pragma: no cover - exercised only without keras
    raise ImportError(
        "initlab.keras needs Keras 3 and a backend; install it with `pip install initlab[keras]` and set "
        "KERAS_BACKEND (jax, numpy, torch or tensorflow)"
    ) from e

from . import init as _init
from .orthogonal import orthogonal_

__all__ = [
    "RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal",
    "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal",
]

_FLOATS = ("float16", "bfloat16", "float32", "float64")
_register = keras.saving.register_keras_serializable(package="initlab")


def _numpy_dtype(dtype: Any) -> Any:
    name = keras.backend.standardize_dtype(dtype if dtype is not None else keras.backend.floatx())
    if name not in _FLOATS:
        raise ValueError(f"initlab.keras initializers fill floating-point tensors ({', '.join(_FLOATS)}), got dtype={name}")
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def _shape(shape: Any) -> tuple[int, ...]:
    out = tuple(shape)
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0]
    if bad:
        raise ValueError(f"shape must hold non-negative ints, got {shape!r} (bad entries: {bad})")
    return tuple(int(s) for s in out)


def _scalar(value: Any) -> Any:
    """A 0-d array parameter (``np.array(0.1)``, a 0-d backend tensor) as the Python number it
    holds, as Keras accepts it; anything else unchanged (and checked by the caller)."""
    if isinstance(value, numbers.Number) or getattr(value, "shape", None) is None or tuple(value.shape) != ():
        return value
    try:
        return value.item()
    except Exception as e:  # a symbolic tensor: the parameter must be concrete
        raise TypeError(f"an initlab.keras parameter must be a concrete number, got {type(value).__name__}") from e


def _check_axes(name: str, axes: Any) -> list[int] | None:
    if axes is None:
        return None
    items = [axes] if isinstance(axes, numbers.Integral) else axes
    try:
        out = list(items)
    except TypeError:
        raise ValueError(f"`{name}` must be None or a list of ints, got {axes!r}") from None
    if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in out):
        raise ValueError(f"`{name}` must be None or a list of ints, got {axes!r}")
    return [int(a) for a in out]


def _axes_fans(shape: tuple[int, ...], input_axes: list[int], output_axes: list[int]) -> tuple[int, int]:
    # Keras's compute_fans when both axis lists are given: the product of those axes' sizes.
    nd = len(shape)
    bad = [a for a in input_axes + output_axes if not -nd <= a < nd]
    if bad:
        raise ValueError(f"input_axes={input_axes} / output_axes={output_axes}: axes {bad} are not axes of a tensor "
                         f"of shape {shape}")
    return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)


class _InitlabInitializer(keras.initializers.Initializer):
    """Shared seed handling and the NumPy-to-backend hand-off."""

    def __init__(self, seed: int | None = None) -> None:
        self._init_seed = seed
        if seed is None:
            # As Keras: a seed fixed at construction, from Python's `random` (set_random_seed applies).
            seed = random.randint(1, 10**9)
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**64:
            raise ValueError(
                f"`seed` argument of an initlab.keras initializer should be an int in [0, 2**64) or None. "
                f"Received: seed={seed!r}"
            )
        self.seed = int(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:  # pragma: no cover - every subclass overrides
        """Fill the NumPy array ``out`` in place with this initializer's values and return it."""
        raise NotImplementedError

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        dt = _numpy_dtype(dtype)
        values = self.fill(np.empty(_shape(shape), dt))
        return keras.ops.convert_to_tensor(values, dtype=keras.backend.standardize_dtype(dtype or keras.backend.floatx()))

    def numpy(self, shape: Any, dtype: Any = "float32") -> np.ndarray:
        """The values as a NumPy array (what ``__call__`` converts to a backend tensor)."""
        return self.fill(np.empty(_shape(shape), _numpy_dtype(dtype)))

    def get_config(self) -> dict:
        return {"seed": self._init_seed}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if not (k in ("input_axes", "output_axes") and v is None))
        return f"initlab.keras.{type(self).__name__}({args})"


@_register
class RandomUniform(_InitlabInitializer):
    """U[minval, maxval) as Keras's ``RandomUniform`` (defaults ±0.05); initlab's ``uniform_``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        minval, maxval = _scalar(minval), _scalar(maxval)
        _init._check_params(_init._UNIFORM, _init._real("minval", minval), _init._real("maxval", maxval))
        self.minval, self.maxval = minval, maxval
        super().__init__(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:
        return _init.uniform_(out, self.minval, self.maxval, seed=self.seed)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


@_register
class RandomNormal(_InitlabInitializer):
    """N(mean, stddev**2) as Keras's ``RandomNormal`` (defaults 0, 0.05); initlab's ``normal_``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        mean, stddev = _scalar(mean), _scalar(stddev)
        _init._check_params(_init._NORMAL, _init._real("mean", mean), _init._real("stddev", stddev))
        self.mean, self.stddev = mean, stddev
        super().__init__(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:
        return _init.normal_(out, self.mean, self.stddev, seed=self.seed)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


@_register
class TruncatedNormal(_InitlabInitializer):
    """N(mean, stddev**2) truncated to mean ± 2 stddev, no variance correction (Keras's
    ``TruncatedNormal``, defaults 0, 0.05); initlab's exact inverse-CDF ``trunc_normal_``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        mean, stddev = _scalar(mean), _scalar(stddev)
        m, s = _init._real("mean", mean), _init._real("stddev", stddev)
        _init._check_params(_init._TRUNC, m, s, m - 2 * s, m + 2 * s)
        self.mean, self.stddev = mean, stddev
        super().__init__(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:
        m, s = float(self.mean), float(self.stddev)
        return _init.trunc_normal_(out, m, s, m - 2 * s, m + 2 * s, seed=self.seed)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


def _keras_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras's compute_fans for the ranks initlab's named layouts refuse.
    if len(shape) == 0:
        return 1, 1
    return shape[0], shape[0]


@_register
class VarianceScaling(_InitlabInitializer):
    """Keras's ``VarianceScaling``: variance = scale / max(1, n), n the fan of ``mode``
    (``fan_in``, ``fan_out``, ``fan_avg``) in Keras's ``(*kernel, in, out)`` layout;
    ``distribution`` ``truncated_normal`` (±2σ with the 0.8796 correction so the std is exact;
    ``normal`` is an alias), ``untruncated_normal`` or ``uniform``. initlab's ``variance_scaling_``
    with ``layout="keras"``.

    ``input_axes`` and ``output_axes`` (lists of axes, as Keras 3, e.g. for ``EinsumDense`` and
    ``MultiHeadAttention`` kernels): when **both** are given, fan_in is the product of the sizes
    of ``input_axes`` and fan_out that of ``output_axes``; otherwise they are ignored and the
    fans are Keras's defaults (as Keras). ``get_config`` keeps them.
    """

    def __init__(self, scale: float = 1.0, mode: str = "fan_in", distribution: str = "truncated_normal",
                 seed: int | None = None, input_axes: Any = None, output_axes: Any = None) -> None:
        scale = _scalar(scale)
        # Validate now (as Keras), on an empty 2-D probe.
        _init.variance_scaling_(np.empty((0, 0), np.float32), scale, mode, distribution, seed=0, layout="keras")
        self.scale, self.mode, self.distribution = scale, mode, distribution.lower()
        self.input_axes = _check_axes("input_axes", input_axes)
        self.output_axes = _check_axes("output_axes", output_axes)
        super().__init__(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:
        axes = self.input_axes is not None and self.output_axes is not None
        if out.ndim >= 2 and not axes:
            return _init.variance_scaling_(out, self.scale, self.mode, self.distribution, seed=self.seed,
                                           layout="keras")
        fi, fo = _axes_fans(out.shape, self.input_axes, self.output_axes) if axes else _keras_fans(out.shape)
        fan = {"fan_in": fi, "fan_out": fo, "fan_avg": (fi + fo) / 2.0, "fan_geo_avg": math.sqrt(fi * fo)}[self.mode]
        var = float(self.scale) / max(1.0, float(fan))
        # The same samplers and parameters variance_scaling_ uses, so the same bits.
        if self.distribution in ("truncated_normal", "normal"):
            s = math.sqrt(var) / _init.TRUNC_STD_2SIGMA
            return _init.trunc_normal_(out, 0.0, s, -2.0 * s, 2.0 * s, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return _init.normal_(out, 0.0, math.sqrt(var), seed=self.seed)
        bound = math.sqrt(3.0 * var)
        return _init.uniform_(out, -bound, bound, seed=self.seed)

    def get_config(self) -> dict:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, **super().get_config(),
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _named(name: str, scale: float, mode: str, distribution: str, doc: str) -> type:
    def __init__(self: Any, seed: int | None = None, input_axes: Any = None, output_axes: Any = None) -> None:
        VarianceScaling.__init__(self, scale, mode, distribution, seed=seed, input_axes=input_axes,
                                 output_axes=output_axes)

    def get_config(self: Any) -> dict:
        return {**_InitlabInitializer.get_config(self), "input_axes": self.input_axes,
                "output_axes": self.output_axes}

    doc += " ``input_axes``/``output_axes`` as :class:`VarianceScaling`."

    cls = type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config, "__doc__": doc,
                                          "__module__": __name__})
    return _register(cls)


GlorotUniform = _named("GlorotUniform", 1.0, "fan_avg", "uniform",
                       "Glorot uniform as Keras: U(±sqrt(6 / (fan_in + fan_out))).")
GlorotNormal = _named("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                      "Glorot normal as Keras: truncated at ±2σ, std sqrt(2 / (fan_in + fan_out)) after truncation.")
HeUniform = _named("HeUniform", 2.0, "fan_in", "uniform", "He uniform as Keras: U(±sqrt(6 / fan_in)).")
HeNormal = _named("HeNormal", 2.0, "fan_in", "truncated_normal",
                  "He normal as Keras: truncated at ±2σ, std sqrt(2 / fan_in) after truncation.")
LecunUniform = _named("LecunUniform", 1.0, "fan_in", "uniform", "LeCun uniform as Keras: U(±sqrt(3 / fan_in)).")
LecunNormal = _named("LecunNormal", 1.0, "fan_in", "truncated_normal",
                     "LeCun normal as Keras: truncated at ±2σ, std sqrt(1 / fan_in) after truncation.")


@_register
class Orthogonal(_InitlabInitializer):
    """Keras's ``Orthogonal(gain=1.0)``: rows = the leading dims flattened, columns = the last
    dim; a Haar (semi-)orthogonal matrix times ``gain``. initlab's Householder ``orthogonal_``
    with ``layout="keras"`` (float16/bfloat16 work too).

    Raises ``ValueError`` for a shape of rank < 2 (as Keras).
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        gain = _scalar(gain)
        _init._real("gain", gain)
        self.gain = gain
        super().__init__(seed)

    def fill(self, out: np.ndarray) -> np.ndarray:
        if out.ndim < 2:
            raise ValueError(f"The tensor to initialize must be at least two-dimensional. Received: shape={out.shape} "
                             f"of rank {out.ndim}.")
        return orthogonal_(out, self.gain, seed=self.seed, layout="keras")

    def get_config(self) -> dict:
        return {"gain": self.gain, **super().get_config()}
