"""timm vision transformers of the zoo (``tests/_zoo.py`` has the registry and its contract):
ViT, DeiT (distilled), EVA, BEiT, Swin, with timm's names and timm's own init.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from _zoo import InitLog, Spec, ZooEntry, _img
from _zoo_timm_layers import ClassifierHead, Mlp, _named_apply

# ---- ViT / DeiT / EVA (vision transformers) ---------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, d: int, norm: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, d, patch, patch)
        self.norm = nn.LayerNorm(d) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


def _attend(qkv: torch.Tensor, heads: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    b, n, _ = qkv.shape
    q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if bias is not None:
        att = att + bias
    return (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1)


class Attention(nn.Module):
    """timm vision_transformer.Attention: qkv, q_norm, k_norm, attn_drop, norm, proj, proj_drop."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.q_norm, self.k_norm, self.attn_drop, self.norm = nn.Identity(), nn.Identity(), nn.Identity(), nn.Identity()
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(_attend(self.qkv(x), self.num_heads))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, heads)
        self.ls1, self.drop_path1 = nn.Identity(), nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, 2 * d)
        self.ls2, self.drop_path2 = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """timm VisionTransformer's structure (image 16, patch 8, width 32, 2 blocks); DeiT distilled
    adds ``dist_token`` and ``head_dist``."""

    def __init__(self, distilled: bool = False, num_classes: int = 10) -> None:
        super().__init__()
        d = 32
        self.patch_embed = PatchEmbed(8, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if distilled:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, 4 + 1 + distilled, d) * 0.02)
        self.pos_drop, self.patch_drop, self.norm_pre = nn.Identity(), nn.Identity(), nn.Identity()
        self.blocks = nn.Sequential(Block(d, 4), Block(d, 4))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.fc_norm = nn.Identity()
        self.head_drop = nn.Identity()
        self.head = nn.Linear(d, num_classes)
        if distilled:
            self.head_dist = nn.Linear(d, num_classes)
        vit_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        toks = [self.cls_token] + ([self.dist_token] if hasattr(self, "dist_token") else [])
        x = torch.cat([t.expand(x.shape[0], -1, -1) for t in toks] + [x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        y = self.head(x[:, 0])
        return (y + self.head_dist(x[:, 1])) / 2 if hasattr(self, "head_dist") else y


def vit_init(model: nn.Module) -> dict[str, Spec]:
    """timm VisionTransformer.init_weights(mode='', needs_reset=False) (DeiT distilled first
    trunc_normal_(dist_token, .02)): tokens, then named_apply(init_weights_vit_timm)."""
    log = InitLog(model)
    if hasattr(model, "dist_token"):
        log.trunc_normal(model.dist_token, std=0.02)
    log.trunc_normal(model.pos_embed, std=0.02)
    log.normal(model.cls_token, std=1e-6)

    def fn(m: nn.Module, name: str) -> None:
        if isinstance(m, nn.Linear):
            log.trunc_normal(m.weight, std=0.02)
            if m.bias is not None:
                log.zeros(m.bias)

    _named_apply(fn, model)
    return log.result()


class EvaAttention(nn.Module):
    """timm eva.EvaAttention (fused qkv without bias; q_bias, k_bias buffer, v_bias)."""

    def __init__(self, d: int, heads: int, window: int = 0) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("k_bias", torch.zeros(d), persistent=False)
        self.v_bias = nn.Parameter(torch.zeros(d))
        if window:  # BEiT's Attention: a relative position table (+3 rows for the class token), zeros
            n = window * window + 1
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2 + 3, heads))
            self.register_buffer("relative_position_index", torch.arange(n * n).remainder((2 * window - 1) ** 2 + 3)
                                 .view(n, n), persistent=False)
        self.q_norm, self.k_norm, self.attn_drop, self.norm = nn.Identity(), nn.Identity(), nn.Identity(), nn.Identity()
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = torch.cat([self.q_bias, self.k_bias, self.v_bias])
        bias = None
        if hasattr(self, "relative_position_bias_table"):
            bias = self.relative_position_bias_table[self.relative_position_index].permute(2, 0, 1)
        return self.proj(_attend(nn.functional.linear(x, self.qkv.weight, b), self.num_heads, bias))


class EvaBlock(nn.Module):
    def __init__(self, d: int, heads: int, init_values: float, window: int = 0) -> None:
        super().__init__()
        self.init_values = init_values
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = EvaAttention(d, heads, window)
        self.drop_path1 = nn.Identity()
        self.gamma_1 = nn.Parameter(torch.full((d,), init_values))
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, 2 * d)
        self.drop_path2 = nn.Identity()
        self.gamma_2 = nn.Parameter(torch.full((d,), init_values))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class Eva(nn.Module):
    """timm Eva's structure (cls_token and pos_embed trunc_normal(.02), layer-scale gamma_1/2,
    depth-scaled proj/fc2, head scaled by head_init_scale=0.001); ``beit=True``: timm Beit's
    (relative position tables in the attention, zeros; no absolute position embedding)."""

    def __init__(self, num_classes: int = 10, init_values: float = 0.1, beit: bool = False) -> None:
        super().__init__()
        d = 32
        self.patch_embed = PatchEmbed(8, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = None if beit else nn.Parameter(torch.zeros(1, 5, d))
        self.pos_drop, self.norm_pre = nn.Identity(), nn.Identity()
        self.blocks = nn.ModuleList([EvaBlock(d, 4, init_values, 2 if beit else 0) for _ in range(3)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.fc_norm = nn.Identity()
        self.head_drop = nn.Identity()
        self.head = nn.Linear(d, num_classes)
        self.head_init_scale = 0.001
        eva_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed if self.pos_embed is not None else x
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


def eva_init(model: nn.Module) -> dict[str, Spec]:
    """timm Eva: blocks' reset_parameters (q/v bias 0, gamma init_values), then init_weights
    (needs_reset=False): apply(_init_weights), tokens, fix_init_weight, head_init_scale."""
    log = InitLog(model)
    for b in model.blocks:
        log.zeros(b.attn.q_bias)
        log.zeros(b.attn.v_bias)
        if hasattr(b.attn, "relative_position_bias_table"):  # BEiT's Attention.reset_parameters
            log.zeros(b.attn.relative_position_bias_table)
        log.constant(b.gamma_1, b.init_values)
        log.constant(b.gamma_2, b.init_values)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            log.trunc_normal(m.weight, std=0.02)
            if m.bias is not None:
                log.zeros(m.bias)
    if model.pos_embed is not None:
        log.trunc_normal(model.pos_embed, std=0.02)
    log.trunc_normal(model.cls_token, std=0.02)
    for i, b in enumerate(model.blocks):
        s = math.sqrt(2.0 * (i + 1))
        log.scale(b.attn.proj.weight, 1 / s)
        log.scale(b.mlp.fc2.weight, 1 / s)
    if model.head_init_scale:
        log.trunc_normal(model.head.weight, std=0.02)
        log.scale(model.head.weight, model.head_init_scale)
        log.scale(model.head.bias, model.head_init_scale)
    return log.result()


# ---- Swin ------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """timm swin_transformer.WindowAttention: relative_position_bias_table, qkv, proj."""

    def __init__(self, d: int, heads: int, window: int) -> None:
        super().__init__()
        self.num_heads, self.window = heads, window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * window - 1) + rel[..., 1],
                             persistent=False)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_drop = nn.Identity()
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Identity()
        self.softmax = nn.Softmax(dim=-1)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.window ** 2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        return self.proj(_attend(self.qkv(x), self.num_heads, bias.permute(2, 0, 1)))


class SwinTransformerBlock(nn.Module):
    def __init__(self, d: int, heads: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(d)
        self.attn = WindowAttention(d, heads, window)
        self.drop_path1 = nn.Identity()
        self.norm2 = nn.LayerNorm(d)
        self.mlp = Mlp(d, 2 * d)
        self.drop_path2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, W, C)
        b, h, w, c = x.shape
        ws = self.window
        win = self.norm1(x).view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        y = self.attn(win).view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * d)
        self.reduction = nn.Linear(4 * d, 2 * d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class SwinTransformerStage(nn.Module):
    def __init__(self, d: int, out: int, heads: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = PatchMerging(d) if downsample else nn.Identity()
        self.blocks = nn.Sequential(SwinTransformerBlock(out, heads, 2), SwinTransformerBlock(out, heads, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SwinPatchEmbed(PatchEmbed):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class SwinTransformer(nn.Module):
    """timm SwinTransformer's structure (image 16, patch 4, window 2, two stages)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = SwinPatchEmbed(4, 16, norm=True)
        self.layers = nn.Sequential(SwinTransformerStage(16, 16, 2, False), SwinTransformerStage(16, 32, 4, True))
        self.norm = nn.LayerNorm(32)
        self.head = ClassifierHead(32, num_classes)
        swin_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.layers(self.patch_embed(x)))
        return self.head(x.permute(0, 3, 1, 2))


def swin_init(model: nn.Module) -> dict[str, Spec]:
    """timm SwinTransformer: each WindowAttention's reset_parameters (table trunc_normal(.02)),
    then init_weights(needs_reset=False) = named_apply(init_weights_vit_timm)."""
    log = InitLog(model)
    for m in model.modules():
        if isinstance(m, WindowAttention):
            log.trunc_normal(m.relative_position_bias_table, std=0.02)
    return vit_timm_named_apply(model, log)


def vit_timm_named_apply(model: nn.Module, log: InitLog | None = None) -> dict[str, Spec]:
    log = log or InitLog(model)

    def fn(m: nn.Module, name: str) -> None:
        if isinstance(m, nn.Linear):
            log.trunc_normal(m.weight, std=0.02)
            if m.bias is not None:
                log.zeros(m.bias)

    _named_apply(fn, model)
    return log.result()


ZOO_TIMM_VIT_ENTRIES: dict[str, ZooEntry] = {
    "timm_vit": ZooEntry(VisionTransformer, vit_init, _img(16)),
    "timm_deit_distilled": ZooEntry(lambda: VisionTransformer(distilled=True), vit_init, _img(16)),
    "timm_eva": ZooEntry(Eva, eva_init, _img(16)),
    "timm_beit": ZooEntry(lambda: Eva(beit=True), eva_init, _img(16)),
    "timm_swin": ZooEntry(SwinTransformer, swin_init, _img(16)),
}
