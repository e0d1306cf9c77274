"""Whole-model initialization: :func:`plan` (a dry run) and :func:`init_module`.

Both build the same list of (parameter, resolved fill, stream) from the recipe's rules, so the
:class:`~initlab.manifest.Manifest` a dry run returns is exactly what ``init_module`` does.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..manifest import Entry, LeftAlone, Manifest
from .recipes import build_recipe
from .roles import ParamInfo, param_infos
from .rules import Fill, FnRule, Rule, execute, structural_fill
from ._direct import _PLAIN, DirectWriter  # _PLAIN: tensor subclasses may answer .device their own way
from ._tree import gc_paused

__all__ = ["plan", "init_module"]

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_UNKNOWN = ("error", "skip", "keep")
_UNTRIED: Any = object()


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).replace("torch.", "")


def _only_predicate(only: Any) -> Callable[[str], bool] | None:
    if only is None:
        return None
    if callable(only):
        return lambda n: bool(only(n))
    prefixes = (only,) if isinstance(only, str) else tuple(only)
    bad = [p for p in prefixes if not isinstance(p, str)]
    if bad or not prefixes:
        raise TypeError(f"only= takes module-name prefixes (str or a list of str) or a predicate on the "
                        f"qualified name; got {only!r}")

    def pred(name: str) -> bool:
        return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)

    return pred


class _Plan:
    """The resolved work: entries for the manifest and what to execute."""

    def __init__(self) -> None:
        self.work: list[tuple[ParamInfo, Fill, str]] = []  # (info, fill, rule label)
        self.left: list[LeftAlone] = []
        self.recipe = ""


def _make_plan(model: nn.Module, recipe: Any, rules: Iterable[Rule], only: Any, unknown: str,
               options: dict[str, Any], *, allow_meta: bool = False) -> _Plan:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    if unknown not in _UNKNOWN:
        raise ValueError(f"unknown must be one of {_UNKNOWN}, got {unknown!r}")
    user_rules = list(rules)
    bad_rules = [r for r in user_rules if not isinstance(r, Rule)]
    if bad_rules:
        raise TypeError(f"rules= takes Rule objects; got {bad_rules!r}")
    pred = _only_predicate(only)
    from ._tree import check_acyclic

    check_acyclic(model)  # a model that contains itself: a clear error, not a RecursionError
    infos = list(param_infos(model))
    name, recipe_rules = build_recipe(recipe, model, infos, dict(options))
    if name not in ("hf", "own", "custom"):
        from .hf_record import library_computed_rules

        recipe_rules = library_computed_rules(model, infos, name) + recipe_rules
    all_rules = user_rules + recipe_rules
    matchers = _matchers(all_rules)
    out = _Plan()
    out.recipe = name
    problems: list[str] = []
    missing: list[str] = []
    for info in infos:
        p = info.param
        if pred is not None and not any(pred(n) for n in (info.name,) + info.aliases):
            out.left.append(LeftAlone(info.name, "parameter", "not selected by only="))
            continue
        if isinstance(p, nn.parameter.UninitializedTensorMixin):  # type: ignore[attr-defined]  # not in torch's .pyi
            problems.append(f"{info.name} is not materialized yet (lazy module): run one forward pass first")
            continue
        device = _device_type(p)
        if device == "meta" and not allow_meta:
            problems.append(f"{info.name} is on the meta device: use initlab.torch.materialize(model, ...)")
            continue
        if p.dtype not in _DTYPES:
            # bool/int/complex parameters (counters, masks kept as parameters): initlab never fills
            # them; they can be kept (a "keep" rule, or unknown="keep"/"skip" when no rule of the
            # user's asks for a fill), anything else is refused with the way out.
            rule = _first_match(matchers, info)
            try:
                keeps = rule is not None and rule.resolve(info).init == "keep"
            except (ValueError, TypeError):
                keeps = False
            if keeps and rule is not None:  # (keeps implies a rule)
                out.left.append(LeftAlone(info.name, "parameter", f"kept as constructed ({rule.label})"))
            elif unknown != "error" and not any(rule is r for r in user_rules):
                out.left.append(LeftAlone(info.name, "parameter",
                                          f"dtype {_dtype_name(p.dtype)} is not filled by initlab (unknown={unknown!r})"))
            else:
                how = f"rule {rule.label!r} would fill it" if rule is not None else "no rule keeps it"
                problems.append(f"{info.name} has dtype {_dtype_name(p.dtype)} ({how}); initlab fills float32, "
                                f"float64, float16 and bfloat16 parameters only: keep it with unknown='keep' or "
                                f"rules=[initlab.torch.Rule('keep', name={info.name!r})]")
            continue
        if device not in ("cpu", "meta"):
            why = _device_problem(p)
            if why is not None:
                problems.append(f"{info.name}: {why}")
                continue
        shard = None
        if callable(getattr(p, "to_local", None)):  # a DTensor: placements checked before any write
            try:
                from ._dtensor import local_shard

                shard = local_shard(p, name=info.name)
            except ValueError as e:
                problems.append(str(e))
                continue
        rule = _first_match(matchers, info)
        if rule is None:
            if unknown == "error":
                missing.append(f"{info.name} ({info.module_type}, role {info.role or 'none'}, shape {tuple(p.shape)})")
            else:
                out.left.append(LeftAlone(info.name, "parameter", f"no rule in recipe {name!r} (unknown={unknown!r})"))
            continue
        try:
            fill = structural_fill(info, rule.resolve(info))
        except (ValueError, TypeError) as e:
            problems.append(f"{info.name}: {e}")
            continue
        if fill.init == "keep":
            why = fill.params.get("why")
            out.left.append(LeftAlone(info.name, "parameter",
                                      f"kept as constructed ({rule.label}{': ' + why if why else ''})"))
            continue
        if fill.init in ("orthogonal", "recurrent_orthogonal") and shard is not None \
                and tuple(shard[0].shape) != tuple(shard[1]):
            # checked here, not in the write loop: an orthogonal matrix needs all of it at once
            problems.append(f"{info.name}: orthogonal initialization needs the whole matrix, but this rank holds "
                            f"the block {tuple(shard[0].shape)} at offset {shard[2]} of {shard[1]} (DTensor placements "
                            f"{tuple(getattr(p, 'placements', ()))}); initialize it before sharding, or use a fill that works block "
                            "by block (normal, uniform, trunc_normal, the fan-based ones)")
            continue
        if shard is not None and tuple(shard[0].shape) != tuple(shard[1]) and any(op[0] == "derive" for op in fill.post):
            # a parametrization's parts are derived from the whole weight (g = ||v|| per slice, sigma)
            problems.append(f"{info.name}: a parametrization's parts ({info.extra['parametrization']['kind']}) are "
                            f"derived from the whole weight, but this rank holds the block {tuple(shard[0].shape)} of "
                            f"{shard[1]}; initialize it before sharding")
            continue
        if fill.init in ("normal", "uniform", "trunc_normal", "constant", "orthogonal") and info.extra.get("padding_idx") is not None \
                and info.role == "embedding":
            pad = info.extra["padding_idx"] % p.shape[0] if p.shape[0] else 0
            if fill.init != "constant" and ("zero_row", pad) not in fill.post:
                fill = Fill(fill.init, fill.params, fill.post + (("zero_row", pad),), fill.fn)
        out.work.append((info, fill, rule.label))
    problems += _check_numbers(out.work)
    if missing:
        problems.insert(0, f"no rule in recipe {name!r} for {len(missing)} parameter(s): " + "; ".join(missing)
                        + ". Add rules=[initlab.torch.Rule(...)] for them, or pass unknown='keep' to leave them as they are")
    if problems:
        raise ValueError("; ".join(problems))
    for b_name, buf in model.named_buffers():
        out.left.append(LeftAlone(b_name, "buffer", "buffers are not initialized by recipes"))
    return out


def _device_type(p: torch.Tensor) -> str:
    """``p.device.type``, without building a ``torch.device`` for a plain CPU tensor."""
    if type(p) in _PLAIN:
        if p.is_cpu:
            return "cpu"
        if p.is_meta:
            return "meta"
    return p.device.type


_Matchers = tuple[list[tuple[Rule, Callable[[ParamInfo], Any]]], list[tuple[Rule, Callable[[ParamInfo], Any]]]]


def _matchers(rules: list[Rule]) -> _Matchers:
    """Each rule with the function that tells whether it matches (an :class:`FnRule`'s own match
    function, called directly: the recipes' rules are tried for every parameter); all of them,
    then those asked of a parameter without structural facts (``extra`` empty: an
    ``extra_only`` rule cannot match it)."""
    every = [(r, r._match if isinstance(r, FnRule) and type(r).matches is FnRule.matches else r.matches)
             for r in rules]
    return every, [(r, m) for r, m in every if not (isinstance(r, FnRule) and getattr(r, "extra_only", False))]


def _first_match(matchers: _Matchers, info: ParamInfo) -> Rule | None:
    """The first rule that matches ``info`` (the rule that decides), or None."""
    for rule, match in matchers[0] if info.extra else matchers[1]:
        if match(info):
            return rule
    return None


def _device_problem(p: torch.Tensor) -> str | None:
    """Why initlab cannot fill ``p`` (a tensor on a non-CPU device) in place, or None.

    Asked of :func:`initlab.device_backend` (the route the fill will take), so that a device no
    route serves fails in the plan, before the first write, not half-way through the model."""
    import initlab

    backend = getattr(initlab, "device_backend", None)
    if backend is None:  # pragma: no cover - a build without the device routes
        return f"on {p.device}; this initlab fills CPU tensors only"
    to_local = getattr(p, "to_local", None)
    local = to_local() if callable(to_local) else p  # a DTensor: its local block
    try:
        backend(local)
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        return f"cannot be filled on {p.device}: {e}"
    return None


def _check_numbers(work: list[tuple[ParamInfo, Fill, str]]) -> list[str]:
    """Run each distinct fill once on a scratch tensor: bad numbers (negative std, an empty
    truncation interval, ...) surface with the parameter's name before anything is written."""
    bad: list[str] = []
    tried: dict[tuple, str | None] = {}
    capped: dict[tuple[int, ...], tuple[int, ...]] = {}  # parameter shape -> scratch shape
    for info, fill, _ in work:
        if fill.init in ("callable", "keep", "computed", "derived"):  # computed: tried when it was recorded
            continue
        # The scratch has the parameter's number of dimensions (at most 4 per dimension, empty
        # ones kept): a fill that needs a shape the parameter does not have (orthogonal on a 1-D
        # bias) fails here too, not half-way through the writes.
        if fill.init == "recurrent_orthogonal":
            shape: tuple[int, ...] = (4, 4)
        else:
            full = info.param.shape  # (info.shape as a torch.Size: equal, same hash)
            shape = capped.get(full) or capped.setdefault(full, tuple([min(int(n), 4) for n in full]))
        dtype = info.param.dtype
        # the dtype decides what overflows (a constant 1e5 in float16); the numbers decide the rest
        key = (fill.init, shape, dtype, _numbers_key(fill.params))
        error = tried.get(key, _UNTRIED)
        if error is _UNTRIED:
            # On the CPU whatever the parameter's device (or a default-device context) is: only the
            # numbers are checked here, and the bits do not depend on the device.
            scratch = torch.empty(shape, dtype=dtype if dtype in _DTYPES else torch.float32, device="cpu")
            try:
                scratch_fill = Fill(fill.init, dict(fill.params, hidden_size=2), (), fill.fn) \
                    if fill.init == "recurrent_orthogonal" else Fill(fill.init, fill.params, (), fill.fn)
                execute(scratch_fill, scratch, 0)
                error = tried[key] = None
            except (ValueError, TypeError, OverflowError) as e:
                error = tried[key] = str(e)
        if error is not None:
            bad.append(f"{info.name}: {error}")
    return bad


def _numbers_key(params: dict[str, Any]) -> Any:
    """What :func:`_check_numbers` tries a fill once for: its numbers. All of its params when they
    are hashable (one tuple, no sorting: equal keys mean equal numbers, and a fill whose other
    params differ is only tried once more), else its int/float params sorted by name."""
    items = tuple(params.items())
    try:
        hash(items)
    except TypeError:
        return tuple(sorted((k, v) for k, v in items if isinstance(v, (int, float))))
    return items


def _manifest(pl: _Plan, seed: Any) -> Manifest:
    from ..generator import name_stream

    entries = []
    for info, fill, label in pl.work:
        params = {k: v for k, v in fill.params.items() if k != "fn"}
        if fill.post:
            params["post"] = [list(op) for op in fill.post]
        entries.append(Entry(
            name=info.name, shape=info.shape, dtype=_dtype_name(info.param.dtype), module=info.module_type,
            role=info.role, rule=label if label.startswith(pl.recipe) else f"{pl.recipe}: {label}", init=fill.init, params=params,
            stream=name_stream(info.name) if fill.random else None, tied=info.aliases))
    seed_repr = seed if isinstance(seed, (int, type(None))) else repr(seed)
    return Manifest(entries, pl.left, recipe=pl.recipe, seed=seed_repr)


@gc_paused
def plan(model: nn.Module, recipe: Any = "torch_default", *, seed: Any = None, rules: Iterable[Rule] = (),
         only: Any = None, unknown: str = "error", **options: Any) -> Manifest:
    """What :func:`init_module` would do to ``model``, without writing anything.

    Takes the arguments of :func:`init_module` (but ``method``/``return_manifest``) and returns the
    :class:`~initlab.manifest.Manifest` that call would return; works on meta-device models
    and on models on any device (nothing is read or moved).
    """
    m = _manifest(_make_plan(model, recipe, rules, only, unknown, options, allow_meta=True), seed)
    m.dry_run = True  # its table says "would be written"
    return m


def _run(pl: _Plan, seeds: Any) -> None:
    """Write every planned fill; ``seeds`` is ``named_seeds(seed)``, resolved (and validated)
    by the caller before anything was allocated or written.

    Every fill of initlab's own was checked by the plan (numbers, shapes, devices, DTensor
    placements), so only code that is not initlab's can still raise here (a user's callable, a
    library's init computing a value on a scratch copy): it runs first, each on a snapshot of its
    own tensor, and if one raises, every tensor it has written is put back byte for byte before
    the error propagates — no parameter has changed. (Values do not depend
    on the order: each parameter's stream comes from its name.)"""
    try:
        from ._dtensor import local_shard
    except ImportError:  # pragma: no cover - the module ships with initlab
        local_shard = None  # type: ignore[assignment]

    def target(info: ParamInfo) -> tuple[torch.Tensor, Any, Any]:
        if type(info.param) in _PLAIN:  # (a DTensor, or a Parameter wrapping one, is neither)
            return info.param, None, None
        shard = local_shard(info.param) if local_shard is not None else None
        if shard is not None:
            return shard
        return info.param, None, None

    # Code that is not initlab's (a user's callable, a library's init run on a scratch copy for a
    # computed value) runs first, each tensor snapshotted, so that if it raises nothing has changed.
    foreign = ("callable", "computed")
    work = [w for w in pl.work if w[1].init in foreign] + [w for w in pl.work if w[1].init not in foreign]
    written: list[tuple[torch.Tensor, torch.Tensor]] = []  # (tensor, its bytes before) for those
    direct = DirectWriter(seeds)  # plain random fills of CPU tensors: the core, straight (same bits)
    with torch.no_grad():
        try:
            for info, fill, _ in work:
                t, gshape, offset = target(info)
                if fill.init in foreign:
                    written.append((t, t.detach().clone()))
                if gshape is not None:
                    execute(fill, t, seeds(info.name), global_shape=gshape, offset=offset)
                elif not direct.write(fill, t, info.name):
                    execute(fill, t, seeds(info.name))
        except BaseException:
            for t, before in reversed(written):
                t.copy_(before)
            raise


@gc_paused
def init_module(model: nn.Module, recipe: Any = "torch_default", *, seed: Any = None,
                rules: Iterable[Rule] = (), only: Any = None, unknown: str = "error",
                method: str | None = None, return_manifest: bool = False, **options: Any) -> Any:
    """Initialize every parameter of ``model`` in place by a recipe; return ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Parameters on any device but meta — CPU, CUDA, or any other torch device (plain tensors
        or DTensor shards) — float32/float64/float16/bfloat16; written in place where they are
        (the ``Parameter`` objects, their devices and ``requires_grad`` are kept; the model is
        never moved). A parameter on a device gets the same bits as on the CPU: each fill takes
        the route :func:`initlab.device_backend` names for it.
    recipe : str or list of Rule
        ``"torch_default"`` (each torch.nn module's own ``reset_parameters`` distributions;
        HF ``Conv1D`` its own N(0, 0.02)), ``"hf"`` (Hugging Face ``_init_weights``
        conventions: read from the config and recorded from the model's own ``_init_weights``),
        ``"timm"`` / ``"torchvision"`` (each library's own init, its family read from the structure),
        ``"own"`` (any library's own init, recorded from its code and replayed on initlab's
        fills: a Hugging Face model's ``_init_weights``, or the construction of any model with
        ``factory=`` — a function that builds it as its library does; values the code computes
        are copied exactly, what cannot be replayed is kept with the reason; see
        :mod:`initlab.torch.recipes_own`),
        ``"auto"`` (from the traced forward pass: per activation a stable-fixed-point or
        He/LeCun scheme, and with ``example_input=`` an LSUV data correction of the layers
        whose activation has no attracting fixed point, ``correct=False`` to skip it; see
        :mod:`initlab.torch.auto`; the manifest names each scheme, its activation and why,
        and ``manifest.correction`` the scales), or one
        initializer name for every weight: ``"kaiming_normal"``, ``"kaiming_uniform"``,
        ``"xavier_normal"``, ``"xavier_uniform"``, ``"lecun_normal"``, ``"lecun_uniform"``,
        ``"orthogonal"``, ``"normal"``, ``"trunc_normal"``, ``"variance_scaling"`` (their
        options as keywords, e.g. ``nonlinearity="relu"``, ``std=0.02``; norms get 1/0,
        biases 0 — ``bias="torch_default"`` keeps torch's — tokens N(0, 0.02) truncated at 2σ,
        scalars such as layer scales are kept). Or a list of :class:`Rule`.
    seed : int, Generator or None
        Each parameter's stream is derived from its qualified name relative to ``model``
        (``initlab.generator.named_seeds``): adding a layer leaves the others' values unchanged, and
        ``only=`` gives exactly the whole-model call's values. A tied parameter is filled once,
        under its first name, and stays tied.
    rules : list of Rule
        Tried before the recipe's own rules (first match decides).
    only : str, list of str or callable, optional
        Module-name prefixes (``"h.0"``, ``["encoder", "pooler"]``) or a predicate on the
        qualified name: only those parameters are written; the others are listed in the
        manifest as not selected.
    unknown : {"error", "skip", "keep"}
        A parameter no rule matches: ``"error"`` (a ValueError listing **every** such
        parameter), or leave it as it is (``"skip"``/``"keep"``; it is listed in the manifest).
    method : str, optional
        Old name of ``recipe`` (kept for compatibility).
    return_manifest : bool
        Return ``(model, manifest)`` instead of ``model``.
    **options
        Options of the recipe (see above).

    Returns
    -------
    torch.nn.Module or (torch.nn.Module, Manifest)

    Raises
    ------
    ValueError
        Unknown recipe/role/option values, parameters without a rule (``unknown="error"``),
        parameters on the meta device (use :func:`initlab.torch.materialize`) or on a device
        no fill route serves, DTensor parameters whose placements are not one block per rank,
        lazy parameters. Everything is checked before the first write: on error no parameter
        has changed.
    TypeError
        Options a recipe does not take; a non-Module.

    Notes
    -----
    Determinism: with an int seed, each value is a pure function of (seed, parameter name,
    recipe, index) — the same for any thread count, for a DTensor shard filled alone and on
    any device (a ``.cuda()`` model gets the bits of the CPU model).
    Buffers are not touched (see :func:`initlab.torch.materialize`).
    """
    if method is not None:
        recipe = method
    example = options.get("example_input") if recipe == "auto" else None
    validate = options.pop("validate", True) if recipe == "auto" else None
    from ..generator import named_seeds

    pl = _make_plan(model, recipe, rules, only, unknown, options)
    _run(pl, named_seeds(seed))  # the seed is validated before the first write
    if not return_manifest and recipe != "auto":
        return model  # nobody reads the manifest: not built (a few microseconds per parameter)
    manifest = _manifest(pl, seed)
    if recipe == "auto" and example is not None:
        from .auto import correct

        manifest.correction = correct(model, example, pl.work)
    if recipe == "auto" and example is not None and validate:
        manifest.validation = _validate(model, example)
    return (model, manifest) if return_manifest else model


def _validate(model: nn.Module, example: Any) -> Any:
    """One analyze pass on the user's probe batch: per-layer forward and backward scale."""
    from ._analyze import analyze

    try:
        return analyze(model, example)
    except Exception as e:  # noqa: BLE001 - the validation is a report, never a reason to fail
        warnings.warn(f"initlab.torch.init_module(recipe='auto'): the validation pass failed: {e}", stacklevel=3)
        return None
