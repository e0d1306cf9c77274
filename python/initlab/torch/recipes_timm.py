"""The ``"timm"`` recipe: timm's own initialization of its model families, recognized by structure.

Built by :func:`initlab.torch.recipes.build_recipe` for ``recipe="timm"``. The family is read
from the model's structure, never from a model name (:func:`timm_family`), and each family's
rules reproduce what timm's code does (read from huggingface/pytorch-image-models):

* ``"efficientnet"`` (EfficientNet, MobileNetV3, MnasNet, MixNet, ...; depthwise convs or
  squeeze-excite, no residual BN blocks): ``_init_weight_goog`` — conv weights
  ``N(0, sqrt(2 / fan_out))`` with ``fan_out = k_h * k_w * out_channels // groups`` (so a depthwise
  conv's std is ``sqrt(2 / (k*k))``), conv biases (squeeze-excite included) 0, BatchNorm 1/0,
  Linear ``U(+-1/sqrt(out_features))`` with bias 0;
* ``"regnet"`` (blocks of conv-norm-act units ``conv1``/``conv2``/``conv3``, grouped convs): the
  same conv rule, Linear ``N(0, 0.01)`` and bias 0, the last BN of each block 0;
* ``"resnet"`` (ResNet, ResNeXt, SE-ResNet...: blocks with ``conv1/bn1/conv2/bn2[/conv3/bn3]``):
  every conv ``kaiming_normal(fan_out, relu)`` (torch's fan_out, groups not divided), the last BN
  of each block 0, the classifier torch's default;
* ``"convnext"`` (7x7 depthwise convs, layer scales): conv/Linear ``trunc_normal(std=.02)``, bias 0;
* ``"vit"`` (ViT, DeiT; tokens): class/register tokens ``N(0, 1e-6)``, position embedding and
  distillation token ``trunc_normal(.02)``, Linear ``trunc_normal(.02)`` with bias 0, patch conv
  and norms torch's defaults;
* ``"eva"`` (EVA, BEiT: tokens, attention with separate ``q_bias``/``v_bias`` or bare
  ``gamma_1``/``gamma_2`` layer scales on the blocks): Linear and tokens ``trunc_normal(.02)``,
  q/v biases and BEiT's relative position tables 0, attention/MLP output projections of block ``i`` divided by
  ``sqrt(2 (i + 1))`` (``fix_init_weight``), the head scaled by ``head_init_scale`` (option,
  default 0.001);
* ``"swin"`` (windowed attention with relative position tables, no class token, no depthwise
  convs): Linear
  ``trunc_normal(.02)``, bias 0, the tables ``trunc_normal(.02)``;
* ``"maxxvit"`` (MaxViT, CoAtNet: depthwise MBConv blocks and transformer blocks;
  ``weight_init='vit_eff'``): convs outside transformer blocks as EfficientNet, conv/Linear inside
  transformer blocks ``xavier_uniform`` with bias ``N(0, 1e-6)`` under an MLP (relative-position
  MLPs included) and 0 elsewhere, 2-D tables ``trunc_normal(.02)``, the TF ports' 3-D tables
  ``normal(.02)``, heads and norms torch's defaults;
* ``"levit"`` (Linear/Conv followed by BatchNorm units): the constructors' init — conv/Linear
  torch's defaults, the BN of the last unit of each attention/MLP branch 0 (``bn_weight_init=0``),
  attention biases 0, the BN-then-Linear head ``trunc_normal(.02)`` with bias 0.

Layer scales (``"scalar"``) keep their constructed value, or take the ``layer_scale`` option.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from .recipes import _const, _torch_default
from .roles import ParamInfo, is_norm, residual_block_last_norms
from .rules import Fill, FnRule, Rule, resolve_named

__all__ = ["TIMM_FAMILIES", "timm_family", "timm_rules"]

#: the families :func:`timm_family` recognizes (the ``family`` option's values)
TIMM_FAMILIES = ("efficientnet", "regnet", "resnet", "convnext", "vit", "eva", "swin", "maxxvit", "levit")
#: other accepted names of a family
TIMM_ALIASES = {"mobilenetv3": "efficientnet", "mobilenet": "efficientnet", "mnasnet": "efficientnet",
                "resnext": "resnet", "deit": "vit", "beit": "eva", "maxvit": "maxxvit", "coatnet": "maxxvit"}

_CONV = nn.modules.conv._ConvNd
_TN02 = {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0}  # timm's trunc_normal_(std=.02): torch's absolute bounds


# ---- structure -----------------------------------------------------------------------------------


def _is_grouped(m: nn.Module) -> bool:
    return isinstance(m, _CONV) and m.groups > 1


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, _CONV) and m.groups > 1 and m.groups == m.in_channels


def _is_squeeze_excite(m: nn.Module) -> bool:
    """Two 1x1 convs with biases, ``c -> r -> c`` (r < c), among a module's own children."""
    convs = [c for c in m.children() if isinstance(c, _CONV) and all(k == 1 for k in c.kernel_size)]
    return (len(convs) == 2 and all(c.bias is not None for c in convs)
            and convs[0].in_channels == convs[1].out_channels and convs[0].out_channels == convs[1].in_channels
            and convs[0].out_channels < convs[0].in_channels)


def _rel_pos_table(i: ParamInfo) -> bool:
    """A relative position bias table: a bare parameter of an attention or position module, 2-D
    ``(positions, heads)`` (Swin, ``RelPosBias``) or 3-D ``(heads, 2h-1, 2w-1)`` (MaxViT's TF ports,
    ``RelPosBiasTf``), named as timm names them."""
    return len(i.shape) in (2, 3) and not isinstance(i.module, (nn.Linear, _CONV, nn.Embedding)) and (
        "relative_position" in i.pname or "rel_pos" in i.name)


def _table_fill(i: ParamInfo) -> Fill:
    """timm: a 2-D table ``trunc_normal_(std=.02)``; the TF ports' 3-D table ``normal_(std=.02)``."""
    if len(i.shape) == 3:
        return Fill("normal", {"mean": 0.0, "std": 0.02})
    return Fill("trunc_normal", dict(_TN02))


def _bare_tokens(infos: list[ParamInfo]) -> list[ParamInfo]:
    """Token-like parameters as timm and torchvision shape them, ``(1, n, d)``: role ``"token"``,
    or a bare parameter of that shape of a module that is no layer (a class/register/distillation
    token or a position embedding of any name). A "token" of another shape (an attention bias
    table, a 1-D bias concatenated into a packed one) is not one of theirs."""
    out = []
    for i in infos:
        if len(i.shape) != 3 or i.shape[0] != 1:
            continue
        if i.role == "token" or ((i.role is None or i.role == "weight") and not (
                isinstance(i.module, (nn.Linear, _CONV, nn.Embedding, nn.EmbeddingBag)) or is_norm(i.module))):
            out.append(i)
    return out


def _token_kind(i: ParamInfo) -> str:
    """``"pos"``, ``"dist"``, ``"mask"`` or ``"cls"`` (class and register tokens)."""
    n = i.pname.lower()
    if "pos" in n:
        return "pos"
    if "dist" in n:
        return "dist"
    if "mask" in n:
        return "mask"
    return "cls"


def _linear_norm_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """LeViT-style units: a module whose only parametrized children are a Linear/Conv then a
    BatchNorm, in that order (``LinearNorm``, ``ConvNorm``)."""
    out = []
    for name, m in model.named_modules():
        ch = [c for c in m.children() if any(True for _ in c.parameters())]
        if len(ch) == 2 and isinstance(ch[0], (nn.Linear, _CONV)) and isinstance(ch[1], nn.modules.batchnorm._BatchNorm):
            out.append((name, m))
    return out


def _norm_linear_heads(model: nn.Module) -> set[int]:
    """The Linear of each BatchNorm-then-Linear unit (LeViT's ``NormLinear`` heads)."""
    out = set()
    for m in model.modules():
        ch = [c for c in m.children() if any(True for _ in c.parameters())]
        if len(ch) == 2 and isinstance(ch[0], nn.modules.batchnorm._BatchNorm) and isinstance(ch[1], nn.Linear):
            out.add(id(ch[1]))
    return out


def _regnet_last_norms(model: nn.Module) -> set[int]:
    """The BN weight of the last conv-norm unit of each RegNet-style block (children ``conv1``,
    ``conv2``, ``conv3``, each a conv followed by its norm)."""
    out = set()
    for m in model.modules():
        ch = dict(m.named_children())
        units = [ch.get(k) for k in ("conv1", "conv2", "conv3")]
        if all(u is not None and not isinstance(u, _CONV) for u in units):
            last = units[2]
            norms = [c for c in last.children() if is_norm(c)] if last is not None else []
            if norms and isinstance(getattr(norms[-1], "weight", None), torch.Tensor):
                out.add(id(norms[-1].weight))
    return out


def _transformer_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Transformer blocks: modules with an attention child and an MLP child (``attn``/``mlp``)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(getattr(m, "attn", None), nn.Module)
            and isinstance(getattr(m, "mlp", None), nn.Module)]


def timm_family(model: nn.Module, infos: list[ParamInfo]) -> str:
    """The timm family of ``model``, from its structure (one of :data:`TIMM_FAMILIES`)."""
    mods = list(model.modules())
    tables = any(_rel_pos_table(i) for i in infos)
    depthwise = any(_is_depthwise(m) for m in mods)
    tokens = _bare_tokens(infos)
    if any(_token_kind(t) != "pos" for t in tokens) or (tokens and not tables):
        # a class token (or a position embedding without relative tables): ViT-like; EVA/BEiT
        # have attention with separate q/v biases or bare gamma_1/gamma_2 layer scales on blocks
        blocks = {id(b) for _, b in _transformer_blocks(model)}
        eva = any(i.pname in ("q_bias", "v_bias") or (i.pname.startswith("gamma_") and id(i.module) in blocks)
                  for i in infos)
        return "eva" if eva else "vit"
    if depthwise and _transformer_blocks(model):
        return "maxxvit"  # MBConv stages and transformer blocks (tables or rel-pos MLPs)
    if tables:
        return "swin"
    if _linear_norm_units(model) and _norm_linear_heads(model):
        return "levit"
    big_dw = any(isinstance(m, _CONV) and _is_depthwise(m) and max(m.kernel_size) >= 7 for m in mods)
    if big_dw or any(i.role == "scalar" and len(i.shape) == 1 for i in infos):
        return "convnext"
    if residual_block_last_norms(model):
        return "resnet"
    if _regnet_last_norms(model) and any(_is_grouped(m) for m in mods):
        return "regnet"
    if depthwise or any(_is_squeeze_excite(m) for m in mods):
        return "efficientnet"
    return "resnet"


# ---- fills ---------------------------------------------------------------------------------------


def _goog_conv(i: ParamInfo) -> Fill:
    m = i.module
    assert isinstance(m, _CONV)  # the rules using it match convs only
    k = math.prod(m.kernel_size)
    fan_out = k * m.out_channels // m.groups
    return Fill("normal", {"mean": 0.0, "std": math.sqrt(2.0 / fan_out) if fan_out > 0 else 0.0, "fan_out": fan_out})


def _tn02(_: ParamInfo) -> Fill:
    return Fill("trunc_normal", dict(_TN02))


def _is(kind: type | tuple[type, ...], pname: str) -> Callable[[ParamInfo], bool]:
    return lambda i: isinstance(i.module, kind) and i.pname == pname


# ---- families --------------------------------------------------------------------------------


def _efficientnet(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    def linear_w(i: ParamInfo) -> Fill:
        fan_out = i.shape[0]
        fan_in = i.shape[1] if "routing_fn" in i.module_name else 0
        r = 1.0 / math.sqrt(fan_in + fan_out)
        return Fill("uniform", {"a": -r, "b": r, "bound": r})

    return [
        FnRule("timm efficientnet: conv weight N(0, sqrt(2 / (k*k*out // groups)))", _is(nn.Conv2d, "weight"), _goog_conv),
        FnRule("timm efficientnet: conv bias 0", _is(nn.Conv2d, "bias"), lambda i: _const(0.0)),
        FnRule("timm efficientnet: BatchNorm weight 1", _is(nn.BatchNorm2d, "weight"), lambda i: _const(1.0)),
        FnRule("timm efficientnet: BatchNorm bias 0", _is(nn.BatchNorm2d, "bias"), lambda i: _const(0.0)),
        FnRule("timm efficientnet: Linear weight U(+-1/sqrt(out_features))", _is(nn.Linear, "weight"), linear_w),
        FnRule("timm efficientnet: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _regnet(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    last = _regnet_last_norms(model)
    return [
        FnRule("timm regnet: zero-init last BN of each block", lambda i: id(i.param) in last, lambda i: _const(0.0)),
        FnRule("timm regnet: conv weight N(0, sqrt(2 / (k*k*out // groups)))", _is(nn.Conv2d, "weight"), _goog_conv),
        FnRule("timm regnet: conv bias 0", _is(nn.Conv2d, "bias"), lambda i: _const(0.0)),
        FnRule("timm regnet: Linear weight N(0, 0.01)", _is(nn.Linear, "weight"),
               lambda i: Fill("normal", {"mean": 0.0, "std": 0.01})),
        FnRule("timm regnet: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _resnet(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    last = residual_block_last_norms(model)
    return [
        FnRule("timm resnet: zero-init last BN of each block",
               lambda i: i.extra.get("last_norm_in_block") is True or i.name in last, lambda i: _const(0.0)),
        FnRule("timm resnet: conv weight kaiming_normal(fan_out, relu)", _is(nn.Conv2d, "weight"),
               lambda i: resolve_named("kaiming_normal", {"mode": "fan_out", "nonlinearity": "relu"}, i)),
    ]


def _convnext(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    return [
        FnRule("timm convnext: conv/Linear weight trunc_normal(std=.02)", _is((nn.Conv2d, nn.Linear), "weight"), _tn02),
        FnRule("timm convnext: conv/Linear bias 0", _is((nn.Conv2d, nn.Linear), "bias"), lambda i: _const(0.0)),
    ]


def _token_rules(infos: list[ParamInfo], cls: Fill, family: str) -> list[Rule]:
    toks = {id(i.param): _token_kind(i) for i in _bare_tokens(infos)}
    fills = {"pos": Fill("trunc_normal", dict(_TN02)), "dist": Fill("trunc_normal", dict(_TN02)),
             "mask": _const(0.0), "cls": cls}
    what = {"pos": "position embedding trunc_normal(.02)", "dist": "distillation token trunc_normal(.02)",
            "mask": "mask token 0", "cls": f"class/register token {cls.init}({cls.params.get('std')})"}
    def rule(k: str) -> Rule:
        return FnRule(f"timm {family}: {what[k]}", lambda i: toks.get(id(i.param)) == k, lambda i: fills[k])

    return [rule(k) for k in ("pos", "dist", "mask", "cls")]


def _vit(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    return _token_rules(infos, Fill("normal", {"mean": 0.0, "std": 1e-6}), "vit") + [
        FnRule("timm vit: Linear weight trunc_normal(std=.02)", _is(nn.Linear, "weight"), _tn02),
        FnRule("timm vit: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _block_index(model: nn.Module) -> dict[int, int]:
    """id(module) -> index of the transformer block (in its container) the module belongs to."""
    out: dict[int, int] = {}
    for cont in model.modules():
        if not isinstance(cont, (nn.ModuleList, nn.Sequential)):
            continue
        for k, blk in enumerate(cont.children()):
            if isinstance(getattr(blk, "attn", None), nn.Module) and isinstance(getattr(blk, "mlp", None), nn.Module):
                for m in blk.modules():
                    out[id(m)] = k
    return out


def _eva(model: nn.Module, infos: list[ParamInfo], head_scale: float) -> list[Rule]:
    depth = _block_index(model)

    def rescaled(i: ParamInfo) -> bool:
        return isinstance(i.module, nn.Linear) and i.pname == "weight" and id(i.module) in depth and \
            i.role in ("attention_out", "mlp_out")

    def rescale(i: ParamInfo) -> Fill:
        s = 1.0 / math.sqrt(2.0 * (depth[id(i.module)] + 1))
        return Fill("trunc_normal", {"mean": 0.0, "std": 0.02 * s, "a": -2.0 * s, "b": 2.0 * s,
                                     "depth_scale": s})

    def head(i: ParamInfo) -> bool:
        return i.role == "head" and isinstance(i.module, nn.Linear)

    s = float(head_scale)
    return [FnRule("timm eva (BEiT): relative position bias table 0", _rel_pos_table, lambda i: _const(0.0)),
            FnRule("timm eva: attention q/v bias 0", lambda i: len(i.shape) == 1 and i.pname in ("q_bias", "v_bias"),
                   lambda i: _const(0.0))] + _token_rules(infos, Fill("trunc_normal", dict(_TN02)), "eva") + [
        FnRule("timm eva: attention/MLP output projection trunc_normal(.02) / sqrt(2 (layer + 1))", rescaled, rescale),
        FnRule(f"timm eva: head weight trunc_normal(.02) * head_init_scale {s:g}",
               lambda i: head(i) and i.pname == "weight",
               lambda i: Fill("trunc_normal", {"mean": 0.0, "std": 0.02 * s, "a": -2.0 * s, "b": 2.0 * s})),
        FnRule("timm eva: head bias 0", lambda i: head(i) and i.pname == "bias", lambda i: _const(0.0)),
        FnRule("timm eva: Linear weight trunc_normal(std=.02)", _is(nn.Linear, "weight"), _tn02),
        FnRule("timm eva: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _swin(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    return [
        FnRule("timm swin: relative position bias table trunc_normal(.02)", _rel_pos_table, _table_fill),
        FnRule("timm swin: absolute position embedding trunc_normal(.02)",
               lambda i: bool(_bare_tokens([i])), _tn02),
        FnRule("timm swin: Linear weight trunc_normal(std=.02)", _is(nn.Linear, "weight"), _tn02),
        FnRule("timm swin: Linear bias 0", _is(nn.Linear, "bias"), lambda i: _const(0.0)),
    ]


def _maxxvit(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    inside: dict[int, str] = {}  # id(module) -> its name relative to its transformer block
    for bname, blk in _transformer_blocks(model):
        for n, m in blk.named_modules():
            inside[id(m)] = n
    # a head: a Linear outside every transformer block (timm leaves it to torch's default)

    def in_tf(kind: type | tuple[type, ...], pname: str) -> Callable[[ParamInfo], bool]:
        return lambda i: isinstance(i.module, kind) and i.pname == pname and id(i.module) in inside

    def out_tf(kind: type | tuple[type, ...], pname: str) -> Callable[[ParamInfo], bool]:
        return lambda i: isinstance(i.module, kind) and i.pname == pname and id(i.module) not in inside

    return [
        FnRule("timm maxxvit: relative position bias table trunc_normal(.02) (3-D TF table: normal(.02))",
               _rel_pos_table, _table_fill),
        FnRule("timm maxxvit (vit_eff): transformer conv/Linear weight xavier_uniform",
               in_tf((nn.Conv2d, nn.Linear), "weight"), lambda i: resolve_named("xavier_uniform", {}, i)),
        FnRule("timm maxxvit (vit_eff): transformer MLP bias N(0, 1e-6)",
               lambda i: in_tf((nn.Conv2d, nn.Linear), "bias")(i) and "mlp" in inside[id(i.module)],
               lambda i: Fill("normal", {"mean": 0.0, "std": 1e-6})),
        FnRule("timm maxxvit (vit_eff): transformer bias 0", in_tf((nn.Conv2d, nn.Linear), "bias"),
               lambda i: _const(0.0)),
        FnRule("timm maxxvit (vit_eff): conv weight N(0, sqrt(2 / (k*k*out // groups)))",
               out_tf(nn.Conv2d, "weight"), _goog_conv),
        FnRule("timm maxxvit (vit_eff): conv bias 0", out_tf(nn.Conv2d, "bias"), lambda i: _const(0.0)),
    ]


def _levit(model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    zero_bn: set[int] = set()
    # residual branches: children named attn / mlp (a LevitDownsample's attn_downsample is no
    # residual branch: its projection keeps BN weight 1)
    branches = [c for m in model.modules() for n, c in m.named_children() if n in ("attn", "mlp")]
    for branch in branches:
        units = [m for _, m in _linear_norm_units(branch)]
        if units:
            bn = [c for c in units[-1].children() if isinstance(c, nn.modules.batchnorm._BatchNorm)][0]
            if isinstance(bn.weight, torch.Tensor):
                zero_bn.add(id(bn.weight))
    heads = _norm_linear_heads(model)
    return [
        FnRule("timm levit: BN of the last unit of each attention/MLP branch 0 (bn_weight_init=0)",
               lambda i: id(i.param) in zero_bn, lambda i: _const(0.0)),
        FnRule("timm levit: attention biases 0", lambda i: i.pname == "attention_biases" or (
            len(i.shape) == 2 and not isinstance(i.module, (nn.Linear, _CONV)) and "bias" in i.pname),
               lambda i: _const(0.0)),
        FnRule("timm levit: NormLinear head weight trunc_normal(.02)",
               lambda i: id(i.module) in heads and i.pname == "weight", _tn02),
        FnRule("timm levit: NormLinear head bias 0", lambda i: id(i.module) in heads and i.pname == "bias",
               lambda i: _const(0.0)),
    ]


def family_option(opts: dict[str, Any], library: str, families: tuple[str, ...],
                  aliases: dict[str, str]) -> str | None:
    """The ``family`` option of a library recipe: a family or an alias of one, or None (read from
    the structure); anything else is a ValueError listing what is accepted."""
    fam = opts.get("family")
    if fam is None:
        return None
    canon = aliases.get(fam, fam) if isinstance(fam, str) else fam
    if canon not in families:
        raise ValueError(f"family {fam!r} is not a {library} family; accepted: "
                         f"{', '.join(repr(f) for f in families + tuple(aliases))} (or None: read from the structure)")
    return canon


def timm_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    """The rules of the ``\"timm\"`` recipe for ``model`` (options ``family``, ``layer_scale``,
    ``head_init_scale``)."""
    family = family_option(opts, "timm", TIMM_FAMILIES, TIMM_ALIASES) or timm_family(model, infos)
    ls = opts.get("layer_scale")
    if ls is not None and (isinstance(ls, bool) or not isinstance(ls, (int, float)) or not math.isfinite(ls)):
        raise ValueError(f"layer_scale must be a finite number or None (keep as constructed), got {ls!r}")
    hs = opts.get("head_init_scale", 0.001)
    if isinstance(hs, bool) or not isinstance(hs, (int, float)) or not math.isfinite(hs):
        raise ValueError(f"head_init_scale must be a finite number, got {hs!r}")
    builders: dict[str, Callable[[nn.Module, list[ParamInfo]], list[Rule]]] = {
        "efficientnet": _efficientnet, "regnet": _regnet, "resnet": _resnet, "convnext": _convnext,
        "vit": _vit, "swin": _swin, "maxxvit": _maxxvit, "levit": _levit,
        "eva": lambda m, i: _eva(m, i, hs),
    }
    rules = builders[family](model, infos)
    scal = (Rule("constant", role="scalar", value=float(ls), label=f"timm: layer scale {ls}") if ls is not None
            else Rule("keep", role="scalar", label="timm: layer scale kept as constructed"))
    tail: list[Rule] = [scal, Rule("ones", role="norm_weight", label="norm weight 1"),
                        Rule("zeros", role="norm_bias", label="norm bias 0")]
    return rules + tail + _torch_default(model, infos, {})
