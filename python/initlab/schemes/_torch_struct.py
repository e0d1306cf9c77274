"""Structure of torch models as the schemes need it (imports torch; loaded only for torch models).

Uses the role detector of ``initlab.torch.roles`` for normalization layers when it is
available, and otherwise recognizes torch's own norms and any module whose class name contains
``Norm`` with 1-D parameters only.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)

try:  # the lead's structure-based detector (HF Conv1D, RMSNorm-like modules, ...)
    from ..torch.roles import is_linear_like as _roles_linear
    from ..torch.roles import is_norm as _roles_norm
except Exception:  # pragma: no cover - older trees without roles.py
    _roles_norm = None
    _roles_linear = None


def is_norm(mod: nn.Module) -> bool:
    if _roles_norm is not None:
        return bool(_roles_norm(mod))
    if isinstance(mod, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
        return True
    own = list(mod.named_parameters(recurse=False))
    return "Norm" in type(mod).__name__ and bool(own) and all(p.dim() == 1 for _, p in own)


def is_hf_conv1d(mod: nn.Module) -> bool:
    """Hugging Face's ``Conv1D``: a linear layer with weight stored ``(in, out)``."""
    return type(mod).__name__ == "Conv1D" and hasattr(mod, "nf") and getattr(mod, "weight", None) is not None


def is_weight_layer(mod: nn.Module) -> bool:
    if isinstance(mod, WEIGHT_LAYERS) or is_hf_conv1d(mod):
        return True
    return bool(_roles_linear(mod)) if _roles_linear is not None else False


def resnet_convs(mod: nn.Module) -> list[str] | None:
    """``["conv1", "conv2"(, "conv3")]`` for a torchvision/timm BasicBlock/Bottleneck (by structure)."""
    names = []
    for k in (1, 2, 3):
        c, b = getattr(mod, f"conv{k}", None), getattr(mod, f"bn{k}", None)
        if isinstance(c, nn.Module) and isinstance(b, nn.Module) and (isinstance(c, nn.modules.conv._ConvNd)
                                                                      or type(c).__name__ == "PreShift"):
            names.append(f"conv{k}")
        else:
            break
    if len(names) < 2 or isinstance(getattr(mod, f"conv{len(names) + 1}", None), nn.Module):
        return None
    return names


def transformer_layer_kind(mod: nn.Module) -> str | None:
    """``"encoder"``/``"decoder"`` for ``nn.TransformerEncoderLayer``/``DecoderLayer``, else None."""
    if isinstance(mod, nn.TransformerDecoderLayer):
        return "decoder"
    if isinstance(mod, nn.TransformerEncoderLayer):
        return "encoder"
    return None


# Conventional names of a transformer layer's projections (torch, HF, fairseq, nanoGPT, timm).
QUERY = re.compile(r"(^|\.)(q_proj|query|q|wq|q_lin)$")
KEY = re.compile(r"(^|\.)(k_proj|key|k|wk|k_lin)$")
VALUE = re.compile(r"(^|\.)(v_proj|value|v|wv|v_lin)$")
PACKED_QKV = re.compile(r"(^|\.)(c_attn|qkv|qkv_proj|query_key_value|Wqkv|in_proj)$")
ATT_OUT = re.compile(r"(^|\.)(out_proj|o_proj|wo|out_lin|attention\.output\.dense|attn\.c_proj|attn\.proj|"
                     r"self_attn\.dense|attention\.dense|dense_out)$")
MLP_IN = re.compile(r"(^|\.)(linear1|fc1|c_fc|up_proj|gate_proj|w1|w3|wi|lin1|intermediate\.dense|"
                    r"mlp\.fc_in|dense_h_to_4h)$")
MLP_OUT = re.compile(r"(^|\.)(linear2|fc2|down_proj|w2|wo_ffn|lin2|mlp\.c_proj|mlp\.proj|mlp\.fc_out|"
                     r"dense_4h_to_h|(?<!attention\.)output\.dense)$")
CROSS = re.compile(r"(^|\.)(multihead_attn|encoder_attn|crossattention|cross_attn|EncDecAttention|src_attn)(\.|$)")


def projection_kind(rel: str, mod: nn.Module) -> str | None:
    """``"q"``, ``"k"``, ``"v"``, ``"qkv"``, ``"att_out"``, ``"mlp_in"``, ``"mlp_out"`` or None by name."""
    for kind, rx in (("att_out", ATT_OUT), ("mlp_out", MLP_OUT), ("mlp_in", MLP_IN), ("qkv", PACKED_QKV),
                     ("q", QUERY), ("k", KEY), ("v", VALUE)):
        if rx.search(rel):
            return kind
    return None


def layer_weight_shape_out_in(mod: nn.Module, w: torch.Tensor) -> tuple[int, int]:
    """``(out, in)`` of a linear-like weight (HF Conv1D stores ``(in, out)``)."""
    if is_hf_conv1d(mod):
        return int(w.shape[1]), int(w.shape[0])
    return int(w.shape[0]), int(w.shape[1])


def fans(mod: Any, w: torch.Tensor) -> tuple[int, int]:
    if is_hf_conv1d(mod):
        return int(w.shape[0]), int(w.shape[1])
    rf = 1
    for s in w.shape[2:]:
        rf *= int(s)
    return int(w.shape[1]) * rf, int(w.shape[0]) * rf


def layer_kind(name: str, m: Any) -> str | None:
    """``"encoder"``/``"decoder"`` for a transformer layer (torch's, or by structure: a class name
    ending in Layer/Block with attention sub-modules; decoder if named so or with cross-attention)."""
    k = transformer_layer_kind(m)
    if k is not None:
        return k
    cls = type(m).__name__
    if not (cls.endswith("Layer") or cls.endswith("Block")) or "Norm" in cls:
        return None
    rels = [r for r, _ in m.named_modules()]
    if not any(("attn" in r.lower() or "attention" in r.lower()) for r in rels):
        return None
    if "Decoder" in cls or any(CROSS.search(r) for r in rels):
        return "decoder"
    return "encoder"


def remove_norm(block: nn.Module, rel: str) -> None:
    """Replace the norm at ``block.<rel>`` by :class:`~initlab.schemes.torch_modules.NoNorm`.

    torch's ``TransformerEncoderLayer`` has a fused inference path that reads its LayerNorms'
    weights; a layer without norms must take the regular path, so the flag that selects the
    fused path (``activation_relu_or_gelu``) is cleared on such a layer.
    """
    from ._common import set_submodule
    from .torch_modules import NoNorm

    old = block.get_submodule(rel)
    set_submodule(block, rel, NoNorm(getattr(old, "eps", 1e-5)))
    if isinstance(block, nn.TransformerEncoderLayer):
        block.activation_relu_or_gelu = False
