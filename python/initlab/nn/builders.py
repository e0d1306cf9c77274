"""Builders (mlp, residual nets) and whole-model re-initialization."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from ..generator import SeedLike
from .activations import get_activation
from .layers import BatchNorm, Conv2d, LayerNorm, Linear, as_generator
from .module import Flatten, Module, Residual, Sequential

__all__ = ["mlp", "residual_mlp", "resnet", "init_weights", "GlobalAvgPool"]


class GlobalAvgPool(Module):
    """Mean over the spatial axes of NCHW inputs: ``(N, C, H, W) -> (N, C)``."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.mean(axis=tuple(range(2, x.ndim)))

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        hw = int(np.prod(self._shape[2:]))
        return np.broadcast_to(dy.reshape(dy.shape + (1,) * (len(self._shape) - 2)) / hw, self._shape).copy()


def _norm(kind: str | None, width: int, dtype: Any) -> list[Module]:
    if kind is None:
        return []
    if kind == "layer":
        return [LayerNorm(width, dtype=dtype)]
    if kind == "batch":
        return [BatchNorm(width, dtype=dtype)]
    raise ValueError(f"unknown norm {kind!r}; accepted: None, 'layer', 'batch'")


def mlp(in_features: int, width: int, depth: int, out_features: int | None = None, *, activation: Any = "relu",
        bias: bool = True, norm: str | None = None, seed: SeedLike = None, dtype: Any = np.float64) -> Sequential:
    """A multilayer perceptron: ``depth`` hidden layers of ``width`` units.

    Each hidden layer is ``Linear -> [norm] -> activation``; an output ``Linear`` follows when
    ``out_features`` is given.

    Parameters
    ----------
    in_features, width, depth : int
    out_features : int, optional
    activation : str or Activation, default "relu"
        See :func:`initlab.nn.get_activation`.
    bias : bool, default True
    norm : {None, "layer", "batch"}
    seed : int, initlab.Generator or None
        An int seeds one Generator shared by all layers (each parameter takes its own stream).
    dtype : float32 or float64, default float64

    Returns
    -------
    Sequential
    """
    if depth < 0 or width < 1 or in_features < 1:
        raise ValueError(f"mlp needs in_features >= 1, width >= 1 and depth >= 0, got {in_features}, {width}, {depth}")
    g = as_generator(seed)
    layers: list[Module] = []
    fan = in_features
    for _ in range(depth):
        layers.append(Linear(fan, width, bias=bias, seed=g, dtype=dtype))
        layers += _norm(norm, width, dtype)
        # A module instance is copied so that layers do not share cached state.
        layers.append(copy.deepcopy(activation) if isinstance(activation, Module) else get_activation(activation))
        fan = width
    if out_features is not None:
        layers.append(Linear(fan, out_features, bias=bias, seed=g, dtype=dtype))
    return Sequential(*layers)


def residual_mlp(in_features: int, width: int, n_blocks: int, out_features: int | None = None, *,
                 activation: str = "relu", norm: str | None = "layer", alpha: float = 1.0, seed: SeedLike = None,
                 dtype: Any = np.float64) -> Sequential:
    """A pre-norm residual MLP: ``Linear`` stem, ``n_blocks`` residual blocks, optional head.

    Each block is ``Residual([norm] -> act -> Linear -> [norm] -> act -> Linear, alpha)``;
    ``alpha=0`` starts every block as the identity (SkipInit / ReZero).
    """
    g = as_generator(seed)
    layers: list[Module] = [Linear(in_features, width, seed=g, dtype=dtype)]
    for _ in range(n_blocks):
        branch = Sequential(
            *_norm(norm, width, dtype), get_activation(activation), Linear(width, width, seed=g, dtype=dtype),
            *_norm(norm, width, dtype), get_activation(activation), Linear(width, width, seed=g, dtype=dtype),
        )
        layers.append(Residual(branch, alpha=alpha))
    if out_features is not None:
        layers.append(Linear(width, out_features, seed=g, dtype=dtype))
    return Sequential(*layers)


def resnet(in_channels: int = 3, channels: int = 16, n_blocks: int = 3, n_classes: int | None = 10, *,
           alpha: float = 1.0, norm: str | None = "batch", seed: SeedLike = None, dtype: Any = np.float64) -> Sequential:
    """A small convolutional residual network on NCHW inputs (He et al. 2016 basic blocks, stride 1).

    ``Conv3x3 -> [BN] -> ReLU``, then ``n_blocks`` of
    ``Residual(Conv3x3 -> [BN] -> ReLU -> Conv3x3 -> [BN], alpha) -> ReLU``, then global average
    pooling and a ``Linear`` head (if ``n_classes``).
    """
    g = as_generator(seed)

    def conv(ci: int, co: int) -> Conv2d:
        return Conv2d(ci, co, 3, padding=1, bias=norm is None, seed=g, dtype=dtype)

    def bn(c: int) -> list[Module]:
        return [BatchNorm(c, dtype=dtype)] if norm == "batch" else []

    if norm not in (None, "batch"):
        raise ValueError(f"resnet supports norm=None or 'batch', got {norm!r}")
    layers: list[Module] = [conv(in_channels, channels), *bn(channels), get_activation("relu")]
    for _ in range(n_blocks):
        branch = Sequential(conv(channels, channels), *bn(channels), get_activation("relu"), conv(channels, channels), *bn(channels))
        layers += [Residual(branch, alpha=alpha), get_activation("relu")]
    layers.append(GlobalAvgPool())
    if n_classes is not None:
        layers += [Flatten(), Linear(channels, n_classes, seed=g, dtype=dtype)]
    return Sequential(*layers)


def init_weights(model: Module, init: str | Callable[..., Any], *, bias: float | None = 0.0, seed: SeedLike = None,
                 **kwargs: Any) -> Module:
    """Re-initialize the weight of every Linear and Conv2d of ``model`` in place.

    Parameters
    ----------
    model : Module
    init : str or callable
        An initlab initializer or its name without the trailing underscore (``"normal"``,
        ``"xavier_normal"``, ``"kaiming_normal"``, ``"orthogonal"``, ...); called as
        ``init(weight, **kwargs, seed=...)``.
    bias : float or None, default 0.0
        Value for every bias; ``None`` leaves biases unchanged.
    seed : int, initlab.Generator or None
        An int seeds one Generator: each weight takes its own stream, in module order.
    **kwargs
        Passed to the initializer (e.g. ``std=0.01``, ``nonlinearity="relu"``).

    Returns
    -------
    Module
        ``model``.
    """
    import initlab

    if isinstance(init, str):
        fn = getattr(initlab, init.rstrip("_") + "_", None)
        if fn is None or not callable(fn):
            raise ValueError(f"unknown initializer {init!r}; pass an initlab initializer name such as 'kaiming_normal' or a callable")
    elif callable(init):
        fn = init
    else:
        raise TypeError(f"init must be an initializer name or a callable, got {type(init).__name__}")
    g = as_generator(seed)
    for _, m in model.named_modules():
        if isinstance(m, (Linear, Conv2d)):
            fn(m.weight, **kwargs, seed=g)
            if bias is not None and m.bias is not None:
                m.bias[...] = bias
    return model
