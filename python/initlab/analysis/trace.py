"""``initlab.analyze``: per-layer forward and backward statistics of an initlab.nn model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..nn import Activation, BatchNorm, Conv2d, Identity, LayerNorm, Linear, Module, ReLU, Residual, Sigmoid, Tanh
from .._threads import blas_single_threaded_for_nn
from ..stats import stats

__all__ = ["analyze", "Trace", "LayerTrace", "Finding", "Diagnosis"]

# Figures kept for every traced tensor (ms = mean square = rms^2, the mean-field q).
_KEYS = ("count", "mean", "var", "ms", "abs_max", "zero_fraction", "nonfinite_count")
# Modules that continue a layer (its "post-activation" is the output of the last of them).
_ATTACHABLE = (Activation, Identity, LayerNorm, BatchNorm)


def _summary(a: np.ndarray) -> dict[str, float]:
    s = stats(a)
    return {"count": s.count, "mean": s.mean, "var": s.var, "ms": s.rms**2, "abs_max": s.abs_max,
            "zero_fraction": s.zero_fraction, "nonfinite_count": s.nonfinite_count}


@dataclass
class LayerTrace:
    """What one layer (a Linear/Conv2d with the activation/norm after it, or a Residual block) did.

    Attributes
    ----------
    index : int
        Depth (1 = closest to the input).
    name : str
        Qualified name of the layer's module (``"0"``, ``"3.branch.2"``).
    type : str
        ``"Linear"``, ``"Conv2d"`` or ``"Residual"``.
    activation : str or None
        Class name of the last module attached after it (e.g. ``"ReLU"``), if any.
    shape : tuple of int
        Output shape.
    pre, post : dict
        Statistics of the layer's output and of the output after the attached modules:
        ``count, mean, var, ms (mean square), abs_max, zero_fraction, nonfinite_count``.
    grad_pre, grad_post : dict or None
        The same for ``dL/dpre`` and ``dL/dpost`` (None without backward).
    weight_grad : dict or None
        For the weight (Linear/Conv2d) or ``alpha`` (Residual).
    weight : dict or None
        Statistics of the weight itself.
    dead_fraction : float or None
        For ReLU: fraction of units (features / channels) that are zero for every sample.
    saturated_fraction : float or None
        For Tanh: fraction of outputs with ``|y| > 0.99``; for Sigmoid outside ``[0.01, 0.99]``.
    predicted : dict or None
        Mean-field ``q`` and ``chi`` for this layer (MLPs only, see :func:`initlab.analysis.predict`).
    input, grad_input : dict or None
        Statistics of the layer's input and of ``dL/d(input)`` (None when not available: an
        integer input, or a torch input that needs no gradient such as the data).
    gain : float or None
        Mean square of what the weight contributed to the output (the output minus its bias)
        over the mean square of the input: about ``fan_in * Var(W)`` for a healthy layer.
        None when the input is all zeros or not available.
    reduction : str or None
        Set when the tensor reaching this layer has fewer elements than the previous layer's
        output because of pooling or selection (global average pooling, a class token, a
        ``(N, C, H, W) -> (N, C)`` mean): the pooling module's type or ``"reduction"``.
        :meth:`Trace.diagnose` discounts the change of scale across such a step.
    reduction_scale : dict or None
        The measured change across that step: ``"forward"`` (mean square after over before)
        and ``"backward"`` (mean square of the gradient before over after); None if unknown.
    """

    index: int
    name: str
    type: str
    activation: str | None
    shape: tuple[int, ...]
    pre: dict[str, float]
    post: dict[str, float]
    grad_pre: dict[str, float] | None = None
    grad_post: dict[str, float] | None = None
    weight_grad: dict[str, float] | None = None
    weight: dict[str, float] | None = None
    dead_fraction: float | None = None
    saturated_fraction: float | None = None
    predicted: dict[str, float] | None = None
    input: dict[str, float] | None = None
    grad_input: dict[str, float] | None = None
    gain: float | None = None
    reduction: str | None = None
    reduction_scale: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


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
    """

    def __init__(self, findings: Any = (), layers: int = 0) -> None:
        super().__init__(findings)
        self.layers = layers

    def __str__(self) -> str:
        if not self:
            return f"no problem found in {self.layers} layer(s)"
        head = f"{len(self)} problem(s) found in {self.layers} layer(s):"
        return "\n".join([head] + [f"- {f.message}" for f in self])

    def __repr__(self) -> str:
        return f"Diagnosis({[f'{f.kind} at {f.layer}' for f in self]!r})"


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class Trace:
    """Per-layer statistics of one forward (and backward) pass; made by :func:`analyze`.

    Attributes
    ----------
    layers : list of LayerTrace
        Input side first.
    input, output : dict
        Statistics of the model's input and output. When the input is not floating-point
        (token ids), ``input`` describes the first floating-point activation instead (an
        embedding's output), named by ``input_name``.
    loss : float or None
        The loss value (None without backward).
    batch_size : int
    input_name : str
        Where ``input`` was taken: ``"input"`` or e.g. ``"output of wte (Embedding)"``.
    """

    def __init__(self, layers: list[LayerTrace], input: dict[str, float], output: dict[str, float],
                 loss: float | None, batch_size: int, input_name: str = "input") -> None:
        self.layers = layers
        self.input = input
        self.output = output
        self.loss = loss
        self.batch_size = batch_size
        self.input_name = input_name

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> LayerTrace:
        return self.layers[i]

    def __repr__(self) -> str:
        return f"Trace({len(self.layers)} layers, batch {self.batch_size}, backward={self.loss is not None})"

    # -- views -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serializable)."""
        return {"batch_size": self.batch_size, "loss": self.loss, "input": dict(self.input), "output": dict(self.output),
                "input_name": self.input_name, "layers": [lay.to_dict() for lay in self.layers]}

    def table(self) -> str:
        """Plain-text table, one row per layer, aligned columns.

        Columns: depth, name, type, activation, pre-activation variance and mean square (with
        the mean-field prediction ``q pred`` for MLPs), post-activation variance, fraction of
        zeros, mean square of the gradient w.r.t. the post-activation and w.r.t. the weight,
        and dead/saturated units when relevant.
        """
        has_pred = any(lay.predicted for lay in self.layers)
        has_grad = any(lay.grad_post for lay in self.layers)
        head = ["#", "layer", "type", "act", "pre var", "pre ms"] + (["q pred"] if has_pred else []) + ["post var", "zeros"]
        if has_grad:
            head += ["grad ms", "w-grad ms"]
        head += ["dead/sat"]
        rows = [head]
        e = lambda v: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3e}"  # noqa: E731
        for lay in self.layers:
            r = [str(lay.index), lay.name, lay.type, lay.activation or "-", e(lay.pre["var"]), e(lay.pre["ms"])]
            if has_pred:
                r.append(e(lay.predicted["q"]) if lay.predicted else "-")
            r += [e(lay.post["var"]), f"{lay.post['zero_fraction']:.0%}"]
            if has_grad:
                r += [e(lay.grad_post["ms"]) if lay.grad_post else "-", e(lay.weight_grad["ms"]) if lay.weight_grad else "-"]
            flag = "-"
            if lay.dead_fraction is not None:
                flag = f"{lay.dead_fraction:.0%} dead"
            elif lay.saturated_fraction is not None:
                flag = f"{lay.saturated_fraction:.0%} sat"
            r.append(flag)
            rows.append(r)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        left = {1, 2, 3}
        lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        what = "forward and backward" if self.loss is not None else "forward"
        head = (f"Trace of {len(self.layers)} layer(s), {what}, batch {self.batch_size}; "
                f"{self.input_name}: mean square {_fmt(self.input['ms'])}; output mean square {_fmt(self.output['ms'])}")
        if self.loss is not None:
            head += f"; loss {_fmt(self.loss)}"
        return head + "\n" + self.table()

    # -- diagnosis -------------------------------------------------------------------------
    def diagnose(self, *, ratio: float = 1e-2, growth: float = 0.8, dead: float = 0.5, saturated: float = 0.1,
                 min_batch_dead: int = 8, layer_gain: float = 1e-4) -> Diagnosis:
        """Find vanishing/exploding signals and gradients, broken layers, dead ReLUs, saturation,
        non-finite values.

        Depth trends compare layers that play the same part at different depths (the same
        projection in every transformer block, the same convolution in every residual block; a
        plain chain such as an MLP is one family of all its layers). The forward signal is judged
        against the **first** such layer's output, not the raw input (whose scale says nothing
        about the network: token ids, pixel values); the gradient against what the **last** one
        sends back to its input, not the probe ``dL/dy`` (whose scale the head's fan ratio sets).
        A step where the tensor between two layers is reduced (pooling, a class token, a global
        mean: :attr:`LayerTrace.reduction`) changes the scale by design, so its measured change
        is divided out.

        Parameters
        ----------
        ratio : float, default 1e-2
            The forward signal vanishes when the last layer's pre-activation mean square is below
            ``ratio`` times the first layer's (explodes above ``1/ratio`` times), **and** the
            per-layer growth factor ``(q_L / q_1) ** (1 / (L - 1))`` is below ``growth`` (above
            ``1/growth``), ``L`` counting the layers of one family. Gradients: the same test on the
            mean square of the gradient w.r.t. each layer's input, from the last layer back to the
            first. The most extreme family is reported.
        growth : float, default 0.8
        dead : float, default 0.5
            Flag ReLU layers where more than this fraction of the units is zero for every sample.
            Needs at least ``min_batch_dead`` samples (with one sample, half the units of a
            healthy layer are zero). Deep ReLU nets correlate their inputs with depth, so up to
            about half the units of a healthy deep layer can be off for a whole batch; hence 0.5.
        saturated : float, default 0.1
            Flag a tanh/sigmoid layer when more than this fraction of its outputs is saturated.
        min_batch_dead : int, default 8
        layer_gain : float, default 1e-4
            Flag the layers whose :attr:`LayerTrace.gain` (output over input mean square, bias
            removed) is below ``layer_gain`` (``"vanishing_layer"``) or above ``1/layer_gain``
            (``"exploding_layer"``), one finding per kind listing them: a weight far off its
            scale, wherever it sits (residual networks hide one broken layer from the depth trends). A weight that
            is exactly zero (zero-initialized on purpose) is not flagged. A forward trend reaching
            past a flagged layer, or a gradient trend reaching back before one, is that layer's
            doing and is not reported besides it.

        Returns
        -------
        Diagnosis
            A list of :class:`Finding`, empty when nothing is wrong; ``print`` gives one
            sentence per finding.
        """
        out: list[Finding] = []
        lays = list(self.layers)
        for lay in lays:
            for what in ("pre", "post", "grad_pre", "grad_post", "weight_grad"):
                d = getattr(lay, what)
                if d and d["nonfinite_count"] > 0:
                    out.append(Finding("nonfinite", lay.name, lay.index,
                                       f"Layer {lay.index} ({lay.name}, {lay.type}) has {d['nonfinite_count']} non-finite "
                                       f"values in {what}.",
                                       {"where": what, "nonfinite_count": d["nonfinite_count"], "count": d["count"]}))
                    break
        broken: list[Finding] = []
        for kind, verb, verbs, bad in (("vanishing_layer", "shrinks", "shrink", lambda g: g < layer_gain),
                                       ("exploding_layer", "amplifies", "amplify", lambda g: g > 1.0 / layer_gain)):
            hits = [lay for lay in lays if lay.gain is not None and math.isfinite(lay.gain) and bad(lay.gain)
                    and not (lay.weight is not None and lay.weight["ms"] == 0.0)]
            if not hits:
                continue
            worst = (min if kind == "vanishing_layer" else max)(hits, key=lambda lay: lay.gain)
            if len(hits) == 1:
                w = f"; weight rms {_fmt(math.sqrt(worst.weight['ms']))}" if worst.weight else ""
                msg = (f"Layer {worst.index} ({worst.name}, {worst.type}) {verb} the mean square of its input by "
                       f"x{_fmt(worst.gain)} (a healthy layer: about fan_in * Var(W), order 1){w}.")
            else:
                limit = layer_gain if kind == "vanishing_layer" else 1.0 / layer_gain
                msg = (f"{len(hits)} layers each {verbs} the mean square of their input by "
                       f"{'less' if kind == 'vanishing_layer' else 'more'} than x{limit:g} (a healthy layer: about "
                       f"fan_in * Var(W), order 1), from layer {hits[0].index} ({hits[0].name}); worst: layer "
                       f"{worst.index} ({worst.name}) at x{_fmt(worst.gain)}.")
            broken.append(Finding(kind, hits[0].name, hits[0].index, msg,
                                  {"gain": worst.gain, "layers": {lay.name: lay.gain for lay in hits},
                                   "input_ms": worst.input["ms"] if worst.input else None, "pre_ms": worst.pre["ms"],
                                   "weight_ms": worst.weight["ms"] if worst.weight else None}))
        if len(lays) >= 2:
            # A forward trend that ends after a broken layer, or a gradient trend that starts
            # before one, is that layer's doing: one finding per cause.
            at = [lay.index for f in broken for lay in lays if lay.name in f.evidence["layers"]]
            out += [f for f in self._depth_trends(lays, ratio, growth)
                    if not any((b <= max(f.evidence["indices"])) if f.kind.endswith("forward")
                               else (b >= min(f.evidence["indices"])) for b in at)]
        out += broken
        for kind, attr, limit, what in (("dead_relu", "dead_fraction", dead, "of ReLU units zero for every sample"),
                                        ("saturation", "saturated_fraction", saturated, "of outputs saturated")):
            if kind == "dead_relu" and self.batch_size < min_batch_dead:
                continue
            hits = [lay for lay in lays if getattr(lay, attr) is not None and getattr(lay, attr) > limit]
            if hits:
                worst = max(hits, key=lambda lay: getattr(lay, attr))
                msg = (f"{len(hits)} layer(s) have more than {limit:.0%} {what}, from layer {hits[0].index} ({hits[0].name}); "
                       f"worst: layer {worst.index} ({worst.name}) at {getattr(worst, attr):.0%}.")
                out.append(Finding(kind, hits[0].name, hits[0].index, msg,
                                   {"layers": {lay.name: getattr(lay, attr) for lay in hits}, "batch_size": self.batch_size}))
        return Diagnosis(out, len(lays))

    @staticmethod
    def _families(lays: list[LayerTrace]) -> list[list[LayerTrace]]:
        """Layers that play the same part at different depths: same type, same qualified name
        once the indices of repeated blocks are replaced (``h.*.attn.c_attn``,
        ``layer1.*.conv1``). A model without repeated blocks (a plain chain: MLP, VGG-like) is one
        family of all its layers. Depth trends compare like with like: in a residual network
        the layers of one block (a projection inside an attention branch, the block's output)
        live at unrelated scales by design."""
        groups: dict[tuple[str, str], list[LayerTrace]] = {}
        for lay in lays:
            parts = lay.name.split(".")
            key = ".".join(["*" if p.isdigit() else p for p in parts[:-1]] + parts[-1:])
            groups.setdefault((lay.type, key), []).append(lay)
        fams = [g for g in groups.values() if len(g) >= 2]
        return fams or [list(lays)]

    @staticmethod
    def _scale(lay: LayerTrace, key: str) -> float:
        r = lay.reduction_scale.get(key) if lay.reduction and lay.reduction_scale else None
        return r if r is not None and math.isfinite(r) and r > 0 else 1.0

    @classmethod
    def _series(cls, lays: list[LayerTrace]) -> tuple[dict[int, float], dict[int, float]]:
        """Per layer (by id): pre-activation mean square with every reduction before it divided
        out, and mean square of dL/d(input) (dL/d(output) for traces without input gradients)
        with every reduction after it divided out."""
        fwd: dict[int, float] = {}
        corr = 1.0
        for lay in lays:
            corr /= cls._scale(lay, "forward")
            fwd[id(lay)] = lay.pre["ms"] * corr
        bwd: dict[int, float] = {}
        use = "grad_input" if any(lay.grad_input for lay in lays) else "grad_pre"
        corr = 1.0
        for lay in reversed(lays):
            d = getattr(lay, use)
            if d:
                bwd[id(lay)] = d["ms"] * corr
            corr /= cls._scale(lay, "backward")  # crossing the reduction in front of this layer
        return fwd, bwd

    def _depth_trends(self, lays: list[LayerTrace], ratio: float, growth: float) -> list[Finding]:
        fwd, bwd = self._series(lays)
        best: dict[str, Finding] = {}
        for fam in self._families(lays):
            found = self._trend([(fwd[id(lay)], lay) for lay in fam], "forward", ratio, growth)
            found += self._trend([(bwd[id(lay)], lay) for lay in reversed(fam) if id(lay) in bwd], "gradient",
                                 ratio, growth)
            for f in found:  # per kind, the most extreme family
                old = best.get(f.kind)
                if old is None or (f.evidence["ratio"] < old.evidence["ratio"] if f.kind.startswith("vanishing")
                                   else f.evidence["ratio"] > old.evidence["ratio"]):
                    best[f.kind] = f
        return sorted(best.values(), key=lambda f: ("forward" not in f.kind, f.index))

    @staticmethod
    def _trend(seq: list[tuple[float, LayerTrace]], what: str, ratio: float, growth: float) -> list[Finding]:
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

    # -- picture ---------------------------------------------------------------------------
    def plot(self, path: Any = None, *, title: str | None = None) -> Any:
        """Signal-propagation plot (in the style of Brock et al. 2021), log scale.

        Left: variance and mean square of each layer's pre- and post-activations (and the
        mean-field prediction when available); right: mean square of the gradients w.r.t. each
        layer's output and weight.

        Parameters
        ----------
        path : str or path-like, optional
            Where to save the figure (format from the extension, e.g. PNG).
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ImportError
            If matplotlib is not installed (``pip install 'initlab[plot]'``).
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as err:
            raise ImportError("Trace.plot needs matplotlib, an optional extra: pip install 'initlab[plot]'") from err
        has_grad = any(lay.grad_post for lay in self.layers)
        fig = Figure(figsize=(11 if has_grad else 6, 4.2), layout="constrained")
        axes = fig.subplots(1, 2 if has_grad else 1, squeeze=False)[0]
        depth = [lay.index for lay in self.layers]
        pos = lambda vals: [v if v is not None and v > 0 and math.isfinite(v) else np.nan for v in vals]  # noqa: E731
        ax = axes[0]
        ax.plot(depth, pos([lay.pre["var"] for lay in self.layers]), "o-", label="pre-activation variance")
        ax.plot(depth, pos([lay.pre["ms"] for lay in self.layers]), "s--", ms=4, label="pre-activation mean square")
        ax.plot(depth, pos([lay.post["var"] for lay in self.layers]), "^-", label="post-activation variance")
        if any(lay.predicted for lay in self.layers):
            ax.plot(depth, pos([lay.predicted["q"] if lay.predicted else None for lay in self.layers]), "k:", label="mean-field q (theory)")
        ax.set_yscale("log")
        ax.set_xlabel("depth")
        ax.set_title("forward")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        if has_grad:
            ax = axes[1]
            ax.plot(depth, pos([lay.grad_post["ms"] if lay.grad_post else None for lay in self.layers]), "o-", label="dL/d(activation) mean square")
            ax.plot(depth, pos([lay.weight_grad["ms"] if lay.weight_grad else None for lay in self.layers]), "s-", label="dL/d(weight) mean square")
            ax.set_yscale("log")
            ax.set_xlabel("depth")
            ax.set_title("backward")
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        if title:
            fig.suptitle(title)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _loss(loss: Any, y: np.ndarray, seed: int) -> tuple[float, np.ndarray]:
    if callable(loss):
        value, dy = loss(y)
        dy = np.asarray(dy, dtype=y.dtype)
        if dy.shape != y.shape:
            raise ValueError(f"the loss callable returned a gradient of shape {dy.shape} for an output of shape {y.shape}")
        return float(value), dy
    if loss == "random":
        g = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
        return float(np.sum(g * y)), g
    if loss == "sum":
        return float(np.sum(y)), np.ones_like(y)
    if loss == "mean_square":
        return float(0.5 * np.mean(y * y)), y / y.size
    raise ValueError(f"unknown loss {loss!r}; accepted: 'random', 'sum', 'mean_square' or a callable y -> (value, dL/dy)")


def _reduction(prev_shape: tuple[int, ...] | None, prev_axis: int, in_shape: tuple[int, ...] | None, in_axis: int,
               pool: str | None) -> str | None:
    """Whether the step from one layer's output to the next layer's input reduces the tensor by
    pooling or selection (framework-neutral; shared by the initlab.nn and torch front ends).

    ``*_axis`` is the feature axis (1 for convolutions, -1 for linear layers). A reduction needs
    fewer elements after the step, and either a pooling module in between, the same number of
    features (only positions were pooled: ``(N, C, H, W) -> (N, C)``, a class token), or one
    position left. A flatten keeps the element count and is not one.
    """
    if prev_shape is None or in_shape is None or len(prev_shape) < 1 or len(in_shape) < 1:
        return None
    if math.prod(in_shape) >= math.prod(prev_shape):
        return None
    if pool:
        return pool
    if len(in_shape) < 2 or len(prev_shape) < 2:
        return None
    feat_in, feat_prev = in_shape[in_axis], prev_shape[prev_axis]
    positions_in = math.prod(in_shape) // max(1, in_shape[0] * feat_in)
    return "reduction" if feat_in == feat_prev or positions_in == 1 else None


def _ms(a: np.ndarray) -> float:
    return float(np.mean(np.square(a, dtype=np.float64))) if a.size else 0.0


def _unit_axes(a: np.ndarray) -> tuple[int, ...]:
    return (0,) + tuple(range(2, a.ndim)) if a.ndim >= 2 else (0,)


@blas_single_threaded_for_nn  # initlab.nn nets: one BLAS thread (issue 19 item 18)
def analyze(model: Module, x: Any, *, loss: str | Callable[[np.ndarray], tuple[float, np.ndarray]] = "random",
            backward: bool = True, seed: int = 0, predict: bool = True) -> Trace:
    """Run ``model`` on ``x`` (and back) and record per-layer statistics of the signal.

    A *layer* is a Linear or Conv2d with the activations/norms that directly follow it in the
    same container, or a Residual block (with the activation after it). For each: statistics
    (computed by :func:`initlab.stats` in the C++ core) of pre-activations, post-activations,
    gradients with respect to both and to the weight; dead ReLU units; saturated tanh/sigmoid
    outputs; and for MLPs the mean-field prediction.

    Parameters
    ----------
    model : initlab.nn.Module
    x : array_like, shape (batch, ...)
    loss : {"random", "sum", "mean_square"} or callable, default "random"
        What to back-propagate: ``"random"`` is ``L = sum(g * y)`` with a fixed standard normal
        ``g`` (so ``dL/dy = g``, unit mean square: the usual probe of gradient propagation);
        ``"sum"`` is ``sum(y)``; ``"mean_square"`` is ``0.5 * mean(y**2)``; a callable takes
        ``y`` and returns ``(value, dL/dy)``.
    backward : bool, default True
        Also run the backward pass (gradients accumulate in the model's ``grads``, after
        ``zero_grad``).
    seed : int, default 0
        Seed of ``g`` for ``loss="random"``.
    predict : bool, default True
        Add mean-field predictions when the model is an MLP of Linear layers and activations.

    Returns
    -------
    Trace
    """
    if not isinstance(model, Module):
        raise TypeError(f"analyze takes an initlab.nn model, got {type(model).__name__} (for torch modules see initlab.torch)")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[None]
    from .. import nn as _nn

    fwd: list[tuple[str, Module, np.ndarray, np.ndarray]] = []
    bwd: dict[int, np.ndarray] = {}
    bwd_in: dict[int, np.ndarray] = {}
    removers = []
    for name, m in model.named_modules():
        if m._children and not isinstance(m, Residual):
            continue
        removers.append(m.register_forward_hook(lambda mod, x_, y, name=name: fwd.append((name, mod, y, x_))))
        removers.append(m.register_backward_hook(
            lambda mod, dy, dx: (bwd.__setitem__(id(mod), dy), bwd_in.__setitem__(id(mod), dx))))
    try:
        y = model.forward(x)
        value = None
        if backward:
            model.zero_grad()
            value, dy = _loss(loss, y, seed)
            model.backward(dy)
    finally:
        for r in removers:
            r()

    # Group the forward events into layers.
    groups: list[dict[str, Any]] = []
    is_open = False  # whether the next sibling activation/norm continues the last layer
    pool = None  # a pooling module that ran since the last layer
    for name, mod, out, inp in fwd:
        parent = name.rpartition(".")[0]
        if isinstance(mod, _nn.GlobalAvgPool):
            f = _ms(out) / _ms(inp) if _ms(inp) > 0 else None
            b = None
            if id(mod) in bwd and _ms(bwd[id(mod)]) > 0:
                b = _ms(bwd_in[id(mod)]) / _ms(bwd[id(mod)])
            pool = (type(mod).__name__, {"forward": f, "backward": b})
        if isinstance(mod, (Linear, Conv2d, Residual)):
            groups.append({"name": name, "head": mod, "parent": parent, "pre": out, "post": out, "tail": mod, "act": None,
                           "input": inp, "pool": pool})
            pool = None
            is_open = True
        elif is_open and isinstance(mod, _ATTACHABLE) and groups[-1]["parent"] == parent:
            g = groups[-1]
            g["post"], g["tail"] = out, mod
            if isinstance(mod, Activation):
                g["act"] = mod
        else:
            is_open = False
    layers: list[LayerTrace] = []
    for i, g in enumerate(groups, start=1):
        head, tail, act = g["head"], g["tail"], g["act"]
        lay = LayerTrace(index=i, name=g["name"], type=type(head).__name__, activation=type(tail).__name__ if tail is not head else None,
                         shape=tuple(g["post"].shape), pre=_summary(g["pre"]), post=_summary(g["post"]))
        wname = "alpha" if isinstance(head, Residual) else "weight"
        lay.weight = _summary(getattr(head, wname))
        inp = g["input"]
        if inp.dtype.kind == "f":
            lay.input = _summary(inp)
        if inp.dtype.kind == "f" and not isinstance(head, Residual):
            axis = 1 if isinstance(head, Conv2d) else -1
            wpart = g["pre"]
            if getattr(head, "bias", None) is not None and wpart.ndim >= 1:
                shape = [1] * wpart.ndim
                shape[axis] = -1
                wpart = wpart - np.reshape(head.bias, shape)
            den = _ms(inp)
            if den > 0:
                lay.gain = _ms(wpart) / den
        if i > 1:
            prev = groups[i - 2]
            pool = g["pool"]
            lay.reduction = _reduction(tuple(prev["post"].shape), 1 if isinstance(prev["head"], Conv2d) else -1,
                                       tuple(inp.shape), 1 if isinstance(head, Conv2d) else -1, pool and pool[0])
            if lay.reduction and pool:
                lay.reduction_scale = pool[1]
        if backward:
            if id(head) in bwd:
                lay.grad_pre = _summary(bwd[id(head)])
            if id(tail) in bwd:
                lay.grad_post = _summary(bwd[id(tail)])
            if id(head) in bwd_in:
                lay.grad_input = _summary(bwd_in[id(head)])
            if wname in head.grads:
                lay.weight_grad = _summary(head.grads[wname])
        post = g["post"]
        if isinstance(act, ReLU) and act is tail and post.ndim >= 1:
            per_unit = stats(post, axis=_unit_axes(post))
            lay.dead_fraction = float(np.mean(np.asarray(per_unit.zero_fraction) == 1.0))
        elif isinstance(act, Tanh) and act is tail:
            lay.saturated_fraction = float(np.mean(np.abs(post) > 0.99))
        elif isinstance(act, Sigmoid) and act is tail:
            lay.saturated_fraction = float(np.mean((post < 0.01) | (post > 0.99)))
        layers.append(lay)

    if predict:
        from .theory import predict as mf_predict

        try:
            pred = mf_predict(model, float(np.mean(x.astype(np.float64) ** 2)))
        except ValueError:
            pred = None  # not an MLP: measurement only
        if pred is not None:
            by_name = {n: i for i, n in enumerate(pred.names)}
            for lay in layers:
                if lay.name in by_name:
                    k = by_name[lay.name]
                    lay.predicted = {"q": float(pred.q[k]), "post_ms": float(pred.post_ms[k]), "chi": float(pred.chi[k])}
    return Trace(layers, _summary(x), _summary(y), value, int(x.shape[0]))
