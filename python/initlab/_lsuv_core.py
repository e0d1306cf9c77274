"""LSUV's framework-neutral engine: statistics, the report, batches, Algorithm 1 on layer
adapters and the forward-hook probe.

Shared by :mod:`initlab.lsuv` (NumPy arrays, :mod:`initlab.nn`) and :mod:`initlab.torch._lsuv`
(``torch.nn.Module``): both import from here, and neither imports the other at module level.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .generator import SeedLike, named_seeds

__all__ = ["LSUVLayer", "LSUVReport"]

# ---- statistics ----------------------------------------------------------------------------


@dataclass
class _Moments:
    """Population moments of one layer's output over one forward pass (pooled over its calls)."""

    count: int = 0
    mean: float = 0.0
    var: float = 0.0
    abs_max: float = 0.0
    nonfinite: int = 0
    weight_part_zero: bool | None = None  # None: not checked in this pass

    def merge(self, other: "_Moments") -> "_Moments":
        """Pool two sets of moments (Chan et al.'s parallel update; exact for population variance)."""
        if self.count == 0:
            return other
        if other.count == 0:
            return self
        n = self.count + other.count
        d = other.mean - self.mean
        mean = self.mean + d * other.count / n
        var = (self.count * self.var + other.count * other.var + d * d * self.count * other.count / n) / n
        wz = None
        if self.weight_part_zero is not None or other.weight_part_zero is not None:
            wz = bool(self.weight_part_zero in (True, None) and other.weight_part_zero in (True, None))
        return _Moments(n, mean, var, max(self.abs_max, other.abs_max), self.nonfinite + other.nonfinite, wz)


def _moments(a: Any) -> _Moments:
    """Moments of a whole array (NumPy array or torch tensor) through :func:`initlab.stats`.

    Accumulation is in float64, so float32/bf16 outputs of a deep network do not lose the
    variance to cancellation. Tensors not on the CPU are reduced by torch in float64 on their
    device (only the scalars come back); on a device without float64 (MPS) the tensor is copied
    to the host and reduced there. The model and the tensor are never moved.
    """
    dev = getattr(a, "device", None)
    if dev is not None and getattr(dev, "type", "cpu") not in ("cpu", "meta"):
        import torch

        try:
            d = a.detach().to(torch.float64)
        except (RuntimeError, TypeError):  # no float64 on this device: reduce a host copy
            d = None
        if d is not None:
            fin = torch.isfinite(d)
            nonfinite = int((~fin).sum())
            return _Moments(int(d.numel()), float(d.mean()), float(d.var(unbiased=False)) if d.numel() else 0.0,
                            float(d.abs().max()) if d.numel() else 0.0, nonfinite)
        a = a.detach().cpu()
    from ._buffers import _is_torch_tensor
    from .stats import stats

    if _is_torch_tensor(a):
        a = a.detach()
    elif not isinstance(a, np.ndarray):
        a = np.asarray(a)  # other array types (read through NumPy)
    s = stats(a)
    return _Moments(int(s.count), float(s.mean), float(s.var), float(s.abs_max), int(s.nonfinite_count))


# ---- the report ------------------------------------------------------------------------------


@dataclass
class LSUVLayer:
    """What LSUV did to one layer.

    Attributes
    ----------
    name : str
        Qualified name (torch), or ``"<index> (<type>)"`` (NumPy models).
    kind : str
        Layer type (``"Linear"``, ``"Conv2d"``, ``"MultiheadAttention"``, ``"array"``, ...).
    weight_shape : tuple of int
        Shape of the rescaled weight.
    iterations : int
        Number of rescalings applied (0 if the layer already met the target).
    var_before, var_after : float
        Output variance at the first and at the last measurement.
    mean_before, mean_after : float
        Output mean at the first and at the last measurement.
    scale : float
        Product of all factors the weight was multiplied by (after the orthonormal pre-init).
    converged : bool
        Whether the last measurement met the tolerance.
    calls : int
        How many times the layer ran in one forward pass (> 1 for shared layers).
    """

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    iterations: int = 0
    var_before: float = float("nan")
    var_after: float = float("nan")
    mean_before: float = float("nan")
    mean_after: float = float("nan")
    scale: float = 1.0
    converged: bool = False
    calls: int = 1


@dataclass
class LSUVReport:
    """Result of :func:`lsuv`: one :class:`LSUVLayer` per rescaled layer, in execution order.

    Attributes
    ----------
    layers : list of LSUVLayer
    target_var, tol : float
    max_iter : int
    center, orthogonal : bool
    forward_passes : int
        Forward passes performed (including the one that discovers the execution order).
    skipped : list of str
        Layers left untouched: never called in the forward pass, or (torch) whose weight is tied
        to a module LSUV does not rescale or was rescaled at an earlier holder.
    not_scaled : dict of str to str
        Every weight LSUV left alone, by qualified name, with the reason: recurrent (LSTM/GRU)
        weights, embeddings, bare parameters, weights tied to a module LSUV does not rescale,
        layers never called or not selected. Empty for NumPy and :mod:`initlab.nn` models.
    pool_batches : int
        Batches whose statistics are pooled in each measurement.

    See Also
    --------
    lsuv

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = np.zeros((16, 8))
    >>> x = np.random.default_rng(0).standard_normal((128, 8))
    >>> report = initlab.lsuv([w], x, forward=lambda b: [b @ w.T], seed=0)
    >>> report.converged, report[0].iterations >= 1, report.to_dict()["layers"][0]["weight_shape"]
    (True, True, [16, 8])
    >>> print(report.table().splitlines()[0])  # doctest: +ELLIPSIS
    LSUV: target variance 1 ± 0.1, max_iter 10, converged (... forward passes)
    """

    layers: list[LSUVLayer] = field(default_factory=list)
    target_var: float = 1.0
    tol: float = 0.1
    max_iter: int = 10
    center: bool = False
    orthogonal: bool = True
    forward_passes: int = 0
    skipped: list[str] = field(default_factory=list)
    not_scaled: dict[str, str] = field(default_factory=dict)
    pool_batches: int = 1

    @property
    def converged(self) -> bool:
        """True when every layer met the tolerance."""
        return all(layer.converged for layer in self.layers)

    def __getitem__(self, i: int) -> LSUVLayer:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serializable): settings, ``converged`` and a list of layer dicts."""
        d = asdict(self)
        for layer in d["layers"]:
            layer["weight_shape"] = list(layer["weight_shape"])
        d["converged"] = self.converged
        return d

    def table(self) -> str:
        """A fixed-width text table, one row per layer."""
        head = ("#", "layer", "type", "weight", "iters", "var before", "var after", "scale", "ok")
        rows = [
            (str(i), l.name, l.kind, "x".join(map(str, l.weight_shape)), str(l.iterations),
             f"{l.var_before:.4g}", f"{l.var_after:.4g}", f"{l.scale:.4g}", "yes" if l.converged else "NO")
            for i, l in enumerate(self.layers)
        ]
        w = [max(len(r[k]) for r in [head, *rows]) for k in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w[k]) if k in (1, 2, 3) else c.rjust(w[k]) for k, c in enumerate(r))  # noqa: E731
        pooled = f", {self.pool_batches} batches per measurement" if self.pool_batches > 1 else ""
        lines = [
            f"LSUV: target variance {self.target_var:g} ± {self.tol:g}, max_iter {self.max_iter}, "
            f"{'converged' if self.converged else 'NOT converged'} ({self.forward_passes} forward passes{pooled})",
            fmt(head), "  ".join("-" * x for x in w), *map(fmt, rows),
        ]
        if self.skipped:
            lines.append("skipped (never called or tied): " + ", ".join(self.skipped))
        if self.not_scaled:
            lines.append(f"not scaled ({len(self.not_scaled)}):")
            lines += [f"  {k}: {v}" for k, v in self.not_scaled.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ---- batches -----------------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "shape") and hasattr(x, "dtype"))


class _Batches:
    """A fresh batch per forward pass: cycles a re-iterable (list, DataLoader); a one-shot
    iterator that runs out is replaced by its last batch, with a warning. A batch that is a
    tuple or list (``(x, y)`` from a data loader) contributes its first element; a mapping
    (``{"input_ids": ...}``) is one batch of keyword inputs.

    ``per_measure``: batches pooled in one measurement: ``pool_batches`` if given, else all the
    batches of a list/tuple of batches (in memory: the user's probe set), else 1 (a data
    loader or iterator: a fresh batch per pass, as the paper's solver)."""

    def __init__(self, x: Any, prepare: Callable[[Any], Any] | None, pool_batches: Any = None) -> None:
        if prepare is not None and not callable(prepare):
            raise TypeError("prepare must be callable")
        if pool_batches is not None and (isinstance(pool_batches, bool) or not isinstance(pool_batches, numbers.Integral)
                                         or pool_batches < 1):
            raise ValueError(f"pool_batches must be a positive int (batches pooled per measurement) or None, "
                             f"got {pool_batches!r}")
        self._prepare = prepare
        self._single = None
        self._source: Any = None
        self._it: Iterator[Any] | None = None
        self._last: Any = None
        self._warned = False
        if _is_array(x) or isinstance(x, collections.abc.Mapping):
            self._single = x
        elif isinstance(x, Iterable) and not isinstance(x, (str, bytes)):
            self._source = x
            self._it = iter(x)
        else:
            raise TypeError(f"x must be an array (a batch), a mapping of keyword inputs or an iterable of batches, "
                            f"got {type(x).__name__}")
        if pool_batches is not None:
            self.per_measure = int(pool_batches)
        elif isinstance(x, (list, tuple)) and not _is_array(x):
            if not x:
                raise ValueError("x is an empty list of batches: LSUV needs at least one batch")
            self.per_measure = len(x)
        else:
            self.per_measure = 1

    def _unpack(self, b: Any) -> Any:
        if self._prepare is not None:
            return self._prepare(b)
        if isinstance(b, (tuple, list)) and b:
            return b[0]
        return b

    def next(self) -> Any:
        if self._single is not None:
            return self._unpack(self._single)
        assert self._it is not None
        try:
            b = next(self._it)
        except StopIteration:
            if not isinstance(self._source, collections.abc.Iterator):  # re-iterable (list, DataLoader): start over
                self._it = iter(self._source)
                try:
                    b = next(self._it)
                except StopIteration:
                    b = None
            else:
                b = None
            if b is None:
                if self._last is None:
                    raise ValueError("x is an empty iterable: LSUV needs at least one batch") from None
                if not self._warned:
                    warnings.warn("LSUV: the batch iterator ran out; reusing its last batch", RuntimeWarning,
                                  stacklevel=4)
                    self._warned = True
                b = self._last
        self._last = b
        return self._unpack(b)


# ---- the algorithm (framework-neutral core) -------------------------------------------------


def _check_options(tol: Any, max_iter: Any, target_var: Any) -> tuple[float, int, float]:
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (math.isfinite(tol) and float(tol) > 0):
        raise ValueError(f"tol must be a positive finite number, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative int, got {max_iter!r}")
    if (isinstance(target_var, bool) or not isinstance(target_var, numbers.Real)
            or not (math.isfinite(target_var) and float(target_var) > 0)):
        raise ValueError(f"target_var must be a positive finite number, got {target_var!r}")
    return float(tol), int(max_iter), float(target_var)


def _check_output(layer: Any, m: _Moments) -> None:
    if m.count == 0:
        raise ValueError(f"LSUV: layer {layer.name} produced an empty output; cannot measure its variance")
    if m.nonfinite or not math.isfinite(m.var) or not math.isfinite(m.mean):
        raise ValueError(
            f"LSUV: the output of layer {layer.name} contains {m.nonfinite or 'some'} non-finite values "
            "(NaN/inf in the input, or an earlier layer overflowed); weights restored")
    if m.weight_part_zero:
        raise ValueError(
            f"LSUV: the output of layer {layer.name} does not depend on its weights (the layer's input is all "
            "zeros: a zero input batch, or every unit before it is dead), so no rescaling can reach the target "
            "variance; weights restored")
    if m.var <= 0.0:
        raise ValueError(
            f"LSUV: the output of layer {layer.name} is constant (variance 0, value {m.mean:.6g}), so it cannot be "
            "rescaled to a target variance; weights restored")


def _run_lsuv(layers: Sequence[Any], measure: Callable[[int, Any, bool], _Moments], batches: _Batches, *,
             tol: float, max_iter: int, target_var: float, center: bool, orthogonal: bool, seed: SeedLike,
             forward_passes: int = 0, skipped: Sequence[str] = (), calls: Sequence[int] | None = None) -> LSUVReport:
    """Algorithm 1 on layer adapters (internal; shared by the NumPy, initlab.nn and torch front ends).

    Each adapter has ``name``, ``kind``, ``weight_shape``, ``has_bias``, ``snapshot()``,
    ``restore(snap)``, ``orthogonalize(seed)``, ``zero_bias()`` and ``rescale(s, shift)``;
    ``measure(i, batch, check_zero)`` runs one forward pass and returns layer ``i``'s pooled
    moments. Each measurement pools ``batches.per_measure`` passes (Chan's exact merge: the
    moments of the concatenated outputs). Options must already be validated. On any exception
    every layer is restored from its snapshot.
    """
    if center:
        for layer in layers:
            if not layer.has_bias:
                raise ValueError(f"LSUV: center=True shifts biases, but layer {layer.name} has no bias; "
                                 "use center=False or give the layer a bias")
    if orthogonal:
        for layer in layers:
            if len(layer.weight_shape) < 2:
                raise ValueError(f"LSUV: orthogonal pre-initialization needs a weight with at least 2 dimensions, "
                                 f"but layer {layer.name} has shape {tuple(layer.weight_shape)}; pass orthogonal=False")
    seeds = named_seeds(seed) if orthogonal else None  # resolve the seed before anything is written
    report = LSUVReport(target_var=target_var, tol=tol, max_iter=max_iter, center=center, orthogonal=orthogonal,
                        forward_passes=forward_passes, skipped=list(skipped), pool_batches=batches.per_measure)
    snaps = [layer.snapshot() for layer in layers]
    try:
        if orthogonal:
            for layer in layers:
                # Algorithm 1's pre-init, as the reference implementations: orthonormal weights, zero biases.
                layer.orthogonalize(seeds)
                layer.zero_bias()
        for i, layer in enumerate(layers):
            rec = LSUVLayer(layer.name, layer.kind, tuple(layer.weight_shape), calls=calls[i] if calls else 1)
            it = 0
            while True:
                m = _Moments()
                for _ in range(batches.per_measure):
                    m = m.merge(measure(i, batches.next(), it == 0))
                    report.forward_passes += 1
                _check_output(layer, m)
                if it == 0:
                    rec.var_before, rec.mean_before = m.var, m.mean
                rec.var_after, rec.mean_after = m.var, m.mean
                ok = abs(m.var - target_var) < tol and (not center or abs(m.mean) < tol * math.sqrt(target_var))
                if ok or it >= max_iter:
                    rec.converged = ok
                    break
                s = math.sqrt(target_var / m.var)
                if not (math.isfinite(s) and s > 0):
                    raise ValueError(f"LSUV: layer {layer.name} would need a scale of {s} (output variance "
                                     f"{m.var:.3g}); weights restored")
                layer.rescale(s, m.mean if center else None)
                rec.scale *= s
                it += 1
            rec.iterations = it
            report.layers.append(rec)
    except BaseException:
        for layer, snap in zip(layers, snaps):
            layer.restore(snap)
        raise
    for rec in report.layers:
        if not rec.converged:
            warnings.warn(
                f"LSUV: layer {rec.name} did not converge in {max_iter} iterations (output variance "
                f"{rec.var_after:.4g}, target {target_var:g} ± {tol:g}); see the report", RuntimeWarning, stacklevel=3)
    return report


class _Stop(BaseException):
    """Ends a measuring forward pass once the measured layer has run (not an Exception, so a
    model's own ``except Exception`` cannot swallow it)."""


class _HookProbe:
    """State of one LSUV call's forward hooks (no module-level state).

    The first pass is a discovery pass: it records the execution order of the hooked layers and
    how often each runs. Every later pass measures one target layer: its outputs' moments are
    pooled over all its calls, and the pass is cut short once they are all seen.
    """

    def __init__(self, stop_early: bool) -> None:
        self.stop_early = stop_early
        self.discover = True
        self.order: list[int] = []
        self.counts: dict[int, int] = {}
        self.target = -1
        self.acc = _Moments()
        self.seen = 0
        self.check_zero = False
        self.layer: Any = None

    def record(self, idx: int, out: Any, moments: Callable[[Any], _Moments]) -> None:
        """Called by the hook of hooked layer ``idx`` with its output."""
        if self.discover:
            if idx not in self.counts:
                self.order.append(idx)
                self.counts[idx] = 0
            self.counts[idx] += 1
            return
        if idx != self.target:
            return
        m = moments(out)
        if self.check_zero:
            m.weight_part_zero = self.layer.weight_part_zero(out)
        self.acc = self.acc.merge(m)
        self.seen += 1
        if self.stop_early and self.seen >= self.counts[idx]:
            raise _Stop

    def measure(self, k: int, layer: Any, forward: Callable[[], Any], check_zero: bool, hint: str = "") -> _Moments:
        """Run ``forward`` and return the pooled moments of the k-th layer in execution order."""
        self.target, self.acc, self.seen = self.order[k], _Moments(), 0
        self.check_zero, self.layer = check_zero, layer
        try:
            forward()
        except _Stop:
            pass
        if self.seen == 0:
            raise ValueError(f"LSUV: layer {layer.name} did not run in this forward pass (it ran in the first one){hint}")
        return self.acc
