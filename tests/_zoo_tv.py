"""torchvision structures of the zoo (``tests/_zoo.py`` has the registry and its contract):
resnet18, resnext50_32x4d, mobilenet_v2, mobilenet_v3_small, efficientnet_b0, vit_b_16 (also with
a conv stem), at tiny widths with torchvision's names, each with its constructor's init loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from _zoo import InitLog, Spec, ZooEntry, _img

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


class TvBottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (ResNeXt: groups, width_per_group)."""

    def __init__(self, cin: int, planes: int, stride: int = 1, groups: int = 1, base_width: int = 64) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
                           if stride != 1 or cin != planes * 4 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        return self.relu(self.bn3(self.conv3(out)) + idt)


class TvResNet(nn.Module):
    """torchvision.models.resnet18's structure (widths / 8); ``resnext=True``:
    resnext50_32x4d's bottlenecks (4 groups of width 4, two stages)."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64), num_classes: int = 10, resnext: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        if resnext:
            widths = widths[:2]
        for i, w in enumerate(widths):
            s = 1 if i == 0 else 2
            if resnext:
                blocks = [TvBottleneck(cin, w, s, 4, 16), TvBottleneck(w * 4, w, 1, 4, 16)]
                w = w * 4
            else:
                blocks = [TvBasicBlock(cin, w, s), TvBasicBlock(w, w)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w
        self.n_layers = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        tv_resnet_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.n_layers + 1):
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
            if isinstance(m, TvBottleneck) and m.bn3.weight is not None:
                log.constant(m.bn3.weight, 0)
            elif isinstance(m, TvBasicBlock) and m.bn2.weight is not None:
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


class TvInvertedResidualV2(nn.Module):
    """torchvision MobileNetV2's InvertedResidual: ``conv`` = [expand] dw, then a bare 1x1 conv and BN."""

    def __init__(self, cin: int, cout: int, stride: int, ratio: int) -> None:
        super().__init__()
        hidden = cin * ratio
        layers: list[nn.Module] = []
        if ratio != 1:
            layers.append(Conv2dNormActivation(cin, hidden, 1, act=nn.ReLU6))
        layers += [Conv2dNormActivation(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class TvMobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2's structure (features, classifier = Dropout, Linear)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 16, 3, 2, act=nn.ReLU6),
            TvInvertedResidualV2(16, 8, 1, 1),
            TvInvertedResidualV2(8, 12, 2, 6), TvInvertedResidualV2(12, 12, 1, 6),
            Conv2dNormActivation(12, 64, 1, act=nn.ReLU6),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, num_classes))
        tv_mobilenet_v3_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


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
    """torchvision MobileNetV3.__init__'s loop (MobileNetV2.__init__ has the same one)."""
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


ZOO_TV_ENTRIES: dict[str, ZooEntry] = {
    "tv_resnet18": ZooEntry(TvResNet, tv_resnet_init, _img(32)),
    "tv_resnext50_32x4d": ZooEntry(lambda: TvResNet(resnext=True), tv_resnet_init, _img(32)),
    "tv_mobilenet_v2": ZooEntry(TvMobileNetV2, tv_mobilenet_v3_init, _img(32)),
    "tv_mobilenet_v3_small": ZooEntry(TvMobileNetV3, tv_mobilenet_v3_init, _img(32)),
    "tv_efficientnet_b0": ZooEntry(TvEfficientNet, tv_efficientnet_init, _img(32)),
    "tv_vit_b_16": ZooEntry(TvVisionTransformer, tv_vit_init, _img(32)),
    "tv_vit_conv_stem": ZooEntry(lambda: TvVisionTransformer(conv_stem=True), tv_vit_init, _img(32)),
}

