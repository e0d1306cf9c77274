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
``tests/_zoo_timm.py`` (convnets), ``tests/_zoo_timm_vit.py`` (transformers, hybrids) and
``tests/_zoo_timm_layers.py``; torchvision structures and the shared recorder are here.
"""

from __future__ import annotations

import math
from collections import OrderedDict
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


# ==== torchvision ==============================================================================


class Conv2dNormActivation(nn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation: children 0 (conv), 1 (norm), 2 (activation)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: avgpool, fc1, fc2 (1x1 convs with bias)."""

    def __init__(self, c: int, squeeze: int, act: type[nn.Module] = nn.ReLU,
                 scale: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.activation = act()
        self.scale_activation = scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


class TvBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + idt)


class TvResNet(nn.Module):
    """torchvision.models.resnet18's structure (widths / 8)."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64), num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for i, w in enumerate(widths):
            s = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(TvBasicBlock(cin, w, s), TvBasicBlock(w, w)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        tv_resnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tv_resnet_init(model: nn.Module, zero_init_residual: bool = False) -> dict[str, Spec]:
    """torchvision ResNet.__init__'s loop (zero_init_residual=False by default)."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            log.kaiming_normal(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            log.constant(m.weight, 1)
            log.constant(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, TvBasicBlock) and m.bn2.weight is not None:
                log.constant(m.bn2.weight, 0)
    return log.result()


class TvInvertedResidual(nn.Module):
    """torchvision MobileNetV3's InvertedResidual: ``block`` = [expand] dw [se] project."""

    def __init__(self, cin: int, exp: int, cout: int, k: int, se: bool, act: type[nn.Module], stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(Conv2dNormActivation(cin, exp, 1, act=act))
        layers.append(Conv2dNormActivation(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcitation(exp, max(8, exp // 4), scale=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res_connect else y


class TvMobileNetV3(nn.Module):
    """torchvision.models.mobilenet_v3_small's structure, three inverted residuals."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 16, 3, 2, act=nn.Hardswish),
            TvInvertedResidual(16, 16, 16, 3, True, nn.ReLU, 2),
            TvInvertedResidual(16, 72, 24, 3, False, nn.ReLU, 2),
            TvInvertedResidual(24, 96, 40, 5, True, nn.Hardswish, 2),
            Conv2dNormActivation(40, 96, 1, act=nn.Hardswish),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(64, num_classes))
        tv_mobilenet_v3_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def tv_mobilenet_v3_init(model: nn.Module) -> dict[str, Spec]:
    """torchvision MobileNetV3.__init__'s (and MobileNetV2's) loop."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            log.kaiming_normal(m.weight, mode="fan_out")
            if m.bias is not None:
                log.zeros(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            log.ones(m.weight)
            log.zeros(m.bias)
        elif isinstance(m, nn.Linear):
            log.normal(m.weight, 0, 0.01)
            log.zeros(m.bias)
    return log.result()


class TvMBConv(nn.Module):
    """torchvision EfficientNet's MBConv: ``block`` = [expand] dw se project, then stochastic_depth."""

    def __init__(self, cin: int, ratio: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        exp = cin * ratio
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(Conv2dNormActivation(cin, exp, 1, act=nn.SiLU))
        layers.append(Conv2dNormActivation(exp, exp, k, stride, groups=exp, act=nn.SiLU))
        layers.append(SqueezeExcitation(exp, max(1, cin // 4), act=nn.SiLU))
        layers.append(Conv2dNormActivation(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = nn.Identity()  # torchvision.ops.StochasticDepth (no parameters)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stochastic_depth(self.block(x))
        return y + x if self.use_res_connect else y


class TvEfficientNet(nn.Module):
    """torchvision.models.efficientnet_b0's structure, two stages."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 16, 3, 2, act=nn.SiLU),
            nn.Sequential(TvMBConv(16, 1, 8, 3, 1)),
            nn.Sequential(TvMBConv(8, 6, 12, 3, 2), TvMBConv(12, 6, 12, 3, 1)),
            Conv2dNormActivation(12, 64, 1, act=nn.SiLU),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, num_classes))
        tv_efficientnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def tv_efficientnet_init(model: nn.Module) -> dict[str, Spec]:
    """torchvision EfficientNet.__init__'s loop: Linear U(+-1/sqrt(out_features)), bias 0."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            log.kaiming_normal(m.weight, mode="fan_out")
            if m.bias is not None:
                log.zeros(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            log.ones(m.weight)
            log.zeros(m.bias)
        elif isinstance(m, nn.Linear):
            r = 1.0 / math.sqrt(m.out_features)
            log.uniform(m.weight, -r, r)
            log.zeros(m.bias)
    return log.result()


class MLPBlock(nn.Sequential):
    """torchvision.models.vision_transformer.MLPBlock: 0 Linear, 1 GELU, 2 Dropout, 3 Linear, 4 Dropout."""

    def __init__(self, d: int, mlp: int) -> None:
        super().__init__(nn.Linear(d, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, d), nn.Dropout(0.0))


class EncoderBlock(nn.Module):
    def __init__(self, heads: int, d: int, mlp: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(d, heads, dropout=0.0, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = MLPBlock(d, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq: int, layers: int, heads: int, d: int, mlp: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq, d).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", EncoderBlock(heads, d, mlp))
                                                for i in range(layers)))
        self.ln = nn.LayerNorm(d, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class TvVisionTransformer(nn.Module):
    """torchvision.models.vit_b_16's structure (image 32, patch 16 -> 4 patches, width 32, 2 layers)."""

    def __init__(self, image: int = 32, patch: int = 16, d: int = 32, layers: int = 2, heads: int = 4,
                 mlp: int = 64, num_classes: int = 10, conv_stem: bool = False) -> None:
        super().__init__()
        self.patch_size, self.hidden_dim = patch, d
        if conv_stem:  # conv_stem_configs: Conv2dNormActivation layers, then a 1x1 conv_last (stride 16 in all)
            stem = nn.Sequential()
            cin = 3
            for k, c in enumerate((8, 16, 16, 16)):
                stem.add_module(f"conv_bn_relu_{k}", Conv2dNormActivation(cin, c, 3, 2))
                cin = c
            stem.add_module("conv_last", nn.Conv2d(cin, d, 1))
            self.conv_proj: nn.Module = stem
        else:
            self.conv_proj = nn.Conv2d(3, d, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = Encoder((image // patch) ** 2 + 1, layers, heads, d, mlp)
        self.heads = nn.Sequential(OrderedDict([("head", nn.Linear(d, num_classes))]))
        tv_vit_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


def tv_vit_init(model: nn.Module) -> dict[str, Spec]:
    """torchvision VisionTransformer: MLPBlock's loop, Encoder's pos_embedding, the patchify stem,
    class_token zeros and the zero head (in construction order)."""
    log = InitLog(model)
    for blk in model.modules():
        if isinstance(blk, MLPBlock):
            for m in blk.modules():
                if isinstance(m, nn.Linear):
                    log.xavier_uniform(m.weight)
                    log.normal(m.bias, std=1e-6)
    log.normal(model.encoder.pos_embedding, std=0.02)
    log.zeros(model.class_token)
    conv = model.conv_proj
    if isinstance(conv, nn.Conv2d):
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        log.trunc_normal(conv.weight, std=math.sqrt(1 / fan_in))
        log.zeros(conv.bias)
    else:  # the conv stem's last 1x1 conv; the Conv2dNormActivation layers keep torch's defaults
        log.normal(conv.conv_last.weight, 0.0, math.sqrt(2.0 / conv.conv_last.out_channels))
        log.zeros(conv.conv_last.bias)
    log.zeros(model.heads.head.weight)
    log.zeros(model.heads.head.bias)
    return log.result()


def _img(size: int) -> Callable[[], torch.Tensor]:
    def make() -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(2, 3, size, size, generator=g)

    return make


ZOO_TV = {
    "tv_resnet18": ZooEntry(TvResNet, tv_resnet_init, _img(32)),
    "tv_mobilenet_v3_small": ZooEntry(TvMobileNetV3, tv_mobilenet_v3_init, _img(32)),
    "tv_efficientnet_b0": ZooEntry(TvEfficientNet, tv_efficientnet_init, _img(32)),
    "tv_vit_b_16": ZooEntry(TvVisionTransformer, tv_vit_init, _img(32)),
    "tv_vit_conv_stem": ZooEntry(lambda: TvVisionTransformer(conv_stem=True), tv_vit_init, _img(32)),
}

ZOO: dict[str, ZooEntry] = {}


def library_of(name: str) -> str:
    """``"timm"`` or ``"torchvision"``: the library a zoo entry rebuilds."""
    return "timm" if name.startswith("timm_") else "torchvision"


def _register() -> None:
    from _zoo_timm import ZOO_TIMM_ENTRIES  # noqa: PLC0415 - tests/ is on sys.path under pytest
    from _zoo_timm_vit import ZOO_TIMM_VIT_ENTRIES  # noqa: PLC0415

    ZOO.update(ZOO_TIMM_ENTRIES)
    ZOO.update(ZOO_TIMM_VIT_ENTRIES)
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
