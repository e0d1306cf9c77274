"""What each parameter of a model *is*, recognized by structure: :func:`param_infos`.

Rules (``initlab.torch.rules``) match on a parameter's **role**; this module assigns roles by
looking at the module that owns the parameter and at the parameter's name and shape, never at a
fixed list of class names only, so Hugging Face, timm and home-made building blocks are
recognized like torch's own:

* linear-like modules: ``nn.Linear``, ``nn.Bilinear`` and Hugging Face's ``Conv1D`` (a linear
  layer whose weight is stored ``(in, out)``: its fans are read transposed);
* norms: torch's normalization modules and any module whose class name contains ``Norm`` and
  whose own parameters are 1-D ``weight``/``bias`` (``LlamaRMSNorm``, ``T5LayerNorm``, ...);
* transformer projections by their conventional names (``q_proj``, ``c_attn``, ``query``, ...);
* bare parameters (owned by no such module) by how the owner's ``forward`` uses them
  (``initlab.torch._structure.param_usage``, read from the source): concatenated with or
  added to the activations, or used as queries → ``"token"``; multiplying a branch → ``"scalar"``
  (layer scales, residual multipliers); the weight of ``F.linear`` / a matmul → a weight with its
  orientation; only then by name (``cls_token``, ``gamma``, ...);
* fused mixture-of-experts tensors ``(E, out, in)``: per-expert fans (``extra["experts"]``);
* norms computing ``x_hat * (1 + w)``: ``extra["norm_identity"] = 0`` (probed, never written);
* ``weight_norm`` / ``spectral_norm`` parts: the role and fans of the layer's weight, with
  ``extra["parametrization"]`` naming the part (``"g"``, ``"v"``, ``"original"``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, cast

import torch
from torch import nn

from ._tree import own_parameters

__all__ = ["ROLES", "ParamInfo", "param_infos", "is_norm", "is_linear_like", "is_hf_conv1d", "weight_fans",
           "projection_kind", "QUERY", "KEY", "VALUE", "PACKED_QKV", "ATT_OUT", "MLP_IN", "MLP_OUT",
           "residual_block_last_norms"]

ROLES = (
    "weight", "bias", "embedding", "norm_weight", "norm_bias", "recurrent", "input_to_hidden",
    "attention_qkv", "attention_out", "mlp_in", "mlp_out", "head", "residual_out", "scalar", "token",
)

_TORCH_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.LocalResponseNorm)
_CONVS = (nn.modules.conv._ConvNd,)
_RNNS = (nn.RNNBase, nn.RNNCellBase)

# Conventional sub-module names of transformer projections (torch, HF, fairseq, nanoGPT, timm).
# Public: the schemes (T-Fixup, depth-scaled residuals) use the same patterns.
QUERY = re.compile(r"(^|\.)(q_proj|query|q|wq|q_lin)$")
KEY = re.compile(r"(^|\.)(k_proj|key|k|wk|k_lin)$")
VALUE = re.compile(r"(^|\.)(v_proj|value|v|wv|v_lin)$")
PACKED_QKV = re.compile(r"(^|\.)(c_attn|qkv|qkv_proj|query_key_value|Wqkv|in_proj)$")
ATT_OUT = re.compile(r"(^|\.)(out_proj|o_proj|wo|out_lin|attention\.output\.dense|attn\.c_proj|attn\.proj|"
                     r"self_attn\.dense|attention\.dense|dense_out)$")
MLP_IN = re.compile(r"(^|\.)(linear1|fc1|c_fc|up_proj|gate_proj|gate_up_proj|w1|w3|wi|wi_0|wi_1|lin1|"
                    r"intermediate\.dense|mlp\.fc_in|dense_h_to_4h)$")
MLP_OUT = re.compile(r"(^|\.)(linear2|fc2|down_proj|w2|wo_ffn|lin2|mlp\.c_proj|mlp\.proj|mlp\.fc_out|"
                     r"dense_4h_to_h|(?<!attention\.)output\.dense)$")


def projection_kind(rel: str) -> str | None:
    """``"q"``, ``"k"``, ``"v"``, ``"qkv"``, ``"att_out"``, ``"mlp_in"``, ``"mlp_out"`` or None,
    from a module's (relative or qualified) name."""
    last = rel.rsplit(".", 1)[-1]
    if _LAST_WORDS is not None and (last[:-1] if last.endswith("\n") else last) not in _LAST_WORDS:
        return None  # (no pattern can match: its last word is not one of theirs; "$" also matches before a final newline)
    if not _ANY_PROJECTION.search(rel):  # (one search for most names: "0", "layers.3.norm", ...)
        return None
    for kind, rx in _PROJECTIONS:
        if rx.search(rel):
            return kind
    return None


_PROJECTIONS = (("att_out", ATT_OUT), ("mlp_out", MLP_OUT), ("mlp_in", MLP_IN), ("qkv", PACKED_QKV),
                ("q", QUERY), ("k", KEY), ("v", VALUE))
# matches a name exactly when one of the patterns above does (priority is then decided in order)
_ANY_PROJECTION = re.compile("|".join(f"(?:{rx.pattern})" for _, rx in _PROJECTIONS))


def _last_words() -> frozenset[str] | None:
    """The last dotted word of every alternative of the projection patterns (each is
    ``(^|\.)(alt|alt|...)$`` with literal alternatives): a name whose last word is none of them
    matches none of the patterns. None if a pattern is not of that form (no shortcut then)."""
    words = set()
    for _, rx in _PROJECTIONS:
        m = re.fullmatch(r"\(\^\|\\\.\)\((.*)\)\$", rx.pattern)
        if m is None:
            return None
        for alt in m.group(1).split("|"):
            word = alt.split("\\.")[-1]
            if not re.fullmatch(r"\w+", word) or not re.fullmatch(r"(\(\?<!\w+\\\.\))?[\w\\.]+", alt):
                return None
            words.add(word)
    return frozenset(words)


_LAST_WORDS = _last_words()


_PROJECTION_ROLE = {"q": "attention_qkv", "k": "attention_qkv", "v": "attention_qkv", "qkv": "attention_qkv",
                    "att_out": "attention_out", "mlp_in": "mlp_in", "mlp_out": "mlp_out"}
_HEAD = re.compile(r"(^|\.)(lm_head|classifier|head|fc|score|qa_outputs|pooler\.dense|heads?\.\w+)$")
_TOKEN = re.compile(r"(cls_token|pos_embed|pos_embedding|position_embeddings|reg_token|register_tokens|"
                    r"dist_token|mask_token|query_tokens|class_embedding|positional_embedding)$")
_SCALAR = re.compile(r"(^|\.)(gamma|gamma_\d|ls\d?\.\w+|layer_scale\w*|layerscale\w*|alpha|scale|res_scale|"
                     r"resweight|skip_scale|beta)$")


def is_norm(mod: nn.Module) -> bool:
    """Whether ``mod`` is a normalization layer: torch's own, or by structure (a class name
    containing ``Norm`` whose own parameters are 1-D) — RMSNorm/LayerNorm-like modules of any
    library are norms whatever their exact class name."""
    if isinstance(mod, _TORCH_NORMS):
        return True
    if "norm" not in type(mod).__name__.lower():
        return False
    own = list(mod.named_parameters(recurse=False))
    return bool(own) and all(p.dim() == 1 for _, p in own)


def is_linear_like(mod: nn.Module) -> bool:
    """Whether ``mod`` is a linear layer: ``nn.Linear`` or Hugging Face's ``Conv1D``."""
    return isinstance(mod, nn.Linear) or is_hf_conv1d(mod)


def is_hf_conv1d(mod: nn.Module) -> bool:
    """Hugging Face ``transformers.pytorch_utils.Conv1D`` (GPT-2, GPT, ...): a linear layer whose
    2-D weight is stored ``(in, out)`` (``y = x @ W + b``), recognized without importing transformers."""
    if type(mod).__name__ != "Conv1D":  # first: a missing attribute costs torch an exception
        return False
    w = getattr(mod, "weight", None)
    nf = getattr(mod, "nf", None)
    return isinstance(w, torch.Tensor) and w.dim() == 2 and isinstance(nf, int) and w.shape[1] == nf


def weight_fans(mod: nn.Module | None, shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` owned by ``mod``; HF ``Conv1D`` reads (in, out)."""
    if mod is not None and is_hf_conv1d(mod) and len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if len(shape) < 2:
        n = int(shape[0]) if shape else 1
        return n, n
    rf = math.prod(shape[2:]) if len(shape) > 2 else 1
    return int(shape[1]) * rf, int(shape[0]) * rf


@dataclass
class ParamInfo:
    """One parameter as the rule engine sees it.

    ``name`` is the qualified name relative to the root (its first name when tied; the others
    are in ``aliases``); ``module_name``/``module`` own it under ``pname``; ``fan_in``/``fan_out``
    are read in the module's own weight layout (HF ``Conv1D`` transposed); ``extra`` carries
    structural facts the recipes use (``padding_idx``, ``last_norm_in_block``, ``gates``, ...).
    """

    name: str
    module_name: str
    pname: str
    module: nn.Module
    param: torch.Tensor
    role: str | None
    fan_in: int
    fan_out: int
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    #: the module that registers the tensor and its name there, where they differ from
    #: ``module``/``pname`` (a parametrization's ``original``: registered on its ParametrizationList)
    owner: nn.Module | None = None
    owner_pname: str | None = None

    def registered(self) -> torch.Tensor:
        """The tensor registered under this parameter's name now (after ``to_empty`` or a swap)."""
        if self.owner is not None and self.owner_pname is not None:
            return cast(torch.Tensor, self.owner._parameters[self.owner_pname])
        return cast(torch.Tensor, self.module._parameters[self.pname])

    @property
    def shape(self) -> tuple[int, ...]:
        if isinstance(self.param, nn.parameter.UninitializedTensorMixin):  # type: ignore[attr-defined]  # not in torch's .pyi
            return ()
        return tuple(self.param.shape)  # a DTensor's shape is its global shape

    @property
    def module_type(self) -> str:
        return type(self.module).__name__


def _role(mname: str, mod: nn.Module, pname: str, p: torch.Tensor, head_name: str | None) -> str | None:
    qname = f"{mname}.{pname}" if mname else pname
    if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)) and pname == "weight":
        return "embedding"
    if is_norm(mod):
        return "norm_weight" if pname == "weight" else "norm_bias" if pname == "bias" else "scalar"
    if isinstance(mod, _RNNS):
        if pname.startswith("weight_hh"):
            return "recurrent"
        if pname.startswith("weight_ih"):
            return "input_to_hidden"
        if pname.startswith("bias"):
            return "bias"
        return None
    if isinstance(mod, nn.MultiheadAttention):
        if pname in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            return "attention_qkv"
        if pname in ("in_proj_bias", "bias_k", "bias_v"):
            return "bias"
    if is_linear_like(mod) or isinstance(mod, (nn.Bilinear,) + _CONVS):
        if pname != "weight":
            return "bias" if pname == "bias" else None
        if mname == head_name or _HEAD.search(mname) and mname.count(".") <= 1:
            return "head"
        return _PROJECTION_ROLE.get(projection_kind(mname) or "", "weight")
    # Bare parameters of other modules: how the owner's forward uses them decides (concatenated
    # with / added to the sequence or used as queries: a token; multiplying a branch: a scalar;
    # the weight of F.linear or a matmul: a weight), the name is only the fallback hint.
    use = _usage(mod, pname, p)
    if use is not None:
        if use[0] == "weight":
            return _PROJECTION_ROLE.get(projection_kind(pname) or "", "weight")
        if use[0] != "bias" or p.dim() <= 1:
            return use[0]
    if _TOKEN.search(pname):
        return "token"
    if pname == "bias" or pname.endswith("_bias"):
        return "bias"
    # A scalar by name only when it is shaped like one (0-d or 1-D: a ReZero alpha, a layer-scale
    # gamma); a 2-D parameter that happens to be called "alpha" is a matrix, not a scalar.
    if p.numel() == 1 or (_SCALAR.search(qname) and p.dim() <= 1):
        return "scalar"
    return None


def _usage(mod: nn.Module, pname: str, p: torch.Tensor) -> Any:
    from ._structure import param_usage

    if isinstance(p, nn.parameter.UninitializedTensorMixin):  # type: ignore[attr-defined]
        return None
    return param_usage(mod, pname, p.dim())


def _experts_layout(mod: nn.Module, pname: str, p: torch.Tensor) -> tuple[str, str] | None:
    """``(layout, why)`` of a 3-D ``(experts, a, b)`` weight of a fused mixture-of-experts module
    (``"out_in"``: each expert's slice is an ``F.linear`` weight; ``"in_out"``: ``x @ W[e]``), or
    None when ``p`` is not such a weight."""
    if p.dim() != 3 or isinstance(mod, _CONVS + _RNNS) or is_linear_like(mod) or is_norm(mod):
        return None
    flag = getattr(mod, "is_transposed", None)  # Hugging Face's experts implementations say it
    if isinstance(flag, bool):
        return ("in_out", f"{type(mod).__name__}.is_transposed=True: each expert's slice is (in, out)") if flag \
            else ("out_in", f"{type(mod).__name__}.is_transposed=False: each expert's slice is an F.linear weight (out, in)")
    use = _usage(mod, pname, p)
    if use is not None and use[0] == "weight" and use[1] is not None:
        return use[1], use[2]
    if projection_kind(pname) is not None or "expert" in type(mod).__name__.lower():
        return "out_in", "no use found in the forward: each expert's slice read as an F.linear weight (out, in)"
    return None


def residual_block_last_norms(model: nn.Module) -> set[str]:
    """Qualified names of the last norm's weight in each ResNet-style residual block.

    A block is recognized by structure, as torchvision/timm build them: children ``conv1``,
    ``bn1``, ``conv2``, ``bn2`` (and ``conv3``/``bn3`` for a bottleneck), optionally a
    ``downsample``; its last BN is ``bn3`` when present, else ``bn2``. ConvNeXt/ViT-style blocks
    have no such norm (their residual scalars are layer scales).
    """
    out: set[str] = set()
    for mname, mod in model.named_modules():
        if "bn2" not in mod._modules:  # (not a block: a cheap test before building its children)
            continue
        ch = dict(mod.named_children())
        if all(k in ch for k in ("conv1", "bn1", "conv2", "bn2")) and is_norm(ch["bn2"]):
            last = "bn3" if "bn3" in ch and "conv3" in ch else "bn2"
            if getattr(ch[last], "weight", None) is not None:
                out.add(f"{mname}.{last}.weight" if mname else f"{last}.weight")
    return out


def _head_name(model: nn.Module) -> str | None:
    # The output layer: the HF output embeddings when defined, else the last linear-like module
    # registered at depth <= 1 whose name looks like a head.
    get = getattr(model, "get_output_embeddings", None)
    if callable(get):
        try:
            head = get()
        except Exception:  # noqa: BLE001 - some HF models raise for base classes
            head = None
        if head is not None:
            for n, m in model.named_modules():
                if m is head:
                    return n
    return None


def param_infos(model: nn.Module) -> Iterator[ParamInfo]:
    """Every distinct parameter of ``model`` with its role and fans, in registration order.

    A parameter registered under several names (tied weights) is yielded once, under the first
    name, with the other names in ``aliases``.
    """
    head = _head_name(model)
    last_norms = residual_block_last_norms(model)
    first: dict[int, ParamInfo] = {}
    for mname, mod in model.named_modules(remove_duplicate=False):
        for pname, p in own_parameters(mod):
            qname = f"{mname}.{pname}" if mname else pname
            key = id(p)
            if key in first:
                info = first[key]
                if qname != info.name and qname not in info.aliases:
                    info.aliases = info.aliases + (qname,)
                continue
            # lazy: the engine reports it
            if isinstance(p, nn.parameter.UninitializedTensorMixin):  # type: ignore[attr-defined]  # not in torch's .pyi
                first[key] = info = ParamInfo(qname, mname, pname, mod, p, None, 0, 0)
                yield info
                continue
            shape = tuple(p.shape)
            par = _parametrization(model, mname, mod, pname)
            if par is not None:
                first[key] = info = _parametrized_info(qname, pname, p, par, head)
                yield info
                continue
            fi, fo = weight_fans(mod, shape) if p.dim() >= 1 else (1, 1)
            info = ParamInfo(qname, mname, pname, mod, p, _role(mname, mod, pname, p, head), fi, fo)
            experts = _experts_layout(mod, pname, p) if info.role not in ("token", "scalar") else None
            if experts is not None:
                layout, why = experts
                info.fan_in, info.fan_out = (shape[2], shape[1]) if layout == "out_in" else (shape[1], shape[2])
                if info.role is None:
                    info.role = _PROJECTION_ROLE.get(projection_kind(pname) or "", "weight")
                info.extra.update(experts=shape[0], expert_layout=layout,
                                  fans_why=f"{shape[0]} experts: per-expert fans (in {info.fan_in}, out {info.fan_out}); {why}")
            elif not _is_known_owner(mod):
                use = _usage(mod, pname, p)
                if use is not None:
                    info.extra["usage"] = use[2]
                    if use[0] == "weight" and p.dim() == 2:  # a linear map by use (an MoE router's weight)
                        info.extra["linear_by_use"] = use[1]
                        if use[1] == "in_out":  # x @ W: stored (in, out)
                            info.fan_in, info.fan_out = shape[0], shape[1]
            if info.role == "norm_weight" and not isinstance(mod, _TORCH_NORMS):
                from ._structure import norm_identity

                ident = norm_identity(mod)
                if ident is not None and ident[0] != 1.0:
                    info.extra["norm_identity"] = ident[0]
                    info.extra["norm_form"] = ident[1]
            if isinstance(mod, (nn.Embedding,)) and mod.padding_idx is not None and pname == "weight":
                info.extra["padding_idx"] = int(mod.padding_idx)
            if qname in last_norms:
                info.extra["last_norm_in_block"] = True
            if isinstance(mod, _RNNS):
                info.extra["hidden_size"] = int(mod.hidden_size)
                info.extra["gates"] = {nn.LSTM: 4, nn.LSTMCell: 4, nn.GRU: 3, nn.GRUCell: 3}.get(type(mod), 1)
                info.extra["rnn_kind"] = type(mod).__name__
            first[key] = info
            yield info


def _is_known_owner(mod: nn.Module) -> bool:
    return is_norm(mod) or is_linear_like(mod) or isinstance(mod, _CONVS + _RNNS + (
        nn.Embedding, nn.EmbeddingBag, nn.Bilinear, nn.MultiheadAttention))


def _parametrization(model: nn.Module, mname: str, mod: nn.Module, pname: str) -> dict[str, Any] | None:
    if type(mod).__name__ != "ParametrizationList":
        return None
    from ._structure import parametrization_of

    return parametrization_of(model, mname, mod, pname)


def _parametrized_info(qname: str, pname: str, p: torch.Tensor, par: dict[str, Any], head: str | None) -> ParamInfo:
    """A tensor of a parametrization (``lin.parametrizations.weight.original1``) as the engine
    sees it: owned by the layer under the tensor's name (``lin``, ``weight``), with the role
    and fans of the layer's weight, and ``extra["parametrization"]`` saying which part it is."""
    layer, lname, tname = par["layer"], par["layer_name"], par["tensor"]
    try:
        eff = tuple(getattr(layer, tname).shape)  # the tensor the forward uses (computed)
    except Exception:  # noqa: BLE001 - a parametrization that cannot run here (meta buffers)
        eff = tuple(p.shape)
    role = _role(lname, layer, tname, p if p.shape == eff else torch.empty(0).new_empty(eff, device="meta"), head)
    fi, fo = weight_fans(layer, eff) if len(eff) >= 1 else (1, 1)
    info = ParamInfo(qname, lname, tname, layer, p, role, fi, fo, owner=par["plist"], owner_pname=pname)
    info.extra["parametrization"] = {k: v for k, v in par.items() if k not in ("layer",)}
    info.extra["parametrization"]["effective_shape"] = eff
    return info
