"""LSUV on torch.nn.Module (initlab.torch.lsuv): the paper's algorithm and the reference
implementations' bugs (anchors-api.md "LSUV"; user-needs.md §4)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
import initlab.torch as itorch  # noqa: E402


def _var(t):
    return float(t.detach().double().var(unbiased=False))


def _layer_outputs(model, x, types=(nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
    """Pre-activation outputs of every listed layer, recorded (cloned) the moment they return."""
    outs = []
    hs = [m.register_forward_hook(lambda mod, i, o, n=n: outs.append((n, o.detach().clone())))
          for n, m in model.named_modules() if isinstance(m, types)]
    flags = [(m, m.training) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        for h in hs:
            h.remove()
        for m, t in flags:
            m.training = t
    return outs


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_params(model, before):
    after = model.state_dict()
    return all(torch.equal(after[k], v) for k, v in before.items())


def _hooks(model):
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]


def _deep_mlp(depth=30, width=32, inplace=True):
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        with torch.no_grad():
            lin.weight.normal_(0.0, 0.01, generator=g)
            lin.bias.zero_()
        layers += [lin, nn.ReLU(inplace=inplace)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_deep_relu_mlp_reaches_unit_variance(orthogonal):
    model = _deep_mlp()
    assert model.training
    x = torch.randn(256, 32, generator=torch.Generator().manual_seed(1))
    before = _layer_outputs(model, x)
    assert _var(before[-1][1]) < 1e-20  # the signal has vanished
    rep = itorch.lsuv(model, x, orthogonal=orthogonal, seed=3)
    assert rep.converged and len(rep) == 30
    for name, out in _layer_outputs(model, x):
        assert abs(_var(out) - 1.0) < rep.tol, name
    assert rep[0].name == "0"
    if not orthogonal:  # every layer was rescaled, the first one included (LSUV-pytorch skips it)
        assert all(r.iterations >= 1 for r in rep.layers)
    assert model.training  # train/eval state restored


def _reference_lsuv(model, layer_names, x, tol, max_iter):
    """Algorithm 1, written plainly: full forward pass, np.var of the layer's output, W /= sqrt(var)."""
    mods = dict(model.named_modules())
    scales = {}
    for name in layer_names:
        s_total = 1.0
        for _ in range(max_iter):
            out = dict(_layer_outputs(model, x))[name]
            v = float(np.var(out.double().numpy()))
            if abs(v - 1.0) < tol:
                break
            with torch.no_grad():
                mods[name].weight.div_(math.sqrt(v))
            s_total /= math.sqrt(v)
        scales[name] = s_total
    return scales


def _small_mlp():
    torch.manual_seed(5)
    return nn.Sequential(nn.Linear(12, 20), nn.Tanh(), nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4)).double()


def _small_cnn():
    torch.manual_seed(6)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 3 * 3, 5)).double()


@pytest.mark.parametrize("make,shape", [(_small_mlp, (64, 12)), (_small_cnn, (16, 3, 8, 8))])
def test_matches_straightforward_algorithm_1(make, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3.0
    ours, ref = make(), make()
    # non-zero biases: a single division does not hit the target, so several iterations are compared
    names = [n for n, m in ours.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    rep = itorch.lsuv(ours, x, tol=0.01, max_iter=10, orthogonal=False)
    scales = _reference_lsuv(ref, names, x, tol=0.01, max_iter=10)
    assert [r.name for r in rep.layers] == names
    assert any(r.iterations > 1 for r in rep.layers)
    for r in rep.layers:
        assert r.scale == pytest.approx(scales[r.name], rel=1e-9)
    for (k, a), b in zip(ours.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=0, msg=k)


class _Reversed(nn.Module):
    """Registers ``late`` before ``early`` but calls ``early`` first."""

    def __init__(self):
        super().__init__()
        self.late = nn.Linear(16, 16)
        self.early = nn.Linear(8, 16)

    def forward(self, x):
        return self.late(torch.relu(self.early(x)))


def test_first_layer_is_rescaled():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))
    x = torch.randn(64, 8) * 7.0  # input variance 49: the orthonormal first layer keeps it
    rep = itorch.lsuv(model, x, seed=0)
    assert rep[0].name == "0" and rep[0].iterations >= 1 and rep[0].var_before > 10
    assert abs(_var(_layer_outputs(model, x)[0][1]) - 1) < 0.1


def test_execution_order_not_registration_order():
    torch.manual_seed(0)
    model = _Reversed()
    x = torch.randn(128, 8) * 5
    rep = itorch.lsuv(model, x, seed=0)
    assert [r.name for r in rep.layers] == ["early", "late"]
    outs = dict(_layer_outputs(model, x))
    assert abs(_var(outs["early"]) - 1) < 0.1 and abs(_var(outs["late"]) - 1) < 0.1


def test_inplace_relu_center_measures_pre_activation():
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(inplace=True), nn.Linear(32, 32), nn.ReLU(inplace=True),
                          nn.Linear(32, 3))
    x = torch.randn(200, 10, generator=torch.Generator().manual_seed(4)) + 2.0
    rep = itorch.lsuv(model, x, center=True, tol=0.01, seed=1)
    assert rep.converged
    for name, out in _layer_outputs(model, x):  # recorded before the in-place ReLU ran
        assert abs(float(out.double().mean())) < 0.01, name
        assert abs(_var(out) - 1) < 0.01, name


def test_no_bias_layers():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 6, bias=False))
    x = torch.randn(32, 3, 6, 6)
    before = _params(model)
    with pytest.raises(ValueError, match=r"layer 0 has no bias"):
        itorch.lsuv(model, x, center=True)
    assert _same_params(model, before)
    rep = itorch.lsuv(model, x, seed=0)
    assert rep.converged and [r.name for r in rep.layers] == ["0", "3"]


def _bn_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 5 * 5, 4))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batchnorm_modes(mode):
    model = _bn_model()
    with torch.no_grad():  # non-trivial running statistics, to tell the modes apart
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    model.train()
    model[1].eval()  # a mixed state must come back exactly
    flags = [m.training for m in model.modules()]
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    x = torch.randn(64, 3, 5, 5, generator=torch.Generator().manual_seed(3)) * 2
    rep = itorch.lsuv(model, x, batchnorm=mode, seed=0)
    assert rep.converged
    assert [m.training for m in model.modules()] == flags
    for k, v in buffers.items():
        assert torch.equal(model.state_dict()[k], v), k
    # re-measure in the mode LSUV used: every rescaled layer's output has unit variance
    model.eval()
    if mode == "train":
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train()
    outs = []
    hs = [m.register_forward_hook(lambda mod, i, o: outs.append(_var(o)))
          for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    assert all(abs(v - 1) < 0.1 for v in outs), outs
    # the two modes give different last-layer scales (batch vs running statistics)
    other = _bn_model()
    with torch.no_grad():
        for m in other.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(0.5)
                m.running_var.fill_(4.0)
    rep2 = itorch.lsuv(other, x, batchnorm="eval" if mode == "train" else "train", seed=0)
    assert rep2[-1].scale != pytest.approx(rep[-1].scale, rel=1e-3)


def test_zero_input_clear_error_and_everything_restored():
    model = _bn_model()
    user_calls = []
    model[3].register_forward_hook(lambda *a: user_calls.append(1))
    model.train()
    flags = [m.training for m in model.modules()]
    hooks = _hooks(model)
    before = _params(model)
    with pytest.raises(ValueError, match=r"layer 0 does not depend on its weights") as e:
        itorch.lsuv(model, torch.zeros(8, 3, 5, 5), seed=0)
    assert "weights restored" in str(e.value)
    assert _same_params(model, before)
    assert [m.training for m in model.modules()] == flags
    assert _hooks(model) == hooks
    n = len(user_calls)
    model(torch.randn(2, 3, 5, 5))
    assert len(user_calls) == n + 1  # the user's hook still works
    assert torch.backends.mha.get_fastpath_enabled()


def test_state_and_hooks_restored_after_success():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 2))
    model[0].register_forward_pre_hook(lambda *a: None)
    model.train()
    hooks, flags = _hooks(model), [m.training for m in model.modules()]
    rep = itorch.lsuv(model, torch.randn(64, 4), seed=0)
    assert rep.converged
    assert _hooks(model) == hooks and [m.training for m in model.modules()] == flags
    assert all(p.requires_grad for p in model.parameters())


def test_constant_output_names_layer():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8, bias=False))
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every ReLU unit dead: the last layer sees only zeros
    before = _params(model)
    with pytest.raises(ValueError, match=r"layer 2 does not depend on its weights"):
        itorch.lsuv(model, torch.randn(16, 4), orthogonal=False)
    assert _same_params(model, before)


def test_non_convergence_warns_and_reports():
    model = nn.Sequential(nn.Linear(6, 6))
    with torch.no_grad():
        model[0].bias.copy_(torch.arange(6.0) * 3)  # bias variance alone exceeds the target
    with pytest.warns(RuntimeWarning, match="did not converge"):
        rep = itorch.lsuv(model, torch.randn(50, 6), max_iter=3, orthogonal=False)
    assert not rep.converged and not rep[0].converged and rep[0].iterations == 3
    assert "NO" in rep.table() and rep.to_dict()["converged"] is False
    assert all(torch.isfinite(p).all() for p in model.parameters())


class _Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.block = nn.Linear(16, 16)  # used twice
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        h = torch.relu(self.block(h))
        h = torch.relu(self.block(h))
        return self.out(h)


def test_layer_called_twice_is_scaled_once_on_pooled_statistics():
    torch.manual_seed(0)
    model = _Shared()
    x = torch.randn(128, 8)
    rep = itorch.lsuv(model, x, seed=0, tol=0.05)
    assert [r.name for r in rep.layers] == ["inp", "block", "out"]
    assert rep[1].calls == 2
    outs = [o for n, o in _layer_outputs(model, x) if n == "block"]
    assert len(outs) == 2
    assert abs(_var(torch.cat([o.flatten() for o in outs])) - 1) < 0.05


def test_multihead_attention_output_projection():
    torch.manual_seed(0)
    model = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True)
    x = torch.randn(8, 10, 16)
    w0 = model.self_attn.out_proj.weight.clone()
    rep = itorch.lsuv(model, x, seed=0)
    names = [r.name for r in rep.layers]
    assert names == ["self_attn", "linear1", "linear2"]
    assert rep[0].kind == "MultiheadAttention" and rep[0].weight_shape == (16, 16)
    assert not torch.equal(model.self_attn.out_proj.weight, w0)
    model.eval()
    got = []
    h = model.self_attn.register_forward_hook(lambda m, i, o: got.append(o[0]))
    with torch.no_grad():
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            model(x)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    h.remove()
    assert abs(_var(got[0]) - 1) < 0.1


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 3)), (16, 2, 12)),
    (lambda: nn.Sequential(nn.Conv3d(2, 4, 3), nn.ReLU(), nn.Conv3d(4, 4, 1)), (4, 2, 5, 5, 5)),
    (lambda: nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=2), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2)), (8, 3, 4, 4)),
])
def test_conv_family(make, shape):
    model = make()
    x = torch.randn(*shape)
    rep = itorch.lsuv(model, x, seed=0)
    assert rep.converged and len(rep) == 2


def test_iterable_of_batches_fresh_batch_each_pass():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    seen = []
    model[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].data_ptr()))
    batches = [(torch.randn(32, 4), torch.zeros(32)) for _ in range(3)]  # (x, y) pairs, as a DataLoader
    with pytest.warns(RuntimeWarning, match="did not converge"):  # a tolerance below the batch-to-batch noise
        rep = itorch.lsuv(model, batches, seed=0, tol=1e-3, pool_batches=1)
    assert rep.forward_passes == len(seen) >= 4
    ptrs = {b[0].data_ptr() for b in batches}
    assert set(seen) == ptrs  # cycled through all of them
    assert seen[0] != seen[1]


def test_one_shot_iterator_running_out_warns():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    gen = (torch.randn(16, 4) for _ in range(2))
    with pytest.warns(RuntimeWarning, match="ran out"):
        itorch.lsuv(model, gen, seed=0)


def test_unused_layer_is_skipped_with_warning():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.unused = nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x)

    model = M()
    w = model.unused.weight.clone()
    with pytest.warns(RuntimeWarning, match="unused"):
        rep = itorch.lsuv(model, torch.randn(16, 4), seed=0)
    assert rep.skipped == ["unused"] and [r.name for r in rep.layers] == ["a"]
    assert torch.equal(model.unused.weight, w)


def test_seed_reproducible_and_dispatch_from_initlab_lsuv():
    import copy

    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(0))
    a = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    b, c = copy.deepcopy(a), copy.deepcopy(a)
    initlab.lsuv(a, x, seed=11)  # initlab.lsuv forwards torch modules to initlab.torch.lsuv
    itorch.lsuv(b, x, seed=11)
    itorch.lsuv(c, x, seed=12)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a[0].weight, c[0].weight)


def test_bfloat16_model():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).to(torch.bfloat16)
    x = torch.randn(128, 16).to(torch.bfloat16)
    rep = itorch.lsuv(model, x, seed=0)
    assert rep.converged
    for _, out in _layer_outputs(model, x):
        assert abs(_var(out) - 1) < 0.1


def test_bad_options_rejected_before_any_write():
    model = nn.Sequential(nn.Linear(4, 4))
    before = _params(model)
    x = torch.randn(8, 4)
    for kw in ({"tol": 0}, {"tol": float("nan")}, {"max_iter": -1}, {"target_var": 0.0}, {"batchnorm": "foo"},
               {"modules": ["nope"]}):
        with pytest.raises(ValueError):
            itorch.lsuv(model, x, **kw)
    with pytest.raises(TypeError):
        itorch.lsuv(model, x, seed="x")
    assert _same_params(model, before)
    with pytest.raises(ValueError, match="no layer LSUV can rescale"):
        itorch.lsuv(nn.Sequential(nn.ReLU()), x)


def test_modules_restricts_layers_and_target_var():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
    w0 = model[0].weight.clone()
    rep = itorch.lsuv(model, torch.randn(64, 4), modules=["2"], target_var=4.0, seed=0)
    assert [r.name for r in rep.layers] == ["2"] and torch.equal(model[0].weight, w0)
    assert abs(rep[0].var_after - 4.0) < 0.1


def test_stop_early_gives_the_same_result():
    import copy

    torch.manual_seed(2)
    a = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 2)).double()
    b = copy.deepcopy(a)
    x = torch.randn(50, 6, dtype=torch.float64)
    ra = itorch.lsuv(a, x, seed=0, stop_early=True)
    rb = itorch.lsuv(b, x, seed=0, stop_early=False)
    assert ra.to_dict() == rb.to_dict()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_tied_weight_layer_left_untouched():
    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 8)
            self.body = nn.Linear(8, 8)
            self.head = nn.Linear(8, 20, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, idx):
            return self.head(torch.relu(self.body(self.emb(idx))))

    model = LM()
    emb = model.emb.weight.clone()
    with pytest.warns(RuntimeWarning, match=r"head\.weight: tied to emb, which LSUV does not rescale"):
        rep = itorch.lsuv(model, torch.randint(0, 20, (16, 5)), seed=0)
    assert [r.name for r in rep.layers] == ["body"] and rep.skipped == ["head"]
    assert list(rep.not_scaled) == ["head.weight"]  # one parameter, one entry, under the layer's name
    assert "head.weight: tied to emb" in str(rep)
    assert torch.equal(model.emb.weight, emb)


def test_lsuv_quiet_about_norms_tokens_and_layer_scales_it_is_not_meant_to_scale():
    # issue 18 item 5: timm's BatchNormAct2d (a BatchNorm2d with act/drop children) and a ViT's
    # tokens / a layer scale are listed in report.not_scaled with the reason, but not warned about
    import warnings

    from _zoo import ZOO

    for name, listed in (("timm_efficientnet_b0", []), ("timm_vit", ["cls_token", "pos_embed"]),
                         ("timm_convnext", ["stages.0.blocks.0.gamma"])):
        z = ZOO[name]
        m = z.build()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            rep = itorch.lsuv(m, z.example_input(), seed=0)
        assert not any("BatchNormAct2d" in v for v in rep.not_scaled.values()), rep.not_scaled
        for q in listed:
            assert q in rep.not_scaled and "not a layer's weight" in rep.not_scaled[q], rep.not_scaled
    # a bare matrix nobody recognizes is still warned about
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)
            self.mystery = nn.Parameter(torch.randn(8, 8))

        def forward(self, x):
            return self.lin(x) @ torch.tanh(self.mystery)

    with pytest.warns(RuntimeWarning, match="mystery: bare parameter"):
        itorch.lsuv(Odd(), torch.randn(32, 8, generator=torch.Generator().manual_seed(0)), seed=0)
