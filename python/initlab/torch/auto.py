"""The ``"auto"`` recipe: find which activation follows each layer, then choose its init.

:func:`following_activations` runs one forward pass on the user's example input with forward
hooks on every module and a ``TorchFunctionMode`` that sees functional calls (``F.relu``,
``torch.tanh``, ``x.sigmoid()``, ...). A layer's output is followed through normalization,
dropout and reshaping until a nonlinearity consumes it. Without an example input the model is
traced symbolically with ``torch.fx`` instead (where it traces).

Rules (:func:`auto_rules`), first match wins:

* ReLU family → He normal (``kaiming_normal``, fan_in, gain √(2/(1+slope²)));
* tanh / sigmoid → Xavier normal; SELU → LeCun normal;
* any other activation (GELU, SiLU, Mish, ELU, softplus, ...) → N(0, g²/fan_in) with g the
  variance-preserving gain of ``initlab.gain`` (torch's ``calculate_gain`` where that module
  is unavailable);
* transformer projections (attention q/k/v/out, MLP output) followed by no nonlinearity →
  N(0, 1/fan_in) (std 1/√d); the output layer (``head``) → N(0, 0.02) (``output_std=``);
* recurrent weights: orthogonal per gate block; input-to-hidden weights Xavier; biases 0 and
  an LSTM's forget-gate bias (in ``bias_ih``) 1;
* embeddings N(0, 1/d); the last norm in each ResNet-style residual branch 0;
* other layers with no nonlinearity after them → LeCun-style N(0, 1/fan_in).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .roles import ParamInfo, is_linear_like, is_norm
from .rules import Fill, FnRule, resolve_named

__all__ = ["following_activations", "auto_rules"]

_MODULE_ACTS: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu", nn.LeakyReLU: "leaky_relu", nn.PReLU: "leaky_relu", nn.RReLU: "leaky_relu",
    nn.ELU: "elu", nn.CELU: "celu", nn.SELU: "selu", nn.GELU: "gelu", nn.SiLU: "silu", nn.Mish: "mish",
    nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Softplus: "softplus", nn.Hardswish: "hardswish",
    nn.Hardtanh: "tanh", nn.Hardsigmoid: "sigmoid", nn.Softsign: "softsign", nn.GLU: "sigmoid",
}
_FUNC_ACTS = {
    "relu": "relu", "relu_": "relu", "relu6": "relu", "leaky_relu": "leaky_relu", "leaky_relu_": "leaky_relu",
    "elu": "elu", "elu_": "elu", "celu": "celu", "selu": "selu", "selu_": "selu", "gelu": "gelu", "silu": "silu",
    "mish": "mish", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
    "softplus": "softplus", "hardswish": "hardswish", "hardtanh": "tanh", "softsign": "softsign",
}
# Functions that pass a layer's output on without changing which layer it "is".
_PASS = {"view", "reshape", "transpose", "permute", "flatten", "contiguous", "dropout", "to", "float",
         "chunk", "split", "unflatten", "squeeze", "unsqueeze", "__getitem__", "type_as", "clone"}
_RELU = ("relu", "leaky_relu")


def _class_act(mod: nn.Module) -> str | None:
    for t, a in _MODULE_ACTS.items():
        if isinstance(mod, t):
            return a
    n = type(mod).__name__.lower()  # activation classes of other libraries (HF ACT2FN, timm)
    for key, a in (("gelu", "gelu"), ("silu", "silu"), ("swish", "silu"), ("mish", "mish"), ("relu", "relu"),
                   ("tanh", "tanh"), ("sigmoid", "sigmoid")):
        if key in n and ("activation" in n or n.startswith(key) or n.endswith(key)):
            return a
    return None


def _is_layer(mod: nn.Module) -> bool:
    return is_linear_like(mod) or isinstance(mod, (nn.modules.conv._ConvNd, nn.Bilinear))


def following_activations(model: nn.Module, example_input: Any = None) -> dict[str, tuple[str, float]]:
    """``{layer module name: (activation, negative slope)}`` for every linear/conv layer whose
    output feeds a nonlinearity (``"linear"`` where none follows, ``"output"`` for the layer that produces the model's output).

    With ``example_input`` (a tensor, a tuple of positional inputs or a dict of keyword inputs)
    the forward pass is run once under ``torch.no_grad()``; without it, ``torch.fx`` traces
    the model symbolically.
    """
    if example_input is None:
        return _fx_activations(model)
    layer_of: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keep outputs alive so their ids are not reused
    found: dict[str, tuple[str, float]] = {}
    names = {id(m): n for n, m in model.named_modules()}

    def mark(x: Any, act: str, slope: float) -> None:
        if isinstance(x, torch.Tensor):
            lay = layer_of.get(id(x))
            if lay is not None and lay not in found:
                found[lay] = (act, slope)

    def fwd_hook(mod: nn.Module, inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor):
            return
        name = names.get(id(mod))
        if _is_layer(mod):
            layer_of[id(out)] = name
            keep.append(out)
        elif is_norm(mod) or isinstance(mod, (nn.Dropout, nn.Identity, nn.Flatten)):
            if inp and isinstance(inp[0], torch.Tensor) and id(inp[0]) in layer_of:
                layer_of[id(out)] = layer_of[id(inp[0])]
                keep.append(out)

    def pre_hook(mod: nn.Module, inp: Any) -> None:
        act = _class_act(mod)
        if act is not None and inp:
            slope = float(getattr(mod, "negative_slope", 0.01 if act == "leaky_relu" else 0.0))
            if isinstance(mod, nn.PReLU):
                slope = float(mod.init) if hasattr(mod, "init") else 0.25
            mark(inp[0], act, slope)

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            fname = getattr(func, "__name__", "")
            if fname in _FUNC_ACTS and args:
                slope = 0.0
                if _FUNC_ACTS[fname] == "leaky_relu":
                    slope = float(kwargs.get("negative_slope", args[1] if len(args) > 1 else 0.01))
                mark(args[0], _FUNC_ACTS[fname], slope)
            elif fname in _PASS and args and isinstance(args[0], torch.Tensor) and id(args[0]) in layer_of:
                src = layer_of[id(args[0])]
                for o in (out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(o, torch.Tensor):
                        layer_of[id(o)] = src
                        keep.append(o)
            return out

    handles = []
    try:
        for m in model.modules():
            handles.append(m.register_forward_hook(fwd_hook))
            handles.append(m.register_forward_pre_hook(pre_hook))
        with torch.no_grad(), Mode():
            if isinstance(example_input, dict):
                out = model(**example_input)
            elif isinstance(example_input, (tuple, list)):
                out = model(*example_input)
            else:
                out = model(example_input)
    finally:
        for h in handles:
            h.remove()
    # The layer whose output is the model's output (logits) is the output layer.
    first = out
    if not isinstance(first, torch.Tensor):
        first = getattr(out, "logits", None)
        if first is None and isinstance(out, (tuple, list)) and out:
            first = out[0]
        if first is None and isinstance(out, dict) and out:
            first = next(iter(out.values()))
    if isinstance(first, torch.Tensor) and id(first) in layer_of and layer_of[id(first)] not in found:
        found[layer_of[id(first)]] = ("output", 0.0)
    for n, m in model.named_modules():
        if _is_layer(m) and n not in found:
            found[n] = ("linear", 0.0)
    return found


def _fx_activations(model: nn.Module) -> dict[str, tuple[str, float]]:
    import torch.fx

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"recipe 'auto' could not trace {type(model).__name__} symbolically ({type(e).__name__}: {e}); "
            "pass example_input=<a batch the model accepts> so the activations are found from a real forward pass"
        ) from None
    mods = dict(gm.named_modules())
    found: dict[str, tuple[str, float]] = {}

    def act_of(node: Any) -> tuple[str, float] | None:
        if node.op == "call_module":
            m = mods.get(node.target)
            a = _class_act(m) if m is not None else None
            if a is not None:
                return a, float(getattr(m, "negative_slope", 0.0))
            return None
        if node.op in ("call_function", "call_method"):
            name = getattr(node.target, "__name__", node.target)
            if name in _FUNC_ACTS:
                slope = float(node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)) \
                    if _FUNC_ACTS[name] == "leaky_relu" else 0.0
                return _FUNC_ACTS[name], slope
        return None

    def passes(node: Any) -> bool:
        if node.op == "call_module":
            m = mods.get(node.target)
            return m is not None and (is_norm(m) or isinstance(m, (nn.Dropout, nn.Identity, nn.Flatten)))
        name = getattr(node.target, "__name__", node.target)
        return node.op in ("call_function", "call_method") and name in _PASS

    for node in gm.graph.nodes:
        if node.op != "call_module" or not _is_layer(mods[node.target]):
            continue
        frontier, seen = [node], set()
        result = None
        while frontier and result is None:
            nxt = []
            for n in frontier:
                for u in n.users:
                    if u in seen:
                        continue
                    seen.add(u)
                    a = act_of(u)
                    if a is not None:
                        result = a
                        break
                    if passes(u):
                        nxt.append(u)
                if result is not None:
                    break
            frontier = nxt
        if result is None and any(u.op == "output" for u in node.users):
            result = ("output", 0.0)
        found[node.target] = result or ("linear", 0.0)
    for n, m in model.named_modules():
        if _is_layer(m) and n not in found:
            found[n] = ("linear", 0.0)
    return found


def _act_gain(act: str, slope: float) -> tuple[float, str]:
    """Variance-preserving gain of ``act`` and where it came from."""
    from ..fans import calculate_gain

    if act in _RELU:
        return math.sqrt(2.0 / (1.0 + slope * slope)), "calculate_gain"
    if act in ("tanh", "sigmoid", "selu", "linear"):
        return float(calculate_gain(act)), "calculate_gain"
    try:
        from ..activation_gain import gain
    except ImportError:
        gain = None
    if gain is not None:
        try:
            return float(gain(act)), "initlab.gain"
        except (ValueError, KeyError, TypeError):
            pass
    return 1.0, "unknown activation: gain 1"


def auto_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Any]:
    """The ``"auto"`` recipe's rules for ``model`` (see the module docstring)."""
    acts = following_activations(model, opts.get("example_input"))
    out_std = float(opts.get("output_std", 0.02))

    def weight_fill(i: ParamInfo) -> Fill:
        act, slope = acts.get(i.module_name, ("linear", 0.0))
        if i.role == "head" or act == "output":
            return Fill("normal", {"mean": 0.0, "std": out_std, "after": "output"})
        if act in _RELU:
            f = resolve_named("kaiming_normal", {"a": slope, "nonlinearity": "leaky_relu"}, i)
        elif act in ("tanh", "sigmoid"):
            f = resolve_named("xavier_normal", {}, i)
        elif act == "selu":
            f = resolve_named("lecun_normal", {}, i)
        elif act == "linear":
            std = 1.0 / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0
            f = Fill("normal", {"mean": 0.0, "std": std, "fan_in": i.fan_in})
        else:
            g, src = _act_gain(act, slope)
            std = g / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0
            f = Fill("normal", {"mean": 0.0, "std": std, "gain": g, "gain_from": src, "fan_in": i.fan_in})
        return Fill(f.init, {**f.params, "after": act if act not in _RELU else f"{act}({slope:g})"}, f.post)

    def rnn_fill(i: ParamInfo) -> Fill:
        h = i.extra["hidden_size"]
        if i.role == "recurrent":
            return Fill("recurrent_orthogonal", {"gain": 1.0, "hidden_size": h, "gates": i.extra["gates"]})
        if i.role == "input_to_hidden":
            # Xavier for one gate block: fans (input, hidden)
            fi = i.param.shape[1]
            b = math.sqrt(6.0 / (fi + h))
            return Fill("uniform", {"a": -b, "b": b, "bound": b, "fan_in": fi, "fan_out": h})
        post: tuple = ()
        if i.extra["rnn_kind"] in ("LSTM", "LSTMCell") and i.pname.startswith("bias_ih"):
            post = (("constant_slice", h, 2 * h, 1.0),)  # gate order i, f, g, o: forget gate bias 1
        return Fill("constant", {"value": 0.0}, post)

    def emb_fill(i: ParamInfo) -> Fill:
        d = i.param.shape[1] if i.param.dim() == 2 else 1
        return Fill("normal", {"mean": 0.0, "std": 1.0 / math.sqrt(d)})

    return [
        FnRule("auto: recurrent (orthogonal per gate, Xavier input, forget-gate bias 1)",
                   lambda i: isinstance(i.module, (nn.RNNBase, nn.RNNCellBase)) and "hidden_size" in i.extra, rnn_fill),
        FnRule("auto: zero-init last norm of each residual branch",
                   lambda i: i.extra.get("last_norm_in_block") is True, lambda i: Fill("constant", {"value": 0.0})),
        FnRule("auto: embedding N(0, 1/d)", lambda i: i.role == "embedding", emb_fill),
        FnRule("auto: weight by the activation that follows",
                   lambda i: i.pname == "weight" and _is_layer(i.module), weight_fill),
        FnRule("auto: MultiheadAttention in_proj N(0, 1/d)",
                   lambda i: isinstance(i.module, nn.MultiheadAttention) and i.role == "attention_qkv",
                   lambda i: Fill("normal", {"mean": 0.0, "std": 1.0 / math.sqrt(i.param.shape[1])})),
    ]
