"""Optimizers for :mod:`initlab.nn` networks: SGD with momentum and Adam, updating in place.

Both read the gradients a backward pass accumulated (``module.named_grads()``), update every
parameter array in place (so views and references stay valid), and are deterministic: the same
gradients give the same bits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .module import Module

__all__ = ["SGD", "Adam", "Optimizer"]


def _check(name: str, value: Any, lo: float, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = True) -> float:
    v = float(value)
    ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi) and math.isfinite(v)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must lie in {lb}{lo:g}, {hi:g}{rb}, got {value!r}")
    return v


class Optimizer:
    """Base class: holds the model and the per-parameter state; ``step()`` applies one update."""

    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"an optimizer takes an initlab.nn module, got {type(model).__name__}")
        self.model = model
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.steps = 0
        # (qualified name, module, local name): walked once, not on every step.
        self._slots = [(f"{q}.{p}" if q else p, m, p) for q, m in model.named_modules() for p in m._param_names]

    def zero_grad(self) -> None:
        """Forget the model's accumulated gradients."""
        self.model.zero_grad()

    def step(self) -> None:
        """Update every parameter from its gradient."""
        self.steps += 1
        for name, mod, local in self._slots:
            g = mod.grads.get(local)
            if g is not None:  # no gradient: a parameter the last backward pass did not reach
                self._update(name, getattr(mod, local), g)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum, as ``torch.optim.SGD``.

    ``v <- momentum * v + (g + weight_decay * p)``; ``p <- p - lr * v`` (``v = g`` at the first step).

    Parameters
    ----------
    model : initlab.nn.Module
    lr : float, default 0.01
    momentum : float, default 0.9
        In ``[0, 1)``; 0 is plain SGD.
    weight_decay : float, default 0.0
    """

    def __init__(self, model: Module, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(model)
        self.lr = _check("lr", lr, 0.0, lo_open=True)
        self.momentum = _check("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            st = self.state.get(name)
            if st is None:
                st = self.state[name] = {"v": np.array(g, dtype=p.dtype, copy=True)}
            else:
                st["v"] *= self.momentum
                st["v"] += g
            g = st["v"]
        p -= (self.lr * g).astype(p.dtype, copy=False)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, weight_decay={self.weight_decay:g})"


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as ``torch.optim.Adam``.

    Parameters
    ----------
    model : initlab.nn.Module
    lr : float, default 0.001
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0.0
        L2 penalty added to the gradient (torch's ``Adam``, not ``AdamW``).
    """

    def __init__(self, model: Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(model)
        self.lr = _check("lr", lr, 0.0, lo_open=True)
        b1, b2 = betas
        self.betas = (_check("betas[0]", b1, 0.0, 1.0), _check("betas[1]", b2, 0.0, 1.0))
        self.eps = _check("eps", eps, 0.0, lo_open=True)
        self.weight_decay = _check("weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        """Update every parameter from its gradient (bias-corrected moments)."""
        super().step()

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = {"m": np.zeros_like(p), "v": np.zeros_like(p)}
        st["m"] *= b1
        st["m"] += (1 - b1) * g
        st["v"] *= b2
        st["v"] += (1 - b2) * g * g
        t = self.steps
        mhat = st["m"] / (1 - b1**t)
        vhat = st["v"] / (1 - b2**t)
        p -= (self.lr * mhat / (np.sqrt(vhat) + self.eps)).astype(p.dtype, copy=False)

    def __repr__(self) -> str:
        return f"Adam(lr={self.lr:g}, betas={self.betas}, eps={self.eps:g}, weight_decay={self.weight_decay:g})"
