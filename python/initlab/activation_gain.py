"""Initialization for any activation: the variance-preserving gain by quadrature.

For a layer ``y = W phi(x)`` with ``W ~ (0, gain^2 / fan_in)`` and pre-activations
``x ~ N(0, q)``, mean-field theory (Poole et al. 2016) gives the next layer's variance map
``q <- gain^2 * E_{z~N(0,q)}[phi(z)^2]`` (zero bias). :func:`gain` returns the gain that makes
``q = 1`` a fixed point of that map::

    gain(phi) = 1 / sqrt(E[phi(z)^2]),   z ~ N(0, 1),

computed by Gaussian quadrature, for named activations and for any NumPy-vectorized
callable. :func:`register_activation` adds names.

Where :func:`gain` differs from :func:`initlab.calculate_gain`
---------------------------------------------------------------
``calculate_gain`` is torch's table, kept bit-for-bit for drop-in compatibility. Some of its
entries are conventions, not fixed points of the variance map:

======================  ====================  ======================================
activation              ``calculate_gain``    ``gain`` (fixed point of the map)
======================  ====================  ======================================
relu                    sqrt(2)               sqrt(2) (the same, exactly)
leaky_relu (slope s)    sqrt(2 / (1 + s^2))   sqrt(2 / (1 + s^2)) (the same)
linear / identity       1                     1 (the same)
tanh                    5/3 (a convention)    1.59254...
selu                    3/4 (a convention)    1.0 (SELU is self-normalizing: E[selu(z)^2] = 1)
sigmoid                 1                     1.84623... (the mean of sigmoid is 1/2: the
                                              gain keeps the *second moment*, not the variance)
======================  ====================  ======================================

Activations with a non-zero mean (sigmoid, softplus, ELU, GELU, ...) are covered the same way:
the map propagates the second moment ``E[phi^2]``, which is what the next layer's
pre-activation variance depends on when its weights have mean zero.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["gain", "register_activation", "activation_function", "resolve_activation", "expect", "quadrature_nodes",
           "registered_activations"]

# The expectation is a sum of Gauss-Legendre panels over [-12 sd, 12 sd] (the normal mass beyond
# is below 1e-32), split at 0, +-3 sd, +-6 sd and at the activation's kinks. Plain Gauss-Hermite
# converges slowly across a kink away from the centre (hardtanh: 2e-3 relative error with 160
# nodes; SELU 2e-5): splitting there makes every piece smooth, so each panel is exact to rounding.
_PANEL_NODES = 24
_HALF_WIDTH = 12.0
_PANEL_EDGES = (-6.0, -3.0, 0.0, 3.0, 6.0)

ActivationFn = Callable[[np.ndarray], np.ndarray]


@functools.lru_cache(maxsize=1)
def _legendre() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(_PANEL_NODES)


@functools.lru_cache(maxsize=256)
def _standard_nodes(kinks: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    # Nodes and weights for N(0, 1); ``kinks`` are in standard units.
    edge_set = {-_HALF_WIDTH, _HALF_WIDTH, *_PANEL_EDGES}
    edge_set.update(k for k in kinks if -_HALF_WIDTH < k < _HALF_WIDTH)
    edges = sorted(edge_set)
    t, w = _legendre()
    xs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        if b - a <= 1e-12:  # a kink on a panel edge: nothing between
            continue
        x = 0.5 * (b - a) * t + 0.5 * (a + b)
        xs.append(x)
        ws.append(0.5 * (b - a) * w * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi))
    return np.concatenate(xs), np.concatenate(ws)


def quadrature_nodes(q: float = 1.0, kinks: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``x`` and weights ``w`` with ``sum(w * f(x)) ~= E[f(x)]`` for ``x ~ N(0, q)``.

    Gauss-Legendre panels (24 nodes each) over ``[-12 sqrt(q), 12 sqrt(q)]`` split at 0,
    ``+-3 sqrt(q)``, ``+-6 sqrt(q)`` and at ``kinks`` (points where the integrand is not smooth).
    No node lies on a split point. Deterministic.
    """
    q = float(q)
    if not (q > 0.0 and math.isfinite(q)):
        raise ValueError(f"variance q must be finite and > 0, got {q!r}")
    sd = math.sqrt(q)
    z, w = _standard_nodes(tuple(sorted(round(float(k) / sd, 12) for k in kinks)))
    return sd * z, w


def expect(fn: ActivationFn, q: float = 1.0, kinks: tuple[float, ...] = ()) -> float:
    """``E[fn(z)]`` for ``z ~ N(0, q)`` by piecewise Gauss-Legendre quadrature.

    Parameters
    ----------
    fn : callable
        NumPy-vectorized: takes a float64 array and returns an array of the same shape.
    q : float, default 1.0
        Variance (``q = 0`` gives ``fn(0)``).
    kinks : tuple of float
        Points where ``fn`` is not smooth (split points of the panels).

    Returns
    -------
    float
    """
    if float(q) <= 0.0:
        return float(np.asarray(fn(np.zeros(1)), dtype=np.float64)[0])
    x, w = quadrature_nodes(q, kinks)
    return float(np.dot(w, np.asarray(fn(x), dtype=np.float64)))


# --- the named activations ----------------------------------------------------------------------

def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # NumPy has no erf; math.erf elementwise is exact, and 160 nodes are few
        return np.vectorize(math.erf, otypes=[np.float64])(x)
    return erf(x)


def _softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    bx = beta * x
    # torch's softplus: linear above the threshold (also avoids overflow in exp)
    return np.where(bx > threshold, x, np.log1p(np.exp(np.minimum(bx, threshold))) / beta)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

def _k0(**_: Any) -> tuple[float, ...]:
    return (0.0,)


def _none(**_: Any) -> tuple[float, ...]:
    return ()


# name -> (factory taking the keyword parameters, accepted parameter names, kinks from the parameters)
_BUILTIN: dict[str, tuple[Callable[..., ActivationFn], tuple[str, ...], Callable[..., tuple[float, ...]]]] = {
    "linear": (lambda: (lambda x: x), (), _none),
    "identity": (lambda: (lambda x: x), (), _none),
    "relu": (lambda: (lambda x: np.maximum(x, 0.0)), (), _k0),
    "relu6": (lambda: (lambda x: np.clip(x, 0.0, 6.0)), (), lambda: (0.0, 6.0)),
    "leaky_relu": (lambda negative_slope=0.01: (lambda x: np.where(x >= 0, x, negative_slope * x)),
                   ("negative_slope",), _k0),
    "tanh": (lambda: np.tanh, (), _none),
    "sigmoid": (lambda: _sigmoid, (), _none),
    "hardtanh": (lambda min_val=-1.0, max_val=1.0: (lambda x: np.clip(x, min_val, max_val)), ("min_val", "max_val"),
                 lambda min_val=-1.0, max_val=1.0: (float(min_val), float(max_val))),
    "hardsigmoid": (lambda: (lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0)), (), lambda: (-3.0, 3.0)),
    "hardswish": (lambda: (lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)), (), lambda: (-3.0, 3.0)),
    "softsign": (lambda: (lambda x: x / (1.0 + np.abs(x))), (), _k0),
    "elu": (lambda alpha=1.0: (lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))), ("alpha",), _k0),
    "celu": (lambda alpha=1.0: (lambda x: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))),
             ("alpha",), _k0),
    "selu": (lambda: (lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))), (), _k0),
    "gelu": (lambda approximate="none": (
        (lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))) if approximate == "none"
        else (lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))))
    ), ("approximate",), _none),
    "silu": (lambda: (lambda x: x * _sigmoid(x)), (), _none),
    "swish": (lambda beta=1.0: (lambda x: x * _sigmoid(beta * x)), ("beta",), _none),
    "mish": (lambda: (lambda x: x * np.tanh(_softplus(x))), (), _none),
    "softplus": (lambda beta=1.0, threshold=20.0: (lambda x: _softplus(x, beta, threshold)), ("beta", "threshold"),
                 lambda beta=1.0, threshold=20.0: (threshold / beta,) if beta else ()),
    "sin": (lambda: np.sin, (), _none),
}
# torch's names for linear layers (calculate_gain's table)
for _n in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"):
    _BUILTIN[_n] = _BUILTIN["linear"]

_registry: dict[str, tuple[ActivationFn, tuple[float, ...]]] = {}
_lock = threading.Lock()


def registered_activations() -> list[str]:
    """Every name :func:`gain` accepts: built-in and registered, sorted."""
    with _lock:
        return sorted(set(_BUILTIN) | set(_registry))


def _validate_fn(name: str, fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"activation {name!r} must be a callable on NumPy arrays, got {type(fn).__name__}")
    x, _ = quadrature_nodes(1.0)
    try:
        y = np.asarray(fn(x.copy()), dtype=np.float64)
    except Exception as e:  # the function is the user's: say what went wrong with it
        raise ValueError(f"activation {name!r} failed on a float64 array of shape {x.shape}: {e!r}") from e
    if y.shape != x.shape:
        raise ValueError(f"activation {name!r} must be elementwise (NumPy-vectorized): input shape {x.shape}, "
                         f"output shape {y.shape}")
    bad = int(np.count_nonzero(~np.isfinite(y)))
    if bad:
        raise ValueError(f"activation {name!r} is not finite at {bad} of the {x.size} quadrature nodes in "
                         f"[{x.min():.3g}, {x.max():.3g}]")


def register_activation(name: str, fn: ActivationFn, *, overwrite: bool = False, kinks: Any = ()) -> None:
    """Register an elementwise activation under ``name`` for :func:`gain` and ``depth_stability``.

    Parameters
    ----------
    name : str
        Looked up case-insensitively. A name already taken (built-in or registered) is an
        error unless ``overwrite=True``; built-in names cannot be replaced.
    fn : callable
        NumPy-vectorized function of a float64 array (checked on the quadrature nodes: same
        shape out, finite values).
    overwrite : bool, default False
        Replace an earlier registration of ``name``.
    kinks : sequence of float, default ()
        Points where ``fn`` is not smooth (e.g. ``(0.0,)`` for a ReLU-like function): the
        quadrature splits there, which makes it exact to rounding instead of ~1e-5.

    Raises
    ------
    TypeError
        ``name`` is not a non-empty string, or ``fn`` is not callable.
    ValueError
        The name is taken, or ``fn`` is not elementwise or not finite on the nodes.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"activation name must be a non-empty string, got {name!r}")
    key = name.strip().lower()
    _validate_fn(name, fn)
    try:
        kk = tuple(float(k) for k in kinks)
    except (TypeError, ValueError):
        raise ValueError(f"kinks must be a sequence of numbers, got {kinks!r}") from None
    if not all(math.isfinite(k) for k in kk):
        raise ValueError(f"kinks must be finite, got {kk}")
    with _lock:
        if key in _BUILTIN:
            raise ValueError(f"{name!r} is a built-in activation and cannot be replaced; pick another name")
        if key in _registry and not overwrite:
            raise ValueError(f"activation {name!r} is already registered; pass overwrite=True to replace it")
        _registry[key] = (fn, kk)


def resolve_activation(activation: str | ActivationFn, **params: Any) -> tuple[ActivationFn, tuple[float, ...]]:
    """The NumPy function for a name (with its parameters) or a callable, and its kinks.

    Returns ``(fn, kinks)``: a callable is returned as is with no kinks; a name gives its
    function and the points where it is not smooth (the quadrature splits there).

    Parameters
    ----------
    activation : str or callable
        A name from :func:`registered_activations` (case-insensitive) or a vectorized function.
    **params
        Parameters of a named activation (``negative_slope`` for leaky_relu, ``alpha`` for
        elu/celu, ``beta``/``threshold`` for softplus, ``beta`` for swish, ``approximate`` for
        gelu, ``min_val``/``max_val`` for hardtanh).

    Raises
    ------
    ValueError
        Unknown name (the message lists the accepted ones), unknown or non-numeric parameters
        (all of them), or parameters given with a callable or a registered function.
    """
    if callable(activation) and not isinstance(activation, str):
        if params:
            raise ValueError(f"parameters {sorted(params)} apply to named activations only; bind them in the callable")
        return activation, ()
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a name or a callable, got {type(activation).__name__}")
    key = activation.strip().lower()
    with _lock:
        reg = _registry.get(key)
    if reg is not None:
        if params:
            raise ValueError(f"registered activation {activation!r} takes no parameters, got {sorted(params)}")
        return reg
    if key not in _BUILTIN:
        raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(registered_activations())} "
                         f"or any NumPy-vectorized callable")
    factory, accepted, kinks = _BUILTIN[key]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"activation {activation!r} does not take {unknown}; it accepts {list(accepted) or 'no parameters'}")
    bad = [f"{k}={v!r}" for k, v in params.items() if k != "approximate"
           and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v))]
    if "approximate" in params and params["approximate"] not in ("none", "tanh"):
        bad.append(f"approximate={params['approximate']!r} (accepted: 'none', 'tanh')")
    if bad:
        raise ValueError(f"invalid parameters for {activation!r}: {', '.join(bad)} (finite numbers expected)")
    return factory(**params), tuple(kinks(**{k: v for k, v in params.items() if k != 'approximate'}))


def activation_function(activation: str | ActivationFn, **params: Any) -> ActivationFn:
    """The NumPy function of :func:`resolve_activation` (without its kinks)."""
    return resolve_activation(activation, **params)[0]


def gain(activation: str | ActivationFn, **params: Any) -> float:
    """The variance-preserving gain of an activation: ``1 / sqrt(E[phi(z)^2])``, ``z ~ N(0, 1)``.

    With weights of variance ``gain^2 / fan_in`` and zero biases, ``q = 1`` is a fixed point of
    the mean-field variance map ``q <- gain^2 * E_{z~N(0,q)}[phi(z)^2]``: the pre-activations of
    every layer keep unit variance at init (infinite-width limit). Computed by Gaussian
    quadrature (Gauss-Legendre panels under the normal density, split at the activation's
    kinks: exact to rounding for the named activations); deterministic (no randomness).

    This is *not* :func:`initlab.calculate_gain` (torch's table): for tanh torch uses 5/3 and
    for SELU 3/4, conventions rather than fixed points; here tanh gives 1.59254 and SELU 1.0.
    ReLU (sqrt 2), leaky_relu and linear (1) agree exactly. See the module docstring.

    Parameters
    ----------
    activation : str or callable
        A name (``"relu"``, ``"gelu"``, ``"silu"``/``"swish"``, ``"mish"``, ``"elu"``,
        ``"selu"``, ``"softplus"``, ``"leaky_relu"``, ``"tanh"``, ``"sigmoid"``,
        ``"linear"``/``"identity"``, torch's conv names, ...; see
        :func:`registered_activations`) or any NumPy-vectorized function.
    **params
        Parameters of a named activation, e.g. ``negative_slope=0.2`` for leaky_relu.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown name or parameters; a function that is not finite on the nodes or is zero
        almost everywhere (``E[phi^2] = 0``).

    Examples
    --------
    >>> import initlab
    >>> round(initlab.gain("relu") ** 2, 12)
    2.0
    >>> round(initlab.gain(lambda x: 2 * x), 12)
    0.5
    """
    fn, kinks = resolve_activation(activation, **params)
    m2 = expect(lambda z: np.square(np.asarray(fn(z), dtype=np.float64)), 1.0, kinks)
    if not math.isfinite(m2) or m2 <= 0.0:
        name = activation if isinstance(activation, str) else getattr(activation, "__name__", "callable")
        raise ValueError(f"activation {name!r} has E[phi(z)^2] = {m2!r} for z ~ N(0,1); a gain needs a finite positive value")
    return 1.0 / math.sqrt(m2)
