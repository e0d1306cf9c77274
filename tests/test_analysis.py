"""initlab.analyze / Trace / diagnose, mean-field predictions and the Jacobian spectrum."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

import initlab
from initlab import nn
from initlab.analysis import jacobian_spectrum, predict


def tiny():
    net = nn.Sequential(nn.Linear(2, 3, seed=0), nn.ReLU(), nn.Linear(3, 1, seed=0))
    net[0].weight[...] = [[1, -1], [0.5, 2], [-1, -1]]
    net[0].bias[...] = [0, 0.5, 0.1]
    net[2].weight[...] = [[1, 2, -1]]
    net[2].bias[...] = [0.3]
    return net, np.array([[1.0, 2.0], [-1.0, 0.5]])


def close(d, values):
    v = np.asarray(values, dtype=np.float64)
    assert d["count"] == v.size
    assert d["mean"] == pytest.approx(v.mean(), abs=1e-14)
    assert d["var"] == pytest.approx(v.var(), rel=1e-13, abs=1e-14)
    assert d["ms"] == pytest.approx(np.mean(v**2), rel=1e-13)
    assert d["abs_max"] == np.abs(v).max()
    assert d["zero_fraction"] == np.mean(v == 0)


def test_tiny_network_by_hand():
    net, x = tiny()
    t = initlab.analyze(net, x, loss="sum")
    assert [(r.name, r.type, r.activation) for r in t.layers] == [("0", "Linear", "ReLU"), ("2", "Linear", None)]
    r1, r2 = t.layers
    # Worked by hand: pre1 = x W1^T + b1, post1 = relu(pre1), dL/dy = 1.
    close(r1.pre, [-1, 5, -2.9, -1.5, 1, 0.6])
    close(r1.post, [0, 5, 0, 0, 1, 0.6])
    close(r1.grad_post, [1, 2, -1, 1, 2, -1])
    close(r1.grad_pre, [0, 2, 0, 0, 2, -1])
    close(r1.weight_grad, [0, 0, 0, 5, 1, -0.5])
    close(r2.pre, [10.3, 1.7])
    close(r2.grad_pre, [1, 1])
    close(r2.weight_grad, [0, 6, 0.6])
    assert r1.dead_fraction == pytest.approx(1 / 3)  # unit 0 is zero for both samples
    # each layer's input and dL/d(input); the gain is the weight part's mean square over the input's
    close(r1.input, x.ravel())
    close(r2.input, [0, 5, 0, 0, 1, 0.6])
    close(r2.grad_input, [1, 2, -1, 1, 2, -1])
    wx1 = np.array([-1, 4.5, -3, -1.5, 0.5, 0.5])  # pre1 - b1
    assert r1.gain == pytest.approx(np.mean(wx1**2) / np.mean(x**2), rel=1e-13)
    assert r2.gain == pytest.approx(np.mean(np.array([10.0, 1.4]) ** 2) / np.mean(np.array([0, 5, 0, 0, 1, 0.6]) ** 2))
    assert r1.reduction is None and r2.reduction is None
    assert t.loss == pytest.approx(12.0)
    close(t.input, x.ravel())
    # "random" loss: dL/dy is a fixed standard normal draw; "mean_square": y / size
    g = np.random.default_rng(5).standard_normal((2, 1))
    tr = initlab.analyze(net, x, loss="random", seed=5)
    close(tr.layers[1].grad_pre, g.ravel())
    tm = initlab.analyze(net, x, loss="mean_square")
    close(tm.layers[1].grad_pre, [10.3 / 2, 1.7 / 2])
    tc = initlab.analyze(net, x, loss=lambda y: (0.0, 3 * np.ones_like(y)))
    close(tc.layers[1].grad_pre, [3, 3])
    tf = initlab.analyze(net, x, backward=False)
    assert tf.loss is None and tf.layers[0].grad_pre is None
    with pytest.raises(ValueError, match="unknown loss 'l1'"):
        initlab.analyze(net, x, loss="l1")


def test_table_dict_and_plot(tmp_path):
    net = nn.mlp(4, 6, depth=3, activation="tanh", seed=1)
    t = initlab.analyze(net, np.random.default_rng(0).standard_normal((8, 4)))
    lines = t.table().splitlines()
    assert len(lines) == 2 + 3 and "pre var" in lines[0] and "q pred" in lines[0]
    assert len({len(line) for line in lines}) == 1  # aligned
    json.dumps(t.to_dict())
    png = tmp_path / "spp.png"
    pytest.importorskip("matplotlib")
    fig = t.plot(png, title="test")
    assert png.stat().st_size > 1000 and len(fig.axes) == 2


def test_plot_without_matplotlib(monkeypatch):
    t = initlab.analyze(nn.mlp(2, 3, depth=1, seed=0), np.ones((1, 2)))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'initlab\[plot\]'"):
        t.plot()


def relu_net(sigma=None, depth=30, width=64, seed=0):
    net = nn.mlp(width, width, depth=depth, seed=seed)
    if sigma is None:
        nn.init_weights(net, "kaiming_normal", nonlinearity="relu", seed=seed + 1)
    else:
        nn.init_weights(net, "normal", std=sigma, seed=seed + 1)
    return net


X = np.random.default_rng(0).standard_normal((32, 64))


def test_diagnose_vanishing():
    f = initlab.analyze(relu_net(0.01), X).diagnose()
    kinds = {x.kind: x for x in f}
    assert "vanishing_forward" in kinds and "vanishing_gradient" in kinds
    v = kinds["vanishing_forward"]
    # Each layer multiplies the mean square by sigma^2 * width / 2 = 0.0032.
    assert v.evidence["growth_per_layer"] == pytest.approx(0.0032, rel=0.3)
    # judged against the first layer's output: the drop is past x0.01 from the second layer on
    assert v.evidence["reference"] == "0" and v.index == 2 and v.layer == "2"
    assert v.evidence["depth"] == 29
    assert "exploding_forward" not in kinds


def test_diagnose_exploding():
    f = initlab.analyze(relu_net(1.0), X).diagnose()
    kinds = {x.kind: x for x in f}
    assert "exploding_forward" in kinds and "exploding_gradient" in kinds
    assert kinds["exploding_forward"].evidence["growth_per_layer"] == pytest.approx(32, rel=0.3)  # width / 2


def test_diagnose_passes_he_relu():
    assert initlab.analyze(relu_net(None, depth=20, width=128), np.random.default_rng(1).standard_normal((32, 128))).diagnose() == []


def test_diagnose_nonfinite_dead_saturation():
    net = relu_net(None, depth=3, width=20)
    x = np.random.default_rng(2).standard_normal((16, 20))
    x[0, 0] = np.nan
    f = initlab.analyze(net, x).diagnose()
    assert any(x.kind == "nonfinite" and x.index == 1 for x in f)
    net[0].bias[...] = -100.0  # every unit of layer 1 off
    f = initlab.analyze(net, np.random.default_rng(2).standard_normal((16, 20))).diagnose()
    dead = [x for x in f if x.kind == "dead_relu"]
    assert dead and dead[0].layer == "0" and dead[0].evidence["layers"]["0"] == 1.0
    sat = nn.mlp(20, 20, depth=2, activation="tanh", seed=0)
    nn.init_weights(sat, "normal", std=3.0, seed=1)
    f = initlab.analyze(sat, np.random.default_rng(3).standard_normal((16, 20))).diagnose()
    assert any(x.kind == "saturation" for x in f)


@pytest.mark.parametrize("act,sw2,sb2", [("tanh", 1.5, 0.05), ("relu", 2.0, 0.0), ("selu", 1.0, 0.0), ("gelu", 1.8, 0.02)])
def test_mean_field_matches_wide_mlp(act, sw2, sb2):
    # Mean-field q is an ensemble average: measure K independent wide nets and compare their
    # mean with the theory: within a few percent (6%; ReLU nets at depth 5 fluctuate most) and
    # within 4 standard errors of that mean
    # (estimated from the spread between the nets).
    width, depth, batch, n_nets = 1000, 5, 16, 4
    ratios, wrong = [], []
    for k in range(n_nets):
        net = nn.mlp(200, width, depth=depth, activation=act, seed=k)
        g = initlab.Generator(100 + k)
        for m in net:
            if isinstance(m, nn.Linear):
                initlab.normal_(m.weight, 0.0, math.sqrt(sw2 / m.in_features), seed=g)
                initlab.normal_(m.bias, 0.0, math.sqrt(sb2), seed=g) if sb2 else m.bias.fill(0.0)
        x = np.random.default_rng(k).standard_normal((batch, 200))
        t = initlab.analyze(net, x, backward=False)
        measured = np.array([r.pre["ms"] for r in t.layers])
        predicted = np.array([r.predicted["q"] for r in t.layers])
        ratios.append(measured / predicted)
        p = predict(net, float(np.mean(x**2)))
        np.testing.assert_array_equal(p.q, predicted)
        # A wrong theory (activation ignored: q_l = sigma_w^2 q_{l-1} + sigma_b^2) for contrast.
        q, bad = float(np.mean(x**2)), []
        for sw, sb in zip(p.sigma_w2, p.sigma_b2):
            q = sw * q + sb
            bad.append(q)
        wrong.append(measured / np.array(bad))
    dev = np.abs(np.mean(ratios, axis=0) - 1)
    se = np.std(ratios, axis=0, ddof=1) / math.sqrt(n_nets)
    assert dev.max() < 0.06 and np.all(dev < 4 * se + 0.005), (dev, se)
    if act in ("relu", "tanh"):
        assert np.abs(np.mean(wrong, axis=0) - 1).max() > 0.1  # the test tells theories apart
    if act == "relu":
        np.testing.assert_allclose(p.chi, 1.0, rtol=0.02)  # He init: the critical line chi = 1
        np.testing.assert_allclose(p.q[1:] / p.q[:-1], 1.0, rtol=0.02)


def test_predict_closed_forms_and_errors():
    net = nn.Sequential(nn.Linear(10, 10, seed=0), nn.ReLU(), nn.Linear(10, 10, seed=1), nn.Tanh())
    net[0].weight[...] = np.sqrt(2.0 / 10)  # sigma_w^2 = fan_in * mean(W^2) = 2 exactly
    net[0].bias[...] = 0.0
    p = predict(net, 3.0)
    assert p.sigma_w2[0] == pytest.approx(2.0) and p.q[0] == pytest.approx(6.0)
    assert p.post_ms[0] == pytest.approx(3.0, rel=1e-3)  # E[relu(z)^2] = q / 2 (quadrature, kink)
    with pytest.raises(ValueError, match="Conv2d"):
        predict(nn.Sequential(nn.Conv2d(1, 1, 1)), 1.0)
    with pytest.raises(ValueError, match="input_var"):
        predict(net, -1.0)
    assert initlab.analyze(nn.resnet(1, 2, n_blocks=1, seed=0), np.ones((2, 1, 4, 4))).layers[0].predicted is None


def test_jacobian_spectrum():
    lin = nn.Sequential(nn.Linear(8, 8, bias=False, seed=0), nn.Linear(8, 8, bias=False, seed=1))
    nn.init_weights(lin, "orthogonal", seed=3)
    s = jacobian_spectrum(lin, np.random.default_rng(0).standard_normal((3, 8)))
    np.testing.assert_allclose(s.singular_values, 1.0, atol=1e-12)  # dynamical isometry, exactly
    assert s.mean_sq == pytest.approx(1.0) and s.var_sq < 1e-20 and s.condition == pytest.approx(1.0)
    # A nonlinear net: against finite differences.
    net = nn.mlp(4, 5, depth=2, out_features=3, activation="tanh", seed=2)
    x = np.random.default_rng(1).standard_normal(4)
    h = 1e-6
    jac = np.stack([(net(x + h * e) - net(x - h * e)) / (2 * h) for e in np.eye(4)], axis=1)
    s = jacobian_spectrum(net, x)
    np.testing.assert_allclose(s.singular_values[0], np.linalg.svd(jac, compute_uv=False), rtol=1e-7)
    assert all(np.all(g == 0) for _, g in net.named_grads())


def test_diagnose_resnet_global_pool_and_printing():
    net = nn.resnet(3, 8, n_blocks=2, seed=0)
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8))
    t = initlab.analyze(net, x)
    head = t.layers[-1]
    assert head.type == "Linear" and head.reduction == "GlobalAvgPool"
    assert head.reduction_scale["backward"] == pytest.approx(1 / 64**2, rel=1e-12)  # dy / 64 on every pixel
    f = t.diagnose()
    assert f == [] and str(f) == f"no problem found in {len(t)} layer(s)"
    assert str(t).splitlines()[0].startswith(f"Trace of {len(t)} layer(s), forward and backward, batch 8; input:")


def test_diagnose_one_broken_layer_named():
    net = relu_net(None, depth=8, width=64)
    net[6].weight[...] *= 1e-4  # layer 4 of 8
    f = initlab.analyze(net, X).diagnose()
    assert [x.kind for x in f] == ["vanishing_layer"]  # the depth trends it causes are not repeated
    assert f[0].layer == "6" and f[0].index == 4
    assert 1e-9 < f[0].evidence["gain"] < 1e-7  # He: gain 2 (x1e-8)
    text = str(f)
    assert text.startswith("1 problem(s) found in 8 layer(s):\n- Layer 4 (6, Linear) shrinks") and "Finding(" not in text
    net[6].weight[...] = 0.0  # zero-initialized on purpose: not a broken layer
    assert all(x.kind != "vanishing_layer" for x in initlab.analyze(net, X).diagnose())
