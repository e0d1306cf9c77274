"""initlab.schemes.grow: Net2Net widening and deepening preserve the proxy's function."""

from __future__ import annotations

import numpy as np
import pytest

import initlab
from initlab import nn
from initlab.schemes import grow


def test_mlp_wider_and_deeper_nn():
    proxy = nn.mlp(5, 8, 2, 3, seed=0)
    target = nn.mlp(5, 16, 4, 3, seed=1)
    man = grow(proxy, target, seed=0)
    x = np.random.default_rng(0).normal(size=(16, 5))
    np.testing.assert_allclose(target(x), proxy(x), rtol=0, atol=1e-12)
    # first layer: the proxy's 8 units kept in place, 8 copies appended
    np.testing.assert_array_equal(target[0].weight[:8], proxy[0].weight)
    assert man["0.weight"].params["source"] == "0.weight" and man["0.weight"].params["out"] == "8->16"
    # new layers are identities
    np.testing.assert_array_equal(target[4].weight, np.eye(16))
    assert man["4.weight"].init == "eye" and not target[4].bias.any()
    # the next layer divides by the copy count: column sums over copies equal the proxy's column
    w2 = target[2].weight[:8]
    src = np.concatenate([np.arange(8), [np.flatnonzero((target[0].weight == r).all(axis=1))[0] for r in target[0].weight[8:]]])
    for j in range(8):
        np.testing.assert_allclose(w2[:, src == j].sum(axis=1), proxy[2].weight[:, j], atol=1e-15)
    # seeded: the same seed gives the same target
    t2 = nn.mlp(5, 16, 4, 3, seed=9)
    grow(proxy, t2, seed=0)
    for (_, a), (_, b) in zip(target.named_parameters(), t2.named_parameters()):
        np.testing.assert_array_equal(a, b)


def test_conv_stack_with_batchnorm_and_flatten_nn():
    proxy = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, seed=0), nn.BatchNorm(4), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, padding=1, seed=0), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 5 * 5, 2, seed=0))
    target = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, seed=1), nn.BatchNorm(8), nn.ReLU(),
                           nn.Conv2d(8, 8, 3, padding=1, seed=1), nn.ReLU(),
                           nn.Conv2d(8, 10, 3, padding=1, seed=1), nn.ReLU(), nn.Flatten(), nn.Linear(10 * 5 * 5, 2, seed=1))
    proxy[1].running_mean[:] = [0.1, 0.2, -0.1, 0.3]
    proxy[1].running_var[:] = [1.5, 0.5, 2.0, 1.0]
    proxy[1].weight[:] = [1.0, 2.0, 3.0, 4.0]
    proxy.eval()
    target.eval()
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 5))
    man = grow(proxy, target, seed=3)
    np.testing.assert_allclose(target(x), proxy(x), rtol=0, atol=1e-12)
    assert man["3.weight"].init == "dirac"  # the inserted conv
    assert man["5.weight"].params["source"] == "3.weight"


def test_noise_breaks_symmetry_but_stays_close():
    proxy = nn.mlp(5, 8, 2, 3, seed=0)
    target = nn.mlp(5, 16, 2, 3, seed=1)
    man = grow(proxy, target, noise=0.01, seed=0)
    x = np.random.default_rng(0).normal(size=(16, 5))
    d = np.abs(target(x) - proxy(x)).max()
    assert 0 < d < 0.1
    assert man["0.weight"].params["noise_std"] == pytest.approx(0.01 * proxy[0].weight.std())


def test_errors():
    with pytest.raises(ValueError, match="narrower|no alignment"):
        grow(nn.mlp(5, 8, 2, 3), nn.mlp(5, 4, 2, 3))
    with pytest.raises(ValueError, match="idempotent"):
        grow(nn.mlp(5, 8, 1, 3, activation="tanh"), nn.mlp(5, 8, 2, 3, activation="tanh"))
    with pytest.raises(ValueError, match="Residual"):
        grow(nn.residual_mlp(4, 4, 1), nn.residual_mlp(4, 4, 1))
    with pytest.raises(TypeError, match="Sequential"):
        grow(nn.Linear(4, 4), nn.Linear(4, 4))
    with pytest.raises(ValueError, match="noise"):
        grow(nn.mlp(5, 8, 1, 3), nn.mlp(5, 8, 1, 3), noise=-1)


def test_torch_sequential():
    torch = pytest.importorskip("torch")
    T = torch.nn
    torch.manual_seed(0)
    proxy = T.Sequential(T.Conv2d(3, 4, 3, padding=1), T.BatchNorm2d(4), T.ReLU(), T.Flatten(), T.Linear(4 * 6 * 6, 8),
                         T.ReLU(), T.Linear(8, 3))
    target = T.Sequential(T.Conv2d(3, 12, 3, padding=1), T.BatchNorm2d(12), T.ReLU(), T.Flatten(),
                          T.Linear(12 * 6 * 6, 20), T.ReLU(), T.Linear(20, 20), T.ReLU(), T.Linear(20, 3))
    with torch.no_grad():
        proxy[1].running_mean.uniform_(-0.5, 0.5)
        proxy[1].running_var.uniform_(0.5, 2.0)
    proxy.eval()
    target.eval()
    man = grow(proxy, target, seed=0)
    x = torch.randn(4, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(target(x), proxy(x), rtol=1e-5, atol=1e-6)
    assert man["6.weight"].init == "eye" and man["8.weight"].params["source"] == "6.weight"
    assert isinstance(man, initlab.Manifest)


# ---- issue 19 item 14: deepen a torch conv stack anywhere an identity layer fits ------------------


def _conv_stack(T, widths, extra_conv=False, extra_linear=None, hidden=16):
    """conv -> ReLU -> conv -> ReLU [-> new 3x3 conv -> ReLU] -> pool -> flatten -> Linear -> ReLU
    [-> new Linear (-> ReLU)] -> Linear."""
    c1, c2 = widths
    layers = [T.Conv2d(3, c1, 3, padding=1), T.BatchNorm2d(c1), T.ReLU(), T.Conv2d(c1, c2, 3, padding=1), T.ReLU()]
    if extra_conv:
        layers += [T.Conv2d(c2, c2, 3, padding=1), T.ReLU()]
    layers += [T.AdaptiveAvgPool2d(1), T.Flatten(), T.Linear(c2, hidden), T.ReLU()]
    if extra_linear == "relu":
        layers += [T.Linear(hidden, hidden), T.ReLU()]
    elif extra_linear == "plain":
        layers += [T.Linear(hidden, hidden)]
    layers += [T.Linear(hidden, 5)]
    return T.Sequential(*layers)


@pytest.mark.parametrize("extra_linear", [None, "relu", "plain"])
@pytest.mark.parametrize("wider", [False, True])
def test_item14_torch_conv_stack_deepened_before_the_pooling(extra_linear, wider):
    torch = pytest.importorskip("torch")
    T = torch.nn
    torch.manual_seed(0)
    proxy = _conv_stack(T, (4, 6))
    target = _conv_stack(T, (8, 10) if wider else (4, 6), extra_conv=True, extra_linear=extra_linear,
                         hidden=24 if wider else 16)
    with torch.no_grad():
        proxy[1].running_mean.uniform_(-0.5, 0.5)
        proxy[1].running_var.uniform_(0.5, 2.0)
    proxy.eval()
    target.eval()
    man = grow(proxy, target, seed=0)  # before the fix: "target layers ... do not match proxy layers"
    x = torch.randn(4, 3, 7, 7, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(target(x), proxy(x), rtol=1e-5, atol=1e-6)
    assert man["5.weight"].init == "dirac"  # the 3x3 conv inserted between the last conv and the pooling
    if extra_linear is not None:
        assert man["11.weight"].init == "eye"


def test_item14_linear_inserted_anywhere_an_identity_fits():
    torch = pytest.importorskip("torch")
    T = torch.nn
    torch.manual_seed(0)
    proxy = T.Sequential(T.Linear(6, 8), T.ReLU(), T.Linear(8, 3))
    # a new layer right after the first Linear (before its ReLU), and one right before the output
    target = T.Sequential(T.Linear(6, 8), T.Linear(8, 8), T.ReLU(), T.Linear(8, 8), T.Linear(8, 3))
    grow(proxy, target, seed=0)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(target(x), proxy(x), rtol=1e-5, atol=1e-6)


def test_item14_non_identity_insertions_still_refused():
    torch = pytest.importorskip("torch")
    T = torch.nn
    proxy = T.Sequential(T.Conv2d(3, 4, 3, padding=1), T.Tanh(), T.AdaptiveAvgPool2d(1), T.Flatten(), T.Linear(4, 2))
    target = T.Sequential(T.Conv2d(3, 4, 3, padding=1), T.Tanh(), T.Conv2d(4, 4, 3, padding=1), T.Tanh(),
                          T.AdaptiveAvgPool2d(1), T.Flatten(), T.Linear(4, 2))
    with pytest.raises(ValueError, match="idempotent"):  # tanh(tanh(x)) != tanh(x)
        grow(proxy, target)
    target2 = T.Sequential(T.Conv2d(3, 4, 3, padding=1), T.Tanh(), T.Conv2d(4, 4, 3, padding=1), T.BatchNorm2d(4),
                           T.Tanh(), T.AdaptiveAvgPool2d(1), T.Flatten(), T.Linear(4, 2))
    with pytest.raises(ValueError, match="do not match"):
        grow(proxy, target2)
