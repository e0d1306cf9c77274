"""Read a Hugging Face model's own ``_init_weights`` without letting it write: :func:`record_hf_init`.

transformers' ``PreTrainedModel._init_weights(module)`` (the base class's and each
architecture's override) is the authority on that architecture's initialization. We call it on
every module, children before parents as ``post_init`` does, with the init functions it uses
(``transformers.initialization``, ``torch.nn.init`` and the ``Tensor`` in-place samplers)
replaced by recorders; the last full-tensor call on each parameter is its rule, and a call on a
view of a parameter (an embedding's padding row) becomes an exact edit after the fill. Nothing
is written, so this works on meta-device models too.
"""

from __future__ import annotations

import contextlib
import math
from types import ModuleType
from typing import Any, Iterator, cast

import torch
from torch import nn

from .roles import ParamInfo
from .rules import Fill, resolve_named

__all__ = ["record_hf_init"]

_INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
               "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "eye_", "dirac_",
               "sparse_", "copy_")
_TENSOR_METHODS = ("normal_", "uniform_", "zero_", "fill_")


def _is_pretrained(model: nn.Module) -> bool:
    return any(c.__name__ == "PreTrainedModel" for c in type(model).__mro__) and hasattr(model, "_init_weights")


def _call_to_fill(fname: str, args: tuple, kw: dict, info: ParamInfo) -> Fill | None:
    def arg(i: int, key: str, default: Any) -> Any:
        return kw[key] if key in kw else args[i] if len(args) > i else default

    if fname == "normal_":
        return Fill("normal", {"mean": float(arg(0, "mean", 0.0)), "std": float(arg(1, "std", 1.0))})
    if fname == "uniform_":
        a = arg(0, "a", arg(0, "from", 0.0))
        b = arg(1, "b", arg(1, "to", 1.0))
        return Fill("uniform", {"a": float(a), "b": float(b)})
    if fname == "trunc_normal_":
        return Fill("trunc_normal", {"mean": float(arg(0, "mean", 0.0)), "std": float(arg(1, "std", 1.0)),
                                     "a": float(arg(2, "a", -2.0)), "b": float(arg(3, "b", 2.0))})
    if fname in ("zeros_", "zero_"):
        return Fill("constant", {"value": 0.0})
    if fname == "ones_":
        return Fill("constant", {"value": 1.0})
    if fname in ("constant_", "fill_"):
        v = arg(0, "val", arg(0, "value", None))
        return Fill("constant", {"value": float(v)}) if isinstance(v, (int, float)) else None
    # torch's fan convention (the library called torch's function on the stored shape).
    torch_info = ParamInfo(info.name, info.module_name, info.pname, info.module, info.param, info.role,
                           *_torch_fans(tuple(info.param.shape)))
    if fname in ("xavier_uniform_", "xavier_normal_"):
        return resolve_named(fname[:-1], {"gain": float(arg(0, "gain", 1.0))}, torch_info)
    if fname in ("kaiming_uniform_", "kaiming_normal_"):
        return resolve_named(fname[:-1], {"a": arg(0, "a", 0), "mode": arg(1, "mode", "fan_in"),
                                          "nonlinearity": arg(2, "nonlinearity", "leaky_relu")}, torch_info)
    if fname == "orthogonal_":
        return Fill("orthogonal", {"gain": float(arg(0, "gain", 1.0))})
    return None  # eye_/dirac_/sparse_/copy_: not expressed as a rule; the structural rules decide


def _torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    rf = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


@contextlib.contextmanager
def _recording(calls: list[tuple[str, torch.Tensor, tuple, dict]]) -> Iterator[None]:
    """Replace the init functions and Tensor samplers by recorders (restored on exit)."""
    patched: list[tuple[Any, str, Any, bool]] = []

    def patch(owner: Any, name: str, fn: Any) -> None:
        if hasattr(owner, name):
            # A class attribute inherited from a base (Tensor.normal_ lives on TensorBase) is
            # restored by deleting the override, not by copying the base's into the class.
            own = not isinstance(owner, type) or name in owner.__dict__
            patched.append((owner, name, getattr(owner, name), own))
            setattr(owner, name, fn)

    def recorder(fname: str) -> Any:
        def rec(tensor: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
            calls.append((fname, tensor, args, kw))
            return tensor

        return rec

    hf_init: ModuleType | None
    try:
        import transformers.initialization as hf_init  # transformers >= 5
    except ImportError:  # pragma: no cover - older transformers call torch.nn.init directly
        hf_init = None
    try:
        for n in _INIT_NAMES:
            patch(torch.nn.init, n, recorder(n))
            if hf_init is not None:
                patch(hf_init, n, recorder(n))
        if hf_init is not None and isinstance(getattr(hf_init, "TORCH_INIT_FUNCTIONS", None), dict):
            table = hf_init.TORCH_INIT_FUNCTIONS
            saved = dict(table)
            table.update({k: recorder(k) for k in table})
        else:
            saved = None
        for n in _TENSOR_METHODS:
            patch(torch.Tensor, n, recorder(n))
        yield
    finally:
        for owner, name, fn, own in reversed(patched):
            if own:
                setattr(owner, name, fn)
            else:
                delattr(owner, name)
        if hf_init is not None and saved is not None:
            hf_init.TORCH_INIT_FUNCTIONS.update(saved)


def _no_writes() -> contextlib.AbstractContextManager[Any]:
    """A dispatch mode that turns every in-place/out= aten op into a no-op, so an
    ``_init_weights`` override that writes without the init functions (``w.data.mul_(...)``,
    ``copy_``) still leaves the model untouched during recording."""
    # built lazily: the dispatch-mode base class is a private torch API
    from torch.utils._python_dispatch import TorchDispatchMode

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            kwargs = kwargs or {}
            schema = getattr(func, "_schema", None)
            if schema is not None and schema.is_mutable:
                for a, v in zip(schema.arguments, args):
                    if a.alias_info is not None and a.alias_info.is_write:
                        return v
                for a in schema.arguments:
                    if a.alias_info is not None and a.alias_info.is_write and a.name in kwargs:
                        return kwargs[a.name]
            return func(*args, **kwargs)

    return Mode()


def _children_first(model: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    seen: set[int] = set()

    def visit(m: nn.Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        for c in m.children():
            visit(c)
        out.append(m)

    visit(model)
    return out


def record_hf_init(model: nn.Module, infos: list[ParamInfo]) -> dict[int, Fill]:
    """``{id(parameter): Fill}`` for every parameter the model's own ``_init_weights`` sets.

    Empty for models that are not Hugging Face ``PreTrainedModel``s. A parameter written
    several times keeps the last full-tensor call (GPT-2's ``c_proj`` rescaling after the
    generic ``Conv1D`` rule); writes to a row of a parameter (padding rows) become
    ``("zero_row", i)`` / constant edits after the fill.
    """
    if not _is_pretrained(model):
        return {}
    calls: list[tuple[str, torch.Tensor, tuple, dict]] = []
    with torch.no_grad(), _recording(calls), _no_writes():
        for m in _children_first(model):
            try:
                cast(Any, model)._init_weights(m)  # (Module.__getattr__ is typed Tensor | Module)
            except Exception:  # noqa: BLE001 - an override that cannot run dry: structural rules decide
                continue
    by_id = {id(i.param): i for i in infos}
    by_ptr = {}
    for i in infos:
        if i.param.device.type != "meta" and i.param.numel():
            by_ptr[(i.param.data_ptr(), tuple(i.param.shape), tuple(i.param.stride()))] = i
    fills: dict[int, Fill] = {}
    for fname, t, args, kw in calls:
        info = by_id.get(id(t))
        if info is None and t.device.type != "meta" and t.numel():
            info = by_ptr.get((t.data_ptr(), tuple(t.shape), tuple(t.stride())))
        if info is not None:
            f = _call_to_fill(fname, args, kw, info)
            if f is not None:
                fills[id(info.param)] = f
            else:
                fills.pop(id(info.param), None)
            continue
        base = getattr(t, "_base", None)
        owner = by_id.get(id(base)) if base is not None else None
        if owner is not None and id(owner.param) in fills and fname in ("zeros_", "zero_", "constant_", "fill_"):
            # a row of the parameter: t = p[idx] for a 2-D p
            p = owner.param
            if p.dim() == 2 and t.dim() == 1 and t.shape[0] == p.shape[1] and p.shape[1] > 0:
                row = (t.storage_offset() - p.storage_offset()) // p.stride(0)
                f = fills[id(p)]
                v = _call_to_fill(fname, args, kw, owner)
                if v is not None and v.init == "constant":
                    op = ("zero_row", int(row)) if v.params["value"] == 0.0 else ("constant_slice", int(row), int(row) + 1, v.params["value"])
                    fills[id(p)] = Fill(f.init, f.params, f.post + (op,), f.fn)
    return fills
