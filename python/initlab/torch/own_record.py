"""Read a library's own initialization code without letting it write, and fold what it does into fills.

The authority on how a model is initialized is its library's code (Hugging Face's
``_init_weights``, timm's ``init_weights``, a model's special init of its state-space or
position tables). :class:`Recorder` runs such code with every init function replaced by a
recorder and every in-place write intercepted (nothing is written, so it works on meta-device
models). :func:`fold` then turns each parameter's sequence of events into one result:

* a sampler call (``torch.nn.init``, ``transformers.initialization``, ``Tensor.normal_`` /
  ``uniform_`` / ``zero_`` / ``fill_``) sets the parameter's :class:`~initlab.torch.rules.Fill`;
* scalar arithmetic after it folds into it exactly (``p /= sqrt(n)`` divides a normal's mean and
  std, ``mul_`` / ``add_`` after a truncated normal scale and shift it and its bounds);
* the inverse-CDF truncated normal (``uniform_(2l-1, 2u-1)``, ``erfinv_``, ``mul_(std*sqrt(2))``,
  ``add_(mean)``, ``clamp_(a, b)``: timm's ``trunc_normal_``) is recognized as the truncated
  normal it samples;
* anything else (``copy_`` of a computed table, an op the fold does not know, a partial write it
  cannot express) makes the value **computed**: :func:`compute_on_scratch` computes it by running
  the same code on scratch CPU copies of the module's parameters, its random draws (``torch.rand``
  and the samplers) served by initlab on the parameter's own stream, so a computed value is as
  reproducible as a sampled one. When that cannot run, the parameter is kept as constructed and
  the manifest says why: never a silent substitute.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .roles import ParamInfo
from .rules import Fill, resolve_named

__all__ = ["Computed", "Recorder", "fold", "compute_on_scratch"]

_INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
               "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "eye_", "dirac_",
               "sparse_", "copy_")
_TENSOR_METHODS = ("normal_", "uniform_", "zero_", "fill_")
# aten ops whose output is the whole input under another name (``p.data``, ``p.detach()``, ``p.view_as(p)``)
_ALIAS_OPS = ("detach", "alias", "view", "_unsafe_view", "expand", "as_strided", "reshape")


@dataclass(frozen=True)
class Computed:
    """The value is computed by the library's code (not one sampler call): ``why`` names the op."""

    why: str


@dataclass(frozen=True)
class _ErfinvUniform:
    """An intermediate of the inverse-CDF truncated normal: ``erfinv(U(lo, hi)) * scale + shift``."""

    lo: float
    hi: float
    scale: float = 1.0
    shift: float = 0.0


State = Any  # Fill | Computed | _ErfinvUniform | None


def call_to_fill(fname: str, args: tuple, kw: dict, info: ParamInfo) -> Fill | None:
    """The :class:`Fill` of an init-function call ``fname(tensor, *args, **kw)`` on ``info``'s
    parameter, or None when it is not one of initlab's fills (``eye_``, ``dirac_``, ``copy_``, ...)."""

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
        if isinstance(v, torch.Tensor) and v.numel() == 1 and v.device.type != "meta":
            v = v.item()
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
    return None


def _torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    rf = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


# ---- the fold: a parameter's events -> one result -------------------------------------------------


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, torch.Tensor) and x.numel() == 1 and x.device.type != "meta" and not x.is_complex():
        return float(x.item())
    return None


def _affine(f: Fill, scale: float, shift: float) -> Fill:
    """``f``'s values times ``scale`` plus ``shift``, as a Fill (exact in distribution)."""
    p = dict(f.params)
    if f.init == "constant":
        return Fill("constant", {"value": p["value"] * scale + shift}, f.post, f.fn)
    if f.init == "normal":
        return Fill("normal", {"mean": p["mean"] * scale + shift, "std": p["std"] * abs(scale)}, f.post, f.fn)
    if f.init == "uniform":
        a, b = p["a"] * scale + shift, p["b"] * scale + shift
        return Fill("uniform", {"a": min(a, b), "b": max(a, b)}, f.post, f.fn)
    if f.init == "trunc_normal" and scale > 0:
        return Fill("trunc_normal", {"mean": p["mean"] * scale + shift, "std": p["std"] * scale,
                                     "a": p["a"] * scale + shift, "b": p["b"] * scale + shift}, f.post, f.fn)
    raise _NotFoldable(f"{f.init} followed by an affine map")


class _NotFoldable(Exception):
    pass


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))


def fold(state: State, kind: str, name: str, args: tuple, kw: dict, info: ParamInfo) -> State:
    """The parameter's state after one more event.

    ``kind`` is ``"call"`` (an init function or Tensor sampler method, ``name`` its name) or
    ``"write"`` (an in-place aten op, ``name`` its overload packet's name, e.g. ``"mul_"``).
    """
    if kind == "call":
        f = call_to_fill(name, args, kw, info)
        return f if f is not None else Computed(name)
    try:
        return _fold_write(state, name, args, kw)
    except _NotFoldable:
        return Computed(name)


def _fold_write(state: State, op: str, args: tuple, kw: dict) -> State:
    if isinstance(state, Computed):
        return state
    if op in ("mul_", "div_", "add_", "sub_"):
        v = _number(args[0]) if args else None
        alpha = _number(kw.get("alpha", 1.0))
        if v is None or alpha is None or (op == "div_" and v == 0.0):
            raise _NotFoldable(op)
        if op == "mul_":
            scale, shift = v, 0.0
        elif op == "div_":
            scale, shift = 1.0 / v, 0.0
        else:
            scale, shift = 1.0, (v if op == "add_" else -v) * alpha
        if isinstance(state, Fill):
            return _affine(state, scale, shift)
        if isinstance(state, _ErfinvUniform):
            return _ErfinvUniform(state.lo, state.hi, state.scale * scale, state.shift * scale + shift)
        raise _NotFoldable(op)
    if op == "erfinv_" and isinstance(state, Fill) and state.init == "uniform" and not state.post:
        return _ErfinvUniform(state.params["a"], state.params["b"])
    if op == "clamp_":
        lo = _number(args[0]) if len(args) > 0 and args[0] is not None else _number(kw.get("min"))
        hi = _number(args[1]) if len(args) > 1 and args[1] is not None else _number(kw.get("max"))
        if isinstance(state, _ErfinvUniform) and lo is not None and hi is not None and state.scale > 0:
            # x = erfinv(u) * c + m with u ~ U(2*Phi(alpha)-1, 2*Phi(beta)-1) is the normal
            # N(m, c / sqrt 2) restricted to [m + sigma*alpha, m + sigma*beta]; the clamp to [lo, hi]
            # only removes rounding excursions when those are the bounds.
            sigma, m = state.scale / math.sqrt(2.0), state.shift
            if _close(state.lo, 2 * _phi((lo - m) / sigma) - 1) and _close(state.hi, 2 * _phi((hi - m) / sigma) - 1):
                return Fill("trunc_normal", {"mean": m, "std": sigma, "a": lo, "b": hi})
        if isinstance(state, Fill) and state.init == "trunc_normal":
            a, b = state.params["a"], state.params["b"]
            if (lo is None or lo <= a) and (hi is None or hi >= b):
                return state  # a no-op on values already inside the bounds
        raise _NotFoldable(op)
    raise _NotFoldable(op)


def finish(state: State) -> Fill | Computed | None:
    """The result of a finished sequence: a Fill, a :class:`Computed`, or None (never written)."""
    if isinstance(state, _ErfinvUniform):
        return Computed("erfinv_ of a uniform without its truncated-normal affine map and clamp")
    return state


# ---- the recorder -----------------------------------------------------------------------------


class Recorder:
    """Run a library's init code without writes, recording each parameter's events.

    Inside ``with Recorder(params) as rec:`` the init functions and Tensor samplers are
    recorders and every in-place aten op is a no-op; ``rec.events`` lists
    ``(kind, name, tensor, args, kwargs, context)`` in order (``context`` is whatever
    :attr:`context` held at the time, e.g. the module whose init ran), and :meth:`resolve` maps a
    written tensor to ``(parameter, whole)``: the parameter it is (or is an alias of), with
    ``whole`` False for a view of part of it.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self._by_id = {id(p): p for p in params}
        self._by_ptr: dict[tuple, torch.Tensor] = {}
        for p in params:
            if p.device.type != "meta" and p.numel():
                self._by_ptr[(p.device, p.data_ptr(), tuple(p.shape), tuple(p.stride()))] = p
        self._alias: dict[int, torch.Tensor] = {}  # id(alias) -> parameter
        self._keep: list[torch.Tensor] = []  # aliases kept alive so their ids stay unique
        self.events: list[tuple[str, str, torch.Tensor, tuple, dict, Any]] = []
        self.context: Any = None
        self._stack = contextlib.ExitStack()

    def resolve(self, t: Any) -> tuple[torch.Tensor | None, bool]:
        if not isinstance(t, torch.Tensor):
            return None, False
        p = self._by_id.get(id(t))
        if p is None:
            p = self._alias.get(id(t))
        if p is None and t.device.type != "meta" and t.numel():
            p = self._by_ptr.get((t.device, t.data_ptr(), tuple(t.shape), tuple(t.stride())))
        if p is not None:
            return p, True
        base = getattr(t, "_base", None)
        if base is not None:
            q, _ = self.resolve(base)
            if q is not None:
                return q, False
        return None, False

    def __enter__(self) -> Recorder:
        try:
            self._stack.enter_context(_patched(self))
            self._stack.enter_context(_NoWrites(self))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _note_alias(self, src: Any, out: Any) -> None:
        if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor):
            p, whole = self.resolve(src)
            if p is not None and whole and tuple(out.shape) == tuple(p.shape):
                self._alias[id(out)] = p
                self._keep.append(out)


@contextlib.contextmanager
def patched_init_functions(wrap_call: Callable[[str, Any, bool], Callable[..., Any]],
                           wrap_factory: Callable[[str, Any], Callable[..., Any]] | None = None,
                           factories: tuple[str, ...] = (),
                           extra: tuple[tuple[Any, str, Callable[[Any], Any]], ...] = ()) -> Iterator[None]:
    """Replace, on this thread, the functions a library's init code writes parameters with.

    Every ``torch.nn.init`` function of :data:`_INIT_NAMES`, every one of
    ``transformers.initialization`` (``hf=True``) and the torch functions in its table, and the
    ``Tensor`` samplers become ``wrap_call(name, original, hf)``; the torch random ``factories``
    become ``wrap_factory(name, original)``; ``extra`` holds more ``(owner, name, build(original))``.
    Other threads keep the originals (each replacement checks the thread). Everything is put back
    on exit, also after an exception or Ctrl-C.
    """
    me = threading.get_ident()
    patched: list[tuple[Any, str, Any, bool]] = []

    def patch(owner: Any, name: str, build: Callable[[Any], Any]) -> None:
        if isinstance(owner, dict):  # transformers' table of the torch functions
            if name not in owner:
                return
            orig, raw, own = owner[name], owner[name], True
        elif hasattr(owner, name):
            # A class attribute inherited from a base (Tensor.normal_ lives on TensorBase) is
            # restored by deleting the override; an own one is put back as it was stored (the
            # staticmethod of a __new__, not the function getattr returns).
            own = not isinstance(owner, type) or name in owner.__dict__
            orig = getattr(owner, name)
            raw = owner.__dict__[name] if isinstance(owner, type) and own else orig
        else:
            return
        fn = build(orig)

        def on_this_thread(*args: Any, **kw: Any) -> Any:
            return fn(*args, **kw) if threading.get_ident() == me else orig(*args, **kw)

        patched.append((owner, name, raw, own))
        if isinstance(owner, dict):
            owner[name] = on_this_thread
        else:
            setattr(owner, name, on_this_thread)

    hf_init: Any
    try:
        import transformers.initialization as hf_init  # transformers >= 5
    except ImportError:  # pragma: no cover - older transformers call torch.nn.init directly
        hf_init = None
    table = getattr(hf_init, "TORCH_INIT_FUNCTIONS", None) if hf_init is not None else None
    saved = dict(table) if isinstance(table, dict) else None
    try:
        def call(name: str, hf: bool) -> Callable[[Any], Any]:
            return functools.partial(_bound_call, wrap_call, name, hf)

        for n in _INIT_NAMES:
            patch(torch.nn.init, n, call(n, False))
            if hf_init is not None:
                patch(hf_init, n, call(n, True))
        if table is not None and saved is not None:
            for k in saved:
                patch(table, k, call(k, False))
        for n in _TENSOR_METHODS:
            patch(torch.Tensor, n, call(n, False))
        if wrap_factory is not None:
            for n in factories:
                patch(torch, n, functools.partial(_bound_factory, wrap_factory, n))
        for owner, name, build in extra:
            patch(owner, name, build)
        yield
    finally:
        for owner, name, raw, own in reversed(patched):
            if isinstance(owner, dict):
                owner[name] = raw
            elif own:
                setattr(owner, name, raw)
            else:
                delattr(owner, name)


def _bound_call(wrap_call: Callable[[str, Any, bool], Callable[..., Any]], name: str, hf: bool,
                orig: Any) -> Callable[..., Any]:
    return wrap_call(name, orig, hf)


def _bound_factory(wrap_factory: Callable[[str, Any], Callable[..., Any]], name: str, orig: Any) -> Callable[..., Any]:
    return wrap_factory(name, orig)


def _patched(rec: Recorder) -> contextlib.AbstractContextManager[None]:
    """The init functions and Tensor samplers as recorders: nothing is written."""

    def recorder(fname: str, orig: Any, hf: bool) -> Callable[..., Any]:
        def rec_call(tensor: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
            rec.events.append(("call", fname, tensor, args, kw, rec.context))
            return tensor

        return rec_call

    return patched_init_functions(recorder)


def _NoWrites(rec: Recorder) -> contextlib.AbstractContextManager[Any]:
    """A dispatch mode that records every in-place/out= aten op on a parameter and turns every
    one of them into a no-op, so code that writes without the init functions (``w.data.mul_``,
    ``copy_``) still leaves the model untouched; aliases of parameters are followed."""
    from torch.utils._python_dispatch import TorchDispatchMode  # a private torch API: built lazily

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            kwargs = kwargs or {}
            schema = getattr(func, "_schema", None)
            if schema is not None and schema.is_mutable:
                for i, (a, v) in enumerate(zip(schema.arguments, args)):
                    if a.alias_info is not None and a.alias_info.is_write:
                        p, whole = rec.resolve(v)
                        if p is not None:
                            op = func.overloadpacket.__name__ if whole else "partial " + func.overloadpacket.__name__
                            rec.events.append(("write", op, v, tuple(args[i + 1:]), dict(kwargs), rec.context))
                        return v
                for a in schema.arguments:
                    if a.alias_info is not None and a.alias_info.is_write and a.name in kwargs:
                        return kwargs[a.name]
            out = func(*args, **kwargs)
            if args and func.overloadpacket.__name__ in _ALIAS_OPS:
                rec._note_alias(args[0], out)
            return out

    return Mode()


# ---- computing a value by running the library's code on scratch copies ----------------------------


def compute_on_scratch(run: Callable[[nn.Module], Any], module: nn.Module, target: str, seed: Any,
                       dtype: torch.dtype) -> torch.Tensor:
    """The value the library's code ``run(copy)`` gives parameter ``target`` of a copy of ``module``.

    The copy's parameters are fresh CPU tensors (the module's own are neither read nor written;
    meta-device modules work) and its buffers CPU copies; the code runs under
    :class:`~initlab.torch.fast_init` seeded with ``seed``, so its random draws (``torch.rand``,
    the samplers) are initlab's and reproducible. Returns a CPU tensor of the parameter's shape.
    """
    from .fast_init import fast_init

    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="cpu"), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.zeros(b.shape, dtype=b.dtype) if b.device.type == "meta" else b.detach().to("cpu", copy=True)
    twin = copy.deepcopy(module, memo)
    value: torch.Tensor | None = twin.get_parameter(target) if target else None
    # The other parameters' random fills are not needed (only `target` is read): skipped, so a
    # scratch run costs what computing the target costs.
    others = {id(q) for q in twin.parameters() if q is not value}
    block = fast_init(seed=seed, defer=False)
    with torch.no_grad(), torch.device("cpu"), block:
        block._frames[-1].skip = lambda t: id(t) in others or id(getattr(t, "_base", None)) in others
        run(twin)
    if value is None:  # pragma: no cover - target comes from module.named_parameters()
        raise ValueError(f"{target!r} is not a parameter of the module")
    if value.dtype != dtype:  # pragma: no cover - the twin keeps the dtypes
        value = value.to(dtype)
    return value.detach()
