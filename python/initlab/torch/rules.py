"""Rules: which parameters get what. :class:`Rule` and the resolved :class:`Fill`.

A rule matches on the owning module's type, the parameter's qualified name (a glob on the full
dotted name, tied aliases included) and/or its role (see :mod:`initlab.torch.roles`), and says
what to do: an initlab initializer with its options, a constant, ``"keep"`` or a callable.
Resolving a rule against one parameter turns fan-based initializers into their numbers (the
std or bound computed from the fans in the module's own weight layout, the gain), which is what
the manifest records and what is then filled.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ..fans import calculate_gain, check_mode, fan_for_mode
from ..init import TRUNC_STD_2SIGMA
from .roles import ROLES, ParamInfo

__all__ = ["Rule", "FnRule", "Fill", "INITIALIZERS", "execute", "resolve_named", "structural_fill", "Derive"]

INITIALIZERS = (
    "normal", "uniform", "trunc_normal", "kaiming_normal", "kaiming_uniform", "xavier_normal",
    "xavier_uniform", "lecun_normal", "lecun_uniform", "variance_scaling", "orthogonal",
    "zeros", "ones", "constant", "keep",
)
_OPTIONS = {
    "normal": {"mean", "std"},
    "uniform": {"a", "b"},
    "trunc_normal": {"mean", "std", "a", "b"},
    "kaiming_normal": {"a", "mode", "nonlinearity"},
    "kaiming_uniform": {"a", "mode", "nonlinearity"},
    "xavier_normal": {"gain"},
    "xavier_uniform": {"gain"},
    "lecun_normal": set(),
    "lecun_uniform": set(),
    "variance_scaling": {"scale", "mode", "distribution"},
    "orthogonal": {"gain"},
    "zeros": set(), "ones": set(), "constant": {"value"}, "keep": set(),
}


_NEW_DICT: Any = object()  # Fill's params default: a new dict


@dataclass(frozen=True)
class Fill:
    """A rule resolved for one parameter: the primitive fill and its numbers.

    ``init`` is one of ``"normal"``, ``"uniform"``, ``"trunc_normal"``, ``"constant"``,
    ``"orthogonal"``, ``"recurrent_orthogonal"`` (orthogonal per gate block), ``"keep"``,
    ``"callable"`` or ``"computed"`` (a value the library's own code computes, ``fn(seed)``
    returning the whole tensor on the CPU; see :mod:`initlab.torch.own_record`); ``params`` holds the numbers (``std``, ``bound``, ``a``/``b``, ``value``,
    ``gain``, ``fan_in``/``fan_out``, ...); ``post`` lists exact edits after the fill
    (``("zero_row", i)`` for an embedding's padding row, ``("constant_slice", lo, hi, v)`` for
    a gate's bias, ``("derive", Derive)`` for the parts of a parametrization re-derived from the
    weight just written). ``"derived"``: written by another parameter's fill (a ``weight_norm``
    magnitude); ``"orthogonal"`` with ``params["per"] == "expert"``: one matrix per expert.
    """

    init: str
    params: dict[str, Any] = field(default_factory=dict)
    post: tuple[tuple[Any, ...], ...] = ()
    fn: Callable[..., Any] | None = None

    def __init__(self, init: str, params: dict[str, Any] = _NEW_DICT, post: tuple[tuple[Any, ...], ...] = (),
                 fn: Callable[..., Any] | None = None) -> None:
        # The dataclass's own __init__ (a new dict when ``params`` is not given), without its
        # object.__setattr__ per field: a whole-model call makes one Fill per parameter.
        d = self.__dict__
        d["init"] = init
        d["params"] = {} if params is _NEW_DICT else params
        d["post"] = post
        d["fn"] = fn

    @property
    def random(self) -> bool:
        if self.init == "computed":  # a value the library's code computes: random if it draws
            return bool(self.params.get("random", False))
        return self.init in ("normal", "uniform", "trunc_normal", "orthogonal", "recurrent_orthogonal", "callable")


class Derive(str):
    """A post-fill step that re-derives a parametrization's other parts from the tensor just
    written; the string says what (it is what the manifest shows), ``fn(t, seed)`` does it."""

    fn: Callable[[torch.Tensor, Any], None]

    def __new__(cls, text: str, fn: Callable[[torch.Tensor, Any], None]) -> "Derive":
        obj = super().__new__(cls, text)
        obj.fn = fn
        return obj


def _norm_except(v: torch.Tensor, dim: int | None) -> torch.Tensor:
    """torch's ``norm_except_dim(v, 2, dim)``: the 2-norm of each slice along ``dim``."""
    if dim is None or dim == -1:  # torch's convention: -1 is the norm of the whole tensor
        return torch.linalg.vector_norm(v.detach().double()).to(v.dtype)
    d = dim % v.dim()
    red = tuple(k for k in range(v.dim()) if k != d)
    return torch.linalg.vector_norm(v.detach().double(), dim=red, keepdim=True).to(v.dtype)


def _weight_norm_derive(par: dict[str, Any]) -> Derive:
    plist, dim = par["plist"], par["dim"]

    def fn(v: torch.Tensor, seed: Any) -> None:
        g = plist.original0
        g.copy_(_norm_except(v, dim).reshape(g.shape).to(g.dtype))

    return Derive(f"weight_norm: g = ||v|| per slice (dim {dim}), so the layer's weight g*v/||v|| equals the fill", fn)


def _spectral_derive(par: dict[str, Any]) -> Derive:
    sn = par["sn"]

    def fn(w: torch.Tensor, seed: Any) -> None:
        from .. import init as I

        mat = sn._reshape_weight_to_matrix(w.detach())
        u = torch.empty(mat.shape[0], dtype=mat.dtype, device=mat.device)
        v = torch.empty(mat.shape[1], dtype=mat.dtype, device=mat.device)
        gens = seed.spawn(2) if hasattr(seed, "spawn") else [seed, seed]
        I.normal_(u, seed=gens[0])
        I.normal_(v, seed=gens[1])
        sn._u.copy_(torch.nn.functional.normalize(u, dim=0, eps=sn.eps))
        sn._v.copy_(torch.nn.functional.normalize(v, dim=0, eps=sn.eps))
        sn._power_method(mat, 15)  # as spectral_norm's constructor: 15 power iterations from a random start

    return Derive("spectral_norm: original = the fill (the layer uses original/sigma(original)); its _u/_v "
                  "buffers re-estimated from it (random start, 15 power iterations, as at construction)", fn)


def structural_fill(info: ParamInfo, fill: Fill) -> Fill:
    """``fill`` (resolved by a rule for ``info``) completed by what the parameter's structure
    needs: a parametrization's parts re-derived after its weight is written, orthogonal fills
    of fused experts taken per expert, and the manifest's notes (per-expert fans, how a token or
    scalar is used)."""
    if not info.extra:  # no structural fact about the parameter: nothing to add (the common case)
        return fill
    if fill.init == "keep" and "usage" in info.extra and "why" not in fill.params:
        return Fill("keep", {**fill.params, "why": f"{info.role or 'bare parameter'}: {info.extra['usage']}"})
    if fill.init in ("keep", "derived"):
        return fill
    params, post = dict(fill.params), fill.post
    par = info.extra.get("parametrization")
    if par is not None and par.get("part") in ("v", "original"):
        if par["kind"] == "weight_norm":
            post = post + (("derive", _weight_norm_derive(par)),)
        elif par["kind"] == "spectral_norm":
            post = post + (("derive", _spectral_derive(par)),)
        else:
            params["parametrization"] = (f"{par['kind']} is applied on top: the layer's {par['tensor']} is "
                                         f"{par['kind']}(this tensor)")
    if "experts" in info.extra:
        if fill.init == "orthogonal":
            params["per"] = "expert"
        if fill.random:
            params["fans"] = info.extra["fans_why"]
    if "usage" in info.extra and info.role == "token":  # (a scalar's use is said where it is kept)
        params.setdefault("why", f"{info.role}: {info.extra['usage']}")
    if params == fill.params and post == fill.post:
        return fill
    return Fill(fill.init, params, post, fill.fn)


def _fan(info: ParamInfo, mode: str) -> float:
    return fan_for_mode(info.fan_in, info.fan_out, mode)


def resolve_named(init: str, opts: dict[str, Any], info: ParamInfo) -> Fill:
    """Turn a named initializer with options into a primitive :class:`Fill` for ``info``."""
    o = dict(opts)
    if init == "normal":
        return Fill("normal", {"mean": float(o.get("mean", 0.0)), "std": float(o.get("std", 1.0))})
    if init == "uniform":
        return Fill("uniform", {"a": float(o.get("a", 0.0)), "b": float(o.get("b", 1.0))})
    if init == "trunc_normal":
        return Fill("trunc_normal", {"mean": float(o.get("mean", 0.0)), "std": float(o.get("std", 1.0)),
                                     "a": float(o.get("a", -2.0)), "b": float(o.get("b", 2.0))})
    if init in ("zeros", "ones", "constant"):
        return Fill("constant", {"value": {"zeros": 0.0, "ones": 1.0}.get(init, float(o.get("value", 0.0)))})
    if init == "keep":
        return Fill("keep")
    if init == "orthogonal":
        return Fill("orthogonal", {"gain": float(o.get("gain", 1.0))})
    if init in ("kaiming_normal", "kaiming_uniform"):
        mode = check_mode(o.get("mode", "fan_in"), lower=True)  # torch lower-cases, as kaiming_*_
        g = float(calculate_gain(o.get("nonlinearity", "leaky_relu"), o.get("a", 0)))
        fan = _fan(info, mode)
        common = {"gain": g, "mode": mode, "fan": fan}
        if init == "kaiming_normal":
            return Fill("normal", {"mean": 0.0, "std": g / math.sqrt(fan) if fan > 0 else 0.0, **common})
        b = g * math.sqrt(3.0 / fan) if fan > 0 else 0.0
        return Fill("uniform", {"a": -b, "b": b, "bound": b, **common})
    if init in ("xavier_normal", "xavier_uniform"):
        g = float(o.get("gain", 1.0))
        s = info.fan_in + info.fan_out
        fans = {"gain": g, "fan_in": info.fan_in, "fan_out": info.fan_out}
        if init == "xavier_normal":
            return Fill("normal", {"mean": 0.0, "std": g * math.sqrt(2.0 / s) if s > 0 else 0.0, **fans})
        b = g * math.sqrt(6.0 / s) if s > 0 else 0.0
        return Fill("uniform", {"a": -b, "b": b, "bound": b, **fans})
    if init in ("lecun_normal", "lecun_uniform"):
        return resolve_named("variance_scaling", {"scale": 1.0, "mode": "fan_in",
                                                  "distribution": "truncated_normal" if init == "lecun_normal" else "uniform"},
                             info)
    if init == "variance_scaling":
        scale = float(o.get("scale", 1.0))
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        mode = check_mode(o.get("mode", "fan_in"), lower=False)  # case-sensitive, as variance_scaling_
        dist = o.get("distribution", "truncated_normal")
        fan = _fan(info, mode)
        var = scale / max(fan, 1.0)
        common = {"scale": scale, "mode": mode, "fan": fan}
        if dist in ("truncated_normal", "normal"):
            sd = math.sqrt(var) / TRUNC_STD_2SIGMA
            return Fill("trunc_normal", {"mean": 0.0, "std": sd, "a": -2.0 * sd, "b": 2.0 * sd, **common})
        if dist == "untruncated_normal":
            return Fill("normal", {"mean": 0.0, "std": math.sqrt(var), **common})
        if dist == "uniform":
            b = math.sqrt(3.0 * var)
            return Fill("uniform", {"a": -b, "b": b, "bound": b, **common})
        raise ValueError(f"distribution {dist!r} is not one of 'truncated_normal', 'normal', "
                         "'untruncated_normal', 'uniform'")
    raise ValueError(f"unknown initializer {init!r}; accepted: {', '.join(INITIALIZERS)}")


def _as_tuple(x: Any) -> tuple[Any, ...] | None:
    if x is None:
        return None
    return tuple(x) if isinstance(x, (list, tuple, set, frozenset)) else (x,)


class Rule:
    """One rule of a recipe: a match and what matched parameters get.

    Parameters
    ----------
    init : str, float, int or callable
        An initializer name (``"normal"``, ``"uniform"``, ``"trunc_normal"``, ``"kaiming_normal"``,
        ``"kaiming_uniform"``, ``"xavier_normal"``, ``"xavier_uniform"``, ``"lecun_normal"``,
        ``"lecun_uniform"``, ``"variance_scaling"``, ``"orthogonal"``, ``"zeros"``, ``"ones"``,
        ``"constant"``), ``"keep"`` (leave the parameter as constructed), a number (a constant),
        or a callable ``fn(tensor, seed)`` that fills ``tensor`` in place (``seed`` is the
        parameter's own ``initlab.Generator``, derived from its name).
    module : type, str or tuple of them, optional
        Match the owning module's type (``isinstance``) or class name (a glob such as
        ``"*RMSNorm"``).
    name : str or tuple of str, optional
        Globs on the qualified parameter name (e.g. ``"*.c_proj.weight"``); a tied parameter
        matches under any of its names.
    role : str or tuple of str, optional
        Roles from :data:`initlab.torch.roles.ROLES`; ``"residual_out"`` matches the
        ``"attention_out"`` and ``"mlp_out"`` roles too.
    label : str, optional
        How the manifest names this rule (default: a description of the match).
    **options
        The initializer's options (``std=0.02``, ``mode="fan_out"``, ``nonlinearity="relu"``,
        ``gain=...``, ``value=...``).

    A rule without ``module``, ``name`` and ``role`` matches every parameter.
    """

    def __init__(self, init: Any, *, module: Any = None, name: Any = None, role: Any = None,
                 label: str | None = None, **options: Any) -> None:
        problems = []
        if isinstance(init, bool) or not (isinstance(init, (str, int, float)) or callable(init)):
            problems.append(f"init must be an initializer name, a number or a callable, got {init!r}")
        elif isinstance(init, str):
            if init not in INITIALIZERS:
                problems.append(f"unknown initializer {init!r}; accepted: {', '.join(INITIALIZERS)} "
                                "(or a number, or a callable)")
            else:
                bad = sorted(set(options) - _OPTIONS[init])
                if bad:
                    problems.append(f"options {bad} are not accepted by {init!r}; accepted: "
                                    f"{sorted(_OPTIONS[init]) or 'none'}")
        elif options:
            problems.append(f"options {sorted(options)} only apply to a named initializer")
        roles = _as_tuple(role)
        for r in roles or ():
            if r not in ROLES:
                problems.append(f"unknown role {r!r}; accepted: {', '.join(ROLES)}")
        mods = _as_tuple(module)
        for m in mods or ():
            if not (isinstance(m, str) or isinstance(m, type)):
                problems.append(f"module must be a type or a class-name glob, got {m!r}")
        names = _as_tuple(name)
        for n in names or ():
            if not isinstance(n, str):
                problems.append(f"name must be a glob string, got {n!r}")
        if problems:
            raise ValueError("invalid Rule: " + "; ".join(problems))
        self.init = init
        self.module = mods
        self.name = names
        self.role = roles
        self.options = options
        self.label = label or self._describe()

    def _describe(self) -> str:
        parts = []
        if self.module:
            parts.append("module=" + "|".join(m if isinstance(m, str) else m.__name__ for m in self.module))
        if self.name:
            parts.append("name=" + "|".join(self.name))
        if self.role:
            parts.append("role=" + "|".join(self.role))
        return " ".join(parts) or "all"

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        init = self.init if not callable(self.init) else getattr(self.init, "__name__", "callable")
        return f"Rule({init!r}{opts}, {self.label})"

    def matches(self, info: ParamInfo) -> bool:
        """Whether this rule applies to the parameter ``info``."""
        if self.module is not None:
            ok = False
            for m in self.module:
                if isinstance(m, str):
                    ok = ok or fnmatch.fnmatchcase(type(info.module).__name__, m)
                else:
                    ok = ok or isinstance(info.module, m)
            if not ok:
                return False
        if self.name is not None:
            names = (info.name,) + info.aliases
            if not any(fnmatch.fnmatchcase(n, g) for n in names for g in self.name):
                return False
        if self.role is not None:
            role = info.role
            roles = set(self.role)
            if "residual_out" in roles:
                roles |= {"attention_out", "mlp_out"}
            if role not in roles:
                return False
        return True

    def resolve(self, info: ParamInfo) -> Fill:
        """The :class:`Fill` this rule gives the parameter ``info``."""
        if callable(self.init) and not isinstance(self.init, str):
            return Fill("callable", {"fn": getattr(self.init, "__name__", "callable")}, fn=self.init)
        if isinstance(self.init, (int, float)):
            return Fill("constant", {"value": float(self.init)})
        return resolve_named(self.init, self.options, info)


class FnRule(Rule):
    """A rule whose match and resolution are functions of the parameter (recipe internals)."""

    def __init__(self, label: str, match: Callable[[ParamInfo], bool], resolve: Callable[[ParamInfo], Fill], *,
                 extra_only: bool = False) -> None:
        self.init, self.module, self.name, self.role, self.options = "fn", None, None, None, {}
        self.label = label
        self._match, self._resolve = match, resolve
        #: ``match`` is False for every parameter whose ``extra`` is empty (it reads a structural
        #: fact): the engine then does not ask it
        self.extra_only = extra_only

    def matches(self, info: ParamInfo) -> bool:
        return bool(self._match(info))

    def resolve(self, info: ParamInfo) -> Fill:
        return self._resolve(info)

    def __repr__(self) -> str:
        return f"FnRule({self.label!r})"



def host_default() -> Any:
    """A context in which tensors created without a device are CPU tensors.

    initlab's fills create host tensors (the staged route's chunk buffers, the host copies of
    orthogonal/eye/sparse) without naming a device; inside a user's ``with torch.device("cuda")``
    block those would land on the GPU. The torch layer runs its fills in this context, so the
    user's default device never changes where initlab's scratch memory lives."""
    import contextlib

    stack_len = getattr(torch._C, "_len_torch_function_stack", None)
    if stack_len is not None and stack_len() == 0:  # no mode active, so no default-device context: fast path
        return contextlib.nullcontext()
    get = getattr(torch, "get_default_device", None)
    if get is None or get().type == "cpu":
        return contextlib.nullcontext()
    return torch.device("cpu")


_F32_MAX = 3.4028234663852886e38
_SMALL_CONSTANT = 1 << 16


def _small_constant(fill: Fill, t: torch.Tensor) -> bool:
    """A constant fill torch writes with the same bits at less cost: a small float32/float64 CPU
    tensor and a finite value within range (torch rounds a double to float32 to nearest, as the
    core does); larger ones keep the core's multi-threaded fill."""
    if fill.init != "constant" or fill.post or type(t) not in (torch.Tensor, nn.Parameter):
        return False
    v = fill.params.get("value")
    return (isinstance(v, float) and math.isfinite(v) and t.device.type == "cpu" and t.numel() < _SMALL_CONSTANT
            and (t.dtype == torch.float64 or (t.dtype == torch.float32 and abs(v) <= _F32_MAX)))


def execute(fill: Fill, t: torch.Tensor, seed: Any, *, global_shape: Any = None, offset: Any = None) -> None:
    """Write ``fill`` into ``t`` (a plain tensor or the local block of a sharded one, on any device)."""
    if _small_constant(fill, t):
        t.detach().fill_(fill.params["value"])
        return
    if fill.init == "callable":  # the user's function sees the user's default device
        _execute(fill, t, seed, global_shape, offset)
        return
    with host_default():
        _execute(fill, t, seed, global_shape, offset)


def _execute(fill: Fill, t: torch.Tensor, seed: Any, global_shape: Any, offset: Any) -> None:
    from .. import init as I
    from ..orthogonal import orthogonal_

    p = fill.params
    shard = {} if global_shape is None else {"global_shape": tuple(global_shape), "offset": tuple(offset)}
    if fill.init == "normal":
        I.normal_(t, p["mean"], p["std"], seed=seed, **shard)
    elif fill.init == "uniform":
        I.uniform_(t, p["a"], p["b"], seed=seed, **shard)
    elif fill.init == "trunc_normal":
        I.trunc_normal_(t, p["mean"], p["std"], p["a"], p["b"], seed=seed, **shard)
    elif fill.init == "constant":
        I.constant_(t, p["value"])
    elif fill.init in ("orthogonal", "recurrent_orthogonal") and shard and tuple(global_shape) == tuple(t.shape):
        # a block that is the whole tensor (a replicated DTensor): the whole-matrix fill
        _execute(fill, t, seed, None, None)
        return
    elif fill.init == "orthogonal":
        if shard:
            raise ValueError("orthogonal initialization needs the whole matrix; it cannot fill one shard")
        if p.get("per") == "expert" and t.dim() == 3:  # fused experts: one orthogonal matrix per expert
            gens = seed.spawn(t.shape[0]) if hasattr(seed, "spawn") else [seed] * t.shape[0]
            for e, g in enumerate(gens):
                orthogonal_(t[e], p["gain"], seed=g)
        else:
            orthogonal_(t, p["gain"], seed=seed)
    elif fill.init == "recurrent_orthogonal":
        if shard:
            raise ValueError("orthogonal initialization needs the whole matrix; it cannot fill one shard")
        h = p["hidden_size"]
        n = t.shape[0] // h
        # one independent child stream per gate block (an int seed only in the scratch check)
        gates = seed.spawn(n) if hasattr(seed, "spawn") else [seed] * n
        for k, g in enumerate(gates):
            orthogonal_(t[k * h:(k + 1) * h], p["gain"], seed=g)
    elif fill.init == "callable":
        if fill.fn is None:  # pragma: no cover - Rule.resolve always sets fn for "callable"
            raise AssertionError("Fill('callable') without fn")
        fill.fn(t, seed)
    elif fill.init == "computed":
        # the library's own code run on a scratch copy (own_record.compute_on_scratch): the whole
        # value on the CPU, of which this tensor is the block at ``offset``
        if fill.fn is None:  # pragma: no cover - own_record always sets fn for "computed"
            raise AssertionError("Fill('computed') without fn")
        value = fill.fn(seed)
        if shard:
            value = value[tuple(slice(o, o + n) for o, n in zip(offset, t.shape))]
        t.copy_(value)
    elif fill.init in ("keep", "derived"):
        return
    else:  # pragma: no cover - Fill objects come from resolve_named
        raise AssertionError(fill.init)
    row0 = 0 if offset is None else int(offset[0])
    for op in fill.post:
        if op[0] == "zero_row":
            r = op[1] - row0
            if 0 <= r < t.shape[0]:
                t[r].zero_()
        elif op[0] == "constant_slice":
            lo, hi = max(op[1] - row0, 0), min(op[2] - row0, t.shape[0])
            if lo < hi:
                t[lo:hi].fill_(op[3])
        elif op[0] == "derive":
            op[1].fn(t, seed)
