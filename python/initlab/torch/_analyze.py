"""``initlab.torch.analyze``: the :class:`initlab.analysis.Trace` of a ``torch.nn.Module``, via hooks."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

__all__ = ["analyze"]

_HEADS = (nn.Linear, nn.modules.conv._ConvNd, nn.MultiheadAttention)
# Modules that continue a layer (its post-activation is the output of the last of them), as in
# initlab.analyze: activations, identity-like modules and normalizations.
_ATTACHABLE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity, nn.Dropout,
               nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


def analyze(module: nn.Module, x: Any, *, loss: str | Callable[[np.ndarray], tuple[float, np.ndarray]] = "random",
            backward: bool = True, seed: int = 0) -> Any:
    """Per-layer forward and backward statistics of a torch module: the same
    :class:`initlab.analysis.Trace` as :func:`initlab.analyze` gives for an :mod:`initlab.nn` model.

    A *layer* is a ``Linear``, ``ConvNd``/``ConvTransposeNd`` or ``MultiheadAttention`` (its
    attention output) together with the activations, dropouts and norms that directly follow
    it in the same container (in execution order). Statistics are computed by
    :func:`initlab.stats`; outputs are copied the moment a module returns, so in-place
    activations cannot alter the pre-activation figures.

    Parameters
    ----------
    module : torch.nn.Module
        Run in its current train/eval mode.
    x : torch.Tensor
        One batch, passed as ``module(x)``.
    loss : {"random", "sum", "mean_square"} or callable
        What to back-propagate, as :func:`initlab.analyze` (``"random"``: ``dL/dy`` is a fixed
        standard normal drawn from ``seed``).
    backward : bool
        Also run the backward pass. The parameters' ``.grad`` are restored afterwards.
    seed : int
        Seed of the random probe for ``loss="random"``.

    Returns
    -------
    initlab.analysis.Trace
        ``predicted`` is None for every layer (mean-field theory is computed for initlab.nn MLPs).

    Raises
    ------
    TypeError
        ``module`` is not a ``torch.nn.Module`` or ``x`` not a tensor.
    """
    from ..analysis.trace import LayerTrace, Trace, _loss, _summary, _unit_axes
    from ..stats import stats

    if not isinstance(module, nn.Module):
        raise TypeError(f"initlab.torch.analyze expects a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor batch, got {type(x).__name__}")
    fwd: list[tuple[str, nn.Module, torch.Tensor]] = []
    grads: dict[int, torch.Tensor] = {}  # id(module) -> dL/d(output)
    heads_inside = {id(m.out_proj) for m in module.modules() if isinstance(m, nn.MultiheadAttention)}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def f(mod: nn.Module, inp: Any, out: Any) -> None:
            o = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(o, torch.Tensor):
                return
            fwd.append((name, mod, o.detach().clone()))
            if backward and o.requires_grad:
                # A hook registered before an in-place op receives the gradient w.r.t. the value
                # before that op: dL/d(pre-activation) even under ReLU(inplace=True).
                o.register_hook(lambda g, k=id(mod): grads.__setitem__(k, g.detach().clone()))

        return f

    for name, m in module.named_modules():
        if id(m) in heads_inside:
            continue
        if isinstance(m, _HEADS) or not any(True for _ in m.children()):  # heads and leaf modules
            handles.append(m.register_forward_hook(hook(name)))
    params = list(module.parameters())
    saved_grads = [p.grad for p in params]
    value = None
    try:
        for p in params:
            p.grad = None
        with torch.enable_grad():
            xin = x.detach()
            y = module(xin)
            y = y[0] if isinstance(y, (tuple, list)) else y
            y_np = _np(y)
            if backward:
                value, dy = _loss(loss, y_np, seed)
                y.backward(torch.from_numpy(np.ascontiguousarray(dy)).to(dtype=y.dtype, device=y.device))
        weight_grads = {id(p): (None if p.grad is None else p.grad.detach().clone()) for p in params}
    finally:
        for h in handles:
            h.remove()
        for p, g in zip(params, saved_grads):
            p.grad = g

    groups: list[dict[str, Any]] = []
    is_open = False
    for name, mod, out in fwd:
        parent = name.rpartition(".")[0]
        if isinstance(mod, _HEADS):
            groups.append({"name": name, "head": mod, "parent": parent, "pre": out, "post": out, "tail": mod, "act": None})
            is_open = True
        elif is_open and isinstance(mod, _ATTACHABLE) and groups[-1]["parent"] == parent:
            g = groups[-1]
            g["post"], g["tail"] = out, mod
            if not isinstance(mod, (nn.Identity, nn.Dropout, nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
                                    nn.RMSNorm)):
                g["act"] = mod
        else:
            is_open = False
    layers = []
    for i, g in enumerate(groups, start=1):
        head, tail, act = g["head"], g["tail"], g["act"]
        post = _np(g["post"])
        lay = LayerTrace(index=i, name=g["name"] or "(root)", type=type(head).__name__,
                         activation=type(tail).__name__ if tail is not head else None, shape=tuple(post.shape),
                         pre=_summary(_np(g["pre"])), post=_summary(post))
        w = head.out_proj.weight if isinstance(head, nn.MultiheadAttention) else head.weight
        lay.weight = _summary(_np(w))
        if backward:
            if id(head) in grads:
                lay.grad_pre = _summary(_np(grads[id(head)]))
            if id(tail) in grads:
                lay.grad_post = _summary(_np(grads[id(tail)]))
            wg = weight_grads.get(id(w))
            if wg is not None:
                lay.weight_grad = _summary(_np(wg))
        if isinstance(act, nn.ReLU) and act is tail and post.ndim >= 1:
            per_unit = stats(post, axis=_unit_axes(post))
            lay.dead_fraction = float(np.mean(np.asarray(per_unit.zero_fraction) == 1.0))
        elif isinstance(act, nn.Tanh) and act is tail:
            lay.saturated_fraction = float(np.mean(np.abs(post) > 0.99))
        elif isinstance(act, nn.Sigmoid) and act is tail:
            lay.saturated_fraction = float(np.mean((post < 0.01) | (post > 0.99)))
        layers.append(lay)
    return Trace(layers, _summary(_np(x)), _summary(y_np), value, int(x.shape[0]) if x.dim() else 1)
