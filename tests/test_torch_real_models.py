"""initlab.torch.analyze / diagnose / lsuv on real models: tiny Hugging Face models built with
``from_config`` (never downloaded), a hand-built ResNet-18-like network (torchvision cannot be
installed in the test extras), LSTM language models."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
import initlab.torch as itorch  # noqa: E402
from initlab.torch import probes  # noqa: E402

VOCAB, SEQ, BATCH = 1000, 16, 4


def _quiet(make):
    with warnings.catch_warnings():  # GPT-2's default bos/eos ids lie outside a tiny vocabulary
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        return make().eval()


def _gpt2():
    tr = pytest.importorskip("transformers")
    cfg = tr.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, bos_token_id=0,
                        eos_token_id=0)
    return _quiet(lambda: tr.GPT2LMHeadModel(cfg))


def _llama():
    tr = pytest.importorskip("transformers")
    cfg = tr.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64)
    return _quiet(lambda: tr.LlamaForCausalLM(cfg))


def _bert():
    tr = pytest.importorskip("transformers")
    cfg = tr.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        vocab_size=VOCAB, max_position_embeddings=64)
    return _quiet(lambda: tr.BertForMaskedLM(cfg))


def _vit():
    tr = pytest.importorskip("transformers")
    cfg = tr.ViTConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       image_size=32, patch_size=4, num_labels=10)
    return _quiet(lambda: tr.ViTForImageClassification(cfg))


MAKERS = {"gpt2": _gpt2, "llama": _llama, "bert": _bert, "vit": _vit}
# One layer per model, deep inside (a Conv1D for GPT-2, plain Linear elsewhere), to break on purpose.
BREAK = {"gpt2": "transformer.h.1.mlp.c_fc", "llama": "model.layers.0.self_attn.v_proj",
         "bert": "bert.encoder.layer.1.intermediate.dense", "vit": "vit.layers.0.mlp.fc1"}


def _inputs(name):
    g = torch.Generator().manual_seed(1)
    if name == "vit":
        return torch.randn(BATCH, 3, 32, 32, generator=g)
    return {"input_ids": torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)}


@pytest.fixture(scope="module", params=list(MAKERS))
def hf(request):
    return request.param, MAKERS[request.param]()


# ---- analyze / diagnose on Hugging Face models -----------------------------------------------


def test_analyze_healthy_hf_model_no_false_alarm(hf):
    name, model = hf
    x = _inputs(name)
    tr = itorch.analyze(model, x)
    assert len(tr) >= 9 and all(lay.grad_pre is not None for lay in tr.layers)
    if name == "vit":
        assert tr.input_name == "input"
    else:  # token ids: statistics start at the embedding's output, never at the int64 ids
        assert tr.input_name.startswith("output of ") and "(Embedding)" in tr.input_name
        emb = model.get_input_embeddings()(x["input_ids"]).detach()
        assert tr.input["ms"] == pytest.approx(float(emb.double().square().mean()), rel=1e-6)
        assert tr.input["ms"] < 1e-2  # embedding scale (std 0.02), not the ids' mean square (~3e5)
    with torch.no_grad():
        logits = probes.select_output(probes.call(model, x))
    assert tr.output["count"] == logits.numel() and tr.output["ms"] == pytest.approx(
        float(logits.double().square().mean()), rel=1e-6)
    found = tr.diagnose()
    assert found == [], str(found)
    assert str(found) == f"no problem found in {len(tr)} layer(s)"
    if name == "gpt2":  # token ids as a plain tensor (passed positionally): the same trace
        tt = itorch.analyze(model, x["input_ids"])
        assert tt.loss == tr.loss and [lay.pre for lay in tt.layers] == [lay.pre for lay in tr.layers]


def test_analyze_broken_hf_layer_named(hf):
    name, model = hf
    layer = model.get_submodule(BREAK[name])
    w0 = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.mul_(1e-4)
    try:
        found = itorch.analyze(model, _inputs(name)).diagnose()
    finally:
        with torch.no_grad():
            layer.weight.copy_(w0)
    assert [f.kind for f in found] == ["vanishing_layer"], str(found)
    f = found[0]
    assert f.layer == BREAK[name]
    # gain = fan_in * Var(W) scaled by 1e-8: (64 * 0.02**2) * 1e-8, within the sampling noise of W and x
    assert 0.5e-10 < f.evidence["gain"] < 1e-9
    assert BREAK[name] in str(f) and str(found).startswith("1 problem(s) found")


def test_analyze_hf_initializer_range_far_too_small():
    tr_mod = pytest.importorskip("transformers")
    cfg = tr_mod.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64, bos_token_id=0,
                            eos_token_id=0, initializer_range=1e-4)
    model = _quiet(lambda: tr_mod.GPT2LMHeadModel(cfg))
    found = itorch.analyze(model, _inputs("gpt2")).diagnose()
    assert [f.kind for f in found] == ["vanishing_layer"]  # one finding listing every layer
    assert len(found[0].evidence["layers"]) == 9 and found[0].layer == "transformer.h.0.attn.c_attn"
    assert str(found[0]).startswith("9 layers each shrink the mean square of their input by less than x0.0001")


def test_output_selection_and_key_errors():
    tr_mod = pytest.importorskip("transformers")
    cfg = tr_mod.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                            vocab_size=100, max_position_embeddings=32)
    torch.manual_seed(0)
    model = tr_mod.BertModel(cfg).eval()  # returns last_hidden_state and pooler_output, no logits
    ids = {"input_ids": torch.randint(0, 100, (2, 8))}
    with pytest.raises(ValueError, match=r"no tensor entry 'logits'.*\['last_hidden_state', 'pooler_output'\]"):
        itorch.analyze(model, ids)
    with pytest.raises(ValueError, match=r"no tensor entry 'nope'.*last_hidden_state"):
        itorch.analyze(model, ids, output="nope")
    tr = itorch.analyze(model, ids, output="last_hidden_state")
    assert tr.output["count"] == 2 * 8 * 32
    tp = itorch.analyze(model, ids, output="pooler_output")
    assert tp.output["count"] == 2 * 32 and tp.layers[-1].reduction == "reduction"  # the pooler reads [CLS]
    with pytest.raises(TypeError, match="mapping of keyword inputs"):
        itorch.analyze(model, [1, 2, 3])
    with pytest.raises(TypeError, match="output must be"):
        itorch.analyze(model, ids, output=1.5)
    assert [len(m._forward_hooks) for m in model.modules()] == [0] * len(list(model.modules()))


def test_select_output_tuple_and_tensor():
    t = torch.ones(2)
    assert probes.select_output(t) is t
    assert probes.select_output((t, None)) is t
    u = torch.zeros(3)
    assert probes.select_output((t, u), 1) is u
    assert probes.select_output({"logits": t, "loss": u}) is t
    with pytest.raises(ValueError, match="output=2 does not select a tensor"):
        probes.select_output((t, u), 2)
    with pytest.raises(ValueError, match="single tensor"):
        probes.select_output(t, "logits")


def test_recorder_per_call_gradients_and_first_float():
    relu = nn.ReLU()
    lin = nn.Linear(4, 4)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lin, self.relu = nn.Embedding(10, 4), lin, relu

        def forward(self, idx):
            h = self.relu(self.lin(self.emb(idx)))
            return self.relu(h * 3.0)  # the same module, a second call with other values

    model = Twice()
    rec = probes.Recorder(backward=True, keep_input=probes.is_layer)
    first = probes.FirstFloat()
    with probes.forward_hooks(first.hooks(model) + rec.hooks(model.named_children())):
        y = model(torch.tensor([[1, 2, 3]]))
        y.backward(torch.ones_like(y))
    assert [e.name for e in rec.events] == ["emb", "lin", "relu", "relu"]
    assert first.name == "output of emb (Embedding)" and first.tensor.dtype == torch.float32
    assert rec.events[1].input is not None and rec.events[2].input is None  # inputs kept for layers only
    assert torch.equal(rec.events[3].output, torch.relu(rec.events[2].output * 3.0))
    assert torch.equal(rec.grads[3], torch.ones(1, 3, 4))  # dL/d(second call) = 1
    assert torch.equal(rec.grads[2], 3.0 * (rec.events[3].output > 0).float())  # through h * 3
    assert 1 in rec.grads_in and [len(m._forward_hooks) for m in model.modules()] == [0, 0, 0, 0]


# ---- pooling: ResNet-18-like and a plain CNN ------------------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class _ResNet18(nn.Module):
    """torchvision's resnet18 layout (BasicBlocks 2-2-2-2, BN, max pool, adaptive average pool)
    at a quarter of the width, with torchvision's own initialization."""

    def __init__(self, width=16, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, w in enumerate((width, 2 * width, 4 * width, 8 * width), start=1):
            setattr(self, f"layer{i}", nn.Sequential(_BasicBlock(cin, w, 1 if i == 1 else 2), _BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("train", [True, False])
def test_resnet18_like_is_not_vanishing(train):
    torch.manual_seed(0)
    model = _ResNet18(width=8).train(train)
    tr = itorch.analyze(model, torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert len(tr) == 21 and tr.layers[-1].name == "fc"
    json.dumps(tr.to_dict())
    assert tr.diagnose() == []
    fc = tr.layers[-1]
    assert fc.reduction == "AdaptiveAvgPool2d"
    # a 2x2 map averaged: every input element gets dy / 4, so the gradient's mean square drops 16x
    assert fc.reduction_scale["backward"] == pytest.approx(1 / 16, rel=1e-6)
    assert model.training == train


def _plain_cnn():
    torch.manual_seed(0)
    mods, c = [], 3
    for w in (16, 32, 64):
        mods += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        c = w
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
    model = nn.Sequential(*mods)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def test_pooling_steps_are_discounted():
    tr = itorch.analyze(_plain_cnn(), torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    red = {lay.name: lay.reduction for lay in tr.layers if lay.reduction}
    assert red == {"5": "MaxPool2d", "10": "MaxPool2d", "17": "AdaptiveAvgPool2d"}
    for lay in tr.layers:
        if lay.reduction == "MaxPool2d":  # the gradient goes to one element of each 2x2 window
            assert lay.reduction_scale["backward"] == pytest.approx(0.25, rel=1e-9)
    assert tr.diagnose() == []
    # Without the discount the He-initialized chain would be called vanishing (the old behaviour).
    for lay in tr.layers:
        lay.reduction = None
    assert [f.kind for f in tr.diagnose()] == ["vanishing_gradient"]


def test_vanishing_chain_still_found_and_prints():
    torch.manual_seed(0)
    mods = []
    for _ in range(12):
        lin = nn.Linear(64, 64)
        nn.init.normal_(lin.weight, std=0.05)  # 64 * 0.05^2 / 2 = 0.08 per layer
        nn.init.zeros_(lin.bias)
        mods += [lin, nn.ReLU()]
    tr = itorch.analyze(nn.Sequential(*mods), torch.randn(32, 64))
    found = tr.diagnose()
    kinds = {f.kind: f for f in found}
    assert set(kinds) == {"vanishing_forward", "vanishing_gradient"}
    assert kinds["vanishing_forward"].evidence["growth_per_layer"] == pytest.approx(0.08, rel=0.35)
    text = str(found)
    assert text.startswith("2 problem(s) found in 12 layer(s):") and "Finding(" not in text
    assert all(line.startswith("- The ") for line in text.splitlines()[1:])
    assert str(tr).startswith("Trace of 12 layer(s), forward and backward, batch 32; input: mean square")
    assert "Finding(" not in repr(found) and "vanishing_forward" in repr(found)


# ---- LSUV on real models -------------------------------------------------------------------


def _outputs(model, x, names):
    """Each named layer's output (first call), recorded the moment it returns, in eval mode."""
    got = {}
    hs = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: got.setdefault(n, probes.first_tensor(o).detach().clone())) for n in names]
    try:
        with torch.no_grad():
            probes.call(model, x)
    finally:
        for h in hs:
            h.remove()
    return got


def test_lsuv_gpt2_conv1d():
    model = _gpt2()
    x = _inputs("gpt2")
    wte = model.transformer.wte.weight.detach().clone()
    with pytest.warns(RuntimeWarning, match=r"lm_head\.weight: tied to transformer\.wte"):
        rep = itorch.lsuv(model, x, seed=0)
    assert rep.converged and len(rep) == 8  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert {r.kind for r in rep.layers} == {"Conv1D (HF)"}
    assert [r.name for r in rep.layers[:4]] == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj",
                                                "transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]
    outs = _outputs(model, x, [r.name for r in rep.layers])
    for r in rep.layers:
        assert abs(float(outs[r.name].double().var(unbiased=False)) - 1.0) < rep.tol, r.name
        assert r.weight_shape == tuple(model.get_submodule(r.name).weight.shape)
    assert torch.equal(model.transformer.wte.weight, wte) and model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" in rep.not_scaled and "transformer.wpe.weight" in rep.not_scaled
    assert not model.training


def test_lsuv_conv1d_orthonormal_pre_init():
    model = _gpt2()
    c_attn = model.transformer.h[0].attn.c_attn
    with torch.no_grad():
        c_attn.bias.uniform_(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rep = itorch.lsuv(model, _inputs("gpt2"), seed=0, max_iter=0)  # pre-init and measure only
    assert all(r.iterations == 0 and r.scale == 1.0 for r in rep.layers)
    w = c_attn.weight.detach().double()  # stored (in 64, out 192): orthonormal rows of the (in, out) matrix
    torch.testing.assert_close(w @ w.T, torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0)
    assert bool((c_attn.bias == 0).all())


class _LSTMLM(nn.Module):
    def __init__(self, vocab=50, dim=16, tie=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, num_layers=2, batch_first=True)
        self.proj = nn.Linear(dim, dim)
        self.decoder = nn.Linear(dim, vocab)
        if tie:
            self.decoder.weight = self.emb.weight

    def forward(self, idx):
        return self.decoder(torch.tanh(self.proj(self.rnn(self.emb(idx))[0])))


def test_lsuv_lstm_lm_lists_recurrent_weights():
    torch.manual_seed(0)
    model = _LSTMLM()
    rnn = {k: v.detach().clone() for k, v in model.rnn.named_parameters()}
    ids = torch.randint(0, 50, (8, 12))
    with pytest.warns(RuntimeWarning, match=r"weight\(s\) were not scaled") as rec:
        rep = itorch.lsuv(model, ids, seed=0)
    assert len([w for w in rec if "not scaled" in str(w.message)]) == 1  # one warning naming them all
    assert [r.name for r in rep.layers] == ["proj", "decoder"] and rep.converged
    recurrent = [k for k in rep.not_scaled if k.startswith("rnn.")]
    assert recurrent == [f"rnn.weight_{a}_l{i}" for i in range(2) for a in ("ih", "hh")]
    assert all(rep.not_scaled[k].startswith("LSTM weight") for k in recurrent)
    msg = str(rec[0].message)
    assert all(k in msg for k in recurrent) and "emb.weight" not in msg  # embeddings: report only
    assert rep.not_scaled["emb.weight"].startswith("Embedding table")
    for k, v in model.rnn.named_parameters():
        assert torch.equal(v, rnn[k])
    assert "not scaled (5):" in str(rep) and "rnn.weight_hh_l1: LSTM weight" in str(rep)


def test_lsuv_nothing_to_rescale_says_why():
    torch.manual_seed(0)

    class OnlyTied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.rnn = nn.GRU(8, 8, batch_first=True)
            self.head = nn.Linear(8, 20, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, idx):
            return self.head(self.rnn(self.emb(idx))[0])

    with pytest.raises(ValueError) as e:
        itorch.lsuv(OnlyTied(), torch.randint(0, 20, (4, 5)))
    msg = str(e.value)
    assert "no layer LSUV can rescale" in msg and "Conv1D" in msg
    assert "head.weight: tied to emb" in msg and "rnn.weight_ih_l0: GRU weight" in msg and "rnn.weight_hh_l0" in msg


def test_lsuv_bare_parameters_listed():
    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls = nn.Parameter(torch.randn(1, 1, 8))
            self.scale = nn.Parameter(torch.full((8,), 0.1))  # layer scale
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(self.norm(torch.cat([self.cls.expand(x.shape[0], 1, 8), x], 1))) * self.scale

    torch.manual_seed(0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a token and a layer scale are left by design: listed, not warned
        rep = itorch.lsuv(Tokens(), torch.randn(4, 6, 8), seed=0)
    assert list(rep.not_scaled) == ["cls", "scale"]  # the LayerNorm's affine parameters are not weights
    assert rep.not_scaled["cls"].startswith("token or position table of Tokens")
    assert rep.not_scaled["scale"].startswith("layer scale of Tokens")


def test_lsuv_shared_weight_scaled_at_first_holder():
    torch.manual_seed(0)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 8)
            self.b = nn.Linear(8, 8)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(torch.relu(self.a(x)))

    model = Twice()
    with pytest.warns(RuntimeWarning, match=r"b\.weight: weight shared with a, rescaled there"):
        rep = itorch.lsuv(model, torch.randn(64, 8), seed=0)
    assert [r.name for r in rep.layers] == ["a"] and model.b.weight is model.a.weight


def _mlp64():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).double()


def test_pooled_statistics_equal_the_concatenated_batch():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(n, 6, generator=g, dtype=torch.float64) * 2 for n in (20, 33, 47)]
    whole = torch.cat(batches)
    # measure only (max_iter=0, no pre-init): the report's variances are the pooled statistics
    a, b = _mlp64(), _mlp64()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # max_iter=0: "did not converge"
        ra = itorch.lsuv(a, batches, orthogonal=False, max_iter=0)
        rb = itorch.lsuv(b, whole, orthogonal=False, max_iter=0)
    assert ra.pool_batches == 3 and rb.pool_batches == 1
    assert ra.forward_passes == 1 + 3 * 3 and rb.forward_passes == 1 + 3
    for x, y in zip(ra.layers, rb.layers):
        assert x.var_before == pytest.approx(y.var_before, rel=1e-12)
        assert x.mean_before == pytest.approx(y.mean_before, rel=1e-9, abs=1e-15)
    outs = _outputs(a, whole, ["0"])
    assert ra[0].var_before == pytest.approx(float(outs["0"].var(unbiased=False)), rel=1e-12)
    # the whole algorithm: the same weights from the list as from the concatenated batch
    a, b = _mlp64(), _mlp64()
    itorch.lsuv(a, batches, seed=5, tol=1e-3)
    itorch.lsuv(b, whole, seed=5, tol=1e-3)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-14)
    # an explicit pool over a one-shot iterator takes that many fresh batches per measurement
    it = iter([torch.randn(16, 6, dtype=torch.float64) for _ in range(40)])
    rep = itorch.lsuv(_mlp64(), it, pool_batches=4, seed=0)
    assert rep.pool_batches == 4 and (rep.forward_passes - 1) % 4 == 0
    with pytest.raises(ValueError, match="pool_batches must be a positive int"):
        itorch.lsuv(_mlp64(), whole, pool_batches=0)


def test_orthogonal_pre_init_zeroes_biases_and_error_restores_them():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    b0 = [m.bias.detach().clone() for m in (model[0], model[2])]
    assert all(bool(b.abs().min() > 0) for b in b0)  # torch's random biases
    rep = itorch.lsuv(model, torch.randn(64, 8), seed=0)
    assert rep.converged
    assert all(bool((m.bias == 0).all()) for m in (model[0], model[2]))  # exactly 0 (no center)
    # orthogonal=False keeps the biases (rescaled layers only change their weights)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    itorch.lsuv(model, torch.randn(64, 8), orthogonal=False)
    assert torch.equal(model[0].bias, b0[0]) and torch.equal(model[2].bias, b0[1])
    # MultiheadAttention: in-projection and out-projection biases
    mha = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True)
    with torch.no_grad():
        mha.self_attn.in_proj_bias.uniform_(-1, 1)
        mha.self_attn.out_proj.bias.uniform_(-1, 1)
    itorch.lsuv(mha, torch.randn(4, 6, 16), seed=0)
    assert bool((mha.self_attn.in_proj_bias == 0).all()) and bool((mha.self_attn.out_proj.bias == 0).all())
    # an error after the pre-init restores the biases too
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="does not depend on its weights"):
        itorch.lsuv(model, torch.zeros(16, 8), seed=0)
    for p, q in zip(model.parameters(), before):
        assert torch.equal(p, q)


def test_numpy_front_end_same_bias_rule_and_pooling():
    rng = np.random.default_rng(0)
    w = [rng.standard_normal((16, 8)) * 0.1, rng.standard_normal((4, 16)) * 0.1]
    b = [rng.standard_normal(16), rng.standard_normal(4)]

    def fwd(x):
        h = x @ w[0].T + b[0]
        return [h, np.maximum(h, 0) @ w[1].T + b[1]]

    batches = [rng.standard_normal((n, 8)) for n in (10, 30)]
    rep = initlab.lsuv(w, batches, forward=fwd, biases=b, seed=0)
    assert rep.converged and rep.pool_batches == 2
    assert all(not bi.any() for bi in b)  # set to exactly 0 by the pre-init
    out = fwd(np.concatenate(batches))
    for o in out:
        assert abs(o.var() - 1) < rep.tol  # the pooled statistics are those of all the data
    assert math.isfinite(rep[0].scale)
