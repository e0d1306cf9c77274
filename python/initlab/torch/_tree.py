"""The module tree as the torch layer walks it: a cycle check and an exact restore point.

:func:`check_acyclic` refuses a model that contains itself (a module registered as its own
descendant) with a clear ``ValueError`` before anything walks the tree with
``named_modules(remove_duplicate=False)``, ``to_empty`` or ``state_dict`` (each of which
recurses forever on such a tree). :class:`ModuleState` records which tensor objects every
module holds, so that :func:`initlab.torch.materialize` can put the model back exactly as it was
(the same ``Parameter`` objects, on the meta device) when anything fails after allocation.
:func:`gc_paused` keeps Python's cyclic collector out of one whole-model call;
:func:`own_parameters` lists a module's own parameters without torch's generic member walk.
"""

from __future__ import annotations

import functools
import gc
from typing import Any, Callable, TypeVar

import torch
from torch import nn

__all__ = ["check_acyclic", "ModuleState", "gc_paused", "own_parameters"]

F = TypeVar("F", bound=Callable[..., Any])


def gc_paused(fn: F) -> F:
    """Run ``fn`` with Python's cyclic garbage collector paused (its previous state restored).

    A whole-model call makes a few small objects per parameter; on a model with 10^4 parameters
    that triggers generation-2 collections, each a pass over every live object (all of the
    model's modules and tensors), which cost about as much as the planning itself. Reference
    counting still frees everything during the call; a cycle made meanwhile waits for the next
    collection after it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return wrapper  # type: ignore[return-value]


_NAMED_PARAMETERS = nn.Module.named_parameters


def own_parameters(mod: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``list(mod.named_parameters(recurse=False))``: the module's own parameters, each tensor once
    (under its first name), ``None`` registrations skipped. Read from ``mod._parameters`` when the
    module keeps torch's ``named_parameters`` (a few times faster than torch's generic walk, which
    a whole-model call makes once per module), else by the module's own method."""
    if type(mod).named_parameters is not _NAMED_PARAMETERS:
        return list(mod.named_parameters(recurse=False))
    out = []
    seen: set[int] = set()
    for k, v in mod._parameters.items():
        if v is None or id(v) in seen:
            continue
        seen.add(id(v))
        out.append((k, v))
    return out


def check_acyclic(model: nn.Module, *, what: str = "initlab.torch") -> None:
    """Raise ``ValueError`` if ``model`` is (or contains) a module registered as its own descendant.

    The message names the registration that closes the cycle and the module it points back to.
    A module shared by several parents (a DAG) is fine; only a path that returns to one of its
    own ancestors is refused. Iterative: any nesting depth."""
    if not isinstance(model, nn.Module):
        return
    done: set[int] = set()  # modules whose whole subtree is known to be acyclic
    on_path: dict[int, str] = {id(model): ""}
    stack: list[tuple[nn.Module, str, Any]] = [(model, "", iter(list(model._modules.items())))]
    while stack:
        mod, name, children = stack[-1]
        step = next(children, None)
        if step is None:
            stack.pop()
            on_path.pop(id(mod), None)
            done.add(id(mod))
            continue
        cname, child = step
        if child is None or id(child) in done:
            continue
        if id(child) in on_path:
            qname = f"{name}.{cname}" if name else cname
            target = on_path[id(child)] or "the root model"
            raise ValueError(
                f"{what}: the model contains itself: submodule {qname!r} ({type(child).__name__}) is "
                f"{target if target == 'the root model' else repr(target)}, one of its own ancestors, so the "
                "module tree is infinite (named_modules(remove_duplicate=False), to(), state_dict() never end). "
                "Keep such a back-reference outside the module registry, e.g. "
                f"object.__setattr__(module, {cname!r}, ...) or a weakref")
        if not child._modules:  # a leaf: nothing below it can point back
            done.add(id(child))
            continue
        qname = f"{name}.{cname}" if name else cname
        on_path[id(child)] = qname
        stack.append((child, qname, iter(list(child._modules.items()))))


class ModuleState:
    """Which parameter and buffer objects every module of ``model`` holds, and their data.

    :meth:`restore` puts every registration back (the same ``Parameter`` and buffer objects) and,
    where a conversion changed a ``Parameter``'s data in place (``param.data = ...``), its data
    too. It undoes ``to_empty``/``to`` and any re-tying, whatever was allocated since.
    """

    def __init__(self, model: nn.Module) -> None:
        self._mods: list[tuple[nn.Module, dict[str, Any], dict[str, Any]]] = []
        self._data: list[tuple[torch.Tensor, torch.Tensor]] = []
        seen: set[int] = set()
        for _, mod in model.named_modules(remove_duplicate=False):
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            self._mods.append((mod, dict(mod._parameters), dict(mod._buffers)))
            for p in mod._parameters.values():
                if p is not None:
                    self._data.append((p, p.data))

    def restore(self) -> None:
        for mod, params, bufs in self._mods:
            mod._parameters.clear()
            mod._parameters.update(params)
            mod._buffers.clear()
            mod._buffers.update(bufs)
        with torch.no_grad():
            for p, data in self._data:
                if p.data.data_ptr() != data.data_ptr() or p.device != data.device or p.shape != data.shape:
                    try:
                        p.data = data
                    except RuntimeError:  # pragma: no cover - a swap-tensors conversion of another type
                        pass
