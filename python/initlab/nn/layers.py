"""Layers with parameters: Linear, Conv2d (NCHW), LayerNorm, BatchNorm, ScalarBias."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..generator import SeedLike
from .module import Module

__all__ = ["Linear", "Conv2d", "LayerNorm", "BatchNorm", "ScalarBias"]


def as_generator(seed: Any) -> Any:
    """An int seed becomes a Generator, so a layer's weight and bias take different streams."""
    from ..generator import Generator

    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return Generator(int(seed))
    return seed


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"initlab.nn computes in float32 or float64, got {dt}")
    return dt


def _torch_default_init(weight: np.ndarray, bias: np.ndarray | None, fan_in: int, seed: SeedLike) -> None:
    # torch's reset_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias the same bound.
    from .. import init

    init.kaiming_uniform_(weight, a=math.sqrt(5), seed=seed)
    if bias is not None:
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound, seed=seed)


class Linear(Module):
    """``y = x @ weight.T + bias`` with torch's layout (``weight`` is ``(out, in)``).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    seed : int, initlab.Generator or None
        Randomness of the default initialization (torch's: ``U(-1/sqrt(in), 1/sqrt(in))`` for
        weight and bias, through :func:`initlab.kaiming_uniform_` and :func:`initlab.uniform_`).
    dtype : float32 or float64, default float64
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, seed: SeedLike = None,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear needs positive sizes, got in_features={in_features}, out_features={out_features}")
        dt = _check_dtype(dtype)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight: np.ndarray
        self._add_param("weight", np.empty((self.out_features, self.in_features), dt))
        self.bias: np.ndarray | None = None
        if bias:
            self._add_param("bias", np.empty(self.out_features, dt))
        _torch_default_init(self.weight, self.bias, self.in_features, as_generator(seed))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear expects inputs with last dimension {self.in_features}, got shape {x.shape}")
        self._x = x
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        x2 = self._x.reshape(-1, self.in_features)
        d2 = dy.reshape(-1, self.out_features)
        self._accumulate("weight", d2.T @ x2)
        if self.bias is not None:
            self._accumulate("bias", d2.sum(axis=0))
        return dy @ self.weight

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-d convolution (cross-correlation, as torch) on NCHW inputs.

    Parameters
    ----------
    in_channels, out_channels : int
        Both divisible by ``groups``.
    kernel_size : int or (int, int)
    stride, padding : int or (int, int), default 1 and 0
        Zero padding on both sides.
    groups : int, default 1
    bias : bool, default True
    seed : int, initlab.Generator or None
        As :class:`Linear`, with ``fan_in = in_channels / groups * kh * kw``.
    dtype : float32 or float64, default float64
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 groups: int = 1, bias: bool = True, *, seed: SeedLike = None, dtype: Any = np.float64) -> None:
        super().__init__()
        pair = lambda v: (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(u) for u in v)  # noqa: E731
        self.kernel_size, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by groups ({groups})")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"kernel_size and stride must be >= 1 and padding >= 0, got {self.kernel_size}, {self.stride}, {self.padding}")
        dt = _check_dtype(dtype)
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        kh, kw = self.kernel_size
        self.weight: np.ndarray
        self._add_param("weight", np.empty((out_channels, in_channels // groups, kh, kw), dt))
        self.bias: np.ndarray | None = None
        if bias:
            self._add_param("bias", np.empty(out_channels, dt))
        _torch_default_init(self.weight, self.bias, in_channels // groups * kh * kw, as_generator(seed))

    def _windows(self, xp: np.ndarray, ho: int, wo: int) -> np.ndarray:
        # (N, G, Cg, Ho, Wo, kh, kw) view of the padded input: no copy.
        n, c, _, _ = xp.shape
        g = self.groups
        sn, sc, sh, sw = xp.strides
        (kh, kw), (th, tw) = self.kernel_size, self.stride
        return np.lib.stride_tricks.as_strided(
            xp, (n, g, c // g, ho, wo, kh, kw), (sn, sc * (c // g), sc, sh * th, sw * tw, sh, sw), writeable=False
        )

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv2d expects NCHW inputs with {self.in_channels} channels, got shape {x.shape}")
        (ph, pw), (kh, kw), (th, tw) = self.padding, self.kernel_size, self.stride
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else np.ascontiguousarray(x)
        ho, wo = (xp.shape[2] - kh) // th + 1, (xp.shape[3] - kw) // tw + 1
        if ho < 1 or wo < 1:
            raise ValueError(f"input of spatial size {x.shape[2:]} is smaller than the kernel {self.kernel_size}")
        self._xshape, self._xp, self._out = x.shape, xp, (ho, wo)
        cols = self._windows(xp, ho, wo)
        w = self.weight.reshape(self.groups, self.out_channels // self.groups, *self.weight.shape[1:])
        y = np.einsum("ngchwab,gocab->ngohw", cols, w, optimize=True)
        y = y.reshape(x.shape[0], self.out_channels, ho, wo)
        return y + self.bias[None, :, None, None] if self.bias is not None else y

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        n = dy.shape[0]
        g, (ho, wo) = self.groups, self._out
        (kh, kw), (th, tw), (ph, pw) = self.kernel_size, self.stride, self.padding
        dyg = dy.reshape(n, g, self.out_channels // g, ho, wo)
        cols = self._windows(self._xp, ho, wo)
        dw = np.einsum("ngohw,ngchwab->gocab", dyg, cols, optimize=True)
        self._accumulate("weight", dw.reshape(self.weight.shape))
        if self.bias is not None:
            self._accumulate("bias", dy.sum(axis=(0, 2, 3)))
        w = self.weight.reshape(g, self.out_channels // g, *self.weight.shape[1:])
        dcols = np.einsum("ngohw,gocab->ngchwab", dyg, w, optimize=True)
        dxp = np.zeros(self._xp.shape, dtype=dy.dtype)
        cg = self.in_channels // g
        for a in range(kh):
            for b in range(kw):
                dxp[:, :, a : a + th * (ho - 1) + 1 : th, b : b + tw * (wo - 1) + 1 : tw] += dcols[..., a, b].reshape(n, g * cg, ho, wo)
        return dxp[:, :, ph : ph + self._xshape[2], pw : pw + self._xshape[3]]

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, bias={self.bias is not None}")


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dimensions, then scale and shift.

    Parameters
    ----------
    normalized_shape : int or tuple of int
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learnable ``weight`` (ones) and ``bias`` (zeros), torch's defaults.
    dtype : float32 or float64, default float64
    """

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True, *,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        self.normalized_shape = ((int(normalized_shape),) if np.ndim(normalized_shape) == 0
                                 else tuple(int(s) for s in normalized_shape))
        self.eps = float(eps)
        dt = _check_dtype(dtype)
        self.weight: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        if elementwise_affine:
            self._add_param("weight", np.ones(self.normalized_shape, dt))
            self._add_param("bias", np.zeros(self.normalized_shape, dt))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        k = len(self.normalized_shape)
        if x.shape[x.ndim - k :] != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} got input of shape {x.shape}")
        axes = tuple(range(x.ndim - k, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
        self._rstd = 1.0 / np.sqrt(var + self.eps)
        self._xhat = (x - mu) * self._rstd
        self._axes = axes
        return self._xhat * self.weight + self.bias if self.weight is not None else self._xhat

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        axes, xhat = self._axes, self._xhat
        lead = tuple(range(dy.ndim - len(axes)))
        if self.weight is not None:
            self._accumulate("weight", (dy * xhat).sum(axis=lead))
            self._accumulate("bias", dy.sum(axis=lead))
            dy = dy * self.weight
        m = dy.mean(axis=axes, keepdims=True)
        mx = (dy * xhat).mean(axis=axes, keepdims=True)
        return self._rstd * (dy - m - xhat * mx)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps:g}, elementwise_affine={self.weight is not None}"


class BatchNorm(Module):
    """Batch normalization over every axis but the channel axis 1 (inputs ``(N, C)`` or ``(N, C, ...)``).

    Training mode normalizes with the batch statistics (population variance) and updates the
    running estimates (unbiased variance, as torch); evaluation mode uses the running estimates.

    Parameters
    ----------
    num_features : int
    eps : float, default 1e-5
    momentum : float, default 0.1
    affine : bool, default True
        Learnable ``weight`` (ones) and ``bias`` (zeros).
    dtype : float32 or float64, default float64
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, *,
                 dtype: Any = np.float64) -> None:
        super().__init__()
        dt = _check_dtype(dtype)
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), float(momentum)
        self.running_mean = np.zeros(self.num_features, dt)
        self.running_var = np.ones(self.num_features, dt)
        self.weight: np.ndarray | None = None
        self.bias: np.ndarray | None = None
        if affine:
            self._add_param("weight", np.ones(self.num_features, dt))
            self._add_param("bias", np.zeros(self.num_features, dt))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm({self.num_features}) expects inputs (N, {self.num_features}, ...), got {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, -1) + (1,) * (x.ndim - 2)
        self._axes, self._shape = axes, shape
        if self.training:
            mu = x.mean(axis=axes)
            var = ((x - mu.reshape(shape)) ** 2).mean(axis=axes)
            m = x.size // self.num_features
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mu
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * (m / max(m - 1, 1))
        else:
            mu, var = self.running_mean, self.running_var
        self._rstd = (1.0 / np.sqrt(var + self.eps)).reshape(shape)
        self._xhat = (x - mu.reshape(shape)) * self._rstd
        if self.weight is None or self.bias is None:  # (both or neither: elementwise_affine)
            return self._xhat
        return self._xhat * self.weight.reshape(shape) + self.bias.reshape(shape)

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        axes, shape, xhat = self._axes, self._shape, self._xhat
        if self.weight is not None:
            self._accumulate("weight", (dy * xhat).sum(axis=axes))
            self._accumulate("bias", dy.sum(axis=axes))
            dy = dy * self.weight.reshape(shape)
        if not self.training:
            return dy * self._rstd
        m = dy.mean(axis=axes, keepdims=True)
        mx = (dy * xhat).mean(axis=axes, keepdims=True)
        return self._rstd * (dy - m - xhat * mx)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum:g}, affine={self.weight is not None}"


class ScalarBias(Module):
    """``y = x + bias`` with one trainable scalar ``bias`` (a 0-d array).

    Fixup (Zhang et al. 2019) inserts these (init 0) before each convolution, linear and
    activation layer of a residual branch.

    Parameters
    ----------
    value : float, default 0.0
        Initial value.
    dtype : float32 or float64, default float64
    """

    def __init__(self, value: float = 0.0, *, dtype: Any = np.float64) -> None:
        super().__init__()
        self.bias: np.ndarray
        self._add_param("bias", np.array(float(value), dtype=_check_dtype(dtype)))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x + self.bias

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        self._accumulate("bias", np.array(np.sum(dy)))
        return dy

    def extra_repr(self) -> str:
        return f"bias={float(self.bias):g}"
