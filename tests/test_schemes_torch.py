"""initlab.schemes on torch modules: torchvision-style ResNets rebuilt by hand, nn.Transformer,
Hugging Face blocks (tiny configs, no weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.lsuv import named_seeds  # noqa: E402
from initlab.schemes import fixup, rezero, scaled_residual, skipinit, t_fixup, zero_init_residual  # noqa: E402
from initlab.schemes.torch_modules import PreShift, Scale, ScaleShift, Shift  # noqa: E402


# --- torchvision's BasicBlock / Bottleneck / ResNet, rebuilt by hand (same attribute names) ----

def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=10, width=8):
        super().__init__()
        self.inplanes = width
        self.conv1, self.bn1, self.relu = nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        self.layer1 = self._make(block, width, layers[0])
        self.layer2 = self._make(block, width * 2, layers[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width * 2 * block.expansion, num_classes)

    def _make(self, block, planes, n, stride=1):
        ds = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            ds = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                               nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, ds)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.flatten(self.avgpool(self.layer2(self.layer1(x))), 1))


def _expected_normal(name, shape, std, seed):
    a = np.empty(shape, dtype=np.float32)
    initlab.normal_(a, 0.0, std, seed=named_seeds(seed)(name))
    return torch.from_numpy(a)


def test_fixup_basic_block_resnet():
    torch.manual_seed(0)
    m = ResNet(BasicBlock, [2, 2])
    man = fixup(m, seed=5)
    L = 4  # residual branches, m = 2 weight layers each
    blk = m.layer2[0]
    assert isinstance(blk.conv1, PreShift) and isinstance(blk.bn1, Shift) and isinstance(blk.bn2, ScaleShift)
    # bias1a is shared by conv1 and the downsample conv (the reference's x + bias1a feeds both)
    assert blk.downsample[0].bias_in is blk.conv1.bias_in
    assert "layer2.0.downsample.0.bias_in" in man["layer2.0.conv1.bias_in"].tied
    for b in ("layer1.0", "layer1.1", "layer2.0", "layer2.1"):
        w = m.get_submodule(b).conv1.layer.weight
        fan_out = w.shape[0] * 9
        std = math.sqrt(2 / fan_out) * L ** -0.5
        e = man[f"{b}.conv1.layer.weight"]
        assert e.params["std"] == pytest.approx(std, rel=1e-12) and e.params["fan_out"] == fan_out
        assert torch.equal(w.detach(), _expected_normal(f"{b}.conv1.layer.weight", tuple(w.shape), std, 5))
        assert not m.get_submodule(b).conv2.layer.weight.any()
        assert m.get_submodule(b).bn2.scale.item() == 1.0 and m.get_submodule(b).bn2.bias.item() == 0.0
    ds = m.layer2[0].downsample[0].layer.weight
    assert man["layer2.0.downsample.0.layer.weight"].params["std"] == pytest.approx(math.sqrt(2 / 16), rel=1e-12)
    assert isinstance(m.layer2[0].downsample[1], nn.Identity) and ds.std() > 0.2
    assert not m.fc.weight.any() and not m.fc.bias.any() and man["fc.weight"].role == "head"
    x = torch.randn(2, 3, 8, 8)
    y = m(x)
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()  # trainable end to end: the classifier gets a gradient
    assert m.fc.weight.grad.abs().sum() > 0
    assert {x.name for x in man.left_alone} >= {"layer1.0.bn1.weight", "bn1.weight"}
    with pytest.raises(ValueError, match="already carry"):
        fixup(m)


def test_fixup_bottleneck_quarter_power():
    m = ResNet(Bottleneck, [1, 2])
    man = fixup(m, seed=0)
    L = 3
    for b in ("layer1.0", "layer2.0", "layer2.1"):
        for c in ("conv1", "conv2"):
            e = man[f"{b}.{c}.layer.weight"]
            assert e.params["scale"] == pytest.approx(L ** -0.25, rel=1e-15) and e.params["m"] == 3
        assert not m.get_submodule(b).conv3.layer.weight.any()
        assert isinstance(m.get_submodule(b).bn3, ScaleShift) and isinstance(m.get_submodule(b).bn2, Shift)
    assert m(torch.randn(2, 3, 8, 8)).shape == (2, 10)


class MyBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc_a, self.act, self.fc_b = nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)

    def forward(self, x):
        return x + self.fc_b(self.act(self.fc_a(x)))


def test_fixup_named_blocks_and_errors():
    model = nn.Sequential(nn.Linear(4, 8), *[MyBlock(8) for _ in range(9)], nn.Linear(8, 2))
    with pytest.raises(ValueError, match="no residual block"):
        fixup(model)
    man = fixup(model, blocks=MyBlock, seed=0)
    assert man["1.fc_a.layer.weight"].params["scale"] == pytest.approx(9 ** -0.5)
    assert not model[1].fc_b.layer.layer.weight.any()  # ScaledOutput(PreShift(fc_b))
    assert "1.fc_b.post.scale" in man and "1.fc_a.bias_in" in man
    x = torch.randn(3, 4)
    assert torch.equal(model(x), torch.zeros(3, 2))
    m2 = nn.Sequential(*[MyBlock(8) for _ in range(3)])
    man2 = fixup(m2, blocks="[0-9]", add_scalars=False)
    assert man2["0.fc_a.weight"].params["scale"] == pytest.approx(3 ** -0.5)
    with pytest.raises(TypeError, match="blocks="):
        fixup(m2, blocks=[3])


def test_skipinit_rezero_zero_init_resnet():
    m = ResNet(BasicBlock, [1, 1])
    man = zero_init_residual(m)
    assert not m.layer1[0].bn2.weight.any() and m.layer1[0].bn1.weight.all() and len(man) == 2
    m = ResNet(Bottleneck, [1, 1])
    zero_init_residual(m)
    assert not m.layer2[0].bn3.weight.any() and m.layer2[0].bn2.weight.all()

    m = ResNet(BasicBlock, [2, 1])
    man = skipinit(m, alpha=0.1)
    assert isinstance(m.layer1[0].bn2, Scale) and m.layer1[0].bn2.scale.item() == pytest.approx(0.1)
    assert len([e for e in man if e.role == "scalar"]) == 3
    m = ResNet(BasicBlock, [2, 1])
    rezero(m, norm="keep")
    blk = m.layer1[1]
    x = torch.relu(torch.randn(2, 8, 4, 4))
    assert torch.equal(blk(x), x)  # identity block at init: relu(0 + x) = x for x >= 0


def test_rezero_transformer_is_identity_and_shares_one_scalar():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 3,
                                enable_nested_tensor=False)
    man = rezero(enc)
    lay = enc.layers[0]
    assert lay.dropout1[0] is lay.dropout2[0]  # one resweight per layer (official RZTXEncoderLayer)
    assert len(man) == 3 and all(e.params["value"] == 0.0 for e in man)
    x = torch.randn(2, 5, 16)
    enc.eval()
    with torch.no_grad():
        assert torch.equal(enc(x), x)
    enc2 = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 2,
                                 enable_nested_tensor=False)
    man2 = skipinit(enc2, alpha=0.5)
    assert len(man2) == 4 and enc2.layers[0].dropout1[0] is not enc2.layers[0].dropout2[0]


def test_scaled_residual_gpt2_hf():
    tr = pytest.importorskip("transformers")
    cfg = tr.GPT2Config(n_embd=16, n_layer=3, n_head=2, vocab_size=40, n_positions=16)
    m = tr.GPT2Model(cfg)
    man = scaled_residual(m, std=0.02, seed=0)
    names = man.names()
    assert sorted(names) == sorted([f"h.{i}.attn.c_proj.weight" for i in range(3)] +
                                   [f"h.{i}.mlp.c_proj.weight" for i in range(3)])
    s = 0.02 / math.sqrt(2 * 3)
    for n in names:
        assert man[n].params["std"] == pytest.approx(s, rel=1e-15)
        w = m.get_parameter(n)
        assert torch.equal(w.detach(), _expected_normal(n, tuple(w.shape), s, 0))
    assert "h.0.attn.c_attn.weight" in {x.name for x in man.left_alone}


def test_deepnet_transformer_encoder():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 4,
                                enable_nested_tensor=False)
    man = scaled_residual(enc, rule="deepnet", seed=0)
    beta = (8 * 4) ** -0.25
    e = man["layers.0.linear1.weight"]
    assert e.params["gain"] == pytest.approx(beta) and e.params["std"] == pytest.approx(beta * math.sqrt(2 / 48))
    assert e.params["residual_alpha"] == pytest.approx((2 * 4) ** 0.25)
    ip = enc.layers[0].self_attn.in_proj_weight.detach()
    b = math.sqrt(6 / 32)
    assert ip[:32].abs().max() <= b and ip[32:].abs().max() <= beta * b and ip[32:].abs().max() > 0.9 * beta * b


def test_t_fixup_encoder_decoder():
    model = nn.Transformer(16, 2, num_encoder_layers=3, num_decoder_layers=2, dim_feedforward=32, dropout=0.0,
                           batch_first=True)
    emb = nn.Embedding(30, 16, padding_idx=1)
    full = nn.ModuleDict({"decoder_embed": emb, "tr": model})
    man = t_fixup(full, seed=0)
    fe, fd = 0.67 * 3 ** -0.25, (9 * 2) ** -0.25
    xb = math.sqrt(6 / 32)
    e = man["tr.encoder.layers.0.linear2.weight"]
    assert e.params["scale"] == pytest.approx(fe) and e.params["bound"] == pytest.approx(math.sqrt(6 / 48) * fe)
    d = man["tr.decoder.layers.1.multihead_attn.out_proj.weight"]
    assert d.params["scale"] == pytest.approx(fd) and d.params["bound"] == pytest.approx(xb * fd)
    qkv = man["tr.decoder.layers.0.self_attn.in_proj_weight"]
    assert qkv.params["bound_qk"] == pytest.approx(xb) and qkv.params["bound_v"] == pytest.approx(xb * fd)
    w = model.decoder.layers[0].self_attn.in_proj_weight.detach()
    assert w[:32].abs().max() <= xb and 0.9 * xb * fd < w[32:].abs().max() <= xb * fd
    ew = man["decoder_embed.weight"]
    assert ew.params["std"] == pytest.approx(16 ** -0.5 * fd)
    assert not emb.weight[1].any()
    assert isinstance(model.encoder.layers[0].norm1, nn.Identity)
    src, tgt = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(src, tgt)).all()


def test_t_fixup_hf_bert_and_user_projections():
    tr = pytest.importorskip("transformers")
    cfg = tr.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                        vocab_size=30, max_position_embeddings=20)
    m = tr.BertModel(cfg)
    man = t_fixup(m, seed=0)
    f = 0.67 * 2 ** -0.25
    for n in ("encoder.layer.1.attention.self.value.weight", "encoder.layer.1.attention.output.dense.weight",
              "encoder.layer.1.intermediate.dense.weight", "encoder.layer.1.output.dense.weight"):
        assert man[n].params["scale"] == pytest.approx(f)
    assert "scale" not in man["encoder.layer.0.attention.self.query.weight"].params
    assert not m.embeddings.word_embeddings.weight[0].any()

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.to_q, self.to_v, self.to_out = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

    class MyLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn, self.ff = Attn(), nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))

    net = nn.Sequential(*[MyLayer() for _ in range(4)])
    man = t_fixup(net, blocks=MyLayer, projections={"v": "attn.to_v", "out": "attn.to_out", "mlp": ["ff.0", "ff.2"]})
    f = 0.67 * 4 ** -0.25
    assert man["2.attn.to_v.weight"].params["scale"] == pytest.approx(f)
    assert man["2.ff.2.weight"].params["scale"] == pytest.approx(f)
    assert "scale" not in man["2.attn.to_q.weight"].params
    with pytest.raises(TypeError, match="torch"):
        t_fixup(initlab.nn.mlp(3, 4, 2))


# --- GradInit / MetaInit: torch autograd, and initlab.nn's finite differences checked against it ---

def _pair_nets():
    torch.set_default_dtype(torch.float64)
    try:
        net = initlab.nn.mlp(5, 7, 2, 3, activation="tanh", seed=0)
        tm = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 3))
    finally:
        torch.set_default_dtype(torch.float32)
    with torch.no_grad():
        for (_, a), (_, tp) in zip(net.named_parameters(), tm.named_parameters()):
            tp.copy_(torch.from_numpy(a))
    return net, tm


def test_nn_finite_differences_match_autograd():
    from torch.func import functional_call

    from initlab.schemes.proxy import _gq_nn, _gradinit_nn_objective, _NNParams

    net, tm = _pair_nets()
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    X, T = torch.from_numpy(x), torch.from_numpy(t)
    # MetaInit: the gradient quotient and <W, grad_W GQ> for each weight
    P = _NNParams(net, only_matrices=True)
    gq, grad = _gq_nn(P, P.get(), x, t, 1e-5)
    ws = [p for p in tm.parameters() if p.dim() >= 2]
    g = torch.autograd.grad(nn.functional.cross_entropy(tm(X), T), ws, create_graph=True)
    hg = torch.autograd.grad(sum((gi * gi).sum() / 2 for gi in g), ws, create_graph=True)
    q = sum(((gi - hi) / (gi + 1e-5 * (2 * (gi >= 0).double() - 1)) - 1).abs().sum() for gi, hi in zip(g, hg))
    q = q / sum(w.numel() for w in ws)
    ref = [float((w.detach() * gg).sum()) for w, gg in zip(ws, torch.autograd.grad(q, ws))]
    assert gq == pytest.approx(float(q.detach()), rel=1e-6)
    np.testing.assert_allclose(P.dots(P.get(), grad), ref, rtol=1e-5)
    # GradInit: objective and d objective / d alpha, both branches of the constraint, SGD and Adam
    P = _NNParams(net)
    w0 = P.get()
    al = np.array([0.9, 1.1, 0.8, 1.2, 1.0, 0.7])
    names = [n for n, _ in tm.named_parameters()]
    W0 = [p.detach().clone() for p in tm.parameters()]
    for opt in ("sgd", "adam"):
        for gamma in (100.0, 1e-3):
            obj, ga, cons = _gradinit_nn_objective(P, w0, al, x, t, 3, opt, 0.1, gamma, "cross_entropy")
            A = torch.tensor(al, requires_grad=True)
            th = {n: a * w for n, a, w in zip(names, A, W0)}
            G = torch.autograd.grad(nn.functional.cross_entropy(functional_call(tm, th, (X,)), T), list(th.values()),
                                    create_graph=True)
            flat = torch.cat([gg.reshape(-1) for gg in G])
            pn = flat.norm(2 if opt == "sgd" else 1)
            if pn.item() > gamma:
                o = pn
            else:
                up = list(G) if opt == "sgd" else [gg.sign().detach() for gg in G]
                th2 = {n: v - 0.1 * u for (n, v), u in zip(th.items(), up)}
                o = nn.functional.cross_entropy(functional_call(tm, th2, (X[:3],)), T[:3]) / 0.1
            o.backward()
            assert cons == (gamma < 1) and obj == pytest.approx(float(o), rel=1e-10)
            np.testing.assert_allclose(ga, A.grad.numpy(), rtol=1e-5, atol=1e-9)


def test_gradinit_metainit_torch():
    from initlab.schemes import gradinit, metainit

    rng = np.random.default_rng(0)
    X = torch.tensor(rng.normal(size=(256, 8)), dtype=torch.float32)
    Y = torch.tensor(np.argmax(X.numpy() @ rng.normal(size=(8, 4)), axis=1))

    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 16),
                             nn.ReLU(), nn.Linear(16, 4))

    m1, m2 = make(), make()
    bn_before = m1[1].running_mean.clone()
    w0 = {n: p.detach().clone() for n, p in m1.named_parameters()}
    r1 = gradinit(m1, (X, Y), optimizer="sgd", steps=60, lr=0.1, batch_size=32, seed=0)
    r2 = gradinit(m2, (X, Y), optimizer="sgd", steps=60, lr=0.1, batch_size=32, seed=0)
    obj = np.array(r1.objective)
    assert np.all(np.isfinite(obj)) and obj[-10:].mean() < 0.8 * obj[:10].mean()
    assert r1.objective == r2.objective and r1.scales == r2.scales
    assert torch.equal(m1[1].running_mean, bn_before)  # BN statistics restored
    for n, p in m1.named_parameters():
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p.detach(), w0[n] * r1.scales[n], rtol=1e-6, atol=0)

    def bad():
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() >= 2:
                    p.normal_(0, 1.0)
        return m

    from initlab.schemes import gradient_quotient

    m3, m4 = bad(), bad()
    before = gradient_quotient(m3, (64, 8), seed=123)
    r3 = metainit(m3, (64, 8), steps=60, seed=0)
    r4 = metainit(m4, (64, 8), steps=60, seed=0)
    after = gradient_quotient(m3, (64, 8), seed=123)
    assert np.all(np.isfinite(r3.objective)) and after < 0.7 * before
    # the constraint branch: a tiny gamma makes every step minimize the gradient norm
    r5 = gradinit(make(), (X, Y), optimizer="sgd", steps=5, gamma=1e-6, seed=0)
    assert r5.constrained == 5
    assert r3.objective == r4.objective
    assert set(r3.scales) == {"0.weight", "2.weight", "4.weight"}
    assert all(torch.isfinite(p).all() for p in m3.parameters())
