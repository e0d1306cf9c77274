"""timm hybrids of the zoo (``tests/_zoo.py`` has the registry and its contract): MaxViT (also the
TF ports' 3-D relative tables), CoAtNet and LeViT, with timm's names and timm's own init
(``maxxvit._init_conv`` / ``_init_transformer`` with weight_init='vit_eff', LeViT's constructors).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from _zoo import InitLog, Spec, ZooEntry, _img
from _zoo_timm_layers import BatchNormAct2d, ClassifierHead, LayerNorm2d, Mlp, NormMlpClassifierHead, SEModule, _named_apply
from _zoo_timm_vit import _attend

# ---- MaxViT / CoAtNet (timm maxxvit) ---------------------------------------------------------


class RelPosBias(nn.Module):
    """timm.layers.pos_embed_rel.RelPosBias: relative_position_bias_table (trunc_normal .02 in
    its reset_parameters), relative_position_index buffer."""

    def __init__(self, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", (rel[..., 0] * (2 * window - 1) + rel[..., 1]).view(-1),
                             persistent=False)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def get_bias(self) -> torch.Tensor:
        n = self.window ** 2
        return self.relative_position_bias_table[self.relative_position_index].view(n, n, -1).permute(2, 0, 1)


class RelPosBiasTf(nn.Module):
    """timm.layers.pos_embed_rel.RelPosBiasTf (MaxViT's TF ports, rel_pos_type='bias_tf'): a 3-D
    relative_position_bias_table (heads, 2h-1, 2w-1), normal(std=.02) in its reset_parameters."""

    def __init__(self, window: int, heads: int) -> None:
        super().__init__()
        self.window = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros(heads, 2 * window - 1, 2 * window - 1))
        nn.init.normal_(self.relative_position_bias_table, std=0.02)

    def get_bias(self) -> torch.Tensor:
        w = self.window
        c = torch.arange(w)
        d = (c[:, None] - c[None, :]) + (w - 1)  # (w, w) relative offsets
        b = self.relative_position_bias_table[:, d[:, None, :, None], d[None, :, None, :]]  # (h, w, w, w, w)
        return b.reshape(b.shape[0], w * w, w * w)


class Downsample2d(nn.Module):
    """timm maxxvit.Downsample2d: pool, expand (a 1x1 conv when the width changes)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.expand: nn.Module = nn.Conv2d(cin, cout, 1, bias=True) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.pool(x))


class MbConvBlock(nn.Module):
    """timm maxxvit.MbConvBlock: shortcut, pre_norm, down, conv1_1x1, norm1, conv2_kxk (depthwise),
    norm2, se (SEModule), conv3_1x1 (with bias)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        mid = cout * 4
        self.shortcut: nn.Module = Downsample2d(cin, cout) if stride == 2 or cin != cout else nn.Identity()
        self.pre_norm = BatchNormAct2d(cin, act=False)
        self.down: nn.Module = nn.Identity()
        self.conv1_1x1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.norm1 = BatchNormAct2d(mid)
        self.conv2_kxk = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.norm2 = BatchNormAct2d(mid)
        self.se = SEModule(mid, mid // 16)
        self.conv3_1x1 = nn.Conv2d(mid, cout, 1, bias=True)
        self.drop_path = nn.Identity()

    def init_weights(self, scheme: str = "") -> None:  # see maxvit_init
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2_kxk(self.norm1(self.conv1_1x1(self.down(self.pre_norm(x))))))
        return self.shortcut(x) + self.conv3_1x1(self.se(y))


class AttentionCl(nn.Module):
    """timm maxxvit.AttentionCl (channels last): qkv, rel_pos, attn_drop, proj, proj_drop."""

    def __init__(self, d: int, heads: int, window: int, rel: str = "bias") -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.rel_pos: nn.Module = RelPosBias(window, heads) if rel == "bias" else RelPosBiasTf(window, heads)
        self.attn_drop = nn.Identity()
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_attend(self.qkv(x), self.num_heads, self.rel_pos.get_bias()))


class PartitionAttentionCl(nn.Module):
    def __init__(self, d: int, heads: int, window: int, grid: bool, rel: str = "bias") -> None:
        super().__init__()
        self.window, self.grid = window, grid
        self.norm1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = AttentionCl(d, heads, window, rel)
        self.ls1, self.drop_path1 = nn.Identity(), nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Mlp(d, 4 * d)
        self.ls2, self.drop_path2 = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C), one window covers H x W here
        b, h, w, c = x.shape
        x = x + self.attn(self.norm1(x).reshape(b, h * w, c)).reshape(b, h, w, c)
        return x + self.mlp(self.norm2(x))


class MaxxVitBlock(nn.Module):
    """timm maxxvit.MaxxVitBlock: conv (MbConvBlock), attn_block, attn_grid."""

    def __init__(self, cin: int, cout: int, stride: int, window: int, rel: str = "bias") -> None:
        super().__init__()
        self.conv = MbConvBlock(cin, cout, stride)
        self.attn_block = PartitionAttentionCl(cout, cout // 8, window, grid=False, rel=rel)
        self.attn_grid = PartitionAttentionCl(cout, cout // 8, window, grid=True, rel=rel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).permute(0, 2, 3, 1)
        return self.attn_grid(self.attn_block(x)).permute(0, 3, 1, 2)


class Attention2d(nn.Module):
    """timm maxxvit.Attention2d (NCHW, expand_first): qkv (1x1 conv dim -> 3 dim_out), rel_pos, proj."""

    def __init__(self, d: int, d_out: int, heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Conv2d(d, 3 * d_out, 1)
        self.rel_pos = RelPosBias(window, heads)
        self.attn_drop = nn.Identity()
        self.proj = nn.Conv2d(d_out, d_out, 1)
        self.proj_drop = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = _attend(self.qkv(x).flatten(2).transpose(1, 2), self.num_heads, self.rel_pos.get_bias())
        return self.proj(y.transpose(1, 2).reshape(b, -1, h, w))


class TransformerBlock2d(nn.Module):
    """timm maxxvit.TransformerBlock2d (CoAtNet): shortcut, norm1 (norm, down), attn, norm2, mlp (ConvMlp)."""

    def __init__(self, cin: int, cout: int, window: int) -> None:
        super().__init__()
        self.shortcut = Downsample2d(cin, cout)
        self.norm1 = nn.Sequential(OrderedDict([("norm", LayerNorm2d(cin, eps=1e-6)), ("down", Downsample2d(cin, cin))]))
        self.attn = Attention2d(cin, cout, cout // 8, window)
        self.ls1, self.drop_path1 = nn.Identity(), nn.Identity()
        self.norm2 = LayerNorm2d(cout, eps=1e-6)
        self.mlp = Mlp(cout, 4 * cout, conv=True)
        self.ls2, self.drop_path2 = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shortcut(x) + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaxxVitStage(nn.Module):
    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Stem(nn.Module):
    """timm maxxvit.Stem: conv1, norm1, conv2."""

    def __init__(self, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, cout, 3, 2, 1)
        self.norm1 = BatchNormAct2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.norm1(self.conv1(x)))


class MaxxVit(nn.Module):
    """timm MaxxVit's structure: ``"maxvit"`` (MaxxVitBlocks, NormMlpClassifierHead with
    pre_logits; ``rel="bias_tf"``: the TF ports' 3-D tables) or ``"coatnet"`` (a conv stage of MbConvBlocks, a TransformerBlock2d stage, final
    norm and ClassifierHead); weight_init='vit_eff' (timm's default)."""

    def __init__(self, kind: str = "maxvit", num_classes: int = 10, rel: str = "bias") -> None:
        super().__init__()
        self.stem = Stem(16)
        if kind == "maxvit":
            self.stages = nn.Sequential(MaxxVitStage([MaxxVitBlock(16, 16, 2, 4, rel)]),
                                        MaxxVitStage([MaxxVitBlock(16, 32, 2, 2, rel)]))
            self.norm: nn.Module = nn.Identity()
            self.head: nn.Module = NormMlpClassifierHead(32, num_classes, hidden=32)
        else:
            self.stages = nn.Sequential(MaxxVitStage([MbConvBlock(16, 16, 2), MbConvBlock(16, 16, 1)]),
                                        MaxxVitStage([TransformerBlock2d(16, 32, 2)]))
            self.norm = LayerNorm2d(32, eps=1e-6)
            self.head = ClassifierHead(32, num_classes)
        maxvit_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.stages(self.stem(x))))


def maxvit_init(model: nn.Module, scheme: str = "vit_eff") -> dict[str, Spec]:
    """timm MaxxVit: named_apply(_init_weights) calls init_weights(scheme) of every module that has
    one, children first: Stem and MbConvBlock -> _init_conv ('vit_eff': EfficientNet-like
    normal(sqrt(2 / (k*k*out // groups))), bias 0), TransformerBlock2d -> _init_transformer on
    itself, MaxxVitBlock -> _init_transformer on attn_block/attn_grid then _init_conv on conv
    ('vit_eff': xavier_uniform, bias N(0, 1e-6) when 'mlp' is in the name, else 0). The rel-pos
    tables keep their trunc_normal(.02); heads and norms keep torch's defaults."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, RelPosBias):
            log.trunc_normal(m.relative_position_bias_table, std=0.02)
        elif isinstance(m, RelPosBiasTf):
            log.normal(m.relative_position_bias_table, std=0.02)

    def init_conv(m: nn.Module, name: str) -> None:
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            log.normal(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                log.zeros(m.bias)

    def init_transformer(m: nn.Module, name: str) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            log.xavier_uniform(m.weight)
            if m.bias is not None:
                if "mlp" in name:
                    log.normal(m.bias, std=1e-6)
                else:
                    log.zeros(m.bias)

    def module_init(m: nn.Module, name: str) -> None:
        if isinstance(m, (Stem, MbConvBlock)):
            _named_apply(init_conv, m)
        elif isinstance(m, TransformerBlock2d):
            _named_apply(init_transformer, m)
        elif isinstance(m, MaxxVitBlock):
            _named_apply(init_transformer, m.attn_block)
            _named_apply(init_transformer, m.attn_grid)
            _named_apply(init_conv, m.conv)

    _named_apply(module_init, model)
    return log.result()


# ---- LeViT -----------------------------------------------------------------------------------


class ConvNorm(nn.Module):
    """timm levit.ConvNorm: linear (a Conv2d), bn (weight = bn_weight_init)."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, pad: int = 0, bn_weight_init: float = 1) -> None:
        super().__init__()
        self.bn_weight_init = bn_weight_init
        self.linear = nn.Conv2d(cin, cout, k, stride, pad, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(x))


class LinearNorm(nn.Module):
    """timm levit.LinearNorm: linear, bn (BatchNorm1d, weight = bn_weight_init)."""

    def __init__(self, cin: int, cout: int, bn_weight_init: float = 1) -> None:
        super().__init__()
        self.bn_weight_init = bn_weight_init
        self.linear = nn.Linear(cin, cout, bias=False)
        self.bn = nn.BatchNorm1d(cout)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class NormLinear(nn.Module):
    """timm levit.NormLinear: bn, drop, linear (trunc_normal(.02), bias 0 in its constructor)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(cin)
        self.drop = nn.Identity()
        self.linear = nn.Linear(cin, cout)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(self.bn(x)))


class LevitAttention(nn.Module):
    """timm levit.Attention: qkv (LinearNorm), proj (act, ln with bn_weight_init=0), attention_biases."""

    def __init__(self, d: int, heads: int, n: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = LinearNorm(d, 3 * d)
        self.proj = nn.Sequential(OrderedDict([("act", nn.Hardswish()), ("ln", LinearNorm(d, d, bn_weight_init=0))]))
        self.attention_biases = nn.Parameter(torch.zeros(heads, n))
        self.register_buffer("attention_bias_idxs", torch.zeros(n, n, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.attention_biases[:, self.attention_bias_idxs]
        return self.proj(_attend(self.qkv(x), self.num_heads, bias))


class LevitMlp(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.ln1 = LinearNorm(d, hidden)
        self.act = nn.Hardswish()
        self.drop = nn.Identity()
        self.ln2 = LinearNorm(hidden, d, bn_weight_init=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln2(self.drop(self.act(self.ln1(x))))


class LevitBlock(nn.Module):
    def __init__(self, d: int, heads: int, n: int) -> None:
        super().__init__()
        self.attn = LevitAttention(d, heads, n)
        self.drop_path1 = nn.Identity()
        self.mlp = LevitMlp(d, 2 * d)
        self.drop_path2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class LevitStage(nn.Module):
    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.downsample = nn.Identity()
        self.blocks = nn.Sequential(LevitBlock(d, 2, n), LevitBlock(d, 2, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Stem16(nn.Sequential):
    def __init__(self, d: int) -> None:
        super().__init__(OrderedDict([
            ("conv1", ConvNorm(3, d // 8, 3, 2, 1)), ("act1", nn.Hardswish()),
            ("conv2", ConvNorm(d // 8, d // 4, 3, 2, 1)), ("act2", nn.Hardswish()),
            ("conv3", ConvNorm(d // 4, d // 2, 3, 2, 1)), ("act3", nn.Hardswish()),
            ("conv4", ConvNorm(d // 2, d, 3, 2, 1))]))


class Levit(nn.Module):
    """timm Levit's structure (Stem16, one stage of two blocks, NormLinear head); its init is its
    constructors' (Conv/Linear keep torch's defaults: init_weights(needs_reset=False))."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = Stem16(32)
        self.stages = nn.Sequential(LevitStage(32, 16))
        self.head = NormLinear(32, num_classes)
        levit_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        return self.head(self.stages(x).mean(1))


def levit_init(model: nn.Module) -> dict[str, Spec]:
    """timm LeViT: ConvNorm/LinearNorm bn weight = bn_weight_init (0 on proj.ln and mlp.ln2),
    attention_biases 0, NormLinear's linear trunc_normal(.02) and bias 0; the rest torch's."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, (ConvNorm, LinearNorm)):
            log.constant(m.bn.weight, m.bn_weight_init)
        elif isinstance(m, LevitAttention):
            log.zeros(m.attention_biases)
        elif isinstance(m, NormLinear):
            log.trunc_normal(m.linear.weight, std=0.02)
            log.zeros(m.linear.bias)
    return log.result()


ZOO_TIMM_HYBRID_ENTRIES: dict[str, ZooEntry] = {
    "timm_maxvit": ZooEntry(MaxxVit, maxvit_init, _img(16)),
    "timm_maxvit_tf": ZooEntry(lambda: MaxxVit(rel="bias_tf"), maxvit_init, _img(16)),
    "timm_coatnet": ZooEntry(lambda: MaxxVit("coatnet"), maxvit_init, _img(16)),
    "timm_levit": ZooEntry(Levit, levit_init, _img(64)),
}
