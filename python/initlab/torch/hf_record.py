"""Read a Hugging Face model's own ``_init_weights`` without letting it write: :func:`record_hf_init`.

transformers' ``PreTrainedModel._init_weights(module)`` (the base class's and each
architecture's override) is the authority on that architecture's initialization. We call it on
every module, children before parents as ``post_init`` does, inside an
:class:`~initlab.torch.own_record.Recorder` (nothing is written, so this works on meta-device
models too), and fold each parameter's events into its fill (:func:`~.own_record.fold`): the last
full-tensor sampler call, scalar arithmetic after it, exact row edits (an embedding's padding
row). A value the code computes (a sinusoid table ``copy_``-ed in, Mamba's ``A_log`` and
inverse-softplus ``dt_proj.bias``) is computed by running the same ``_init_weights`` on a scratch
copy of the module, its random draws on the parameter's own initlab stream; if that cannot run,
the parameter is kept as constructed, and the manifest says why.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from .own_record import Computed, Recorder, call_to_fill, compute_on_scratch, finish, fold
from .roles import ParamInfo
from .rules import Fill

__all__ = ["record_hf_init", "is_pretrained"]


def is_pretrained(model: nn.Module) -> bool:
    """Whether ``model`` is a Hugging Face ``PreTrainedModel`` with an ``_init_weights``."""
    return any(c.__name__ == "PreTrainedModel" for c in type(model).__mro__) and hasattr(model, "_init_weights")



def _children_first(model: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    seen: set[int] = set()

    def visit(m: nn.Module) -> None:
        if id(m) in seen:
            return
        seen.add(id(m))
        for c in m.children():
            visit(c)
        out.append(m)

    visit(model)
    return out


def record_hf_init(model: nn.Module, infos: list[ParamInfo], *, compute: bool = True) -> dict[int, Fill]:
    """``{id(parameter): Fill}`` for every parameter the model's own ``_init_weights`` sets.

    Empty for models that are not Hugging Face ``PreTrainedModel``s. A parameter written
    several times keeps the last full-tensor call (GPT-2's ``c_proj`` rescaling after the
    generic ``Conv1D`` rule) with the scalar arithmetic after it folded in; writes to a row of a
    parameter (padding rows) become ``("zero_row", i)`` / constant edits after the fill; a value
    the code computes becomes a ``"computed"`` Fill (or ``"keep"`` with ``params["why"]`` when it
    cannot be computed on a scratch copy). With ``compute=False`` computed values are not tried
    on a scratch copy: they come back as ``"keep"`` Fills whose ``why`` names the code.
    """
    if not is_pretrained(model):
        return {}
    by_id = {id(i.param): i for i in infos}
    rec = Recorder([i.param for i in infos])
    with torch.no_grad(), rec:
        for m in _children_first(model):
            rec.context = m
            try:
                cast(Any, model)._init_weights(m)  # (Module.__getattr__ is typed Tensor | Module)
            except Exception:  # noqa: BLE001 - an override that cannot run dry: structural rules decide
                continue
    states: dict[int, Any] = {}
    owners: dict[int, list[nn.Module]] = {}  # the modules whose init wrote it since its last full fill
    for kind, fname, t, args, kw, ctx in rec.events:
        p, whole = rec.resolve(t)
        info = by_id.get(id(p)) if p is not None else None
        if info is None:
            continue
        key = id(info.param)
        if kind == "call" and whole:
            owners[key] = [ctx]
        elif ctx not in owners.setdefault(key, []):
            owners[key].append(ctx)
        if whole:
            states[key] = fold(states.get(key), kind, fname, args, kw, info)
            continue
        edited = _row_edit(states.get(key), kind, fname, t, args, kw, info)
        states[key] = edited if edited is not None else Computed(f"partial {fname.replace('partial ', '')}")
    fills: dict[int, Fill] = {}
    for key, st in states.items():
        res = finish(st)
        if isinstance(res, Fill):
            fills[key] = res
        elif isinstance(res, Computed):
            if compute:
                fills[key] = _computed(model, by_id[key], owners.get(key, []), res.why)
            else:
                where = ", ".join(type(m).__name__ for m in owners.get(key, [])) or "?"
                fills[key] = Fill("keep", {"why": f"{type(model).__name__}._init_weights computes this value "
                                                  f"({res.why} in {where}'s init)"})
    return fills


def library_computed_rules(model: nn.Module, infos: list[ParamInfo], recipe: str) -> list[Any]:
    """Rules that keep what a Hugging Face model's own ``_init_weights`` computes (sinusoid tables,
    state-space spectra, inverse-softplus biases): recipes other than ``"hf"`` fill weights by
    kind, and a value the library computes is not a weight to re-sample. Empty for other models."""
    from .rules import FnRule

    if not is_pretrained(model):
        return []
    kept = {k: f for k, f in record_hf_init(model, infos, compute=False).items() if f.init == "keep"}
    rules: list[Any] = []
    for i in infos:
        f = kept.get(id(i.param))
        if f is not None:
            rules.append(FnRule(f"{recipe}: {f.params['why']}; kept, not re-sampled", _is(i.param), _keep))
    return rules


def _is(param: torch.Tensor) -> Any:
    key = id(param)
    return lambda info: id(info.param) == key


def _keep(info: ParamInfo) -> Fill:
    return Fill("keep")


def _row_edit(state: Any, kind: str, fname: str, t: torch.Tensor, args: tuple, kw: dict, owner: ParamInfo) -> Fill | None:
    """A zero/constant write to one row ``t = p[i]`` of a 2-D parameter filled by ``state``, as an
    exact edit after the fill; None when it is not one."""
    if not isinstance(state, Fill) or kind != "call" or fname not in ("zeros_", "zero_", "constant_", "fill_"):
        return None
    p = owner.param
    if p.dim() != 2 or t.dim() != 1 or t.shape[0] != p.shape[1] or p.shape[1] == 0 or t.stride() != (p.stride(1),):
        return None
    row, rem = divmod(int(t.storage_offset()) - int(p.storage_offset()), int(p.stride(0)))
    if rem or not 0 <= row < p.shape[0]:
        return None
    v = call_to_fill(fname, args, kw, owner)
    if v is None or v.init != "constant":
        return None
    op = ("zero_row", int(row)) if v.params["value"] == 0.0 else ("constant_slice", int(row), int(row) + 1, v.params["value"])
    return Fill(state.init, state.params, state.post + (op,), state.fn)


def _computed(model: nn.Module, info: ParamInfo, owners: list[nn.Module], why: str) -> Fill:
    """A ``"computed"`` Fill running ``model._init_weights`` on a scratch copy of the module that
    computes ``info``'s parameter, or ``"keep"`` with the reason it cannot."""
    from ..generator import Generator

    cls = type(model).__name__
    if len(owners) != 1:
        where = ", ".join(type(m).__name__ for m in owners) or "no module"
        return Fill("keep", {"why": f"{cls}._init_weights computes it ({why}) across several modules ({where}); "
                                    "the library's value is kept"})
    module = owners[0]
    target = next((n for n, q in module.named_parameters(remove_duplicate=False) if q is info.param), None)
    if target is None:
        return Fill("keep", {"why": f"{cls}._init_weights computes it ({why}) from a module that does not hold it; "
                                    "the library's value is kept"})
    mname = next((n for n, m in model.named_modules() if m is module), "?")
    by = f"{cls}._init_weights({mname or type(module).__name__}): {why}"

    def run(twin: nn.Module) -> None:
        cast(Any, model)._init_weights(twin)

    try:
        trial = [compute_on_scratch(run, module, target, Generator(s), info.param.dtype) for s in (0, 1)]
    except Exception as e:  # noqa: BLE001 - any failure of the library's code: keep, and say why
        return Fill("keep", {"why": f"{by}; running it on a scratch copy failed ({type(e).__name__}: {e}); "
                                    "the library's value is kept"})
    if trial[0].device.type == "meta" or tuple(trial[0].shape) != tuple(info.param.shape):
        return Fill("keep", {"why": f"{by}; it cannot be computed on a scratch copy; the library's value is kept"})
    random = not torch.equal(trial[0].reshape(-1).view(torch.uint8), trial[1].reshape(-1).view(torch.uint8))

    def compute(seed: Any) -> torch.Tensor:
        return compute_on_scratch(run, module, target, seed, info.param.dtype)

    return Fill("computed", {"by": by, "random": random}, (), compute)
