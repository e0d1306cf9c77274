"""Whole-model initialization on real models: rules, recipes, the manifest, only=, materialize.

Real Hugging Face models are built from tiny configs (never downloaded); timm/torchvision
structures are rebuilt by hand (their wheels cannot be installed here). Statistical checks use
tolerances derived from the sample size: the sample std of n normal values has relative
standard error about 1/sqrt(2n); we allow 6 standard errors.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.torch import Rule, init_module, materialize, plan  # noqa: E402


def _std_tol(n: int) -> float:
    return 6.0 / math.sqrt(2.0 * max(n, 1))


def _check_entry_values(model: nn.Module, entry) -> None:
    """The written values agree with the manifest's numbers."""
    p = model.get_parameter(entry.name).detach().double()
    if entry.init == "constant":
        flat = p.flatten()
        if entry.params.get("post"):
            return
        assert torch.all(flat == entry.params["value"]), entry.name
    elif entry.init == "normal" and p.numel() >= 64:
        vals = p.flatten()
        for op in entry.params.get("post", []):
            if op[0] == "zero_row":
                keep = torch.ones(p.shape[0], dtype=torch.bool)
                keep[op[1]] = False
                assert torch.all(p[op[1]] == 0), entry.name
                vals = p[keep].flatten()
        s = float(vals.std())
        assert abs(s / entry.params["std"] - 1) < _std_tol(vals.numel()), (entry.name, s, entry.params)
    elif entry.init == "uniform":
        assert float(p.min()) >= entry.params["a"] and float(p.max()) < entry.params["b"] or entry.params["a"] == entry.params["b"]
    elif entry.init == "trunc_normal":
        assert float(p.min()) >= entry.params["a"] and float(p.max()) <= entry.params["b"]


# ---- Hugging Face models ------------------------------------------------------------------------

transformers = pytest.importorskip("transformers")


def _hf_models():
    from transformers import (BertConfig, BertForMaskedLM, GPT2Config, GPT2LMHeadModel, LlamaConfig,
                              LlamaForCausalLM, ViTConfig, ViTForImageClassification)

    return {
        "gpt2": (GPT2LMHeadModel, GPT2Config(n_layer=3, n_embd=64, n_head=4, vocab_size=512, n_positions=32,
                                             bos_token_id=0, eos_token_id=0)),
        "llama": (LlamaForCausalLM, LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                                num_attention_heads=4, num_key_value_heads=2, vocab_size=512,
                                                max_position_embeddings=32, bos_token_id=0, eos_token_id=0,
                                                initializer_range=0.03)),
        "bert": (BertForMaskedLM, BertConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                             num_attention_heads=4, vocab_size=512, max_position_embeddings=32,
                                             pad_token_id=3)),
        "vit": (ViTForImageClassification, ViTConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                                     num_attention_heads=4, image_size=32, patch_size=8,
                                                     num_labels=10)),
    }


def _inputs(kind: str):
    g = torch.Generator().manual_seed(0)
    if kind == "vit":
        return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g)}
    return {"input_ids": torch.randint(4, 512, (2, 16), generator=g)}


HF = ["gpt2", "llama", "bert", "vit"]


@pytest.fixture(scope="module")
def hf_models():
    torch.manual_seed(0)
    return {k: (cls, cfg, cls(cfg).eval()) for k, (cls, cfg) in _hf_models().items()}


@pytest.mark.parametrize("kind", HF)
def test_hf_recipe_covers_every_parameter_and_matches_the_library(hf_models, kind):
    cls, cfg, ref = hf_models[kind]  # ref: the library's own initialization
    torch.manual_seed(1)
    m = cls(cfg).eval()
    man = plan(m, "hf", seed=0)
    m2, man2 = init_module(m, "hf", seed=0, return_manifest=True)
    assert m2 is m and man == man2  # the dry run is exactly what init_module does
    names = {n for n, _ in m.named_parameters(remove_duplicate=False)}
    covered = set()
    for e in man:
        covered |= {e.name, *e.tied}
    covered |= {x.name for x in man.left_alone if x.kind == "parameter"}
    assert covered == names
    std = cfg.initializer_range
    refp = dict(ref.named_parameters())
    for e in man:
        _check_entry_values(m, e)
        r = refp[e.name].detach().double()
        if e.init == "constant" and not e.params.get("post"):
            assert torch.all(r == e.params["value"]), e.name  # the library writes the same constant
        elif e.init in ("normal", "trunc_normal") and r.numel() >= 256:
            assert e.params["std"] in (std, pytest.approx(std / math.sqrt(2 * getattr(cfg, "n_layer", 1))))
            s = float(r.std())
            assert abs(s / e.params["std"] - 1) < _std_tol(r.numel()), (e.name, s, e.params["std"])


def test_hf_gpt2_conventions(hf_models):
    cls, cfg, _ = hf_models["gpt2"]
    m = cls(cfg)
    man = plan(m, "hf", seed=0)
    assert man["transformer.h.0.attn.c_proj.weight"].params["std"] == pytest.approx(0.02 / math.sqrt(2 * 3))
    assert man["transformer.h.0.mlp.c_proj.weight"].params["std"] == pytest.approx(0.02 / math.sqrt(2 * 3))
    assert man["transformer.h.0.attn.c_attn.weight"].params["std"] == 0.02
    assert man["transformer.h.0.attn.c_attn.bias"].params == {"value": 0.0}
    assert man["lm_head.weight"] is man["transformer.wte.weight"]  # tied: one entry under both names
    init_module(m, "hf", seed=0)
    assert m.lm_head.weight is m.transformer.wte.weight


def test_hf_recording_leaves_torch_tensor_as_it_was(hf_models):
    # Recording HF's _init_weights patches torch.Tensor's samplers; restoring them must not copy
    # the base class's methods into torch.Tensor (it left Tensor.__dict__["normal_"] behind, and a
    # later fast_init in the same process then diverged from torch's own construction).
    before = dict(torch.Tensor.__dict__)
    cls, cfg, _ = hf_models["gpt2"]
    init_module(cls(cfg), "hf", seed=0)
    after = dict(torch.Tensor.__dict__)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)


def test_hf_conv1d_fans_read_transposed(hf_models):
    cls, cfg, _ = hf_models["gpt2"]
    m = cls(cfg)
    man = plan(m, "kaiming_normal", seed=0, nonlinearity="relu")
    e = man["transformer.h.0.mlp.c_fc.weight"]  # stored (in=64, out=256)
    assert e.shape == (64, 256) and e.params["fan"] == 64
    assert e.params["std"] == pytest.approx(math.sqrt(2.0 / 64))
    init_module(m, "kaiming_normal", seed=0, nonlinearity="relu")
    w = m.transformer.h[0].mlp.c_fc.weight.detach().double()
    assert abs(float(w.std()) / math.sqrt(2.0 / 64) - 1) < _std_tol(w.numel())
    with torch.no_grad():
        out = m.transformer.h[0].mlp.c_fc(torch.randn(4096, 64))
    assert float(out.var()) == pytest.approx(2.0, rel=0.1)  # He: Var(out) = 2 Var(in)


def test_hf_bert_padding_row_zero_and_llama_rmsnorm(hf_models):
    cls, cfg, _ = hf_models["bert"]
    m = cls(cfg)
    init_module(m, "hf", seed=0)
    emb = m.bert.embeddings.word_embeddings.weight
    assert torch.all(emb[3] == 0) and float(emb[4].abs().sum()) > 0
    init_module(m, "normal", seed=0, std=0.1)  # any recipe keeps the padding row at 0
    assert torch.all(emb[3] == 0)
    cls, cfg, _ = hf_models["llama"]
    man = plan(cls(cfg), "torch_default", seed=0)  # LlamaRMSNorm: a norm by structure, weight 1
    e = man["model.layers.0.input_layernorm.weight"]
    assert e.role == "norm_weight" and e.params == {"value": 1.0}


def test_only_equals_the_whole_model_call(hf_models):
    cls, cfg, _ = hf_models["gpt2"]
    whole = cls(cfg)
    init_module(whole, "hf", seed=5)
    part = cls(cfg)
    before = {k: v.clone() for k, v in part.named_parameters()}
    man = init_module(part, "hf", seed=5, only=["transformer.h.1"], return_manifest=True)[1]
    assert man.names() and all(n.startswith("transformer.h.1.") for n in man.names())
    for k, v in part.named_parameters():
        if k.startswith("transformer.h.1."):
            assert torch.equal(v, whole.get_parameter(k)), k
        else:
            assert torch.equal(v, before[k]), k
    # a predicate works the same way
    part2 = cls(cfg)
    init_module(part2, "hf", seed=5, only=lambda n: n.endswith("c_proj.weight"))
    assert torch.equal(part2.transformer.h[0].attn.c_proj.weight, whole.transformer.h[0].attn.c_proj.weight)


@pytest.mark.parametrize("kind", HF)
def test_materialize_from_meta_equals_eager(hf_models, kind):
    cls, cfg, _ = hf_models[kind]
    eager = cls(cfg).eval()
    init_module(eager, "hf", seed=11)
    with torch.device("meta"):
        lazy = cls(cfg)
    lazy = materialize(lazy, "hf", seed=11).eval()
    for (k, p), (k2, q) in zip(eager.named_parameters(), lazy.named_parameters()):
        assert k == k2 and torch.equal(p, q), k
    eb = dict(eager.named_buffers())
    for k, b in lazy.named_buffers():
        assert torch.equal(b, eb[k]), k
    if kind in ("gpt2", "bert"):
        out_e = eager.get_output_embeddings().weight
        out_l = lazy.get_output_embeddings().weight
        assert out_l is lazy.get_input_embeddings().weight and out_e is eager.get_input_embeddings().weight
    with torch.no_grad():
        a = eager(**_inputs(kind)).logits
        b = lazy(**_inputs(kind)).logits
    assert torch.isfinite(b).all() and torch.equal(a, b)


# ---- plain torch models -------------------------------------------------------------------------


class LSTMLM(nn.Module):
    def __init__(self, vocab=50, d=16, cell=nn.LSTM):
        super().__init__()
        self.emb = nn.Embedding(vocab, d, padding_idx=0)
        self.rnn = cell(d, d, 2, batch_first=True)
        self.dec = nn.Linear(d, vocab)
        self.dec.weight = self.emb.weight

    def forward(self, x):
        return self.dec(self.rnn(self.emb(x))[0])


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_materialize_tied_rnn_lm(cell):
    with torch.device("meta"):
        m = LSTMLM(cell=cell)
    materialize(m, "torch_default", seed=0)
    assert m.dec.weight is m.emb.weight
    out = m(torch.randint(0, 50, (2, 7)))
    assert torch.isfinite(out).all()
    ref = LSTMLM(cell=cell)
    init_module(ref, "torch_default", seed=0)
    for (k, p), q in zip(ref.named_parameters(), m.parameters()):
        assert torch.equal(p, q), k


def test_transformer_encoder_lm_and_batchnorm_buffers():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2,
                                enable_nested_tensor=False)
    man = plan(enc, "torch_default", seed=0)
    assert man["layers.0.self_attn.in_proj_weight"].init == "uniform"
    assert man["layers.0.self_attn.out_proj.bias"].params == {"value": 0.0}
    with torch.device("meta"):
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    materialize(net, "kaiming_normal", seed=0, nonlinearity="relu")
    bn = net[1]
    assert torch.equal(bn.running_mean, torch.zeros(4)) and torch.equal(bn.running_var, torch.ones(4))
    assert int(bn.num_batches_tracked) == 0


def test_unknown_lists_every_parameter_and_leaves_model_untouched():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.mystery = nn.Parameter(torch.ones(3, 3))
            self.other = nn.Parameter(torch.ones(2, 5, 7))

    m = Odd()
    before = {k: v.clone() for k, v in m.named_parameters()}
    with pytest.raises(ValueError) as ei:
        init_module(m, "torch_default", seed=0)
    msg = str(ei.value)
    assert "mystery" in msg and "other" in msg and "2 parameter(s)" in msg
    for k, v in m.named_parameters():
        assert torch.equal(v, before[k])
    _, man = init_module(m, "torch_default", seed=0, unknown="keep", return_manifest=True)
    left = {x.name: x.reason for x in man.left_alone if x.kind == "parameter"}
    assert set(left) == {"mystery", "other"} and torch.equal(m.mystery, before["mystery"])
    init_module(m, "torch_default", seed=0, rules=[Rule("zeros", name="mystery"), Rule("normal", name="other", std=2.0)])
    assert torch.all(m.mystery == 0) and abs(float(m.other.std()) - 2.0) < 2.0 * _std_tol(70)


def test_bad_numbers_are_reported_before_any_write():
    m = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8))
    before = [p.clone() for p in m.parameters()]
    with pytest.raises(ValueError, match="1.weight"):
        init_module(m, "normal", std=-1.0, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))
    with pytest.raises(TypeError, match="does not take options"):
        init_module(m, "hf", nonlinearity="relu")
    with pytest.raises(ValueError, match="unknown must be"):
        init_module(m, unknown="ignore")


def test_rule_validation_lists_all_problems_and_matching():
    with pytest.raises(ValueError) as ei:
        Rule("nrmal", role="wieght")
    assert "nrmal" in str(ei.value) and "wieght" in str(ei.value)
    with pytest.raises(ValueError, match="not accepted"):
        Rule("normal", stdd=1.0)
    m = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    called = []

    def mine(t, seed):
        called.append(tuple(t.shape))
        t.fill_(0.5)

    man = init_module(m, "torch_default", seed=0, return_manifest=True,
                      rules=[Rule(mine, name="2.weight"), Rule(0.25, module=nn.Linear, role="bias"),
                             Rule("ones", module="Lin*", name="0.*", role="weight")])[1]
    assert called == [(8, 8)] and torch.all(m[2].weight == 0.5)
    assert torch.all(m[0].bias == 0.25) and torch.all(m[0].weight == 1.0)
    assert man["2.weight"].init == "callable"
    assert "module=Lin*" in man["0.weight"].rule


# ---- timm / torchvision structures, rebuilt ----------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.conv1, self.bn1, self.act = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        self.layer1 = nn.Sequential(BasicBlock(c), BasicBlock(c))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.layer1(self.act(self.bn1(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


class LayerScale(nn.Module):
    def __init__(self, d, v=1e-6):
        super().__init__()
        self.gamma = nn.Parameter(v * torch.ones(d))

    def forward(self, x):
        return x * self.gamma


class ConvNeXtBlock(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.conv_dw = nn.Conv2d(d, d, 7, padding=3, groups=d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.ls = LayerScale(d)

    def forward(self, x):
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        return x + self.ls(self.mlp(self.norm(y))).permute(0, 3, 1, 2)


class TinyViT(nn.Module):
    def __init__(self, d=384, n=196):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, d, 16, 16)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.Sequential(nn.TransformerEncoderLayer(d, 4, 2 * d, batch_first=True))
        self.head = nn.Linear(d, 10)


def test_timm_resnet_zero_init_last_bn_and_fan_out():
    m = TinyResNet()
    man = plan(m, "timm", seed=0)
    assert man["layer1.0.bn2.weight"].params == {"value": 0.0}
    assert man["bn1.weight"].params == {"value": 1.0} and man["layer1.0.bn1.weight"].params == {"value": 1.0}
    e = man["layer1.0.conv1.weight"]
    assert e.params["std"] == pytest.approx(math.sqrt(2.0 / (16 * 9)))  # fan_out = 16 * 3 * 3
    init_module(m, "timm", seed=0)
    assert torch.all(m.layer1[1].bn2.weight == 0)
    auto = plan(m, "auto", seed=0, example_input=torch.randn(2, 3, 8, 8))
    assert auto["layer1.0.bn2.weight"].params == {"value": 0.0}  # auto zero-inits the residual branch's last norm
    assert auto["layer1.0.conv1.weight"].params["std"] == pytest.approx(math.sqrt(2.0 / (16 * 9)))  # conv->BN->ReLU: He


def test_timm_convnext_keeps_layer_scale():
    m = nn.Sequential(ConvNeXtBlock(), ConvNeXtBlock())
    man = plan(m, "timm", seed=0)
    assert man["0.conv_dw.weight"].params["std"] == 0.02 and man["0.conv_dw.bias"].params == {"value": 0.0}
    assert any(x.name == "0.ls.gamma" and "kept" in x.reason for x in man.left_alone)
    init_module(m, "timm", seed=0)
    assert torch.all(m[0].ls.gamma == 1e-6)
    man = plan(m, "timm", seed=0, layer_scale=1e-5)
    assert man["1.ls.gamma"].params == {"value": 1e-5}
    with torch.device("meta"):
        meta = nn.Sequential(ConvNeXtBlock())
    with pytest.raises(ValueError, match="ls.gamma"):
        materialize(meta, "timm", seed=0)
    materialize(meta, "timm", seed=0, factory=lambda: nn.Sequential(ConvNeXtBlock()))
    assert torch.all(meta[0].ls.gamma == 1e-6)


def test_timm_vit_tokens_not_fan_based():
    m = TinyViT()
    man = plan(m, "timm", seed=0)
    assert man["pos_embed"].role == "token" and man["pos_embed"].params["std"] == 0.02
    assert man["cls_token"].params["std"] == 1e-6
    init_module(m, "timm", seed=0)
    assert abs(float(m.pos_embed.std()) / 0.02 - 1) < _std_tol(m.pos_embed.numel())
    man = plan(m, "xavier_uniform", seed=0)  # a single initializer leaves tokens to their own rule
    assert man["pos_embed"].params["std"] == 0.02 and man["pos_embed"].init == "trunc_normal"


# ---- auto ---------------------------------------------------------------------------------------


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = torch.nn.functional.leaky_relu(self.a(x), 0.2)
        x = torch.tanh(self.b(x))
        x = torch.nn.functional.selu(self.c(x))
        return self.d(x)


@pytest.mark.parametrize("with_input", [True, False])
def test_auto_finds_functional_activations(with_input):
    m = FunctionalNet()
    kw = {"example_input": torch.randn(8, 32)} if with_input else {}
    man = plan(m, "auto", seed=0, **kw)
    assert man["a.weight"].params["std"] == pytest.approx(math.sqrt(2 / (1 + 0.04)) / math.sqrt(32))
    # tanh: the stable-fixed-point gain initlab.gain("tanh") (Xavier's variance decays with depth; issue 19 item 9)
    assert man["b.weight"].params["std"] == pytest.approx(initlab.gain("tanh") / math.sqrt(64))
    assert man["b.weight"].params["scheme"] == "kaiming_normal" and man["b.weight"].params["activation"] == "tanh"
    assert man["c.weight"].init == "trunc_normal" and man["c.weight"].params["scale"] == 1.0  # LeCun normal
    assert man["c.weight"].params["scheme"] == "lecun_normal"
    assert man["d.weight"].params["std"] == 0.02  # the output layer
    assert all(man[f"{k}.bias"].params == {"value": 0.0} for k in "abcd")


def test_auto_recurrent_orthogonal_per_gate_and_forget_bias():
    m = LSTMLM(d=24)
    m2, man = init_module(m, "auto", seed=0, example_input=torch.randint(0, 50, (2, 5)), return_manifest=True)
    w = m.rnn.weight_hh_l0.detach().double()
    for k in range(4):
        blk = w[k * 24:(k + 1) * 24]
        assert torch.allclose(blk @ blk.T, torch.eye(24, dtype=torch.float64), atol=1e-5)
    b = m.rnn.bias_ih_l0.detach()
    assert torch.all(b[24:48] == 1) and torch.all(b[:24] == 0) and torch.all(m.rnn.bias_hh_l0 == 0)
    assert man.validation is not None  # the validation pass ran on the example input
    assert torch.all(m.emb.weight[0] == 0)


def test_auto_without_input_untraceable_model_says_what_to_do():
    class Dyn(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return torch.relu(self.fc(x))
            return self.fc(x)

    with pytest.raises(ValueError, match="example_input"):
        plan(Dyn(), "auto")


# ---- seeds, threads, dtypes, output -------------------------------------------------------------


def test_reproducible_across_threads_and_names_independent():
    def build(extra=False):
        layers = [nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 300)]
        if extra:
            layers.append(nn.Linear(300, 5))
        return nn.Sequential(*layers)

    a, b, c = build(), build(), build(extra=True)
    with initlab.num_threads(1):
        init_module(a, "kaiming_normal", seed=3)
    with initlab.num_threads(2):
        init_module(b, "kaiming_normal", seed=3)
        init_module(c, "kaiming_normal", seed=3)
    for k, p in a.named_parameters():
        assert torch.equal(p, b.get_parameter(k)) and torch.equal(p, c.get_parameter(k))
    d = build()
    init_module(d, "kaiming_normal", seed=4)
    assert not torch.equal(a[0].weight, d[0].weight)


def test_manifest_output_is_readable_and_serializable():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    man = plan(m, "xavier_uniform", seed=0)
    text = str(man)
    assert "0.weight" in text and "uniform" in text and "norm weight 1" in text
    d = json.loads(man.to_json())
    assert d["recipe"] == "xavier_uniform" and len(d["entries"]) == 4
    assert man.to_markdown().startswith("| parameter |")
    assert "4 written" in repr(man) and len(man) == 4


def test_plan_never_writes_even_if_init_weights_does(hf_models):
    cls, cfg, _ = hf_models["gpt2"]
    m = cls(cfg)
    orig = m._init_weights

    def writes_directly(module):  # an override that bypasses the init functions
        orig(module)
        w = getattr(module, "weight", None)
        if isinstance(w, torch.Tensor):
            w.data.mul_(0.0)
            w.data.copy_(torch.full_like(w, 7.0))

    m._init_weights = writes_directly
    before = {k: v.clone() for k, v in m.named_parameters()}
    man = plan(m, "hf", seed=0)
    # c_proj is filled again by its block's init after the override wrote it: the last full fill decides
    assert man["transformer.h.0.attn.c_proj.weight"].params["std"] == pytest.approx(0.02 / math.sqrt(6))
    # c_fc's last write is the override's (7.0 everywhere, with copy_): a value the library's code
    # computes, found by running it on a scratch copy
    e = man["transformer.h.0.mlp.c_fc.weight"]
    assert e.init == "computed" and e.params["random"] is False, e
    for k, v in m.named_parameters():
        assert torch.equal(before[k], v), k
    init_module(m, "hf", seed=0)
    assert torch.equal(m.transformer.h[0].mlp.c_fc.weight, torch.full_like(before["transformer.h.0.mlp.c_fc.weight"], 7.0))
    assert torch.nn.init.normal_.__module__ in ("torch.nn.init", "initlab.torch.fast_init")  # patching undone


def test_hf_one_plus_w_norms_and_t5_factors():
    from transformers import GemmaConfig, GemmaForCausalLM, T5Config, T5ForConditionalGeneration

    g = GemmaForCausalLM(GemmaConfig(num_hidden_layers=1, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                                     num_key_value_heads=1, head_dim=16, vocab_size=256))
    man = plan(g, "hf", seed=0)
    # Gemma's RMSNorm computes x * (1 + w): its weight starts at 0, not 1
    assert man["model.layers.0.input_layernorm.weight"].params == {"value": 0.0}
    assert man["model.norm.weight"].params == {"value": 0.0}
    t5 = T5ForConditionalGeneration(T5Config(num_layers=1, d_model=32, d_ff=64, num_heads=2, d_kv=16, vocab_size=128))
    man = plan(t5, "hf", seed=0)  # T5's per-projection factors, read from its own _init_weights
    assert man["encoder.block.0.layer.0.SelfAttention.q.weight"].params["std"] == pytest.approx((32 * 16) ** -0.5)
    assert man["encoder.block.0.layer.0.SelfAttention.k.weight"].params["std"] == pytest.approx(32 ** -0.5)


def test_auto_transformer_projections():
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    m = nn.Sequential(layer, nn.Linear(32, 7))
    man = plan(m, "auto", seed=0, example_input=torch.randn(2, 5, 32))
    assert man["0.linear1.weight"].params["std"] == pytest.approx(math.sqrt(2 / 32))  # followed by ReLU: He
    assert man["0.linear2.weight"].params["std"] == pytest.approx(1 / 8)  # residual projection: 1/sqrt(d)
    assert man["0.self_attn.out_proj.weight"].params["std"] == pytest.approx(1 / math.sqrt(32))
    assert man["0.self_attn.in_proj_weight"].params["std"] == pytest.approx(1 / math.sqrt(32))
    assert man["1.weight"].params["std"] == 0.02  # the output layer
    assert man["0.norm1.weight"].params == {"value": 1.0}


def test_bad_seed_or_scale_fails_before_allocation_or_write():
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with pytest.raises((TypeError, ValueError)):
        materialize(m, "torch_default", seed="abc")
    assert all(p.device.type == "meta" for p in m.parameters())  # nothing allocated
    lin = nn.Linear(8, 8)
    before = lin.weight.clone()
    with pytest.raises(ValueError, match="scale"):
        init_module(lin, "variance_scaling", scale=-1.0, seed=0)
    with pytest.raises(ValueError, match="Mode"):
        init_module(lin, "kaiming_normal", mode="fan_middle", seed=0)
    assert torch.equal(lin.weight, before)
    man = plan(lin, "kaiming_normal", mode="FAN_OUT", seed=0)  # torch lower-cases the mode
    assert man["weight"].params["mode"] == "fan_out"
