"""``initlab demo``: why initialization matters, in one run.

A ReLU network of 8 hidden layers x 10 units with zero biases gets the input
``X = [1, 2, 3, 4, 5]``. With weights ``N(0, sigma^2)`` for sigma in {1e-5, 1e-3, 1e-2, 1e-1,
0.5} the per-layer variance of the pre- and post-activations vanishes (or grows); Xavier, He and
orthogonal initialization (and LSUV when available) are then run on the same network to show
which keep the variance. Every figure comes from :func:`initlab.analyze`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

__all__ = ["run_demo", "DemoResult"]

SEED_INPUT = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
DEFAULT_SIGMAS = (1e-5, 1e-3, 1e-2, 1e-1, 0.5)
# A per-layer factor of the variance outside [KEEP, 1/KEEP] is called vanishing / exploding.
KEEP = 0.7


@dataclass
class DemoResult:
    """One initialization of the demo network and what it did.

    Attributes
    ----------
    label : str
    pre_var, post_var, grad_var : list of float
        Per layer: variance of pre-activations, post-activations, and of the gradient with
        respect to the post-activations.
    growth : float
        Per-layer factor of the pre-activation variance, ``(v_L / v_1) ** (1 / (L - 1))``.
    verdict : str
    """

    label: str
    pre_var: list[float]
    post_var: list[float]
    grad_var: list[float]
    growth: float
    verdict: str


def _growth(v: list[float]) -> float:
    if len(v) < 2 or not v[0] > 0:
        return math.nan
    if not v[-1] > 0:
        return 0.0
    return (v[-1] / v[0]) ** (1.0 / (len(v) - 1))


def _verdict(g: float, v: list[float]) -> str:
    if math.isnan(g):
        return "undetermined (needs at least 2 layers with a non-zero variance)"
    span = f"{v[0]:.2g} -> {v[-1]:.2g} over {len(v)} layers"
    if g < KEEP:
        return f"vanishes: variance x{g:.2g} per layer ({span})"
    if g > 1 / KEEP:
        return f"explodes: variance x{g:.2g} per layer ({span})"
    return f"keeps the variance: x{g:.2f} per layer ({span})"


def _table(r: DemoResult) -> str:
    head = ("layer", "pre-act var", "post-act var", "grad var")
    rows = [head] + [(str(i + 1), f"{a:.3e}", f"{b:.3e}", f"{c:.3e}") for i, (a, b, c) in enumerate(zip(r.pre_var, r.post_var, r.grad_var))]
    w = [max(len(row[k]) for row in rows) for k in range(4)]
    lines = ["  ".join(c.rjust(w[k]) for k, c in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join("    " + line for line in lines)


def _run_one(label: str, make: Any, x: np.ndarray, seed: int, trials: int) -> DemoResult:
    """Average the per-layer variances over `trials` independent weight draws (`make(t)`)."""
    import initlab

    pre, post, grad = [], [], []
    for t in range(trials):
        tr = initlab.analyze(make(t), x, seed=seed + t, predict=False)
        pre.append([lay.pre["var"] for lay in tr.layers])
        post.append([lay.post["var"] for lay in tr.layers])
        grad.append([lay.grad_post["var"] if lay.grad_post else math.nan for lay in tr.layers])
    mean = lambda v: [float(u) for u in np.mean(v, axis=0)]  # noqa: E731
    p = mean(pre)
    g = _growth(p)
    return DemoResult(label, p, mean(post), mean(grad), g, _verdict(g, p))


def run_demo(*, depth: int = 8, width: int = 10, activation: str = "relu", batch: int = 1, seed: int = 0,
             sigmas: tuple[float, ...] = DEFAULT_SIGMAS, trials: int = 16, output: str | None = "initlab-demo.png",
             out: TextIO | None = None) -> list[DemoResult]:
    """Run the demo experiment and print it.

    Parameters
    ----------
    depth, width : int, default 8 and 10
        Hidden layers and units per layer.
    activation : str, default "relu"
        Any name :func:`initlab.nn.get_activation` knows.
    batch : int, default 1
        1 uses the seed input ``X = [1, 2, 3, 4, 5]``; more draws that many standard normal
        inputs of 5 features (first row X).
    seed : int, default 0
        Seeds the weights (and the inputs beyond X).
    sigmas : tuple of float
        Standard deviations of the ``N(0, sigma^2)`` weights.
    trials : int, default 16
        Independent weight draws per initialization; the tables show the mean variances (at
        width 10 a single draw is noisy: the variance of 10 units has a ~45% spread).
    output : str or None, default "initlab-demo.png"
        Where to write the figure (needs matplotlib); None for no figure.
    out : text stream, default sys.stdout

    Returns
    -------
    list of DemoResult
        One per initialization, in the order printed.
    """
    import initlab
    from initlab import nn

    out = out or sys.stdout
    if depth < 1 or width < 1 or batch < 1 or trials < 1:
        raise ValueError(f"depth, width, batch and trials must be >= 1, got {depth}, {width}, {batch}, {trials}")
    if any(not (s >= 0 and math.isfinite(s)) for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    x = SEED_INPUT
    if batch > 1:
        x = np.concatenate([SEED_INPUT, np.random.default_rng(seed).standard_normal((batch - 1, 5))])
    act = nn.get_activation(activation)
    gain_name = getattr(act, "gain_name", "linear")

    def build() -> nn.Sequential:
        return nn.mlp(5, width, depth=depth, activation=activation, seed=seed)

    p = lambda s="": print(s, file=out)  # noqa: E731
    p(f"initlab demo: {type(act).__name__} network, {depth} hidden layers x {width} units, bias 0, "
      f"input {'X = [1, 2, 3, 4, 5]' if batch == 1 else f'{batch} samples (X and standard normals)'}")
    p("Per layer: variance of the pre-activations (W h + b), of the post-activations, and of the gradient")
    p("w.r.t. the post-activations for a standard normal output gradient; computed by initlab.analyze,")
    p(f"mean over {trials} independent weight draws.")
    results: list[DemoResult] = []
    for s in sigmas:
        gen = initlab.Generator(seed)
        r = _run_one(f"N(0, {s:g}^2)", lambda t: nn.init_weights(build(), "normal", std=float(s), bias=0.0, seed=gen), x, seed, trials)
        results.append(r)
        p()
        p(f"weights N(0, sigma^2), sigma = {s:g}")
        p(_table(r))
        p(f"    -> {r.verdict}")

    named: list[tuple[str, Any, dict[str, Any]]] = [
        ("Xavier (Glorot) normal", "xavier_normal", {}),
        (f"He (Kaiming) normal, {gain_name}", "kaiming_normal", {"nonlinearity": gain_name}),
        (f"orthogonal, gain for {gain_name}", "orthogonal", {"gain": initlab.calculate_gain(gain_name)}),
    ]
    for label, init, kw in named:
        gen = initlab.Generator(seed)
        r = _run_one(label, lambda t: nn.init_weights(build(), init, bias=0.0, seed=gen, **kw), x, seed, trials)
        results.append(r)
        p()
        p(label)
        p(_table(r))
        p(f"    -> {r.verdict}")

    gen = initlab.Generator(seed)

    def make(t: int) -> nn.Sequential:
        # Orthogonal weights with zero bias (the experiment's setting), then LSUV's rescaling. With a
        # single input a draw can leave every unit of a layer dead, which LSUV reports as an error
        # rather than dividing by zero: such a draw is replaced by the next one.
        for _ in range(100):
            net = nn.init_weights(build(), "orthogonal", bias=0.0, seed=gen)
            try:
                initlab.lsuv(net, x, orthogonal=False, seed=gen)
                return net
            except ValueError:
                continue
        raise RuntimeError("LSUV: 100 weight draws in a row left a layer without signal")

    r = _run_one("LSUV (orthogonal + unit variance)", make, x, seed, trials)
    results.append(r)
    p()
    p(r.label)
    p(_table(r))
    p(f"    -> {r.verdict}")

    p()
    p("Verdicts (per-layer factor of the pre-activation variance; kept if within "
      f"[{KEEP:g}, {1 / KEEP:.2g}]):")
    wl = max(len(r.label) for r in results)
    for r in results:
        p(f"  {r.label.ljust(wl)}  {r.verdict}")
    if output:
        try:
            _plot(results, output, f"{type(act).__name__}, {depth} x {width}")
            p(f"\nfigure written to {output}")
        except ImportError:
            p("\nno figure: matplotlib is not installed (pip install 'initlab[plot]')")
    return results


def _plot(results: list[DemoResult], path: str, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.4), layout="constrained")
    a, b = fig.subplots(1, 2)
    for r in results:
        depth = range(1, len(r.pre_var) + 1)
        clean = lambda v: [u if u > 0 and math.isfinite(u) else np.nan for u in v]  # noqa: E731
        style = "--" if r.label.startswith("N(0") else "-"
        a.plot(depth, clean(r.pre_var), style, marker="o", ms=3, label=r.label)
        b.plot(depth, clean(r.grad_var), style, marker="o", ms=3, label=r.label)
    for ax, t in ((a, "forward: pre-activation variance"), (b, "backward: gradient variance")):
        ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_title(t)
        ax.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=7)
    fig.suptitle(f"initlab demo: {title}")
    fig.savefig(path, dpi=110)
