"""The ``"torchvision"`` recipe: what torchvision's model constructors write, recognized by structure.

Built by :func:`initlab.torch.recipes.build_recipe` for ``recipe="torchvision"``. The family is
read from the model's structure (:func:`torchvision_family`), never from a model name, and each
family's rules reproduce the loops of torchvision's constructors (read from pytorch/vision):

* ``"resnet"`` (resnet*, resnext*, wide_resnet*: blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]``):
  conv weights ``kaiming_normal(fan_out, relu)``, BatchNorm/GroupNorm 1/0, the classifier torch's
  default; with ``zero_init_residual=True`` (torchvision's option, default False) the last BN of
  each block 0;
* ``"mobilenet"`` (mobilenet_v2/v3: depthwise convs): conv weights ``kaiming_normal(fan_out)``
  and biases 0 (squeeze-excite included), norms 1/0, Linear ``N(0, 0.01)`` with bias 0;
* ``"efficientnet"`` (efficientnet*: depthwise convs with SiLU): as ``"mobilenet"`` but Linear
  ``U(+-1/sqrt(out_features))`` with bias 0;
* ``"vit"`` (vit_*: ``nn.MultiheadAttention`` encoder blocks and a class token): the patchify conv
  ``trunc_normal(std=sqrt(1 / fan_in))`` with bias 0 (a conv stem instead: its last 1x1 conv
  ``N(0, sqrt(2 / out_channels))`` with bias 0, the others torch's defaults), the class token 0, the position embedding
  ``N(0, 0.02)``, the MLP blocks' Linear ``xavier_uniform`` with bias ``N(0, 1e-6)``, the
  attention torch's own ``MultiheadAttention`` init, a ``pre_logits`` layer
  ``trunc_normal(std=sqrt(1 / in_features))`` with bias 0, the head 0.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from torch import nn

from .recipes import _const, _torch_default
from .recipes_timm import _bare_tokens, _is, _is_depthwise, family_option
from .roles import ParamInfo, residual_block_last_norms
from .rules import Fill, FnRule, Rule, resolve_named

__all__ = ["TORCHVISION_FAMILIES", "torchvision_family", "torchvision_rules"]

#: the families :func:`torchvision_family` recognizes (the ``family`` option's values)
TORCHVISION_FAMILIES = ("resnet", "mobilenet", "efficientnet", "vit")
_ALIASES = {"resnext": "resnet", "wide_resnet": "resnet", "mobilenet_v2": "mobilenet", "mobilenet_v3": "mobilenet"}
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)


def torchvision_family(model: nn.Module, infos: list[ParamInfo]) -> str:
    """The torchvision family of ``model``, from its structure (one of :data:`TORCHVISION_FAMILIES`)."""
    mods = list(model.modules())
    if any(isinstance(m, nn.MultiheadAttention) for m in mods) or _bare_tokens(infos):
        return "vit"
    if residual_block_last_norms(model):
        return "resnet"
    if any(_is_depthwise(m) for m in mods):
        return "efficientnet" if any(isinstance(m, nn.SiLU) for m in mods) else "mobilenet"
    return "resnet"


def _conv_fan_out(i: ParamInfo) -> Fill:
    return resolve_named("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, i)


def _norm_rules(fam: str) -> list[Rule]:
    return [
        FnRule(f"torchvision {fam}: BatchNorm/GroupNorm weight 1", _is(_NORMS, "weight"), lambda i: _const(1.0)),
        FnRule(f"torchvision {fam}: BatchNorm/GroupNorm bias 0", _is(_NORMS, "bias"), lambda i: _const(0.0)),
    ]


def _resnet(model: nn.Module, infos: list[ParamInfo], zero_init_residual: bool) -> list[Rule]:
    last = residual_block_last_norms(model)
    rules: list[Rule] = []
    if zero_init_residual:
        rules.append(FnRule("torchvision resnet: zero_init_residual, last BN of each block 0",
                            lambda i: i.name in last, lambda i: _const(0.0)))
    return rules + [
        FnRule("torchvision resnet: conv weight kaiming_normal(fan_out, relu)", _is(nn.Conv2d, "weight"), _conv_fan_out),
    ] + _norm_rules("resnet")


def _mobile(fam: str, linear: Callable[[ParamInfo], Fill], what: str) -> list[Rule]:
    return [
        FnRule(f"torchvision {fam}: conv weight kaiming_normal(fan_out)", _is(nn.Conv2d, "weight"), _conv_fan_out),
        FnRule(f"torchvision {fam}: conv bias 0", _is(nn.Conv2d, "bias"), lambda i: _const(0.0)),
        *_norm_rules(fam),
        FnRule(f"torchvision {fam}: Linear weight {what}", _is(nn.Linear, "weight"), linear),
        FnRule(f"torchvision {fam}: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _efficientnet_linear(i: ParamInfo) -> Fill:
    r = 1.0 / math.sqrt(i.shape[0])
    return Fill("uniform", {"a": -r, "b": r, "bound": r})


def _vit(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    in_block: set[int] = set()  # Linear layers of the encoder blocks' MLPs
    mha_linears: set[int] = set()
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            mha_linears.add(id(m.out_proj))
        if any(isinstance(c, nn.MultiheadAttention) for c in m.children()):
            in_block |= {id(x) for x in m.modules() if isinstance(x, nn.Linear)}
    in_block -= mha_linears
    outside = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m) not in in_block | mha_linears]
    head = id(outside[-1]) if outside else None
    pre = {id(m) for m in outside[:-1]}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    patchify = {id(m) for m in convs if m.stride == m.kernel_size and max(m.kernel_size) > 1}
    # a conv stem (conv_stem_configs) instead: its last conv, a 1x1, projects to the width
    last_conv = convs[-1] if convs and not patchify and max(convs[-1].kernel_size) == 1 else None
    last = {id(last_conv)} if last_conv is not None else set()
    std_last = math.sqrt(2.0 / last_conv.out_channels) if last_conv is not None else 0.0
    toks = {id(i.param): ("pos" if "pos" in i.pname.lower() else "cls") for i in _bare_tokens(infos)}

    def trunc_fan_in(i: ParamInfo) -> Fill:
        sd = math.sqrt(1.0 / i.fan_in)
        return Fill("trunc_normal", {"mean": 0.0, "std": sd, "a": -2.0, "b": 2.0, "fan_in": i.fan_in})

    return [
        FnRule("torchvision vit: class token 0", lambda i: toks.get(id(i.param)) == "cls", lambda i: _const(0.0)),
        FnRule("torchvision vit: position embedding N(0, 0.02)", lambda i: toks.get(id(i.param)) == "pos",
               lambda i: Fill("normal", {"mean": 0.0, "std": 0.02})),
        FnRule("torchvision vit: patchify conv trunc_normal(std=sqrt(1/fan_in))",
               lambda i: id(i.module) in patchify and i.pname == "weight", trunc_fan_in),
        FnRule("torchvision vit: patchify conv bias 0", lambda i: id(i.module) in patchify and i.pname == "bias",
               lambda i: _const(0.0)),
        FnRule("torchvision vit: conv stem's last 1x1 conv N(0, sqrt(2/out_channels))",
               lambda i: id(i.module) in last and i.pname == "weight", lambda i: Fill("normal", {"mean": 0.0, "std": std_last})),
        FnRule("torchvision vit: conv stem's last conv bias 0", lambda i: id(i.module) in last and i.pname == "bias",
               lambda i: _const(0.0)),
        FnRule("torchvision vit: MLP block Linear weight xavier_uniform",
               lambda i: id(i.module) in in_block and i.pname == "weight", lambda i: resolve_named("xavier_uniform", {}, i)),
        FnRule("torchvision vit: MLP block Linear bias N(0, 1e-6)",
               lambda i: id(i.module) in in_block and i.pname == "bias", lambda i: Fill("normal", {"mean": 0.0, "std": 1e-6})),
        FnRule("torchvision vit: pre_logits weight trunc_normal(std=sqrt(1/fan_in))",
               lambda i: id(i.module) in pre and i.pname == "weight", trunc_fan_in),
        FnRule("torchvision vit: pre_logits bias 0", lambda i: id(i.module) in pre and i.pname == "bias",
               lambda i: _const(0.0)),
        FnRule("torchvision vit: head 0", lambda i: id(i.module) == head, lambda i: _const(0.0)),
    ]


def torchvision_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    """The rules of the ``\"torchvision\"`` recipe for ``model`` (options ``family``,
    ``zero_init_residual``)."""
    fam = family_option(opts, "torchvision", TORCHVISION_FAMILIES, _ALIASES)
    zir = opts.get("zero_init_residual", False)
    if not isinstance(zir, bool):
        raise ValueError(f"zero_init_residual must be True or False, got {zir!r}")
    family = fam or torchvision_family(model, infos)
    if family == "resnet":
        rules = _resnet(model, infos, zir)
    elif family == "mobilenet":
        rules = _mobile("mobilenet", lambda i: Fill("normal", {"mean": 0.0, "std": 0.01}), "N(0, 0.01)")
    elif family == "efficientnet":
        rules = _mobile("efficientnet", _efficientnet_linear, "U(+-1/sqrt(out_features))")
    else:
        rules = _vit(model, infos)
    tail: list[Rule] = [Rule("ones", role="norm_weight", label="norm weight 1"),
                        Rule("zeros", role="norm_bias", label="norm bias 0")]
    return rules + tail + _torch_default(model, infos, {})
