"""``initlab.analyze``: per-layer forward and backward statistics of an initlab.nn model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..nn import Activation, BatchNorm, Conv2d, Identity, LayerNorm, Linear, Module, ReLU, Residual, Sigmoid, Tanh
from ..stats import stats

__all__ = ["analyze", "Trace", "LayerTrace", "Finding"]

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
        ``"exploding_gradient"``, ``"dead_relu"``, ``"saturation"`` or ``"nonfinite"``.
    layer : str
        Qualified name of the layer where it starts (or is worst).
    index : int
        That layer's depth.
    message : str
        One line for a person.
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


class Trace:
    """Per-layer statistics of one forward (and backward) pass; made by :func:`analyze`.

    Attributes
    ----------
    layers : list of LayerTrace
        Input side first.
    input, output : dict
        Statistics of the model's input and output.
    loss : float or None
        The loss value (None without backward).
    batch_size : int
    """

    def __init__(self, layers: list[LayerTrace], input: dict[str, float], output: dict[str, float],
                 loss: float | None, batch_size: int) -> None:
        self.layers = layers
        self.input = input
        self.output = output
        self.loss = loss
        self.batch_size = batch_size

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
                "layers": [lay.to_dict() for lay in self.layers]}

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
        return self.table()

    # -- diagnosis -------------------------------------------------------------------------
    def diagnose(self, *, ratio: float = 1e-2, growth: float = 0.8, dead: float = 0.5, saturated: float = 0.1,
                 min_batch_dead: int = 8) -> list[Finding]:
        """Find vanishing/exploding signals and gradients, dead ReLUs, saturation, non-finite values.

        Parameters
        ----------
        ratio : float, default 1e-2
            The forward signal vanishes when the last layer's pre-activation mean square is below
            ``ratio`` times the input's (explodes above ``1/ratio`` times), **and** the per-layer
            growth factor ``(q_L / q_0) ** (1 / L)`` is below ``growth`` (above ``1/growth``).
            Gradients: the same test on the gradient mean square w.r.t. each layer's output,
            from the last layer back to the first.
        growth : float, default 0.8
        dead : float, default 0.5
            Flag ReLU layers where more than this fraction of the units is zero for every sample.
            Needs at least ``min_batch_dead`` samples (with one sample, half the units of a
            healthy layer are zero). Deep ReLU nets correlate their inputs with depth, so up to
            about half the units of a healthy deep layer can be off for a whole batch; hence 0.5.
        saturated : float, default 0.1
            Flag a tanh/sigmoid layer when more than this fraction of its outputs is saturated.
        min_batch_dead : int, default 8

        Returns
        -------
        list of Finding
            Empty when nothing is wrong.
        """
        out: list[Finding] = []
        lays = [lay for lay in self.layers if lay.type in ("Linear", "Conv2d", "Residual")]
        for lay in self.layers:
            for what in ("pre", "post", "grad_pre", "grad_post", "weight_grad"):
                d = getattr(lay, what)
                if d and d["nonfinite_count"] > 0:
                    out.append(Finding("nonfinite", lay.name, lay.index,
                                       f"layer {lay.index} ({lay.name}, {lay.type}): {d['nonfinite_count']} non-finite values in {what}",
                                       {"where": what, "nonfinite_count": d["nonfinite_count"], "count": d["count"]}))
                    break
        if lays:
            out += self._trend([self.input["ms"]] + [lay.pre["ms"] for lay in lays], lays, "forward", ratio, growth)
        grads = [lay.grad_pre["ms"] for lay in lays if lay.grad_pre]
        if len(grads) == len(lays) and len(lays) >= 2:
            # Backward: from the last layer towards the input.
            rev = list(reversed(lays))
            out += self._trend(list(reversed(grads)), rev[1:], "gradient", ratio, growth)
        for kind, attr, limit, what in (("dead_relu", "dead_fraction", dead, "of ReLU units zero for every sample"),
                                        ("saturation", "saturated_fraction", saturated, "of outputs saturated")):
            if kind == "dead_relu" and self.batch_size < min_batch_dead:
                continue
            hits = [lay for lay in self.layers if getattr(lay, attr) is not None and getattr(lay, attr) > limit]
            if hits:
                worst = max(hits, key=lambda lay: getattr(lay, attr))
                msg = (f"{len(hits)} layer(s) with more than {limit:.0%} {what}, from layer {hits[0].index} ({hits[0].name}); "
                       f"worst: layer {worst.index} ({worst.name}) at {getattr(worst, attr):.0%}")
                out.append(Finding(kind, hits[0].name, hits[0].index, msg,
                                   {"layers": {lay.name: getattr(lay, attr) for lay in hits}, "batch_size": self.batch_size}))
        return out

    @staticmethod
    def _trend(seq: list[float], lays: list[LayerTrace], what: str, ratio: float, growth: float) -> list[Finding]:
        q0, qs = seq[0], seq[1:]
        if not (q0 > 0 and math.isfinite(q0)) or not qs or not all(math.isfinite(q) for q in qs):
            return []
        total = qs[-1] / q0
        g = total ** (1.0 / len(qs)) if total > 0 else 0.0
        ev = {"growth_per_layer": g, "ratio": total, "start_ms": q0, "end_ms": qs[-1], "depth": len(qs)}
        label = "forward signal (pre-activation mean square)" if what == "forward" else "gradient (mean square w.r.t. layer outputs)"
        for kind, bad, test in (("vanishing", total < ratio and g < growth, lambda r: r < ratio),
                                ("exploding", total > 1 / ratio and g > 1 / growth, lambda r: r > 1 / ratio)):
            if not bad:
                continue
            first = next(i for i, q in enumerate(qs) if test(q / q0))
            lay = lays[first]
            msg = (f"{kind} {label}: x{g:.3g} per layer, x{total:.3g} over {len(qs)} layers "
                   f"({q0:.3g} -> {qs[-1]:.3g}); past x{ratio if kind == 'vanishing' else 1 / ratio:g} at layer {lay.index} ({lay.name})")
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


def _unit_axes(a: np.ndarray) -> tuple[int, ...]:
    return (0,) + tuple(range(2, a.ndim)) if a.ndim >= 2 else (0,)


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
    fwd: list[tuple[str, Module, np.ndarray]] = []
    bwd: dict[int, np.ndarray] = {}
    removers = []
    for name, m in model.named_modules():
        if m._children and not isinstance(m, Residual):
            continue
        removers.append(m.register_forward_hook(lambda mod, _x, y, name=name: fwd.append((name, mod, y))))
        removers.append(m.register_backward_hook(lambda mod, dy, _dx: bwd.__setitem__(id(mod), dy)))
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
    for name, mod, out in fwd:
        parent = name.rpartition(".")[0]
        if isinstance(mod, (Linear, Conv2d, Residual)):
            groups.append({"name": name, "head": mod, "parent": parent, "pre": out, "post": out, "tail": mod, "act": None})
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
        if backward:
            if id(head) in bwd:
                lay.grad_pre = _summary(bwd[id(head)])
            if id(tail) in bwd:
                lay.grad_post = _summary(bwd[id(tail)])
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
