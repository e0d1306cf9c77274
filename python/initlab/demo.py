"""``initlab demo``: why initialization matters, in one run.

The classic experiment: a network of 8 layers of 10 units, zero biases, fed the single input
``X = [1, 2, 3, 4, 5]``, with weights ``N(0, sigma^2)`` for sigma in {1e-5, 1e-3, 1e-2, 1e-1,
0.5}; per layer, the variance (``np.var`` over the 10 units) of the pre-activations ``W h`` and
of the post-activations ``phi(W h)``. Then the named initializations (Xavier, He, orthogonal,
LSUV) on the same network.

At width 10 one weight draw says little (the variance of 10 units has a ~45% spread per layer,
compounding over depth), so every row averages many independent draws and prints its
**per-layer factor** (how much the variance grows from one layer to the next) with its standard
error, beside the theory: for ReLU ``E[factor] = width * sigma^2 / 2`` (5 sigma^2 at 10 units:
He 1, Xavier 1/2); for other activations the mean-field prediction
(:func:`initlab.analysis.predict`). Verdicts come from the factor fitted over all layers.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

__all__ = ["run_demo", "DemoRow", "DemoResult", "verdict", "DEFAULT_SIGMAS", "DEFAULT_DRAWS", "KEEP_BAND"]

SEED_INPUT = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
DEFAULT_SIGMAS = (1e-5, 1e-3, 1e-2, 1e-1, 0.5)
#: Independent weight draws per row. The per-layer factor's relative standard error is
#: about 0.7/sqrt(draws) for ReLU (1.1% at 4096, 0.4% for the factor fitted over 8 layers), so
#: printed factors are within ~3% of their expectation (3 standard errors).
DEFAULT_DRAWS = 4096
#: LSUV runs the real :func:`initlab.lsuv` per draw (milliseconds each); it fixes every layer's
#: variance, so its factors have no spread and a few draws suffice.
LSUV_DRAWS = 32
#: A per-layer factor inside this band "keeps" the variance: x1.25/layer explodes, x0.84 vanishes.
KEEP_BAND = (0.9, 1 / 0.9)
# Activations for which the per-layer factor has a closed form (positively homogeneous):
# E[phi(z)^2] / E[z^2] for symmetric z.
_HOMOGENEOUS = {"relu": lambda a: 0.5, "leaky_relu": lambda a: (1 + a * a) / 2, "linear": lambda a: 1.0}


def _fit_factor(v: np.ndarray) -> float:
    """exp(slope) of the least-squares line through log(v) against the layer index."""
    v = np.asarray(v, float)
    if len(v) < 2 or not np.all(np.isfinite(v)) or not np.all(v > 0):
        return math.nan
    return float(math.exp(np.polyfit(np.arange(len(v)), np.log(v), 1)[0]))


def verdict(profile: Any, *, fixed_point: float | None = None) -> tuple[str, float, float]:
    """Classify a per-layer variance profile: ``(word, factor over all layers, factor over the last layers)``.

    The factor over all layers is fitted by least squares to ``log(variance)`` against the
    layer (every layer counts, not only the first and last). Inside :data:`KEEP_BAND` the
    variance is kept. Outside it, the factor over the deeper half of the layers decides: in the
    band, the variance **settles** at a fixed level after the first layers (saturating
    activations such as tanh converge to a fixed point); below, it **vanishes**; above, it
    **explodes**.

    A verdict must not depend on where the network stops: when theory says the variance map
    has an attracting fixed point ``fixed_point`` > 0 (``depth_stability``: SELU at the LeCun
    gain converges to 1, at torch's 3/4 gain to q* ~ 0.02; tanh above sigma_w = 1) and the
    profile moves toward it (its last layer is closer to ``fixed_point`` than its first, in
    ratio), the variance is not lost: it **keeps** (fitted factor inside the band) or
    **settles** (toward the fixed point), however few layers were run.

    Parameters
    ----------
    profile : sequence of float
        Per-layer variance (or any positive per-layer scale), input side first.
    fixed_point : float, optional
        The non-zero fixed point the theory predicts for this init, in the profile's units (None
        when there is none: the map collapses to 0, diverges, or is neutral).

    Returns
    -------
    (str, float, float)
        ``"keeps"``, ``"settles"``, ``"vanishes"`` or ``"explodes"``; the fitted factor over all
        layers; the fitted factor over the deeper half (at least the last 2 layers).
    """
    v = np.asarray(profile, float)
    lo, hi = KEEP_BAND
    if len(v) >= 2 and np.all(np.isfinite(v)) and v[0] > 0 and not np.all(v[1:] > 0):
        return "vanishes", 0.0, 0.0  # the signal died out (exactly 0 in floating point)
    g_all = _fit_factor(v)
    tail = v[-max(2, (len(v) + 1) // 2):]
    g_tail = _fit_factor(tail)
    if math.isnan(g_all):
        return "undetermined", g_all, g_tail
    if lo <= g_all <= hi:
        return "keeps", g_all, g_tail
    if fixed_point is not None and math.isfinite(fixed_point) and fixed_point > 0:
        d_first, d_last = abs(math.log(v[0] / fixed_point)), abs(math.log(v[-1] / fixed_point))
        if d_last < d_first or d_last <= math.log(hi):
            return "settles", g_all, g_tail  # converging to the theory's non-zero fixed point
    if lo <= g_tail <= hi:
        return "settles", g_all, g_tail
    return ("vanishes" if g_tail < lo else "explodes"), g_all, g_tail


@dataclass
class DemoRow:
    """One initialization of the demo network, averaged over independent weight draws.

    Attributes
    ----------
    label : str
    draws : int
        Independent weight draws averaged.
    pre_var, post_var : list of float
        Per layer: mean over draws of ``np.var`` of the pre-activations and post-activations.
    pre_var_se : list of float
        Standard error of ``pre_var`` (the spread of one draw over sqrt(draws)); at width 10
        it grows with depth, because a draw's variance is a product of per-layer factors.
    factor, factor_se : list of float
        Per layer from the second: the measured per-layer factor of the variance and its
        standard error (see :func:`run_demo`, Notes).
    theory_pre_var, theory_factor : list of float or None
        Expected ``np.var`` of the pre-activations and per-layer factor: exact for ReLU-like
        activations with Gaussian or orthogonal weights, mean-field otherwise; None where
        no theory applies.
    theory_name : str
        ``"exact"``, ``"mean-field"``, ``"by construction"`` or ``""``.
    growth, growth_tail : float
        Factor fitted over all layers and over the deeper half, from the measured factors.
    theory_growth : float
        The same fit on the theory's profile (NaN without theory).
    verdict : str
        ``"keeps"``, ``"settles"``, ``"vanishes"`` or ``"explodes"`` (see :func:`verdict`).
    theory_verdict : str
        The verdict of the theory's profile ("" without theory).
    """

    label: str
    draws: int
    pre_var: list[float]
    post_var: list[float]
    pre_var_se: list[float]
    factor: list[float]
    factor_se: list[float]
    theory_pre_var: list[float] | None
    theory_factor: list[float] | None
    theory_name: str
    growth: float
    growth_tail: float
    theory_growth: float
    verdict: str
    theory_verdict: str
    kind: str = "named"
    #: The attracting non-zero fixed point of the mean-field variance map for this init, in
    #: ``pre_var``'s units (NaN where there is none); the verdict judges convergence toward it.
    fixed_point: float = math.nan

    def describe(self) -> str:
        """The verdict in words, with the numbers behind it."""
        g = self.growth
        if self.verdict == "vanishes" and g == 0.0:
            return "vanishes: the signal underflows to exactly 0"
        if self.verdict == "settles" and math.isfinite(self.fixed_point):
            return (f"settles toward the fixed point {self.fixed_point:.3g} (theory): at {self.pre_var[-1]:.3g} after "
                    f"{len(self.pre_var)} layers, x{g:.3g} per layer over all layers, x{self.growth_tail:.3g} over "
                    "the deeper half")
        if self.verdict == "settles":
            return (f"settles near {self.pre_var[-1]:.3g}: x{g:.3g} per layer over all layers, "
                    f"x{self.growth_tail:.3g} per layer over the deeper half")
        return f"{self.verdict}: x{g:.3g} per layer over all layers"

    def table(self) -> str:
        """Per layer: measured and expected variances, measured and expected factor."""
        th = self.theory_name or "theory"
        head = ("layer", "pre-act var", "± se", f"{th}", "post-act var", "factor", "± se", f"{th} factor")
        rows = [head]
        for i in range(len(self.pre_var)):
            tv = f"{self.theory_pre_var[i]:.3e}" if self.theory_pre_var else "-"
            if i == 0:
                f = se = tf = ""
            else:
                f = f"x{self.factor[i - 1]:.4g}" if math.isfinite(self.factor[i - 1]) else "-"
                se = f"{self.factor_se[i - 1]:.2g}" if math.isfinite(self.factor_se[i - 1]) else "-"
                tf = f"x{self.theory_factor[i - 1]:.4g}" if self.theory_factor else "-"
            pse = f"{self.pre_var_se[i]:.2g}" if math.isfinite(self.pre_var_se[i]) else "-"
            rows.append((str(i + 1), f"{self.pre_var[i]:.3e}", pse, tv, f"{self.post_var[i]:.3e}", f, se, tf))
        w = [max(len(r[k]) for r in rows) for k in range(len(head))]
        lines = ["  ".join(c.rjust(w[k]) for k, c in enumerate(r)) for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.label} ({self.draws} draws)\n{self.table()}\n-> {self.describe()}"


@dataclass
class DemoResult:
    """Everything :func:`run_demo` printed: the setting and one :class:`DemoRow` per init."""

    activation: str
    depth: int
    width: int
    rows: list[DemoRow] = field(default_factory=list)
    figure: str | None = None

    def __getitem__(self, key: int | str) -> DemoRow:
        if isinstance(key, str):
            for r in self.rows:
                if r.label == key or r.label.startswith(key):
                    return r
            raise KeyError(f"no row {key!r}; rows: {[r.label for r in self.rows]}")
        return self.rows[key]

    def __iter__(self):  # noqa: ANN204
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def summary(self) -> str:
        """One line per init: measured factor ± se, theory, verdict."""
        wl = max(len(r.label) for r in self.rows)
        head = f"  {'init'.ljust(wl)}  {'factor/layer (fit)':>18}  {'theory':>8}  verdict"
        lines = [head, "  " + "-" * (len(head) + 30)]
        for r in self.rows:
            se = _fit_se(r)
            meas = f"x{r.growth:.3g}" + (f" ± {se:.2g}" if math.isfinite(se) and se > 0 else "")
            th = f"x{r.theory_growth:.3g}" if math.isfinite(r.theory_growth) else "-"
            lines.append(f"  {r.label.ljust(wl)}  {meas:>18}  {th:>8}  {r.describe()}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return "\n\n".join(str(r) for r in self.rows) + "\n\n" + self.summary()


def _fit_se(r: DemoRow) -> float:
    """Standard error of the fitted factor from the per-layer factors' errors (delta method)."""
    f = np.asarray(r.factor, float)
    se = np.asarray(r.factor_se, float)
    if not (np.all(np.isfinite(f)) and np.all(f > 0) and np.all(np.isfinite(se))):
        return math.nan
    n = len(f) + 1
    x = np.arange(n) - (n - 1) / 2
    w = x / np.sum(x * x)  # slope weights on log v_l; log v_l = sum of log factors up to l
    # d slope / d log f_k = sum_{l >= k} w_l
    c = np.array([w[k + 1:].sum() for k in range(len(f))])
    return float(r.growth * math.sqrt(np.sum((c * se / f) ** 2)))


# ---- theory -----------------------------------------------------------------------------


def _theory(act_name: str, slope: float, act: Any, sw2: list[float], depth: int, width: int) -> tuple[list[float], list[float], str]:
    """Expected E[ms(z_l)] per layer and the per-layer factors for weight variances ``sw2`` (fan_in * var)."""
    ms_x = float(np.mean(SEED_INPUT**2))
    if act_name in _HOMOGENEOUS:
        # Exact at any width: E[|z_{l+1}|^2 | h_l] = width * sigma^2 |h_l|^2 and, z_l being
        # sign-symmetric, E[|phi(z_l)|^2] = c * E[|z_l|^2].
        c = _HOMOGENEOUS[act_name](slope)
        q = [sw2[0] * ms_x]
        for l in range(1, depth):
            q.append(sw2[l] * c * q[-1])
        return q, [q[l] / q[l - 1] for l in range(1, depth)], "exact"
    from .analysis import predict
    from .nn import Linear, mlp

    # predict reads sigma_w^2 = fan_in * mean(W^2) from the weights: constant weights give it exactly.
    net = mlp(5, width, depth, activation=act, bias=False)
    lins = [m for m in net if isinstance(m, Linear)]  # (the only layers with weights here)
    for lin, s2 in zip(lins, sw2):
        lin.weight[...] = math.sqrt(s2 / lin.in_features)
    q = [float(v) for v in predict(net, ms_x).q]
    return q, [q[l] / q[l - 1] if q[l - 1] > 0 else math.nan for l in range(1, depth)], "mean-field"


# ---- measurement ------------------------------------------------------------------------


def _haar(gen: Any, n: int, rows: int, cols: int) -> np.ndarray:
    """n independent Haar-distributed (semi-)orthogonal matrices (rows x cols), torch's convention.

    QR of Gaussian matrices drawn by initlab, signs fixed by diag(R) (Mezzadri 2007): the
    distribution of :func:`initlab.orthogonal_`, batched (one call per matrix would take seconds).
    """
    tall = rows >= cols
    a = gen.normal((n, rows, cols) if tall else (n, cols, rows), dtype=np.float32).astype(np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q if tall else np.swapaxes(q, 1, 2)


def _measure(weights: list[np.ndarray], phi: Any) -> dict[str, np.ndarray]:
    """Forward X through a batch of networks; per draw and layer: var and mean square of z and phi(z)."""
    h = np.broadcast_to(SEED_INPUT, (weights[0].shape[0], SEED_INPUT.size))
    pre, post, ms = [], [], []
    with np.errstate(under="ignore"):
        for w in weights:
            z = np.matmul(w, h[:, :, None])[:, :, 0]
            h = phi(z)
            pre.append(z.var(axis=1))
            post.append(h.var(axis=1))
            ms.append(np.mean(z * z, axis=1))
    return {"pre": np.array(pre), "post": np.array(post), "ms": np.array(ms)}


def _factors_from_ms(ms: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-layer factor: mean over draws of ms(z_l) / ms(z_{l-1}), and its standard error.

    E[ms(z_l) / ms(z_{l-1})] is exactly the expected per-layer factor for Gaussian or
    orthogonal weights and ReLU-like activations, with a small spread per draw (unlike the
    ratio of the mean variances, which is dominated by rare large draws at width 10). Draws
    whose previous layer is exactly 0 (signal died) have no ratio and are left out.
    """
    f, se = [], []
    for l in range(1, ms.shape[0]):
        ok = ms[l - 1] > 0
        if not ok.any():
            f.append(0.0)
            se.append(math.nan)
            continue
        r = ms[l][ok] / ms[l - 1][ok]
        f.append(float(r.mean()))
        se.append(float(r.std(ddof=1) / math.sqrt(r.size)) if r.size > 1 else math.nan)
    return f, se


def _factors_from_var(pre: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-layer factor as the ratio of the mean variances of consecutive layers, with its
    delta-method standard error ``sd(a - R b) / (sqrt(n) mean(b))``.

    Used for activations that are not positively homogeneous (tanh, sigmoid, ...): there the
    mean of per-draw ratios is not the ratio of the expected variances, while the variances
    are bounded, so their means converge quickly.
    """
    f, se = [], []
    n = pre.shape[1]
    for l in range(1, pre.shape[0]):
        a, b = pre[l], pre[l - 1]
        mb = b.mean()
        if not mb > 0:
            f.append(0.0)
            se.append(math.nan)
            continue
        r = a.mean() / mb
        f.append(float(r))
        se.append(float(np.std(a - r * b, ddof=1) / (math.sqrt(n) * mb)) if n > 1 else math.nan)
    return f, se


def _factors(meas: dict[str, np.ndarray], homogeneous: bool) -> tuple[list[float], list[float]]:
    return _factors_from_ms(meas["ms"]) if homogeneous else _factors_from_var(meas["pre"])


def _fixed_point(act_name: str, slope: float, sw2: float) -> float | None:
    """The attracting non-zero fixed point q* of the mean-field variance map at weight variance
    ``sw2`` (fan_in * var), or None (collapse to 0, divergence, a neutral map: ReLU-like)."""
    if act_name in _HOMOGENEOUS or not (math.isfinite(sw2) and sw2 > 0):
        return None
    from .analysis import depth_stability

    try:
        st = depth_stability(act_name, math.sqrt(sw2))
    except ValueError:  # pragma: no cover - the demo's activations are all registered
        return None
    if math.isfinite(st.q_star) and st.q_star > 0 and st.signal_growth < 1.0:
        return float(st.q_star)
    return None


def _row(label: str, kind: str, draws: int, meas: dict[str, np.ndarray], factors: tuple[list[float], list[float]],
         theory: tuple[list[float], list[float], str] | None, width: int, fixed_point: float | None = None) -> DemoRow:
    pre = [float(v) for v in meas["pre"].mean(axis=1)]
    post = [float(v) for v in meas["post"].mean(axis=1)]
    n = meas["pre"].shape[1]
    pre_se = [float(v) / math.sqrt(n) for v in meas["pre"].std(axis=1, ddof=1)] if n > 1 else [math.nan] * len(pre)
    f, se = factors
    # The profile the verdict reads: layer 1's variance carried forward by the measured factors.
    prof = np.concatenate([[pre[0]], pre[0] * np.cumprod(f)]) if pre[0] > 0 else np.array(pre)
    # np.var over the units is (n - 1) / n of the mean square the theory's q is
    fp_var = fixed_point * (width - 1) / width if fixed_point is not None else None
    word, g, gt = verdict(prof, fixed_point=fp_var)
    t_pre = t_f = None
    tname, tword, tg = "", "", math.nan
    if theory is not None:
        q, t_f, tname = theory
        t_pre = [v * (width - 1) / width for v in q]
        tword, tg, _ = verdict(q, fixed_point=fixed_point)
    return DemoRow(label, draws, pre, post, pre_se, f, se, t_pre, t_f, tname, g, gt, tg, word, tword, kind,
                   fp_var if fp_var is not None else math.nan)


# ---- the demo ---------------------------------------------------------------------------


def run_demo(*, depth: int = 8, width: int = 10, activation: str = "relu", seed: int = 0, sigmas: tuple[float, ...] = DEFAULT_SIGMAS,
             draws: int = DEFAULT_DRAWS, lsuv_draws: int = LSUV_DRAWS, output: str | None = "initlab-demo.png",
             out: TextIO | None = None) -> DemoResult:
    """Run the demo experiment, print it, and draw its figure.

    Parameters
    ----------
    depth, width : int, default 8 and 10
        Layers and units per layer (the first layer has 5 inputs: X = [1, 2, 3, 4, 5]).
    activation : str, default "relu"
        ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``selu``, ``gelu`` or ``linear``.
    seed : int, default 0
        Seeds every weight draw; each row takes its own stream, so rows are independent.
    sigmas : tuple of float
        Standard deviations of the ``N(0, sigma^2)`` rows.
    draws : int, default 4096
        Independent weight draws per row (Gaussian and orthogonal rows).
    lsuv_draws : int, default 32
        Draws for the LSUV row (each runs :func:`initlab.lsuv`; LSUV fixes every layer's
        variance to 1, so its factors have no spread).
    output : str or None, default "initlab-demo.png"
        Where to write the figure; None for none. The caller validates the path
        (``initlab demo`` does so before any work).
    out : text stream, default sys.stdout

    Returns
    -------
    DemoResult

    Notes
    -----
    Per-layer factor: the mean over draws of ``ms(z_l) / ms(z_{l-1})`` (ms = mean square over
    the units). Its expectation is exactly the expected per-layer factor of the variance for
    ReLU-like activations (``width * sigma^2 * E[phi(z)^2] / E[z^2]``), and its spread per
    draw is small, so ``draws`` of them give a relative standard error of about
    ``0.7 / sqrt(draws)``. For other activations (tanh, ...) the factor is the ratio of the
    mean variances of consecutive layers (bounded, so it converges quickly), with a
    delta-method standard error.
    The mean variances themselves (the table's columns) converge much more slowly at width 10.

    Determinism: the same arguments print the same numbers on every run and machine
    (initlab's Philox draws; float64 arithmetic).
    """
    import initlab
    from .nn import get_activation

    out = out or sys.stdout
    problems = []
    for nm, v in (("depth", depth), ("width", width), ("draws", draws), ("lsuv_draws", lsuv_draws)):
        if not isinstance(v, (int, np.integer)) or v < (2 if nm in ("depth", "draws") else 1):
            problems.append(f"{nm} must be an int >= {2 if nm in ('depth', 'draws') else 1}, got {v!r}")
    bad = [s for s in sigmas if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0)]
    if bad:
        problems.append(f"sigmas must be finite and > 0, got {bad}")
    if problems:
        raise ValueError("; ".join(problems))
    act = get_activation(activation)
    # By class, not gain_name: GELU inherits the base class's "linear" gain name.
    act_name = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "SELU": "selu",
                "GELU": "gelu"}.get(type(act).__name__, "linear")
    slope = float(getattr(act, "negative_slope", 0.0))
    phi = act.phi if hasattr(act, "phi") else (lambda z: z)
    gain_name = act_name if act_name != "gelu" else "relu"
    gain = initlab.calculate_gain(gain_name, slope if act_name == "leaky_relu" else None)
    shapes = [(width, 5)] + [(width, width)] * (depth - 1)
    title = f"{type(act).__name__ if hasattr(act, 'phi') else 'linear'}, {depth} layers x {width} units"

    p = lambda s="": print(s, file=out)  # noqa: E731
    p(f"initlab demo: {title}, bias 0, input X = [1, 2, 3, 4, 5]")
    p("Per layer: variance (np.var over the units) of the pre-activations z = W h and of the post-activations")
    p(f"phi(z), mean over {draws} independent weight draws per row ({lsuv_draws} for LSUV); 'factor' is the")
    p("per-layer factor of the variance with its standard error, beside the theory ("
      + ("exact for this activation" if act_name in _HOMOGENEOUS else "mean-field, for infinitely wide layers") + ").")
    if act_name == "relu":
        p(f"ReLU, {width} units: the variance grows by width * sigma^2 / 2 = {width / 2:g} sigma^2 per layer "
          "(He: 1, Xavier: 1/2).")
    lo, hi = KEEP_BAND
    p(f"Verdict: the per-layer factor fitted over all layers; inside [{lo:.2f}, {hi:.2f}] the variance is kept.")

    result = DemoResult(activation=act_name, depth=depth, width=width)
    stream = 0

    def gaussian_row(label: str, kind: str, stds: list[float]) -> DemoRow:
        nonlocal stream
        gen = initlab.Generator(seed, stream=stream * 1000)  # rows never share a stream
        stream += 1
        # Drawn in float32 (half the time of float64 draws), propagated in float64.
        ws = [gen.normal((draws, *sh), std=s, dtype=np.float32).astype(np.float64) for sh, s in zip(shapes, stds)]
        meas = _measure(ws, phi)
        sw2 = [sh[1] * s * s for sh, s in zip(shapes, stds)]
        return _row(label, kind, draws, meas, _factors(meas, act_name in _HOMOGENEOUS),
                    _theory(act_name, slope, act, sw2, depth, width), width, _fixed_point(act_name, slope, sw2[-1]))

    def show(r: DemoRow) -> None:
        result.rows.append(r)
        p()
        p(str(r))

    for s in sigmas:
        show(gaussian_row(f"N(0, {s:g}^2)", "sigma", [float(s)] * depth))

    xav = []
    he = []
    for sh in shapes:
        fi, fo = initlab.compute_fans(sh)
        xav.append(math.sqrt(2.0 / (fi + fo)))
        he.append(gain / math.sqrt(fi))
    show(gaussian_row("Xavier (Glorot) normal", "named", xav))
    show(gaussian_row(f"He (Kaiming) normal, {gain_name} gain", "named", he))

    gen = initlab.Generator(seed, stream=stream * 1000)
    stream += 1
    ws = [gain * _haar(gen, draws, *sh) for sh in shapes]
    meas = _measure(ws, phi)
    # fan_in * mean(W^2) of a (semi-)orthogonal matrix with gain g: g^2 * min(rows, cols) / rows.
    sw2 = [gain * gain * min(sh) / sh[0] for sh in shapes]
    show(_row(f"orthogonal, {gain_name} gain", "named", draws, meas, _factors(meas, act_name in _HOMOGENEOUS),
              _theory(act_name, slope, act, sw2, depth, width), width, _fixed_point(act_name, slope, sw2[-1])))

    show(_lsuv_row(act, depth, width, seed, lsuv_draws, phi, shapes))

    p()
    p(f"Summary (factor fitted over all {depth} layers; verdict: inside [{lo:.2f}, {hi:.2f}] keeps, below vanishes, "
      "above explodes; 'settles': levels off after the first layers, or converges toward the non-zero fixed point "
      "theory predicts, however few layers were run):")
    p(result.summary())
    if output:
        _plot(result, output, title)
        result.figure = str(output)
        p(f"\nfigure written to {output}")
    return result


def _lsuv_row(act: Any, depth: int, width: int, seed: int, n: int, phi: Any, shapes: list[tuple[int, int]]) -> DemoRow:
    """LSUV (orthonormal init, then each layer's variance to 1) by :func:`initlab.lsuv`, n draws."""
    import initlab
    from .nn import Linear, init_weights, mlp

    x = SEED_INPUT[None]
    gen = initlab.Generator(seed, stream=99_000)
    weights: list[list[np.ndarray]] = [[] for _ in shapes]
    skipped = 0
    while len(weights[0]) < n:
        net = mlp(5, width, depth, activation=act, seed=0)
        init_weights(net, "orthogonal", bias=0.0, seed=gen)  # in place
        try:
            initlab.lsuv(net, x, orthogonal=False, seed=gen)
        except ValueError:
            # With a single input every unit of a layer can be dead (ReLU); LSUV reports that
            # rather than dividing by zero, and the draw is replaced by the next one.
            skipped += 1
            if skipped > 100 * n:
                raise RuntimeError("LSUV: too many draws left a layer without signal") from None
            continue
        for k, lin in enumerate(m for m in net if isinstance(m, Linear)):
            weights[k].append(lin.weight.copy())
    meas = _measure([np.stack(w) for w in weights], phi)
    # LSUV sets each layer's variance, so the ratio of the mean variances is the factor (no spread).
    f, se = _factors_from_var(meas["pre"])
    theory = ([width / (width - 1)] * depth, [1.0] * (depth - 1), "by construction")  # np.var = 1 <=> ms = n/(n-1) * 1
    row = _row("LSUV (orthogonal + unit variance)", "named", n, meas, (f, se), theory, width)
    return row


# ---- the figure -------------------------------------------------------------------------


def _plot(result: DemoResult, path: str, title: str) -> None:
    from ._plotstyle import color_for, finish_axes, new_figure

    fig, (a, b, c) = new_figure(3, width=16, height=5.0)
    sig = [r for r in result.rows if r.kind == "sigma"]
    named = [r for r in result.rows if r.kind == "named"]
    greys = ["#08306b", "#2171b5", "#6baed6", "#9e9ac8", "#54278f", "#000000"]
    layers = np.arange(1, result.depth + 1)
    floor = 1e-10
    # (a) the sigma sweep, absolute, on an axis that stops at `floor`: lines that fall below it
    # are labelled with where they end instead of stretching the axis to 1e-77.
    top = 1.0
    for k, r in enumerate(sig):
        col = greys[k % len(greys)]
        v = np.array(r.pre_var)
        lab = r.label
        if v[-1] < floor:
            lab += f" (→ {v[-1]:.0e} at layer {result.depth})" if v[-1] > 0 else " (→ 0)"
        a.plot(layers, np.where(v > 0, v, np.nan), "-o", color=col, ms=3.5, lw=1.6, label=lab)
        if r.theory_pre_var:
            a.plot(layers, r.theory_pre_var, ":", color=col, lw=1.2)
        top = max(top, float(np.nanmax(v)))
    a.set_yscale("log")
    a.set_ylim(floor, top * 1e4)  # headroom for the legend
    finish_axes(a, "layer", "pre-activation variance (np.var over units)", "N(0, σ²) weights (dotted: theory)")
    a.legend(fontsize=7.5, loc="upper right")
    # (b) variance relative to layer 1: He flat, Xavier halving, visible at a glance.
    show = named + [r for r in sig if r.verdict != "vanishes"]
    lo_b, hi_b = 1.0, 1.0
    for k, r in enumerate(show):
        col = color_for(r.label, k) if r.kind == "named" else "#54278f"
        rel = np.array(r.pre_var) / r.pre_var[0]
        b.plot(layers, rel, "-o", color=col, ms=3.5, lw=1.8, label=f"{r.label}: {r.verdict}")
        if r.theory_pre_var:
            t = np.array(r.theory_pre_var) / r.theory_pre_var[0]
            b.plot(layers, t, ":", color=col, lw=1.2)
            lo_b, hi_b = min(lo_b, t.min()), max(hi_b, t.max())
        lo_b, hi_b = min(lo_b, rel.min()), max(hi_b, rel.max())
    b.set_yscale("log", base=2)
    b.set_ylim(max(lo_b / 2, 2.0**-12), min(hi_b * 2, 2.0**12))
    b.axhline(1.0, color="0.3", lw=0.8)
    from matplotlib.ticker import FuncFormatter

    b.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}" if v >= 1 else f"×1/{1 / v:g}"))
    finish_axes(b, "layer", "variance relative to layer 1 (log₂ scale)", "named inits (dotted: theory)")
    b.legend(fontsize=7.5, loc="best")
    # (c) the per-layer factor, measured (with ±2 se) against theory, with the "keeps" band.
    lo, hi = KEEP_BAND
    c.axhspan(lo, hi, color="0.85", alpha=0.6, lw=0, label=f"keeps: [{lo:.2f}, {hi:.2f}]")
    trans = np.arange(2, result.depth + 1)
    ymin, ymax = 0.4, 2.0
    for k, r in enumerate(show):
        col = color_for(r.label, k) if r.kind == "named" else "#54278f"
        f = np.array(r.factor)
        se = np.array(r.factor_se)
        c.errorbar(trans + (k - len(show) / 2) * 0.06, f, yerr=2 * np.nan_to_num(se), fmt="-o", color=col, ms=3.5, lw=1.5,
                   capsize=2, label=r.label)
        if r.theory_factor:
            c.plot(trans, r.theory_factor, ":", color=col, lw=1.2)
        ymin, ymax = min(ymin, float(np.nanmin(f)) * 0.8), max(ymax, float(np.nanmax(f)) * 1.2)
    c.set_yscale("log", base=2)
    c.set_ylim(max(ymin, 2.0**-6), min(ymax, 2.0**6))
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo_c, hi_c = c.get_ylim()
    ticks = [t for t in (1 / 64, 1 / 32, 1 / 16, 1 / 8, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2, 4, 8, 16, 32, 64) if lo_c <= t <= hi_c]
    c.yaxis.set_major_locator(FixedLocator(ticks))
    c.yaxis.set_minor_locator(NullLocator())
    c.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"×{v:g}"))
    finish_axes(c, "layer", "per-layer factor: var(layer) / var(layer − 1)", "per-layer factor ± 2 se (dotted: theory)")
    c.legend(fontsize=7.5, loc="best")
    fig.suptitle(f"initlab demo: {title}, input X = [1…5], bias 0; {sig[0].draws if sig else ''} draws per row")
    fig.savefig(path, dpi=120)
