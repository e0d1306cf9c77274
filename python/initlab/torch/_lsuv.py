"""LSUV on ``torch.nn.Module`` with forward hooks (see :mod:`initlab.lsuv` for the algorithm)."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from ..lsuv import LSUVReport, _Batches, _check_options, _HookProbe, _Moments, _moments, _run_lsuv

__all__ = ["lsuv"]

_CONV = (nn.modules.conv._ConvNd,)  # Conv1d/2d/3d and ConvTranspose1d/2d/3d (and their lazy forms)


class _TorchLayer:
    """One rescalable layer: the module that is hooked, the weight and bias that are scaled."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.kind = type(module).__name__
        if isinstance(module, nn.MultiheadAttention):
            # The output projection is applied inside F.multi_head_attention_forward (out_proj's
            # own hooks never fire): the MHA output is out_proj's pre-activation output.
            self.weight, self.bias = module.out_proj.weight, module.out_proj.bias
            self.pname = f"{name}.out_proj" if name else "out_proj"
        else:
            self.weight, self.bias = module.weight, getattr(module, "bias", None)
            self.pname = name
        self.bias_dim_from_end = not isinstance(module, _CONV)  # Linear/MHA: last dim; conv: channel dim

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape)

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def _pre_init_params(self) -> list[tuple[str, torch.Tensor]]:
        out = [(f"{self.pname}.weight" if self.pname else "weight", self.weight)]
        m = self.module
        if isinstance(m, nn.MultiheadAttention):
            pre = f"{self.name}." if self.name else ""
            if m.in_proj_weight is not None:  # q, k, v blocks, each orthonormal on its own
                for k, blk in zip("qkv", m.in_proj_weight.chunk(3, dim=0)):
                    out.append((f"{pre}in_proj_weight[{k}]", blk))
            else:
                for k in ("q", "k", "v"):
                    out.append((f"{pre}{k}_proj_weight", getattr(m, f"{k}_proj_weight")))
        return out

    def snapshot(self) -> Any:
        with torch.no_grad():
            return ([p.detach().clone() for _, p in self._pre_init_params()],
                    None if self.bias is None else self.bias.detach().clone())

    def restore(self, snap: Any) -> None:
        with torch.no_grad():
            for (_, p), v in zip(self._pre_init_params(), snap[0]):
                p.copy_(v)
            if self.bias is not None:
                self.bias.copy_(snap[1])

    def orthogonalize(self, seeds: Callable[[str], Any]) -> None:
        from ..orthogonal import orthogonal_

        for pname, p in self._pre_init_params():
            if p.device.type == "cpu":
                orthogonal_(p, 1.0, seed=seeds(pname))
            else:  # initlab fills CPU memory: build on the CPU, copy to the device
                tmp = torch.empty(p.shape, dtype=p.dtype)
                orthogonal_(tmp, 1.0, seed=seeds(pname))
                with torch.no_grad():
                    p.copy_(tmp)

    def rescale(self, s: float, shift: float | None) -> None:
        with torch.no_grad():
            if shift is not None:
                assert self.bias is not None
                self.bias.sub_(shift).mul_(s)
            self.weight.mul_(s)

    def weight_part_zero(self, out: torch.Tensor) -> bool:
        """Whether the output is exactly the bias broadcast, i.e. W·x contributed nothing."""
        if self.bias is None:
            return not bool(out.any())
        b = self.bias.detach()
        if out.dim() == 0:
            return False
        if self.bias_dim_from_end:
            dim = out.dim() - 1
        else:  # conv: channel dim is 1 for batched input, 0 for unbatched
            dim = 1 if out.dim() == self.weight.dim() else 0
        if out.shape[dim] != b.numel():
            return False
        shape = [1] * out.dim()
        shape[dim] = b.numel()
        return bool((out == b.reshape(shape).to(out.dtype)).all())


def _is_layer(m: nn.Module) -> bool:
    if isinstance(m, nn.MultiheadAttention):
        return True
    if isinstance(m, (nn.Linear, *_CONV)):
        return isinstance(getattr(m, "weight", None), torch.Tensor)
    return False


@contextlib.contextmanager
def _model_state(module: nn.Module, batchnorm: str) -> Iterator[None]:
    """Eval mode (BatchNorm in train mode if asked), MHA fast path off, no grad; all restored on exit,
    BatchNorm running statistics included (LSUV's forward passes must not leave traces)."""
    modes = [(m, m.training) for m in module.modules()]
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.detach().clone() for k, v in m.named_buffers(recurse=False) if v is not None} for m in bns]
    fast = torch.backends.mha.get_fastpath_enabled()
    try:
        module.eval()
        if batchnorm == "train":
            for m in bns:
                m.train()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused paths skip submodules' hooks
        with torch.no_grad():
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
        for m, t in modes:
            m.training = t
        with torch.no_grad():
            for m, buf in zip(bns, saved):
                for k, v in buf.items():
                    getattr(m, k).copy_(v)


def lsuv(module: nn.Module, x: Any, *, tol: float = 0.1, max_iter: int = 10, target_var: float = 1.0,
         center: bool = False, orthogonal: bool = True, seed: Any = None, batchnorm: str = "train",
         modules: Iterable[Any] | None = None, prepare: Callable[[Any], Any] | None = None,
         stop_early: bool = True) -> LSUVReport:
    """LSUV (Mishkin & Matas 2016, Algorithm 1) on a ``torch.nn.Module``, in place.

    Layers: ``Linear``, ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d`` and ``MultiheadAttention``
    (its output projection ``out_proj`` is rescaled from the attention output; the in-projection
    gets the orthonormal pre-init only), in the order of their first call in a forward pass
    (discovered by a first forward pass with hooks), not the order of registration.

    Parameters
    ----------
    module : torch.nn.Module
        The model (any device; the orthonormal pre-init is computed on the CPU and copied).
    x : tensor or iterable of batches
        See :func:`initlab.lsuv`. Each batch is passed as ``module(batch)``.
    tol, max_iter, target_var, center, orthogonal, seed
        As :func:`initlab.lsuv`. Stream names are the parameters' qualified names.
    batchnorm : {"train", "eval"}
        ``"train"`` (default, as the paper's Caffe training net): BatchNorm layers normalize
        with the batch's statistics; ``"eval"``: with their running statistics. Every other
        module runs in eval mode (no dropout). Running statistics are restored afterwards.
    modules : iterable of str or nn.Module, optional
        Restrict LSUV to these layers (qualified names or module objects).
    prepare : callable, optional
        Maps each batch taken from ``x`` to the module's input.
    stop_early : bool
        End each measuring forward pass as soon as the measured layer has run (its last call),
        so LSUV costs less than full passes. Disable for models whose forward must complete.

    Returns
    -------
    LSUVReport

    Raises
    ------
    ValueError
        Bad options, unknown ``modules`` entries, no layer to rescale, ``center=True`` with a
        bias-free layer, or a layer whose output is constant, non-finite or independent of its
        weights (zero input): the message gives the layer's qualified name; weights restored.

    Notes
    -----
    The rescaled weights (and biases) are copied once before anything is written, so that an
    error can restore them: LSUV needs that much extra memory.
    A layer whose weight is tied to another module (an output head sharing the embedding matrix)
    is left untouched, with a warning, and listed in ``report.skipped``.
    The module's train/eval flags, BatchNorm running statistics, the MHA fast-path flag and its
    hooks (initlab's are removed, the user's untouched) are restored on success and on error.
    Statistics are taken inside the forward hook, the moment the layer returns, so in-place
    activations (``ReLU(inplace=True)``) cannot change them. A module called several times per
    pass is one layer (statistics pooled over its calls, rescaled once per iteration).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"initlab.torch.lsuv expects a torch.nn.Module, got {type(module).__name__}")
    tol, max_iter, target_var = _check_options(tol, max_iter, target_var)
    if batchnorm not in ("train", "eval"):
        raise ValueError(f"batchnorm must be 'train' (batch statistics) or 'eval' (running statistics), got {batchnorm!r}")
    named = [(n, m) for n, m in module.named_modules() if _is_layer(m)]
    if modules is not None:
        wanted = list(modules)
        by_name = {n: m for n, m in named}
        ids = {id(m) for _, m in named}
        keep = set()
        for w in wanted:
            if isinstance(w, str):
                if w not in by_name:
                    raise ValueError(f"LSUV: modules entry {w!r} is not a Linear/Conv/ConvTranspose/MultiheadAttention "
                                     f"layer of this model; layers: {sorted(by_name)}")
                keep.add(id(by_name[w]))
            elif isinstance(w, nn.Module) and id(w) in ids:
                keep.add(id(w))
            else:
                raise ValueError(f"LSUV: modules entry {w!r} is not a rescalable layer of this model")
        named = [(n, m) for n, m in named if id(m) in keep]
    if not named:
        raise ValueError("LSUV: the model has no Linear, Conv, ConvTranspose or MultiheadAttention layer to rescale")
    # MHA's out_proj is a Linear that never runs as a module: it belongs to its MHA layer.
    owned = {id(m.out_proj) for _, m in named if isinstance(m, nn.MultiheadAttention)}
    named = [(n, m) for n, m in named if id(m) not in owned]
    # A weight tied to another module (e.g. an output head sharing the embedding matrix) cannot be
    # rescaled for one layer without changing the other: such layers are left untouched.
    holders: dict[int, list[str]] = {}
    for mname, m in module.named_modules():
        for p in m.parameters(recurse=False):
            holders.setdefault(id(p), []).append(mname or "(root)")
    tied = []
    for n, m in named:
        w = m.out_proj.weight if isinstance(m, nn.MultiheadAttention) else m.weight
        others = [h for h in holders.get(id(w), []) if h != (n or "(root)") and not (
            isinstance(m, nn.MultiheadAttention) and h == (f"{n}.out_proj" if n else "out_proj"))]
        if others:
            tied.append((n, others))
    if tied:
        warnings.warn("LSUV: layers whose weight is shared with another module are left untouched: "
                      + ", ".join(f"{n or '(root)'} (shared with {', '.join(o)})" for n, o in tied), RuntimeWarning,
                      stacklevel=2)
        tied_names = {n for n, _ in tied}
        named = [(n, m) for n, m in named if n not in tied_names]
    if not named:
        raise ValueError("LSUV: every rescalable layer of the model has a tied weight; nothing to do")
    batches = _Batches(x, prepare)

    probe = _HookProbe(stop_early)

    def make_hook(idx: int) -> Callable[..., None]:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            o = out[0] if isinstance(out, (tuple, list)) else out
            # Measured right now: an in-place activation after this module cannot alter it.
            probe.record(idx, o.detach(), _moments)

        return hook

    handles = []
    try:
        with _model_state(module, batchnorm):
            for i, (_, m) in enumerate(named):
                handles.append(m.register_forward_hook(make_hook(i)))
            module(batches.next())  # discovery pass: execution order and calls per layer
            probe.discover = False
            order = probe.order
            skipped = [named[i][0] or "(root)" for i in range(len(named)) if i not in probe.counts]
            if not order:
                raise ValueError("LSUV: none of the model's layers ran in the forward pass")
            # Built after the discovery pass, so lazy modules have materialized their weights.
            layers = [_TorchLayer(named[i][0] or "(root)", named[i][1]) for i in order]
            for layer in layers:
                if not layer.weight.is_floating_point():
                    raise TypeError(f"LSUV: layer {layer.name} has a {layer.weight.dtype} weight; a floating-point "
                                    "weight is needed")

            def measure(k: int, batch: Any, check_zero: bool) -> _Moments:
                return probe.measure(k, layers[k], lambda: module(batch), check_zero,
                                     "; a data-dependent forward cannot be LSUV-initialized layer by layer")

            if skipped:
                warnings.warn(f"LSUV: layers never called in the forward pass were left untouched: {', '.join(skipped)}",
                              RuntimeWarning, stacklevel=2)
            return _run_lsuv(layers, measure, batches, tol=tol, max_iter=max_iter, target_var=target_var,
                            center=center, orthogonal=orthogonal, seed=seed, forward_passes=1,
                            skipped=skipped + [n or "(root)" for n, _ in tied],
                            calls=[probe.counts[i] for i in order])
    finally:
        for h in handles:
            h.remove()
