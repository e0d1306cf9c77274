"""The small torch modules the schemes insert: learnable scalars around existing layers.

* :class:`Shift` - ``x + bias`` (Fixup's scalar biases; replaces a removed norm before an activation);
* :class:`Scale` - ``x * scale`` (SkipInit's / ReZero's alpha);
* :class:`ScaleShift` - ``x * scale + bias`` (Fixup's multiplier and ``bias2b``);
* :class:`PreShift` - ``layer(x + bias_in)`` (Fixup's bias before a convolution / linear layer);
* :class:`ScaledOutput` - ``post(layer(x))``: a layer followed by a ``Scale``/``ScaleShift``;
* :class:`NoNorm` - the identity, in place of a removed normalization layer.

Each scalar is a parameter of shape ``(1,)`` (as ReZero's ``resweight``); a ``PreShift`` may share
its ``bias_in`` with another (Fixup's ``bias1a`` feeds both ``conv1`` and the downsample).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Shift", "Scale", "ScaleShift", "PreShift", "ScaledOutput", "NoNorm"]


class Shift(nn.Module):
    """``x + bias`` with a learnable scalar ``bias`` (init ``value``)."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.full((1,), float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class Scale(nn.Module):
    """``x * scale`` with a learnable scalar ``scale`` (init ``value``)."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ScaleShift(nn.Module):
    """``x * scale + bias`` with learnable scalars (init 1 and 0)."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), float(scale)))
        self.bias = nn.Parameter(torch.full((1,), float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.bias


class PreShift(nn.Module):
    """``layer(x + bias_in)``; ``bias_in`` may be shared (pass an existing parameter)."""

    def __init__(self, layer: nn.Module, bias_in: nn.Parameter | None = None) -> None:
        super().__init__()
        self.bias_in = bias_in if bias_in is not None else nn.Parameter(torch.zeros(1))
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x + self.bias_in)


class ScaledOutput(nn.Module):
    """``post(layer(x))``: the branch's last layer followed by its scalar multiplier (and bias)."""

    def __init__(self, layer: nn.Module, post: nn.Module) -> None:
        super().__init__()
        self.layer = layer
        self.post = post

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.post(self.layer(*args, **kwargs))


class NoNorm(nn.Identity):
    """The identity, standing where a normalization layer was removed (keeps its ``eps``)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
