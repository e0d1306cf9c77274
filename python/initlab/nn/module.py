"""The module protocol of :mod:`initlab.nn`: forward, backward, named parameters, hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast
from typing import Any

import numpy as np

__all__ = ["Module", "Sequential", "Residual", "Identity", "Flatten"]

ForwardHook = Callable[["Module", np.ndarray, np.ndarray], None]
BackwardHook = Callable[["Module", np.ndarray, np.ndarray], None]


class Module:
    """Base class: a layer with a NumPy forward and backward pass.

    Subclasses implement ``_forward(x)`` (caching what the backward pass needs) and
    ``_backward(dy)`` (returning ``dx`` and *accumulating* parameter gradients into
    ``self.grads``). Parameters are NumPy arrays stored as attributes and listed in
    ``self._param_names``; children are listed in ``self._children``.

    Attributes
    ----------
    training : bool
        Training mode (BatchNorm uses batch statistics) or evaluation mode.
    grads : dict of str to ndarray
        Gradients of this module's own parameters, by local name.
    """

    def __init__(self) -> None:
        self.training = True
        self.grads: dict[str, np.ndarray] = {}
        self._param_names: list[str] = []
        self._children: dict[str, Module] = {}
        self._forward_hooks: list[ForwardHook] = []
        self._backward_hooks: list[BackwardHook] = []

    # -- what subclasses provide --------------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # -- public protocol ----------------------------------------------------------------------
    def forward(self, x: Any) -> np.ndarray:
        """Compute the output for input ``x`` and remember what :meth:`backward` needs."""
        x = np.asarray(x)
        y = self._forward(x)
        for h in self._forward_hooks:
            h(self, x, y)
        return y

    __call__ = forward

    def backward(self, dy: Any) -> np.ndarray:
        """Given ``dL/dy`` for the last forward call, return ``dL/dx``; parameter gradients accumulate."""
        dy = np.asarray(dy)
        dx = self._backward(dy)
        for h in self._backward_hooks:
            h(self, dy, dx)
        return dx

    def register_forward_hook(self, hook: ForwardHook) -> Callable[[], None]:
        """Call ``hook(module, x, y)`` after every forward; returns a function that removes it."""
        self._forward_hooks.append(hook)
        return lambda: self._forward_hooks.remove(hook)

    def register_backward_hook(self, hook: BackwardHook) -> Callable[[], None]:
        """Call ``hook(module, dy, dx)`` after every backward; returns a function that removes it."""
        self._backward_hooks.append(hook)
        return lambda: self._backward_hooks.remove(hook)

    def _add_param(self, name: str, value: np.ndarray) -> None:
        setattr(self, name, value)
        self._param_names.append(name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct children as ``(name, module)``."""
        yield from self._children.items()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all descendants as ``(qualified name, module)``, depth first."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def get_submodule(self, target: str) -> Module:
        """The descendant at the dotted name ``target`` (``""`` is this module), as torch's.

        Raises
        ------
        AttributeError
            No such descendant (the message names the missing part).
        """
        mod: Module = self
        if target == "":
            return mod
        for part in target.split("."):
            if part not in mod._children:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} (looking up {target!r})")
            mod = mod._children[part]
        return mod

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """All parameters as ``(qualified name, array)``, e.g. ``"3.weight"``, torch-style."""
        for qual, mod in self.named_modules(prefix):
            for p in mod._param_names:
                yield (f"{qual}.{p}" if qual else p), getattr(mod, p)

    def parameters(self) -> list[np.ndarray]:
        """All parameter arrays."""
        return [p for _, p in self.named_parameters()]

    def named_grads(self) -> Iterator[tuple[str, np.ndarray]]:
        """Gradients of all parameters as ``(qualified name, array)`` (zeros before any backward)."""
        for qual, mod in self.named_modules():
            for p in mod._param_names:
                g = mod.grads.get(p)
                yield (f"{qual}.{p}" if qual else p), (g if g is not None else np.zeros_like(getattr(mod, p)))

    def zero_grad(self) -> None:
        """Forget accumulated gradients."""
        for _, mod in self.named_modules():
            mod.grads = {}

    def train(self, mode: bool = True) -> Module:
        """Set training mode on this module and its descendants; returns self."""
        for _, mod in self.named_modules():
            mod.training = mode
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn(m)`` on every descendant and on this module (children first); returns self."""
        for _, child in self._children.items():
            child.apply(fn)
        fn(self)
        return self

    def _accumulate(self, name: str, g: np.ndarray) -> None:
        prev = self.grads.get(name)
        self.grads[name] = g if prev is None else prev + g

    def extra_repr(self) -> str:
        """Text shown inside the parentheses of ``repr``."""
        return ""

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._children.items():
            sub = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


class Identity(Module):
    """``y = x``."""

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        return dy


class Flatten(Module):
    """Flatten dimensions ``start_dim`` to the last into one (default: all but the batch)."""

    def __init__(self, start_dim: int = 1) -> None:
        super().__init__()
        self.start_dim = int(start_dim)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(*x.shape[: self.start_dim], -1)

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}"


class Sequential(Module):
    """Modules applied in order; children are named ``"0"``, ``"1"``, ...

    Parameters
    ----------
    *layers : Module
        The modules, first applied first.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential takes initlab.nn modules, got {type(layer).__name__} at position {i}")
            self._children[str(i)] = layer

    def __len__(self) -> int:
        return len(self._children)

    def __getitem__(self, i: int) -> Module:
        return list(self._children.values())[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self._children.values())

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self._children.values():
            x = layer.forward(x)
        return x

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        for layer in reversed(list(self._children.values())):
            dy = layer.backward(dy)
        return dy


class Residual(Module):
    """``y = shortcut(x) + alpha * branch(x) [+ bias]`` with a scalar, trainable ``alpha``.

    ``alpha=0`` gives SkipInit (De & Smith 2020) / ReZero (Bachlechner et al. 2020): every
    block starts as the identity. Fixup (Zhang et al. 2019) uses ``alpha`` as its scalar
    multiplier (init 1) and adds the scalar ``bias`` after it (init 0, ``bias2b`` in the
    reference code).

    Parameters
    ----------
    branch : Module
        The residual branch.
    alpha : float, default 1.0
        Initial value of the scalar parameter ``alpha`` (a 0-d array).
    shortcut : Module, optional
        Projection for the skip path when shapes change (default: the identity).
    bias : float, optional
        Initial value of a scalar parameter ``bias`` added to the scaled branch (0-d array);
        ``None`` (default): no such parameter. See also :meth:`add_bias`.
    """

    def __init__(self, branch: Module, alpha: float = 1.0, shortcut: Module | None = None, *,
                 bias: float | None = None) -> None:
        super().__init__()
        self._children["branch"] = branch
        if shortcut is not None:
            self._children["shortcut"] = shortcut
        self.alpha: np.ndarray
        self._add_param("alpha", np.array(float(alpha)))
        self.bias: np.ndarray | None = None
        if bias is not None:
            self._add_param("bias", np.array(float(bias)))

    def add_bias(self, value: float = 0.0) -> np.ndarray:
        """Give the block its scalar ``bias`` parameter (set to ``value`` if it exists); returns it."""
        if self.bias is None:
            self._add_param("bias", np.array(float(value)))
        else:
            self.bias[...] = value
        return cast(np.ndarray, self.bias)  # (set just above)

    @property
    def branch(self) -> Module:
        """The residual branch."""
        return self._children["branch"]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        f = self.branch.forward(x)
        self._f = f
        s = self._children["shortcut"].forward(x) if "shortcut" in self._children else x
        return s + self.alpha * f + self.bias if self.bias is not None else s + self.alpha * f

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        self._accumulate("alpha", np.array(np.sum(dy * self._f)))
        if self.bias is not None:
            self._accumulate("bias", np.array(np.sum(dy)))
        dx = self.branch.backward(self.alpha * dy)
        ds = self._children["shortcut"].backward(dy) if "shortcut" in self._children else dy
        return dx + ds

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}" + (f", bias={float(self.bias):g}" if self.bias is not None else "")
