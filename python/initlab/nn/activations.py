"""Elementwise activations with their derivatives."""

from __future__ import annotations

import math

import numpy as np

from .module import Module

__all__ = ["ReLU", "LeakyReLU", "Tanh", "Sigmoid", "SELU", "GELU", "Activation", "get_activation"]

# Klambauer et al. 2017, eq. 14 (the values torch uses).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # NumPy has no erf; math.erf elementwise is exact but slower
        return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype, copy=False)
    return erf(x)


class Activation(Module):
    """An elementwise nonlinearity ``phi`` with derivative ``dphi``.

    Subclasses define ``phi(x)`` and ``dphi(x)`` as static-like methods on NumPy arrays; the
    mean-field analysis (:func:`initlab.analysis.predict`) uses the same two functions.
    """

    #: name understood by :func:`initlab.calculate_gain`
    gain_name = "linear"

    def phi(self, x: np.ndarray) -> np.ndarray:
        """The function."""
        raise NotImplementedError

    def dphi(self, x: np.ndarray) -> np.ndarray:
        """Its derivative."""
        raise NotImplementedError

    def _forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        return self.phi(x)

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self.dphi(self._x)


class ReLU(Activation):
    """``max(x, 0)`` (derivative 0 at 0, as torch)."""

    gain_name = "relu"

    def phi(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0)

    def dphi(self, x: np.ndarray) -> np.ndarray:
        return (x > 0).astype(x.dtype)


class LeakyReLU(Activation):
    """``x`` for ``x > 0``, ``a * x`` otherwise.

    Parameters
    ----------
    negative_slope : float, default 0.01
        The slope ``a`` (torch's default).
    """

    gain_name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def phi(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, x, self.negative_slope * x)

    def dphi(self, x: np.ndarray) -> np.ndarray:
        return np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope:g}"


class Tanh(Activation):
    """``tanh(x)``."""

    gain_name = "tanh"

    def phi(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x)

    def dphi(self, x: np.ndarray) -> np.ndarray:
        return 1.0 - np.tanh(x) ** 2


class Sigmoid(Activation):
    """``1 / (1 + exp(-x))``."""

    gain_name = "sigmoid"

    def phi(self, x: np.ndarray) -> np.ndarray:
        # Written via tanh so that large |x| neither overflows nor warns.
        return 0.5 * (1.0 + np.tanh(0.5 * x))

    def dphi(self, x: np.ndarray) -> np.ndarray:
        s = self.phi(x)
        return s * (1.0 - s)


class SELU(Activation):
    """``scale * (x if x > 0 else alpha * (exp(x) - 1))`` (Klambauer et al. 2017)."""

    gain_name = "selu"

    def phi(self, x: np.ndarray) -> np.ndarray:
        return SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0)))

    def dphi(self, x: np.ndarray) -> np.ndarray:
        return SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0)))


class GELU(Activation):
    """``x * Phi(x)`` (Hendrycks & Gimpel 2016), exact (erf) or with torch's tanh approximation.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    _C = math.sqrt(2.0 / math.pi)

    def phi(self, x: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            return 0.5 * x * (1.0 + np.tanh(self._C * (x + 0.044715 * x**3)))
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))

    def dphi(self, x: np.ndarray) -> np.ndarray:
        if self.approximate == "tanh":
            u = self._C * (x + 0.044715 * x**3)
            t = np.tanh(u)
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * self._C * (1.0 + 3 * 0.044715 * x**2)
        return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


_BY_NAME = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "tanh": Tanh,
    "sigmoid": Sigmoid,
    "selu": SELU,
    "gelu": GELU,
}


def get_activation(name: str | Activation | None) -> Module:
    """An activation module from its name (``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``,
    ``selu``, ``gelu``, ``linear``/``identity``/``None``) or an instance (returned as is)."""
    from .module import Identity

    if isinstance(name, Module):
        return name
    if name is None or name in ("linear", "identity"):
        return Identity()
    key = str(name).lower()
    if key not in _BY_NAME:
        raise ValueError(f"unknown activation {name!r}; accepted: {sorted(_BY_NAME) + ['linear', 'identity']}")
    return _BY_NAME[key]()
