"""initlab.torch.init_module (every parameter, name-derived streams, torch's default
distributions (KS), low-precision modules, zero-copy, validation before writing) and
initlab.torch.analyze (the same Trace as initlab.analyze)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
scipy_stats = pytest.importorskip("scipy.stats")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.torch import METHODS, init_module  # noqa: E402


def _model(extra=False):
    torch.manual_seed(0)
    layers = [
        ("emb", nn.Embedding(50, 16, padding_idx=0)),
        ("attn", nn.MultiheadAttention(16, 4, bias=True)),
        ("fc1", nn.Linear(16, 32)),
        ("conv", nn.Conv1d(4, 8, 3)),
        ("tconv", nn.ConvTranspose2d(3, 5, 3)),
        ("rnn", nn.LSTM(8, 6)),
    ]
    if extra:
        layers.insert(3, ("added", nn.Linear(32, 32)))
    return nn.ModuleDict(dict(layers))


def _snap(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


@pytest.mark.parametrize("method", ["kaiming_normal", "torch_default", "xavier_uniform", "orthogonal"])
def test_every_parameter_changed_in_place(method):
    m = _model()
    for p in m.parameters():  # start from values no rule produces (in_proj_bias is 0 by default)
        with torch.no_grad():
            p.fill_(0.123)
    ids = {k: (id(p), p.data_ptr()) for k, p in m.named_parameters()}
    init_module(m, method, seed=1)
    for k, p in m.named_parameters():
        assert not torch.all(p == 0.123), k
        assert (id(p), p.data_ptr()) == ids[k], k  # zero-copy: same Parameter, same storage
        assert p.requires_grad


def test_streams_stable_when_a_layer_is_added():
    a, b = _model(), _model(extra=True)
    init_module(a, "kaiming_uniform", seed=7)
    init_module(b, "kaiming_uniform", seed=7)
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert set(pb) - set(pa) == {"added.weight", "added.bias"}
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    # the numbers of a name are those of key = seed, stream = blake2b-8(name) with the top bit cleared
    ref = torch.empty(32, 16)
    from initlab.lsuv import named_seeds

    initlab.kaiming_uniform_(ref, seed=named_seeds(7)("fc1.weight"))
    assert torch.equal(ref, pa["fc1.weight"])


def test_seed_semantics():
    a, b, c = _model(), _model(), _model()
    init_module(a, seed=3)
    init_module(b, seed=3)
    init_module(c, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.fc1.weight, c.fc1.weight)
    g = initlab.Generator(5)
    init_module(a, seed=g)
    init_module(b, seed=g)  # a Generator gives each call a new stream
    assert not torch.equal(a.fc1.weight, b.fc1.weight)
    assert g.streams_used == 2
    g2 = initlab.Generator(5)
    init_module(c, seed=g2)
    assert torch.equal(a.fc1.weight, c.fc1.weight)


def _ks(a, b):
    return scipy_stats.ks_2samp(a.detach().double().flatten().numpy(), b.detach().double().flatten().numpy()).pvalue


@pytest.mark.parametrize("make,names", [
    (lambda: nn.Linear(300, 200), ["weight", "bias"]),
    (lambda: nn.Conv2d(16, 32, 3), ["weight", "bias"]),
    (lambda: nn.ConvTranspose2d(20, 12, 3), ["weight", "bias"]),
    (lambda: nn.Embedding(400, 64), ["weight"]),
    (lambda: nn.MultiheadAttention(64, 4, add_bias_kv=True), ["in_proj_weight", "out_proj.weight", "bias_k"]),
    (lambda: nn.LSTM(32, 64), ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"]),
])
def test_torch_default_matches_torch_distribution(make, names):
    torch.manual_seed(123)
    ref = make()
    ours = make()
    init_module(ours, "torch_default", seed=9)
    rp, op = dict(ref.named_parameters()), dict(ours.named_parameters())
    for n in names:
        assert _ks(rp[n], op[n]) > 1e-3, n


def test_torch_default_deterministic_parts():
    m = nn.ModuleDict({"ln": nn.LayerNorm(8), "bn": nn.BatchNorm2d(4), "gn": nn.GroupNorm(2, 4),
                       "emb": nn.Embedding(10, 4, padding_idx=3), "mha": nn.MultiheadAttention(8, 2),
                       "prelu": nn.PReLU(3, init=0.1)})
    for p in m.parameters():
        with torch.no_grad():
            p.fill_(0.7)
    running = m.bn.running_var.clone().fill_(2.0)
    m.bn.running_var.copy_(running)
    init_module(m, "torch_default", seed=0)
    for k in ("ln", "bn", "gn"):
        assert torch.all(getattr(m, k).weight == 1) and torch.all(getattr(m, k).bias == 0)
    assert torch.all(m.emb.weight[3] == 0) and m.emb.weight[4].abs().sum() > 0
    assert torch.all(m.mha.in_proj_bias == 0) and torch.all(m.mha.out_proj.bias == 0)
    assert torch.allclose(m.prelu.weight, torch.full((3,), 0.1))
    assert torch.equal(m.bn.running_var, running)  # buffers untouched
    bound = math.sqrt(6.0 / (8 + 24))  # xavier_uniform on the (3E, E) in-projection, as torch
    assert float(m.mha.in_proj_weight.detach().abs().max()) <= bound


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_module(dtype):
    m32 = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Conv2d(2, 3, 3))
    mlow = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Conv2d(2, 3, 3)).to(dtype)
    init_module(m32, "kaiming_normal", seed=2)
    _, man = init_module(mlow, "kaiming_normal", seed=2, return_manifest=True)
    low = dict(mlow.named_parameters())
    for e in man.entries:
        q = low[e.name]
        assert q.dtype == dtype
        # each parameter is initlab's own low-precision fill (16-bit normal_ draws 16 bits per
        # value) on the parameter's named stream; constants are exact
        want = torch.empty(e.shape, dtype=dtype)
        if e.init == "normal":
            initlab.normal_(want, e.params["mean"], e.params["std"], seed=initlab.Generator(2, stream=e.stream))
        else:
            want.fill_(e.params["value"])
        assert torch.equal(want, q), e.name
    # the same distribution as the float32 module (4096 values: the std agrees within 6%)
    w32, wlow = m32[0].weight.double(), mlow[0].weight.double()
    assert abs(wlow.std().item() / w32.std().item() - 1) < 0.06


def test_errors_leave_parameters_untouched():
    m = _model()
    before = _snap(m)
    with pytest.raises(ValueError, match="unknown recipe"):
        init_module(m, "he")
    with pytest.raises(ValueError):
        init_module(m, "kaiming_normal", nonlinearity="gelu", seed=0)
    with pytest.raises(ValueError):
        init_module(m, "normal", std=-1.0, seed=0)
    with pytest.raises(TypeError):
        init_module(m, seed="abc")

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.scale = nn.Parameter(torch.ones(4))

    c = Custom()
    cb = _snap(c)
    with pytest.raises(ValueError, match="scale"):
        init_module(c, "torch_default", seed=0)
    assert all(torch.equal(cb[k], v) for k, v in c.named_parameters())
    init_module(c, "torch_default", seed=0, unknown="skip")
    assert torch.equal(c.scale, cb["scale"]) and not torch.equal(c.fc.weight, cb["fc.weight"])
    for k, v in m.named_parameters():
        assert torch.equal(before[k], v), k


def test_tied_parameter_filled_once():
    emb = nn.Embedding(20, 8)
    head = nn.Linear(8, 20, bias=False)
    head.weight = emb.weight
    m = nn.ModuleDict({"emb": emb, "head": head})
    init_module(m, "torch_default", seed=0)
    assert m.head.weight is m.emb.weight
    assert abs(float(m.emb.weight.detach().std()) - 1.0) < 0.2  # the Embedding rule (first name), N(0, 1)


def test_methods_listed():
    assert "torch_default" in METHODS and "kaiming_normal" in METHODS
    m = nn.Linear(16, 16)
    for method in METHODS:
        init_module(m, method, seed=0)
        assert torch.isfinite(m.weight).all()


def test_kwargs_reach_initializer():
    m = nn.Linear(1000, 500)
    init_module(m, "kaiming_normal", seed=0, mode="fan_out", nonlinearity="relu")
    assert float(m.weight.detach().std()) == pytest.approx(math.sqrt(2.0 / 500), rel=0.02)
    init_module(m, "trunc_normal", seed=0, std=0.02, a=-0.04, b=0.04)
    assert float(m.weight.detach().abs().max()) <= 0.04
    assert float(m.bias.detach().abs().max()) == 0.0  # biases 0 by default
    init_module(m, "trunc_normal", seed=0, std=0.02, a=-0.04, b=0.04, bias="torch_default")
    assert 0 < float(m.bias.detach().abs().max()) <= 1 / math.sqrt(1000)  # torch's rule, U(±1/sqrt(fan_in))


# ---- initlab.torch.analyze -------------------------------------------------------------------


def test_analyze_matches_initlab_analyze_on_the_same_network():
    from initlab import nn as inn

    torch.manual_seed(0)
    tm = nn.Sequential(nn.Linear(6, 16), nn.ReLU(inplace=True), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    nm = inn.Sequential(inn.Linear(6, 16), inn.ReLU(), inn.Linear(16, 16), inn.Tanh(), inn.Linear(16, 3))
    for (k, p), q in zip(tm.named_parameters(), nm.parameters()):
        q[...] = p.detach().numpy()
    x = np.random.default_rng(1).standard_normal((32, 6))
    grads_before = [p.grad for p in tm.parameters()]
    t_torch = itorch_analyze(tm, torch.from_numpy(x), seed=3)
    t_nn = initlab.analyze(nm, x, seed=3, predict=False)
    assert [p.grad for p in tm.parameters()] == grads_before  # .grad restored (None)
    assert len(t_torch) == len(t_nn) == 3
    assert t_torch.loss == pytest.approx(t_nn.loss, rel=1e-12)
    for a, b in zip(t_torch.layers, t_nn.layers):
        assert (a.name, a.type, a.activation, a.shape) == (b.name, b.type, b.activation, b.shape)
        for attr in ("pre", "post", "grad_pre", "grad_post", "weight_grad", "weight"):
            da, db = getattr(a, attr), getattr(b, attr)
            for key in ("mean", "var", "abs_max"):
                assert da[key] == pytest.approx(db[key], rel=1e-9, abs=1e-15), (a.name, attr, key)
        assert a.dead_fraction == b.dead_fraction and a.saturated_fraction == b.saturated_fraction
    assert "Linear" in t_torch.table()


def test_analyze_conv_mha_and_bf16():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8))
    tr = itorch_analyze(model, torch.randn(5, 3, 6, 6))
    assert [l.type for l in tr.layers] == ["Conv2d", "Linear"] and tr.layers[0].activation == "ReLU"
    assert tr.layers[0].grad_pre is not None and tr.layers[0].dead_fraction is not None
    enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    tr = itorch_analyze(enc, torch.randn(2, 5, 8))
    assert tr.layers[0].type == "MultiheadAttention" and tr.layers[0].shape == (2, 5, 8)
    bf = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).to(torch.bfloat16)
    tr = itorch_analyze(bf, torch.randn(3, 4).to(torch.bfloat16))
    assert tr.layers[0].pre["count"] == 12


def itorch_analyze(*a, **k):
    from initlab.torch import analyze

    return analyze(*a, **k)


def test_lazy_and_device_errors():
    m = nn.Sequential(nn.Linear(4, 4), nn.LazyLinear(3))
    before = m[0].weight.clone()
    with pytest.raises(ValueError, match="not materialized"):
        init_module(m, seed=0)
    assert torch.equal(m[0].weight, before)
    m(torch.randn(2, 4))
    init_module(m, seed=0)
    assert not torch.equal(m[0].weight, before)
