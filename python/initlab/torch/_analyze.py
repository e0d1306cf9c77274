"""``initlab.torch.analyze``: the :class:`initlab.analysis.Trace` of a ``torch.nn.Module``, via hooks."""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import probes
from .roles import ATT_OUT, is_norm

__all__ = ["analyze"]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus)
_PASS = (nn.Identity, nn.Dropout)


def _np(t: torch.Tensor) -> np.ndarray:
    """A host copy for the statistics (a device tensor is copied; the model stays where it is)."""
    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


def _is_float(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def _attachable(ev: probes.Event) -> bool:
    """Continues a layer (its post-activation is the output of the last of them): activations,
    dropouts, identities and norms, recognized by structure as well as by class (HF's
    ``NewGELUActivation``, ``LlamaRMSNorm``): a leaf module whose parameters are at most 1-D and
    whose output has the shape of its (floating-point) input."""
    if isinstance(ev.module, (*_ACTIVATIONS, *_PASS)):
        return True
    if any(p.dim() > 1 for p in ev.module.parameters(recurse=False)):
        return False
    return ev.input_shape == tuple(ev.output.shape)


def _is_activation(mod: nn.Module) -> bool:
    """An attached module that is an activation (not a norm, dropout or identity)."""
    if isinstance(mod, _ACTIVATIONS):
        return True
    if isinstance(mod, _PASS) or any(True for _ in mod.parameters(recurse=False)):
        return False
    return "norm" not in type(mod).__name__.lower()


def _feature_axis(mod: nn.Module) -> int:
    return 1 if isinstance(mod, nn.modules.conv._ConvNd) else -1


# ---- structure: families of repeated blocks, and layers the depth trends do not judge ---------

# Attention query/key projections (separate or packed with the values), by their conventional
# names in torch, Hugging Face, timm, fairseq and nanoGPT-style code: their gradients are scaled by
# the softmax's 1/sqrt(d) and by each other, so depth does not set their scale.
_QK = re.compile(r"(^|[._])(q|k|wq|wk|query|key|q_proj|k_proj|query_proj|key_proj|q_lin|k_lin|to_q|to_k|qk|"
                 r"qkv|c_attn|qkv_proj|query_key_value|wqkv|in_proj)$", re.IGNORECASE)
_QK_REASON = "attention query/key projection (gradient scaled by the softmax and by its partner)"
_ATT_OUT_REASON = "attention output (its input's scale is set by how alike the tokens are)"
_TABLE_REASON = "input is a constant table (relative position bias), not the data"
_LAYER_SCALE_MAX = 0.1  # a branch multiplied by less than this (rms) counts as layer-scaled
_NOT_SCALE = re.compile(r"(bias|token|embed|pos)", re.IGNORECASE)


def _structure_ids(module: nn.Module) -> dict[int, int]:
    """A small id per module for its structure: class name and its children's structures in order
    (two modules with equal ids are built alike, whatever their names)."""
    ids: dict[int, int] = {}
    table: dict[tuple[Any, ...], int] = {}

    def visit(m: nn.Module) -> int:
        k = id(m)
        if k not in ids:
            key = (type(m).__name__, tuple(visit(c) for c in m.children()))
            ids[k] = table.setdefault(key, len(table))
        return ids[k]

    visit(module)
    return ids


def _family(name: str, modules: dict[str, nn.Module], struct: dict[int, int]) -> str | None:
    """``name`` with every repeated block replaced by ``*``: a numeric component, or a module
    with children that has a sibling of the same structure (torchvision's
    ``encoder.layers.encoder_layer_3``). The layer's own component is kept."""
    if not name:
        return None
    parts = name.split(".")
    out = []
    for i, part in enumerate(parts[:-1]):
        parent = modules.get(".".join(parts[:i]))
        mod = modules.get(".".join(parts[: i + 1]))
        twin = False
        if parent is not None and mod is not None and any(True for _ in mod.children()):
            sid = struct.get(id(mod))
            twin = sum(1 for c in parent.children() if struct.get(id(c)) == sid) >= 2
        out.append("*" if part.isdigit() or twin else part)
    return ".".join(out + parts[-1:])


def _layer_scale(name: str, modules: dict[str, nn.Module]) -> float | None:
    """The smallest layer scale (rms of a per-channel multiplier: timm's ``gamma`` /
    ``LayerScale``, torchvision's ``layer_scale``, Hugging Face's ``layer_scale_parameter``) of a
    block that holds the layer, when below :data:`_LAYER_SCALE_MAX`; else None. Candidates: the
    1-D or ``(C, 1, 1)`` parameters held directly by an ancestor block or by a parameter-only
    child of it (not a layer, not a norm, not a bias, token or embedding)."""
    parts = name.split(".")
    found: float | None = None
    for i in range(1, len(parts)):
        block = modules.get(".".join(parts[:i]))
        if block is None:
            continue
        cands = list(block.named_parameters(recurse=False))
        for cname, child in block.named_children():
            if not any(True for _ in child.children()) and not probes.is_layer(child) and not is_norm(child):
                cands += [(f"{cname}.{n}", q) for n, q in child.named_parameters(recurse=False)]
        for pname, q in cands:
            shaped = q.dim() == 1 or (q.dim() == 3 and q.shape[1] == q.shape[2] == 1)
            if not shaped or q.numel() < 2 or _NOT_SCALE.search(pname) or q.is_meta:
                continue
            r = float(q.detach().float().square().mean().sqrt())
            if r < _LAYER_SCALE_MAX and (found is None or r < found):
                found = r
    return found


def _is_data(t: torch.Tensor, x: Any) -> bool:
    """Whether ``t`` holds one of the batch's own tensors (the model's input)."""
    cands = [x] if isinstance(x, torch.Tensor) else [v for v in getattr(x, "values", lambda: [])()
                                                       if isinstance(v, torch.Tensor)]
    return any(c.shape == t.shape and c.is_floating_point() and torch.equal(c.detach().to(t.device, t.dtype), t)
               for c in cands)


def _annotate(lay: Any, name: str, head: nn.Module, modules: dict[str, nn.Module], struct: dict[int, int],
              data_input: bool, norm: str | None = None) -> None:
    """Set the layer's structural family and the depth trends it is left out of, with why."""
    lay.family = _family(name, modules, struct)
    if lay.family is not None:  # the same block at another width is not the same part
        lay.family += f" [{probes.layer_weight(head).numel()}]"
    reasons: dict[str, str] = {}
    if norm is not None:  # its scale does not carry on (train mode) or is not yet used (fresh statistics)
        reasons["forward"] = f"normalized right after ({norm})"
    if _QK.search(name.rpartition(".")[2]):
        reasons = {"forward": _QK_REASON, "gradient": _QK_REASON}
    elif isinstance(head, nn.MultiheadAttention) or ATT_OUT.search(name):
        reasons.setdefault("forward", _ATT_OUT_REASON)
    if data_input:  # its input needs no gradient and is not the batch: a table (relative positions)
        reasons = {"forward": _TABLE_REASON, "gradient": _TABLE_REASON}
    scale = _layer_scale(name, modules) if name else None
    if scale is not None:
        reasons.setdefault("gradient", f"layer scale {scale:.0e}")
    lay.not_judged = reasons or None


def _in_chain(name: str, modules: dict[str, nn.Module]) -> bool:
    """Whether every module above the layer (the root excepted) is a plain container."""
    if name == "(root)":
        return True
    parts = name.split(".")
    return all(isinstance(modules.get(".".join(parts[:i])), (nn.Sequential, nn.ModuleList, nn.ModuleDict))
               for i in range(1, len(parts)))


def _positions(shape: tuple[int, ...] | None, axis: int, batch: int) -> int | None:
    """Positions per sample of a layer's input (pixels, tokens; 1 for a ``(N, C)`` matrix)."""
    if shape is None or len(shape) < 2:
        return None
    return max(1, math.prod(shape) // max(1, batch * shape[axis]))


def _side_branches(layers: list[Any], positions: list[int | None]) -> None:
    """Mark the layers of side branches: a reduction to fewer positions (a squeeze-excitation's
    pooling) after which a later layer reads more positions again, the trunk going on at full
    size. The branch's pooling is then not the trunk's (diagnose does not divide it out)."""
    for i, lay in enumerate(layers):
        p = positions[i]
        if not lay.reduction or p is None or lay.side_branch:
            continue
        j = i + 1
        while j < len(layers) and (positions[j] is None or positions[j] <= p):  # type: ignore[operator]
            j += 1
        if j >= len(layers):
            continue  # the trunk itself was reduced (a classifier after global pooling)
        gate = any("sigmoid" in (lay_k.activation or "").lower() for lay_k in layers[i:j])
        kind = "SE gate" if gate else "pooled, returns to the trunk"
        for lay_k in layers[i:j]:
            lay_k.side_branch = kind
            for d in ("forward", "gradient"):
                lay_k.not_judged = dict(lay_k.not_judged or {})
                lay_k.not_judged.setdefault(d, f"side branch ({kind})")


def analyze(module: nn.Module, x: Any, *, loss: str | Callable[[np.ndarray], tuple[float, np.ndarray]] = "random",
            backward: bool = True, seed: int = 0, output: str | int | None = None) -> Any:
    """Per-layer forward and backward statistics of a torch module: the same
    :class:`initlab.analysis.Trace` as :func:`initlab.analyze` gives for an :mod:`initlab.nn` model.

    A *layer* is a ``Linear``, ``ConvNd``/``ConvTransposeNd``, ``MultiheadAttention`` (its
    attention output) or Hugging Face ``Conv1D`` together with the activations, dropouts and
    norms that directly follow it in the same container (in execution order). Statistics are
    computed by :func:`initlab.stats`; outputs are copied the moment a module returns, so
    in-place activations cannot alter the pre-activation figures.

    Works on real models: Hugging Face models (a ``ModelOutput`` is reduced to its ``logits``,
    or to the entry named by ``output``), integer token-id inputs (statistics start at the first
    floating-point activation, e.g. the embedding's output: integer tensors are never
    summarized), keyword inputs given as a mapping.

    Parameters
    ----------
    module : torch.nn.Module
        Run in its current train/eval mode (call ``module.eval()`` first to switch dropout off),
        on whatever device it is (``x`` must be there too): the forward and backward passes run
        on that device and the recorded tensors are copied to the host for the statistics; the
        model is not moved.
    x : torch.Tensor or mapping
        One batch: a tensor is passed as ``module(x)``, a mapping (``{"input_ids": ids,
        "attention_mask": mask}``, a tokenizer's ``BatchEncoding``) as ``module(**x)``.
    loss : {"random", "sum", "mean_square"} or callable
        What to back-propagate from the selected output, as :func:`initlab.analyze`
        (``"random"``: ``dL/dy`` is a fixed standard normal drawn from ``seed``).
    backward : bool
        Also run the backward pass. The parameters' ``.grad`` are restored afterwards.
    seed : int
        Seed of the random probe for ``loss="random"``.
    output : str, int or None
        Which tensor of the model's output is ``y``: ``None`` takes a tensor as is, the
        ``"logits"`` entry of a mapping / ``ModelOutput`` and the first element of a tuple; a
        string names a mapping entry (``"last_hidden_state"``), an int a tuple position.

    Returns
    -------
    initlab.analysis.Trace
        ``predicted`` is None for every layer (mean-field theory is computed for initlab.nn
        MLPs). ``trace.input`` describes the input when it is floating-point, otherwise the
        first floating-point activation (``trace.input_name`` says which).

    Raises
    ------
    TypeError
        ``module`` is not a ``torch.nn.Module``, ``x`` not a tensor or mapping, ``output`` of
        the wrong type.
    ValueError
        ``output`` does not name a tensor of the model's output (the message lists the
        available keys), or the selected output is not floating-point.

    Notes
    -----
    Per layer the trace also records its input and ``dL/d(input)`` (gradient w.r.t. the
    tensor, i.e. summed over all its consumers), the gain (output mean square without the bias
    over the input's) and whether a pooling/selection step precedes it; :meth:`Trace.diagnose`
    uses them. Hooks are removed, ``.grad``, the train/eval flags and BatchNorm running
    statistics restored (the analysis leaves no trace in the model), also after an error.
    """
    from ..analysis.diagnose import CHAIN
    from ..analysis.trace import LayerTrace, Trace, _loss, _reduction, _summary, _unit_axes
    from ..stats import stats

    if not isinstance(module, nn.Module):
        raise TypeError(f"initlab.torch.analyze expects a torch.nn.Module, got {type(module).__name__}")
    probes.check_batch(x)
    if output is not None and (isinstance(output, bool) or not isinstance(output, (str, int))):
        raise TypeError(f"output must be a key (str), a position (int) or None, got {output!r}")
    heads_inside = {id(m.out_proj) for m in module.modules() if isinstance(m, nn.MultiheadAttention)}
    first = probes.FirstFloat()
    if isinstance(x, torch.Tensor):
        first.offer(x, "input")
    rec = probes.Recorder(backward=backward, keep_input=lambda m: probes.is_layer(m) or probes.is_pooling(m))
    watched = [(n, m) for n, m in module.named_modules()
               if id(m) not in heads_inside and (probes.is_layer(m) or not any(True for _ in m.children()))]
    params = list(module.parameters())
    saved_grads = [p.grad for p in params]
    value = None
    try:
        for p in params:
            p.grad = None
        with probes.forward_hooks(first.hooks(module) + rec.hooks(watched)), probes.model_state(module, grad=True):
            batch = x.detach() if isinstance(x, torch.Tensor) else x
            y = probes.select_output(probes.call(module, batch), output)
            if not y.is_floating_point():
                raise ValueError(f"the selected model output has dtype {y.dtype}; analyze needs a floating-point "
                                 "output (choose another with output=...)")
            y_np = _np(y)
            if backward:
                value, dy = _loss(loss, y_np, seed)
                if not y.requires_grad:
                    raise ValueError("the selected model output does not require grad (no parameter with "
                                     "requires_grad on its path); use backward=False")
                y.backward(torch.from_numpy(np.ascontiguousarray(dy)).to(dtype=y.dtype, device=y.device))
        weight_grads = {id(p): (None if p.grad is None else p.grad.detach().clone()) for p in params}
    finally:
        g: Any  # (a saved gradient here, a layer group's dict below)
        for p, g in zip(params, saved_grads):
            p.grad = g
    fwd, grads, grads_in = rec.events, rec.grads, rec.grads_in

    def ms(t: torch.Tensor | None) -> float | None:
        # On the host: float64 is not available on every device (MPS).
        return None if t is None or not t.numel() else float(t.detach().cpu().double().square().mean())

    def ratio(num: float | None, den: float | None) -> float | None:
        return num / den if num is not None and den else None

    groups: list[dict[str, Any]] = []
    is_open = False
    pool = None  # the last pooling event since the last layer
    for k, ev in enumerate(fwd):
        parent = ev.name.rpartition(".")[0]
        if probes.is_pooling(ev.module):
            pool = k
        if probes.is_layer(ev.module):
            groups.append({"name": ev.name, "head": ev.module, "parent": parent, "pre": k, "post": k, "tail": k,
                           "act": None, "pool": pool})
            pool = None
            is_open = True
        elif is_open and _attachable(ev) and groups[-1]["parent"] == parent:
            g = groups[-1]
            g["post"] = g["tail"] = k
            if _is_activation(ev.module):
                g["act"] = ev.module
            elif is_norm(ev.module):
                g["norm"] = type(ev.module).__name__
        else:
            is_open = False
    layers = []
    positions: list[int | None] = []
    modules = dict(module.named_modules())
    struct = _structure_ids(module)
    for i, g in enumerate(groups, start=1):
        head, act, ev = g["head"], g["act"], fwd[g["pre"]]
        tail = fwd[g["tail"]].module
        post = _np(fwd[g["post"]].output)
        lay = LayerTrace(index=i, name=g["name"] or "(root)", type=type(head).__name__,
                         activation=type(tail).__name__ if tail is not head else None, shape=tuple(post.shape),
                         pre=_summary(_np(ev.output)), post=_summary(post))
        w = probes.layer_weight(head)
        lay.weight = _summary(_np(w))
        if ev.input is not None:
            lay.input = _summary(_np(ev.input))
            if lay.input["ms"] > 0:
                lay.gain = ratio(ms(probes.without_bias(head, ev.output)), lay.input["ms"])
        if i > 1 and g["pre"] > 0:
            # What was reduced: a pooling module's input, else the last tensor a module produced
            # before this layer (a functional mean or class-token selection happened after it).
            prev_axis = _feature_axis(groups[i - 2]["head"])
            p = g["pool"]
            if p is not None:
                lay.reduction = _reduction(fwd[p].input_shape, prev_axis, ev.input_shape, _feature_axis(head),
                                           type(fwd[p].module).__name__)
                if lay.reduction:
                    lay.reduction_scale = {"forward": ratio(ms(fwd[p].output), ms(fwd[p].input)),
                                           "backward": ratio(ms(grads_in.get(p)), ms(grads.get(p)))}
            else:
                b = g["pre"] - 1
                lay.reduction = _reduction(tuple(fwd[b].output.shape), prev_axis, ev.input_shape, _feature_axis(head),
                                           None)
                if lay.reduction:
                    lay.reduction_scale = {"forward": ratio(ms(ev.input), ms(fwd[b].output)),
                                           "backward": ratio(ms(grads.get(b)), ms(grads_in.get(g["pre"])))}
        if backward:
            if g["pre"] in grads:
                lay.grad_pre = _summary(_np(grads[g["pre"]]))
            if g["tail"] in grads:
                lay.grad_post = _summary(_np(grads[g["tail"]]))
            if g["pre"] in grads_in:
                lay.grad_input = _summary(_np(grads_in[g["pre"]]))
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
        _annotate(lay, g["name"], head, modules, struct, data_input=(backward and ev.input is not None
                                                                    and g["pre"] not in grads_in
                                                                    and not _is_data(ev.input, x)),
                  norm=g.get("norm"))
        positions.append(_positions(ev.input_shape, _feature_axis(head), probes.batch_size(x)))
        layers.append(lay)
    _side_branches(layers, positions)
    if all(_in_chain(lay.name, modules) for lay in layers):
        for lay in layers:
            lay.family = CHAIN
    if first.tensor is None:
        inp_stats, inp_name = _summary(np.zeros(0)), "no floating-point activation"
    else:
        inp_stats, inp_name = _summary(_np(first.tensor)), first.name
    return Trace(layers, inp_stats, _summary(y_np), value, probes.batch_size(x), input_name=inp_name)
