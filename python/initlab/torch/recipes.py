"""Recipes: named, ordered lists of rules for whole models.

* ``"torch_default"`` — each torch.nn module's own ``reset_parameters`` distributions.
* ``"hf"`` — Hugging Face transformers' ``_init_weights`` conventions, read from the model's
  config and, for a ``PreTrainedModel``, recorded from the model's own ``_init_weights``
  (without letting it write), so architecture-specific choices (GPT-2's scaled ``c_proj``,
  ViT's truncated-normal tokens, Gemma's ``(1 + w)`` norms at 0) come out exactly.
* ``"timm"`` — timm's own init of its families (EfficientNet/MobileNetV3, RegNet, ResNet/ResNeXt,
  ConvNeXt, ViT/DeiT, EVA, Swin, MaxViT/CoAtNet, LeViT), each recognized by structure
  (:mod:`.recipes_timm`).
* ``"torchvision"`` — torchvision's constructors' init of resnet*/resnext*, mobilenet_v2/v3,
  efficientnet* and vit_*, recognized by structure (:mod:`.recipes_torchvision`).
* ``"auto"`` — initialization chosen from the traced forward pass (see :mod:`.activations`).
* a single initializer name (``"kaiming_normal"``, ``"xavier_uniform"``, ``"orthogonal"``, ...)
  for every weight, with norms 1/0 and biases 0.

Each builder returns a list of :class:`~initlab.torch.rules.Rule`; the first rule that matches
a parameter decides.
"""

from __future__ import annotations

import math
from typing import Any, Callable, cast

import torch
from torch import nn

from .roles import ParamInfo, is_linear_like
from .rules import Fill, FnRule, Rule, resolve_named

__all__ = ["RECIPES", "METHODS", "build_recipe"]

SINGLE = (
    "kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "lecun_normal",
    "lecun_uniform", "orthogonal", "normal", "trunc_normal", "variance_scaling",
)
#: the recipes that existed before the named library recipes (kept for compatibility)
METHODS = ("torch_default",) + SINGLE
RECIPES = ("torch_default", "hf", "timm", "torchvision", "own", "auto") + SINGLE

_WEIGHT_ROLES = ("weight", "attention_qkv", "attention_out", "mlp_in", "mlp_out", "head",
                 "input_to_hidden", "recurrent", "embedding")


def _bound(b: float) -> Fill:
    return Fill("uniform", {"a": -b, "b": b, "bound": b})


def _bilinear_bound(m: nn.Bilinear) -> Fill:
    return _bound(1.0 / math.sqrt(m.weight.shape[1])) if m.weight.shape[1] else _const(0.0)


def _rnn_bound(m: nn.RNNBase | nn.RNNCellBase) -> Fill:
    return _bound(1.0 / math.sqrt(m.hidden_size)) if m.hidden_size else _const(0.0)


def _const(v: float) -> Fill:
    return Fill("constant", {"value": float(v)})


def _owner_weight(info: ParamInfo) -> torch.Tensor | None:
    w = getattr(info.module, "weight", None)
    return w if isinstance(w, torch.Tensor) else None


# ---- torch_default ----------------------------------------------------------------------------


def _torch_default(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .roles import weight_fans

    mha_out_bias = {id(m.out_proj.bias) for m in model.modules()
                    if isinstance(m, nn.MultiheadAttention) and m.out_proj.bias is not None}

    def linear_bias(i: ParamInfo) -> Fill:
        w = _owner_weight(i)
        fi = weight_fans(None, tuple(w.shape))[0] if w is not None and w.dim() >= 2 else 0
        return _bound(1.0 / math.sqrt(fi)) if fi > 0 else _const(0.0)

    torch_linear = (nn.Linear, nn.modules.conv._ConvNd)
    return [
        FnRule("torch_default: MultiheadAttention out_proj.bias 0", lambda i: id(i.param) in mha_out_bias, lambda i: _const(0.0)),
        FnRule("torch_default: HF Conv1D weight N(0, 0.02)",
               lambda i: is_linear_like(i.module) and not isinstance(i.module, nn.Linear) and i.pname == "weight",
               lambda i: Fill("normal", {"mean": 0.0, "std": 0.02})),
        FnRule("torch_default: HF Conv1D bias 0",
               lambda i: is_linear_like(i.module) and not isinstance(i.module, nn.Linear) and i.pname == "bias",
               lambda i: _const(0.0)),
        FnRule("torch_default: Linear/Conv weight kaiming_uniform(a=sqrt(5))",
               lambda i: isinstance(i.module, torch_linear) and i.pname == "weight",
               lambda i: _bound(1.0 / math.sqrt(i.fan_in)) if i.fan_in > 0 else _const(0.0)),
        FnRule("torch_default: Linear/Conv bias U(+-1/sqrt(fan_in))",
               lambda i: isinstance(i.module, torch_linear) and i.pname == "bias", linear_bias),
        FnRule("torch_default: Bilinear U(+-1/sqrt(in1))", lambda i: isinstance(i.module, nn.Bilinear),
               lambda i: _bilinear_bound(cast(nn.Bilinear, i.module))),
        FnRule("torch_default: Embedding N(0, 1)",
               lambda i: isinstance(i.module, (nn.Embedding, nn.EmbeddingBag)) and i.pname == "weight",
               lambda i: Fill("normal", {"mean": 0.0, "std": 1.0})),
        FnRule("torch_default: norm weight 1", lambda i: i.role == "norm_weight", lambda i: _const(1.0)),
        FnRule("torch_default: norm bias 0", lambda i: i.role == "norm_bias", lambda i: _const(0.0)),
        FnRule("torch_default: MultiheadAttention in_proj xavier_uniform",
               lambda i: isinstance(i.module, nn.MultiheadAttention) and i.role == "attention_qkv",
               lambda i: resolve_named("xavier_uniform", {}, i)),
        FnRule("torch_default: MultiheadAttention in_proj_bias 0",
               lambda i: isinstance(i.module, nn.MultiheadAttention) and i.pname == "in_proj_bias", lambda i: _const(0.0)),
        FnRule("torch_default: MultiheadAttention bias_k/bias_v xavier_normal",
               lambda i: isinstance(i.module, nn.MultiheadAttention) and i.pname in ("bias_k", "bias_v"),
               lambda i: resolve_named("xavier_normal", {}, i)),
        FnRule("torch_default: RNN U(+-1/sqrt(hidden))", lambda i: isinstance(i.module, (nn.RNNBase, nn.RNNCellBase)),
               lambda i: _rnn_bound(cast("nn.RNNBase | nn.RNNCellBase", i.module))),
        FnRule("torch_default: PReLU init", lambda i: isinstance(i.module, nn.PReLU) and i.pname == "weight",
               lambda i: _const(float(getattr(i.module, "init", 0.25)))),
        FnRule("torch_default: fused experts weight, each expert as nn.Linear(in, out): U(+-1/sqrt(fan_in))",
               lambda i: "experts" in i.extra,
               lambda i: _bound(1.0 / math.sqrt(i.fan_in)) if i.fan_in > 0 else _const(0.0), extra_only=True),
        FnRule("torch_default: bare weight used as a linear map (F.linear / matmul), as nn.Linear: U(+-1/sqrt(fan_in))",
               lambda i: "linear_by_use" in i.extra,
               lambda i: _bound(1.0 / math.sqrt(i.fan_in)) if i.fan_in > 0 else _const(0.0), extra_only=True),
        FnRule("torch_default: fused experts bias, each expert as nn.Linear: U(+-1/sqrt(fan_in))",
               lambda i: i.role == "bias" and _experts_fan_in(i) is not None,
               lambda i: _bound(1.0 / math.sqrt(cast(int, _experts_fan_in(i))))),
        # A bare parameter whose use the owner's forward shows (a token, a layer scale) is the
        # module's own: no reset_parameters owns it, so its constructed value is torch's default.
        # One recognized by its name only stays an error (the user says what it is).
        FnRule("torch_default: token/scalar/bias (recognized by its use) kept as constructed",
               lambda i: i.role in ("token", "scalar", "bias") and "usage" in i.extra, lambda i: Fill("keep"),
               extra_only=True),
    ]


def _experts_fan_in(i: ParamInfo) -> int | None:
    """Per-expert fan_in of the fused experts weight a 2-D ``<name>_bias`` belongs to."""
    if i.param.dim() != 2 or not i.pname.endswith("_bias"):
        return None
    w = getattr(i.module, i.pname[: -len("_bias")], None)
    if not isinstance(w, torch.Tensor) or w.dim() != 3 or w.shape[0] != i.param.shape[0]:
        return None
    flag = getattr(i.module, "is_transposed", False)
    fi = int(w.shape[1] if flag is True else w.shape[2])
    return fi if fi > 0 else None


# ---- structure: rules every named recipe starts with --------------------------------------------


def _structural(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    """Rules the structure of a parameter decides whatever the recipe: a norm whose forward
    computes ``x_hat * (1 + w)`` gets the weight that makes it the identity scale (0, not 1); a
    ``weight_norm`` magnitude is derived from its weight (written with it); the parts of a
    parametrization initlab does not know are kept, saying why."""
    return [
        FnRule("structure: norm weight at its identity scale (the norm computes x_hat * (c + w))",
               lambda i: i.role == "norm_weight" and "norm_identity" in i.extra,
               lambda i: Fill("constant", {"value": float(i.extra["norm_identity"]),
                                           "why": f"{i.module_type} computes {i.extra['norm_form']} (probed): "
                                                  f"w = {i.extra['norm_identity']:g} leaves the normalized input "
                                                  "unscaled, as w = 1 does for x_hat * w"}), extra_only=True),
        FnRule("structure: weight_norm magnitude g = ||v|| (derived from the layer's weight)",
               lambda i: _par(i, "weight_norm") == "g",
               lambda i: Fill("derived", {"from": i.name.rsplit(".", 1)[0] + ".original1",
                                          "how": "g = ||v|| per slice, written right after v; the layer's weight "
                                                 "g*v/||v|| then equals v's fill"}), extra_only=True),
        FnRule("structure: part of an unknown parametrization kept",
               lambda i: "parametrization" in i.extra and i.extra["parametrization"]["kind"] not in
               ("weight_norm", "spectral_norm") and i.extra["parametrization"]["part"] != "original",
               lambda i: Fill("keep", {"why": f"{i.extra['parametrization']['kind']} has several parts "
                                              f"({i.extra['parametrization']['part']}); initlab does not know how they "
                                              "make the weight, so they stay as constructed"}), extra_only=True),
    ]


def _par(i: ParamInfo, kind: str) -> str | None:
    par = i.extra.get("parametrization")
    return par["part"] if par is not None and par["kind"] == kind else None


# ---- common pieces of the other recipes --------------------------------------------------------


def _common_tail(opts: dict[str, Any], token_std: float = 0.02) -> list[Rule]:
    """Norms 1/0, biases 0, tokens truncated normal, scalars kept."""
    bias = opts.get("bias", "zeros")
    rules: list[Rule] = [
        Rule("ones", role="norm_weight", label="norm weight 1"),
        Rule("zeros", role="norm_bias", label="norm bias 0"),
        Rule("trunc_normal", role="token", std=token_std, a=-2 * token_std, b=2 * token_std,
             label=f"token trunc_normal(std={token_std})"),
        Rule("keep", role="scalar", label="scalar kept as constructed"),
    ]
    if bias == "zeros":
        rules.insert(0, Rule("zeros", role="bias", label="bias 0"))
    return rules


def _method(name: str) -> Callable[..., list[Rule]]:
    def build(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
        o = {k: v for k, v in opts.items() if k != "bias"}
        init_rule = FnRule(f"{name} on every weight (>= 2 dims)",
                           lambda i: i.param.dim() >= 2 and i.role not in ("norm_weight", "norm_bias", "token",
                                                                            "scalar", "bias"),
                           lambda i: resolve_named(name, o, i))
        rules = [init_rule] + _common_tail(opts)
        if opts.get("bias", "zeros") == "torch_default":
            rules += _torch_default(model, infos, {})
        return rules

    return build


# ---- hf -------------------------------------------------------------------------------------


def _hf_std(config: Any) -> float:
    for key in ("initializer_range", "init_std", "initializer_factor"):
        v = getattr(config, key, None)
        if isinstance(v, (int, float)) and v:
            return float(v)
    get = getattr(config, "get_text_config", None)
    if callable(get):
        v = getattr(get(), "initializer_range", None)
        if isinstance(v, (int, float)) and v:
            return float(v)
    return 0.02


def _hf(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .hf_record import record_hf_init

    config = getattr(model, "config", None)
    std = float(opts.get("std", _hf_std(config) if config is not None else 0.02))
    recorded = record_hf_init(model, infos) if opts.get("record", True) else {}
    rules: list[Rule] = [
        FnRule("hf: model._init_weights", lambda i: id(i.param) in recorded, lambda i: recorded[id(i.param)]),
        FnRule(f"hf: linear/Conv1D/conv weight N(0, {std})",
               lambda i: i.pname == "weight" and (is_linear_like(i.module)
                                                   or isinstance(i.module, nn.modules.conv._ConvNd)),
               lambda i: Fill("normal", {"mean": 0.0, "std": std})),
        Rule("normal", role="embedding", std=std, label=f"hf: embedding N(0, {std})"),
        FnRule("hf: LSTM weights xavier_uniform", lambda i: isinstance(i.module, nn.LSTM) and "weight" in i.pname,
               lambda i: resolve_named("xavier_uniform", {}, i)),
    ]
    return rules + _common_tail(opts, token_std=std)


# ---- timm (recipes_timm.py) -------------------------------------------------------------------


def _timm(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .recipes_timm import timm_rules

    return timm_rules(model, infos, opts)


def _torchvision(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .recipes_torchvision import torchvision_rules

    return torchvision_rules(model, infos, opts)


# ---- auto -----------------------------------------------------------------------------------


def _auto(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .auto import auto_rules

    return auto_rules(model, infos, opts) + _common_tail(opts)


def _own(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    from .recipes_own import own_rules

    return own_rules(model, infos, opts)


_BUILDERS: dict[str, Callable[..., list[Rule]]] = {
    "torch_default": _torch_default, "hf": _hf, "timm": _timm, "torchvision": _torchvision, "own": _own, "auto": _auto,
    **{m: _method(m) for m in SINGLE},
}

# Options each recipe accepts (beyond the engine's own).
RECIPE_OPTIONS: dict[str, set[str]] = {
    "torch_default": set(),
    "hf": {"std", "record", "bias"},
    "timm": {"family", "layer_scale", "head_init_scale"},
    "torchvision": {"family", "zero_init_residual"},
    "own": {"factory"},
    "auto": {"example_input", "bias", "output_std", "validate", "correct"},
    "kaiming_normal": {"a", "mode", "nonlinearity", "bias"},
    "kaiming_uniform": {"a", "mode", "nonlinearity", "bias"},
    "xavier_normal": {"gain", "bias"}, "xavier_uniform": {"gain", "bias"},
    "lecun_normal": {"bias"}, "lecun_uniform": {"bias"}, "orthogonal": {"gain", "bias"},
    "normal": {"mean", "std", "bias"}, "trunc_normal": {"mean", "std", "a", "b", "bias"},
    "variance_scaling": {"scale", "mode", "distribution", "bias"},
}


def build_recipe(recipe: Any, model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> tuple[str, list[Rule]]:
    """``(name, rules)`` for ``recipe`` (a name or a list of rules) on ``model``."""
    if isinstance(recipe, str):
        if recipe not in _BUILDERS:
            raise ValueError(f"unknown recipe {recipe!r}; accepted: {', '.join(RECIPES)} or a list of Rule")
        bad = sorted(set(opts) - RECIPE_OPTIONS[recipe])
        if bad:
            raise TypeError(f"recipe {recipe!r} does not take options {bad}; accepted: "
                            f"{sorted(RECIPE_OPTIONS[recipe]) or 'none'}")
        if opts.get("bias", "zeros") not in ("zeros", "torch_default"):
            raise ValueError(f"bias must be 'zeros' or 'torch_default', got {opts['bias']!r}")
        built = _BUILDERS[recipe](model, infos, opts)
        if recipe == "hf":  # what the model's own _init_weights did comes first, then the structure
            return recipe, built[:1] + _structural(model, infos, opts) + built[1:]
        if recipe == "own":  # the model's own init decides its norms; a weight_norm g is still derived
            return recipe, [r for r in _structural(model, infos, opts) if "norm weight" not in r.label] + built
        return recipe, _structural(model, infos, opts) + built
    rules = list(recipe)
    bad = [r for r in rules if not isinstance(r, Rule)]
    if bad:
        raise TypeError(f"a recipe is a name or a list of Rule objects; got {bad!r}")
    if opts:
        raise TypeError(f"options {sorted(opts)} only apply to a named recipe")
    # a weight_norm magnitude is always derived from its weight (the engine writes it with v)
    return "custom", [r for r in _structural(model, infos, {}) if "weight_norm" in r.label] + rules
