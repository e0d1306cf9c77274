"""Whole-module initialization with initlab's fills: :func:`init_module`."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from ..lsuv import named_seeds

__all__ = ["init_module", "METHODS"]

METHODS = (
    "torch_default", "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform",
    "lecun_normal", "lecun_uniform", "orthogonal", "normal", "trunc_normal", "variance_scaling",
)

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
_RNNS = (nn.RNNBase, nn.RNNCellBase)

# A plan entry: (qualified name, parameter, fill(tensor, seed)); the seed is applied at run time.
_Fill = Callable[[torch.Tensor, Any], Any]


def _uniform(bound: float) -> _Fill:
    from ..init import uniform_

    return lambda t, s: uniform_(t, -bound, bound, seed=s)


def _const(v: float) -> _Fill:
    from ..init import constant_

    return lambda t, s: constant_(t, v)


def _fan_in(w: torch.Tensor) -> int:
    from ..fans import compute_fans

    return compute_fans(tuple(w.shape))[0]


def _default_rule(mod: nn.Module, pname: str, p: torch.Tensor, mha_out_bias: set[int]) -> _Fill | None:
    """torch's own ``reset_parameters`` distribution for parameter ``pname`` of ``mod`` (None: unknown)."""
    from ..init import kaiming_uniform_, normal_, xavier_normal_, xavier_uniform_, zeros_

    if id(p) in mha_out_bias:  # MultiheadAttention zeroes its out_proj bias after Linear's init
        return lambda t, s: zeros_(t)
    if isinstance(mod, (nn.Linear, nn.modules.conv._ConvNd, nn.Bilinear)):
        w = mod.weight
        if isinstance(mod, nn.Bilinear):
            bound = 1.0 / math.sqrt(w.shape[1]) if w.shape[1] > 0 else 0.0
            return _uniform(bound)
        if pname == "weight":
            # kaiming_uniform_(a=sqrt(5)) = U(±1/sqrt(fan_in)), torch's Linear/Conv default
            return lambda t, s: kaiming_uniform_(t, a=math.sqrt(5), seed=s)
        if pname == "bias":
            fi = _fan_in(w) if w.dim() >= 2 else 0
            return _uniform(1.0 / math.sqrt(fi)) if fi > 0 else _const(0.0)
    if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)) and pname == "weight":
        pad = getattr(mod, "padding_idx", None)

        def emb(t: torch.Tensor, s: Any) -> None:
            normal_(t, 0.0, 1.0, seed=s)
            if pad is not None:
                zeros_(t[pad])

        return emb
    if isinstance(mod, _NORMS):
        return _const(1.0) if pname == "weight" else _const(0.0) if pname == "bias" else None
    if isinstance(mod, nn.MultiheadAttention):
        if pname in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return lambda t, s: xavier_uniform_(t, seed=s)
        if pname == "in_proj_bias":
            return _const(0.0)
        if pname in ("bias_k", "bias_v"):
            return lambda t, s: xavier_normal_(t, seed=s)
    if isinstance(mod, _RNNS):
        return _uniform(1.0 / math.sqrt(mod.hidden_size) if mod.hidden_size > 0 else 0.0)
    if isinstance(mod, nn.PReLU) and pname == "weight":
        return _const(float(getattr(mod, "init", 0.25)))
    return None


def _method_fill(method: str, kwargs: dict[str, Any]) -> _Fill:
    from .. import init as I

    def orth(t: torch.Tensor, s: Any) -> Any:
        from ..orthogonal import orthogonal_

        return orthogonal_(t, kwargs.get("gain", 1.0), seed=s)

    table: dict[str, _Fill] = {
        "kaiming_normal": lambda t, s: I.kaiming_normal_(t, **kwargs, seed=s),
        "kaiming_uniform": lambda t, s: I.kaiming_uniform_(t, **kwargs, seed=s),
        "xavier_normal": lambda t, s: I.xavier_normal_(t, **kwargs, seed=s),
        "xavier_uniform": lambda t, s: I.xavier_uniform_(t, **kwargs, seed=s),
        "lecun_normal": lambda t, s: I.lecun_normal_(t, **kwargs, seed=s),
        "lecun_uniform": lambda t, s: I.lecun_uniform_(t, **kwargs, seed=s),
        "orthogonal": orth,
        "normal": lambda t, s: I.normal_(t, **kwargs, seed=s),
        "trunc_normal": lambda t, s: I.trunc_normal_(t, **kwargs, seed=s),
        "variance_scaling": lambda t, s: I.variance_scaling_(t, **kwargs, seed=s),
    }
    return table[method]


def init_module(module: nn.Module, method: str = "kaiming_normal", *, seed: Any = None,
                unknown: str = "error", **kwargs: Any) -> nn.Module:
    """Re-initialize every parameter of ``module`` in place with initlab's fills; return ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        Parameters on the CPU, float32/float64/float16/bfloat16; written zero-copy (the
        ``Parameter`` objects, their storage and ``requires_grad`` are kept).
    method : str
        ``"torch_default"``: the distributions of torch's own ``reset_parameters`` —
        Linear/ConvNd/ConvTransposeNd weight U(±1/√fan_in) (``kaiming_uniform_(a=√5)``) and bias
        U(±1/√fan_in); Bilinear U(±1/√in1); Embedding N(0, 1) with the ``padding_idx`` row 0;
        BatchNorm/LayerNorm/GroupNorm/InstanceNorm/RMSNorm weight 1, bias 0;
        MultiheadAttention in-projection Xavier-uniform, its biases and ``out_proj.bias`` 0,
        ``bias_k``/``bias_v`` Xavier-normal; RNN/LSTM/GRU (and cells) U(±1/√hidden);
        PReLU its ``init`` value.
        Any other method (one of :data:`METHODS`: ``"kaiming_normal"``, ``"kaiming_uniform"``,
        ``"xavier_normal"``, ``"xavier_uniform"``, ``"lecun_normal"``, ``"lecun_uniform"``,
        ``"orthogonal"``, ``"normal"``, ``"trunc_normal"``, ``"variance_scaling"``) fills every
        parameter with at least 2 dimensions with that initializer (``kwargs`` are passed to it,
        e.g. ``nonlinearity="relu"``, ``std=0.02``); normalization weights become 1, and other
        parameters with fewer than 2 dimensions (biases, ...) get the ``"torch_default"`` rule
        of their module, biases of unknown modules 0.
    seed : int, Generator or None
        Each parameter's stream is derived from its qualified name (see
        :func:`initlab.lsuv.named_seeds`): with an int seed ``s``, key ``s`` and stream
        blake2b-8(name) with the top bit cleared; a Generator gives up one stream for the call
        and the per-name streams are taken under a key derived from it. Adding or removing a
        layer therefore leaves the other parameters' values unchanged. A parameter shared under
        several names is filled once, under its first name.
    unknown : {"error", "skip"}
        What to do with a parameter that has no rule (``"torch_default"``: a module type not
        listed above; other methods: a parameter with fewer than 2 dimensions of such a module).

    Returns
    -------
    torch.nn.Module
        ``module`` itself.

    Raises
    ------
    ValueError
        Unknown method or ``unknown``, a parameter without a rule (``unknown="error"``), a
        parameter not on the CPU. Everything is checked before the first write: on error no
        parameter has changed.
    TypeError
        A parameter of an unsupported dtype (integer, complex).

    Notes
    -----
    Buffers (BatchNorm running statistics, ...) are not touched. Large parameters are filled
    by initlab's OpenMP core with ``initlab.get_num_threads()`` threads, with the GIL released.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"init_module expects a torch.nn.Module, got {type(module).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown must be 'error' or 'skip', got {unknown!r}")
    if method == "torch_default" and kwargs:
        raise TypeError(f"method='torch_default' takes no extra options, got {sorted(kwargs)}")
    mha_out_bias = {id(m.out_proj.bias) for m in module.modules()
                    if isinstance(m, nn.MultiheadAttention) and m.out_proj.bias is not None}
    plan: list[tuple[str, torch.Tensor, _Fill]] = []
    seen: set[int] = set()
    fill = None if method == "torch_default" else _method_fill(method, kwargs)
    for mname, mod in module.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            qname = f"{mname}.{pname}" if mname else pname
            if isinstance(p, nn.parameter.UninitializedParameter):
                raise ValueError(f"parameter {qname} is not materialized yet (lazy module): run one forward pass first")
            if p.device.type != "cpu":
                raise ValueError(f"parameter {qname} is on {p.device}; init_module fills CPU parameters in place")
            if not p.is_floating_point() or p.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
                raise TypeError(f"parameter {qname} has dtype {p.dtype}; accepted: float32, float64, float16 or bfloat16")
            if fill is not None and p.dim() >= 2 and not isinstance(mod, _NORMS):
                rule: _Fill | None = fill
            elif fill is not None and isinstance(mod, _NORMS):
                rule = _const(1.0) if pname == "weight" else _const(0.0)
            else:
                rule = _default_rule(mod, pname, p, mha_out_bias)
                if rule is None and fill is not None and (pname == "bias" or pname.endswith("_bias")):
                    rule = _const(0.0)
            if rule is None:
                if unknown == "skip":
                    continue
                raise ValueError(f"no {method!r} rule for parameter {qname} of module type {type(mod).__name__}; "
                                 "pass unknown='skip' to leave such parameters as they are")
            plan.append((qname, p, rule))
    if fill is not None:
        fill(torch.empty(2, 2), 0)  # bad options (mode, nonlinearity, std, ...) fail here, before any write
    seeds = named_seeds(seed)  # resolve (and validate) the seed before the first write
    with torch.no_grad():
        for qname, p, rule in plan:
            rule(p, seeds(qname))
    return module

