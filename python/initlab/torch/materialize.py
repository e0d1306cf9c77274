"""Give a model built on ``torch.device("meta")`` real storage, initialized: :func:`materialize`."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn

from ..generator import SeedLike
from ..manifest import LeftAlone, Manifest
from .initialize import _make_plan, _manifest, _run
from .rules import Rule
from ._tree import gc_paused, own_parameters

__all__ = ["materialize"]


def _tie_groups(model: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """Every parameter registered under more than one (module, name), grouped by identity (each
    group in registration order; a list is made only for a parameter seen a second time)."""
    first: dict[int, tuple[nn.Module, str]] = {}
    groups: dict[int, list[tuple[nn.Module, str]]] = {}
    for _, mod in model.named_modules(remove_duplicate=False):
        for pname, p in own_parameters(mod):
            key = id(p)
            seen = first.get(key)
            if seen is None:
                first[key] = (mod, pname)
                continue
            group = groups.get(key)
            if group is None:
                group = groups[key] = [seen]
            if not any(m is mod and n == pname for m, n in group):
                group.append((mod, pname))
    return [g for g in groups.values() if len(g) > 1]


@gc_paused
def materialize(model: nn.Module, recipe: Any = "torch_default", *, seed: SeedLike = None, device: Any = "cpu",
                rules: Iterable[Rule] = (), unknown: str = "error", factory: Callable[[], nn.Module] | None = None,
                return_manifest: bool = False, **options: Any) -> Any:
    """Allocate a meta-device model on ``device`` and initialize everything in it; return it.

    Parameters are initialized by ``recipe`` exactly as :func:`init_module` would (same rules,
    same streams: the values equal those of ``init_module`` on an eagerly built copy with the
    same seed); tied parameters stay tied (one tensor, filled once); every buffer gets the value
    an eager construction gives (normalization running statistics reset; buffers computed at
    construction, such as rotary ``inv_freq`` or BERT's ``position_ids``, recomputed — for a
    Hugging Face model from its config, otherwise from ``factory``).

    Parameters
    ----------
    model : torch.nn.Module
        Built under ``torch.device("meta")`` (parameters already on ``device`` are
        re-initialized too).
    recipe, seed, rules, unknown, **options
        As :func:`initlab.torch.init_module`. A rule ``"keep"`` cannot keep a value that was
        never computed: on a meta parameter it is an error unless ``factory`` is given (or the
        model is a Hugging Face model: the value comes from its config twin). ``recipe="auto"``
        with ``example_input=`` traces the forward on a meta copy of the example before
        allocating (the data correction runs on the allocated model with the example itself);
        a forward that cannot run on the meta device (it reads values) is a ``ValueError``
        before allocation: materialize with another recipe, then ``init_module(model, "auto",
        example_input=...)``.
    device : str, int or torch.device
        Where the storage is allocated: ``"cpu"`` (the default), ``"cuda"``, ``"cuda:1"`` or any
        torch device initlab can fill (see :func:`initlab.device_backend`); not ``"meta"``. The
        values are the same bits on every device: ``materialize(m, device="cuda")`` equals
        ``materialize(m)`` moved to the GPU. Buffers are computed on the CPU (the twin) and
        copied to ``device``.
    factory : callable, optional
        Builds the same model (eagerly); used to recompute buffers a non-Hugging Face model
        computes at construction, and the values of parameters a rule keeps. Not needed for the
        kept parameters of a Hugging Face model (CLIP's ``logit_scale``, layer scales): they
        take their constructed values from the twin built from its config for the buffers. Parameters of the
        twin are placed on the meta device, so no full-size parameter is allocated.
    return_manifest : bool
        Return ``(model, manifest)``; the manifest also lists each buffer and how it was restored.

    Raises
    ------
    ValueError
        Everything :func:`init_module` raises; a ``device`` that is not a torch device, is
        ``"meta"``, is not available (``"cuda"`` without a GPU) or that no fill route serves
        (each message names it) — these are all checked before allocation, so on error the
        model is still on the meta device, untouched; so is a buffer that cannot be restored
        (named, with the hint to pass ``factory``) and an error raised by ``factory``. Whatever
        fails later (a user rule's function, an interrupt) puts the model back on the meta device
        with its own parameter and buffer objects before the error propagates: a model is never
        left holding uninitialized memory.
    TypeError
        ``model`` is not an ``nn.Module``; ``device`` is not a str, int or ``torch.device``.
    """
    dev = _check_device(device)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    example = options.get("example_input") if recipe == "auto" else None
    # Plan on the meta model first: every error surfaces before anything is allocated.
    if recipe == "own" and factory is not None:
        options = dict(options, factory=factory)  # the recipe records the same factory's construction
    pl = _make_plan(model, recipe, rules, None, unknown, dict(options), allow_meta=True)
    kept_meta = [x.name for x in pl.left if x.kind == "parameter" and _is_meta(model, x.name)]
    from ..generator import named_seeds
    from ._tree import ModuleState
    from .buffers import apply_buffers, plan_buffers

    seeds = named_seeds(seed)  # a bad seed fails here, before anything is allocated
    # Everything that can fail is done before the allocation: where each buffer's value comes
    # from (a buffer no route restores raises here; so does a factory that raises), and the
    # values of kept parameters.
    # Without a factory, the kept parameters of Hugging Face models take their constructed values
    # from the twin that restores the buffers (built from the config, those parameters real).
    kept_values: dict[str, torch.Tensor] = {}
    buffer_plan = plan_buffers(model, factory=factory, allow_meta=True,
                               kept_params=tuple(kept_meta) if factory is None else (), kept_values=kept_values)
    missing = [n for n in kept_meta if n not in kept_values]
    if missing and factory is None:
        raise ValueError(f"parameters {missing} are kept by the recipe but have no value on the meta device"
                         + (" (the Hugging Face twin built from the config has none either)" if kept_values or
                            _has_hf(model) else "")
                         + "; pass factory=<a function that builds the model> to take their constructed values, "
                         "or a rule that initializes them")
    if kept_meta and factory is not None:
        kept_values = _kept_values(factory, kept_meta)
    ties = _tie_groups(model)
    state = ModuleState(model)  # the exact registrations to put back if anything still fails
    try:
        model.to_empty(device=dev)
        for group in ties:  # to_empty gives each registration its own tensor: tie them again
            mod0, n0 = group[0]
            p0 = mod0._parameters[n0]
            for mod, n in group[1:]:
                mod._parameters[n] = p0
        tie_fn = getattr(model, "tie_weights", None)
        if callable(tie_fn):
            try:
                tie_fn()
            except Exception:  # noqa: BLE001 - ties were already restored by identity above
                pass
        apply_buffers(model, buffer_plan)
        restored = [(name, how) for name, how, _ in buffer_plan]
        with torch.no_grad():
            for n, v in kept_values.items():
                model.get_parameter(n).copy_(v)
        # The plan made on the meta model still holds: same modules, same names; only the tensors
        # are new (to_empty), so point each entry at its allocated parameter instead of re-planning.
        for info, _, _ in pl.work:
            info.param = info.registered()
        _run(pl, seeds)
    except BaseException:
        # Never leave a model half-materialized (uninitialized memory on the device): put back the
        # meta tensors it was given, so the call can simply be repeated once the cause is fixed.
        state.restore()
        for info, _, _ in pl.work:
            info.param = info.registered()
        raise
    correction = None
    if recipe == "auto" and example is not None:
        from .auto import correct

        correction = correct(model, example, pl.work)
    validation = None
    if recipe == "auto" and example is not None and options.get("validate", True):
        from .initialize import _validate

        validation = _validate(model, example)
    if not return_manifest:
        return model
    man = _manifest(pl, seed)
    left = [x for x in man.left_alone if x.kind != "buffer"]
    left += [LeftAlone(name, "buffer", how) for name, how in restored]
    out = Manifest(man.entries, left, recipe=man.recipe, seed=man.seed)
    out.validation = validation
    out.correction = correction
    return model, out


def _check_device(device: Any) -> torch.device:
    """``device`` as a ``torch.device`` that storage can be allocated on (ValueError naming it)."""
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(f"materialize: device must be a str, an int or a torch.device; got device={device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"materialize: device={device!r} is not a torch device ({e})") from None
    if dev.type == "meta":
        raise ValueError(f"materialize allocates real storage; got device={device!r} (the meta device holds none)")
    if dev.type != "cpu":
        try:  # an unavailable device fails here, before the model is touched
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError, ValueError) as e:
            raise ValueError(f"materialize: device={device!r} is not available ({e})") from None
        import initlab

        backend = getattr(initlab, "device_backend", None)
        if backend is None:  # pragma: no cover - a build without the device routes
            raise ValueError(f"materialize: this initlab fills CPU storage only; got device={device!r}")
        try:
            backend(torch.empty(0, device=dev))
        except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
            raise ValueError(f"materialize: initlab cannot fill tensors on device={device!r} ({e})") from None
    return dev


def _has_hf(model: nn.Module) -> bool:
    from .buffers import _hf_roots

    return bool(_hf_roots(model))


def _is_meta(model: nn.Module, name: str) -> bool:
    try:
        return model.get_parameter(name).device.type == "meta"
    except AttributeError:
        return False


def _kept_values(factory: Callable[[], nn.Module], names: list[str]) -> dict[str, torch.Tensor]:
    """The constructed values of the parameters a rule keeps, from an eager ``factory()`` build
    (taken before the model is allocated: a factory that raises leaves it untouched)."""
    twin = factory()
    if not isinstance(twin, nn.Module):
        raise TypeError(f"factory() must return a torch.nn.Module, got {type(twin).__name__}")
    out = {}
    for n in names:
        try:
            out[n] = twin.get_parameter(n).detach()
        except AttributeError:
            raise ValueError(f"parameter {n} is kept by the recipe but the factory's model has no parameter of that "
                             "name") from None
    return out
