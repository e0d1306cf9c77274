"""Structural facts about parameters that their module's type does not tell (used by :mod:`.roles`).

* :func:`norm_identity` — the weight value at which a norm leaves the normalized input unscaled:
  1 for ``x_hat * w``, 0 for ``x_hat * (1 + w)`` (Gemma-style RMSNorm), found by running the
  norm's ``forward`` on a fixed probe input with ``w = 0, 1, 2`` on a shallow copy holding fresh
  CPU tensors (the module itself is never written, its hooks never run; one probe per
  configuration).
* :func:`param_usage` — how a bare parameter (one not owned by a linear/conv/norm/embedding/
  recurrent module) is used by its owner's ``forward``: read from the owner's source (its
  methods' syntax trees; no forward pass, so it works without an input and on the meta device).
  Concatenated with the sequence, added to it, fed as a layer's input or as attention queries →
  a token; multiplying a branch elementwise → a scalar (layer scale); the weight operand of
  ``F.linear`` / a matmul → a weight, with its orientation.
* :func:`parametrization_of` — what a ``torch.nn.utils.parametrize`` tensor is
  (``weight_norm``'s magnitude ``g`` and direction ``v``, ``spectral_norm``'s ``original``).
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from typing import Any, Hashable, cast

import torch
from torch import nn

__all__ = ["norm_identity", "param_usage", "parametrization_of", "Usage"]


# ---- norms: which weight value is the identity scale --------------------------------------------


def _probe_input(n: int) -> torch.Tensor:
    # Deterministic and not symmetric (so a norm's statistics are non-trivial); no RNG is used,
    # so fast_init's patched samplers and the user's generators are never touched.
    i = torch.arange(3 * n, dtype=torch.float32, device="cpu").reshape(3, n)
    return torch.sin(1.7 * i + 0.3) + 0.25 * torch.cos(0.37 * i * i)


def _config_key(mod: nn.Module, n: int) -> tuple[Any, ...] | None:
    """What a norm's forward can depend on besides its tensors: its class, width, own scalar
    attributes (``eps``, a flag such as ``add_unit_offset``) and its parameters' and buffers'
    names and shapes. Modules with equal keys compute the same function of ``w``."""
    try:
        attrs = tuple(sorted((k, v) for k, v in vars(mod).items()
                             if not k.startswith("_") and isinstance(v, (bool, int, float, str, type(None)))))
        tensors = tuple((k, tuple(t.shape)) for k, t in list(mod._parameters.items()) + list(mod._buffers.items())
                        if t is not None)
        return (type(mod), n, attrs, tensors)
    except Exception:  # noqa: BLE001 - unhashable or odd attributes: probe this one alone
        return None


_IDENTITY_CACHE: dict[tuple[Any, ...], tuple[float, str] | None] = {}


def norm_identity(mod: nn.Module) -> tuple[float, str] | None:
    """``(value, form)``: the weight value that makes ``mod`` (a norm with a 1-D ``weight``) scale
    its normalized input by exactly 1, and the form found (``"x_hat * w"`` or
    ``"x_hat * (c + w)"``); None where the probe cannot tell (the forward needs other inputs, the
    output is not affine in ``w``).

    The probe runs the module's ``forward`` on a shallow copy whose parameters and buffers are
    fresh CPU tensors (so a meta-device module is probed too, and nothing of the module's is
    written or hooked); modules of equal configuration (:func:`_config_key`) share one probe."""
    w = getattr(mod, "weight", None)
    if not isinstance(w, torch.Tensor) or w.dim() != 1 or w.numel() < 2:
        return None
    n = int(w.shape[0])
    key = _config_key(mod, n)
    if key is not None and key in _IDENTITY_CACHE:
        return _IDENTITY_CACHE[key]
    out = _probe_norm(mod, n)
    if key is not None:
        try:
            if len(_IDENTITY_CACHE) > 4096:
                _IDENTITY_CACHE.clear()
            _IDENTITY_CACHE[key] = out
        except TypeError:  # an unhashable attribute value slipped through
            pass
    return out


def _probe_norm(mod: nn.Module, n: int) -> tuple[float, str] | None:
    import copy

    try:
        # On the CPU whatever the default device (a `with torch.device("meta")` block).
        with torch.device("cpu"), torch.no_grad():
            x = _probe_input(n)
            twin = copy.copy(mod)  # shares nothing that is written: its tensor dicts are new
            object.__setattr__(twin, "_parameters", {
                k: (torch.zeros(tuple(p.shape), dtype=torch.float32) if p is not None else None)
                for k, p in mod._parameters.items()})
            object.__setattr__(twin, "_buffers", {
                k: (torch.zeros(tuple(b.shape), dtype=b.dtype) if b.is_meta else b.detach().clone())
                if b is not None else None
                for k, b in mod._buffers.items()})
            outs = []
            for v in (0.0, 1.0, 2.0):
                twin._parameters["weight"] = cast(nn.Parameter, torch.full((n,), v))  # a plain tensor serves
                outs.append(twin.forward(x))  # forward itself: the module's hooks are not run
    except Exception:  # noqa: BLE001 - a forward that needs more than one tensor: no probe
        return None
    if not all(isinstance(o, torch.Tensor) and o.shape == x.shape for o in outs):
        return None
    out0, out1, out2 = (o.double() for o in outs)
    d = out1 - out0
    dd = float((d * d).sum())
    if not dd > 0 or not torch.isfinite(out0).all():
        return None
    # affine in w (out2 - out1 == out1 - out0): out = x_hat * (c + w)
    if float(((out2 - out1 - d) ** 2).sum()) > 1e-8 * dd:
        return None
    c = float((out0 * d).sum()) / dd
    if float(((out0 - c * d) ** 2).sum()) > 1e-8 * max(dd, float((out0 * out0).sum())):
        return None
    if abs(c - round(c)) < 1e-5:
        c = float(round(c))
    return (1.0 - c, "x_hat * w" if c == 0 else f"x_hat * ({c:g} + w)")


# ---- parametrizations -----------------------------------------------------------------------


def parametrization_of(model: nn.Module, mname: str, mod: nn.Module, pname: str) -> dict[str, Any] | None:
    """For a parameter ``pname`` of a ``ParametrizationList`` ``mod`` (registered at ``mname`` =
    ``<layer>.parametrizations.<tensor>``): ``{"kind", "part", "layer", "layer_name", "tensor",
    ...}``; None for any other parameter."""
    try:
        from torch.nn.utils.parametrize import ParametrizationList
    except ImportError:  # pragma: no cover - torch < 1.9
        return None
    if not isinstance(mod, ParametrizationList):
        return None
    parts = mname.split(".")
    if len(parts) < 2 or parts[-2] != "parametrizations":
        return None
    layer_name = ".".join(parts[:-2])
    try:
        layer = model.get_submodule(layer_name) if layer_name else model
    except AttributeError:
        return None
    tensor = parts[-1]
    first = mod[0] if len(mod) else None
    kinds = [type(m).__name__ for m in mod]
    out: dict[str, Any] = {"layer": layer, "layer_name": layer_name, "tensor": tensor, "chain": kinds,
                           "plist": mod}
    if len(mod) == 1 and type(first).__name__ == "_WeightNorm":
        out.update(kind="weight_norm", dim=int(getattr(first, "dim", 0)),
                   part={"original0": "g", "original1": "v"}.get(pname, pname))
    elif len(mod) == 1 and type(first).__name__ == "_SpectralNorm":
        out.update(kind="spectral_norm", part="original" if pname == "original" else pname, sn=first)
    else:
        out.update(kind="+".join(kinds) or "parametrization", part="original" if pname == "original" else pname)
    return out


# ---- bare parameters: how the owner's forward uses them ---------------------------------------

#: (role, layout, why): role "token", "scalar", "bias" or "weight"; layout "out_in"/"in_out" for weights
Usage = tuple[str, str | None, str]

_PASS_METHODS = {"expand", "expand_as", "repeat", "view", "view_as", "reshape", "reshape_as", "unsqueeze", "squeeze",
                 "to", "type_as", "flatten", "unflatten", "transpose", "permute", "contiguous", "clone", "float",
                 "half", "bfloat16", "double", "movedim", "exp", "sigmoid", "tanh", "sum", "mean", "detach",
                 "softmax", "abs", "sqrt", "neg", "narrow", "t"}
_CAT = {"cat", "concat", "concatenate", "stack", "hstack", "vstack"}
_MATMUL = {"matmul", "bmm", "mm", "baddbmm", "addmm"}


def _func_name(f: ast.expr) -> str:
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return ""


def _is_self_attr(node: ast.AST, attr: str | None = None) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self" \
        and (attr is None or node.attr == attr)


@functools.lru_cache(maxsize=256)
def _methods(cls: Any) -> tuple[tuple[str, ast.FunctionDef, dict[int, ast.AST]], ...]:
    """The owner class's own methods (up to nn.Module) as syntax trees, each with a parent map."""
    out = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        if klass in (nn.Module, object) or klass.__module__.startswith("torch.nn"):
            break
        for name, fn in vars(klass).items():
            if name in seen or not inspect.isfunction(fn) or name.startswith("__"):
                continue
            seen.add(name)
            try:
                tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
            except (OSError, TypeError, SyntaxError, IndentationError):
                continue
            fdef = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else None
            if fdef is None:
                continue
            parents = {id(c): p for p in ast.walk(fdef) for c in ast.iter_child_nodes(p)}
            out.append((f"{klass.__name__}.{name}", fdef, parents))
    return tuple(out)  # type: ignore[arg-type]


_Method = tuple[str, ast.AST, dict[int, ast.AST]]  # (Class.method, its syntax tree, parent of each node)


class _Reader:
    """Follows one parameter's value through its owner's methods until something uses it."""

    def __init__(self, owner: nn.Module, ndim: int, methods: tuple[_Method, ...]) -> None:
        self.owner, self.ndim, self.methods = owner, ndim, methods
        self.returned: set[str] = set()  # helper methods already followed into their callers

    def classify(self, node: ast.AST, m: _Method, depth: int = 0) -> Usage | None:
        """What the value ``node`` (derived from the parameter) in method ``m`` is used for."""
        where, fdef, parents = m
        if depth > 16:
            return None
        parent = parents.get(id(node))
        if parent is None:
            return None
        nd = self.ndim
        if isinstance(parent, ast.Attribute) and parent.value is node:
            call = parents.get(id(parent))
            if isinstance(call, ast.Call) and call.func is parent:
                meth = parent.attr
                if meth in ("mul", "mul_", "div", "div_"):
                    return ("scalar", None, f"multiplies a branch elementwise ({where}: .{meth})")
                if meth in ("add", "add_") and nd >= 2:
                    return ("token", None, f"added to the activations ({where}: .{meth})")
                if meth in _MATMUL:
                    return ("token", None, f"the learned left operand of a matrix product ({where}: .{meth})")
                r = self.classify(call, m, depth + 1)  # any other method of the tensor: follow its result
                if meth in ("expand", "expand_as", "repeat", "tile") and r is not None and r[0] == "scalar":
                    # replicated per sample, then mixed into the activations (Dinov2's mask_token:
                    # x * (1 - mask) + token * mask): a token, not a layer scale
                    return ("token", None, f"expanded over the batch and mixed into the sequence ({where}: "
                                           f".{meth}, then {r[2].split(' (')[0]})")
                return r
            return None
        if isinstance(parent, (ast.Subscript, ast.Starred, ast.UnaryOp)) and getattr(parent, "value", None) is node \
                or isinstance(parent, ast.UnaryOp):
            return self.classify(parent, m, depth + 1)
        if isinstance(parent, (ast.List, ast.Tuple)):
            return self._in_list(parent, m, depth)
        if isinstance(parent, ast.keyword):
            call = parents.get(id(parent))
            return self._call_use(call, node, parent.arg, m, depth) if isinstance(call, ast.Call) else None
        if isinstance(parent, ast.Call):
            return None if node is parent.func else self._call_use(parent, node, None, m, depth)
        if isinstance(parent, ast.BinOp):
            other = parent.right if parent.left is node else parent.left
            if isinstance(parent.op, ast.Mult) or (isinstance(parent.op, ast.Div) and parent.right is node):
                return ("scalar", None, f"multiplies a branch elementwise ({where}: *)")
            if isinstance(parent.op, (ast.Add, ast.Sub)):
                if isinstance(other, ast.Constant) or _is_self_attr(other):
                    return self.classify(parent, m, depth + 1)
                if nd >= 2:
                    return ("token", None, f"added to the activations ({where}: +)")
                return ("bias", None, f"added to an activation ({where}: +)")
            if isinstance(parent.op, ast.MatMult):
                if parent.right is node:
                    return ("weight", "in_out", f"the weight of a matrix product x @ W ({where})")
                return ("token", None, f"the learned left operand of a matrix product ({where}: @)")
            return self.classify(parent, m, depth + 1)
        if isinstance(parent, ast.AugAssign) and parent.value is node:
            if isinstance(parent.op, ast.Mult):
                return ("scalar", None, f"multiplies a branch elementwise ({where}: *=)")
            if isinstance(parent.op, ast.Add):
                return ("token", None, f"added to the activations ({where}: +=)") if nd >= 2 else \
                    ("bias", None, f"added to an activation ({where}: +=)")
            return None
        if isinstance(parent, (ast.Assign, ast.AnnAssign)) and parent.value is node:
            targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Subscript) and not _is_self_attr(targets[0].value):
                return ("token", None, f"written into the sequence at selected positions (a mask token, {where})")
            if len(targets) != 1 or not isinstance(targets[0], ast.Name):
                return None
            return self._name_uses(targets[0].id, parent, m, depth)
        if isinstance(parent, ast.Return) and fdef is not None:
            return self._returned(m, depth)
        return None

    def _name_uses(self, var: str, after: ast.AST, m: _Method, depth: int) -> Usage | None:
        line = getattr(after, "lineno", 0)
        for n in ast.walk(m[1]):
            if isinstance(n, ast.Name) and n.id == var and isinstance(n.ctx, ast.Load) \
                    and getattr(n, "lineno", 0) >= line:
                r = self.classify(n, m, depth + 1)
                if r is not None:
                    return r
        return None

    def _returned(self, m: _Method, depth: int) -> Usage | None:
        """A helper method returns the value: follow each ``self.<helper>(...)`` call."""
        name = m[0].rsplit(".", 1)[-1]
        if name in self.returned:
            return None
        self.returned.add(name)
        for other in self.methods:
            for n in ast.walk(other[1]):
                if isinstance(n, ast.Call) and _is_self_attr(n.func, name):
                    r = self.classify(n, other, depth + 1)
                    if r is not None:
                        return r
        return None

    def _in_list(self, lst: ast.AST, m: _Method, depth: int) -> Usage | None:
        """The value is an element of a list display: concatenated with the sequence when the list
        reaches a ``torch.cat`` with activations; a concatenation of parameters only (EVA's
        ``cat((q_bias, k_bias, v_bias))``) is followed as one value."""
        where, _, parents = m
        up: ast.AST = lst
        while isinstance(parents.get(id(up)), (ast.BinOp, ast.List, ast.Tuple, ast.Starred, ast.IfExp)):
            up = parents[id(up)]
        par = parents.get(id(up))
        if isinstance(par, ast.Call) and _func_name(par.func) in _CAT and up in par.args:
            elts = getattr(lst, "elts", [])
            if lst is up and elts and all(_is_self_attr(e) for e in elts):
                return self.classify(par, m, depth + 1)
            return ("token", None, f"concatenated with the sequence ({where}: {_func_name(par.func)})")
        if isinstance(par, (ast.Assign, ast.AnnAssign)) and par.value is up:
            targets = par.targets if isinstance(par, ast.Assign) else [par.target]
            if len(targets) == 1 and isinstance(targets[0], ast.Name):
                return self._list_use(targets[0].id, par, m)
        return None

    def _list_use(self, var: str, after: ast.AST, m: _Method) -> Usage | None:
        """How the list ``var`` (holding the value) is used: through list arithmetic and
        comprehensions (``[t.expand(...) for t in toks] + [x]``) into a ``torch.cat``."""
        where, fdef, parents = m
        line = getattr(after, "lineno", 0)
        for n in ast.walk(fdef):
            if not (isinstance(n, ast.Name) and n.id == var and isinstance(n.ctx, ast.Load)
                    and getattr(n, "lineno", 0) >= line):
                continue
            up: ast.AST = n
            while isinstance(parents.get(id(up)), (ast.BinOp, ast.List, ast.Tuple, ast.Starred, ast.comprehension,
                                                   ast.ListComp, ast.GeneratorExp)):
                up = parents[id(up)]
            par = parents.get(id(up))
            if isinstance(par, ast.Call) and _func_name(par.func) in _CAT and up in par.args:
                return ("token", None, f"concatenated with the sequence ({where}: {_func_name(par.func)})")
        return None

    def _call_use(self, call: ast.Call, node: ast.AST, kw: str | None, m: _Method, depth: int) -> Usage | None:
        where = m[0]
        f = _func_name(call.func)
        pos = next((k for k, a in enumerate(call.args) if a is node), None)
        if f == "linear":
            if pos == 1 or kw == "weight":
                return ("weight", "out_in", f"the weight of F.linear(x, W): stored (out, in) ({where})")
            if pos == 2 or kw == "bias":
                return ("bias", None, f"the bias of F.linear ({where})")
            if pos == 0 or kw == "input":
                return ("token", None, f"fed as the input of a linear map ({where})")
            return None
        if f in _MATMUL:
            if pos == 1 or kw in ("mat2", "other"):
                return ("weight", "in_out", f"the weight of a matrix product {f}(x, W) ({where})")
            return ("token", None, f"the learned left operand of {f} ({where})")
        if f == "scaled_dot_product_attention":
            if pos == 0 or kw == "query":
                return ("token", None, f"used as attention queries ({where}: scaled_dot_product_attention)")
            return None
        if f == "mul":
            return ("scalar", None, f"multiplies a branch elementwise ({where}: torch.mul)")
        if f == "add" and self.ndim >= 2:
            return ("token", None, f"added to the activations ({where}: torch.add)")
        if _is_self_attr(call.func):
            sub = getattr(self.owner, call.func.attr, None)  # type: ignore[attr-defined]
            if isinstance(sub, nn.Module):
                name = call.func.attr  # type: ignore[attr-defined]
                attn = isinstance(sub, nn.MultiheadAttention) or "attention" in type(sub).__name__.lower() \
                    or "attn" in name.lower()
                if attn and (pos == 0 or kw in ("query", "q", "hidden_states")):
                    return ("token", None, f"used as attention queries (the query input of self.{name}, {where})")
                if pos == 0 or kw in ("input", "x", "hidden_states"):
                    return ("token", None, f"fed as a learned input to self.{name} ({where})")
            return None  # a method of the owner: its use is read where that method reads the value
        if f in ("append", "extend", "insert") and isinstance(call.func, ast.Attribute) \
                and isinstance(call.func.value, ast.Name):
            # collected into a list (timm: to_cat.append(self.cls_token.expand(...))): how is the list used?
            return self._list_use(call.func.value.id, call, m)
        if isinstance(call.func, ast.Name):  # a Python function of the owner's module: read it too
            r = self._into_function(call.func.id, pos, kw, depth)
            if r is not None:
                return r
        # a function of the tensor itself (torch.exp, torch.sum, F.normalize, ...: the tensor is its
        # first argument): follow its result; as another argument of an unknown function, no conclusion
        if pos == 0:
            return self.classify(call, m, depth + 1)
        return None


    def _into_function(self, fname: str, pos: int | None, kw: str | None, depth: int) -> Usage | None:
        """The value passed to ``fname`` (a function defined in the owner's module, e.g. an
        attention helper ``_attend(qkv, heads, bias)``): how that function uses its argument."""
        import sys

        fn = getattr(sys.modules.get(type(self.owner).__module__), fname, None)
        tree = _function_tree(fn) if inspect.isfunction(fn) else None
        if tree is None:
            return None
        fdef, parents = tree
        formals = [a.arg for a in fdef.args.posonlyargs + fdef.args.args]  # type: ignore[attr-defined]
        formal = formals[pos] if pos is not None and pos < len(formals) else kw
        if formal is None:
            return None
        return self._name_uses(formal, fdef, (getattr(fn, "__qualname__", fname), fdef, parents), depth + 1)


@functools.lru_cache(maxsize=256)
def _function_tree(fn: Any) -> tuple[ast.AST, dict[int, ast.AST]] | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    fdef = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if fdef is None:
        return None
    return fdef, {id(c): p for p in ast.walk(fdef) for c in ast.iter_child_nodes(p)}


def param_usage(owner: nn.Module, pname: str, ndim: int) -> Usage | None:
    """How ``owner``'s methods use its own parameter ``pname`` (see the module docstring), or
    None when its source cannot be read or shows no conclusive use."""
    if "." in pname:
        return None
    try:
        methods = _methods(cast(Hashable, type(owner)))
    except Exception:  # noqa: BLE001 - a class whose source cannot be read: no structural evidence
        return None
    # forward first: its use decides; helpers after it
    methods = tuple(sorted(methods, key=lambda m: not m[0].endswith(".forward")))
    reader = _Reader(owner, ndim, methods)
    for m in methods:
        for n in ast.walk(m[1]):
            if _is_self_attr(n, pname) and isinstance(n.ctx, ast.Load):  # type: ignore[attr-defined]
                r = reader.classify(n, m)
                if r is not None:
                    return r
    return None
