"""initlab.schemes on initlab.nn networks: each scheme against its paper's formula."""

from __future__ import annotations

import math

import numpy as np
import pytest

import initlab
from initlab import nn
from initlab.lsuv import named_seeds
from initlab.nn.layers import ScalarBias
from initlab.schemes import fixup, rezero, scaled_residual, skipinit, zero_init_residual


def _expected_normal(name, shape, std, seed):
    a = np.empty(shape)
    initlab.normal_(a, 0.0, std, seed=named_seeds(seed)(name))
    return a


def _res_mlp(n_blocks, width=16, norm=None, out=3, seed=0):
    return nn.residual_mlp(8, width, n_blocks, out, norm=norm, seed=seed)


def test_fixup_nn_formula_exact():
    net = _res_mlp(4)
    man = fixup(net, seed=7)
    L, m = 4, 2
    for b in range(1, 5):
        blk = net[b]
        assert isinstance(blk, nn.Residual) and float(blk.alpha) == 1.0 and float(blk.bias) == 0.0
        kinds = [type(x).__name__ for x in blk.branch]
        # a scalar bias before each activation and each linear layer (Fixup, step 3)
        assert kinds == ["ScalarBias", "ReLU", "ScalarBias", "Linear", "ScalarBias", "ReLU", "ScalarBias", "Linear"]
        first, last = blk.branch[3], blk.branch[7]
        std = math.sqrt(2 / 16) * L ** (-1 / (2 * m - 2))
        e = man[f"{b}.branch.3.weight"]
        assert e.params["std"] == pytest.approx(std, rel=1e-15) and e.params["scale"] == 0.5 and e.params["fan_out"] == 16
        np.testing.assert_array_equal(first.weight, _expected_normal(f"{b}.branch.3.weight", (16, 16), std, 7))
        assert not last.weight.any() and not last.bias.any() and not first.bias.any()
        assert man[f"{b}.branch.7.weight"].role == "residual_out"
        assert man[f"{b}.alpha"].params == {"value": 1.0}
    # classifier zero; stem He (fan_out) unscaled
    assert not net[5].weight.any() and not net[5].bias.any() and man["5.weight"].role == "head"
    np.testing.assert_array_equal(net[0].weight, _expected_normal("0.weight", (16, 8), math.sqrt(2 / 16), 7))
    # every parameter of the model is in the manifest
    assert set(man.names()) == {n for n, _ in net.named_parameters()}
    assert np.all(net(np.ones((2, 8))) == 0)
    assert "fixup" in str(man) and "L^(-1/(2m-2))" in man.table()


def test_fixup_three_layer_branch_and_fan_in():
    blocks = [nn.Residual(nn.Sequential(nn.Linear(6, 6, seed=i), nn.ReLU(), nn.Linear(6, 6, seed=i), nn.ReLU(),
                                        nn.Linear(6, 6, seed=i))) for i in range(9)]
    net = nn.Sequential(*blocks)
    man = fixup(net, seed=1, mode="fan_in", add_scalars=False)
    f = 9 ** -0.25  # L^(-1/(2m-2)) with m = 3
    for b in range(9):
        for k in (0, 2):
            assert man[f"{b}.branch.{k}.weight"].params["std"] == pytest.approx(math.sqrt(2 / 6) * f, rel=1e-15)
        assert not net[b].branch[4].weight.any()
        assert net[b].bias is None  # add_scalars=False adds nothing
    # no classifier: the last layer is inside a block


def test_fixup_errors_list_every_offender():
    net = nn.Sequential(nn.Residual(nn.Sequential(nn.ReLU(), nn.Linear(4, 4))), nn.Residual(nn.Linear(4, 4)))
    with pytest.raises(ValueError, match=r"0 \(m=1\), 1 \(m=1\)"):
        fixup(net)
    with pytest.raises(ValueError, match="no residual block"):
        fixup(nn.mlp(3, 4, 2))
    with pytest.raises(TypeError):
        fixup(object())
    with pytest.raises(ValueError, match="mode"):
        fixup(net, mode="fan_avg")


def test_skipinit_rezero_zero_init_nn():
    net = _res_mlp(3, norm="layer")
    man = skipinit(net, alpha=0.25, norm="keep")
    assert [float(net[i].alpha) for i in (1, 2, 3)] == [0.25] * 3
    assert man["2.alpha"].params["value"] == 0.25 and man["2.alpha"].role == "scalar"
    assert any(isinstance(x, nn.LayerNorm) for x in net[1].branch)
    man = rezero(net)
    assert [float(net[i].alpha) for i in (1, 2, 3)] == [0.0] * 3
    assert not any(isinstance(x, nn.LayerNorm) for x in net[1].branch)  # ReZero removes LayerNorm
    assert any("removed" in x.reason for x in man.left_alone)
    x = np.random.default_rng(0).normal(size=(4, 8))
    np.testing.assert_array_equal(net[1](net[0](x)), net[0](x))  # identity at init

    net = _res_mlp(2, norm="batch")
    man = zero_init_residual(net)
    for i in (1, 2):
        norms = [m for m in net[i].branch if isinstance(m, nn.BatchNorm)]
        assert not norms[-1].weight.any() and norms[0].weight.all()
        assert man[f"{i}.branch.3.weight"].params == {"value": 0.0}
    assert len(man) == 2  # only the last norm's gamma of each branch
    with pytest.raises(ValueError, match="none in: 1, 2"):
        zero_init_residual(_res_mlp(2))


def test_scaled_residual_nn():
    net = _res_mlp(6)
    man = scaled_residual(net, std=0.02, seed=3)
    s = 0.02 / math.sqrt(6)
    for b in range(1, 7):
        e = man[f"{b}.branch.3.weight"]
        assert e.params["std"] == pytest.approx(s, rel=1e-15) and e.params["R"] == 6
        np.testing.assert_array_equal(net[b].branch[3].weight, _expected_normal(f"{b}.branch.3.weight", (16, 16), s, 3))
    assert "1.branch.1.weight" not in man and len(man) == 6  # only the residual outputs
    man = scaled_residual(net, std=0.02, n_layers=3)  # R = 2N
    assert man["1.branch.3.weight"].params["R"] == 6
    man = scaled_residual(net, rule="deepnet", seed=0)
    beta = (8 * 6) ** -0.25
    assert man["1.branch.1.weight"].params["gain"] == pytest.approx(beta)
    assert man["1.branch.1.weight"].params["std"] == pytest.approx(beta * math.sqrt(2 / 32))
    assert man["1.branch.1.weight"].params["residual_alpha"] == pytest.approx((2 * 6) ** 0.25)
    with pytest.raises(ValueError, match="rule"):
        scaled_residual(net, rule="gpt3")


def test_residual_bias_and_scalar_bias_backward():
    rng = np.random.default_rng(1)
    blk = nn.Residual(nn.Sequential(ScalarBias(0.3), nn.Linear(5, 5, seed=0), nn.Tanh()), alpha=0.7, bias=-0.2)
    x = rng.normal(size=(3, 5))
    g = rng.normal(size=(3, 5))
    blk.zero_grad()
    blk(x)
    dx = blk.backward(g)
    eps = 1e-6

    def loss():
        return float(np.sum(blk(x) * g))

    for arr, grad in ((blk.alpha, blk.grads["alpha"]), (blk.bias, blk.grads["bias"]),
                      (blk.branch[0].bias, blk.branch[0].grads["bias"])):
        old = float(arr)
        arr[...] = old + eps
        up = loss()
        arr[...] = old - eps
        dn = loss()
        arr[...] = old
        assert float(grad) == pytest.approx((up - dn) / (2 * eps), rel=1e-6)
    xp = x.copy()
    xp[0, 0] += eps
    up = float(np.sum(blk(xp) * g))
    xp[0, 0] -= 2 * eps
    dn = float(np.sum(blk(xp) * g))
    assert dx[0, 0] == pytest.approx((up - dn) / (2 * eps), rel=1e-6)


def _depth_profile(net, x):
    tr = initlab.analyze(net, x, seed=0)
    res = [lay for lay in tr.layers if lay.type == "Residual"]
    return np.array([lay.post["ms"] for lay in res]), np.array([lay.grad_post["ms"] for lay in res])


@pytest.mark.parametrize("scheme", ["fixup", "skipinit", "rezero"])
def test_fifty_blocks_bounded_with_scheme_and_not_with_he(scheme):
    x = np.random.default_rng(0).normal(size=(64, 32))
    he = nn.residual_mlp(32, 32, 50, 10, norm=None, seed=0)
    nn.init_weights(he, "kaiming_normal", nonlinearity="relu", seed=0)
    fwd_he, grad_he = _depth_profile(he, x)
    # plain He: each block roughly doubles the signal's mean square -> grows with depth
    assert fwd_he[-1] / fwd_he[0] > 1e6 and grad_he[0] / grad_he[-1] > 1e6

    net = nn.residual_mlp(32, 32, 50, 10, norm=None, seed=0)
    {"fixup": lambda m: fixup(m, seed=0), "skipinit": skipinit, "rezero": rezero}[scheme](net)
    if scheme == "fixup":
        net[-1].weight[...] = initlab.normal_(np.empty((10, 32)), 0, 0.1, seed=1)  # a non-zero head to carry gradients
    fwd, grad = _depth_profile(net, x)
    assert np.all(np.isfinite(fwd)) and np.all(np.isfinite(grad))
    assert fwd.max() / fwd.min() < 2.0 and grad.max() / grad.min() < 2.0


# --- GradInit / MetaInit on initlab.nn (Hessian-vector products by differences of gradients) ---

def _toy_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 8))
    return X, np.argmax(X @ rng.normal(size=(8, 4)), axis=1)


@pytest.mark.parametrize("optimizer,steps,lr", [("sgd", 100, 0.1), ("adam", 60, 0.05)])
def test_gradinit_nn_reduces_objective_reproducibly(optimizer, steps, lr):
    from initlab.schemes import gradinit

    X, Y = _toy_data()
    runs = []
    for _ in range(2):
        net = nn.mlp(8, 16, 3, 4, seed=0)
        w0 = {n: p.copy() for n, p in net.named_parameters()}
        rep = gradinit(net, (X, Y), steps=steps, seed=0, optimizer=optimizer, batch_size=32, lr=lr)
        runs.append((rep, net, w0))
    (rep, net, w0), (rep2, net2, _) = runs
    obj = np.array(rep.objective)
    assert len(obj) == steps and np.all(np.isfinite(obj))
    assert obj[-10:].mean() < 0.8 * obj[:10].mean()
    assert rep.objective == rep2.objective and rep.scales == rep2.scales  # seeded
    for n, p in net.named_parameters():
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p, rep.scales[n] * w0[n], rtol=1e-12)  # parameters are alpha_i * W_i
        if p.ndim >= 2:
            assert rep.scales[n] >= 0.01  # alpha_min for weights
    assert rep.manifest[n].params["scale"] == rep.scales[n]
    text = str(rep)
    assert "gradinit" in text and "objective" in text and "0.weight" in text


def test_metainit_nn_reduces_gradient_quotient():
    from initlab.schemes import metainit

    def bad_net():
        net = nn.mlp(8, 16, 3, 4, activation="tanh", seed=0)
        return nn.init_weights(net, "normal", std=1.0, seed=0)  # far too large for tanh

    from initlab.schemes import gradient_quotient

    net, net2 = bad_net(), bad_net()
    before = gradient_quotient(net, (64, 8), seed=123)
    rep = metainit(net, (64, 8), steps=60, seed=0)
    rep2 = metainit(net2, (64, 8), steps=60, seed=0)
    after = gradient_quotient(net, (64, 8), seed=123)
    assert np.all(np.isfinite(rep.objective)) and after < 0.7 * before
    assert rep.objective == rep2.objective
    assert set(rep.scales) == {"0.weight", "2.weight", "4.weight", "6.weight"}  # biases excluded
    for n, p in net.named_parameters():
        assert np.all(np.isfinite(p))
    assert all(s > 0 for s in rep.scales.values())
    with pytest.raises(ValueError, match="steps=0"):
        metainit(net, (4, 8), steps=0)
    with pytest.raises(ValueError, match="lr=-1"):
        initlab.schemes.gradinit(net, _toy_data(), lr=-1)
