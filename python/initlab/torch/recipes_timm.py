"""The ``"timm"`` recipe: timm's own initialization of its model families, recognized by structure.

Built by :func:`initlab.torch.recipes.build_recipe` for ``recipe="timm"``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .recipes import _const, _torch_default
from .roles import ParamInfo
from .rules import Fill, FnRule, Rule, resolve_named

__all__ = ["timm_family", "timm_rules"]


def timm_family(model: nn.Module, infos: list[ParamInfo]) -> str:
    """``"vit"`` (has cls/pos tokens), ``"convnext"`` (depthwise 7x7 convs or layer scales) or ``"resnet"``."""
    if any(i.role == "token" for i in infos):
        return "vit"
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups == m.in_channels and m.groups > 1 and max(m.kernel_size) >= 7:
            return "convnext"
    if any(i.role == "scalar" and i.param.dim() == 1 for i in infos):
        return "convnext"
    return "resnet"


def timm_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    """The rules of the ``\"timm\"`` recipe for ``model`` (options ``family``, ``layer_scale``)."""
    family = opts.get("family") or timm_family(model, infos)
    if family not in ("vit", "convnext", "resnet"):
        raise ValueError(f"family {family!r} is not one of 'vit', 'convnext', 'resnet'")
    ls = opts.get("layer_scale")
    # timm's trunc_normal_(std=.02) keeps torch's absolute bounds a=-2, b=2 (about 100 sigma).
    tn = {"std": 0.02, "a": -2.0, "b": 2.0}
    rules: list[Rule] = []
    if family == "vit":
        rules += [
            Rule("trunc_normal", name=("*pos_embed", "*pos_embedding", "*position_embeddings"), **tn,
                 label="timm vit: pos_embed trunc_normal(std=.02)"),
            Rule("normal", name=("*cls_token", "*reg_token", "*register_tokens", "*dist_token"), std=1e-6,
                 label="timm vit: cls/reg token N(0, 1e-6)"),
            Rule("zeros", name="*mask_token", label="timm vit: mask token 0"),
            FnRule("timm vit: Linear weight trunc_normal(std=.02)",
                   lambda i: isinstance(i.module, nn.Linear) and i.pname == "weight",
                   lambda i: Fill("trunc_normal", {"mean": 0.0, **tn})),
            FnRule("timm vit: Linear bias 0", lambda i: isinstance(i.module, nn.Linear) and i.pname == "bias",
                   lambda i: _const(0.0)),
        ]
        rest = _torch_default(model, infos, {})
    elif family == "convnext":
        rules += [
            FnRule("timm convnext: Conv/Linear weight trunc_normal(std=.02)",
                   lambda i: isinstance(i.module, (nn.Linear, nn.modules.conv._ConvNd)) and i.pname == "weight",
                   lambda i: Fill("trunc_normal", {"mean": 0.0, **tn})),
            FnRule("timm convnext: Conv/Linear bias 0",
                   lambda i: isinstance(i.module, (nn.Linear, nn.modules.conv._ConvNd)) and i.pname == "bias",
                   lambda i: _const(0.0)),
        ]
        rest = _torch_default(model, infos, {})
    else:
        rules += [
            FnRule("timm resnet: zero-init last BN of each block",
                   lambda i: i.extra.get("last_norm_in_block") is True, lambda i: _const(0.0)),
            FnRule("timm resnet: Conv weight kaiming_normal(fan_out, relu)",
                   lambda i: isinstance(i.module, nn.modules.conv._ConvNd) and i.pname == "weight",
                   lambda i: resolve_named("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, i)),
        ]
        rest = _torch_default(model, infos, {})
    scal = (Rule("constant", role="scalar", value=float(ls), label=f"timm: layer scale {ls}") if ls is not None
            else Rule("keep", role="scalar", label="timm: layer scale kept as constructed"))
    return rules + [scal, Rule("ones", role="norm_weight", label="norm weight 1"),
                    Rule("zeros", role="norm_bias", label="norm bias 0")] + rest
