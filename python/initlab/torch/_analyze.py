"""``initlab.torch.analyze``: the :class:`initlab.analysis.Trace` of a ``torch.nn.Module``, via hooks."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from . import probes

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
        else:
            is_open = False
    layers = []
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
        layers.append(lay)
    if first.tensor is None:
        inp_stats, inp_name = _summary(np.zeros(0)), "no floating-point activation"
    else:
        inp_stats, inp_name = _summary(_np(first.tensor)), first.name
    return Trace(layers, inp_stats, _summary(y_np), value, probes.batch_size(x), input_name=inp_name)
