"""Start a large network from a small trained one: Net2Net (Chen, Goodfellow, Shlens, ICLR 2016)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..generator import SeedLike
from ..manifest import Entry, LeftAlone, Manifest
from ._common import dtype_name, framework

__all__ = ["grow"]

# Activations with phi(phi(x)) = phi(x): a new identity layer followed by one of them, placed
# after the same activation, computes the identity (Net2DeeperNet's condition).
_IDEMPOTENT = {"ReLU", "ReLU6", "Hardtanh", "Identity"}
_PASS = {"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout"}
_POOL = {"GlobalAvgPool", "AdaptiveAvgPool2d", "AdaptiveAvgPool1d", "AvgPool2d", "MaxPool2d", "AdaptiveMaxPool2d"}


def _kind(m: Any, fw: str) -> str:
    name = type(m).__name__
    if fw == "nn":
        from .. import nn

        if isinstance(m, nn.Linear):
            return "linear"
        if isinstance(m, nn.Conv2d):
            return "conv"
        if isinstance(m, nn.BatchNorm):
            return "bn"
        if isinstance(m, nn.Activation):
            return "act"
    else:
        from torch import nn as tnn

        if isinstance(m, tnn.Linear):
            return "linear"
        if isinstance(m, (tnn.Conv1d, tnn.Conv2d, tnn.Conv3d)):
            return "conv"
        if isinstance(m, tnn.modules.batchnorm._BatchNorm):
            return "bn"
        if type(m).__module__.startswith("torch.nn.modules.activation"):
            return "act"
    if name == "Flatten":
        return "flatten"
    if name in _POOL:
        return "pool"
    if name in _PASS:
        return "pass"
    return "other"


def _get(t: Any) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t.astype(np.float64)
    return t.detach().cpu().double().numpy()


def _put(t: Any, v: np.ndarray) -> None:
    if isinstance(t, np.ndarray):
        t[...] = v
    else:
        import torch

        with torch.no_grad():
            t.copy_(torch.from_numpy(np.ascontiguousarray(v)).to(t.dtype))


def _out_in(m: Any) -> tuple[int, int]:
    w = m.weight
    return int(w.shape[0]), int(w.shape[1])


def _layers(model: Any, fw: str, what: str) -> list[tuple[str, Any]]:
    if fw == "nn":
        from .. import nn

        ok = isinstance(model, nn.Sequential)
        items = [(str(i), m) for i, m in enumerate(model)] if ok else []
    else:
        from torch import nn as tnn

        ok = isinstance(model, tnn.Sequential)
        items = list(model.named_children()) if ok else []
    if not ok:
        raise TypeError(f"grow works on Sequential models (initlab.nn.Sequential or torch.nn.Sequential); "
                        f"{what} is {type(model).__name__}")
    bad = [f"{n} ({type(m).__name__})" for n, m in items if _kind(m, fw) == "other"]
    if bad:
        raise ValueError(f"grow supports Linear, Conv, BatchNorm, elementwise activations, Flatten, pooling and "
                         f"dropout layers; {what} has: {', '.join(bad)}")
    return items


def grow(proxy: Any, target: Any, *, noise: float = 0.0, seed: SeedLike = None) -> Manifest:
    """Initialize ``target`` from a smaller trained ``proxy`` so that it computes the same function.

    Net2Net (Chen, Goodfellow, Shlens 2016), for MLP and convolutional stacks (``Sequential``
    models of ``initlab.nn`` or torch):

    * **Net2WiderNet** - a layer with more units than the proxy's keeps the proxy's units and
      adds copies of randomly chosen ones (seeded): ``W'[j] = W[g(j)]``, ``b'[j] = b[g(j)]``; the
      next layer divides each incoming weight by the number of copies of its source unit,
      ``W'_next[:, j] = W_next[:, g(j)] / |{k : g(k) = g(j)}|``. BatchNorm channels are copied
      with their running statistics; ``Flatten`` maps channels to their spatial features.
    * **Net2DeeperNet** - a weight layer of the target with no counterpart in the proxy (square:
      ``in == out``; a convolution with an odd kernel, stride 1, ``padding = k // 2``) is set to
      the identity (``eye`` / Dirac, bias 0). It may sit anywhere the identity keeps the
      function: after a layer and before its activation, between an activation and the pooling
      / flattening that follow it (a 3x3 conv before the global pooling), before the output; an
      activation right after it must be idempotent (ReLU, ReLU6, Hardtanh) and the same as the one
      before it (``phi(phi(x)) = phi(x)``, also across pooling and flattening).

    With ``noise = 0`` the target computes the proxy's function exactly (to rounding). With
    ``noise > 0`` each weight written gets ``noise * std(proxy weight) * N(0, 1)`` added (seeded,
    one stream per parameter name) to break the symmetry between copies.

    Parameters
    ----------
    proxy, target : Sequential
        Same framework; ``target`` is at least as wide at every matched layer, and its input and
        output sizes equal the proxy's.
    noise : float, default 0.0
    seed : int, initlab.Generator or None
        Chooses the replicated units and the noise.

    Returns
    -------
    Manifest
        Each target parameter with its source in the proxy (or ``identity`` for new layers).

    Raises
    ------
    ValueError
        Layers that cannot be matched (named), narrower target layers, mismatched kernels,
        non-idempotent activations after a new layer, different output widths.
    """
    fw = framework(proxy)
    if framework(target) != fw:
        raise TypeError(f"proxy and target must be of the same framework, got {type(proxy).__name__} and {type(target).__name__}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    P, T = _layers(proxy, fw, "proxy"), _layers(target, fw, "target")
    from ..generator import named_seeds

    seed_at = named_seeds(seed)
    rng = np.random.default_rng(_stream_int(seed_at("grow.choice")))
    writes: list[tuple[Any, np.ndarray, str, str, str, str, dict]] = []  # (tensor, values, name, module, role, rule, params)
    p_pre, p_segs = _segments(P, fw)
    t_pre, t_segs = _segments(T, fw)
    matched = _align(p_segs, t_segs, fw, lambda combo: _streams(p_pre, p_segs, t_pre, t_segs, combo, fw)[1])
    g: np.ndarray | None = None  # target unit -> proxy unit on the current feature axis (None: same width, identity)
    flat = False  # a Flatten passed since the last weight layer
    groups, _ = _streams(p_pre, p_segs, t_pre, t_segs, matched, fw)
    last_act = None
    for p_layer, t_layer, p_follow, t_follow, new_layers in groups:
        if t_layer is not None:
            (pname, pm), (tname, tm) = p_layer, t_layer
            g, flat = _widen(pm, tm, pname, tname, g, flat, rng, fw, _kind(tm, fw), writes)
        for tname, tm in new_layers:
            # an identity layer in the (widened) feature space: the unit mapping g and a pending
            # Flatten carry through it unchanged
            _deepen(tm, tname, _kind(tm, fw), fw, writes)
        g, flat, last_act = _pair_followers(p_follow, t_follow, g, flat, last_act, fw, writes)
    if g is not None and not np.array_equal(g, np.arange(len(g))):
        raise ValueError(f"the target's output width ({len(g)}) differs from the proxy's ({int(g.max()) + 1}); "
                         f"the last layers must have the same number of outputs")
    # write (after every check passed)
    entries = []
    for t, v, name, mod, role, rule, params in writes:
        if noise > 0 and role == "weight" and params.get("source"):
            std = float(params.pop("source_std"))
            eps = np.empty(v.shape)
            from .. import init

            init.normal_(eps, 0.0, 1.0, seed=seed_at(name))
            v = v + noise * std * eps
            params["noise_std"] = noise * std
        params.pop("source_std", None)
        _put(t, v)
        entries.append(Entry(name=name, shape=tuple(int(s) for s in v.shape), dtype=dtype_name(t), module=mod,
                             role=role, rule=f"net2net: {rule}",
                             init=params.pop("init", "copy" if params.get("source") else "constant"), params=params))
    written = {e.name for e in entries}
    left = [LeftAlone(n, "parameter", "not part of a Net2Net layer") for n, _ in target.named_parameters() if n not in written]
    return Manifest(entries, left, recipe="grow", seed=seed)


def _segments(items: list, fw: str) -> tuple[list, list]:
    """Modules before the first weight layer, then (weight layer, the modules after it) pairs."""
    pre: list = []
    segs: list = []
    for name, m in items:
        if _kind(m, fw) in ("linear", "conv"):
            segs.append(((name, m), []))
        elif segs:
            segs[-1][1].append((name, m))
        else:
            pre.append((name, m))
    return pre, segs


def _fits(pm: Any, tm: Any, fw: str) -> bool:
    if _kind(pm, fw) != _kind(tm, fw):
        return False
    (po, _), (to, _) = _out_in(pm), _out_in(tm)
    return to >= po and tuple(pm.weight.shape[2:]) == tuple(tm.weight.shape[2:])


def _collapse(mods: list, fw: str) -> list:
    """The non-pass modules with repeated idempotent activations removed: ``phi, phi`` and
    ``phi, pool/flatten, phi`` compute ``phi`` (phi is the identity on its own range, a convex set
    that average/max pooling and flattening keep)."""
    out: list = []
    for n, m in mods:
        k = _kind(m, fw)
        if k == "pass":
            continue
        if k == "act" and type(m).__name__ in _IDEMPOTENT:
            prev = next((pm for _, pm in reversed(out) if _kind(pm, fw) not in ("pool", "flatten")), None)
            if prev is not None and type(prev).__name__ == type(m).__name__:
                continue
        out.append((n, m))
    return out


def _streams(p_pre: list, p_segs: list, t_pre: list, t_segs: list, combo: Any, fw: str) -> tuple[list, str | None]:
    """Group the target by the alignment ``combo``: each matched weight layer (or the start) with
    the new identity layers that follow it before the next matched one, and the non-weight modules
    of that stretch with the identity layers taken out (where a new layer sits between an
    activation and pooling, the pooling moves past it). Returns ``([(proxy layer, target layer,
    proxy followers, target followers, new layers)], problem)``: layers are None for the start;
    ``problem`` names the first stretch whose modules cannot compute the proxy's (else None)."""
    combo = set(combo)
    groups = []
    k = 0
    cur: list = [None, None, list(p_pre), list(t_pre), []]
    for j, ((tname, tm), t_follow) in enumerate(t_segs):
        if j in combo:
            groups.append(cur)
            pl, p_follow = p_segs[k]
            k += 1
            cur = [pl, (tname, tm), list(p_follow), list(t_follow), []]
        else:
            cur[4].append((tname, tm))
            cur[3].extend(t_follow)
    groups.append(cur)
    out, problem = [], None
    for pl, tl, pf, tf, new in groups:
        pc, tc = _collapse(pf, fw), _collapse(tf, fw)
        if problem is None and [type(m).__name__ for _, m in pc] != [type(m).__name__ for _, m in tc]:
            problem = (f"target layers {[n for n, _ in tc]} ({[type(m).__name__ for _, m in tc]}) do not match proxy "
                       f"layers {[n for n, _ in pc]} ({[type(m).__name__ for _, m in pc]})")
            if new:
                problem += (f" once the new identity layers {[n for n, _ in new]} are taken out: after a new layer "
                            "Net2DeeperNet allows only an idempotent activation (ReLU, ReLU6, Hardtanh) equal to the "
                            "one before it; pooling and flattening may follow")
        out.append((pl, tl, pc, tc, new))
    return out, problem


def _align(p_segs: list, t_segs: list, fw: str, streams_ok: Any = None) -> set[int]:
    """Which target weight layers take a proxy layer (in order); the others are new identity layers.

    Among the feasible choices the new layers sit as late as possible; the last layers always
    match; with ``streams_ok`` the alignment must also leave non-weight modules that compute the
    proxy's (see :func:`_streams`).
    """
    import itertools

    n_p, n_t = len(p_segs), len(t_segs)
    if n_t < n_p or n_p == 0:
        raise ValueError(f"the target must have at least as many weight layers as the proxy (>= 1); got {n_t} and {n_p}")
    count = 0
    first_problem: str | None = None
    for combo in itertools.combinations(range(n_t), n_p):  # lexicographic: earliest matches first
        count += 1
        if count > 200_000:
            break
        if combo[-1] != n_t - 1:
            continue
        ok = all(_fits(p_segs[k][0][1], t_segs[j][0][1], fw) for k, j in enumerate(combo))
        ok = ok and all(_out_in(t_segs[j][0][1])[0] == _out_in(t_segs[j][0][1])[1] and _kind(t_segs[j][0][1], fw) in ("linear", "conv")
                        for j in range(n_t) if j not in combo)
        if ok and streams_ok is not None:
            problem = streams_ok(combo)
            if problem is not None:
                first_problem = first_problem or problem
                continue
        if ok:
            return set(combo)
    if first_problem is not None:  # the weight layers line up, what sits between them does not
        raise ValueError(first_problem)
    raise ValueError("no alignment of the target's weight layers with the proxy's: each proxy layer needs a target "
                     "layer of the same kind, kernel and at least as many outputs, in order, and every extra target "
                     "layer must be square (in == out)")


def _pair_followers(p_mods: list, t_mods: list, g: np.ndarray | None, flat: bool, last_act: str | None, fw: str,
                    writes: list) -> tuple[np.ndarray | None, bool, str | None]:
    """Pair the non-weight modules after matched weight layers (same types, in order)."""
    pp = [(n, m) for n, m in p_mods if _kind(m, fw) != "pass"]
    tt = [(n, m) for n, m in t_mods if _kind(m, fw) != "pass"]
    if [type(m).__name__ for _, m in pp] != [type(m).__name__ for _, m in tt]:
        raise ValueError(f"target layers {[n for n, _ in tt]} ({[type(m).__name__ for _, m in tt]}) do not match proxy "
                         f"layers {[n for n, _ in pp]} ({[type(m).__name__ for _, m in pp]})")
    for (pn, pm), (tn, tm) in zip(pp, tt):
        k = _kind(tm, fw)
        if k == "bn":
            _copy_bn(pm, tm, pn, tn, g, writes)
        elif k == "flatten":
            flat = g is not None
        elif k == "act":
            last_act = type(tm).__name__
        elif k == "other":  # pragma: no cover - rejected by _layers
            raise ValueError(tn)
    return g, flat, last_act


def _stream_int(g: Any) -> int:
    from .. import init

    a = np.empty(2)
    init.uniform_(a, 0.0, 1.0, seed=g)
    return int(a[0] * (1 << 52)) ^ int(a[1] * (1 << 20))


def _widen(pm: Any, tm: Any, pname: str, tname: str, g: np.ndarray | None, pending_flatten: bool,
           rng: np.random.Generator, fw: str, kind: str, writes: list) -> tuple[np.ndarray | None, bool]:
    W = _get(pm.weight)
    po, pi = _out_in(pm)
    to, ti = _out_in(tm)
    if kind == "conv":
        bad = []
        for attr in ("kernel_size", "stride", "padding", "dilation"):
            if getattr(pm, attr, None) != getattr(tm, attr, None):
                bad.append(f"{attr} {getattr(pm, attr, None)} vs {getattr(tm, attr, None)}")
        if getattr(pm, "groups", 1) != 1 or getattr(tm, "groups", 1) != 1:
            bad.append("groups != 1")
        if bad:
            raise ValueError(f"target conv {tname} does not match proxy conv {pname}: {', '.join(bad)}")
    # input side
    if g is None:
        if ti != pi:
            raise ValueError(f"target layer {tname} takes {ti} inputs where proxy layer {pname} takes {pi}")
        gin = np.arange(pi)
    elif pending_flatten:
        c = len(g)
        if ti % c or pi % (int(g.max()) + 1):
            raise ValueError(f"cannot map {c} flattened channels onto {ti} inputs of {tname}")
        s = ti // c
        if pi != (int(g.max()) + 1) * s:
            raise ValueError(f"proxy layer {pname} takes {pi} inputs, expected {(int(g.max()) + 1) * s}")
        gin = (g[:, None] * s + np.arange(s)[None, :]).reshape(-1)
    else:
        if ti != len(g):
            raise ValueError(f"target layer {tname} takes {ti} inputs but the previous target layer gives {len(g)}")
        gin = g
    counts = np.bincount(gin, minlength=pi).astype(np.float64)
    # output side
    if to < po:
        raise ValueError(f"target layer {tname} is narrower than proxy layer {pname} ({to} < {po} outputs)")
    gout = np.concatenate([np.arange(po), rng.integers(0, po, size=to - po)]) if to > po else np.arange(po)
    Wt = W[gout][:, gin] / counts[gin].reshape((1, -1) + (1,) * (W.ndim - 2))
    params = {"source": f"{pname}.weight", "out": f"{po}->{to}", "in": f"{pi}->{ti}", "source_std": float(W.std())}
    writes.append((tm.weight, Wt, f"{tname}.weight", type(tm).__name__, "weight",
                   "widened copy (outputs replicated, inputs divided by their copy count)", params))
    if getattr(tm, "bias", None) is not None:
        b = _get(pm.bias)[gout] if getattr(pm, "bias", None) is not None else np.zeros(to)
        writes.append((tm.bias, b, f"{tname}.bias", type(tm).__name__, "bias", "copied for each replicated unit",
                       {"source": f"{pname}.bias" if getattr(pm, 'bias', None) is not None else ""}))
    return (gout if to > po else None), False


def _copy_bn(pm: Any, tm: Any, pname: str, tname: str, g: np.ndarray | None, writes: list) -> None:
    n_p, n_t = int(_get(pm.running_mean).shape[0]), int(_get(tm.running_mean).shape[0])
    idx = np.arange(n_p) if g is None else g
    if len(idx) != n_t:
        raise ValueError(f"target BatchNorm {tname} has {n_t} channels, expected {len(idx)}")
    for attr, role in (("weight", "norm_weight"), ("bias", "norm_bias")):
        if getattr(tm, attr, None) is not None and getattr(pm, attr, None) is not None:
            writes.append((getattr(tm, attr), _get(getattr(pm, attr))[idx], f"{tname}.{attr}", type(tm).__name__, role,
                           "channels copied", {"source": f"{pname}.{attr}"}))
    # running statistics are buffers: copied directly (not listed as parameters)
    for attr in ("running_mean", "running_var"):
        _put(getattr(tm, attr), _get(getattr(pm, attr))[idx])
    tm.eps = pm.eps


def _deepen(tm: Any, tname: str, kind: str, fw: str, writes: list) -> None:
    to, ti = _out_in(tm)
    if to != ti:
        raise ValueError(f"new target layer {tname} has no proxy counterpart and is not square ({ti} -> {to}): "
                         f"Net2DeeperNet inserts identity layers only")
    W = np.zeros(tuple(int(s) for s in tm.weight.shape))
    if kind == "linear":
        W[...] = np.eye(to)
    else:
        ks = tuple(int(k) for k in W.shape[2:])
        pad: Any = getattr(tm, "padding", None)
        pad = (pad,) * len(ks) if isinstance(pad, int) else tuple(pad)
        stride = getattr(tm, "stride", 1)
        stride = (stride,) * len(ks) if isinstance(stride, int) else tuple(stride)
        if any(k % 2 == 0 for k in ks) or pad != tuple(k // 2 for k in ks) or any(s != 1 for s in stride) \
                or getattr(tm, "groups", 1) != 1:
            raise ValueError(f"new conv {tname} must have odd kernels, stride 1, padding k//2 and groups 1 to be an identity")
        centre = tuple(k // 2 for k in ks)
        for c in range(to):
            W[(c, c) + centre] = 1.0
    writes.append((tm.weight, W, f"{tname}.weight", type(tm).__name__, "weight", "new layer = identity (deepened)",
                   {"init": "eye" if kind == "linear" else "dirac"}))
    if getattr(tm, "bias", None) is not None:
        writes.append((tm.bias, np.zeros(to), f"{tname}.bias", type(tm).__name__, "bias", "new layer bias = 0",
                       {"value": 0.0}))
