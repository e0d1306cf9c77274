"""timm convnets of the zoo (``tests/_zoo.py`` has the registry and its contract): EfficientNet-B0,
MobileNetV3, RegNetX, ResNet, ResNeXt, ConvNeXt.

Each class keeps timm's module and parameter names (``conv_stem``, ``blocks.0.0.conv_dw``,
``blocks.1.0.se.conv_reduce``, ``s1.b1.conv3.bn``, ``layer1.0.bn2``, ``stages.0.blocks.0.gamma``,
...) at tiny widths; each ``*_init`` function does what timm's own init code does, in timm's order
(read from huggingface/pytorch-image-models: ``_efficientnet_builder._init_weight_goog`` /
``efficientnet_init_weights``, ``regnet._init_weights``, ``ResNet.init_weights``,
``convnext._init_weights``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from _zoo import InitLog, Spec, ZooEntry, _img
from _zoo_timm_layers import (BatchNormAct2d, ClassifierHead, LayerNorm2d, Mlp, NormMlpClassifierHead,
                              SqueezeExcite, _named_apply)

# ---- EfficientNet / MobileNetV3 ---------------------------------------------------------------


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int, se: bool, gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False)
        self.bn1 = BatchNormAct2d(cin)
        self.aa = nn.Identity()
        self.se = SqueezeExcite(cin, max(1, cin // 4), gate) if se else nn.Identity()
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_pw(self.se(self.aa(self.bn1(self.conv_dw(x))))))
        return y + x if y.shape == x.shape else y


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, exp: int, k: int, stride: int, se: bool,
                 gate: type[nn.Module] = nn.Sigmoid) -> None:
        super().__init__()
        mid = cin * exp
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = BatchNormAct2d(mid)
        self.conv_dw = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self.bn2 = BatchNormAct2d(mid)
        self.aa = nn.Identity()
        self.se = SqueezeExcite(mid, max(1, cin // 4), gate) if se else nn.Identity()
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = BatchNormAct2d(cout, act=False)
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv_dw(self.bn1(self.conv_pw(x))))
        y = self.bn3(self.conv_pwl(self.se(self.aa(y))))
        return y + x if y.shape == x.shape else y


def efficientnet_init(model: nn.Module) -> dict[str, Spec]:
    """timm efficientnet_init_weights: _init_weight_goog on every module (fix_group_fanout=True)."""
    log = InitLog(model)
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            log.normal(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                log.zeros(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            log.ones(m.weight)
            log.zeros(m.bias)
        elif isinstance(m, nn.Linear):
            fan_out, fan_in = m.weight.size(0), (m.weight.size(1) if "routing_fn" in n else 0)
            r = 1.0 / math.sqrt(fan_in + fan_out)
            log.uniform(m.weight, -r, r)
            log.zeros(m.bias)
    return log.result()


class EfficientNet(nn.Module):
    """timm EfficientNet-B0's structure: DS block, then inverted residuals with SE (tiny widths)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(8)
        self.blocks = nn.Sequential(
            nn.Sequential(DepthwiseSeparableConv(8, 8, se=True)),
            nn.Sequential(InvertedResidual(8, 12, 6, 3, 2, se=True), InvertedResidual(12, 12, 6, 3, 1, se=True)),
            nn.Sequential(InvertedResidual(12, 16, 6, 5, 2, se=True)),
        )
        self.conv_head = nn.Conv2d(16, 32, 1, bias=False)
        self.bn2 = BatchNormAct2d(32)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(32, num_classes)
        efficientnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.classifier(self.global_pool(x).flatten(1))


class MobileNetV3(nn.Module):
    """timm MobileNetV3's structure: hard-sigmoid SE, conv_head with bias, no head norm."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = BatchNormAct2d(8)
        self.blocks = nn.Sequential(
            nn.Sequential(DepthwiseSeparableConv(8, 8, se=True, gate=nn.Hardsigmoid)),
            nn.Sequential(InvertedResidual(8, 12, 4, 3, 2, se=False)),
            nn.Sequential(InvertedResidual(12, 16, 6, 5, 2, se=True, gate=nn.Hardsigmoid)),
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_head = nn.Conv2d(16, 64, 1, bias=True)
        self.norm_head = nn.Identity()
        self.act2 = nn.Hardswish()
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(64, num_classes)
        efficientnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(self.blocks(self.bn1(self.conv_stem(x))))
        return self.classifier(self.flatten(self.act2(self.norm_head(self.conv_head(x)))))


# ---- RegNet ----------------------------------------------------------------------------------


class ConvNormAct(nn.Module):
    """timm.layers.ConvNormAct: conv, bn (a BatchNormAct2d)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = BatchNormAct2d(cout, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class RegBottleneck(nn.Module):
    """timm regnet.Bottleneck: conv1, conv2 (grouped), se, conv3 (no act), act3, downsample."""

    def __init__(self, cin: int, cout: int, stride: int, group_w: int) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(cin, cout)
        self.conv2 = ConvNormAct(cout, cout, 3, stride, groups=cout // group_w)
        self.se = nn.Identity()
        self.conv3 = ConvNormAct(cout, cout, act=False)
        self.act3 = nn.ReLU()
        self.downsample = ConvNormAct(cin, cout, 1, stride, act=False) if stride != 1 or cin != cout else nn.Identity()
        self.drop_path = nn.Identity()

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act3(self.conv3(self.se(self.conv2(self.conv1(x)))) + self.downsample(x))


class RegStage(nn.Module):
    def __init__(self, depth: int, cin: int, cout: int, group_w: int) -> None:
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", RegBottleneck(cin if i == 0 else cout, cout, 2 if i == 0 else 1, group_w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.children():
            x = b(x)
        return x


class RegNet(nn.Module):
    """timm RegNetX's structure (stem, s1..s2 of grouped bottlenecks, ClassifierHead)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = ConvNormAct(3, 8, 3, 2)
        self.s1 = RegStage(1, 8, 16, 8)
        self.s2 = RegStage(2, 16, 32, 8)
        self.final_conv = nn.Identity()
        self.head = ClassifierHead(32, num_classes)
        regnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_conv(self.s2(self.s1(self.stem(x)))))


def regnet_init(model: nn.Module, zero_init_last: bool = True) -> dict[str, Spec]:
    """timm regnet: named_apply(_init_weights, zero_init_last=True)."""
    log = InitLog(model)

    def fn(m: nn.Module, name: str) -> None:
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            log.normal(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                log.zeros(m.bias)
        elif isinstance(m, nn.Linear):
            log.normal(m.weight, 0.0, 0.01)
            if m.bias is not None:
                log.zeros(m.bias)
        elif zero_init_last and isinstance(m, RegBottleneck):
            log.zeros(m.conv3.bn.weight)

    _named_apply(fn, model)
    return log.result()


# ---- ResNet / ResNeXt -------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.drop_block = nn.Identity()
        self.act1 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.downsample is None else self.downsample(x)
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + s)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1, cardinality: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(math.floor(planes * (base_width / 64)) * cardinality)
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.drop_block = nn.Identity()
        self.act2 = nn.ReLU(inplace=True)
        self.aa = nn.Identity()
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.downsample is None else self.downsample(x)
        y = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        return self.act3(self.bn3(self.conv3(y)) + s)


class ResNet(nn.Module):
    """timm ResNet's structure: conv1/bn1/act1/maxpool stem, layer1..layerN, global_pool, fc."""

    def __init__(self, block: str = "basic", num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        if block == "basic":
            self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
            self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
            c = 16
        else:  # ResNeXt: cardinality 4, base width 16
            self.layer1 = nn.Sequential(Bottleneck(8, 8, 1, 4, 16), Bottleneck(32, 8, 1, 4, 16))
            self.layer2 = nn.Sequential(Bottleneck(32, 16, 2, 4, 16))
            c = 64
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        resnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.maxpool(self.act1(self.bn1(self.conv1(x))))))
        return self.fc(self.global_pool(x).flatten(1))


def resnet_init(model: nn.Module, zero_init_last: bool = True) -> dict[str, Spec]:
    """timm ResNet.init_weights: every Conv2d kaiming_normal(fan_out, relu), then zero_init_last."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            log.kaiming_normal(m.weight, mode="fan_out", nonlinearity="relu")
    if zero_init_last:
        for m in model.modules():
            if isinstance(m, BasicBlock):
                log.zeros(m.bn2.weight)
            elif isinstance(m, Bottleneck):
                log.zeros(m.bn3.weight)
    return log.result()


# ---- ConvNeXt --------------------------------------------------------------------------------


class ConvNeXtBlock(nn.Module):
    def __init__(self, d: int, ls_init_value: float = 1e-6) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(d, d, 7, 1, 3, groups=d)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, 4 * d)
        self.ls_init_value = ls_init_value
        self.gamma = nn.Parameter(ls_init_value * torch.ones(d))
        self.shortcut = nn.Identity()
        self.drop_path = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        return self.shortcut(x) + y * self.gamma.reshape(1, -1, 1, 1)


class ConvNeXtStage(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.downsample = (nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, 2))
                           if cin != cout else nn.Identity())
        self.blocks = nn.Sequential(ConvNeXtBlock(cout), ConvNeXtBlock(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXt(nn.Module):
    """timm ConvNeXt's structure (stem, two stages, layer-scale gamma, NormMlpClassifierHead)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, 4), LayerNorm2d(16, eps=1e-6))
        self.stages = nn.Sequential(ConvNeXtStage(16, 16), ConvNeXtStage(16, 32))
        self.norm_pre = nn.Identity()
        self.head = NormMlpClassifierHead(32, num_classes)
        convnext_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm_pre(self.stages(self.stem(x))))


def convnext_init(model: nn.Module, head_init_scale: float = 1.0) -> dict[str, Spec]:
    """timm convnext: named_apply(_init_weights, head_init_scale=1.0)."""
    log = InitLog(model)
    for m in model.modules():  # the constructor's layer scale (ls_init_value * ones)
        if isinstance(m, ConvNeXtBlock):
            log.constant(m.gamma, m.ls_init_value)

    def fn(m: nn.Module, name: str) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            log.trunc_normal(m.weight, std=0.02)
            if m.bias is not None:
                log.zeros(m.bias)
            if isinstance(m, nn.Linear) and name and "head." in name and head_init_scale != 1.0:
                log.scale(m.weight, head_init_scale)
                log.scale(m.bias, head_init_scale)

    _named_apply(fn, model)
    return log.result()


ZOO_TIMM_ENTRIES: dict[str, ZooEntry] = {
    "timm_efficientnet_b0": ZooEntry(EfficientNet, efficientnet_init, _img(32)),
    "timm_mobilenetv3": ZooEntry(MobileNetV3, efficientnet_init, _img(32)),
    "timm_regnetx": ZooEntry(RegNet, regnet_init, _img(32)),
    "timm_resnet": ZooEntry(ResNet, resnet_init, _img(32)),
    "timm_resnext": ZooEntry(lambda: ResNet("bottleneck"), resnet_init, _img(32)),
    "timm_convnext": ZooEntry(ConvNeXt, convnext_init, _img(32)),
}
