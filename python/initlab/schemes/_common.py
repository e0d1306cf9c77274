"""What every scheme shares: which framework, which blocks, and a plan that writes and records.

A scheme first validates, then changes the model's structure where it must (scalars added,
normalization removed), then writes parameters through :class:`Plan`, which resolves every
parameter's *final* qualified name, seeds it from that name (``initlab.generator.named_seeds``: one
stream per name, so adding a block never changes another parameter's numbers) and records an
:class:`initlab.manifest.Entry` for it.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..generator import SeedLike
from ..manifest import Entry, LeftAlone, Manifest

# Sub-module names that are the skip path of a residual block, not its branch.
SHORTCUT_NAMES = ("downsample", "shortcut", "skip", "proj_skip", "identity_proj")


def framework(model: Any) -> str:
    """``"nn"`` for an :mod:`initlab.nn` model, ``"torch"`` for a ``torch.nn.Module``."""
    from ..nn import Module

    if isinstance(model, Module):
        return "nn"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    raise TypeError(f"schemes take an initlab.nn model or a torch.nn.Module, got {type(model).__name__}")


def named_modules(model: Any) -> list[tuple[str, Any]]:
    return list(model.named_modules())


def check_blocks_arg(blocks: Any) -> list[Any] | None:
    """Validate ``blocks=``: None, a module type, a name glob, or a sequence of them."""
    if blocks is None:
        return None
    items = [blocks] if isinstance(blocks, (str, type)) else list(blocks) if isinstance(blocks, Iterable) else [blocks]
    bad = [repr(b) for b in items if not isinstance(b, (str, type))]
    if bad or not items:
        raise TypeError(f"blocks= takes module types or qualified-name globs (or a sequence of them); "
                        f"invalid: {', '.join(bad) or 'an empty sequence'}")
    return items


def select_blocks(model: Any, blocks: list[Any] | None, recognize: Callable[[str, Any], bool]) -> list[tuple[str, Any]]:
    """The residual blocks: recognized by ``recognize(name, module)``, or those ``blocks`` names.

    A block nested in another selected block is not selected again.
    """
    out: list[tuple[str, Any]] = []
    for name, mod in named_modules(model):
        if blocks is None:
            hit = recognize(name, mod)
        else:
            hit = any((isinstance(b, type) and isinstance(mod, b)) or (isinstance(b, str) and fnmatch.fnmatchcase(name, b))
                      for b in blocks)
        if hit and name and not any(name.startswith(p + ".") for p, _ in out):
            out.append((name, mod))
    if not out:
        how = (f"blocks={blocks!r} matched no module" if blocks is not None else
               "no residual block was recognized")
        raise ValueError(f"{how}; name the blocks with blocks= (module types or qualified-name globs such as 'layer*.*')")
    return out


def under(name: str, prefix: str) -> bool:
    """Whether ``name`` is ``prefix`` or inside it."""
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


def in_shortcut(rel: str) -> bool:
    """Whether a name relative to its block lies on the skip path."""
    return any(part in SHORTCUT_NAMES for part in rel.split("."))


def he_std(shape: tuple[int, ...], mode: str = "fan_out") -> tuple[float, int]:
    """He normal std ``sqrt(2 / fan)`` with torch's layout; returns ``(std, fan)``."""
    from ..fans import compute_fans

    fan_in, fan_out = compute_fans(tuple(shape))
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    return math.sqrt(2.0 / fan), int(fan)


def dtype_name(t: Any) -> str:
    d = str(t.dtype)
    return d.replace("torch.", "")


def set_submodule(root: Any, qualname: str, new: Any) -> None:
    """Replace the sub-module at ``qualname`` (torch or initlab.nn)."""
    parent_name, _, attr = qualname.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if hasattr(parent, "_children") and not hasattr(parent, "_modules"):  # initlab.nn
        parent._children[attr] = new
    else:
        setattr(parent, attr, new)


class Plan:
    """Parameters to write, with their rule; :meth:`execute` writes them in model order.

    Steps are ``("normal", std)``, ``("uniform", bound)``, ``("const", value)``, ``("mul", factor)``,
    ``("rows_uniform", [(start, stop, bound), ...])`` (blocks of rows, e.g. a packed q/k/v
    projection), ``("cols_uniform", [...])`` (blocks of columns, HF ``Conv1D``), or
    ``("fn", callable(tensor, seed))``.
    """

    def __init__(self, model: Any, scheme: str, seed: SeedLike) -> None:
        self.model, self.scheme, self.seed = model, scheme, seed
        self._items: dict[int, tuple[Any, str, str, str, str, list, dict]] = {}
        self.left: list[LeftAlone] = []

    def add(self, param: Any, module: Any, role: str, rule: str, init: str, steps: list, params: dict) -> None:
        module_name = module if isinstance(module, str) else type(module).__name__
        # a later call for the same tensor replaces the earlier (the scheme's last word wins)
        self._items[id(param)] = (param, module_name, role, rule, init, steps, params)

    def leave(self, name: str, reason: str, kind: str = "parameter") -> None:
        self.left.append(LeftAlone(name, kind, reason))

    def __contains__(self, param: Any) -> bool:
        return id(param) in self._items

    def execute(self, *, extra: Iterable[Entry] = ()) -> Manifest:
        from .. import init
        from ..generator import name_stream, named_seeds

        seed_at = named_seeds(self.seed)
        names: dict[int, list[str]] = {}
        order: list[int] = []
        try:  # torch: list tied names too
            named = list(self.model.named_parameters(remove_duplicate=False))
        except TypeError:
            named = list(self.model.named_parameters())
        for name, p in named:
            if id(p) not in names:
                order.append(id(p))
            names.setdefault(id(p), []).append(name)
        entries: list[Entry] = []
        ctx = _no_grad(self.model)
        with ctx:
            for pid in order:
                if pid not in self._items:
                    continue
                p, mname, role, rule, iname, steps, params = self._items[pid]
                name = names[pid][0]
                stream = None
                for step in steps:
                    kind, arg = step
                    if kind in ("normal", "uniform", "rows_uniform", "cols_uniform", "fn"):
                        g = seed_at(name)
                        stream = name_stream(name) if isinstance(self.seed, (int, np.integer)) else None
                    if kind == "normal":
                        init.normal_(p, 0.0, float(arg), seed=g)
                    elif kind == "uniform":
                        init.uniform_(p, -float(arg), float(arg), seed=g)
                    elif kind in ("rows_uniform", "cols_uniform"):
                        for k, (a, b, bound) in enumerate(arg):
                            view = p[a:b] if kind == "rows_uniform" else p[:, a:b]
                            tmp = np.empty(tuple(view.shape), dtype=np.float64)
                            init.uniform_(tmp, -float(bound), float(bound), seed=seed_at(f"{name}[{k}]"))
                            _assign(view, tmp)
                    elif kind == "const":
                        if isinstance(p, np.ndarray):
                            p[...] = float(arg)
                        else:
                            p.fill_(float(arg))
                    elif kind == "mul":
                        _mul(p, float(arg))
                    elif kind == "fn":
                        arg(p, g)
                    else:  # pragma: no cover - programming error
                        raise AssertionError(kind)
                entries.append(Entry(name=name, shape=tuple(int(s) for s in p.shape), dtype=dtype_name(p), module=mname,
                                     role=role, rule=f"{self.scheme}: {rule}", init=iname, params=dict(params),
                                     stream=stream, tied=tuple(names[pid][1:])))
        entries.extend(extra)
        return Manifest(entries, self.left, recipe=self.scheme, seed=self.seed)


def _assign(view: Any, values: np.ndarray) -> None:
    if isinstance(view, np.ndarray):
        view[...] = values
    else:
        import torch

        view.copy_(torch.from_numpy(values).to(view.dtype))


def _mul(p: Any, f: float) -> None:
    if isinstance(p, np.ndarray):
        p *= f
    else:
        p.mul_(f)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def _no_grad(model: Any) -> Any:
    if framework(model) == "torch":
        import torch

        return torch.no_grad()
    return _Null()
