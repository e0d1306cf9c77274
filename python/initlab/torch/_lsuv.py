"""LSUV on ``torch.nn.Module`` with forward hooks (see :mod:`initlab.lsuv` for the algorithm)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..generator import SeedLike
from .._lsuv_core import LSUVReport, _Batches, _check_options, _HookProbe, _Moments, _moments, _run_lsuv
from . import probes

__all__ = ["lsuv"]

_LAYER_TYPES = "Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d, MultiheadAttention (its out_proj) or Hugging Face Conv1D"


class _TorchLayer:
    """One rescalable layer: the module that is hooked, the weight and bias that are scaled."""

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name = name
        self.module = module
        self.kind = type(module).__name__
        if isinstance(module, nn.MultiheadAttention):
            # The output projection is applied inside F.multi_head_attention_forward (out_proj's
            # own hooks never fire): the MHA output is out_proj's pre-activation output.
            self.pname = f"{name}.out_proj" if name else "out_proj"
        else:
            self.pname = name
        if probes.is_conv1d(module):
            self.kind = "Conv1D (HF)"  # weight stored (in, out); a linear layer all the same
        self.weight, self.bias = probes.layer_weight(module), probes.layer_bias(module)
        # weight_norm: the forward uses g * v / ||v||, so the output scales with g (rescaled) and
        # the orthonormal pre-init goes to v, with g = ||v|| (the weight is then v itself).
        self.wn = _weight_norm_parts(module)

    def owned(self) -> list[torch.Tensor]:
        """The parameters this layer's weight is made of (a parametrization's originals)."""
        if self.wn is not None:
            return [self.wn[0], self.wn[1]]
        return [self.weight]

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return tuple(self.weight.shape)

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    def _pre_init_params(self) -> list[tuple[str, torch.Tensor]]:
        if self.wn is not None:  # v, then g (restored with it; the pre-init re-derives g from v)
            pre = f"{self.pname}.parametrizations.weight" if self.pname else "parametrizations.weight"
            return [(f"{pre}.original1", self.wn[1]), (f"{pre}.original0", self.wn[0])]
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

    def _biases(self) -> list[torch.Tensor]:
        """Every bias the pre-init zeroes (MHA: the in-projection's too)."""
        out = [] if self.bias is None else [self.bias]
        if isinstance(self.module, nn.MultiheadAttention) and self.module.in_proj_bias is not None:
            out.append(self.module.in_proj_bias)
        return out

    def snapshot(self) -> Any:
        with torch.no_grad():
            return ([p.detach().clone() for _, p in self._pre_init_params()],
                    [b.detach().clone() for b in self._biases()])

    def restore(self, snap: Any) -> None:
        with torch.no_grad():
            for (_, p), v in zip(self._pre_init_params(), snap[0]):
                p.copy_(v)
            for b, v in zip(self._biases(), snap[1]):
                b.copy_(v)

    def zero_bias(self) -> None:
        with torch.no_grad():
            for b in self._biases():
                b.zero_()

    def orthogonalize(self, seeds: Callable[[str], Any]) -> None:
        from ..orthogonal import orthogonal_
        from .rules import host_default

        with host_default():
            if self.wn is not None:
                g, v, dim = self.wn
                orthogonal_(v, 1.0, seed=seeds(self._pre_init_params()[0][0]))
                with torch.no_grad():
                    from .rules import _norm_except

                    g.copy_(_norm_except(v, dim).reshape(g.shape))
                return
            for pname, p in self._pre_init_params():
                # In place on the parameter's device: the fill routes by device, same bits as on the CPU.
                orthogonal_(p, 1.0, seed=seeds(pname))

    def rescale(self, s: float, shift: float | None) -> None:
        with torch.no_grad():
            if shift is not None:
                assert self.bias is not None
                self.bias.sub_(shift).mul_(s)
            (self.wn[0] if self.wn is not None else self.weight).mul_(s)

    def weight_part_zero(self, out: torch.Tensor) -> bool:
        """Whether the output is exactly the bias broadcast, i.e. W·x contributed nothing."""
        if self.bias is None:
            return not bool(out.any())
        dim = probes.bias_dim(self.module, out)
        if dim is None:
            return False
        shape = [1] * out.dim()
        shape[dim] = self.bias.numel()
        return bool((out == self.bias.detach().reshape(shape).to(out.dtype)).all())


def _weight_tensor(m: nn.Module) -> torch.Tensor:
    """The stored tensor that identifies a layer's weight (a parametrized weight is computed anew
    at each access, so its identity is the parametrization's first original)."""
    plist = getattr(getattr(m, "parametrizations", None), "weight", None)
    if plist is not None and not isinstance(m, nn.MultiheadAttention):
        return next(iter(plist.parameters()))
    return probes.layer_weight(m)


def _weight_norm_parts(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """``(g, v, dim)`` when ``m.weight`` is ``weight_norm``-parametrized, else None."""
    plist = getattr(getattr(m, "parametrizations", None), "weight", None)
    if plist is None or len(plist) != 1 or type(plist[0]).__name__ != "_WeightNorm":
        return None
    g, v = getattr(plist, "original0", None), getattr(plist, "original1", None)
    if not (isinstance(g, torch.Tensor) and isinstance(v, torch.Tensor)):
        return None
    return g, v, int(getattr(plist[0], "dim", 0))


def _unscalable_parametrization(m: nn.Module) -> tuple[str, list[torch.Tensor]] | None:
    """Why LSUV cannot rescale ``m`` (its weight parametrized by something other than
    ``weight_norm``) and the parameters behind that weight; None when it can."""
    pars = getattr(m, "parametrizations", None)
    plist = getattr(pars, "weight", None) if isinstance(m, nn.Module) and not isinstance(m, nn.MultiheadAttention) \
        else None
    if plist is None or _weight_norm_parts(m) is not None:
        return None
    kinds = [type(x).__name__ for x in plist]
    if kinds == ["_SpectralNorm"]:
        why = ("its weight is spectral_norm(original) = original / sigma(original): scaling the stored tensor does not "
               "change the layer's output, so LSUV cannot rescale it")
    else:
        why = (f"its weight is parametrized ({' -> '.join(kinds)}): LSUV does not know how scaling the stored "
               "tensors changes the weight the forward uses")
    return why, [p for p in plist.parameters()]


def _is_norm(m: nn.Module) -> bool:
    """A normalization module (torch's, or one whose class name says so, as the roles read it)."""
    return isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)) \
        or "Norm" in type(m).__name__


def _not_scaled(module: nn.Module, handled: set[int], expected: set[str] | None = None) -> dict[str, str]:
    """The weights outside LSUV's layers, with the reason they are left alone: recurrent
    weights, embedding tables, and bare parameters (registered on a container or on an
    unrecognized module: tokens, layer-scale vectors). Norms' affine parameters and biases are
    not weights and are not listed; ``handled`` parameters (the layers') are skipped. Names of
    entries left alone by design (embeddings; tokens, position tables and layer scales as the
    roles read them) are added to ``expected``."""
    out: dict[str, str] = {}
    seen: set[int] = set(handled)
    roles: dict[int, str | None] = {}  # filled on the first bare parameter
    for mname, m in module.named_modules():
        if probes.is_layer(m):
            continue  # a layer's parameters: scaled, listed by the caller, or MHA's in-projection (pre-init only)
        for pname, p in m.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            q = f"{mname}.{pname}" if mname else pname
            kind = type(m).__name__
            if isinstance(m, (nn.RNNBase, nn.RNNCellBase)):
                if p.dim() >= 2:
                    out[q] = f"{kind} weight (LSUV rescales the outputs of {_LAYER_TYPES} layers, not recurrent ones)"
            elif isinstance(m, (nn.Embedding, nn.EmbeddingBag)) and pname == "weight":
                out[q] = f"{kind} table (LSUV rescales layers, not embeddings)"
                if expected is not None:
                    expected.add(q)
            elif pname.endswith("bias") and p.dim() <= 1:
                continue
            elif p.dim() <= 1 and _is_norm(m):
                continue  # a norm's affine parameter (timm's BatchNormAct2d holds act/drop children too)
            elif p.dim() >= 2 or any(True for _ in m.children()) or _unrecognized(m):
                role = _roles(module, roles).get(id(p))
                if role in _BY_DESIGN:  # a token / position table or a layer scale: left by design
                    out[q] = f"{_BY_DESIGN[role]} of {kind} (shape {tuple(p.shape)}): not a layer's weight"
                    if expected is not None:
                        expected.add(q)
                else:
                    out[q] = f"bare parameter of {kind} (shape {tuple(p.shape)}), not part of a layer LSUV rescales"
    return out


_BY_DESIGN = {"token": "token or position table", "scalar": "layer scale"}


def _roles(module: nn.Module, cache: dict[int, str | None]) -> dict[int, str | None]:
    """``{id(parameter): role}`` as the model layer reads it (by use in forward), computed once."""
    if not cache:
        from .roles import param_infos

        cache.update({id(i.param): i.role for i in param_infos(module)})
        cache.setdefault(0, None)  # computed (even for a model without parameters)
    return cache


def _unrecognized(m: nn.Module) -> bool:
    """A leaf module with parameters that is neither a norm nor an activation: its parameters
    are "bare" as far as LSUV is concerned (norm weights and biases are not)."""
    if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.PReLU)):
        return False
    return "norm" not in type(m).__name__.lower()


def lsuv(module: nn.Module, x: Any, *, tol: float = 0.1, max_iter: int = 10, target_var: float = 1.0,
         center: bool = False, orthogonal: bool = True, seed: SeedLike = None, batchnorm: str = "train",
         modules: Iterable[Any] | None = None, prepare: Callable[[Any], Any] | None = None,
         stop_early: bool = True, pool_batches: int | None = None) -> LSUVReport:
    """LSUV (Mishkin & Matas 2016, Algorithm 1) on a ``torch.nn.Module``, in place.

    Layers: ``Linear``, ``Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``, ``MultiheadAttention``
    (its output projection ``out_proj`` is rescaled from the attention output; the in-projection
    gets the orthonormal pre-init only) and Hugging Face's ``Conv1D`` (GPT-2: a linear layer
    whose weight is stored ``(in, out)``), in the order of their first call in a forward pass
    (discovered by a first forward pass with hooks), not the order of registration.

    Parameters
    ----------
    module : torch.nn.Module
        The model, on any device (``x`` on the same one). It is not moved: the orthonormal
        pre-init is written in place on the parameters' device (the same bits as on the CPU,
        through the route :func:`initlab.device_backend` names), the forward passes run there,
        and each layer's output statistics are reduced in float64 on the device (only the
        scalars come back) or, where the device has no float64, on a host copy.
    x : tensor, mapping or iterable of batches
        See :func:`initlab.lsuv`. Each batch is passed as ``module(batch)``, or as
        ``module(**batch)`` when it is a mapping (``{"input_ids": ids}``, a tokenizer's
        ``BatchEncoding``): integer token inputs are fine, only the layers' outputs are measured.
    tol, max_iter, target_var, center, orthogonal, seed, pool_batches
        As :func:`initlab.lsuv`. Stream names are the parameters' qualified names. The
        orthonormal pre-init sets the rescaled layers' biases to 0 (MHA: ``in_proj_bias`` and
        ``out_proj.bias``), as Algorithm 1 and the reference implementations.
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
        ``report.not_scaled`` lists every weight left alone, with the reason.

    Raises
    ------
    ValueError
        Bad options, unknown ``modules`` entries, no layer to rescale (the message lists the
        model's weights and why each cannot be rescaled), ``center=True`` with a bias-free
        layer, or a layer whose output is constant, non-finite or independent of its weights
        (zero input): the message gives the layer's qualified name; weights restored.

    Warns
    -----
    RuntimeWarning
        Once, naming every weight left alone that a user may expect LSUV to scale: recurrent
        (LSTM/GRU) weights, bare parameters, layers tied to a module LSUV does not rescale, later
        holders of a weight shared by several layers, layers never called. Embeddings and layers
        outside ``modules`` are listed in the report only. Also when a layer does not converge.

    Notes
    -----
    The rescaled weights (and biases) are copied once before anything is written, so that an
    error can restore them: LSUV needs that much extra memory.
    A ``weight_norm``-parametrized layer is rescaled through its magnitude ``g`` (the weight the
    forward uses, ``g * v / ||v||``, scales with it; the orthonormal pre-init goes to ``v`` with
    ``g = ||v||``). A layer under ``spectral_norm`` (or another parametrization) is left alone and
    listed in ``report.not_scaled`` with the reason: scaling ``original`` does not change
    ``original / sigma(original)``.
    A layer whose weight is tied to a module LSUV does not rescale (an output head sharing the
    embedding matrix) is left untouched: rescaling it would rescale that module too. A weight
    shared by several rescalable layers is rescaled at its first holder (in execution order);
    the later ones are left alone.
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
    all_layers = [(n, m) for n, m in module.named_modules() if probes.is_layer(m)]
    # MHA's out_proj is a Linear that never runs as a module: it belongs to its MHA layer.
    owned = {id(m.out_proj) for _, m in all_layers if isinstance(m, nn.MultiheadAttention)}
    all_layers = [(n, m) for n, m in all_layers if id(m) not in owned]
    named = list(all_layers)
    left: dict[str, tuple[int, str]] = {}  # layer weights left alone: name -> (id(weight), reason)
    quiet: set[str] = set()  # listed in the report, not warned about (embeddings, modules= exclusions)

    def leave(n: str, m: nn.Module, why: str) -> None:
        left[f"{n}.weight" if n else "weight"] = (id(_weight_tensor(m)), why)
    if modules is not None:
        wanted = list(modules)
        by_name = {n: m for n, m in named}
        ids = {id(m) for _, m in named}
        keep, bad = set(), []
        for w in wanted:
            if isinstance(w, str) and w in by_name:
                keep.add(id(by_name[w]))
            elif isinstance(w, nn.Module) and id(w) in ids:
                keep.add(id(w))
            else:
                bad.append(w)
        if bad:
            raise ValueError(f"LSUV: modules entries {bad!r} are not rescalable layers ({_LAYER_TYPES}) of this model; "
                             f"its layers: {sorted(by_name)}")
        for n, m in named:
            if id(m) not in keep:
                leave(n, m, "not selected by modules=")
                quiet.add(f"{n}.weight" if n else "weight")
        named = [(n, m) for n, m in named if id(m) in keep]
    # A layer whose weight a parametrization other than weight_norm computes cannot be rescaled
    # by scaling a stored tensor (spectral_norm divides by the largest singular value).
    par_ids: set[int] = set()
    kept = []
    for n, m in named:
        unscalable = _unscalable_parametrization(m)
        if unscalable is None:
            kept.append((n, m))
            continue
        leave(n, m, unscalable[0])
        par_ids |= {id(p) for p in unscalable[1]}
    named = kept
    # A weight tied to another module cannot be rescaled for one layer alone: tied to a module
    # LSUV does not rescale (an embedding) -> left alone; shared by several layers -> rescaled
    # at its first holder in execution order (decided after the discovery pass).
    holders: dict[int, list[str]] = {}
    for mname, m in module.named_modules():
        if id(m) in owned:
            continue
        if type(m).__name__ == "ParametrizationList":  # its originals make the weight of the layer above
            mname = mname.rsplit(".parametrizations.", 1)[0] if ".parametrizations." in mname else ""
        for p in m.parameters(recurse=False):
            holders.setdefault(id(p), []).append(mname or "(root)")
    layer_names = {n or "(root)" for n, _ in all_layers}
    tied = []
    for n, m in named:
        w = _weight_tensor(m)
        others = [h for h in holders.get(id(w), []) if h != (n or "(root)")]
        outside = [h for h in others if h not in layer_names]
        if outside:
            tied.append((n, outside))
            leave(n, m, f"tied to {', '.join(outside)}, which LSUV does not rescale (rescaling {n or '(root)'} "
                        "would rescale it too)")
    tied_names = {n for n, _ in tied}
    named = [(n, m) for n, m in named if n not in tied_names]
    if not named:
        listing = {k: v for k, (_, v) in left.items()}
        listing.update(_not_scaled(module, {i for i, _ in left.values()} | par_ids))
        what = "; ".join(f"{k}: {v}" for k, v in listing.items()) or "the model has no parameters"
        raise ValueError(f"LSUV: the model has no layer LSUV can rescale ({_LAYER_TYPES}). Weights: {what}")
    batches = _Batches(x, prepare, pool_batches)
    probe = _HookProbe(stop_early)

    def make_hook(idx: int) -> Callable[..., None]:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            o = probes.first_tensor(out)
            if o is None:
                return
            # Measured right now: an in-place activation after this module cannot alter it.
            probe.record(idx, o.detach(), _moments)

        return hook

    def run(batch: Any) -> Any:
        return probes.call(module, batch)

    with probes.model_state(module, mode="eval", batchnorm=batchnorm), \
            probes.forward_hooks((m, make_hook(i)) for i, (_, m) in enumerate(named)):
        run(batches.next())  # discovery pass: execution order and calls per layer
        probe.discover = False
        order = probe.order
        never = [i for i in range(len(named)) if i not in probe.counts]
        for i in never:
            leave(*named[i], "layer never called in the forward pass")
        # A weight shared by several layers: rescaled at its first holder in execution order.
        first_holder: dict[int, str] = {}
        shared = []
        for i in order:
            n, m = named[i]
            w = _weight_tensor(m)
            if id(w) in first_holder:
                shared.append(i)
                leave(n, m, f"weight shared with {first_holder[id(w)]}, rescaled there")
            else:
                first_holder[id(w)] = n or "(root)"
        order = [i for i in order if i not in shared]
        probe.order = order
        if not order:
            raise ValueError("LSUV: none of the model's rescalable layers ran in the forward pass: "
                             + ", ".join(n or "(root)" for n, _ in named))
        # Built after the discovery pass, so lazy modules have materialized their weights.
        layers = [_TorchLayer(named[i][0] or "(root)", named[i][1]) for i in order]
        bad_dtype = [f"{layer.name} ({layer.weight.dtype})" for layer in layers if not layer.weight.is_floating_point()]
        if bad_dtype:
            raise TypeError(f"LSUV: layers {', '.join(bad_dtype)} have non-floating-point weights; "
                            "floating-point weights are needed")
        handled = {id(t) for layer in layers for t in (layer.weight, *layer.owned(), *layer._biases())}
        handled |= {i for i, _ in left.values()} | par_ids
        for n, m in all_layers:  # a parametrized layer left alone: its originals are listed under its weight
            wn = _weight_norm_parts(m)
            if wn is not None and f"{n}.weight" in left:
                handled |= {id(wn[0]), id(wn[1])}
        rest = _not_scaled(module, handled, quiet)  # embeddings join `quiet`: by design, not a surprise
        # Registration order, whoever found the entry.
        rank = {q: r for r, (q, _) in enumerate(module.named_parameters(remove_duplicate=False))}
        found = {**{k: v for k, (_, v) in left.items()}, **rest}
        not_scaled = {k: found[k] for k in sorted(found, key=lambda q: rank.get(q, len(rank)))}
        loud = {k: v for k, v in not_scaled.items() if k not in quiet}
        if loud:
            warnings.warn(f"LSUV: {len(loud)} weight(s) were not scaled (see report.not_scaled): "
                          + "; ".join(f"{k}: {v}" for k, v in loud.items()), RuntimeWarning, stacklevel=2)

        def measure(k: int, batch: Any, check_zero: bool) -> _Moments:
            return probe.measure(k, layers[k], lambda: run(batch), check_zero,
                                 "; a data-dependent forward cannot be LSUV-initialized layer by layer")

        skipped = [named[i][0] or "(root)" for i in never] + [n or "(root)" for n in tied_names] + [
            named[i][0] or "(root)" for i in shared]
        report = _run_lsuv(layers, measure, batches, tol=tol, max_iter=max_iter, target_var=target_var,
                           center=center, orthogonal=orthogonal, seed=seed, forward_passes=1, skipped=skipped,
                           calls=[probe.counts[i] for i in order])
        report.not_scaled = not_scaled
        return report
