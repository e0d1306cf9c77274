"""Initialization by optimization of a proxy objective: GradInit and MetaInit.

Both learn one scale per weight tensor before training, then write the scaled weights into
the model and return a :class:`ProxyReport` (each learned scale, the objective per step, a
:class:`~initlab.manifest.Manifest`).

* :func:`gradinit` (Zhu et al., NeurIPS 2021): scalars ``alpha_i`` on every parameter tensor,
  chosen so that the first optimizer step from ``alpha * W`` lowers the loss most, subject to a
  bound on the gradient norm.
* :func:`metainit` (Dauphin & Schoenholz, NeurIPS 2019): the norms of the weight tensors are
  tuned, data-free, to minimize the *gradient quotient* - how far one gradient step is from
  changing the gradient (curvature-blind regions are where training starts well).

torch models use autograd (double backward). :mod:`initlab.nn` models use their backward pass;
a Hessian-vector product is the central difference of gradients
``H v ~= (grad L(theta + e v) - grad L(theta - e v)) / (2 e)`` with ``e = r * max(1, |theta|) / |v|``,
``r = 1e-4`` in float64 (``1e-3`` in float32): truncation error O(e^2), rounding error
``~ eps_machine / r``. MetaInit's gradient needs a third derivative, taken as the central
difference of such products along ``g`` (see :func:`metainit`).

Deterministic for a given ``seed`` (minibatches, random inputs and labels are drawn from it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from ..generator import SeedLike
from ..manifest import Entry, Manifest
from ._common import dtype_name, framework

__all__ = ["gradinit", "metainit", "gradient_quotient", "ProxyReport"]


@dataclass
class ProxyReport:
    """What :func:`gradinit` or :func:`metainit` learned.

    Attributes
    ----------
    scheme : str
        ``"gradinit"`` or ``"metainit"``.
    scales : dict of str to float
        Each tuned parameter tensor's learned scale (final / initial norm; GradInit's
        ``alpha_i``), by qualified name.
    objective : list of float
        The objective at each step (GradInit: the loss after one step from the scaled
        weights divided by ``eta``, or the gradient norm when the constraint was violated;
        MetaInit: the gradient quotient).
    steps : int
        Steps taken.
    skipped : int
        Steps whose update was not finite and was therefore not applied.
    constrained : int
        GradInit: steps where ``|g|_p > gamma`` (the gradient norm was minimized instead).
    seed : object
    settings : dict
        The hyper-parameters used.
    manifest : Manifest
        One entry per tensor written: ``scale``, norms before/after.
    seconds : float
        Wall time.
    """

    scheme: str
    scales: dict[str, float]
    objective: list[float]
    steps: int
    skipped: int
    constrained: int
    seed: Any
    settings: dict[str, Any]
    manifest: Manifest
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (the manifest as its own ``to_dict``)."""
        return {"scheme": self.scheme, "scales": dict(self.scales), "objective": list(self.objective),
                "steps": self.steps, "skipped": self.skipped, "constrained": self.constrained,
                "seed": self.seed if isinstance(self.seed, (int, type(None))) else repr(self.seed),
                "settings": dict(self.settings), "manifest": self.manifest.to_dict(), "seconds": self.seconds}

    def __str__(self) -> str:
        obj = self.objective
        lines = [f"{self.scheme}: {self.steps} steps in {self.seconds:.2f} s, seed {self.seed!r}"
                 + (f", {self.constrained} constrained" if self.scheme == "gradinit" else "")
                 + (f", {self.skipped} skipped (non-finite)" if self.skipped else ""),
                 "  settings: " + ", ".join(f"{k}={v}" for k, v in self.settings.items())]
        if obj:
            marks = sorted({0, len(obj) // 4, len(obj) // 2, 3 * len(obj) // 4, len(obj) - 1})
            lines.append("  objective: " + "  ".join(f"[{i}] {obj[i]:.6g}" for i in marks)
                         + f"   (min {min(obj):.6g})")
        w = max((len(n) for n in self.scales), default=9)
        lines.append(f"  {'parameter'.ljust(w)}  scale")
        lines.extend(f"  {n.ljust(w)}  {s:.6g}" for n, s in self.scales.items())
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# shared validation and helpers


def _check_pos(name: str, v: Any, *, allow_zero: bool = False) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        return f"{name}={v!r}"
    if v < 0 or (v == 0 and not allow_zero):
        return f"{name}={v!r}"
    return None


def _validate(**kw: Any) -> None:
    bad = []
    for k, v in kw.items():
        if k == "steps":
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 100_000:
                bad.append(f"steps={v!r} (an int in [1, 100000])")
        elif k in ("alpha_min", "momentum"):
            if _check_pos(k, v, allow_zero=True):
                bad.append(f"{k}={v!r}")
        elif _check_pos(k, v):
            bad.append(f"{k}={v!r}")
    if bad:
        raise ValueError(f"invalid settings (finite positive numbers expected): {', '.join(bad)}")


def _seed_int(seed: Any) -> int:
    """The NumPy/torch seed of a proxy run: an int seed as it is; a Generator, or ``None`` (the
    module generator, so ``initlab.manual_seed`` fixes it), gives one stream of its own."""
    from ..generator import Generator, _check_seed_int, resolve_seed

    if seed is None or isinstance(seed, Generator):
        key, stream = resolve_seed(seed)
        return int((key * 1_000_003 + stream) % (1 << 63))
    return _check_seed_int(seed)


def _np_loss(kind: str, y: np.ndarray, t: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss over the batch and its gradient with respect to ``y``."""
    if kind == "cross_entropy":
        from ..nn.losses import softmax_cross_entropy

        return softmax_cross_entropy(y, np.asarray(t, dtype=np.int64))
    diff = y - np.asarray(t, dtype=y.dtype).reshape(y.shape)
    return float(np.mean(diff * diff)), 2.0 * diff / diff.size


def _loss_kind(loss: Any, y: Any) -> str:
    if loss is None:
        kind = "cross_entropy" if np.asarray(y).dtype.kind in "iu" else "mse"
    else:
        kind = loss
    if kind not in ("cross_entropy", "mse"):
        raise ValueError(f"loss must be 'cross_entropy', 'mse' or None (cross-entropy for integer labels), got {loss!r}")
    return kind


def _split_data(data: Any) -> tuple[Any, Any]:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError("data must be a pair (inputs, targets) of arrays or tensors with the samples on axis 0")
    x, y = data
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"data needs at least 2 samples and as many targets as inputs, got {len(x)} and {len(y)}")
    return x, y


class _Adam:
    """Adam on a vector of scalars (torch's defaults: betas 0.9/0.999, eps 1e-8)."""

    def __init__(self, n: int, lr: float) -> None:
        self.m, self.v, self.t, self.lr = np.zeros(n), np.zeros(n), 0, lr

    def step(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh, vh = self.m / (1 - 0.9**self.t), self.v / (1 - 0.999**self.t)
        return x - self.lr * mh / (np.sqrt(vh) + 1e-8)


def _clip(g: np.ndarray, c: float = 1.0) -> np.ndarray:
    n = float(np.linalg.norm(g))
    return g * (c / n) if n > c else g


# ------------------------------------------------------------------------------------------
# GradInit


def gradinit(model: Any, data: Any, *, optimizer: str = "sgd", steps: int = 390, lr: float = 0.01, eta: float = 0.1,
             gamma: float = 1.0, alpha_min: float = 0.01, batch_size: int = 64, loss: str | None = None,
             normalize_grad: bool = False, seed: SeedLike = None) -> ProxyReport:
    """GradInit (Zhu, Ni, Xu, Kong, Huang, Goldstein, NeurIPS 2021): learn a scale per parameter tensor.

    With ``theta_alpha = {alpha_i W_i}`` each step solves (by Adam on the ``alpha``)::

        min_alpha  L(S~; theta_alpha - eta A[g(S; theta_alpha)]) / eta   s.t.  |g(S; theta_alpha)|_p <= gamma

    ``A[g] = g``, ``p = 2`` for ``optimizer="sgd"`` (optionally ``g / |g|_2``); ``A[g] = sign(g)``,
    ``p = 1`` for ``"adam"`` (its first step). While the constraint is violated the step minimizes
    ``|g|_p`` instead. ``S`` is a minibatch of ``2 * batch_size`` samples drawn (seeded) from
    ``data`` and ``S~`` its first half. ``alpha`` gradients are clipped to norm 1, then
    ``alpha_i >= alpha_min`` for weights and ``>= 0`` for biases (1-D tensors). BatchNorm runs in
    training mode (its running statistics are restored afterwards), dropout is off. Defaults
    follow the reference code (``eta = 0.1``, ``gamma = 1``, ``alpha_min = 0.01``, 390 steps);
    Adam's ``lr`` on the scales is 0.01 (the reference uses 1e-3 to 1e-1).

    Parameters
    ----------
    model : initlab.nn.Module or torch.nn.Module
    data : (inputs, targets)
        Arrays (``initlab.nn``) or tensors (torch), samples on axis 0.
    optimizer : {"sgd", "adam"}
    steps, lr, eta, gamma, alpha_min, batch_size
    loss : {"cross_entropy", "mse"} or None
        ``None``: cross-entropy for integer targets, else mean squared error.
    normalize_grad : bool, default False
        SGD only: ``A[g] = g / |g|_2`` (``--gradinit-normalize-grad``); torch models only.
    seed : int, initlab.Generator or None

    Returns
    -------
    ProxyReport
        ``scales`` are the final ``alpha_i``; the model's parameters are ``alpha_i * W_i``.
        Never non-finite: a step whose update is not finite is skipped (counted in ``skipped``).
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    _validate(steps=steps, lr=lr, eta=eta, gamma=gamma, alpha_min=alpha_min, batch_size=batch_size)
    x, y = _split_data(data)
    kind = _loss_kind(loss, y)
    s = _seed_int(seed)
    settings = {"optimizer": optimizer, "lr": lr, "eta": eta, "gamma": gamma, "alpha_min": alpha_min,
                "batch_size": batch_size, "loss": kind, "normalize_grad": normalize_grad}
    t0 = time.perf_counter()
    if framework(model) == "torch":
        rep = _gradinit_torch(model, x, y, optimizer, int(steps), lr, eta, gamma, alpha_min, int(batch_size), kind,
                              normalize_grad, s)
    else:
        if normalize_grad:
            raise ValueError("normalize_grad is available for torch models only")
        rep = _gradinit_nn(model, np.asarray(x), np.asarray(y), optimizer, int(steps), lr, eta, gamma, alpha_min,
                           int(batch_size), kind, s)
    names, alphas, norms0, norms1, objective, skipped, constrained, params = rep
    entries = [Entry(name=n, shape=shp, dtype=dt, module=mod, role="weight" if len(shp) >= 2 else "bias",
                     rule=f"gradinit: learned scale ({optimizer})", init="scale",
                     params={"scale": float(a), "norm_before": float(b0), "norm_after": float(b1)})
               for n, a, b0, b1, (shp, dt, mod) in zip(names, alphas, norms0, norms1, params)]
    man = Manifest(entries, recipe="gradinit", seed=seed)
    return ProxyReport("gradinit", {n: float(a) for n, a in zip(names, alphas)}, objective, int(steps), skipped,
                       constrained, seed, settings, man, time.perf_counter() - t0)


def _batches(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(n, size=size, replace=size > n)


def _gradinit_torch(model: Any, x: Any, y: Any, optimizer: str, steps: int, lr: float, eta: float, gamma: float,
                    alpha_min: float, bs: int, kind: str, normalize: bool, seed: int) -> tuple:
    import torch
    from torch.func import functional_call

    x, y = torch.as_tensor(x), torch.as_tensor(y)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names = [n for n, _ in named]
    w0 = [p.detach().clone() for _, p in named]
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    modes = {m: m.training for m in model.modules()}
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()
    amin = torch.tensor([alpha_min if w.dim() >= 2 else 0.0 for w in w0], dtype=torch.float64)
    alphas = torch.ones(len(w0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([alphas], lr=lr)
    rng = np.random.default_rng(seed)
    lossf = torch.nn.functional.cross_entropy if kind == "cross_entropy" else torch.nn.functional.mse_loss
    p = 2 if optimizer == "sgd" else 1
    objective, skipped, constrained = [], 0, 0
    try:
        for _ in range(steps):
            idx = torch.as_tensor(_batches(len(x), 2 * bs, rng))
            xs, ys = x[idx], y[idx]
            theta = {n: a.to(w.dtype) * w for n, a, w in zip(names, alphas, w0)}
            out = functional_call(model, theta, (xs,))
            g = torch.autograd.grad(lossf(out, ys), list(theta.values()), create_graph=True)
            flat = torch.cat([gi.reshape(-1) for gi in g])
            gnorm = flat.norm(p)
            if gnorm.item() > gamma:
                obj = gnorm
                constrained += 1
            else:
                if optimizer == "sgd":
                    upd = [gi / flat.norm(2) for gi in g] if normalize else list(g)
                else:
                    upd = [gi.sign().detach() for gi in g]
                theta2 = {n: t - eta * u for (n, t), u in zip(theta.items(), upd)}
                out2 = functional_call(model, theta2, (xs[:bs],))
                obj = lossf(out2, ys[:bs]) / eta
            opt.zero_grad()
            obj.backward()
            grad = alphas.grad
            objective.append(float(obj.detach()))
            if grad is None or not torch.isfinite(grad).all() or not math.isfinite(objective[-1]):
                skipped += 1
                continue
            torch.nn.utils.clip_grad_norm_([alphas], 1.0)
            before = alphas.detach().clone()
            opt.step()
            with torch.no_grad():
                alphas.copy_(torch.maximum(alphas, amin))
                if not torch.isfinite(alphas).all():
                    alphas.copy_(before)
                    skipped += 1
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                if n in buffers:
                    b.copy_(buffers[n])
        for m, mode in modes.items():
            m.training = mode
    a = alphas.detach()
    with torch.no_grad():
        for (_, prm), w, ai in zip(named, w0, a):
            prm.copy_(w * ai.to(w.dtype))
    mods = {id(prm): type(mod).__name__ for mod in model.modules() for prm in mod.parameters(recurse=False)}
    params = [(tuple(prm.shape), dtype_name(prm), mods.get(id(prm), "?")) for _, prm in named]
    return (names, a.tolist(), [float(w.norm()) for w in w0], [float(prm.detach().norm()) for _, prm in named],
            objective, skipped, constrained, params)


# --- initlab.nn machinery ---------------------------------------------------------------------


class _NNParams:
    """The parameter arrays of an initlab.nn model as one flat vector."""

    def __init__(self, model: Any, only_matrices: bool = False) -> None:
        self.model = model
        all_named = list(model.named_parameters())
        self.all_names = [n for n, _ in all_named]
        keep = [i for i, (_, p) in enumerate(all_named) if (p.ndim >= 2 or not only_matrices)]
        self.idx = keep
        self.names = [all_named[i][0] for i in keep]
        self.arrays = [all_named[i][1] for i in keep]
        self.sizes = [a.size for a in self.arrays]
        self.offsets = np.cumsum([0] + self.sizes)
        mods = {}
        for qn, m in model.named_modules():
            for p in m._param_names:
                mods[f"{qn}.{p}" if qn else p] = type(m).__name__
        self.modules = [mods.get(n, "?") for n in self.names]
        self.eps_rel = 1e-4 if all(a.dtype == np.float64 for a in self.arrays) else 1e-3

    def get(self) -> np.ndarray:
        return np.concatenate([a.reshape(-1).astype(np.float64) for a in self.arrays])

    def set(self, v: np.ndarray) -> None:
        for a, o, s in zip(self.arrays, self.offsets[:-1], self.sizes):
            a[...] = v[o:o + s].reshape(a.shape)

    def grad(self, x: np.ndarray, t: np.ndarray, kind: str) -> tuple[float, np.ndarray]:
        m = self.model
        m.zero_grad()
        out = m.forward(x)
        val, dy = _np_loss(kind, out, t)
        m.backward(dy)
        gd = dict(m.named_grads())
        return val, np.concatenate([np.asarray(gd[n], dtype=np.float64).reshape(-1) for n in self.names])

    def hvp(self, theta: np.ndarray, v: np.ndarray, x: np.ndarray, t: np.ndarray, kind: str) -> np.ndarray:
        """H(theta) v by a central difference of gradients (see the module docstring)."""
        nv = float(np.linalg.norm(v))
        if nv == 0.0:
            return np.zeros_like(v)
        e = self.eps_rel * max(1.0, float(np.linalg.norm(theta))) / nv
        self.set(theta + e * v)
        _, gp = self.grad(x, t, kind)
        self.set(theta - e * v)
        _, gm = self.grad(x, t, kind)
        self.set(theta)
        return (gp - gm) / (2 * e)

    def dots(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per-tensor inner products of two flat vectors."""
        return np.array([float(np.dot(a[o:o + s], b[o:o + s])) for o, s in zip(self.offsets[:-1], self.sizes)])

    def expand(self, per_tensor: np.ndarray) -> np.ndarray:
        return np.repeat(per_tensor, self.sizes)


def _nn_buffers(model: Any) -> list[tuple[Any, str, np.ndarray]]:
    from ..nn import BatchNorm

    return [(m, k, getattr(m, k).copy()) for _, m in model.named_modules() if isinstance(m, BatchNorm)
            for k in ("running_mean", "running_var")]


def _gradinit_nn_objective(P: _NNParams, w0: np.ndarray, alphas: np.ndarray, xs: np.ndarray, ys: np.ndarray, bs: int,
                           optimizer: str, eta: float, gamma: float, kind: str) -> tuple[float, np.ndarray, bool]:
    """GradInit's objective at ``alphas`` and its gradient with respect to them (one step)."""
    theta = w0 * P.expand(alphas)
    P.set(theta)
    _, g = P.grad(xs, ys, kind)
    if optimizer == "sgd":
        gn = float(np.linalg.norm(g))
        if gn > gamma:
            u = g / gn  # d|g|_2 / d theta = H g/|g|
            return gn, P.dots(P.hvp(theta, u, xs, ys, kind), w0), True
        theta2 = theta - eta * g
    else:
        gn = float(np.abs(g).sum())
        if gn > gamma:
            return gn, P.dots(P.hvp(theta, np.sign(g), xs, ys, kind), w0), True
        theta2 = theta - eta * np.sign(g)  # sign() has zero derivative: no Hessian term
    P.set(theta2)
    val, v = P.grad(xs[:bs], ys[:bs], kind)
    P.set(theta)
    ga = P.dots(v, w0)
    if optimizer == "sgd":
        ga = ga - eta * P.dots(P.hvp(theta, v, xs, ys, kind), w0)
    return val / eta, ga / eta, False


def _gradinit_nn(model: Any, x: np.ndarray, y: np.ndarray, optimizer: str, steps: int, lr: float, eta: float,
                 gamma: float, alpha_min: float, bs: int, kind: str, seed: int) -> tuple:
    P = _NNParams(model)
    w0 = P.get()
    norms0 = [float(np.linalg.norm(a)) for a in P.arrays]
    amin = np.array([alpha_min if a.ndim >= 2 else 0.0 for a in P.arrays])
    alphas = np.ones(len(P.arrays))
    adam = _Adam(len(alphas), lr)
    rng = np.random.default_rng(seed)
    bufs = _nn_buffers(model)
    modes = {id(m): (m, m.training) for _, m in model.named_modules()}
    model.train()
    objective, skipped, constrained = [], 0, 0
    try:
        for _ in range(steps):
            idx = _batches(len(x), 2 * bs, rng)
            obj, ga, cons = _gradinit_nn_objective(P, w0, alphas, x[idx], y[idx], bs, optimizer, eta, gamma, kind)
            objective.append(float(obj))
            constrained += cons
            if not (np.all(np.isfinite(ga)) and math.isfinite(obj)):
                skipped += 1
                continue
            new = np.maximum(adam.step(alphas, _clip(ga)), amin)
            if np.all(np.isfinite(new)):
                alphas = new
            else:
                skipped += 1
    finally:
        for m, k, v in bufs:
            setattr(m, k, v)
        for m, mode in modes.values():
            m.training = mode
        P.set(w0 * P.expand(alphas))
        model.zero_grad()
    params = [(tuple(a.shape), str(a.dtype), mod) for a, mod in zip(P.arrays, P.modules)]
    return (P.names, alphas.tolist(), norms0, [float(np.linalg.norm(a)) for a in P.arrays], objective, skipped,
            constrained, params)


# ------------------------------------------------------------------------------------------
# MetaInit


def metainit(model: Any, input_shape: Any, *, steps: int = 500, lr: float = 0.1, momentum: float = 0.9,
             eps: float = 1e-5, n_classes: int | None = None, seed: SeedLike = None) -> ProxyReport:
    """MetaInit (Dauphin & Schoenholz, NeurIPS 2019): tune weight norms to minimize the gradient quotient.

    ``GQ(L, theta) = (1/N) sum_i |(g_i - (H g)_i) / (g_i + eps s_i) - 1|`` with ``g = grad L``,
    ``H`` the Hessian, ``s_i = sign(g_i)`` (+1 at 0, held constant) and ``N`` the number of
    entries. Only tensors with at least 2 dimensions take part (biases are excluded), and only
    their norms change: per step, for each weight ``W``,
    ``d = sign(<W, grad_W GQ> / |W|)``, ``m <- momentum m - lr d``, ``W <- W (|W| + m) / |W|``.
    Data-free: each step draws ``x ~ N(0, 1)`` of ``input_shape`` and uniform random class labels
    (seeded); cross-entropy loss; the model in evaluation mode. Defaults are the paper's
    (``lr = 0.1``, ``momentum = 0.9``, 500 steps, ``eps = 1e-5``). A norm is never allowed to
    drop below 1e-3 of its initial value (a bounded, finite result).

    torch: ``H g`` as the gradient of ``|g|^2 / 2`` and ``grad GQ`` by a third backward pass.
    ``initlab.nn``: with ``a = g - H g``, ``b = g + eps s``, ``r = a / b - 1``,
    ``c = sign(r) (1/b - a/b^2) / N`` and ``d = -sign(r) / (b N)``,
    ``grad GQ = H c + H (H d) + D_g(H d)`` where the last term (the third derivative contracted
    with ``d`` and ``g``) is the central difference of ``H(theta +- delta g) d`` - 13 gradient
    evaluations per step.

    Parameters
    ----------
    model : initlab.nn.Module or torch.nn.Module
        Its output is ``(batch, n_classes)`` logits.
    input_shape : tuple of int
        Shape of one random input batch, batch first (e.g. ``(32, 784)``).
    steps, lr, momentum, eps
    n_classes : int, optional
        Number of classes for the random labels (default: the model's output width).
    seed : int, initlab.Generator or None

    Returns
    -------
    ProxyReport
        ``scales`` are final / initial norms; ``objective`` the GQ per step.
    """
    _validate(steps=steps, lr=lr, momentum=momentum, eps=eps)
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a tuple of ints (batch first), got {input_shape!r}") from None
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"input_shape must have a batch axis and positive sizes, got {shape}")
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2):
        raise ValueError(f"n_classes must be an int >= 2 or None, got {n_classes!r}")
    s = _seed_int(seed)
    settings = {"lr": lr, "momentum": momentum, "eps": eps, "input_shape": shape}
    t0 = time.perf_counter()
    if framework(model) == "torch":
        rep = _metainit_torch(model, shape, int(steps), lr, momentum, eps, n_classes, s)
    else:
        rep = _metainit_nn(model, shape, int(steps), lr, momentum, eps, n_classes, s)
    names, scales, norms0, norms1, objective, skipped, params = rep
    entries = [Entry(name=n, shape=shp, dtype=dt, module=mod, role="weight", rule="metainit: learned norm",
                     init="scale", params={"scale": float(a), "norm_before": float(b0), "norm_after": float(b1)})
               for n, a, b0, b1, (shp, dt, mod) in zip(names, scales, norms0, norms1, params)]
    man = Manifest(entries, recipe="metainit", seed=seed)
    settings["n_classes"] = n_classes
    return ProxyReport("metainit", {n: float(a) for n, a in zip(names, scales)}, objective, int(steps), skipped, 0,
                       seed, settings, man, time.perf_counter() - t0)


def _norm_step(norm: float, mem: float, floor: float) -> float:
    new = norm + mem
    return new if (math.isfinite(new) and new >= floor) else max(floor, norm if math.isfinite(norm) else floor)


def _metainit_torch(model: Any, shape: tuple, steps: int, lr: float, mu: float, eps: float, n_classes: int | None,
                    seed: int) -> tuple:
    import torch

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    if not named:
        raise ValueError("metainit found no weight tensor with 2 or more dimensions")
    names, ws = [n for n, _ in named], [p for _, p in named]
    dtype = ws[0].dtype
    norms0 = [float(w.detach().norm()) for w in ws]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    mem = [0.0] * len(ws)
    N = sum(w.numel() for w in ws)
    objective, skipped = [], 0
    try:
        for _ in range(steps):
            x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
            out = model(x)
            k = n_classes or out.shape[-1]
            t = torch.randint(0, k, (shape[0],), generator=gen)
            loss = torch.nn.functional.cross_entropy(out, t)
            g = torch.autograd.grad(loss, ws, create_graph=True)
            hg = torch.autograd.grad(cast("torch.Tensor", sum((gi * gi).sum() / 2 for gi in g)), ws, create_graph=True)
            gq = sum(((gi - hi) / (gi + eps * (2 * (gi >= 0).to(gi.dtype) - 1).detach()) - 1).abs().sum()
                     for gi, hi in zip(g, hg)) / N
            grads = torch.autograd.grad(gq, ws)
            objective.append(float(gq.detach()))
            if not all(torch.isfinite(gr).all() for gr in grads):
                skipped += 1
                continue
            with torch.no_grad():
                for j, (w, gr) in enumerate(zip(ws, grads)):
                    norm = float(w.norm())
                    d = math.copysign(1.0, float((w * gr).sum()) / norm) if float((w * gr).sum()) != 0 else 0.0
                    mem[j] = mu * mem[j] - lr * d
                    new = _norm_step(norm, mem[j], 1e-3 * norms0[j])
                    w.mul_(new / norm)
    finally:
        for m, mode in modes.items():
            m.training = mode
    norms1 = [float(w.detach().norm()) for w in ws]
    mods = {id(prm): type(mod).__name__ for mod in model.modules() for prm in mod.parameters(recurse=False)}
    params = [(tuple(w.shape), dtype_name(w), mods.get(id(w), "?")) for w in ws]
    return names, [b / a for a, b in zip(norms0, norms1)], norms0, norms1, objective, skipped, params


def _gq_nn(P: _NNParams, theta: np.ndarray, x: np.ndarray, t: np.ndarray, eps: float,
           with_grad: bool = True) -> tuple[float, np.ndarray | None]:
    """Gradient quotient at ``theta`` and (optionally) its gradient, by differences of gradients."""
    P.set(theta)
    _, g = P.grad(x, t, "cross_entropy")
    hg = P.hvp(theta, g, x, t, "cross_entropy")
    n = g.size
    s = np.where(g >= 0, 1.0, -1.0)
    a, b = g - hg, g + eps * s
    r = a / b - 1.0
    gq = float(np.abs(r).sum() / n)
    if not with_grad:
        return gq, None
    sr = np.sign(r)
    c = sr * (1.0 / b - a / (b * b)) / n
    d = -sr / (b * n)
    hc = P.hvp(theta, c, x, t, "cross_entropy")
    hd = P.hvp(theta, d, x, t, "cross_entropy")
    hhd = P.hvp(theta, hd, x, t, "cross_entropy")
    ng = float(np.linalg.norm(g))
    if ng == 0.0:
        third = np.zeros_like(g)
    else:
        delta = P.eps_rel * max(1.0, float(np.linalg.norm(theta))) / ng
        # D_g (H d): how the Hessian-vector product with d changes along g
        third = (P.hvp(theta + delta * g, d, x, t, "cross_entropy") - P.hvp(theta - delta * g, d, x, t, "cross_entropy")) / (2 * delta)
        P.set(theta)
    return gq, hc + hhd + third


def _metainit_nn(model: Any, shape: tuple, steps: int, lr: float, mu: float, eps: float, n_classes: int | None,
                 seed: int) -> tuple:
    P = _NNParams(model, only_matrices=True)
    if not P.arrays:
        raise ValueError("metainit found no weight tensor with 2 or more dimensions")
    norms0 = [float(np.linalg.norm(a)) for a in P.arrays]
    modes = {id(m): (m, m.training) for _, m in model.named_modules()}
    model.eval()
    rng = np.random.default_rng(seed)
    dt = P.arrays[0].dtype
    mem = np.zeros(len(P.arrays))
    objective, skipped = [], 0
    try:
        for _ in range(steps):
            x = rng.standard_normal(shape).astype(dt)
            k = n_classes or int(model.forward(x).shape[-1])
            t = rng.integers(0, k, size=shape[0])
            theta = P.get()
            gq, grad = _gq_nn(P, theta, x, t, eps)
            objective.append(gq)
            if grad is None or not np.all(np.isfinite(grad)):
                skipped += 1
                continue
            dots = P.dots(theta, grad)
            for j, a in enumerate(P.arrays):
                norm = float(np.linalg.norm(a))
                d = float(np.sign(dots[j] / norm))
                mem[j] = mu * mem[j] - lr * d
                new = _norm_step(norm, mem[j], 1e-3 * norms0[j])
                a *= new / norm
    finally:
        for m, mode in modes.values():
            m.training = mode
        model.zero_grad()
    norms1 = [float(np.linalg.norm(a)) for a in P.arrays]
    params = [(tuple(a.shape), str(a.dtype), mod) for a, mod in zip(P.arrays, P.modules)]
    return P.names, [b / a for a, b in zip(norms0, norms1)], norms0, norms1, objective, skipped, params


def gradient_quotient(model: Any, input_shape: Any, *, n_batches: int = 8, eps: float = 1e-5,
                      n_classes: int | None = None, seed: int = 0) -> float:
    """MetaInit's gradient quotient averaged over ``n_batches`` fixed random batches (no update).

    The same quantity :func:`metainit` minimizes (one fresh random batch per step, so its
    per-step values are noisy); with a fixed ``seed`` this is a deterministic measure to compare
    a model before and after. Weights with at least 2 dimensions only; evaluation mode.

    Returns
    -------
    float
    """
    shape = tuple(int(s) for s in input_shape)
    vals = []
    if framework(model) == "torch":
        import torch

        ws = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        gen = torch.Generator().manual_seed(int(seed))
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            for _ in range(int(n_batches)):
                x = torch.randn(shape, generator=gen, dtype=torch.float64).to(ws[0].dtype)
                out = model(x)
                t = torch.randint(0, n_classes or out.shape[-1], (shape[0],), generator=gen)
                g = torch.autograd.grad(torch.nn.functional.cross_entropy(out, t), ws, create_graph=True)
                hg = torch.autograd.grad(cast("torch.Tensor", sum((gi * gi).sum() / 2 for gi in g)), ws)
                num = sum(((gi.detach() - hi) / (gi.detach() + eps * torch.where(gi.detach() >= 0, 1.0, -1.0)) - 1)
                          .abs().sum() for gi, hi in zip(g, hg))
                vals.append(float(num) / sum(w.numel() for w in ws))
        finally:
            for m, mode in modes.items():
                m.training = mode
        return float(np.mean(vals))
    P = _NNParams(model, only_matrices=True)
    rng = np.random.default_rng(int(seed))
    modes = {id(m): (m, m.training) for _, m in model.named_modules()}
    model.eval()
    theta = P.get()
    try:
        for _ in range(int(n_batches)):
            xb = rng.standard_normal(shape).astype(P.arrays[0].dtype)
            tb = rng.integers(0, n_classes or int(model.forward(xb).shape[-1]), size=shape[0])
            vals.append(_gq_nn(P, theta, xb, tb, eps, with_grad=False)[0])
    finally:
        P.set(theta)
        for m, mode in modes.values():
            m.training = mode
        model.zero_grad()
    return float(np.mean(vals))
