"""Structure of torch models as the schemes need it (imports torch; loaded only for torch models).

Norms, linear-like layers (HF ``Conv1D`` included), fans and projection names come from
``initlab.torch.roles``, the rule engine's structure detector, so schemes and recipes agree.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from ..torch.roles import is_norm, projection_kind  # noqa: F401 - re-exported for the scheme modules
from ..torch.roles import is_hf_conv1d, is_linear_like, weight_fans

WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def is_weight_layer(mod: nn.Module) -> bool:
    return isinstance(mod, WEIGHT_LAYERS) or is_linear_like(mod)


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


CROSS = re.compile(r"(^|\.)(multihead_attn|encoder_attn|crossattention|cross_attn|EncDecAttention|src_attn)(\.|$)")


def layer_weight_shape_out_in(mod: nn.Module, w: torch.Tensor) -> tuple[int, int]:
    """``(out, in)`` of a linear-like weight (HF Conv1D stores ``(in, out)``)."""
    if is_hf_conv1d(mod):
        return int(w.shape[1]), int(w.shape[0])
    return int(w.shape[0]), int(w.shape[1])


def fans(mod: Any, w: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight in its module's own layout (HF Conv1D transposed)."""
    return weight_fans(mod, tuple(w.shape))


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
