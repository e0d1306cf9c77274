"""Depth stability of a deep network at init, from mean-field theory (any activation).

For a deep fully connected network with weights ``W ~ (0, sigma_w^2 / fan_in)`` and biases
``b ~ (0, sigma_b^2)``, the pre-activation variance obeys (Poole et al. 2016)::

    q_{l+1} = V(q_l) = sigma_w^2 * E_{z~N(0,1)}[phi(sqrt(q_l) z)^2] + sigma_b^2

and gradients' mean square is multiplied per layer (backwards) by (Schoenholz et al. 2017)::

    chi = sigma_w^2 * E_{z~N(0,1)}[phi'(sqrt(q*) z)^2]

at the fixed point ``q*``. ``chi = 1`` is the edge of chaos (order-to-chaos transition).
:func:`depth_stability` computes both by quadrature (:mod:`initlab.activation_gain`) for a
named activation or any NumPy-vectorized callable, with ``phi'`` by a central difference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..activation_gain import expect, resolve_activation

__all__ = ["depth_stability", "Stability"]

_MAX_ITER = 400  # fixed-point iterations (each is one quadrature, ~20 us)
_HUGE = 1e60
_TINY = 1e-60
_Q0 = 1e-24  # where chi and the slope of the map at q* = 0 are evaluated


@dataclass(frozen=True)
class Stability:
    """Mean-field depth stability of a deep network at init.

    Attributes
    ----------
    activation : str
        Name of the activation (``"<lambda>"`` for an anonymous callable).
    weight_std, bias_std : float
        ``sigma_w`` (weights have variance ``sigma_w^2 / fan_in``) and ``sigma_b``.
    q_star : float
        The fixed point of the variance map reached from ``q = 1`` (``inf`` if the
        pre-activations grow without bound, ``0.0`` if they collapse).
    chi : float
        ``sigma_w^2 E[phi'(sqrt(q*) z)^2]``: the per-layer factor of the gradients' mean square
        (backwards), and the slope of the correlation map at ``c = 1``. At ``q* = 0`` it is
        the limit ``q -> 0``; at ``q* = inf`` it is taken where the iteration stopped.
    signal_growth : float
        Per-layer factor of the signal's mean square: ``V(q)/q`` at the end of the iteration
        when ``q*`` is 0 or inf; otherwise the slope ``V'(q*)`` (how fast a perturbation of
        ``q`` dies out; below 1 means ``q*`` attracts).
    signal_ratio : float
        ``V(1)``: the factor from unit-variance inputs through one layer.
    gradient_growth : float
        Equal to ``chi``.
    verdict : {"vanishing", "stable", "exploding"}
        ``"exploding"`` if the signal diverges or ``chi > 1 + tol``; ``"vanishing"`` if
        ``chi < 1 - tol`` or the signal collapses to 0 geometrically; ``"stable"`` otherwise
        (at ``q* = 0`` the slope of the map is ``chi`` itself, so tanh at ``sigma_w = 1``,
        ``sigma_b = 0`` is the critical point: stable, with an algebraic decay of ``q``).
    rate : float
        The per-layer factor behind the verdict (``chi`` or the signal's growth).
    depth_scale : float
        ``1 / |ln chi|``: the number of layers over which the gradients change by a factor e
        (``inf`` at ``chi = 1``); signals propagate through a few times this depth.
    iterations : int
        Fixed-point iterations used.
    """

    activation: str
    weight_std: float
    bias_std: float
    q_star: float
    chi: float
    signal_growth: float
    signal_ratio: float
    gradient_growth: float
    verdict: str
    rate: float
    depth_scale: float
    iterations: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return asdict(self)

    def __str__(self) -> str:
        arrow = {"vanishing": "shrinks", "exploding": "grows", "stable": "keeps"}[self.verdict]
        lines = [
            f"Depth stability of {self.activation} with sigma_w = {self.weight_std:.6g}, sigma_b = {self.bias_std:.6g}:",
            f"  fixed point q*        {self.q_star:.6g}  (after {self.iterations} iterations from q = 1)",
            f"  chi (gradient/layer)  {self.chi:.6g}   depth scale {self.depth_scale:.4g} layers",
            f"  signal growth/layer   {self.signal_growth:.6g}   (one layer from q = 1: {self.signal_ratio:.6g})",
            f"  verdict: {self.verdict.upper()} - the mean square {arrow} by x{self.rate:.6g} per layer",
        ]
        return "\n".join(lines)


def _check_std(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) or v < 0:
        return math.nan
    return float(v)


def depth_stability(activation: Any, weight_std: float, bias_std: float = 0.0, *, tol: float = 1e-3,
                    **params: Any) -> Stability:
    """Fixed point, order-to-chaos quantity ``chi`` and a vanishing/stable/exploding verdict.

    Parameters
    ----------
    activation : str or callable
        A name accepted by :func:`initlab.gain` or a NumPy-vectorized function.
    weight_std : float
        ``sigma_w`` >= 0: weights with variance ``sigma_w^2 / fan_in`` (He for ReLU is
        ``sqrt(2)``; ``initlab.gain(activation)`` gives the one that keeps ``q = 1``).
    bias_std : float, default 0.0
        ``sigma_b`` >= 0.
    tol : float, default 1e-3
        ``chi`` within ``1 +- tol`` counts as stable (the edge of chaos).
    **params
        Parameters of a named activation (``negative_slope=0.2``, ...).

    Returns
    -------
    Stability

    Notes
    -----
    ``q*`` is found by iterating the map from ``q = 1`` (at most 400 steps; a step stops early
    at relative change below 1e-13). ``phi'`` is a central difference with step
    ``1e-5 sqrt(q)`` at quadrature nodes that never sit on the activation's kinks.
    Deterministic.

    Examples
    --------
    >>> from initlab.analysis import depth_stability
    >>> s = depth_stability("relu", 2 ** 0.5)
    >>> s.verdict, round(s.chi, 6)
    ('stable', 1.0)
    """
    fn, kinks = resolve_activation(activation, **params)
    sw, sb, tl = _check_std("weight_std", weight_std), _check_std("bias_std", bias_std), _check_std("tol", tol)
    bad = [f"{n}={v!r}" for n, v, c in (("weight_std", weight_std, sw), ("bias_std", bias_std, sb), ("tol", tol, tl))
           if math.isnan(c)]
    if bad:
        raise ValueError(f"depth_stability needs finite non-negative numbers: {', '.join(bad)}")
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", type(activation).__name__)
    sw2, sb2 = sw * sw, sb * sb

    def phi2(x: np.ndarray) -> np.ndarray:
        return np.square(np.asarray(fn(x), dtype=np.float64))

    def vmap(q: float) -> float:
        return sw2 * expect(phi2, q, kinks) + sb2

    def chi_at(q: float) -> float:
        h = 1e-5 * math.sqrt(q)

        def dphi2(x: np.ndarray) -> np.ndarray:
            d = (np.asarray(fn(x + h), dtype=np.float64) - np.asarray(fn(x - h), dtype=np.float64)) / (2 * h)
            return d * d

        return sw2 * expect(dphi2, q, kinks)

    signal_ratio = vmap(1.0)
    q, ratio, it, state = 1.0, signal_ratio, 0, "running"
    prev_r: float | None = None
    for it in range(1, _MAX_ITER + 1):
        nq = vmap(q)
        if not math.isfinite(nq) or nq > _HUGE:
            ratio, q, state = (nq / q if math.isfinite(nq) else math.inf), q, "diverged"
            break
        ratio = nq / q if q > 0 else math.inf
        if nq < _TINY:
            q, state = nq, "collapsed"
            break
        if abs(nq - q) <= 1e-13 * max(q, sb2):
            q, state = nq, "converged"
            break
        if it % 3 == 0:
            # Every third step look at two increments d1, d2. A steady ratio d2/d1 > 1 on a growing
            # q is geometric divergence (stop: the rate is known). On a monotone, contracting
            # stretch, Steffensen's step (Aitken's delta^2) jumps to the limit: quadratic instead of
            # linear convergence, and a limit of 0 is a collapse.
            n2 = vmap(nq)
            if not math.isfinite(n2) or n2 > _HUGE:
                q, ratio, state = nq, (n2 / nq if math.isfinite(n2) else math.inf), "diverged"
                break
            d1, d2 = nq - q, n2 - nq
            r = d2 / d1 if d1 != 0.0 else math.nan
            if d1 > 0.0 and d2 > 0.0 and r > 1.0 and prev_r is not None and abs(r - prev_r) <= 1e-6 * r:
                q, ratio, state = n2, n2 / nq, "diverged"
                break
            prev_r = r
            den = d2 - d1
            if abs(d2) < abs(d1) and d1 * d2 > 0.0 and den != 0.0:
                acc = q - d1 * d1 / den
                if math.isfinite(acc) and acc < _TINY * 1e40 and sb2 == 0.0 and d1 < 0.0:
                    ratio, q, state = n2 / nq if nq > 0 else ratio, 0.0, "collapsed"
                    break
                if math.isfinite(acc) and acc > 0.0:
                    q = acc
                    continue
            q = n2
            continue
        q = nq
    if state == "running":
        # No convergence within the budget: an algebraically slow approach (e.g. tanh at
        # sigma_w = 1, sigma_b = 0: q_l ~ 1/(2l)) or a slow geometric drift. Name the trend.
        nq = vmap(q)
        if nq < q and sb2 == 0.0 and ratio <= 1.0:
            state = "collapsed"
        elif nq > q and ratio > 1.0 + 1e-9:
            state = "diverged"
        else:
            state = "converged"
    if state == "converged":
        q_star = q
        dq = 1e-4 * q
        signal_growth = (vmap(q + dq) - vmap(q - dq)) / (2 * dq) if q > dq else ratio
        chi = chi_at(q_star)
    elif state == "collapsed":
        # Linearization at q = 0: V(q) ~ sigma_w^2 E[phi'(0)^2] q = chi(0) q (kinks handled by the nodes).
        q_star = 0.0
        chi = chi_at(_Q0)
        signal_growth = chi
    else:
        q_star, signal_growth, chi = math.inf, ratio, chi_at(q)

    if state == "diverged" or chi > 1 + tl:
        verdict = "exploding"
        rate = signal_growth if state == "diverged" and not chi > 1 + tl else chi
    elif chi < 1 - tl or (state == "collapsed" and signal_growth < 1 - tl):
        verdict = "vanishing"
        rate = chi if chi < 1 - tl else signal_growth
    else:
        verdict, rate = "stable", chi
    if chi <= 0.0:
        depth_scale = 0.0
    else:
        depth_scale = math.inf if abs(math.log(chi)) < 1e-9 else 1.0 / abs(math.log(chi))
    return Stability(activation=str(name), weight_std=sw, bias_std=sb, q_star=float(q_star), chi=float(chi),
                     signal_growth=float(signal_growth), signal_ratio=float(signal_ratio), gradient_growth=float(chi),
                     verdict=verdict, rate=float(rate), depth_scale=float(depth_scale), iterations=it)
