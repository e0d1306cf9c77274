"""The ``"own"`` recipe: the model's library's own initialization, recorded and replayed by initlab.

No rule here is written for a model family. The library's code is the authority and is run,
watched, and replayed:

* a Hugging Face ``PreTrainedModel`` (no factory needed): its ``_init_weights`` is recorded
  (:func:`~initlab.torch.hf_record.record_hf_init`); a parameter it does not set keeps its
  constructed value;
* any ``nn.Module`` with ``factory=`` (a function that builds the model as its library does:
  ``lambda: timm.create_model("resnet50")``, ``lambda: torchvision.models.vit_b_16()``,
  ``lambda: MyNet(cfg)``): the construction is recorded on a CPU twin whose random weights are
  never touched (:func:`~initlab.torch.own_construct.record_construction`).

Random fills are replayed on initlab's per-name streams (reproducible, shard- and
thread-independent); values the code computes are copied (or computed on a scratch copy) exactly;
what cannot be replayed is kept, and the manifest says why.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from .roles import ParamInfo
from .rules import Fill, FnRule, Rule

__all__ = ["own_rules"]


def own_rules(model: nn.Module, infos: list[ParamInfo], opts: dict[str, Any]) -> list[Rule]:
    """The rules of ``recipe="own"`` for ``model`` (option ``factory``)."""
    from .hf_record import is_pretrained, record_hf_init

    factory = opts.get("factory")
    if factory is not None and not callable(factory):
        raise TypeError(f"factory must be a callable that returns the model, got {type(factory).__name__}")
    cls = type(model).__name__
    if factory is None:
        if not is_pretrained(model):
            raise ValueError(f"recipe 'own' needs factory= for a {cls}: a function that builds the model as its "
                             "library does (e.g. lambda: timm.create_model('resnet50'), lambda: MyNet(cfg)); "
                             "Hugging Face PreTrainedModels need none (their _init_weights is recorded)")
        fills = record_hf_init(model, infos)
        label = f"own: {cls}._init_weights"
        return [FnRule(label, lambda i: id(i.param) in fills, lambda i: fills[id(i.param)]),
                FnRule(f"own: not set by {cls}._init_weights; kept as constructed",
                       lambda i: id(i.param) not in fills, lambda i: Fill("keep"))]
    rules = _from_construction(factory, model, infos)
    if is_pretrained(model):
        # A value its constructor computes from a random draw (Mamba's dt_proj.bias) is computed
        # again from its _init_weights on a scratch copy, on the parameter's own stream.
        recorded = {k: f for k, f in record_hf_init(model, infos).items() if f.init == "computed"}
        rules.insert(0, FnRule(f"own: {cls}._init_weights (computed on a scratch copy)",
                               lambda i: id(i.param) in recorded and _kept_by(rules[-1], i),
                               lambda i: recorded[id(i.param)]))
    return rules


def _kept_by(rule: Rule, info: ParamInfo) -> bool:
    return rule.matches(info) and rule.resolve(info).init == "keep"


def _from_construction(factory: Callable[[], nn.Module], model: nn.Module, infos: list[ParamInfo]) -> list[Rule]:
    from .own_construct import record_construction
    from .own_record import Computed

    twin, seen = record_construction(factory)
    shapes = {n: tuple(p.shape) for n, p in twin.named_parameters(remove_duplicate=False)}
    del twin  # its sampled weights were never touched; computed values are held in `seen`
    problems = []
    fills: dict[int, Fill] = {}
    for i in infos:
        names = (i.name,) + tuple(i.aliases)
        got = next((seen[n] for n in names if n in seen), None)
        if got is None:
            problems.append(f"{i.name} (the factory's model has no parameter of that name)")
            continue
        theirs = next(shapes[n] for n in names if n in shapes)
        if theirs != i.shape:
            problems.append(f"{i.name} (shape {i.shape}; the factory's model has {theirs})")
            continue
        st = got.state
        if isinstance(st, Fill):
            fills[id(i.param)] = st
        elif isinstance(st, Computed) and got.value is not None and got.value.device.type == "meta":
            fills[id(i.param)] = Fill("keep", {"why": f"the constructor computes it ({st.why}), but factory() built "
                                                      "the model on the meta device, where no value exists"})
        elif isinstance(st, Computed) and got.value is not None:
            value = got.value

            def compute(seed: Any, value: torch.Tensor = value) -> torch.Tensor:
                return value

            fills[id(i.param)] = Fill("computed", {"by": f"the constructor ({st.why})", "random": False}, (), compute)
        elif isinstance(st, Computed):
            fills[id(i.param)] = Fill("keep", {"why": f"the constructor computes it from random draws ({st.why}); "
                                                      "initlab cannot replay that per name"})
        else:
            fills[id(i.param)] = Fill("keep", {"why": "the constructor leaves it uninitialized (torch.empty)"})
    if problems:
        raise ValueError(f"recipe 'own': factory() does not build this model ({type(model).__name__}): "
                         + "; ".join(problems))
    return [FnRule("own: recorded from the model's construction", lambda i: id(i.param) in fills,
                   lambda i: fills[id(i.param)])]
