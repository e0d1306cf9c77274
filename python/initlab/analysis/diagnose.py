"""What :meth:`initlab.analysis.Trace.diagnose` finds in a trace, and which layers it does not judge.

Framework-neutral: it reads :class:`~initlab.analysis.LayerTrace` records only. The torch front end
(:func:`initlab.torch.analyze`) adds what it knows from the module tree (structural families,
layers whose scale is set by something other than depth: attention queries/keys, side branches,
layer scales, position tables); the figures themselves tell the rest (a weight that is exactly
zero, a gradient that is exactly zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .trace import LayerTrace, Trace

__all__ = ["Finding", "Diagnosis", "diagnose", "not_judged", "families", "DIRECTIONS", "CHAIN"]

#: The two depth trends a layer can be left out of.
DIRECTIONS = ("forward", "gradient")


@dataclass
class Finding:
    """One problem :meth:`Trace.diagnose` found.

    Attributes
    ----------
    kind : str
        ``"vanishing_forward"``, ``"exploding_forward"``, ``"vanishing_gradient"``,
        ``"exploding_gradient"``, ``"vanishing_layer"``, ``"exploding_layer"``, ``"dead_relu"``,
        ``"saturation"`` or ``"nonfinite"``.
    layer : str
        Qualified name of the layer where it starts (or is worst).
    index : int
        That layer's depth.
    message : str
        One sentence for a person (also what ``str(finding)`` gives).
    evidence : dict
        The figures behind it.
    """

    kind: str
    layer: str
    index: int
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


class Diagnosis(list):
    """What :meth:`Trace.diagnose` returns: a list of :class:`Finding` (empty when nothing is
    wrong) that prints as one sentence per finding.

    Attributes
    ----------
    layers : int
        How many layers were examined.
    not_judged : dict
        Layers left out of the depth trends, by qualified name, with the reason (``"side branch
        (SE gate)"``, ``"layer scale 1e-06"``, ``"zero-initialized head"``, ...); such a layer is
        still checked on its own (its gain, non-finite values). The printed trace shows the same
        reasons in its ``not judged`` column.
    """

    def __init__(self, findings: Any = (), layers: int = 0, not_judged: dict[str, str] | None = None) -> None:
        super().__init__(findings)
        self.layers = layers
        self.not_judged: dict[str, str] = dict(not_judged or {})

    def __str__(self) -> str:
        if not self:
            return f"no problem found in {self.layers} layer(s)"
        head = f"{len(self)} problem(s) found in {self.layers} layer(s):"
        return "\n".join([head] + [f"- {f.message}" for f in self])

    def __repr__(self) -> str:
        return f"Diagnosis({[f'{f.kind} at {f.layer}' for f in self]!r})"


def _fmt(v: float) -> str:
    return f"{v:.3g}"


# ---- which layers the depth trends leave out, and why -----------------------------------------


def not_judged(trace: Trace, layer_gain: float = 1e-4) -> list[dict[str, str]]:
    """Per layer (in trace order), the depth trends it is left out of and why:
    ``{"forward": reason, "gradient": reason}`` (either key may be missing; an empty dict for a
    layer that is judged).

    The reasons recorded by the front end (:attr:`LayerTrace.not_judged`: attention
    queries/keys, side branches, layer scales, position tables, attention outputs) come first;
    then what the figures show: a weight that is exactly zero (zero-initialized on purpose: its
    output is its bias, and it sends no gradient back), a gradient that is exactly zero (nothing
    flows back to the layer: a zero-initialized layer after it). And under the key ``"gain"``:
    an output layer (the model's output is its output) whose gain is below ``layer_gain`` while
    every other layer's is not, a head scaled down on purpose (timm's ``head_init_scale`` 1e-3 in
    EVA/BEiT; the same convention as a zero-initialized head): the broken-layer check leaves it.
    """
    out: list[dict[str, str]] = []
    last = len(trace.layers) - 1
    small = [i for i, lay in enumerate(trace.layers) if lay.gain is not None and lay.gain < layer_gain
             and not (lay.weight is not None and lay.weight["ms"] == 0.0)]
    for i, lay in enumerate(trace.layers):
        r: dict[str, str] = dict(lay.not_judged or {})
        if lay.weight is not None and lay.weight["ms"] == 0.0:
            why = "zero-initialized head" if i == last else "zero-initialized (weight all zero)"
            for d in DIRECTIONS:
                r.setdefault(d, why)
        g = lay.grad_input or lay.grad_pre
        if g is not None and g["ms"] == 0.0 and g["nonfinite_count"] == 0:
            r.setdefault("gradient", "no gradient reaches it (a zero-initialized layer after it)")
        if lay.pre["ms"] == 0.0 and lay.pre["nonfinite_count"] == 0:
            r.setdefault("forward", "output exactly zero")
        if small == [i] == [last] and lay.post["count"] == trace.output["count"] and lay.gain is not None:
            r["gain"] = f"small head (gain {lay.gain:.2g}, scaled down on purpose as some recipes do)"
        out.append(r)
    return out


def describe(reasons: dict[str, str]) -> str:
    """One short phrase for a layer's reasons (``"layer scale 1e-06"``,
    ``"gradient: attention query/key"``)."""
    if not reasons:
        return ""
    trends = {d: reasons[d] for d in DIRECTIONS if d in reasons}
    vals = list(dict.fromkeys(trends.values()))
    parts = [vals[0]] if len(trends) == len(DIRECTIONS) and len(vals) == 1 else [f"{d}: {r}" for d, r in trends.items()]
    parts += [r for k, r in reasons.items() if k not in DIRECTIONS]
    return "; ".join(parts)


# ---- diagnosis --------------------------------------------------------------------------------


def diagnose(trace: Trace, *, ratio: float, growth: float, dead: float, saturated: float, min_batch_dead: int,
             layer_gain: float) -> Diagnosis:
    """The work of :meth:`Trace.diagnose` (see there for the parameters)."""
    out: list[Finding] = []
    lays = list(trace.layers)
    for lay in lays:
        for what in ("pre", "post", "grad_pre", "grad_post", "weight_grad"):
            d = getattr(lay, what)
            if d and d["nonfinite_count"] > 0:
                out.append(Finding("nonfinite", lay.name, lay.index,
                                   f"Layer {lay.index} ({lay.name}, {lay.type}) has {d['nonfinite_count']} non-finite "
                                   f"values in {what}.",
                                   {"where": what, "nonfinite_count": d["nonfinite_count"], "count": d["count"]}))
                break
    reasons = not_judged(trace, layer_gain)
    broken = _broken_layers([lay for lay, r in zip(lays, reasons) if "gain" not in r], layer_gain)
    if len(lays) >= 2:
        # A forward trend that ends after a broken layer is that layer's doing, and so is any
        # gradient trend: a broken layer changes the gradient before it, and after it too (the
        # scale it passes on sets the backward factor of every norm downstream): one finding
        # per cause.
        at = [lay.index for f in broken for lay in lays if lay.name in f.evidence["layers"]]
        out += [f for f in _depth_trends(lays, reasons, ratio, growth)
                if not any((b <= max(f.evidence["indices"])) if f.kind.endswith("forward") else True for b in at)]
    out += broken
    for kind, attr, limit, what in (("dead_relu", "dead_fraction", dead, "of ReLU units zero for every sample"),
                                    ("saturation", "saturated_fraction", saturated, "of outputs saturated")):
        if kind == "dead_relu" and trace.batch_size < min_batch_dead:
            continue
        hits = [lay for lay in lays if getattr(lay, attr) is not None and getattr(lay, attr) > limit]
        if hits:
            worst = max(hits, key=lambda lay: getattr(lay, attr))
            msg = (f"{len(hits)} layer(s) have more than {limit:.0%} {what}, from layer {hits[0].index} ({hits[0].name}); "
                   f"worst: layer {worst.index} ({worst.name}) at {getattr(worst, attr):.0%}.")
            out.append(Finding(kind, hits[0].name, hits[0].index, msg,
                               {"layers": {lay.name: getattr(lay, attr) for lay in hits}, "batch_size": trace.batch_size}))
    skipped = {lay.name: describe(r) for lay, r in zip(lays, reasons) if r}
    return Diagnosis(out, len(lays), skipped)


def _gain(lay: LayerTrace) -> float:
    return lay.gain if lay.gain is not None else math.nan


def _broken_layers(lays: list[LayerTrace], layer_gain: float) -> list[Finding]:
    broken: list[Finding] = []
    for kind, verb, verbs, bad in (("vanishing_layer", "shrinks", "shrink", lambda g: g < layer_gain),
                                   ("exploding_layer", "amplifies", "amplify", lambda g: g > 1.0 / layer_gain)):
        hits = [lay for lay in lays if lay.gain is not None and math.isfinite(lay.gain) and bad(lay.gain)
                and not (lay.weight is not None and lay.weight["ms"] == 0.0)]
        if not hits:
            continue
        worst = (min if kind == "vanishing_layer" else max)(hits, key=_gain)
        if len(hits) == 1:
            w = f"; weight rms {_fmt(math.sqrt(worst.weight['ms']))}" if worst.weight else ""
            msg = (f"Layer {worst.index} ({worst.name}, {worst.type}) {verb} the mean square of its input by "
                   f"x{_fmt(_gain(worst))} (a healthy layer: about fan_in * Var(W), order 1){w}.")
        else:
            limit = layer_gain if kind == "vanishing_layer" else 1.0 / layer_gain
            msg = (f"{len(hits)} layers each {verbs} the mean square of their input by "
                   f"{'less' if kind == 'vanishing_layer' else 'more'} than x{limit:g} (a healthy layer: about "
                   f"fan_in * Var(W), order 1), from layer {hits[0].index} ({hits[0].name}); worst: layer "
                   f"{worst.index} ({worst.name}) at x{_fmt(_gain(worst))}.")
        broken.append(Finding(kind, hits[0].name, hits[0].index, msg,
                              {"gain": worst.gain, "layers": {lay.name: lay.gain for lay in hits},
                               "input_ms": worst.input["ms"] if worst.input else None, "pre_ms": worst.pre["ms"],
                               "weight_ms": worst.weight["ms"] if worst.weight else None}))
    return broken


#: :attr:`LayerTrace.family` of every layer of a model that is a plain chain (the torch front end
#: sets it when every layer sits in nested ``Sequential``/``ModuleList`` containers).
CHAIN = "(chain)"


def families(lays: list[LayerTrace]) -> list[list[LayerTrace]]:
    """Layers that play the same part at different depths.

    The key is :attr:`LayerTrace.family` where the front end set it (the torch front end groups
    repeated blocks by structure: siblings of the same module class with the same children,
    whatever their names, and the same weight size: the same block at another width, in a later
    stage of a CNN or a Swin, has other fans and so other scales by design; every layer of a
    plain chain of containers is in the one family :data:`CHAIN`), else the qualified name with
    the indices of repeated blocks replaced (``h.*.attn.c_attn``, ``layer1.*.conv1``); plus the
    layer type, and the call number when one module runs more than once in a pass (a key
    projection applied to the tokens, then to relative positions). Without family information (an
    :mod:`initlab.nn` model) a model without repeated blocks (MLP, VGG-like) is one family of all
    its layers. Depth trends compare like with like: in a residual network the layers of one
    block live at unrelated scales by design.
    """
    groups: dict[tuple[str, str, int], list[LayerTrace]] = {}
    calls: dict[str, int] = {}
    for lay in lays:
        key = lay.family
        if key is None:
            parts = lay.name.split(".")
            key = ".".join(["*" if p.isdigit() else p for p in parts[:-1]] + parts[-1:])
        n = calls.get(lay.name, 0)
        calls[lay.name] = n + 1
        groups.setdefault(("" if key == CHAIN else lay.type, key, n), []).append(lay)
    fams = [g for g in groups.values() if len(g) >= 2]
    if fams or any(lay.family is not None for lay in lays):
        return fams
    return [list(lays)]


def _scale(lay: LayerTrace, key: str) -> float:
    if not lay.reduction or not lay.reduction_scale or lay.side_branch:
        return 1.0  # a side branch's pooling does not change the trunk's scale
    r = lay.reduction_scale.get(key)
    return r if r is not None and math.isfinite(r) and r > 0 else 1.0


def series(lays: list[LayerTrace]) -> tuple[dict[int, float], dict[int, float]]:
    """Per layer (by id): pre-activation mean square with every trunk reduction before it divided
    out, and mean square of dL/d(input) (dL/d(output) for traces without input gradients) with
    every trunk reduction after it divided out. A reduction that opens a side branch (a
    squeeze-excitation's pooling: the trunk goes on at full size) is not divided out."""
    fwd: dict[int, float] = {}
    corr = 1.0
    for lay in lays:
        corr /= _scale(lay, "forward")
        fwd[id(lay)] = lay.pre["ms"] * corr
    bwd: dict[int, float] = {}
    use = "grad_input" if any(lay.grad_input for lay in lays) else "grad_pre"
    corr = 1.0
    for lay in reversed(lays):
        d = getattr(lay, use)
        if d:
            bwd[id(lay)] = d["ms"] * corr
        corr /= _scale(lay, "backward")  # crossing the reduction in front of this layer
    return fwd, bwd


def _depth_trends(lays: list[LayerTrace], reasons: list[dict[str, str]], ratio: float, growth: float) -> list[Finding]:
    fwd, bwd = series(lays)
    skip = {d: {id(lay) for lay, r in zip(lays, reasons) if d in r} for d in DIRECTIONS}
    best: dict[str, Finding] = {}
    for fam in families(lays):
        found = trend([(fwd[id(lay)], lay) for lay in fam if id(lay) not in skip["forward"]], "forward", ratio, growth)
        found += trend([(bwd[id(lay)], lay) for lay in reversed(fam) if id(lay) in bwd and id(lay) not in skip["gradient"]],
                       "gradient", ratio, growth)
        for f in found:  # per kind, the most extreme family
            old = best.get(f.kind)
            if old is None or (f.evidence["ratio"] < old.evidence["ratio"] if f.kind.startswith("vanishing")
                               else f.evidence["ratio"] > old.evidence["ratio"]):
                best[f.kind] = f
    return sorted(best.values(), key=lambda f: ("forward" not in f.kind, f.index))


def trend(seq: list[tuple[float, LayerTrace]], what: str, ratio: float, growth: float) -> list[Finding]:
    """The vanishing/exploding finding of one family's series (reference first), or none."""
    if len(seq) < 2:
        return []
    (q0, base), rest = seq[0], seq[1:]
    qs = [q for q, _ in rest]
    if not (q0 > 0 and math.isfinite(q0)) or not all(math.isfinite(q) for q in qs):
        return []
    total = qs[-1] / q0
    g = total ** (1.0 / len(qs)) if total > 0 else 0.0
    ev = {"growth_per_layer": g, "ratio": total, "start_ms": q0, "end_ms": qs[-1], "depth": len(qs),
          "reference": base.name, "layers": [base.name] + [lay.name for _, lay in rest],
          "indices": [base.index] + [lay.index for _, lay in rest]}
    if what == "forward":
        label = f"forward signal (pre-activation mean square, relative to layer {base.name})"
    else:
        label = f"gradient (mean square w.r.t. layer inputs, relative to what layer {base.name} sends back)"
    for kind, bad, test in (("vanishing", total < ratio and g < growth, lambda r: r < ratio),
                            ("exploding", total > 1 / ratio and g > 1 / growth, lambda r: r > 1 / ratio)):
        if not bad:
            continue
        first = next(i for i, q in enumerate(qs) if test(q / q0))
        lay = rest[first][1]
        msg = (f"The {label} is {kind}: x{g:.3g} per layer, x{total:.3g} over {len(qs)} layers "
               f"({q0:.3g} -> {qs[-1]:.3g}), past x{ratio if kind == 'vanishing' else 1 / ratio:g} at layer "
               f"{lay.index} ({lay.name}).")
        return [Finding(f"{kind}_{what}", lay.name, lay.index, msg, ev)]
    return []
