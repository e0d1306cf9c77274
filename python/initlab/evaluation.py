"""Evaluation by training: which initialization actually helps.

:func:`evaluate` trains the same network once per initialization and seed on a small data set
that ships with scikit-learn (the 8x8 handwritten digits; nothing is downloaded) and records
what practitioners compare: train and test loss curves, final test accuracy (mean and spread
over seeds), the steps needed to reach a loss threshold, how rough the loss curve is, per-layer
gradient norms over the first steps, and wall time. The result, an :class:`Evaluation`, prints
as a table, converts to JSON and back, and plots.

Backends: :mod:`initlab.nn` networks train on NumPy (SGD with momentum or Adam, mini-batches, a
fixed step budget, softmax cross-entropy); a factory returning a ``torch.nn.Module`` trains with
``torch.optim``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, cast

import numpy as np

__all__ = ["evaluate", "Evaluation", "InitResult", "parse_init", "DEFAULT_INITS", "DEFAULT_STEPS"]

#: The initializations compared when none are given: one badly scaled, the classic rules, LSUV.
DEFAULT_INITS = ("normal:std=0.01", "xavier_normal", "kaiming_normal", "orthogonal", "lsuv")
_DEFAULT_LR = {"sgd": 0.01, "adam": 1e-3}
#: The default step budget: about 28 passes over the digits' training split at batch 64, where
#: the test accuracy of a well-initialized 10 x 64 tanh MLP has levelled off (~96%).
DEFAULT_STEPS = 600
# Spec names that are not initializer functions.
_SPECIAL = ("default", "lsuv", "auto")
# Fills that take no random draw and no fan (accepted, but pointless for a network's weights).
_NOT_INITS = {"calculate_gain", "compute_fans"}
_INSTALL_HINT = "pip install initlab[evaluate]"


# ---- init specs -----------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()


def parse_init(spec: str) -> tuple[str, dict[str, Any]]:
    """Split an init spec ``"name:key=value,key=value"`` into its name and options.

    Values are read as int, float, bool (``true``/``false``), ``none`` or else kept as strings:
    ``"normal:std=0.01"`` -> ``("normal", {"std": 0.01})``,
    ``"kaiming_normal:nonlinearity=tanh,mode=fan_out"`` -> ``("kaiming_normal", {...})``.

    Raises
    ------
    ValueError
        An option without ``=`` or an empty name.
    """
    if not isinstance(spec, str):
        raise TypeError(f"an init spec is a string such as 'normal:std=0.01', got {type(spec).__name__}")
    name, _, rest = spec.partition(":")
    name = name.strip().rstrip("_")
    if not name:
        raise ValueError(f"init spec {spec!r} has no name")
    opts: dict[str, Any] = {}
    bad = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip():
            bad.append(part)
            continue
        opts[key.strip()] = _parse_value(val)
    if bad:
        raise ValueError(f"init spec {spec!r}: options must be key=value, got {bad}")
    return name, opts


def _initializer(name: str) -> Callable[..., Any] | None:
    import initlab

    if name in _NOT_INITS or name in _SPECIAL:
        return None
    fn = getattr(initlab, name + "_", None)
    return fn if callable(fn) else None


def _scheme(name: str) -> Callable[..., Any] | None:
    """A function of :mod:`initlab.schemes` with that name, when the module exists."""
    try:
        schemes = importlib.import_module("initlab.schemes")
    except ImportError:
        return None
    fn = getattr(schemes, name, None)
    return fn if inspect.isfunction(fn) and not name.startswith("_") else None


def _known_names() -> list[str]:
    import initlab

    names = sorted(n[:-1] for n in initlab.__all__ if n.endswith("_") and n[:-1] not in _NOT_INITS)
    try:
        schemes = importlib.import_module("initlab.schemes")
        names += sorted(n for n in getattr(schemes, "__all__", ()) if inspect.isfunction(getattr(schemes, n, None)))
    except ImportError:
        pass
    return list(_SPECIAL) + names


# ---- data -----------------------------------------------------------------------------------


@dataclass
class _Data:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: 1797 8x8 images (pixel values 0..16) and their labels 0..9.

    Read straight from the file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``,
    what ``load_digits`` reads) when it is there: importing scikit-learn itself takes seconds.
    """
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise ImportError(f"initlab.evaluate on 'digits' needs scikit-learn (the data set ships with it): {_INSTALL_HINT}")
    for root in spec.submodule_search_locations or ():
        path = os.path.join(root, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            d = np.loadtxt(path, delimiter=",")
            if d.shape == (1797, 65):
                return d[:, :-1], d[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def _load(data: Any, test_fraction: float = 0.25) -> _Data:
    """The digits (standardized with the training split's statistics) or user arrays."""
    if isinstance(data, str):
        if data != "digits":
            raise ValueError(f"unknown data set {data!r}; accepted: 'digits' or a tuple (x_train, y_train, x_test, y_test)")
        x, y = _digits()
        # A fixed, stratified split: the seeds vary the initialization and the batch order only.
        rng = np.random.default_rng(0)
        test = np.zeros(len(y), bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            test[rng.permutation(idx)[: int(round(test_fraction * len(idx)))]] = True
        xtr, ytr, xte, yte = x[~test], y[~test], x[test], y[test]
        name = "digits"
    else:
        try:
            xtr, ytr, xte, yte = (np.asarray(a) for a in data)
        except (TypeError, ValueError):
            raise TypeError("data must be 'digits' or a tuple (x_train, y_train, x_test, y_test) of arrays") from None
        name = "arrays"
        problems = []
        if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
            problems.append(f"x_train and x_test must be 2-d with the same number of features, got {xtr.shape} and {xte.shape}")
        if ytr.shape != (len(xtr),) or yte.shape != (len(xte),):
            problems.append(f"labels must be 1-d with one label per row, got {ytr.shape} for {len(xtr)} and {yte.shape} for {len(xte)} rows")
        for nm, yy in (("y_train", ytr), ("y_test", yte)):
            if yy.size and (not np.issubdtype(yy.dtype, np.integer) or yy.min() < 0):
                problems.append(f"{nm} must hold class indices >= 0 (integers)")
        if problems:
            raise ValueError("; ".join(problems))
    xtr = xtr.astype(np.float64)
    xte = xte.astype(np.float64)
    mu = xtr.mean(axis=0)
    sd = xtr.std(axis=0)
    sd[sd == 0] = 1.0  # constant pixels (digits' borders) stay 0 after centring
    return _Data(name, (xtr - mu) / sd, ytr.astype(np.int64), (xte - mu) / sd, yte.astype(np.int64))


# ---- results --------------------------------------------------------------------------------


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, list):
        return [_nan_to_none(u) for u in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _none_to_nan(v: Any) -> Any:
    if isinstance(v, list):
        return [_none_to_nan(u) for u in v]
    return math.nan if v is None else v


def _fmt_pm(mean: float, spread: float, digits: int = 1, scale: float = 1.0) -> str:
    if not math.isfinite(mean):
        return "-"
    s = f"{mean * scale:.{digits}f}"
    return s + (f" ± {spread * scale:.{digits}f}" if math.isfinite(spread) else "")


@dataclass
class InitResult:
    """Everything measured for one initialization, one entry per seed.

    Attributes
    ----------
    init : str
        The spec as given (``"normal:std=0.01"``).
    seeds : list of int
    steps : list of int
        The training steps at which the curves were evaluated (0 = before training).
    train_loss, test_loss, test_accuracy : list of list of float
        Per seed, per evaluation step: softmax cross-entropy on the whole training and test
        split, and test accuracy (fraction correct). NaN after a run diverged.
    steps_to_threshold : list of int or None
        Per seed: the first evaluation step at which the training loss was at or below the
        threshold (None: never within the budget).
    roughness : list of float
        Per seed: mean absolute second difference of ``log(train loss)`` over the evaluation
        steps. 0 for a loss that falls exponentially (or stays flat); spikes and oscillations
        raise it.
    grad_norms : list of list of list of float
        Per seed, per step of the first ``grad_steps``, per layer: the Frobenius norm of the
        gradient of the layer's weight (before the update of that step).
    layers : list of str
        The weight layers, input side first (the names of the grad_norms columns).
    wall_time : list of float
        Per seed: seconds spent initializing and training (evaluations included).
    diverged_at : list of int or None
        Per seed: the step at which the training loss became non-finite, if it did.
    """

    init: str
    seeds: list[int]
    steps: list[int]
    train_loss: list[list[float]]
    test_loss: list[list[float]]
    test_accuracy: list[list[float]]
    steps_to_threshold: list[int | None]
    roughness: list[float]
    grad_norms: list[list[list[float]]]
    layers: list[str]
    wall_time: list[float]
    diverged_at: list[int | None] = field(default_factory=list)

    @property
    def final_accuracy(self) -> np.ndarray:
        """Test accuracy at the end of training, per seed (0 for a diverged run)."""
        return np.array([a[-1] if math.isfinite(a[-1]) else 0.0 for a in self.test_accuracy])

    @property
    def accuracy_mean(self) -> float:
        """Mean final test accuracy over the seeds."""
        return float(self.final_accuracy.mean())

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation (ddof 1) of the final test accuracy over seeds (NaN for one seed)."""
        a = self.final_accuracy
        return float(a.std(ddof=1)) if len(a) > 1 else math.nan

    @property
    def final_test_loss(self) -> np.ndarray:
        """Test loss at the end of training, per seed."""
        return np.array([t[-1] for t in self.test_loss])

    def __str__(self) -> str:
        reached = [s for s in self.steps_to_threshold if s is not None]
        return (f"{self.init}: test accuracy {_fmt_pm(self.accuracy_mean, self.accuracy_std, 1, 100.0)}% over "
                f"{len(self.seeds)} seed(s), final test loss {np.nanmean(self.final_test_loss):.3f}, loss threshold reached "
                f"in {len(reached)}/{len(self.seeds)} runs" + (f" (mean step {np.mean(reached):.0f})" if reached else "")
                + f", {np.mean(self.wall_time):.2f} s per run")

    def summary(self) -> dict[str, Any]:
        """The figures :meth:`Evaluation.table` prints for this init, as numbers (NaN for none):
        ``test_accuracy_mean``/``test_accuracy_sd`` (fractions; sd with ddof 1, NaN for one seed),
        ``final_test_loss_mean`` (over seeds with a finite loss), ``steps_to_threshold_mean`` (over
        the seeds that reached it), ``threshold_reached``/``seeds``, ``roughness_mean``,
        ``grad_norm_first_layer``/``grad_norm_last_layer`` (mean over seeds and early steps) and
        ``diverged`` (runs with a non-finite loss). Only figures a seed determines: the time per
        run stays in ``wall_time``, so the summaries of two identical runs are equal."""
        def nanmean(x: Any) -> float:
            a = np.asarray(x, dtype=float)
            return float(np.nanmean(a)) if np.isfinite(a).any() else math.nan

        reached = [s for s in self.steps_to_threshold if s is not None]
        g = np.asarray(self.grad_norms, dtype=float)
        per_layer = np.nanmean(g, axis=(0, 1)) if g.size and np.isfinite(g).any() else None
        return {
            "test_accuracy_mean": self.accuracy_mean,
            "test_accuracy_sd": self.accuracy_std,
            "final_test_loss_mean": nanmean(self.final_test_loss),
            "steps_to_threshold_mean": float(np.mean(reached)) if reached else math.nan,
            "threshold_reached": len(reached),
            "seeds": len(self.seeds),
            "roughness_mean": nanmean(self.roughness),
            "grad_norm_first_layer": float(per_layer[0]) if per_layer is not None else math.nan,
            "grad_norm_last_layer": float(per_layer[-1]) if per_layer is not None else math.nan,
            "diverged": sum(d is not None for d in self.diverged_at),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (NaN becomes None), with the table's figures under
        ``"summary"`` (see :meth:`summary`) so a JSON reader need not recompute them."""
        out = {k: _nan_to_none(v) for k, v in self.__dict__.items()}
        out["summary"] = {k: _nan_to_none(v) for k, v in self.summary().items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InitResult:
        """Inverse of :meth:`to_dict` (the derived ``"summary"`` is recomputed, not read)."""
        kw = dict(d)
        kw.pop("summary", None)
        for k in ("train_loss", "test_loss", "test_accuracy", "roughness", "grad_norms", "wall_time"):
            kw[k] = _none_to_nan(kw[k])
        return cls(**kw)


class Evaluation:
    """The result of :func:`evaluate`: one :class:`InitResult` per initialization.

    Attributes
    ----------
    results : list of InitResult
        In the order the inits were given; ``evaluation["xavier_normal"]`` looks one up by spec.
    config : dict
        What was run: model, data, optimizer, learning rate, steps, batch size, seeds, loss
        threshold, evaluation interval, backend.
    """

    def __init__(self, results: list[InitResult], config: dict[str, Any]) -> None:
        self.results = list(results)
        self.config = dict(config)

    def __getitem__(self, key: int | str) -> InitResult:
        if isinstance(key, str):
            for r in self.results:
                if r.init == key:
                    return r
            raise KeyError(f"no init {key!r}; evaluated: {[r.init for r in self.results]}")
        return self.results[key]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):  # noqa: ANN204
        return iter(self.results)

    def __repr__(self) -> str:
        return f"Evaluation({len(self.results)} inits x {len(self.config.get('seeds', []))} seeds, {self.config.get('model')})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form: ``{"config": ..., "results": [...]}``; see :meth:`from_dict`."""
        return {"config": _nan_to_none(dict(self.config)), "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        """Rebuild an Evaluation from :meth:`to_dict`'s output (e.g. after ``json.load``)."""
        if not isinstance(d, dict) or "results" not in d or "config" not in d:
            raise ValueError("expected a dict with 'config' and 'results', as Evaluation.to_dict() gives")
        return cls([InitResult.from_dict(r) for r in d["results"]], d["config"])

    def table(self) -> str:
        """One row per init: accuracy, loss, speed, smoothness, early gradients, time."""
        c = self.config
        thr = c.get("threshold")
        head = ("init", "test acc % (mean ± sd)", "test loss", f"steps to loss<={thr:g}", "roughness",
                "grad norm first/last layer", "time s")
        rows = [head]
        for r in self.results:
            reached = [s for s in r.steps_to_threshold if s is not None]
            if reached:
                stt = f"{np.mean(reached):.0f}" + (f" ({len(reached)}/{len(r.seeds)} seeds)" if len(reached) < len(r.seeds) else "")
            else:
                stt = f"not reached (0/{len(r.seeds)})"
            g = np.asarray(r.grad_norms, dtype=float)  # seed x step x layer
            if g.size:
                per_layer = np.nanmean(g, axis=(0, 1))
                gtxt = f"{per_layer[0]:.2g} / {per_layer[-1]:.2g}"
            else:
                gtxt = "-"
            tl = r.final_test_loss
            loss_txt = f"{np.nanmean(tl):.3f}" if np.isfinite(tl).any() else "diverged"
            rough = np.asarray(r.roughness, float)
            rows.append((r.init, _fmt_pm(r.accuracy_mean, r.accuracy_std, 1, 100.0), loss_txt, stt,
                         f"{np.nanmean(rough):.3f}" if np.isfinite(rough).any() else "-", gtxt, f"{np.mean(r.wall_time):.2f}"))
        w = [max(len(row[k]) for row in rows) for k in range(len(head))]
        lines = ["  ".join(x.ljust(w[k]) if k == 0 else x.rjust(w[k]) for k, x in enumerate(row)) for row in rows]
        lines.insert(1, "  ".join("-" * x for x in w))
        return "\n".join(lines)

    def summary(self) -> str:
        """The setting in one paragraph."""
        c = self.config
        return (f"initlab evaluate: {c.get('model')} on {c.get('data')} ({c.get('n_train')} train / {c.get('n_test')} test), "
                f"{c.get('backend')} backend, {c.get('optimizer')} lr={c.get('lr'):g}, {c.get('steps')} steps of batch "
                f"{c.get('batch_size')}, seeds {c.get('seeds')}; curves every {c.get('eval_every')} steps, "
                f"gradient norms over the first {c.get('grad_steps')} steps.")

    def __str__(self) -> str:
        notes = [f"  {r.init}: diverged (non-finite loss) in {sum(d is not None for d in r.diverged_at)} of {len(r.seeds)} runs"
                 for r in self.results if any(d is not None for d in r.diverged_at)]
        return "\n".join([self.summary(), "", self.table(), *notes])

    def plot(self, path: Any = None, *, title: str | None = None) -> Any:
        """Draw the comparison: loss curves with spread bands, accuracy with error bars, gradient norms.

        Three panels: training (solid) and test (dashed) loss against steps, the mean over seeds
        with a band from the lowest to the highest seed; final test accuracy per init, mean with
        a ± one standard deviation error bar and every seed as a dot; the mean gradient norm of
        each layer's weight over the first steps.

        Parameters
        ----------
        path : str or path-like, optional
            Where to write the figure (PNG, SVG, PDF by extension); None returns the figure only.
        title : str, optional

        Returns
        -------
        matplotlib.figure.Figure
        """
        from ._plotstyle import color_for, finish_axes, new_figure

        fig, (a, b, g) = new_figure(3, width=15.5, height=4.8, bottom=0.17)
        labels = [r.init for r in self.results]
        for k, r in enumerate(self.results):
            col = color_for(r.init, k)
            steps = np.asarray(r.steps)
            for curve, style, lab in ((r.train_loss, "-", f"{r.init} (train)"), (r.test_loss, "--", None)):
                arr = np.asarray(curve, float)
                with np.errstate(all="ignore"):
                    mean = np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]
                a.plot(steps, mean, style, color=col, lw=1.6, label=lab)
                if arr.shape[0] > 1:
                    a.fill_between(steps, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0), color=col, alpha=0.15, lw=0)
            acc = r.final_accuracy * 100
            sd = r.accuracy_std * 100
            b.errorbar([k], [acc.mean()], yerr=[sd] if math.isfinite(sd) else None, fmt="o", color=col, ms=7, capsize=5, lw=1.6)
            b.scatter(np.full(len(acc), k) + 0.12, acc, s=12, color=col, alpha=0.6, zorder=3)
            b.annotate(_fmt_pm(acc.mean(), sd, 1), (k, acc.mean()), textcoords="offset points", xytext=(0, 9),
                       ha="center", fontsize=8, color=col)
            gn = np.asarray(r.grad_norms, float)
            if gn.size:
                layer_mean = np.nanmean(gn, axis=(0, 1))
                g.plot(np.arange(1, len(layer_mean) + 1), layer_mean, "-o", color=col, ms=3.5, lw=1.5, label=r.init)
        thr = self.config.get("threshold")
        if thr:
            a.axhline(thr, color="0.4", lw=0.8, ls=":", label=f"threshold {thr:g}")
        a.set_yscale("log")
        finish_axes(a, "training step", "cross-entropy loss (nats)", "loss: train (solid), test (dashed); band = range over seeds")
        a.legend(fontsize=7.5, loc="best")
        b.set_xticks(range(len(labels)))
        b.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
        b.set_xlim(-0.6, len(labels) - 0.4)
        top = 100.0
        lows = [float(np.min(r.final_accuracy)) * 100 for r in self.results]
        b.set_ylim(max(0.0, min(lows) - 5), top + 5)  # headroom for the mean ± sd labels
        chance = 100.0 / max(1, int(self.config.get("n_classes", 10)))
        b.axhline(chance, color="0.4", lw=0.8, ls=":")
        b.annotate("chance", (len(labels) - 0.45, chance), fontsize=7, color="0.35", va="bottom", ha="right")
        finish_axes(b, None, "final test accuracy (%)", "test accuracy: mean ± sd, dots = seeds")
        g.set_yscale("log")
        finish_axes(g, "layer (input side first)", "‖∂L/∂W‖ (Frobenius), mean over first steps",
                    f"gradient norms, first {self.config.get('grad_steps')} steps")
        g.legend(fontsize=7.5, loc="best")
        c = self.config
        fig.suptitle(title or f"initlab evaluate: {c.get('model')} on {c.get('data')}, {c.get('optimizer')} lr={c.get('lr'):g}, "
                     f"{c.get('steps')} steps, {len(c.get('seeds', []))} seeds")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


# ---- the NumPy backend ----------------------------------------------------------------------


def _nn_weight_layers(model: Any) -> list[tuple[str, Any]]:
    from .nn import Conv2d, Linear

    return [(n, m) for n, m in model.named_modules() if isinstance(m, (Linear, Conv2d))]


def _following_activation(model: Any) -> dict[int, Any]:
    """id(weight layer) -> the activation module that follows it in a Sequential (None: none)."""
    from .nn import Activation, Conv2d, Linear, Sequential

    out: dict[int, Any] = {}
    for _, m in model.named_modules():
        if isinstance(m, Sequential):
            kids = list(m)
            for i, k in enumerate(kids):
                if isinstance(k, (Linear, Conv2d)):
                    nxt = None
                    for j in kids[i + 1:]:
                        if isinstance(j, (Linear, Conv2d)):
                            break
                        if isinstance(j, Activation):
                            nxt = j
                            break
                    out[id(k)] = nxt
    return out


def _auto_rule(act: Any) -> tuple[str, dict[str, Any]]:
    """The classic rule for the activation after a layer: He for ReLU-like, Xavier for tanh/sigmoid, LeCun for SELU."""
    name = getattr(act, "gain_name", None) if act is not None else None
    if name == "relu" or type(act).__name__ == "GELU":
        return "kaiming_normal", {"nonlinearity": "relu"}
    if name == "leaky_relu":
        return "kaiming_normal", {"a": act.negative_slope, "nonlinearity": "leaky_relu"}
    if name == "selu":
        return "lecun_normal", {}
    return "xavier_normal", {}


def _init_nn(model: Any, spec: str, seed: int, x_lsuv: np.ndarray) -> None:
    import initlab
    from .nn import init_weights

    name, opts = parse_init(spec)
    if name == "default":
        return
    layers = _nn_weight_layers(model)
    gen = initlab.Generator(seed)
    if name == "lsuv":
        for _, m in layers:
            if m.bias is not None:
                m.bias[...] = 0.0
        initlab.lsuv(model, x_lsuv, seed=seed, **opts)
        return
    if name == "auto":
        follow = _following_activation(model)
        for _, m in layers:
            rule, kw = _auto_rule(follow.get(id(m)))
            getattr(initlab, rule + "_")(m.weight, **kw, seed=gen)
            if m.bias is not None:
                m.bias[...] = 0.0
        return
    fn = _initializer(name)
    if fn is not None:
        init_weights(model, fn, bias=0.0, seed=gen, **opts)
        return
    sch = _scheme(name)
    if sch is not None:
        _call_scheme(sch, model, seed, opts)
        return
    raise ValueError(f"unknown init {spec!r}")


def _call_scheme(fn: Callable[..., Any], model: Any, seed: int, opts: dict[str, Any]) -> None:
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    kw = dict(opts)
    if "seed" in params and "seed" not in kw:
        kw["seed"] = seed
    fn(model, **kw)


def _grad_norms_nn(layers: list[tuple[str, Any]]) -> list[float]:
    out = []
    for _, m in layers:
        g = m.grads.get("weight")
        out.append(float(np.sqrt(np.sum(g * g))) if g is not None else 0.0)
    return out


def _loss_acc_nn(model: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from .nn.losses import softmax_cross_entropy

    with np.errstate(all="ignore"):
        logits = model.forward(x)
        if not np.isfinite(logits).all():
            return math.nan, math.nan
        loss, _ = softmax_cross_entropy(logits, y)
    return loss, float(np.mean(np.argmax(logits, axis=1) == y))


class _Run:
    """What one (init, seed) training run records."""

    def __init__(self, n_points: int, n_grad: int) -> None:
        self.n_grad = n_grad
        self.train_loss: list[float] = []
        self.test_loss: list[float] = []
        self.test_acc: list[float] = []
        self.grad: list[list[float]] = []
        self.diverged_at: int | None = None
        self.n_points = n_points

    def pad(self, n_layers: int) -> None:
        """Fill what a diverged run did not reach with NaN, so every run has the same shape."""
        for lst in (self.train_loss, self.test_loss, self.test_acc):
            lst.extend([math.nan] * (self.n_points - len(lst)))
        self.grad.extend([[math.nan] * n_layers for _ in range(self.n_grad - len(self.grad))])


def _train_nn(model: Any, spec: str, seed: int, data: _Data, cfg: dict[str, Any], x_lsuv: np.ndarray,
              tick: Callable[[int], None]) -> tuple[_Run, list[str]]:
    from .nn.losses import softmax_cross_entropy
    from .nn.optim import SGD, Adam

    params = model.parameters()
    dt = params[0].dtype if params else np.float64
    xtr, xte = data.x_train.astype(dt), data.x_test.astype(dt)
    _init_nn(model, spec, seed, x_lsuv.astype(dt))
    layers = _nn_weight_layers(model)
    opt = (SGD(model, lr=cfg["lr"], momentum=cfg["momentum"]) if cfg["optimizer"] == "sgd"
           else Adam(model, lr=cfg["lr"]))
    rng = np.random.default_rng(seed)
    eval_steps = set(cfg["eval_steps"])
    run = _Run(len(cfg["eval_steps"]), cfg["grad_steps"])
    n = len(data.y_train)
    bs = cfg["batch_size"]
    order = rng.permutation(n)
    pos = 0

    def record() -> None:
        model.eval()
        tl, _ = _loss_acc_nn(model, xtr, data.y_train)
        vl, va = _loss_acc_nn(model, xte, data.y_test)
        model.train()
        run.train_loss.append(tl)
        run.test_loss.append(vl)
        run.test_acc.append(va)

    record()
    done = 0
    for step in range(1, cfg["steps"] + 1):
        if pos + bs > n:  # a new epoch: a fresh permutation, the last partial batch dropped
            order = rng.permutation(n)
            pos = 0
        idx = order[pos:pos + bs]
        pos += bs
        opt.zero_grad()
        with np.errstate(all="ignore"):
            logits = model.forward(xtr[idx])
            loss, dlogits = softmax_cross_entropy(logits, data.y_train[idx])
            if not math.isfinite(loss):
                run.diverged_at = step
                break
            model.backward(dlogits)
        if step <= cfg["grad_steps"]:
            run.grad.append(_grad_norms_nn(layers))
        opt.step()
        if step in eval_steps:
            record()
        if step % 50 == 0:
            tick(50)
            done += 50
    tick(cfg["steps"] - done)
    run.pad(len(layers))
    return run, [n for n, _ in layers]


# ---- the torch backend ----------------------------------------------------------------------


def _torch_layers(model: Any) -> list[tuple[str, Any]]:
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]


def _init_torch(model: Any, spec: str, seed: int, x_lsuv: Any) -> None:
    import torch

    import initlab

    name, opts = parse_init(spec)
    if name == "default":
        return
    layers = _torch_layers(model)
    if name == "lsuv":
        with torch.no_grad():
            for _, m in layers:
                if m.bias is not None:
                    m.bias.zero_()
        initlab.lsuv(model, x_lsuv, seed=seed, **opts)
        return
    gen = initlab.Generator(seed)
    if name == "auto":
        # Modules in registration order (a Sequential's forward order): a weight layer takes the
        # rule of the activation that follows it before the next weight layer, if any.
        rules = {torch.nn.ReLU: "relu", torch.nn.GELU: "relu", torch.nn.LeakyReLU: "leaky_relu",
                 torch.nn.Tanh: "xavier", torch.nn.Sigmoid: "xavier", torch.nn.SELU: "selu"}
        weight_ids = {id(m) for _, m in layers}
        order = [m for m in model.modules() if id(m) in weight_ids or type(m) in rules]
        with torch.no_grad():
            for i, m in enumerate(order):
                if id(m) not in weight_ids:
                    continue
                after = order[i + 1] if i + 1 < len(order) and id(order[i + 1]) not in weight_ids else None
                kind = rules[type(after)] if after is not None else "xavier"
                if kind == "relu":
                    initlab.kaiming_normal_(m.weight, nonlinearity="relu", seed=gen)
                elif kind == "leaky_relu" and after is not None:  # (a kind other than xavier implies after)
                    initlab.kaiming_normal_(m.weight, a=after.negative_slope, nonlinearity="leaky_relu", seed=gen)
                elif kind == "selu":
                    initlab.lecun_normal_(m.weight, seed=gen)
                else:
                    initlab.xavier_normal_(m.weight, seed=gen)
                if m.bias is not None:
                    m.bias.zero_()
        return
    fn = _initializer(name)
    if fn is not None:
        with torch.no_grad():
            for _, m in layers:
                fn(m.weight, **opts, seed=gen)
                if m.bias is not None:
                    m.bias.zero_()
        return
    sch = _scheme(name)
    if sch is not None:
        _call_scheme(sch, model, seed, opts)
        return
    raise ValueError(f"unknown init {spec!r}")


def _train_torch(model: Any, spec: str, seed: int, data: _Data, cfg: dict[str, Any], x_lsuv: np.ndarray,
                 tick: Callable[[int], None]) -> tuple[_Run, list[str]]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)  # dropout and any other torch randomness inside the model
    dtype = next(model.parameters()).dtype
    as_t = lambda a: torch.as_tensor(a, dtype=dtype)  # noqa: E731
    xtr, xte = as_t(data.x_train), as_t(data.x_test)
    ytr, yte = torch.as_tensor(data.y_train), torch.as_tensor(data.y_test)
    _init_torch(model, spec, seed, as_t(x_lsuv))
    layers = _torch_layers(model)
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"]) if cfg["optimizer"] == "sgd"
           else torch.optim.Adam(params, lr=cfg["lr"]))
    rng = np.random.default_rng(seed)
    eval_steps = set(cfg["eval_steps"])
    run = _Run(len(cfg["eval_steps"]), cfg["grad_steps"])
    n, bs = len(data.y_train), cfg["batch_size"]

    def loss_acc(x: Any, y: Any) -> tuple[float, float]:
        with torch.no_grad():
            out = model(x)
            if not torch.isfinite(out).all():
                return math.nan, math.nan
            return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).double().mean())

    def record() -> None:
        model.eval()
        tl, _ = loss_acc(xtr, ytr)
        vl, va = loss_acc(xte, yte)
        model.train()
        run.train_loss.append(tl)
        run.test_loss.append(vl)
        run.test_acc.append(va)

    record()
    order, pos, done = rng.permutation(n), 0, 0
    for step in range(1, cfg["steps"] + 1):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = torch.as_tensor(order[pos:pos + bs])
        pos += bs
        opt.zero_grad()
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        if not torch.isfinite(loss):
            run.diverged_at = step
            break
        loss.backward()
        if step <= cfg["grad_steps"]:
            run.grad.append([float(m.weight.grad.norm()) if m.weight.grad is not None else 0.0 for _, m in layers])
        opt.step()
        if step in eval_steps:
            record()
        if step % 50 == 0:
            tick(50)
            done += 50
    tick(cfg["steps"] - done)
    run.pad(len(layers))
    return run, [nm for nm, _ in layers]


# ---- the driver -----------------------------------------------------------------------------


def _roughness(curve: list[float]) -> float:
    c = np.asarray(curve, float)
    c = c[np.isfinite(c) & (c > 0)]
    if len(c) < 3:
        return math.nan
    return float(np.mean(np.abs(np.diff(np.log(c), 2))))


def _steps_to(curve: list[float], steps: list[int], thr: float) -> int | None:
    for s, v in zip(steps, curve):
        if math.isfinite(v) and v <= thr:
            return int(s)
    return None


def _is_torch_module(m: Any) -> bool:
    t = sys.modules.get("torch")
    return t is not None and isinstance(m, t.nn.Module)


def _progress(total: int, enabled: bool, desc: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A tqdm bar on a terminal that appears only once a run has taken a few seconds."""
    if not (enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return (lambda k: None), (lambda: None)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return (lambda k: None), (lambda: None)
    bar = tqdm(total=total, desc=desc, unit="step", delay=3.0, file=sys.stderr, leave=False, dynamic_ncols=True)
    return bar.update, bar.close


def _one_blas_thread() -> Any:
    """Limit BLAS to one thread while the NumPy backend trains (threadpoolctl ships with scikit-learn).

    The matrices are 64 x 64: a second BLAS thread costs more in hand-off than it saves, and on a
    busy machine OpenBLAS's spinning threads slow the run several-fold. The limit does not
    change any result (each product is computed by one thread either way at these sizes).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(1, user_api="blas")


def evaluate(model: Any = "mlp", inits: Sequence[str] = DEFAULT_INITS, *, data: Any = "digits", seeds: int | Sequence[int] = 3,
             steps: int | None = None, epochs: float | None = None, optimizer: str = "sgd", lr: float | None = None,
             momentum: float = 0.9, batch_size: int = 64, threshold: float = 0.1, eval_every: int | None = None,
             grad_steps: int = 20, lsuv_batch: int = 256, progress: bool = True, **model_options: Any) -> Evaluation:
    """Train the same network once per initialization and seed, and compare.

    Parameters
    ----------
    model : "mlp" or callable, default "mlp"
        ``"mlp"``: an :func:`initlab.nn.mlp` with ``depth`` hidden layers (default 10) of
        ``width`` units (default 64), ``activation`` (default ``"tanh"``), and a linear output
        layer, trained on NumPy. A callable is a factory, called once per run with no argument
        (after ``initlab.manual_seed(seed)`` and, when torch is loaded, ``torch.manual_seed(seed)``,
        so constructor inits are seeded; both global generators are left at that state);
        it returns a fresh :mod:`initlab.nn` network or ``torch.nn.Module`` mapping
        ``(n, n_features)`` inputs to ``(n, n_classes)`` logits (torch models train with
        ``torch.optim``).
    inits : sequence of str
        Init specs ``"name:key=value,..."``: any initlab initializer without its trailing
        underscore and its options (``"normal:std=0.01"``, ``"kaiming_normal:nonlinearity=tanh"``,
        ``"orthogonal:gain=1.5"``), ``"lsuv"`` (orthonormal init then LSUV on ``lsuv_batch``
        training samples; options go to :func:`initlab.lsuv`), ``"auto"`` (per layer: He for the
        ReLU family and GELU, Xavier for tanh/sigmoid and the output layer, LeCun for SELU),
        ``"default"`` (keep the constructor's initialization), and the functions of
        :mod:`initlab.schemes` when that module is present. Biases are set to 0 (except
        ``"default"`` and schemes).
    data : "digits" or (x_train, y_train, x_test, y_test), default "digits"
        scikit-learn's 8x8 handwritten digits (1797 images, 64 features, 10 classes; shipped
        with scikit-learn, no download), split 75/25, stratified, with a fixed permutation. The
        features are standardized with the training split's mean and standard deviation.
    seeds : int or sequence of int, default 3
        An int ``n`` means seeds ``0 .. n-1``. A seed fixes the initialization and the order
        of the mini-batches.
    steps : int, optional
        The step budget (mini-batch updates); default 600, or ``epochs`` passes over the
        training split when ``epochs`` is given.
    epochs : float, optional
        Alternative budget in passes over the training split (``ceil(epochs * n_train / batch_size)``).
    optimizer : {"sgd", "adam"}, default "sgd"
        SGD with (heavy-ball) momentum ``momentum``, or Adam (betas 0.9, 0.999).
    lr : float, optional
        Learning rate; default 0.01 for SGD and 0.001 for Adam.
    momentum : float, default 0.9
    batch_size : int, default 64
    threshold : float, default 0.1
        Training-loss threshold for "steps to threshold" (cross-entropy in nats; chance level
        on 10 classes is ``log 10 = 2.30``; 0.1 is about 97% training accuracy).
    eval_every : int, optional
        Steps between evaluations of the whole train and test splits (default: ``steps // 20``, 21
        points per curve; each evaluation forwards all 1797 digits, as much as 28 training steps).
    grad_steps : int, default 20
        Record each layer's weight-gradient norm over this many first steps.
    lsuv_batch : int, default 256
        Training samples (the first ones of a seeded permutation) that LSUV measures.
    progress : bool, default True
        A progress bar (tqdm, when installed) on a terminal, shown once the run has taken more
        than 3 seconds; never when stderr is not a terminal.
    **model_options
        For ``model="mlp"``: ``depth``, ``width``, ``activation``, ``norm``, ``dtype`` (default
        float32: half the time of float64, and the comparison does not need more).

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        Bad options or unknown init names (all of them listed), checked before any training;
        an init whose options its initializer rejects (each init is tried on a throwaway
        model first).
    ImportError
        ``data="digits"`` without scikit-learn (``pip install initlab[evaluate]``).

    Notes
    -----
    Determinism: for given seeds, options, data and library versions, every number but the
    wall times is the same on every call (initlab's fills are bit-reproducible; NumPy's
    mini-batch order is seeded; the NumPy backend computes in a fixed order, in float32 unless
    ``dtype=np.float64`` is given).
    Torch models train with one intra-op thread (restored afterwards), which also makes them
    reproducible on the CPU.
    """
    opt = str(optimizer).lower()
    problems: list[str] = []
    if opt not in _DEFAULT_LR:
        problems.append(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    # (cast: a bool, not a count, goes to list() too)
    seed_list = list(range(int(seeds))) if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool) \
        else list(cast(Iterable[int], seeds))
    if not seed_list or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in seed_list):
        problems.append(f"seeds must be a positive count or a non-empty list of ints >= 0, got {seeds!r}")
    if len(set(seed_list)) != len(seed_list):
        problems.append(f"seeds must be distinct, got {seed_list}")
    for nm, v in (("batch_size", batch_size), ("lsuv_batch", lsuv_batch)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            problems.append(f"{nm} must be an int >= 1, got {v!r}")
    if not isinstance(grad_steps, (int, np.integer)) or grad_steps < 0:
        problems.append(f"grad_steps must be an int >= 0, got {grad_steps!r}")
    if steps is not None and (not isinstance(steps, (int, np.integer)) or steps < 1):
        problems.append(f"steps must be an int >= 1, got {steps!r}")
    if epochs is not None and not (isinstance(epochs, (int, float)) and epochs > 0 and math.isfinite(epochs)):
        problems.append(f"epochs must be a number > 0, got {epochs!r}")
    if steps is not None and epochs is not None:
        problems.append("give steps or epochs, not both")
    if lr is not None and not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        problems.append(f"lr must be a number > 0, got {lr!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        problems.append(f"momentum must lie in [0, 1), got {momentum!r}")
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        problems.append(f"threshold must be a number > 0, got {threshold!r}")
    if eval_every is not None and (not isinstance(eval_every, (int, np.integer)) or eval_every < 1):
        problems.append(f"eval_every must be an int >= 1, got {eval_every!r}")
    if isinstance(inits, str):
        inits = [inits]
    inits = list(inits)
    if not inits:
        problems.append("inits is empty")
    if len(set(inits)) != len(inits):
        problems.append(f"inits must be distinct, got {inits}")
    unknown = []
    for spec in inits:
        try:
            name, _ = parse_init(spec)
        except (TypeError, ValueError) as e:
            problems.append(str(e))
            continue
        if name not in _SPECIAL and _initializer(name) is None and _scheme(name) is None:
            unknown.append(spec)
    if unknown:
        problems.append(f"unknown init(s) {unknown}; accepted: {', '.join(_known_names())} (options as 'normal:std=0.01')")
    if model == "mlp":
        allowed = {"depth", "width", "activation", "norm", "dtype"}
        extra = sorted(set(model_options) - allowed)
        if extra:
            problems.append(f"unknown model option(s) {extra} for model='mlp'; accepted: {sorted(allowed)}")
    elif not callable(model):
        problems.append(f"model must be 'mlp' or a callable returning a network, got {model!r}")
    elif model_options:
        problems.append(f"model options {sorted(model_options)} apply to model='mlp' only; a factory builds its own network")
    if problems:
        raise ValueError("initlab.evaluate: " + "; ".join(problems))

    ds = _load(data)
    n_train = len(ds.y_train)
    if steps is None:
        steps = int(math.ceil(epochs * n_train / batch_size)) if epochs is not None else DEFAULT_STEPS
    steps = int(steps)
    if batch_size > n_train:
        raise ValueError(f"initlab.evaluate: batch_size {batch_size} exceeds the {n_train} training samples")
    every = int(eval_every) if eval_every else max(1, steps // 20)
    eval_steps = [0] + list(range(every, steps + 1, every))
    if eval_steps[-1] != steps:
        eval_steps.append(steps)
    lr_v = float(lr) if lr is not None else _DEFAULT_LR[opt]

    if model == "mlp":
        from .nn import get_activation, mlp

        mo: dict[str, Any] = {"depth": 10, "width": 64, "activation": "tanh"}
        mo.update(model_options)
        get_activation(mo["activation"])  # a bad name fails here, before any work

        def factory(seed: int) -> Any:
            # The seed also fixes the constructor's own init (what "default" keeps).
            return mlp(ds.x_train.shape[1], mo["width"], mo["depth"], ds.n_classes, activation=mo["activation"],
                       norm=mo.get("norm"), dtype=mo.get("dtype", np.float32), seed=seed)

        model_desc = f"mlp {mo['depth']}x{mo['width']} {mo['activation']}" + (f" {mo['norm']}-norm" if mo.get("norm") else "")
    else:
        def factory(seed: int) -> Any:
            # Constructors that take no seed draw from the global generators (initlab's default
            # generator for initlab.nn layers, torch's for torch modules): seed both, so that
            # "default" and the schemes that keep the constructor's weights are reproducible.
            import initlab

            initlab.manual_seed(seed)
            t = sys.modules.get("torch")
            if t is not None:
                t.manual_seed(seed)
            return model()

        model_desc = getattr(model, "__name__", type(model).__name__)

    cfg = {"model": model_desc, "data": ds.name, "n_train": n_train, "n_test": len(ds.y_test), "n_classes": ds.n_classes,
           "optimizer": opt, "lr": lr_v, "momentum": float(momentum) if opt == "sgd" else None, "steps": steps,
           "batch_size": int(batch_size), "seeds": [int(s) for s in seed_list], "threshold": float(threshold),
           "eval_every": every, "eval_steps": eval_steps, "grad_steps": int(min(grad_steps, steps)),
           "lsuv_batch": int(min(lsuv_batch, n_train)), "inits": inits}

    # Try every init on a throwaway model first: an option its initializer rejects fails now,
    # listed with all the others, not after minutes of training.
    probe = factory(0)
    backend = "torch" if _is_torch_module(probe) else "numpy"
    from .nn import Module

    if backend == "numpy" and not isinstance(probe, Module):
        raise TypeError(f"the model factory must return an initlab.nn Module or a torch.nn.Module, got {type(probe).__name__}")
    cfg["backend"] = backend
    x_probe = ds.x_train[: min(64, n_train)]
    failures = []
    for spec in inits:
        try:
            m = factory(0)
            if backend == "torch":
                import torch

                _init_torch(m, spec, 0, torch.as_tensor(x_probe, dtype=next(m.parameters()).dtype))
            else:
                _init_nn(m, spec, 0, x_probe)
        except Exception as e:  # noqa: BLE001 - reported with every other offender below
            failures.append(f"{spec!r}: {type(e).__name__}: {e}")
    if failures:
        raise ValueError("initlab.evaluate: these inits fail on the model: " + "; ".join(failures))

    train = _train_torch if backend == "torch" else _train_nn
    tick, close = _progress(len(inits) * len(seed_list) * steps, progress, "initlab evaluate")
    results = []
    blas = _one_blas_thread() if backend == "numpy" else None
    torch_threads = None
    if backend == "torch":
        import torch

        # Small models: one intra-op thread is fastest, and spinning workers crawl on a busy machine.
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        for spec in inits:
            runs: list[_Run] = []
            times: list[float] = []
            layer_names: list[str] = []
            for s in seed_list:
                t0 = time.perf_counter()
                lsuv_idx = np.random.default_rng(s).permutation(n_train)[: cfg["lsuv_batch"]]
                run, layer_names = train(factory(int(s)), spec, int(s), ds, cfg, ds.x_train[lsuv_idx], tick)
                times.append(time.perf_counter() - t0)
                runs.append(run)
            results.append(InitResult(
                init=spec, seeds=[int(s) for s in seed_list], steps=list(eval_steps),
                train_loss=[r.train_loss for r in runs], test_loss=[r.test_loss for r in runs],
                test_accuracy=[r.test_acc for r in runs],
                steps_to_threshold=[_steps_to(r.train_loss, eval_steps, threshold) for r in runs],
                roughness=[_roughness(r.train_loss) for r in runs], grad_norms=[r.grad for r in runs],
                layers=layer_names, wall_time=times, diverged_at=[r.diverged_at for r in runs]))
    finally:
        close()
        if blas is not None:
            blas.restore_original_limits()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
    return Evaluation(results, cfg)
