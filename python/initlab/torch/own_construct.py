"""Record what a model's constructor does to its parameters: :func:`record_construction`.

The ``"own"`` recipe's general case: any ``nn.Module`` whose library initializes it in its
constructor (torchvision's init loops, timm's ``init_weights`` / ``named_apply`` called from
``__init__``, Hugging Face's ``post_init``, a research model's special tables). The user's
``factory`` builds a **twin** on the CPU while every init function, Tensor sampler, random factory
and in-place write is watched (:func:`~initlab.torch.own_record.fold` turns each tensor's events
into one result):

* random fills are recorded and **not executed**, so the twin's sampled weights are untouched
  ``torch.empty`` pages (no memory, no time); initlab replays them on the target model's
  per-name streams;
* deterministic writes run (``zeros_``, ``copy_`` of a computed table, ``arange().log()``, ...),
  so a value the constructor computes is real in the twin and copied exactly;
* a value computed *from* a random draw (``torch.randn(...).exp()``, ``copy_`` of a transformed
  sample) cannot be replayed per name: the parameter is kept, and the manifest says so.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .own_record import _ALIAS_OPS, Computed, _number, finish, fold, patched_init_functions
from .roles import ParamInfo
from .rules import Fill

__all__ = ["Constructed", "record_construction"]

_DETERMINISTIC_CALLS = ("zeros_", "ones_", "constant_", "zero_", "fill_", "eye_", "dirac_", "copy_")
_RANDOM_FACTORIES = {"rand": ("uniform_", ()), "randn": ("normal_", ()), "rand_like": ("uniform_", ()),
                     "randn_like": ("normal_", ())}
_UNSERVED_RANDOM = ("randint", "randint_like", "randperm", "bernoulli", "multinomial", "poisson")
_AFFINE_OPS = ("mul", "div", "add", "sub")
_CONST_FACTORIES = {"zeros": 0.0, "ones": 1.0, "zeros_like": 0.0, "ones_like": 1.0}
_EMPTY_FACTORIES = ("empty", "empty_like", "new_empty", "empty_strided")


@dataclass(frozen=True)
class Constructed:
    """What a constructor left in one parameter.

    ``state`` is a :class:`~initlab.torch.rules.Fill` (replayable), a
    :class:`~initlab.torch.own_record.Computed`, or None (never written: ``torch.empty``);
    ``tainted`` says a computed value depends on a random draw; ``value`` is the twin's tensor
    for a deterministic computed value (exact), else None.
    """

    state: Any
    tainted: bool = False
    value: torch.Tensor | None = None


class _Track:
    """Per-tensor state of the watched construction, by identity (weak: nothing is kept alive)."""

    def __init__(self) -> None:
        self._roots: dict[int, tuple[weakref.ref, list]] = {}  # id(t) -> (ref, [state, tainted])
        self.busy = 0  # > 0 while a recorded call's own implementation runs (its aten ops are not events)

    def get(self, t: Any) -> list | None:
        if not isinstance(t, torch.Tensor):
            return None
        hit = self._roots.get(id(t))
        if hit is not None and hit[0]() is t:
            return hit[1]
        return None

    def put(self, t: torch.Tensor, cell: list) -> None:
        try:
            self._roots[id(t)] = (weakref.ref(t), cell)
        except TypeError:  # pragma: no cover - tensors support weak references
            pass

    def cell_for(self, t: torch.Tensor) -> list:
        """The tensor's cell, following views to their base; a new untracked root otherwise."""
        cell = self.get(t)
        if cell is None:
            base = getattr(t, "_base", None)
            if base is not None and self.get(base) is not None:
                return self.get(base)  # type: ignore[return-value]
            cell = [_UNTRACKED, False]
            self.put(t, cell)
        return cell


_UNTRACKED = Computed("computed from non-random values")


def _random(state: Any) -> bool:
    from .own_record import _ErfinvUniform

    return (isinstance(state, Fill) and state.random) or isinstance(state, _ErfinvUniform)


def record_construction(factory: Callable[[], nn.Module]) -> tuple[nn.Module, dict[str, Constructed]]:
    """Build ``factory()`` on the CPU while watching its parameters: ``(twin, {name: Constructed})``.

    Random fills are recorded, not executed (the twin's sampled weights stay untouched memory);
    deterministic writes run, so computed values are exact in the twin.
    """
    track = _Track()
    anon = nn.Module()  # the owner the fold's fan helpers see (fans come from the tensor's shape)

    def info_for(t: torch.Tensor) -> ParamInfo:
        return ParamInfo("", "", "", anon, t, None, 0, 0)

    def run(orig: Callable[..., Any], tensor: Any, args: tuple, kw: dict) -> Any:
        track.busy += 1
        try:
            return orig(tensor, *args, **kw)
        finally:
            track.busy -= 1

    def on_call(fname: str, orig: Callable[..., Any], tensor: Any, args: tuple, kw: dict, hf: bool = False) -> Any:
        if not isinstance(tensor, torch.Tensor) or track.busy:
            return orig(tensor, *args, **kw)
        if hf and getattr(tensor, "_is_hf_initialized", False):
            return tensor  # transformers' init functions skip a tensor it marked initialized
        cell = track.cell_for(tensor)
        whole = getattr(tensor, "_base", None) is None or track.get(tensor) is not None
        if not whole:  # a view of a tracked tensor: part of it written
            cell[0], cell[1] = Computed(f"partial {fname}"), cell[1] or _random(cell[0])
            return run(orig, tensor, args, kw)
        cell[0] = fold(cell[0], "call", fname, args, kw, info_for(tensor))
        cell[1] = False
        if fname == "copy_" and args:
            src = track.get(args[0])
            if src is not None and (src[1] or _random(src[0])):
                cell[1] = True
            elif src is not None and isinstance(src[0], Fill) and not src[0].random:
                cell[0] = src[0]  # a copy of a constant
        if fname in _DETERMINISTIC_CALLS:
            return run(orig, tensor, args, kw)
        return tensor  # a random fill: recorded, replayed later by initlab

    def on_factory(name: str, orig: Callable[..., Any], args: tuple, kw: dict) -> Any:
        out = orig(*args, **kw)
        if isinstance(out, torch.Tensor):
            if name in _RANDOM_FACTORIES:
                sampler = _RANDOM_FACTORIES[name][0]
                track.put(out, [fold(None, "call", sampler, (), {}, info_for(out)), False])
            elif name == "normal" and len(args) >= 2 and _number(args[0]) is not None and _number(args[1]) is not None \
                    and not isinstance(args[0], torch.Tensor):
                track.put(out, [fold(None, "call", "normal_", (args[0], args[1]), {}, info_for(out)), False])
            elif name in _UNSERVED_RANDOM or name == "normal":
                track.put(out, [Computed(f"torch.{name}"), True])
        return out

    rec_mode = _ConstructionMode(track)
    with torch.no_grad(), _patched_construction(on_call, on_factory, track), rec_mode:
        twin = factory()
    if not isinstance(twin, nn.Module):
        raise TypeError(f"factory must return an nn.Module, got {type(twin).__name__}")
    out: dict[str, Constructed] = {}
    for name, p in twin.named_parameters(remove_duplicate=False):
        cell = track.get(p)
        if cell is None:
            cell = track.get(getattr(p, "_base", None)) if getattr(p, "_base", None) is not None else None
        if cell is None:
            out[name] = Constructed(_UNTRACKED, False, p.detach())
            continue
        state, tainted = finish(cell[0]), bool(cell[1])
        if isinstance(state, Computed) and not tainted:
            out[name] = Constructed(state, False, p.detach())
        else:
            out[name] = Constructed(state, tainted and isinstance(state, Computed), None)
    return twin, out


def _patched_construction(on_call: Callable[..., Any], on_factory: Callable[..., Any],
                          track: _Track) -> contextlib.AbstractContextManager[None]:
    """The init functions, Tensor samplers and random factories watched, and ``nn.Parameter``
    wrapping a tracked tensor made to share its state (:func:`~.own_record.patched_init_functions`)."""

    def call(fname: str, orig: Callable[..., Any], hf: bool) -> Callable[..., Any]:
        return lambda tensor, *args, **kw: on_call(fname, orig, tensor, args, kw, hf)

    def factory(name: str, orig: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kw: on_factory(name, orig, args, kw)

    def param_new(orig_new: Callable[..., Any]) -> Callable[..., Any]:
        def new(cls: Any, data: Any = None, requires_grad: bool = True) -> Any:
            p = orig_new(cls, data, requires_grad)
            cell = track.get(data) if data is not None else None
            if cell is not None:
                track.put(p, cell)
            return p

        return new

    return patched_init_functions(call, factory, tuple(_RANDOM_FACTORIES) + _UNSERVED_RANDOM + ("normal",),
                                  ((nn.Parameter, "__new__", param_new),))


def _write(track: _Track, name: str, v: torch.Tensor, rest: tuple, kwargs: dict) -> None:
    """Fold an in-place aten write ``name(v, *rest)`` into ``v``'s state."""
    cell = track.cell_for(v)
    srcs = [track.get(x) for x in rest if isinstance(x, torch.Tensor)]
    from_random = any(c is not None and (c[1] or _random(c[0])) for c in srcs)
    was_random = bool(cell[1]) or _random(cell[0])
    if track.get(v) is None:  # a view of a tracked tensor: part of it written
        cell[0], cell[1] = Computed(f"partial {name}"), was_random or from_random
    elif name == "copy_":
        src = srcs[0] if srcs else None
        if src is not None and isinstance(src[0], Fill):
            cell[0], cell[1] = src[0], False  # a copy of a replayable fill
        else:
            cell[0], cell[1] = Computed("copy_"), from_random
    else:
        new = fold(cell[0], "write", name, rest, kwargs, ParamInfo("", "", "", nn.Module(), v, None, 0, 0))
        cell[0], cell[1] = new, (was_random or from_random) and not isinstance(new, Fill)


def _ConstructionMode(track: _Track) -> Any:
    """Follow values through aten ops: in-place writes fold into their tensor's state, aliases
    share it, scalar affine maps of a fill fold into a new fill, constant factories are fills,
    and anything computed from a random value is marked tainted."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            kwargs = kwargs or {}
            name = func.overloadpacket.__name__
            schema = getattr(func, "_schema", None)
            if track.busy:
                return func(*args, **kwargs)
            if schema is not None and schema.is_mutable:
                for i, (a, v) in enumerate(zip(schema.arguments, args)):
                    if a.alias_info is not None and a.alias_info.is_write and isinstance(v, torch.Tensor):
                        _write(track, name, v, tuple(args[i + 1:]), dict(kwargs))
                        if _random(track.cell_for(v)[0]):
                            return v  # still a random fill: nothing to compute
                        break
                return func(*args, **kwargs)
            out = func(*args, **kwargs)
            if not isinstance(out, torch.Tensor):
                return out
            if name in _CONST_FACTORIES:
                track.put(out, [Fill("constant", {"value": _CONST_FACTORIES[name]}), False])
                return out
            if name in ("full", "full_like") and len(args) >= 2 and _number(args[1]) is not None:
                track.put(out, [Fill("constant", {"value": _number(args[1])}), False])
                return out
            if name in _EMPTY_FACTORIES:
                track.put(out, [None, False])
                return out
            cells = [track.get(x) for x in args if isinstance(x, torch.Tensor)]
            cells = [c for c in cells if c is not None]
            if not cells:
                return out
            first = track.get(args[0]) if args else None
            if name in _ALIAS_OPS and first is not None and tuple(out.shape) == tuple(args[0].shape):
                track.put(out, first)
                return out
            if name in ("clone", "_to_copy", "contiguous") and first is not None:
                track.put(out, [first[0], first[1]])
                return out
            if name in _AFFINE_OPS and first is not None and len(args) >= 2 and _number(args[1]) is not None \
                    and not isinstance(args[1], torch.Tensor) and isinstance(first[0], Fill):
                st = fold(first[0], "write", name + "_", (args[1],), dict(kwargs),
                          ParamInfo("", "", "", nn.Module(), out, None, 0, 0))
                track.put(out, [st, first[1] or (_random(first[0]) and not isinstance(st, Fill))])
                return out
            if name == "mul" and len(args) >= 2 and _number(args[0]) is not None and track.get(args[1]) is not None \
                    and isinstance(track.get(args[1])[0], Fill):  # type: ignore[index]
                c = track.get(args[1])
                st = fold(c[0], "write", "mul_", (args[0],), {}, ParamInfo("", "", "", nn.Module(), out, None, 0, 0))
                track.put(out, [st, c[1]])
                return out
            tainted = any(c[1] or _random(c[0]) for c in cells)
            if tainted:
                track.put(out, [Computed(f"{name} of a random value"), True])
            return out

    return Mode()
