"""Trace.diagnose on healthy models of every family (issue 18 item 3): no false alarm, a layer
broken x1e-4 still named, and every layer the depth trends leave out says why.

Models: the rebuilt timm/torchvision structures of ``tests/_zoo.py`` (each with its library's own
init), tiny Hugging Face DeBERTa-v2 / Whisper / ViT built from configs, and three minimal
structures of our own deep enough for the effect each one guards (a stack of squeeze-excitation
blocks, of layer-scaled ConvNeXt-like blocks, and a torchvision-style ViT whose blocks have no
numeric names). BatchNorm networks are traced in train mode, as they come out of their
constructor (in eval mode with never-updated running statistics a BatchNorm does not normalize).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab.torch as itorch  # noqa: E402
from initlab.analysis.diagnose import CHAIN, families  # noqa: E402
from initlab.torch import probes  # noqa: E402

from _zoo import ZOO  # noqa: E402

BROKEN = 1e-4


def _trace(model, x):
    return itorch.analyze(model, x)


def _broken(model, x, name):
    """The diagnosis with the weight of layer ``name`` multiplied by 1e-4 (restored after)."""
    w = probes.layer_weight(model.get_submodule(name))
    w0 = w.detach().clone()
    with torch.no_grad():
        w.mul_(BROKEN)
    try:
        return _trace(model, x).diagnose()
    finally:
        with torch.no_grad():
            w.copy_(w0)


def _assert_named(found, name):
    assert [f.kind for f in found] == ["vanishing_layer"], str(found)
    assert found[0].layer == name and name in str(found[0])
    # gain of a healthy layer (order 1e-3 .. 10) times 1e-8
    assert found[0].evidence["gain"] < 1e-6


def _targets(tr):
    """Layers to break: the middle layer, and the first of each kind the depth trends leave out
    (side branch, attention query/key, layer scale, attention output). The head (the output layer)
    is not among them: a head alone far below the rest is taken as scaled down on purpose."""
    names = [lay.name for lay in tr.layers]
    ok = [lay for lay in tr.layers[:-1] if lay.weight and lay.weight["ms"] > 0 and names.count(lay.name) == 1]
    picks = {ok[len(ok) // 2].name}
    notes = tr.not_judged()
    for word in ("side branch", "query/key", "layer scale", "attention output"):
        hit = next((lay.name for lay in ok if word in notes.get(lay.name, "")), None)
        if hit:
            picks.add(hit)
    return sorted(picks)


# ---- the zoo: every timm / torchvision structure, each initialized by its own library -----------


@pytest.fixture(scope="module", params=sorted(ZOO))
def zoo(request):
    entry = ZOO[request.param]
    torch.manual_seed(0)
    model = entry.build()
    entry.library_init(model)
    return request.param, model.train(), entry.example_input()


def test_zoo_healthy_no_alarm_and_broken_layer_named(zoo):
    name, model, x = zoo
    tr = _trace(model, x)
    found = tr.diagnose()
    assert found == [], f"{name}: {found}"
    assert found.not_judged == tr.not_judged()
    for target in _targets(tr):
        _assert_named(_broken(model, x, target), target)


_REASONS = {
    # model: (layer, words its 'not judged' note holds)
    "timm_efficientnet_b0": ("blocks.1.0.se.conv_reduce", "side branch (SE gate)"),
    "tv_mobilenet_v3_small": ("features.1.block.1.fc1", "side branch (SE gate)"),
    "timm_convnext": ("stages.0.blocks.0.mlp.fc1", "gradient: layer scale 1e-06"),
    "tv_vit_b_16": ("heads.head", "zero-initialized head"),
    "timm_vit": ("blocks.0.attn.qkv", "attention query/key projection"),
    "timm_swin": ("layers.0.blocks.0.attn.proj", "forward: attention output"),
}


@pytest.mark.parametrize("model_name", sorted(_REASONS))
def test_zoo_not_judged_says_why_in_the_printed_trace(model_name):
    entry = ZOO[model_name]
    torch.manual_seed(0)
    model = entry.build()
    entry.library_init(model)
    tr = _trace(model.train(), entry.example_input())
    layer, words = _REASONS[model_name]
    assert words in tr.not_judged()[layer]
    row = next(line for line in str(tr).splitlines() if f" {layer} " in line)
    assert row.rstrip().split("  ")[-1].strip().startswith(tr.not_judged()[layer][:20])
    assert "not judged" in str(tr).splitlines()[1]


# ---- our own minimal structures, deep enough for the effect --------------------------------------


class _SE(nn.Module):  # timm's SqueezeExcite: functional mean, conv_reduce, act, conv_expand, gate
    def __init__(self, c):
        super().__init__()
        self.conv_reduce = nn.Conv2d(c, c // 4, 1)
        self.act1 = nn.SiLU()
        self.conv_expand = nn.Conv2d(c // 4, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True)))))


class _SEBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.act1 = nn.SiLU()
        self.se = _SE(c)
        self.conv_pwl = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + self.bn2(self.conv_pwl(self.se(self.act1(self.bn1(self.conv_dw(x))))))


def _se_net(depth=12, c=16):
    model = nn.Sequential(OrderedDict(stem=nn.Conv2d(3, c, 3, padding=1), blocks=nn.Sequential(
        *[_SEBlock(c) for _ in range(depth)]), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), head=nn.Linear(c, 10)))
    for m in model.modules():  # timm's _init_weight_goog for convolutions
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class _LSBlock(nn.Module):  # ConvNeXt's block: dw conv, norm, MLP, gamma = 1e-6 on the branch
    def __init__(self, c):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.fc1 = nn.Linear(c, 4 * c)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.full((c,), 1e-6))

    def forward(self, x):
        y = self.fc2(self.act(self.fc1(self.norm(self.conv_dw(x).permute(0, 2, 3, 1))))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def _ls_net(depth=8, c=16):
    model = nn.Sequential(OrderedDict(stem=nn.Conv2d(3, c, 4, 4), blocks=nn.Sequential(
        *[_LSBlock(c) for _ in range(depth)]), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), head=nn.Linear(c, 10)))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return model


class _Block(nn.Module):  # torchvision's EncoderBlock
    def __init__(self, d):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.self_attention = nn.MultiheadAttention(d, 4, batch_first=True)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.self_attention(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def _named_vit(depth=6, d=32):
    model = nn.Module()
    model.embed = nn.Linear(12, d)
    model.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", _Block(d)) for i in range(depth)))
    model.head = nn.Linear(d, 10)
    nn.init.zeros_(model.head.weight)
    nn.init.zeros_(model.head.bias)
    model.forward = lambda x: model.head(model.layers(model.embed(x))[:, 0])
    return model


def _img(n=4, size=16):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_se_stack_pooling_is_not_compounded_and_branch_layers_named():
    torch.manual_seed(0)
    model = _se_net().train()
    x = _img(8)
    tr = _trace(model, x)
    assert tr.diagnose() == []
    branch = [lay for lay in tr.layers if ".se." in lay.name]
    assert len(branch) == 24 and all(lay.side_branch == "SE gate" for lay in branch)
    assert all(lay.reduction == "reduction" for lay in branch if lay.name.endswith("conv_reduce"))
    assert not any(lay.side_branch for lay in tr.layers if ".se." not in lay.name)
    assert tr.not_judged()["blocks.5.se.conv_expand"] == "side branch (SE gate)"
    # Compounded along the trunk, the 12 SE poolings made a false alarm (the old behaviour).
    for lay in branch:
        lay.side_branch, lay.not_judged = None, None
    assert any(f.kind.endswith("_forward") or f.kind.endswith("_gradient") for f in tr.diagnose())
    for target in ("blocks.6.se.conv_expand", "blocks.6.conv_pwl", "blocks.2.se.conv_reduce"):
        _assert_named(_broken(model, x, target), target)


def test_layer_scale_blocks_not_judged_on_gradient_and_broken_layer_named():
    torch.manual_seed(0)
    model = _ls_net().train()
    x = _img(4, 32)
    tr = _trace(model, x)
    assert tr.diagnose() == []
    notes = tr.not_judged()
    for i in range(8):
        for part in ("fc1", "fc2"):
            assert notes[f"blocks.{i}.{part}"] == "gradient: layer scale 1e-06"
        assert notes[f"blocks.{i}.conv_dw"] == "forward: normalized right after (LayerNorm); gradient: layer scale 1e-06"
    assert "stem" not in notes and "head" not in notes
    for target in ("blocks.3.fc1", "blocks.5.fc2", "blocks.4.conv_dw"):
        _assert_named(_broken(model, x, target), target)


def test_blocks_without_numeric_names_are_grouped_by_structure():
    torch.manual_seed(0)
    model = _named_vit()
    x = torch.randn(4, 9, 12, generator=torch.Generator().manual_seed(0))
    tr = _trace(model, x)
    fam = {lay.name: lay.family for lay in tr.layers}
    assert fam["layers.encoder_layer_0.mlp.0"] == fam["layers.encoder_layer_5.mlp.0"] == "layers.*.mlp.0 [2048]"
    assert fam["layers.encoder_layer_2.self_attention"] == "layers.*.self_attention [1024]"
    assert fam["embed"] == "embed [384]"
    sizes = sorted(len(f) for f in families(tr.layers))
    assert sizes == [6, 6, 6]  # attention, MLP in, MLP out; embed and head stand alone
    found = tr.diagnose()
    assert found == [], str(found)  # the zero head: its output is its bias (the old report: vanishing x0)
    notes = tr.not_judged()
    assert notes["head"] == "zero-initialized head"
    # behind a zero head no gradient flows
    assert notes["layers.encoder_layer_3.mlp.2"] == "gradient: no gradient reaches it (a zero-initialized layer after it)"
    # (its output reaches ln_2 through the residual sum, which the grouping takes as its norm)
    assert notes["layers.encoder_layer_3.self_attention"].startswith("forward: normalized right after (LayerNorm)")
    for target in ("layers.encoder_layer_3.mlp.0", "layers.encoder_layer_1.self_attention"):
        _assert_named(_broken(model, x, target), target)


def test_plain_chain_is_still_one_family_and_still_judged():
    torch.manual_seed(0)
    mods = []
    for _ in range(10):
        lin = nn.Linear(32, 32)
        nn.init.normal_(lin.weight, std=0.05)  # 32 * 0.05^2 / 2 = 0.04 per layer: vanishing
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.ReLU()]
    tr = _trace(nn.Sequential(*mods), torch.randn(16, 32, generator=torch.Generator().manual_seed(0)))
    assert {lay.family for lay in tr.layers} == {CHAIN}
    assert {f.kind for f in tr.diagnose()} == {"vanishing_forward", "vanishing_gradient"}


# ---- Hugging Face models built from configs ------------------------------------------------------


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return make().eval()


def _deberta():
    tr = pytest.importorskip("transformers")
    cfg = tr.DebertaV2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                             vocab_size=1000, max_position_embeddings=64, relative_attention=True,
                             pos_att_type=["p2c", "c2p"], position_buckets=16, share_att_key=True,
                             norm_rel_ebd="layer_norm")
    ids = torch.randint(0, 1000, (4, 16), generator=torch.Generator().manual_seed(1))
    return _quiet(lambda: tr.DebertaV2ForMaskedLM(cfg)), {"input_ids": ids}


def _whisper():
    tr = pytest.importorskip("transformers")
    cfg = tr.WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16,
                           max_source_positions=32, max_target_positions=32, vocab_size=1000, pad_token_id=0,
                           bos_token_id=0, eos_token_id=0, decoder_start_token_id=0)
    g = torch.Generator().manual_seed(1)
    x = {"input_features": torch.randn(2, 16, 64, generator=g), "decoder_input_ids": torch.randint(0, 1000, (2, 8), generator=g)}
    return _quiet(lambda: tr.WhisperForConditionalGeneration(cfg)), x


def _vit():
    tr = pytest.importorskip("transformers")
    cfg = tr.ViTConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                       image_size=32, patch_size=4, num_labels=10)
    return _quiet(lambda: tr.ViTForImageClassification(cfg)), _img(4, 32)


HF = {"deberta_v2": (_deberta, ["deberta.encoder.layer.2.attention.self.value_proj",
                                "deberta.encoder.layer.1.intermediate.dense"]),
      "whisper": (_whisper, ["model.decoder.layers.0.self_attn.v_proj", "model.decoder.layers.1.encoder_attn.out_proj",
                             "model.encoder.layers.1.self_attn.q_proj"]),
      "vit": (_vit, ["vit.layers.1.attention.k_proj", "vit.layers.2.mlp.fc2"])}


@pytest.mark.parametrize("name", sorted(HF))
def test_hf_healthy_no_alarm_and_broken_layer_named(name):
    make, targets = HF[name]
    model, x = make()
    tr = _trace(model, x)
    found = tr.diagnose()
    assert found == [], f"{name}: {found}"
    notes = tr.not_judged()
    qk = [n for n, r in notes.items() if "query/key" in r]
    assert qk and all(n.rsplit(".", 1)[-1] in ("query_proj", "key_proj", "q_proj", "k_proj") for n in qk)
    if name == "whisper":  # the decoder's cross-attention reads 8 positions, its keys 32: not a pooling
        assert [lay.name for lay in tr.layers if lay.reduction] == []
    if name == "deberta_v2":  # the shared key projection runs on the tokens, then on the positions
        calls = [lay for lay in tr.layers if lay.name == "deberta.encoder.layer.0.attention.self.key_proj"]
        assert len(calls) == 2 and calls[0].input["count"] != calls[1].input["count"]
    for target in targets:
        _assert_named(_broken(model, x, target), target)
