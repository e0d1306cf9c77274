"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas, ICLR 2016, Algorithm 1).

Orthonormal pre-initialization (biases set to 0, as the paper's Algorithm 1 and the reference
implementations), then, for each layer with weights **in execution order**: forward a batch,
measure the population variance (ddof 0) of that layer's whole output blob (pre-activation),
divide the weights by its square root; repeat until ``|var - target_var| < tol`` or
``max_iter`` rescalings. With several batches per measurement (``pool_batches``), the
statistics are those of all of them together (the population variance of the concatenated
outputs).

What this implementation guarantees (each point is a bug of a reference implementation, see
``reference/anchors-api.md`` "LSUV" and ``user-needs.md`` §4):

* every layer is rescaled, the first one included, in the order the forward pass uses them;
* statistics are taken the moment a layer returns, so in-place activations cannot alter them;
* no global state: two calls may run at once on different models;
* a layer whose output is constant, non-finite, or does not depend on its weights (zero input)
  raises ``ValueError`` naming the layer, and **every weight is restored** first: the model
  never ends up with inf/NaN weights, and an error leaves it as it was;
* ``center=True`` on a layer without bias is rejected before anything is written;
* non-convergence gives a ``RuntimeWarning`` and ``converged=False`` in the report.

A layer used more than once in a forward pass (weight sharing) is one layer: its statistics are
pooled over all of its calls in that pass (the population variance of the concatenated
outputs), it is rescaled once per iteration, and it takes its place at its **first** call.

Three kinds of model are accepted by :func:`lsuv`: an :mod:`initlab.nn` network, a list of
weight arrays with a ``forward`` function returning those layers' outputs (framework-neutral),
and a ``torch.nn.Module`` (forwarded to :func:`initlab.torch.lsuv`).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["lsuv", "LSUVReport", "LSUVLayer", "named_seeds", "name_stream"]


from ._lsuv_core import (  # noqa: F401  (re-exported: the engine lived here first)
    LSUVLayer, LSUVReport, _Batches, _check_options, _check_output, _HookProbe, _is_array, _Moments, _moments,
    _run_lsuv, _Stop,
)

# ---- seeds: one stream per layer, derived from its name --------------------------------------

# Per-name seeds live with the other seed logic (initlab.generator); re-exported here, where
# they were first defined, for compatibility.
from .generator import SeedLike, name_stream, named_seeds  # noqa: E402,F401
from ._threads import blas_single_threaded_for_nn  # noqa: E402


# ---- array layers (framework-neutral and initlab.nn) ------------------------------------------


class _ArrayParam:
    """In-place arithmetic on a NumPy array or a torch tensor (CPU: zero-copy, bf16/f16 included;
    on a device, or forced off the core by ``INITLAB_DEVICE_BACKEND``: through a host copy of the
    tensor taken for each operation and written back, so every result is the CPU's bits)."""

    def __init__(self, a: Any, what: str) -> None:
        from ._buffers import as_target

        try:
            self.target = as_target(a)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{what}: {e}") from None
        self.obj = a

    def _current(self) -> Any:
        """The target to read or write now. A device tensor's host copy is taken afresh: the
        tensor may have been written in between (the orthonormal pre-init writes it directly)."""
        from ._buffers import DeviceTarget, as_target

        return as_target(self.obj) if isinstance(self.target, DeviceTarget) else self.target

    def get(self) -> np.ndarray:
        from ._buffers import load

        return load(self._current())

    def set(self, values: np.ndarray) -> None:
        from ._buffers import mark_written, store

        t = self._current()
        store(t, values)
        mark_written(t)  # a device tensor: copy back; a torch tensor: bump its version counter

    def mul_(self, s: float) -> None:
        from ._buffers import mark_written

        t = self._current()
        if t.code in (0, 1, 2):  # float32 / float64 / float16: multiply in place
            arr = t.array
            np.multiply(arr, s, out=arr, casting="unsafe")
            mark_written(t)
        else:
            self.set(self.get() * s)

    def sub_mul_(self, c: float, s: float) -> None:
        self.set((self.get() - c) * s)


class _ArrayLayer:
    """One layer of a framework-neutral model: a weight array, an optional bias array."""

    def __init__(self, index: int, weight: Any, bias: Any, name: str, kind: str, layout: Any, bias_axis: int,
                 stream_name: str) -> None:
        self.index = index
        self.name = name
        self.stream_name = stream_name  # names the layer's Philox stream for the orthonormal pre-init
        self.kind = kind
        self.w = _ArrayParam(weight, f"weight of layer {name}")
        self.b = None if bias is None else _ArrayParam(bias, f"bias of layer {name}")
        self.layout = layout
        self.bias_axis = bias_axis
        if self.w.target.size == 0:
            raise ValueError(f"LSUV: layer {name} has an empty weight {self.w.target.shape}")

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return self.w.target.shape

    @property
    def has_bias(self) -> bool:
        return self.b is not None

    def snapshot(self) -> Any:
        return (self.w.get(), None if self.b is None else self.b.get())

    def restore(self, snap: Any) -> None:
        self.w.set(snap[0])
        if self.b is not None:
            self.b.set(snap[1])

    def orthogonalize(self, seeds: Callable[[str], Any]) -> None:
        from .orthogonal import orthogonal_

        orthogonal_(self.w.obj, 1.0, seed=seeds(self.stream_name), layout=self.layout)

    def zero_bias(self) -> None:
        if self.b is not None:
            self.b.set(np.zeros(self.b.target.shape, dtype=np.float64))

    def rescale(self, s: float, shift: float | None) -> None:
        if shift is not None:
            assert self.b is not None
            self.b.sub_mul_(shift, s)
        self.w.mul_(s)

    def weight_part_zero(self, out: Any) -> bool:
        """Whether ``out`` equals the bias broadcast (i.e. W·x contributed nothing)."""
        o = np.asarray(out.detach().cpu() if hasattr(out, "detach") else out)
        if self.b is None:
            return not np.any(o)
        b = self.b.get().reshape(-1)
        ax = self.bias_axis % o.ndim if o.ndim else 0
        if o.ndim == 0 or o.shape[ax] != b.size:
            return False  # cannot align the bias: skip the check (the variance checks still apply)
        shape = [1] * o.ndim
        shape[ax] = b.size
        return bool(np.all(o == b.reshape(shape).astype(o.dtype)))



# ---- front end -------------------------------------------------------------------------------


def _is_torch_module(model: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_initlab_nn(model: Any) -> bool:
    from .nn import Module

    return isinstance(model, Module)


@blas_single_threaded_for_nn  # initlab.nn nets: one BLAS thread (issue 19 item 18)
def lsuv(model: Any, x: Any, *, tol: float = 0.1, max_iter: int = 10, target_var: float = 1.0,
         center: bool = False, orthogonal: bool = True, seed: SeedLike = None,
         forward: Callable[[Any], Sequence[Any]] | None = None, biases: Sequence[Any | None] | None = None,
         layout: str = "torch", bias_axis: int = -1,
         batchnorm: str = "train", stop_early: bool = True, prepare: Callable[[Any], Any] | None = None,
         pool_batches: int | None = None, **kwargs: Any) -> LSUVReport:
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2016, Algorithm 1), in place.

    Orthonormal pre-initialization (:func:`initlab.orthogonal_`; every rescaled layer's bias is
    set to 0, as in the paper's Algorithm 1 and the reference implementations), then for each
    layer with weights, in execution order: forward a batch, measure the population variance
    (ddof 0) of the layer's whole output (pre-activation), multiply its weight by
    ``sqrt(target_var / var)``; repeat until ``|var - target_var| < tol`` or ``max_iter``
    rescalings.

    Parameters
    ----------
    model : initlab.nn module, sequence of arrays, or torch.nn.Module
        * an :mod:`initlab.nn` network: its ``Linear`` and ``Conv2d`` layers, in execution order
          (errors name a layer by its index and type, e.g. ``"2 (Linear)"``);
        * a sequence of weight arrays (NumPy arrays or torch tensors on any device, modified in
          place: a device tensor through a host copy written back after each step, the same
          bits as on the CPU) together with ``forward``;
        * a ``torch.nn.Module``: handled by :func:`initlab.torch.lsuv` (``kwargs`` go there).
    x : array, mapping or iterable of batches
        One batch (reused for every forward pass; a mapping such as ``{"input_ids": ids}`` is
        one batch of keyword inputs for a torch model) or an iterable of batches (a list or data
        loader is cycled). A batch that is a tuple or list contributes its first element
        (``(x, y)`` pairs), unless ``prepare`` is given. How many batches each measurement
        pools: see ``pool_batches``.
    tol : float
        Tolerance on the variance: a layer is done when ``|var - target_var| < tol``.
    max_iter : int
        Maximum number of rescalings per layer (the paper's T_max). 0 measures only.
    target_var : float
        Target variance of each layer's output.
    center : bool
        Also shift each layer's bias so its output mean is 0: ``b <- (b - mean) * s`` and
        ``W <- W * s`` (mean first, then scale, so one step gives mean 0 and the target
        variance on that batch). Then a layer is done when also ``|mean| < tol * sqrt(target_var)``.
        Every layer needs a bias (checked before anything is written).
    orthogonal : bool
        Orthonormal pre-initialization of every weight (Saxe et al. 2014) before rescaling, with
        the layers' biases set to 0 (Algorithm 1; lsuv 0.3.0 and anyinit do the same). With
        ``orthogonal=False`` weights and biases are rescaled from their current values.
    seed : int, Generator or None
        Seed of the orthonormal pre-initialization; each layer's stream comes from its name
        (see :func:`named_seeds`), so adding a layer does not change the others. ``int``:
        stateless; a :class:`~initlab.Generator`: the call takes one stream of it; ``None``
        (default): the default generator. Unused with ``orthogonal=False``.
    forward : callable, optional
        Framework-neutral models only: ``forward(batch)`` returns the outputs of the layers of
        ``model`` (one per weight, same order, pre-activation) computed with the current weights.
        Layers are processed in the order of the list, which must be the execution order.
    biases : sequence of arrays or None, optional
        Framework-neutral models only: the bias of each layer (``None`` entries for none).
    layout : {"torch", "keras", "jax"}
        Framework-neutral models only: weight layout for the orthonormal pre-init (as
        :func:`initlab.orthogonal_`); ``"torch"`` reads ``(out, in, *k)``, ``"keras"`` and
        ``"jax"`` read ``(*k, in, out)``.
    bias_axis : int
        Framework-neutral models only: axis of a layer's output along which its bias varies.
    batchnorm : {"train", "eval"}
        :mod:`initlab.nn` and torch models: BatchNorm layers normalize with the batch's
        statistics (``"train"``, default, as the paper's Caffe training net) or with their
        running statistics (``"eval"``). Every other module runs in evaluation mode; the
        modes and the running statistics are restored afterwards, also after an error.
    stop_early : bool
        :mod:`initlab.nn` and torch models: end each measuring forward pass once the measured
        layer has run, so a pass costs only the layers up to it.
    prepare : callable, optional
        Maps each batch taken from ``x`` to the model's input.
    pool_batches : int or None
        How many batches each measurement pools: the statistics are those of all of them
        together (the population variance of the concatenated outputs, merged exactly), so a
        layer's variance does not jump from batch to batch. ``None`` (default): all the batches
        of a list or tuple of batches (a probe set in memory), one batch per measurement for a
        single batch, a data loader or an iterator (a fresh batch per forward pass, as the
        paper's solver).

    Returns
    -------
    LSUVReport
        Per layer: name, weight shape, iterations, variance before/after, total scale, converged.

    Raises
    ------
    ValueError
        Bad options (``tol``/``target_var`` not positive and finite, ``max_iter`` negative,
        ``pool_batches`` not a positive int, ``batchnorm`` not "train"/"eval"); an empty ``x`` or
        a model with no layers; ``biases`` of the wrong length; ``forward`` returning the wrong
        number of outputs; ``center=True`` with a layer without bias; ``orthogonal=True`` with
        a weight of fewer than 2 dimensions; ``seed`` outside ``[0, 2**64)``; a layer whose
        output is empty, constant, non-finite or independent of its weights (zero input), or
        that did not run in a measuring pass. The error names the layer (index and type for
        NumPy models) and every weight is restored first.
    TypeError
        An unsupported model, weight dtype or ``x``; ``forward`` missing for a list of
        weights, or given with an :mod:`initlab.nn` model; ``prepare`` not callable; unknown
        keyword arguments (``kwargs`` are for torch models only); ``seed`` of another type.

    Warns
    -----
    RuntimeWarning
        A layer did not reach the tolerance in ``max_iter`` rescalings (the report says so too).

    See Also
    --------
    LSUVReport, orthogonal_, initlab.torch.lsuv

    Notes
    -----
    A layer used several times in one forward pass is rescaled once per iteration, from the
    statistics of all its calls pooled, at the position of its first call.

    Determinism: the orthonormal pre-initialization follows the determinism contract of
    :func:`orthogonal_` (a pure function of the seed, the layer's name-derived stream, the
    shape, layout and dtype: bit-identical for any thread count and device). The rescaling
    factors are then a deterministic function of those weights, the batches and the model's
    forward pass: the same inputs and the same forward computation give the same weights.

    Examples
    --------
    A framework-neutral model: a list of weights and a ``forward`` that returns each layer's
    pre-activation output.

    >>> import numpy as np
    >>> import initlab
    >>> ws = [np.zeros((64, 32), np.float32), np.zeros((10, 64), np.float32)]   # pre-initialized by LSUV
    >>> def forward(x):
    ...     h = x @ ws[0].T
    ...     return [h, np.maximum(h, 0) @ ws[1].T]
    >>> x = np.random.default_rng(0).standard_normal((256, 32)).astype(np.float32)
    >>> report = initlab.lsuv(ws, x, forward=forward, seed=0)
    >>> report.converged, len(report)
    (True, 2)
    >>> [abs(layer.var_after - 1.0) < 0.1 for layer in report]
    [True, True]
    """
    if _is_torch_module(model):
        from .torch import lsuv as torch_lsuv

        return torch_lsuv(model, x, tol=tol, max_iter=max_iter, target_var=target_var, center=center,
                          orthogonal=orthogonal, seed=seed, batchnorm=batchnorm, stop_early=stop_early,
                          prepare=prepare, pool_batches=pool_batches, **kwargs)
    if kwargs:
        raise TypeError(f"lsuv() got unexpected keyword arguments {sorted(kwargs)}")
    tol, max_iter, target_var = _check_options(tol, max_iter, target_var)
    if _is_initlab_nn(model):
        if forward is not None or biases is not None:
            raise TypeError("forward and biases are for framework-neutral models; an initlab.nn model has its own")
        return _lsuv_nn(model, x, tol=tol, max_iter=max_iter, target_var=target_var, center=center,
                        orthogonal=orthogonal, seed=seed, prepare=prepare, batchnorm=batchnorm, stop_early=stop_early,
                        pool_batches=pool_batches)
    if isinstance(model, (list, tuple)):
        if forward is None or not callable(forward):
            raise TypeError("a model given as a list of weight arrays needs forward=callable(batch) -> layer outputs")
        return _lsuv_arrays(list(model), x, forward, biases, layout, bias_axis, tol=tol, max_iter=max_iter,
                            target_var=target_var, center=center, orthogonal=orthogonal, seed=seed, prepare=prepare,
                            pool_batches=pool_batches)
    raise TypeError(f"lsuv() expects an initlab.nn model, a list of weight arrays (with forward=...) or a "
                    f"torch.nn.Module, got {type(model).__name__}")


def _lsuv_arrays(weights: list[Any], x: Any, forward: Callable[[Any], Sequence[Any]], biases: Any, layout: Any,
                 bias_axis: int, *, tol: float, max_iter: int, target_var: float, center: bool, orthogonal: bool,
                 seed: SeedLike, prepare: Any, pool_batches: Any = None) -> LSUVReport:
    if not weights:
        raise ValueError("LSUV: the model has no layers (empty list of weights)")
    if biases is None:
        biases = [None] * len(weights)
    biases = list(biases)
    if len(biases) != len(weights):
        raise ValueError(f"biases has {len(biases)} entries for {len(weights)} weights (use None for no bias)")
    layers = [_ArrayLayer(i, w, b, f"{i} (array, weight {'x'.join(map(str, np.shape(w)))})", "array", layout,
                          bias_axis, f"{i}.weight") for i, (w, b) in enumerate(zip(weights, biases))]
    batches = _Batches(x, prepare, pool_batches)

    def outputs(batch: Any) -> Sequence[Any]:
        outs = forward(batch)
        if not isinstance(outs, Sequence) or len(outs) != len(layers):
            got = len(outs) if isinstance(outs, Sequence) else type(outs).__name__
            raise ValueError(f"forward(batch) must return a sequence of {len(layers)} outputs (one per weight), got {got}")
        return outs

    outputs(batches.next())  # discovery pass: check the forward function before anything is written

    def measure(i: int, batch: Any, check_zero: bool) -> _Moments:
        o = outputs(batch)[i]
        m = _moments(o)
        if check_zero:
            m.weight_part_zero = layers[i].weight_part_zero(o)
        return m

    return _run_lsuv(layers, measure, batches, tol=tol, max_iter=max_iter, target_var=target_var, center=center,
                    orthogonal=orthogonal, seed=seed, forward_passes=1)


def _lsuv_nn(model: Any, x: Any, *, batchnorm: str, stop_early: bool, **opts: Any) -> LSUVReport:
    """LSUV on an :mod:`initlab.nn` network through its forward hooks (Linear and Conv2d layers)."""
    from .nn import BatchNorm, Conv2d, Linear

    if batchnorm not in ("train", "eval"):
        raise ValueError(f"batchnorm must be 'train' (batch statistics) or 'eval' (running statistics), got {batchnorm!r}")
    named = [(q, m) for q, m in model.named_modules() if isinstance(m, (Linear, Conv2d))]
    if not named:
        raise ValueError("LSUV: the model has no Linear or Conv2d layer to rescale")
    seen_ids: set[int] = set()
    unique = []
    for q, m in named:  # a module reachable under several names is one layer
        if id(m) not in seen_ids:
            seen_ids.add(id(m))
            unique.append((q, m))
    named = unique
    batches = _Batches(x, opts.pop("prepare"), opts.pop("pool_batches"))
    probe = _HookProbe(stop_early)

    def make_hook(idx: int) -> Callable[..., None]:
        def hook(mod: Any, inp: Any, out: Any) -> None:
            probe.record(idx, out, _moments)

        return hook

    modes = [(m, m.training) for _, m in model.named_modules()]
    bns = [m for _, m in model.named_modules() if isinstance(m, BatchNorm)]
    running = [(m.running_mean.copy(), m.running_var.copy()) for m in bns]
    removers = []
    try:
        model.eval()
        if batchnorm == "train":
            for bn in bns:
                bn.train()
        for i, (_, m) in enumerate(named):
            removers.append(m.register_forward_hook(make_hook(i)))
        model(batches.next())  # discovery pass: execution order and calls per layer
        probe.discover = False
        order = probe.order
        if not order:
            raise ValueError("LSUV: none of the model's layers ran in the forward pass")
        skipped = [f"{named[i][0]} ({type(named[i][1]).__name__})" for i in range(len(named)) if i not in probe.counts]
        layers = []
        for i in order:
            q, m = named[i]
            kind = type(m).__name__
            layers.append(_ArrayLayer(i, m.weight, m.bias, f"{q or '(root)'} ({kind})", kind, "torch",
                                      1 if isinstance(m, Conv2d) else -1, f"{q}.weight" if q else "weight"))

        def measure(k: int, batch: Any, check_zero: bool) -> _Moments:
            return probe.measure(k, layers[k], lambda: model(batch), check_zero)

        if skipped:
            warnings.warn(f"LSUV: layers never called in the forward pass were left untouched: {', '.join(skipped)}",
                          RuntimeWarning, stacklevel=3)
        return _run_lsuv(layers, measure, batches, forward_passes=1, skipped=skipped,
                        calls=[probe.counts[i] for i in order], **opts)
    finally:
        for r in removers:
            r()
        for m, t in modes:
            m.training = t
        for bn, (rm, rv) in zip(bns, running):  # LSUV's passes leave no trace in the running estimates
            bn.running_mean, bn.running_var = rm, rv
