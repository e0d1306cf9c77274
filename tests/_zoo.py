"""A zoo of small rebuilt timm and torchvision structures, each with its library's OWN init.

timm and torchvision do not import in this environment, so their models are rebuilt here at tiny
widths and depths (CPU-fast), with the module and parameter NAMES and the structure of the real
libraries (that is what initlab's recipes see), and each comes with a function that applies the
library's own initialization the way its code does (timm's ``init_weights`` / ``_init_weights`` /
``named_apply`` / ``_init_weight_goog`` / ``efficientnet_init_weights`` and the constructors'
``reset_parameters``; torchvision's constructor loops).

Registry
--------
``ZOO[name] = ZooEntry(build, library_init, example_input)``, names ``"timm_<family>"`` and
``"tv_<model>"`` (the library is the prefix, :func:`library_of`):

* ``build()`` -> a model as the library's constructor leaves it (its init already applied);
* ``library_init(model)`` -> re-applies the library's own init in place, exactly as its code does,
  and returns ``{qualified parameter name: (kind, params)}`` for EVERY parameter: what the library
  wrote there, in initlab's :class:`~initlab.torch.rules.Fill` vocabulary — ``"normal"``
  ``{mean, std}``, ``"uniform"`` ``{a, b}``, ``"trunc_normal"`` ``{mean, std, a, b}`` (absolute
  bounds), ``"constant"`` ``{value}``; parameters the library leaves to torch's own
  ``reset_parameters`` are described by torch's distributions;
* ``example_input()`` -> a small input batch the model's ``forward`` accepts.

``ZOO_TIMM`` and ``ZOO_TV`` list the names per library. :func:`differences` compares a recipe's
manifest and fills with the library's own init, parameter by parameter. Timm structures live in
``tests/_zoo_timm.py`` (convnets), ``tests/_zoo_timm_vit.py`` (transformers),
``tests/_zoo_timm_hybrid.py`` (MaxViT, CoAtNet, LeViT) and ``tests/_zoo_timm_layers.py``,
torchvision's in ``tests/_zoo_tv.py``; the shared recorder and the comparison are here.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

__all__ = ["ZOO", "ZOO_TIMM", "ZOO_TV", "ZooEntry", "InitLog", "library_of", "differences", "dist_std"]

Spec = tuple[str, dict[str, float]]


class ZooEntry(NamedTuple):
    build: Callable[[], nn.Module]
    library_init: Callable[[nn.Module], dict[str, Spec]]
    example_input: Callable[[], torch.Tensor]


def _fans(t: torch.Tensor) -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(t)


class InitLog:
    """Runs torch.nn.init calls the way a library does and records what each parameter got.

    Starts from torch's ``reset_parameters`` distributions of every standard module of ``model``
    (what a parameter the library does not touch keeps); each call then overwrites the record of
    its tensor, so the last write wins, as in the library.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.rec: dict[int, Spec] = {}
        for m in model.modules():
            for pname, p in m.named_parameters(recurse=False):
                spec = _torch_default_spec(m, pname, p)
                if spec is not None:
                    self.rec[id(p)] = spec
        _mha_out_bias(model, self)

    # -- the calls --------------------------------------------------------------------------
    def normal(self, t: torch.Tensor, mean: float = 0.0, std: float = 1.0) -> None:
        with torch.no_grad():
            t.normal_(mean, std)
        self.rec[id(t)] = ("normal", {"mean": float(mean), "std": float(std)})

    def uniform(self, t: torch.Tensor, a: float, b: float) -> None:
        with torch.no_grad():
            t.uniform_(a, b)
        self.rec[id(t)] = ("uniform", {"a": float(a), "b": float(b)})

    def trunc_normal(self, t: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                     b: float = 2.0) -> None:
        """timm's / torch's trunc_normal_: bounds a, b absolute."""
        nn.init.trunc_normal_(t, mean, std, a, b)
        self.rec[id(t)] = ("trunc_normal", {"mean": float(mean), "std": float(std), "a": float(a), "b": float(b)})

    def trunc_normal_tf(self, t: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                        b: float = 2.0) -> None:
        """timm's trunc_normal_tf_: a standard normal truncated to [a, b], then scaled and shifted."""
        nn.init.trunc_normal_(t, 0.0, 1.0, a, b)
        with torch.no_grad():
            t.mul_(std).add_(mean)
        self.rec[id(t)] = ("trunc_normal", {"mean": float(mean), "std": float(std),
                                            "a": float(mean + a * std), "b": float(mean + b * std)})

    def constant(self, t: torch.Tensor, value: float) -> None:
        with torch.no_grad():
            t.fill_(value)
        self.rec[id(t)] = ("constant", {"value": float(value)})

    def zeros(self, t: torch.Tensor) -> None:
        self.constant(t, 0.0)

    def ones(self, t: torch.Tensor) -> None:
        self.constant(t, 1.0)

    def xavier_uniform(self, t: torch.Tensor, gain: float = 1.0) -> None:
        fi, fo = _fans(t)
        b = gain * math.sqrt(6.0 / (fi + fo))
        self.uniform(t, -b, b)

    def kaiming_normal(self, t: torch.Tensor, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> None:
        fi, fo = _fans(t)
        gain = nn.init.calculate_gain(nonlinearity, 0)
        self.normal(t, 0.0, gain / math.sqrt(fi if mode == "fan_in" else fo))

    def scale(self, t: torch.Tensor, s: float) -> None:
        """``t.mul_(s)`` (timm's fix_init_weight, head_init_scale): the record scales with it."""
        with torch.no_grad():
            t.mul_(s)
        kind, p = self.rec[id(t)]
        keys = {"normal": ("mean", "std"), "uniform": ("a", "b"), "trunc_normal": ("mean", "std", "a", "b"),
                "constant": ("value",)}[kind]
        q = dict(p)
        for k in keys:
            q[k] = q[k] * s
        if kind == "constant":
            q["value"] = float(q["value"])
        self.rec[id(t)] = (kind, q)

    def result(self) -> dict[str, Spec]:
        out: dict[str, Spec] = {}
        for name, p in self.model.named_parameters():
            if id(p) not in self.rec:
                raise AssertionError(f"zoo: no record of what the library gives {name}")
            out[name] = self.rec[id(p)]
        return out


def _torch_default_spec(m: nn.Module, pname: str, p: torch.Tensor) -> Spec | None:
    """torch's own reset_parameters distribution for a standard module's parameter."""
    if isinstance(m, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)):
        return ("constant", {"value": 1.0 if pname == "weight" else 0.0})
    if isinstance(m, nn.MultiheadAttention):
        if pname == "in_proj_weight":
            fi, fo = _fans(p)
            b = math.sqrt(6.0 / (fi + fo))
            return ("uniform", {"a": -b, "b": b})
        if pname == "in_proj_bias":
            return ("constant", {"value": 0.0})
        return None
    if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
        w = m.weight
        fi = _fans(w)[0]
        b = 1.0 / math.sqrt(fi)
        return ("uniform", {"a": -b, "b": b})
    return None


def _mha_out_bias(model: nn.Module, log: InitLog) -> None:
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention) and m.out_proj.bias is not None:
            log.rec[id(m.out_proj.bias)] = ("constant", {"value": 0.0})


def _img(size: int) -> Callable[[], torch.Tensor]:
    def make() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(2, 3, size, size, generator=g)

    return make


ZOO: dict[str, ZooEntry] = {}
ZOO_TV: dict[str, ZooEntry] = {}


def library_of(name: str) -> str:
    """``"timm"`` or ``"torchvision"``: the library a zoo entry rebuilds."""
    return "timm" if name.startswith("timm_") else "torchvision"


def _register() -> None:
    from _zoo_timm import ZOO_TIMM_ENTRIES  # noqa: PLC0415 - tests/ is on sys.path under pytest
    from _zoo_timm_hybrid import ZOO_TIMM_HYBRID_ENTRIES  # noqa: PLC0415
    from _zoo_timm_vit import ZOO_TIMM_VIT_ENTRIES  # noqa: PLC0415
    from _zoo_tv import ZOO_TV_ENTRIES  # noqa: PLC0415

    ZOO.update(ZOO_TIMM_ENTRIES)
    ZOO.update(ZOO_TIMM_VIT_ENTRIES)
    ZOO.update(ZOO_TIMM_HYBRID_ENTRIES)
    ZOO_TV.update(ZOO_TV_ENTRIES)
    ZOO.update(ZOO_TV)


_register()
ZOO_TIMM = [n for n in ZOO if n.startswith("timm_")]


# ==== comparing a recipe with the library's own init ===========================================

_KEYS = {"normal": ("mean", "std"), "uniform": ("a", "b"), "trunc_normal": ("mean", "std", "a", "b"),
         "constant": ("value",)}


def dist_std(kind: str, p: dict[str, float]) -> float:
    """The standard deviation of the distribution ``(kind, p)`` (a truncated normal's after truncation)."""
    if kind == "normal":
        return p["std"]
    if kind == "uniform":
        return (p["b"] - p["a"]) / math.sqrt(12.0)
    if kind == "trunc_normal":
        sd = p["std"]
        al, be = (p["a"] - p["mean"]) / sd, (p["b"] - p["mean"]) / sd
        phi = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)  # noqa: E731
        cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
        z = cdf(be) - cdf(al)
        m = (phi(al) - phi(be)) / z
        return sd * math.sqrt(max(1 + (al * phi(al) - be * phi(be)) / z - m * m, 0.0))
    return 0.0


def _sample_problem(t: torch.Tensor, kind: str, p: dict[str, float]) -> str | None:
    """Whether ``t``'s sample mean/std are those of ``(kind, p)``: 6 standard errors (std/sqrt(2n)
    for the std estimate, std/sqrt(n) for the mean), plus the support of bounded distributions."""
    x = t.detach().double().flatten()
    n = x.numel()
    sd = dist_std(kind, p)
    mean = p.get("mean", 0.0) if kind != "uniform" else (p["a"] + p["b"]) / 2
    if kind in ("uniform", "trunc_normal") and (x.min() < p["a"] or x.max() > p["b"]):
        return f"values outside [{p['a']:.4g}, {p['b']:.4g}]"
    if n < 2:
        return None
    got_sd, got_mean = float(x.std()), float(x.mean())
    if abs(got_sd - sd) > 6 * sd / math.sqrt(2 * n) + 1e-12:
        return f"sample std {got_sd:.4g}, expected {sd:.4g} (n={n})"
    if abs(got_mean - mean) > 6 * sd / math.sqrt(n) + 1e-12:
        return f"sample mean {got_mean:.4g}, expected {mean:.4g} (n={n})"
    return None


def differences(name: str, recipe: str, seed: int = 0, **options: Any) -> tuple[int, list[str]]:
    """``(number of parameters, differences)`` between ``recipe`` on zoo model ``name`` and the
    library's own init: for a value the library sets (a constant), the recipe must write exactly
    that value (or keep the constructed one); for a random fill, the manifest's Fill must be of
    the same kind with the same numbers (mean/std, bounds) and the filled tensor's sample must
    have that distribution's mean and std (the library's own tensor is checked the same way)."""
    from initlab.torch import init_module

    build, library_init, _ = ZOO[name]
    torch.manual_seed(0)
    lib = build()
    spec = library_init(lib)
    ours = build()
    man = init_module(ours, recipe, seed=seed, return_manifest=True, **options)[1]
    lib_p, our_p = dict(lib.named_parameters()), dict(ours.named_parameters())
    out = []
    for pname, (kind, p) in spec.items():
        e = man[pname]
        init = getattr(e, "init", "keep")
        params = getattr(e, "params", {})
        if kind == "constant":
            if init not in ("constant", "keep") or (init == "constant" and params["value"] != p["value"]):
                out.append(f"{pname}: library constant {p['value']:g}, recipe {init} {params}")
            elif not torch.equal(lib_p[pname], our_p[pname]):
                out.append(f"{pname}: values differ from the library's constant {p['value']:g}")
            continue
        if init != kind or not all(math.isclose(float(params.get(k, math.nan)), p[k], rel_tol=1e-9, abs_tol=1e-15)
                                   for k in _KEYS[kind]):
            got = {k: params.get(k) for k in _KEYS.get(init, params)} if init in _KEYS else params
            out.append(f"{pname}: library {kind} {p}, recipe {init} {got}")
            continue
        for who, t in (("recipe", our_p[pname]), ("library", lib_p[pname])):
            prob = _sample_problem(t, kind, p)
            if prob:
                out.append(f"{pname} ({who}'s fill): {prob}")
    return len(spec), out
