"""timm building blocks shared by the zoo's timm structures (``tests/_zoo.py`` has the registry).

Same names as timm.layers: ``BatchNormAct2d`` (a BatchNorm2d with drop/act), ``LayerNorm2d``,
``Mlp`` (fc1, act, drop1, norm, fc2, drop2), ``SqueezeExcite`` (conv_reduce/conv_expand),
``SEModule`` (fc1/fc2), ``ClassifierHead``, ``NormMlpClassifierHead``, and timm's ``named_apply``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

# ---- timm layers ------------------------------------------------------------------------------


class BatchNormAct2d(nn.BatchNorm2d):
    """timm.layers.BatchNormAct2d: a BatchNorm2d (its own weight/bias) followed by drop and act."""

    def __init__(self, c: int, act: bool = True) -> None:
        super().__init__(c)
        self.drop = nn.Identity()
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.drop(super().forward(x)))


class LayerNorm2d(nn.LayerNorm):
    """timm.layers.LayerNorm2d: LayerNorm over channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """timm.layers.Mlp: fc1, act, drop1, norm, fc2, drop2."""

    def __init__(self, d: int, hidden: int, conv: bool = False) -> None:
        super().__init__()
        lin = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.fc1 = lin(d, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Identity()
        self.norm = nn.Identity()
        self.fc2 = lin(hidden, d)
        self.drop2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.act(self.fc1(x))))))


class SqueezeExcite(nn.Module):
    """timm _efficientnet_blocks.SqueezeExcite: conv_reduce, act1, conv_expand, gate."""

    def __init__(self, c: int, rd: int, gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(c, rd, 1, bias=True)
        self.act1 = nn.SiLU()
        self.conv_expand = nn.Conv2d(rd, c, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
        return x * self.gate(s)


class SEModule(nn.Module):
    """timm.layers.SEModule: fc1, bn, act, fc2, gate."""

    def __init__(self, c: int, rd: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, rd, 1, bias=True)
        self.bn = nn.Identity()
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(rd, c, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True))))))


class ClassifierHead(nn.Module):
    """timm.layers.ClassifierHead: global_pool, drop, fc, flatten."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Identity()
        self.fc = nn.Linear(d, n)
        self.flatten = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(x).flatten(1))


class NormMlpClassifierHead(nn.Module):
    """timm.layers.NormMlpClassifierHead: global_pool, norm, flatten, pre_logits (fc, act), drop, fc."""

    def __init__(self, d: int, n: int, hidden: int | None = None) -> None:
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.norm = LayerNorm2d(d, eps=1e-6)
        self.flatten = nn.Flatten(1)
        self.pre_logits: nn.Module = (nn.Sequential(OrderedDict([("fc", nn.Linear(d, hidden)), ("act", nn.Tanh())]))
                                      if hidden else nn.Identity())
        self.drop = nn.Identity()
        self.fc = nn.Linear(hidden or d, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pre_logits(self.flatten(self.norm(self.global_pool(x))))))


def _named_apply(fn: Callable[[nn.Module, str], None], module: nn.Module, name: str = "",
                 include_root: bool = False) -> None:
    """timm._manipulate.named_apply, depth first (children before their parent)."""
    for cname, child in module.named_children():
        _named_apply(fn, child, f"{name}.{cname}" if name else cname, include_root=True)
    if include_root:
        fn(module, name)


