"""initlab.nn: every layer's backward pass against central finite differences (float64),
parameter naming, torch-like default initialization, train/eval behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

import initlab
from initlab import nn


def loss_and_grads(m: nn.Module, x: np.ndarray, g: np.ndarray):
    m.zero_grad()
    y = m(x)
    dx = m.backward(g)
    return float(np.sum(g * y)), dx, dict(m.named_grads())


def numeric(f, arr: np.ndarray, idx, h=1e-6) -> float:
    old = arr[idx]
    arr[idx] = old + h
    fp = f()
    arr[idx] = old - h
    fm = f()
    arr[idx] = old
    return (fp - fm) / (2 * h)


def gradcheck(m: nn.Module, x: np.ndarray, n_probe: int = 12, seed: int = 0, rtol: float = 1e-6) -> None:
    """L = sum(g * m(x)) for a fixed random g; compare dL/dx and dL/dparams on random entries."""
    rng = np.random.default_rng(seed)
    y = m(x)
    g = rng.standard_normal(y.shape)
    _, dx, grads = loss_and_grads(m, x, g)
    f = lambda: float(np.sum(g * m(x)))  # noqa: E731
    targets = [("x", x, dx)] + [(name, p, grads[name]) for name, p in m.named_parameters()]
    for name, arr, ana in targets:
        assert ana.shape == arr.shape, name
        flat = [np.unravel_index(i, arr.shape) for i in rng.choice(arr.size, min(n_probe, arr.size), replace=False)] if arr.ndim else [()]
        for idx in flat:
            num = numeric(f, arr, idx)
            # Central differences: error O(h^2 f''') + O(eps f / h); scale-aware tolerance.
            tol = rtol * max(1.0, abs(num)) + 1e-7
            assert abs(ana[idx] - num) <= tol, f"{name}{idx}: analytic {ana[idx]!r} vs numeric {num!r}"


def away_from_zero(rng, shape, margin=0.05):
    """Inputs whose entries avoid the kinks of ReLU-like functions (finite differences need it)."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, np.sign(x + 1e-12) * margin, x)


@pytest.mark.parametrize("act", [nn.Identity(), nn.ReLU(), nn.LeakyReLU(0.2), nn.Tanh(), nn.Sigmoid(), nn.SELU(),
                                 nn.GELU(), nn.GELU("tanh")])
def test_activation_grads(act):
    gradcheck(act, away_from_zero(np.random.default_rng(1), (4, 7)))


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(nn.GELU().phi(x), x * 0.5 * (1 + np.array([math.erf(v / math.sqrt(2)) for v in x])), rtol=1e-15)
    np.testing.assert_allclose(nn.Sigmoid().phi(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(nn.SELU().phi(np.array([1.0, -1.0])), [1.0507009873554805, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1)])
    assert nn.ReLU().dphi(np.array([0.0]))[0] == 0.0
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.get_activation("swish")


@pytest.mark.parametrize("bias", [True, False])
def test_linear_grads(bias):
    gradcheck(nn.Linear(6, 4, bias=bias, seed=1), np.random.default_rng(2).standard_normal((5, 6)))
    gradcheck(nn.Linear(3, 2, seed=1), np.random.default_rng(2).standard_normal((2, 4, 3)))  # extra leading dims


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,groups,hw",
    [(2, 3, 3, 1, 0, 1, (5, 6)), (2, 4, 3, 2, 1, 2, (7, 6)), (4, 4, (1, 3), (2, 1), (0, 2), 4, (5, 5)), (3, 6, 2, 3, 1, 3, (8, 7))],
)
def test_conv2d_grads_and_values(cin, cout, k, stride, pad, groups, hw):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, seed=3)
    x = np.random.default_rng(4).standard_normal((2, cin, *hw))
    gradcheck(conv, x, n_probe=10)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(conv.weight), torch.from_numpy(conv.bias),
                                     stride=stride, padding=pad, groups=groups)
    np.testing.assert_allclose(conv(x), ref.numpy(), rtol=1e-12, atol=1e-12)


def test_layernorm_grads():
    ln = nn.LayerNorm((3, 4))
    rng = np.random.default_rng(5)
    ln.weight[...] = rng.standard_normal(ln.weight.shape)
    ln.bias[...] = rng.standard_normal(ln.bias.shape)
    gradcheck(ln, rng.standard_normal((2, 3, 4)))
    gradcheck(nn.LayerNorm(5, elementwise_affine=False), rng.standard_normal((3, 5)))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 5)])
def test_batchnorm_grads_train_and_eval(shape):
    bn = nn.BatchNorm(3)
    rng = np.random.default_rng(6)
    bn.weight[...] = rng.standard_normal(3)
    bn.bias[...] = rng.standard_normal(3)
    x = rng.standard_normal(shape) * 2 + 1
    gradcheck(bn, x)
    bn.eval()
    gradcheck(bn, x)


def test_batchnorm_running_stats_as_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(7).standard_normal((8, 3, 4, 4))
    ours, ref = nn.BatchNorm(3), torch.nn.BatchNorm2d(3, dtype=torch.float64)
    np.testing.assert_allclose(ours(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), rtol=1e-12)
    ours.eval(), ref.eval()
    np.testing.assert_allclose(ours(x), ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_residual_flatten_sequential_grads():
    rng = np.random.default_rng(8)
    block = nn.Residual(nn.Sequential(nn.Linear(4, 4, seed=1), nn.Tanh(), nn.Linear(4, 4, seed=2)), alpha=0.7)
    gradcheck(block, rng.standard_normal((3, 4)))
    proj = nn.Residual(nn.Sequential(nn.Linear(4, 6, seed=3), nn.Tanh()), alpha=0.3, shortcut=nn.Linear(4, 6, seed=4))
    gradcheck(proj, rng.standard_normal((3, 4)))
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, seed=5), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 16, 2, seed=6))
    gradcheck(net, rng.standard_normal((2, 2, 4, 4)))


def test_builders_grads_and_names():
    rng = np.random.default_rng(9)
    net = nn.mlp(5, 6, depth=3, out_features=2, activation="tanh", norm="layer", seed=0)
    gradcheck(net, rng.standard_normal((4, 5)))
    names = [n for n, _ in net.named_parameters()]
    assert names[:4] == ["0.weight", "0.bias", "1.weight", "1.bias"] and names[-1] == "9.bias"
    rm = nn.residual_mlp(3, 4, n_blocks=2, out_features=1, seed=1)
    gradcheck(rm, rng.standard_normal((3, 3)))
    assert "1.alpha" in dict(rm.named_parameters()) and "2.branch.2.weight" in dict(rm.named_parameters())
    rn = nn.resnet(2, 3, n_blocks=1, n_classes=2, seed=2)
    gradcheck(rn, rng.standard_normal((3, 2, 5, 5)), n_probe=5)


def test_default_init_is_torch_like_and_seeded():
    lin = nn.Linear(400, 300, seed=0)
    bound = 1 / math.sqrt(400)
    assert np.abs(lin.weight).max() <= bound and np.abs(lin.bias).max() <= bound
    # U(-b, b) has variance b^2/3; relative SE of a variance over n draws ~ sqrt(0.8/n).
    assert abs(lin.weight.var() / (bound**2 / 3) - 1) < 5 * math.sqrt(0.8 / lin.weight.size)
    again = nn.Linear(400, 300, seed=0)
    np.testing.assert_array_equal(lin.weight, again.weight)
    assert not np.array_equal(lin.weight[0, :300], lin.bias)  # weight and bias use different streams
    a, b = nn.mlp(4, 8, depth=2, seed=3), nn.mlp(4, 8, depth=2, seed=3)
    assert not np.array_equal(a[0].weight[:, :4], a[2].weight[:, :4])
    np.testing.assert_array_equal(a[2].weight, b[2].weight)
    conv = nn.Conv2d(4, 8, 3, groups=2, seed=1)
    assert np.abs(conv.weight).max() <= 1 / math.sqrt(2 * 9)
    assert nn.LayerNorm(3).weight.tolist() == [1, 1, 1]


def test_init_weights():
    net = nn.mlp(20, 30, depth=3, seed=0)
    nn.init_weights(net, "normal", std=0.5, seed=1)
    for m in net:
        if isinstance(m, nn.Linear):
            assert (m.bias == 0).all()
    nn.init_weights(net, "orthogonal", seed=2)
    w = net[2].weight
    np.testing.assert_allclose(w @ w.T, np.eye(30), atol=1e-12)
    nn.init_weights(net, initlab.kaiming_normal_, nonlinearity="relu", bias=None, seed=3)
    with pytest.raises(ValueError, match="unknown initializer"):
        nn.init_weights(net, "nope")


def test_errors_and_modes():
    with pytest.raises(ValueError, match="last dimension 3"):
        nn.Linear(3, 2, seed=0)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Linear(2, 2, dtype=np.int32)
    net = nn.mlp(2, 3, depth=1, norm="batch", seed=0).eval()
    assert all(not m.training for _, m in net.named_modules())
    assert "Linear(in_features=2" in repr(net)
    y32 = nn.mlp(2, 3, depth=1, seed=0, dtype=np.float32)(np.ones((1, 2), np.float32))
    assert y32.dtype == np.float32
