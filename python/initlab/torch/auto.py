"""The ``"auto"`` recipe: find which activation follows each layer, then choose its init.

:func:`following_activations` runs one forward pass on the user's example input with forward
hooks on every module and a ``TorchFunctionMode`` that sees functional calls (``F.relu``,
``torch.tanh``, ``x.sigmoid()``, ...). A layer's output is followed through normalization,
dropout and reshaping until a nonlinearity consumes it. Without an example input the model is
traced symbolically with ``torch.fx`` instead (where it traces).

Rules (:func:`auto_rules`), first match wins. Every layer followed by an activation is held at a
pre-activation variance in the band [0.25, 4] at the model's own depth (mean-field theory of
:mod:`initlab.analysis.stability`, then data):

* ReLU family → He normal (``kaiming_normal``, fan_in, gain √(2/(1+slope²))): q = 2/(1+slope²)
  at every layer (a neutral map);
* activations whose unit fixed point attracts (tanh, sigmoid, SELU, ELU, softplus, softsign,
  ...) → the stable-fixed-point gain ``initlab.gain(act)`` (SELU: LeCun normal): every layer
  returns to q* = 1 at any depth (tanh no longer gets Xavier, whose variance decays to 0);
* the others (GELU, SiLU, Mish, hardswish: no attracting fixed point at any gain) → the same
  gain, which the mean field holds at q = 1;
* a layer that reads the model's input → variance 1 from the input's mean square (measured on
  ``example_input``, else assumed 1), not the gain meant for φ(previous layer);
* with ``example_input`` (option ``correct=True``, the default), the layers without an
  attracting fixed point (ReLU family included) get a data correction: LSUV without its
  orthonormal pre-init (:func:`correct`) measures each one's pre-activation variance on the
  example with the real activations and rescales it to 1, so finite-width drift — which grows
  by the map's slope per layer — cannot accumulate over depth. ``manifest.correction`` lists
  each scale;
* each weight's manifest entry names the ``scheme`` (``kaiming_normal``, ``lecun_normal``, ...),
  the ``activation`` that chose it and ``why`` (the fixed point and its slope, the input's mean
  square, the correction);
* transformer projections (attention q/k/v/out, MLP output) followed by no nonlinearity →
  N(0, 1/fan_in) (std 1/√d); the output layer (``head``) → N(0, 0.02) (``output_std=``);
* recurrent weights: orthogonal per gate block; input-to-hidden weights Xavier; biases 0 and
  an LSTM's forget-gate bias (in ``bias_ih``) 1;
* embeddings N(0, 1/d); the last norm in each ResNet-style residual branch 0;
* other layers with no nonlinearity after them → LeCun-style N(0, 1/fan_in).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .roles import ParamInfo, is_linear_like, is_norm
from .rules import Fill, FnRule, resolve_named

__all__ = ["following_activations", "auto_rules", "operating_point", "correct"]

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
    return _trace(model, example_input)[0]


def _input_mean_square(example_input: Any) -> tuple[set[int], float | None]:
    """ids of the floating-point tensors of ``example_input`` and their pooled mean square."""
    parts = list(example_input.values()) if isinstance(example_input, dict) else \
        list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    ts = [t for t in parts if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()]
    if not ts:
        return set(), None
    with torch.no_grad():
        tot = sum(float(t.detach().double().square().sum()) for t in ts)
    return {id(t) for t in ts}, tot / sum(t.numel() for t in ts)


def _to_meta(x: Any) -> Any:
    """``x`` (a tensor, or a tuple/list/dict of inputs) with every tensor moved to the meta device."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("meta").requires_grad_(x.requires_grad) if x.is_floating_point() else x.to("meta")
    if isinstance(x, dict):
        return {k: _to_meta(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_to_meta(v) for v in x) if type(x) in (tuple, list) else x
    return x


def _input_ids(example_input: Any) -> set[int]:
    parts = list(example_input.values()) if isinstance(example_input, dict) else \
        list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    return {id(t) for t in parts if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()}


def _trace(model: nn.Module, example_input: Any) -> tuple[dict[str, tuple[str, float]], set[str], float | None]:
    """(following activations, names of the layers that read the model's input, the input's mean
    square or None when it is unknown: no example input, or no floating-point input)."""
    if example_input is None:
        return _fx_activations(model)
    from_input, input_ms = _input_mean_square(example_input)
    # A model on the meta device (materialize plans before it allocates): the forward only has to
    # show the structure, so it runs on a meta copy of the example; the input's mean square is
    # measured on the example itself. The data correction runs later on the allocated model.
    on_meta = any(p.is_meta for p in model.parameters())
    if on_meta:
        example_input = _to_meta(example_input)
        from_input = _input_ids(example_input)
    input_layers: set[str] = set()
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
        name = names[id(mod)]  # every hooked module is one of model.modules()
        if _is_layer(mod):
            layer_of[id(out)] = name
            keep.append(out)
            if inp and isinstance(inp[0], torch.Tensor) and id(inp[0]) in from_input:
                input_layers.add(name)
        elif isinstance(mod, (nn.Dropout, nn.Identity, nn.Flatten, nn.Unflatten)) and inp \
                and isinstance(inp[0], torch.Tensor) and id(inp[0]) in from_input:
            from_input.add(id(out))
            keep.append(out)
        if not _is_layer(mod) and (is_norm(mod) or isinstance(mod, (nn.Dropout, nn.Identity, nn.Flatten))):
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
            elif fname in _PASS and args and isinstance(args[0], torch.Tensor) and id(args[0]) in from_input:
                for o in (out if isinstance(out, (tuple, list)) else (out,)):
                    if isinstance(o, torch.Tensor):  # a reshaped input is still the input
                        from_input.add(id(o))
                        keep.append(o)
            return out

    handles = []
    try:
        for m in model.modules():
            handles.append(m.register_forward_hook(fwd_hook))
            handles.append(m.register_forward_pre_hook(pre_hook))
        from .probes import model_state

        # The model's mode is kept (its activations as in training), but whatever the forward
        # updates (BatchNorm running statistics, from weights not initialized yet) is restored.
        with model_state(model), Mode():
            try:
                if isinstance(example_input, dict):
                    out = model(**example_input)
                elif isinstance(example_input, (tuple, list)):
                    out = model(*example_input)
                else:
                    out = model(example_input)
            except Exception as e:
                if not on_meta:
                    raise
                raise ValueError(
                    f"recipe 'auto' with example_input traces the forward pass of a model on the meta device on a "
                    f"meta copy of the example, and {type(model).__name__}'s forward cannot run there "
                    f"({type(e).__name__}: {e}). Either materialize it with recipe 'auto' without example_input "
                    "(a symbolic trace) or with another recipe, then call initlab.torch.init_module(model, 'auto', "
                    "example_input=...) on the allocated model; or build the model eagerly") from None
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
    return found, input_layers, input_ms


def _fx_activations(model: nn.Module) -> tuple[dict[str, tuple[str, float]], set[str], None]:
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

    from_input = {n for n in gm.graph.nodes if n.op == "placeholder"}
    input_layers: set[str] = set()
    for node in gm.graph.nodes:  # nodes come in execution order: a reshaped input is the input
        if node not in from_input and passes(node) and node.args and node.args[0] in from_input:
            from_input.add(node)
        if node.op == "call_module" and _is_layer(mods[node.target]) and node.args and node.args[0] in from_input:
            input_layers.add(node.target)
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
    return found, input_layers, None


_ATTRACTING_SLOPE = 0.95  # V'(q*) below this: the fixed point pulls deviations back within a few layers


@functools.lru_cache(maxsize=128)
def operating_point(act: str, slope: float = 0.0) -> dict[str, Any]:
    """How the mean-field variance map of ``act`` behaves at its unit fixed point.

    The map is ``q <- sigma_w^2 E[phi(sqrt(q) z)^2]`` (:mod:`initlab.analysis.stability`);
    ``sigma_w = initlab.gain(act)`` makes ``q = 1`` (the centre of the band [0.25, 4] a signal
    should stay in) a fixed point. It is ``attracting`` when the map's slope there is below 1
    (tanh, sigmoid, SELU, ELU, softplus, softsign, ...): every layer's variance returns to 1
    whatever the depth. Otherwise (GELU, SiLU, Mish, hardswish: slope above 1, no attracting
    fixed point at any gain without biases) the mean field still keeps ``q = 1`` exactly when
    the input layer starts there, but finite-width deviations are not pulled back: they grow by
    the slope per layer. Returns ``{"q", "gain", "attracting", "slope", "source"}``.
    """
    from ..activation_gain import gain
    from ..analysis.stability import depth_stability

    params = {"negative_slope": slope} if act == "leaky_relu" else {}
    try:
        g = float(gain(act, **params))
        st = depth_stability(act, g, **params)
    except (ValueError, KeyError, TypeError):
        return {"q": 1.0, "gain": 1.0, "attracting": False, "slope": math.nan,
                "source": f"{act!r} is not a registered activation: gain 1"}
    sl = float(st.signal_growth)
    if abs(st.q_star - 1.0) < 1e-6 and sl < _ATTRACTING_SLOPE:
        return {"q": 1.0, "gain": g, "attracting": True, "slope": sl,
                "source": f"initlab.gain({act}) = {g:.5g}: q* = 1 is an attracting fixed point of the variance map "
                          f"(slope {sl:.3g} < 1, depth_stability), held at any depth"}
    kind = "neutral" if abs(sl - 1.0) < 1e-3 else "repelling"
    return {"q": 1.0, "gain": g, "attracting": False, "slope": sl,
            "source": f"initlab.gain({act}) = {g:.5g}: q = 1 is a fixed point of the variance map, but not an "
                      f"attracting one ({kind}: slope {sl:.3g}, depth_stability); mean field holds it from an "
                      "input layer at variance 1"}


def _act_label(act: str, slope: float) -> str:
    return f"{act}({slope:g})" if act == "leaky_relu" else act


def auto_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Any]:
    """The ``"auto"`` recipe's rules for ``model`` (see the module docstring)."""
    example = opts.get("example_input")
    acts, input_layers, input_ms = _trace(model, example)
    out_std = float(opts.get("output_std", 0.02))
    correct = bool(opts.get("correct", True)) and example is not None
    hidden = {n: a for n, a in acts.items() if a[0] not in ("linear", "output")}
    depth = len(hidden)

    def weight_fill(i: ParamInfo) -> Fill:
        act, slope = acts.get(i.module_name, ("linear", 0.0))
        if i.role == "head" or act == "output":
            return Fill("normal", {"mean": 0.0, "std": out_std, "after": "output"})
        if act == "linear":
            std = 1.0 / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0
            return Fill("normal", {"scheme": "lecun_normal (untruncated)", "activation": "none", "mean": 0.0,
                                   "std": std, "fan_in": i.fan_in, "after": "linear"})
        label = _act_label(act, slope)
        first = i.module_name in input_layers
        if act in _RELU:
            # He: q = 2/(1+a^2) at every layer, exactly (a neutral map: ReLU is positively homogeneous)
            f = resolve_named("kaiming_normal", {"a": slope, "nonlinearity": "leaky_relu"}, i)
            attracting = False
            why = (f"He (kaiming_normal) for {label}: the variance map is linear, so q = {f.params['gain'] ** 2:.4g} "
                   "is kept at every layer in mean field, and nothing pulls finite-width drift back")
            scheme = "kaiming_normal"
        else:
            op = operating_point(act, slope)
            attracting = op["attracting"]
            if first:  # the layer reads the model's input, not phi(previous pre-activation)
                ms = input_ms if input_ms is not None and input_ms > 0 else None
                var_w = 1.0 / (ms if ms is not None else 1.0)
                src = "measured on example_input" if ms is not None else "assumed: no floating-point example_input"
                why = (f"input layer: variance 1 from the input's mean square {ms if ms is not None else 1.0:.4g} "
                       f"({src}); the next layers keep it: {op['source']}")
            else:
                var_w = op["gain"] ** 2
                why = op["source"]
            if act == "selu":
                if abs(var_w - 1.0) < 1e-9:  # SELU's constants make q = 1 exact; the quadrature gives 1 +- 1e-15
                    var_w = 1.0
                f = resolve_named("variance_scaling", {"scale": var_w, "mode": "fan_in",
                                                       "distribution": "truncated_normal"}, i)
                scheme = "lecun_normal" if var_w == 1.0 else "variance_scaling(fan_in, truncated_normal)"
            else:
                g = math.sqrt(var_w)
                std = g / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0
                f = Fill("normal", {"mean": 0.0, "std": std, "gain": g, "mode": "fan_in", "fan": float(i.fan_in)})
                scheme = "kaiming_normal"
        if not attracting:
            grow = (operating_point(act, slope)["slope"] if act not in _RELU else 1.0) ** depth
            why += (f"; drift over the model's {depth} layers (a deviation grows x{grow:.3g}) is corrected from "
                    "example_input (manifest.correction)" if correct else
                    f"; nothing corrects finite-width drift over the model's {depth} layers (a deviation grows "
                    f"x{grow:.3g}): pass example_input= for the data correction")
        params = {"scheme": scheme, "activation": label, "why": why, **f.params, "after": label}
        if correct and not attracting:
            params["correction"] = "lsuv(example_input, target_var=1)"
        return Fill(f.init, params, f.post)

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

    def experts_fill(i: ParamInfo) -> Fill:
        # A fused experts tensor is not a module the trace can follow (no hooks fire per expert):
        # each expert's slice is a linear map of its own, N(0, 1/fan_in) with per-expert fans.
        std = 1.0 / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0
        act = _class_act(getattr(i.module, "act_fn", None) or nn.Identity())
        return Fill("normal", {"scheme": "lecun_normal (untruncated), per expert", "mean": 0.0, "std": std,
                               "fan_in": i.fan_in,
                               "why": f"{i.extra['experts']} fused experts: each slice is one expert's linear map "
                                      f"(fans per expert, not of the whole tensor); variance 1/fan_in"
                                      + (f" (its gated {act} is applied inside the experts module)" if act else "")})

    def emb_fill(i: ParamInfo) -> Fill:
        d = i.param.shape[1] if i.param.dim() == 2 else 1
        return Fill("normal", {"mean": 0.0, "std": 1.0 / math.sqrt(d)})

    return [
        FnRule("auto: recurrent (orthogonal per gate, Xavier input, forget-gate bias 1)",
                   lambda i: isinstance(i.module, (nn.RNNBase, nn.RNNCellBase)) and "hidden_size" in i.extra, rnn_fill),
        FnRule("auto: zero-init last norm of each residual branch",
                   lambda i: i.extra.get("last_norm_in_block") is True, lambda i: Fill("constant", {"value": 0.0})),
        FnRule("auto: embedding N(0, 1/d)", lambda i: i.role == "embedding", emb_fill),
        FnRule("auto: fused experts N(0, 1/fan_in) per expert", lambda i: "experts" in i.extra, experts_fill),
        FnRule("auto: bare weight used as a linear map N(0, 1/fan_in)", lambda i: "linear_by_use" in i.extra,
               lambda i: Fill("normal", {"scheme": "lecun_normal (untruncated)", "mean": 0.0,
                                         "std": 1.0 / math.sqrt(i.fan_in) if i.fan_in > 0 else 0.0, "fan_in": i.fan_in,
                                         "why": f"a bare weight used as a linear map ({i.extra['usage']}); the "
                                                "trace sees no module to follow: variance 1/fan_in"})),
        FnRule("auto: weight by the activation that follows",
                   lambda i: i.pname == "weight" and _is_layer(i.module), weight_fill),
        FnRule("auto: MultiheadAttention in_proj N(0, 1/d)",
                   lambda i: isinstance(i.module, nn.MultiheadAttention) and i.role == "attention_qkv",
                   lambda i: Fill("normal", {"mean": 0.0, "std": 1.0 / math.sqrt(i.param.shape[1])})),
    ]


def correct(model: nn.Module, example_input: Any, work: list[Any]) -> dict[str, Any] | None:
    """The data correction of ``recipe="auto"``: LSUV (:func:`initlab.torch.lsuv`, no orthonormal
    pre-init, so the chosen scheme is kept and only rescaled) on the layers whose activation has
    no attracting fixed point, measuring each layer's pre-activation variance on
    ``example_input`` with the model's real activations and rescaling it to the target. Returns
    the record for ``manifest.correction`` (None when no layer asks for it). A correction that
    fails warns and leaves the scheme's values (LSUV restores them)."""
    import warnings

    layers: dict[str, str] = {}
    for info, fill, _ in work:
        c = fill.params.get("correction")
        if c and info.module_name not in layers:
            layers[info.module_name] = c
    if not layers:
        return None
    target = 1.0  # the centre of the band [0.25, 4]; LSUV's own target
    from ._lsuv import lsuv

    mods = {n: m for n, m in model.named_modules()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rep = lsuv(model, example_input, target_var=target, orthogonal=False,
                       modules=[mods[n] for n in layers])
        except Exception as e:  # noqa: BLE001 - the scheme's values stay (LSUV restored them)
            rep, err = None, f"{type(e).__name__}: {e}"
    notes = [str(w.message) for w in caught if "did not converge" in str(w.message)]
    if rep is None:
        warnings.warn(f"initlab.torch recipe 'auto': the data correction on example_input failed ({err}); "
                      "the theory's scheme is kept", RuntimeWarning, stacklevel=3)
        return {"method": "lsuv", "applied": False, "error": err, "layers": {}}
    out = {"method": "lsuv", "applied": True, "target_var": target,
           "why": "activations without an attracting fixed point keep no variance by themselves: each layer's "
                  "pre-activation variance was measured on example_input (real activations) and rescaled",
           "layers": {(r.name if r.name != "(root)" else "") + ".weight": {
               "scale": float(r.scale), "var_before": float(r.var_before), "var_after": float(r.var_after),
               "converged": bool(r.converged)} for r in rep.layers}}
    if notes:
        out["notes"] = notes
        for n in notes:
            warnings.warn(n, RuntimeWarning, stacklevel=3)
    return out
