"""Construct any library's model on initlab's fills: :func:`fast_init`.

Model constructors (torch's ``reset_parameters``, Hugging Face's ``_init_weights``, timm's
``init_weights``) spend their time in ``torch.nn.init`` and a few ``Tensor`` methods, most of
it filling large weights on one or two threads. Inside a ``fast_init`` block those calls run on
initlab's multi-threaded Philox fills with exactly the arguments the library passed, so the
model gets the library's own distributions, faster, and reproducibly for a seed.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import sys
import threading
import types
import warnings
from collections import Counter
from typing import Any, Callable

import torch

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..generator import SeedLike
from ..generator import Generator, resolve_seed

__all__ = ["fast_init"]

# The torch.nn.init functions that are redirected (captured at import, before any patching).
_INIT_NAMES = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)
_TORCH_INIT = {n: getattr(torch.nn.init, n) for n in _INIT_NAMES}
_SIGNATURES = {n: inspect.signature(f) for n, f in _TORCH_INIT.items()}
_TENSOR_METHODS = ("normal_", "uniform_", "zero_", "fill_")
# torch's float random factories, served on initlab: name -> (base operation, builds like).
_FACTORIES = {"rand": "uniform", "randn": "normal", "rand_like": "uniform", "randn_like": "normal",
              "normal": "normal"}
# torch's random functions and Tensor methods initlab cannot reproduce: a RuntimeWarning (once
# per name and block), then torch's own call.
_UNSERVED_FUNCS = ("randint", "randint_like", "randperm", "bernoulli", "multinomial", "poisson", "binomial",
                   "normal")  # torch.normal: only its tensor-argument forms
_UNSERVED_METHODS = ("random_", "exponential_", "geometric_", "cauchy_", "log_normal_", "bernoulli_",
                     "bernoulli", "multinomial")
_TORCH_FUNCS = {n: getattr(torch, n) for n in set(_FACTORIES) | set(_UNSERVED_FUNCS) if hasattr(torch, n)}

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_EXACT_CONST_DTYPES = (torch.float32, torch.float64)  # a constant is rounded to these as torch does
_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
# Constant fills smaller than this stay on torch: the values are identical and torch's call is cheaper.
_CONST_MIN_NUMEL = 1 << 16
_TORCH_MODES = ("fan_in", "fan_out")


class _Frame:
    """One active ``with fast_init(...)`` block on one thread."""

    __slots__ = ("seed", "counts", "defer", "mode", "depth", "warned", "skip")

    def __init__(self, seed: SeedLike, counts: Counter, defer: bool) -> None:
        self.seed = seed  # an initlab.Generator, or None for the module-wide default generator
        self.counts = counts
        self.defer = defer
        self.mode: _WriteBeforeUse | None = None  # pushed at the first deferred fill
        self.depth = torch._C._len_torch_dispatch_stack()  # dispatch modes below this block
        self.warned: set[str] = set()  # names of unreproducible random calls already warned about
        # initlab-internal: tensors whose random fills are not needed (own_record's scratch runs)
        self.skip: Callable[[torch.Tensor], bool] | None = None


_tls = threading.local()  # .stack: list[_Frame]; .passthrough: depth of calls into torch originals
_install_lock = threading.RLock()
_install_count = 0
_patched: list[tuple[Any, str, Any, bool]] = []  # (owner, name, saved value, owner had its own entry)
_scan_cache: dict[str, tuple[Any, tuple[str, ...]]] = {}  # module name -> (module, names it binds)
_wrappers: dict[int, Callable] = {}  # id(original) -> wrapper, so re-installs reuse the same objects


def _frame() -> _Frame | None:
    """The innermost block on this thread, or None (other threads are never redirected)."""
    if getattr(_tls, "passthrough", 0):
        return None
    stack = getattr(_tls, "stack", None)
    return stack[-1] if stack else None


def _call_original(fr: _Frame | None, label: str, orig: Callable, args: tuple, kwargs: dict) -> Any:
    if fr is not None:
        fr.counts[(label, "torch")] += 1
    _tls.passthrough = getattr(_tls, "passthrough", 0) + 1
    try:
        return orig(*args, **kwargs)
    finally:
        _tls.passthrough -= 1


def _servable(t: Any, *, autograd_inplace: bool) -> bool:
    """Whether initlab can write ``t`` in place with torch's semantics (else: torch's own call)."""
    if type(t) not in _PLAIN_TYPES:  # subclasses (DTensor, fake/lazy tensors, ...) keep their own dispatch
        return False
    if t.layout is not torch.strided or t.dtype not in _FLOAT_DTYPES:
        return False
    if t.device.type != "cpu" and not _device_servable(t):
        return False
    if t.numel() == 0 or t.is_conj() or t.is_neg():
        return False
    if t.is_inference() and not torch.is_inference_mode_enabled():
        return False  # torch raises for in-place updates of inference tensors outside inference mode
    if autograd_inplace and t.requires_grad and torch.is_grad_enabled():
        return False  # a Tensor method under autograd: torch raises (leaf) or records the op
    return torch._debug_has_internal_overlap(t) == 0


def _device_servable(t: torch.Tensor) -> bool:
    """Whether initlab fills ``t``, a tensor on a non-CPU device, in place: a route serves it
    (:func:`initlab.device_backend` answers). Never on the meta device (no storage to write)."""
    if t.device.type == "meta":
        return False
    import initlab

    backend = getattr(initlab, "device_backend", None)
    if backend is None:  # pragma: no cover - a build without the device routes
        return False
    _tls.passthrough = getattr(_tls, "passthrough", 0) + 1  # our question is not the user's call
    try:
        with _internal():
            backend(t)
        return True
    except Exception:  # noqa: BLE001 - no route for it: the call goes to torch unchanged
        return False
    finally:
        _tls.passthrough -= 1


# A call resolved to a base operation: ("uniform", lo, hi), ("normal", mean, std),
# ("trunc", mean, std, a, b), ("const", value), ("eye",), ("dirac", groups), ("orthogonal", gain),
# ("sparse", sparsity, std).
_RANDOM_OPS = ("uniform", "normal", "trunc", "orthogonal", "sparse")
_DEFERRABLE_OPS = ("uniform", "normal", "trunc", "const")


def _resolve(name: str, t: torch.Tensor, a: dict) -> tuple | None:
    """torch.nn.init's ``name`` with the bound arguments ``a`` as a base operation, the fans and
    gains computed by torch's own helpers (torch's numbers, torch's errors); None: torch's call."""
    I = torch.nn.init
    if name in ("constant_", "zeros_", "ones_"):
        if name == "constant_" and t.dtype not in _EXACT_CONST_DTYPES:
            return None  # float16/bfloat16: torch rounds the double directly; keep its exact bits
        if t.numel() < _CONST_MIN_NUMEL:
            return None
        return _const_op(a["val"] if name == "constant_" else (0.0 if name == "zeros_" else 1.0), t.dtype)
    if name == "uniform_":
        return ("uniform", a["a"], a["b"])
    if name == "normal_":
        return ("normal", a["mean"], a["std"])
    if name == "trunc_normal_":
        return ("trunc", a["mean"], a["std"], a["a"], a["b"])
    if name in ("xavier_uniform_", "xavier_normal_"):
        fan_in, fan_out = I._calculate_fan_in_and_fan_out(t)
        std = a["gain"] * math.sqrt(2.0 / float(fan_in + fan_out))
        return ("uniform", -math.sqrt(3.0) * std, math.sqrt(3.0) * std) if name == "xavier_uniform_" \
            else ("normal", 0.0, std)
    if name in ("kaiming_uniform_", "kaiming_normal_"):
        fan = I._calculate_correct_fan(t, a["mode"])
        std = I.calculate_gain(a["nonlinearity"], a["a"]) / math.sqrt(fan)
        return ("uniform", -math.sqrt(3.0) * std, math.sqrt(3.0) * std) if name == "kaiming_uniform_" \
            else ("normal", 0.0, std)
    if name == "eye_":
        return ("eye",)
    if name == "dirac_":
        return ("dirac", a["groups"])
    if name == "orthogonal_":
        return ("orthogonal", a["gain"])
    if name == "sparse_":
        return ("sparse", a["sparsity"], a["std"])
    return None


def _run(op: tuple, t: torch.Tensor, seed: SeedLike) -> None:
    """Write base operation ``op`` into ``t`` with initlab (validates before writing)."""
    from .rules import host_default

    with host_default():  # under `with torch.device("cuda")`, initlab's scratch memory stays on the host
        _run_op(op, t, seed)


def _run_op(op: tuple, t: torch.Tensor, seed: SeedLike) -> None:
    from .. import init as il
    from ..orthogonal import orthogonal_

    kind = op[0]
    if kind == "uniform":
        il.uniform_(t, op[1], op[2], seed=seed)
    elif kind == "normal":
        il.normal_(t, op[1], op[2], seed=seed)
    elif kind == "trunc":
        il.trunc_normal_(t, op[1], op[2], op[3], op[4], seed=seed)
    elif kind == "const":
        il.constant_(t, op[1])
    elif kind == "eye":
        il.eye_(t)
    elif kind == "dirac":
        il.dirac_(t, op[1])
    elif kind == "orthogonal":
        orthogonal_(t, op[1], seed=seed)
    elif kind == "sparse":
        il.sparse_(t, op[1], op[2], seed=seed)
    else:  # pragma: no cover - _resolve only makes the kinds above
        raise AssertionError(kind)


# ---- deferred fills ------------------------------------------------------------------------------
# Constructors fill most weights twice: torch's reset_parameters, then the library's own init
# (HF's _init_weights) overwrites them. A fill that covers a tensor's whole storage is therefore
# recorded, not written; a later whole fill of the same storage replaces it, and anything that
# could observe the memory first (any non-view aten op on a tensor of that storage, seen by a
# dispatch mode; a partial or non-deferrable initlab write) writes it. The block's exit writes
# the rest. The stream is taken at call time, so the values equal those of immediate writes.


class _Pending:
    __slots__ = ("alias", "op", "seed")

    def __init__(self, alias: torch.Tensor, op: tuple, seed: SeedLike) -> None:
        self.alias, self.op, self.seed = alias, op, seed


@contextlib.contextmanager
def _internal() -> Any:
    """Our own aten calls (aliases, fan helpers, initlab's views) do not trigger writes."""
    _tls.internal = getattr(_tls, "internal", 0) + 1
    try:
        yield
    finally:
        _tls.internal -= 1


def _pending() -> dict[tuple[str, int], _Pending]:
    p = getattr(_tls, "pending", None)
    if p is None:
        p = _tls.pending = {}
    return p


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    # The device is part of the key: a CPU and a device address may be the same number.
    return str(t.device), t.untyped_storage().data_ptr()


def _whole(t: torch.Tensor) -> bool:
    return (t.is_contiguous() and t.storage_offset() == 0
            and t.numel() * t.element_size() == t.untyped_storage().nbytes())


def _write(pend: _Pending, fr: _Frame | None) -> None:
    with _internal(), torch.no_grad():
        # Only our alias (and the temporary storage object) hold the storage: nobody can read it.
        if torch._C._storage_Use_Count(pend.alias.untyped_storage()._cdata) <= 2:
            if fr is not None:
                fr.counts[("(deferred fill, storage freed)", "skipped")] += 1
            return
        _run(pend.op, pend.alias, pend.seed)


def _flush(key: tuple[str, int]) -> None:
    pend = _pending().pop(key, None)
    if pend is not None:
        _write(pend, _frame())


def _flush_all(fr: _Frame | None) -> None:
    p = _pending()
    while p:
        _write(p.pop(next(iter(p))), fr)


class _WriteBeforeUse(TorchDispatchMode):
    """Writes a deferred fill before any aten op that could read or partly overwrite its storage."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # torch would wrap the handler in torch._disable_dynamo: seconds to import, per-op cost

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        p = getattr(_tls, "pending", None)
        if p and not getattr(_tls, "internal", 0) and not getattr(func, "is_view", False):
            for x in tree_leaves((args, kwargs)):
                if isinstance(x, torch.Tensor) and x.layout is torch.strided and x.device.type != "meta":
                    k = _storage_key(x)
                    if k in p:
                        _flush(k)
        return func(*args, **kwargs)


def _watching(fr: _Frame) -> bool:
    """Make sure the write-before-use mode is on the stack. It is pushed at the first deferred fill,
    not at the block's entry: with a Python dispatch mode active, operations on meta tensors take
    torch's Python reference path (which imports torch._dynamo). If another dispatch mode was
    entered inside the block since, the mode cannot be pushed in order: no deferral."""
    if fr.mode is not None:
        return True
    if torch._C._len_torch_dispatch_stack() != fr.depth:
        return False
    fr.mode = _WriteBeforeUse()
    fr.mode.__enter__()
    return True


def _execute(fr: _Frame, label: str, t: torch.Tensor, op: tuple | None, call_torch: Callable[[], Any]) -> Any:
    """Serve one resolved call on initlab (now or deferred), or hand it to torch."""
    if op is None:
        return call_torch()
    random = op[0] in _RANDOM_OPS
    if random and fr.skip is not None and fr.skip(t):
        fr.counts[(label, "skipped")] += 1
        return t
    deferrable = fr.defer and op[0] in _DEFERRABLE_OPS
    with _internal():
        if op[0] in _DEFERRABLE_OPS:
            try:  # validate the parameters for this dtype on an empty view: nothing written, no stream taken
                _run(op, torch.empty(0, dtype=t.dtype, device="cpu"), 0)
            except (TypeError, ValueError):
                return call_torch()  # torch decides (and raises its own error where it does)
        seed = fr.seed
        if random:
            key, stream = resolve_seed(seed)
            seed = Generator(key, stream=stream)  # the call's stream, fixed now
        key = _storage_key(t)
        if deferrable and _whole(t) and _watching(fr):
            p = _pending()
            if p.pop(key, None) is not None:
                fr.counts[("(deferred fill, overwritten)", "skipped")] += 1
            p[key] = _Pending(t.detach(), op, seed)
            fr.counts[(label, "initlab")] += 1
            return t
    _flush(key)  # a deferred whole fill of this storage comes first
    try:
        with _internal(), torch.no_grad():
            _run(op, t, seed)
    except (TypeError, ValueError):
        return call_torch()
    fr.counts[(label, "initlab")] += 1
    return t


def _init_wrapper(name: str, orig: Callable) -> Callable:
    sig = _SIGNATURES[name]

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fr = _frame()
        if fr is None:
            return orig(*args, **kwargs)
        call_torch = functools.partial(_call_original, fr, name, orig, args, kwargs)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError:
            return call_torch()  # torch's own TypeError
        bound.apply_defaults()
        a = bound.arguments
        t = a["tensor"]
        if a.get("generator") is not None or not _servable(t, autograd_inplace=False):
            return call_torch()
        if name in ("kaiming_uniform_", "kaiming_normal_") and (
                not isinstance(a["mode"], str) or a["mode"].lower() not in _TORCH_MODES):
            return call_torch()  # torch accepts only fan_in/fan_out: its own error
        try:
            with _internal():
                op = _resolve(name, t, a)
        except (TypeError, ValueError, ZeroDivisionError):
            return call_torch()  # torch's fan/gain helpers reject it: torch raises the same
        return _execute(fr, name, t, op, call_torch)

    wrapper.__initlab_fast_init_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def _method_args(name: str, args: tuple, kwargs: dict) -> dict | None:
    """Parse a Tensor method's arguments as torch does (None: unexpected form, leave it to torch)."""
    spec = {"normal_": ("mean", "std", 0.0, 1.0), "uniform_": ("from", "to", 0.0, 1.0)}
    if name in spec:
        p0, p1, d0, d1 = spec[name]
        extra = set(kwargs) - {p0, p1, "generator"}
        if extra or len(args) > 2 or kwargs.get("generator") is not None:
            return None
        vals = list(args) + [None] * (2 - len(args))
        if vals[0] is not None and p0 in kwargs or vals[1] is not None and p1 in kwargs:
            return None
        v0 = kwargs.get(p0, d0) if vals[0] is None else vals[0]
        v1 = kwargs.get(p1, d1) if vals[1] is None else vals[1]
        return {p0: v0, p1: v1}
    if name == "zero_":
        return {} if not args and not kwargs else None
    if name == "fill_":
        if len(args) + len(kwargs) != 1 or (kwargs and "value" not in kwargs):
            return None
        v = args[0] if args else kwargs["value"]
        return {"value": v} if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return None


def _method_op(name: str, t: torch.Tensor, a: dict) -> tuple | None:
    if name == "normal_":
        return ("normal", a["mean"], a["std"])
    if name == "uniform_":
        return ("uniform", a["from"], a["to"])
    if t.numel() < _CONST_MIN_NUMEL:
        return None
    if name == "zero_":
        return ("const", 0.0)
    return _const_op(a["value"], t.dtype) if t.dtype in _EXACT_CONST_DTYPES else None


def _const_op(value: Any, dtype: torch.dtype) -> tuple | None:
    """A constant fill served by initlab, or None where torch's own call must run: a value that is
    not a real number, or a finite one that overflows float32 (torch writes inf, initlab refuses)."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if dtype == torch.float32 and math.isfinite(v) and not math.isfinite(float(torch.tensor(v, dtype=torch.float32))):
        return None
    return ("const", value)


def _method_wrapper(name: str, orig: Callable) -> Callable:
    @functools.wraps(orig)
    def wrapper(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        fr = _frame()
        if fr is None:
            return orig(self, *args, **kwargs)
        label = f"Tensor.{name}"
        call_torch = functools.partial(_call_original, fr, label, orig, (self, *args), kwargs)
        a = _method_args(name, args, kwargs)
        if a is None or not _servable(self, autograd_inplace=True):
            return call_torch()
        return _execute(fr, label, self, _method_op(name, self, a), call_torch)

    wrapper.__initlab_fast_init_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def _warn_unreproducible(fr: _Frame, label: str) -> None:
    if label in fr.warned:
        return
    fr.warned.add(label)
    warnings.warn(
        f"initlab.torch.fast_init: {label} draws from torch's own random generator, which the block's seed "
        "does not control: its values are not reproducible by fast_init(seed=...). Seed torch "
        "(torch.manual_seed) or pass generator= to make them reproducible; "
        "warnings.filterwarnings('error', message='initlab.torch.fast_init') turns this into an error.",
        RuntimeWarning, stacklevel=3)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _factory_wrapper(name: str, orig: Callable) -> Callable:
    """torch.rand/randn/rand_like/randn_like (and torch.normal with float mean and std and a size):
    a new tensor, allocated as torch would (shape, dtype, device, layout, requires_grad, out=),
    filled by initlab with the block's next stream. torch.normal's tensor forms warn."""
    label = f"torch.{name}"

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fr = _frame()
        if fr is None or getattr(_tls, "internal", 0) or kwargs.get("generator") is not None:
            return orig(*args, **kwargs)  # outside a block, our own calls, or the caller's own generator
        call_torch = functools.partial(_call_original, fr, label, orig, args, kwargs)
        kw = {k: v for k, v in kwargs.items() if k != "generator"}
        if name == "normal":
            a = list(args)
            mean = a.pop(0) if a else kw.pop("mean", None)
            std = a.pop(0) if a else kw.pop("std", None)
            size = a.pop(0) if a else kw.pop("size", None)
            if not (_number(mean) and _number(std)) or size is None or a:
                if not (_number(mean) and _number(std)):
                    _warn_unreproducible(fr, label)
                return call_torch()
            op: tuple = ("normal", float(mean), float(std))
            build: Callable[[], torch.Tensor] = functools.partial(torch.empty, size, **kw)
        else:
            op = ("uniform", 0.0, 1.0) if _FACTORIES[name] == "uniform" else ("normal", 0.0, 1.0)
            build = functools.partial(torch.empty if name in ("rand", "randn") else torch.empty_like, *args, **kw)
        _tls.passthrough = getattr(_tls, "passthrough", 0) + 1
        try:
            t = build()  # torch's own parsing of the shape and options (no random draw)
        except Exception:  # noqa: BLE001 - torch's call raises its own error
            return call_torch()
        finally:
            _tls.passthrough -= 1
        if not isinstance(t, torch.Tensor) or not _servable(t, autograd_inplace=False):
            return call_torch()
        return _execute(fr, label, t, op, call_torch)

    wrapper.__initlab_fast_init_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def _unserved_wrapper(label: str, orig: Callable) -> Callable:
    """A random call initlab cannot reproduce: warn (once per name and block), then torch's call."""

    @functools.wraps(orig)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fr = _frame()
        if fr is not None and not getattr(_tls, "internal", 0) and kwargs.get("generator") is None:
            _warn_unreproducible(fr, label)
            return _call_original(fr, label, orig, args, kwargs)
        return orig(*args, **kwargs)

    wrapper.__initlab_fast_init_original__ = orig  # type: ignore[attr-defined]
    return wrapper


def _wrapper_for(kind: str, name: str, orig: Callable) -> Callable:
    w = _wrappers.get(id(orig))
    if w is None or getattr(w, "__initlab_fast_init_original__", None) is not orig:
        if kind == "init":
            w = _init_wrapper(name, orig)
        elif kind == "method":
            w = _method_wrapper(name, orig)
        elif kind == "factory":
            w = _factory_wrapper(name, orig)
        elif kind == "unserved_method":
            w = _unserved_wrapper(f"Tensor.{name}", orig)
        else:
            w = _unserved_wrapper(f"torch.{name}", orig)
        _wrappers[id(orig)] = w
    return w


def _install() -> None:
    """Patch every reference to the torch originals (module globals, HF's table, Tensor methods)."""
    originals = {id(f): n for n, f in _TORCH_INIT.items()}
    # Every loaded module that holds one of the originals under its torch name: torch.nn.init,
    # torch.nn.modules.* (``from torch.nn.init import xavier_uniform_``), user code, ...
    # Names are bound at import, so a module scanned before is looked at again only where it
    # held an original (the scan of thousands of modules is the cost of entering a block).
    for mname, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType):
            continue
        cached = _scan_cache.get(mname)
        # torch.nn's own modules are always looked at (someone, e.g. HF's guard, may have had
        # their names replaced during an earlier scan).
        if cached is not None and cached[0] is mod and not mname.startswith("torch.nn"):
            names = cached[1]
        else:
            d = getattr(mod, "__dict__", None) or {}
            names = tuple(n for n in _INIT_NAMES if originals.get(id(d.get(n))) == n)
            _scan_cache[mname] = (mod, names)
        for n in names:
            f = mod.__dict__.get(n)
            if f is not None and originals.get(id(f)) == n:
                _patched.append((mod, n, f, True))
                setattr(mod, n, _wrapper_for("init", n, f))
    # Hugging Face's initialization module calls the torch functions it captured at import.
    hf = sys.modules.get("transformers.initialization")
    table = getattr(hf, "TORCH_INIT_FUNCTIONS", None)
    if isinstance(table, dict):
        for n, f in list(table.items()):
            if originals.get(id(f)) == n:
                _patched.append((table, n, f, True))
                table[n] = _wrapper_for("init", n, f)
    for n in _TENSOR_METHODS + _UNSERVED_METHODS:
        own = n in torch.Tensor.__dict__
        f = getattr(torch.Tensor, n, None)
        if f is None:
            continue
        _patched.append((torch.Tensor, n, torch.Tensor.__dict__.get(n), own))
        setattr(torch.Tensor, n, _wrapper_for("method" if n in _TENSOR_METHODS else "unserved_method", n, f))
    # torch's random factories, in the torch namespace (where model code calls them).
    for n, f in _TORCH_FUNCS.items():
        if getattr(torch, n, None) is f:
            _patched.append((torch, n, f, True))
            setattr(torch, n, _wrapper_for("factory" if n in _FACTORIES else "unserved", n, f))


def _uninstall() -> None:
    while _patched:
        owner, n, saved, own = _patched.pop()
        if isinstance(owner, dict):
            if getattr(owner.get(n), "__initlab_fast_init_original__", None) is saved:
                owner[n] = saved
        elif owner is torch.Tensor:
            if own:
                setattr(owner, n, saved)
            else:
                delattr(owner, n)
        elif getattr(getattr(owner, n, None), "__initlab_fast_init_original__", None) is saved:
            setattr(owner, n, saved)  # left alone if someone else replaced it meanwhile


class fast_init(contextlib.ContextDecorator):
    """Construct models with the library's own distributions on initlab's multi-threaded fills.

    Inside the block (or the decorated function), on the thread that entered it:

    * the ``torch.nn.init`` functions ``uniform_``, ``normal_``, ``trunc_normal_``,
      ``constant_``, ``zeros_``, ``ones_``, ``eye_``, ``dirac_``, ``xavier_uniform_``,
      ``xavier_normal_``, ``kaiming_uniform_``, ``kaiming_normal_``, ``orthogonal_`` and
      ``sparse_`` — wherever they are referenced: ``torch.nn.init``, modules that imported them
      by name (``torch.nn.modules.*``, user code) and Hugging Face's
      ``transformers.initialization.TORCH_INIT_FUNCTIONS`` table, through which its
      ``_init_weights`` calls them;
    * the ``Tensor`` methods ``normal_``, ``uniform_``, ``zero_`` and ``fill_`` (what torch's
      ``Embedding`` padding row, BatchNorm's running statistics and older model code call)

    run on initlab's fills with exactly the arguments the library passed (torch semantics:
    ``kaiming_uniform_(a=√5)``, absolute ``trunc_normal_`` bounds, torch's fan convention).
    What the library does around those calls (zeroed padding rows, scaled residual
    projections, tied weights) is its own business and happens as usual.

    Tensors on any device are served: CPU tensors by the C++ core, CUDA and other devices'
    tensors in place on their device by the route :func:`initlab.device_backend` names (the
    same bits as on the CPU), so ``with fast_init(seed=0), torch.device("cuda"): model = ...``
    builds the model on the GPU with initlab's values.

    * torch's float random factories ``torch.rand``, ``torch.randn``, ``torch.rand_like``,
      ``torch.randn_like`` and ``torch.normal(mean, std, size)`` with float ``mean``/``std``
      (what Mamba's ``dt`` and other constructors draw from): the new tensor is allocated as
      torch would (shape, ``dtype``, ``device``, ``layout``, ``requires_grad``, ``out=``) and
      filled by initlab's ``uniform_`` (on [0, 1)) or ``normal_`` with the block's next stream,
      so it is reproducible for the block's seed; with an explicit ``generator=`` torch draws
      as usual (the caller chose the generator).

    **Random calls initlab cannot reproduce** (``torch.randint``/``randint_like``/``randperm``/
    ``bernoulli``/``multinomial``/``poisson``/``binomial``, ``torch.normal`` with tensor
    arguments, the ``Tensor`` methods ``random_``, ``exponential_``, ``geometric_``,
    ``cauchy_``, ``log_normal_``, ``bernoulli_``, ``bernoulli``, ``multinomial``) without a
    ``generator=`` draw from torch's global generator, which the block's seed does not control:
    each emits a ``RuntimeWarning`` (once per name and block) naming the call, then runs as
    usual. A warning rather than an error: constructors that draw such values (random
    permutations, masks) still build, and ``torch.manual_seed`` makes them reproducible;
    ``warnings.filterwarnings("error", message="initlab.torch.fast_init")`` makes it an error.

    Calls that initlab cannot serve with torch's exact semantics go to the original torch
    function unchanged: meta or sparse tensors, tensors on a device no initlab route serves,
    tensor subclasses, integer/complex
    dtypes, zero-size tensors, overlapping memory, a ``generator=`` argument, in-place
    ``Tensor`` methods on tensors that require grad while grad mode is on (torch raises or
    records them), arguments torch rejects (torch raises its own error), and constant fills of
    small tensors or of float16/bfloat16 tensors with ``constant_``/``fill_`` (identical values;
    torch's call is cheaper or rounds the constant in its own way).

    **Deferred writes** (``defer=True``, the default). Constructors usually fill a weight twice
    (torch's ``reset_parameters``, then the library's own init overwrites it). A fill that
    covers a tensor's whole storage is recorded, with its stream taken at call time, and
    written only when something could observe it: a later whole fill of the same storage
    replaces it (the first one is never written), any non-view aten operation on a tensor that
    shares the storage (reading it, ``copy_`` into it, an in-place scaling, a partial fill such
    as a padding row) writes it first, and the end of the block writes the rest (a fill whose
    storage nobody references any more, e.g. an untied head replaced by a tied weight, is
    dropped). The values are identical to ``defer=False``. Memory read *around* torch's
    operators inside the block (``Tensor.numpy()``, ``data_ptr()`` in an extension,
    ``torch.save``, another thread) may not have been written yet: use ``defer=False`` for
    such constructors. Everything is written when the block exits.

    Parameters
    ----------
    seed : int, initlab.Generator or None
        ``int``: each entry into the block starts a fresh ``initlab.Generator(seed)`` and every
        random call takes its next stream, so the whole construction is reproducible
        (bit-identical for a seed, whatever the thread count). A ``Generator`` is used as is
        (its streams continue across blocks). ``None``: the module-wide default generator
        (reproducible after ``initlab.manual_seed``).
    defer : bool, keyword-only, default True
        Defer whole-tensor fills until they can be observed (see above); False writes each
        fill when it is called.

    Attributes
    ----------
    counts : collections.Counter
        For the last (or current) entry: ``(function, "initlab" | "torch")`` -> number of calls
        served by initlab or passed through to torch, and deferred fills that were never
        written (``"skipped"``).

    Notes
    -----
    Determinism contract: for an int seed, the values depend only on the seed and the order of
    the intercepted random calls, which a library's constructor fixes.

    Thread safety: the patching is global while any block is active (installed on the first
    entry, undone when the last one exits, also on exceptions), but calls from threads other
    than the one that entered the block go to torch unchanged. Blocks nest: the innermost one's
    seed is used. Modules imported *inside* the block that copy ``torch.nn.init`` functions by
    name keep a wrapper that forwards to torch outside any block.

    Examples
    --------
    >>> import torch, initlab.torch
    >>> with initlab.torch.fast_init(seed=0):
    ...     model = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.LayerNorm(512))
    """

    def __init__(self, seed: SeedLike = None, *, defer: bool = True) -> None:
        if seed is not None and not isinstance(seed, Generator):
            Generator(seed)  # validate now (TypeError/ValueError naming the bad seed)
        if not isinstance(defer, bool):
            raise TypeError(f"defer must be True or False, got {defer!r}")
        self.seed = seed
        self.defer = defer
        self.counts: Counter = Counter()
        self._frames: list[_Frame] = []

    def __enter__(self) -> fast_init:
        global _install_count
        gen = self.seed if self.seed is None or isinstance(self.seed, Generator) else Generator(self.seed)
        self.counts = Counter()
        fr = _Frame(gen, self.counts, self.defer)
        with _install_lock:
            if _install_count == 0:
                try:
                    _install()
                except BaseException:
                    _uninstall()
                    raise
            _install_count += 1
        if not hasattr(_tls, "stack"):
            _tls.stack = []
        _tls.stack.append(fr)
        self._frames.append(fr)
        return self

    def __exit__(self, *exc: Any) -> None:
        global _install_count
        fr = self._frames.pop()
        try:
            if fr.defer:
                _flush_all(fr)  # everything deferred on this thread is written by now
        finally:
            if fr.mode is not None:
                fr.mode.__exit__(None, None, None)
            stack = _tls.stack
            # Remove this block's frame (the innermost one unless blocks were exited out of order).
            for k in range(len(stack) - 1, -1, -1):
                if stack[k] is fr:
                    del stack[k]
                    break
            with _install_lock:
                _install_count -= 1
                if _install_count == 0:
                    _uninstall()

    def __repr__(self) -> str:
        return f"initlab.torch.fast_init(seed={self.seed!r}, defer={self.defer})"

    def __str__(self) -> str:
        served = sum(v for (_, how), v in self.counts.items() if how == "initlab")
        passed = sum(v for (_, how), v in self.counts.items() if how == "torch")
        lines = [f"fast_init(seed={self.seed!r}): {served} calls on initlab, {passed} passed to torch"]
        for (name, how), v in sorted(self.counts.items()):
            lines.append(f"  {name:<32} {how:<8} {v}")
        return "\n".join(lines)
