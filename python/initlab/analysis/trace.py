"""``initlab.analyze``: per-layer forward and backward statistics of an initlab.nn model."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..nn import Activation, BatchNorm, Conv2d, Identity, LayerNorm, Linear, Module, ReLU, Residual, Sigmoid, Tanh
from .._threads import blas_single_threaded_for_nn
from ..stats import stats
from .diagnose import Diagnosis, Finding, describe, not_judged
from .diagnose import diagnose as _diagnose

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
    family : str or None
        Which layers play the same part at other depths (set by :func:`initlab.torch.analyze`
        from the module tree: the qualified name with every repeated block replaced by ``*``);
        None: :meth:`Trace.diagnose` derives it from the digits of the name.
    not_judged : dict or None
        Depth trends this layer is left out of, with the reason, set by the front end from the
        model's structure: ``{"forward": reason, "gradient": reason}`` (e.g. ``"attention
        query/key projection"``, ``"side branch (SE gate)"``, ``"layer scale 1e-06"``). The layer
        is still checked on its own (gain, non-finite values). :meth:`Trace.not_judged` adds what
        the figures show (zero weights, zero gradients).
    side_branch : str or None
        Set when the layer lies on a side branch that reads a pooled copy of the trunk and
        returns to it (``"SE gate"``: a squeeze-excitation): the pooling before it does not
        change the trunk's scale, so :meth:`Trace.diagnose` does not divide it out.
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
    reduction_scale: dict[str, float | None] | None = None
    family: str | None = None
    not_judged: dict[str, str] | None = None
    side_branch: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


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
        and dead/saturated units when relevant; a last ``not judged`` column, when some layer is
        left out of the depth trends of :meth:`diagnose`, says why (:meth:`not_judged`).
        """
        has_pred = any(lay.predicted for lay in self.layers)
        has_grad = any(lay.grad_post for lay in self.layers)
        head = ["#", "layer", "type", "act", "pre var", "pre ms"] + (["q pred"] if has_pred else []) + ["post var", "zeros"]
        if has_grad:
            head += ["grad ms", "w-grad ms"]
        head += ["dead/sat"]
        notes = [describe(r) for r in not_judged(self)]
        if any(notes):
            head.append("not judged")
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
            if any(notes):
                r.append(notes[lay.index - 1] if 0 < lay.index <= len(notes) and notes[lay.index - 1] else "-")
            rows.append(r)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        left = {1, 2, 3, len(head) - 1} if any(notes) else {1, 2, 3}
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
        is divided out, unless it opens a side branch that returns to the full-size trunk (a
        squeeze-excitation gate: :attr:`LayerTrace.side_branch`).

        Layers whose scale depth does not set are left out of the depth trends, and the printed
        trace says why (its ``not judged`` column; :meth:`not_judged`): attention query/key
        projections (their gradients are scaled by the softmax's ``1/sqrt(d)`` and by each other),
        attention output projections in the forward trend (their input's scale is set by how alike
        the tokens are), side branches (an SE gate: the branch's output gates the trunk, which is
        judged instead), layers inside a block with a small layer scale (``gamma = 1e-6``: their
        gradients are scaled by it), layers on constant tables (relative-position MLPs), weights
        that are exactly zero (a zero-initialized head) and layers no gradient reaches. Each is
        still checked on its own (``layer_gain`` below).

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
            past a flagged layer, or any gradient trend when a layer is flagged (the gradient on
            both sides of it depends on it: a norm after it no longer normalizes), is that
            layer's doing and is not reported besides it.

        Returns
        -------
        Diagnosis
            A list of :class:`Finding`, empty when nothing is wrong; ``print`` gives one
            sentence per finding.
        """
        return _diagnose(self, ratio=ratio, growth=growth, dead=dead, saturated=saturated,
                         min_batch_dead=min_batch_dead, layer_gain=layer_gain)

    def not_judged(self) -> dict[str, str]:
        """Layers the depth trends of :meth:`diagnose` leave out, by qualified name, with the
        reason: what the front end saw in the model's structure (:attr:`LayerTrace.not_judged`)
        and what the figures show (a weight exactly zero: ``"zero-initialized head"``; a
        gradient exactly zero). Also the ``not judged`` column of :meth:`table`."""
        return {lay.name: describe(r) for lay, r in zip(self.layers, not_judged(self)) if r}

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
    fewer elements after the step, and either a pooling module in between, or one position left
    (a global mean ``(N, C, H, W) -> (N, C)``, a class token). Without a pooling module, a step to
    fewer positions that are still several is not one: the layer reads another tensor (a
    cross-attention's queries come from a shorter sequence than its keys and values). A flatten
    keeps the element count and is not one.
    """
    if prev_shape is None or in_shape is None or len(prev_shape) < 1 or len(in_shape) < 1:
        return None
    if math.prod(in_shape) >= math.prod(prev_shape):
        return None
    if pool:
        return pool
    if len(in_shape) < 2 or len(prev_shape) < 2:
        return None
    positions_in = math.prod(in_shape) // max(1, in_shape[0] * in_shape[in_axis])
    return "reduction" if positions_in == 1 else None


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
