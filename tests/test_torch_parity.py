"""Parity with torch.nn.init: gains, fans, bounds/stds on real module weight shapes,
deterministic initializers bit-equal, and in-place filling of torch tensors / nn.Parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
import initlab  # noqa: E402

MODULES = {
    "linear": lambda: nn.Linear(300, 200),
    "conv1d": lambda: nn.Conv1d(16, 32, 5),
    "conv2d": lambda: nn.Conv2d(16, 32, 3),
    "conv3d": lambda: nn.Conv3d(8, 16, (3, 3, 2)),
    "conv2d_grouped": lambda: nn.Conv2d(16, 32, 3, groups=4),
    "conv_t2d": lambda: nn.ConvTranspose2d(16, 24, 3),
    "conv_t1d_grouped": lambda: nn.ConvTranspose1d(16, 24, 4, groups=2),
    "conv_t3d": lambda: nn.ConvTranspose3d(4, 6, 3),
}
SHAPES = {k: tuple(f().weight.shape) for k, f in MODULES.items()}
NONLIN = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
          "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("nl", NONLIN)
@pytest.mark.parametrize("param", [None, 0.2, 1, math.sqrt(5)])
def test_calculate_gain(nl, param):
    g, t = initlab.calculate_gain(nl, param), nn.init.calculate_gain(nl, param)
    assert g == t and type(g) is type(t)


def test_calculate_gain_errors_like_torch():
    for bad in ("gelu", "Tanh"):
        with pytest.raises(ValueError, match=f"Unsupported nonlinearity {bad}"):
            initlab.calculate_gain(bad)
    with pytest.raises(ValueError, match="negative_slope"):
        initlab.calculate_gain("leaky_relu", "x")


@pytest.mark.parametrize("name", list(SHAPES))
def test_compute_fans_vs_torch(name):
    w = torch.empty(SHAPES[name])
    assert initlab.compute_fans(SHAPES[name]) == nn.init._calculate_fan_in_and_fan_out(w)




@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("kind,kw", [
    ("xavier_uniform_", {"gain": 1.3}), ("xavier_normal_", {"gain": 0.8}),
    ("kaiming_uniform_", {}), ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {}), ("kaiming_normal_", {"a": 0.1, "mode": "fan_out"}),
    ("kaiming_normal_", {"nonlinearity": "tanh"}),
])
def test_bound_and_std_vs_torch(name, kind, kw):
    shape = SHAPES[name]
    fi, fo = nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    if kind.startswith("xavier"):
        std = kw["gain"] * math.sqrt(2.0 / (fi + fo))
    else:
        fan = fi if kw.get("mode", "fan_in") == "fan_in" else fo
        std = nn.init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0)) / math.sqrt(fan)
    # Empirical on many copies of the module's weight (same fans): a big sample, repeated seeds.
    reps = max(1, 200_000 // math.prod(shape))
    ours = np.stack([getattr(initlab, kind)(np.empty(shape, np.float32), seed=s, **kw) for s in range(reps)])
    ref = torch.stack([getattr(nn.init, kind)(torch.empty(shape), **kw) for _ in range(reps)]).numpy()
    n = ours.size
    tol = 5 * std * math.sqrt(1.0 / n) * 2
    if kind.endswith("uniform_"):
        bound = math.sqrt(3.0) * std
        assert np.abs(ours).max() < bound and np.abs(ours).max() > bound * (1 - 20.0 / n)
        assert np.abs(ref).max() <= bound * (1 + 1e-6)
    assert abs(ours.std() - std) < tol + 0.005 * std
    assert abs(ours.std() - ref.std()) < 2 * tol + 0.01 * std


def test_eye_zeros_ones_constant_equal_torch():
    for shape in [(3, 5), (5, 3), (4, 4)]:
        assert torch.equal(initlab.eye_(torch.empty(shape)), nn.init.eye_(torch.empty(shape)))
    t = torch.empty(4, 7, dtype=torch.float64)
    assert torch.equal(initlab.zeros_(t.clone()), nn.init.zeros_(t.clone()))
    assert torch.equal(initlab.ones_(t.clone()), nn.init.ones_(t.clone()))
    for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        a, b = torch.empty(3, 3, dtype=dt), torch.empty(3, 3, dtype=dt)
        assert torch.equal(initlab.constant_(a, 0.1), nn.init.constant_(b, 0.1))


@pytest.mark.parametrize("shape,groups", [((6, 4, 3), 1), ((6, 4, 3, 3), 2), ((8, 2, 4, 4), 4), ((6, 3, 2, 4, 5), 3),
                                          ((4, 6, 4), 1), ((4, 8, 3, 3), 2)])
def test_dirac_equals_torch(shape, groups):
    assert torch.equal(initlab.dirac_(torch.empty(shape), groups=groups), nn.init.dirac_(torch.empty(shape), groups=groups))


@pytest.mark.parametrize("dt,np_dt", [(torch.float32, np.float32), (torch.float64, np.float64),
                                      (torch.float16, np.float16), (torch.bfloat16, "bfloat16")])
@pytest.mark.parametrize("fn", ["uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "kaiming_normal_",
                                "lecun_normal_"])
def test_fill_torch_tensors_in_place(dt, np_dt, fn):
    t = torch.empty(17, 23, dtype=dt)
    ptr = t.data_ptr()
    out = getattr(initlab, fn)(t, seed=5)
    assert out is t and t.data_ptr() == ptr
    if np_dt == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        a = np.empty((17, 23), ml_dtypes.bfloat16)
        getattr(initlab, fn)(a, seed=5)
        np.testing.assert_array_equal(t.view(torch.int16).numpy().view(np.uint16), a.view(np.uint16))
    else:
        a = np.empty((17, 23), np_dt)
        getattr(initlab, fn)(a, seed=5)
        np.testing.assert_array_equal(t.numpy(), a)


def test_parameter_in_place_keeps_requires_grad_and_identity():
    lin = nn.Linear(30, 20)
    p = lin.weight
    ptr, ver = p.data_ptr(), p._version
    out = initlab.kaiming_uniform_(p, a=math.sqrt(5), seed=3)
    assert out is p and isinstance(out, nn.Parameter) and p.requires_grad and p.data_ptr() == ptr
    assert p.grad_fn is None and p._version > ver
    a = np.empty((20, 30), np.float32)
    initlab.kaiming_uniform_(a, a=math.sqrt(5), seed=3)
    np.testing.assert_array_equal(p.detach().numpy(), a)
    # the module still trains
    lin(torch.randn(4, 30)).sum().backward()
    assert p.grad is not None


def test_non_contiguous_torch_tensor_by_logical_index():
    t = torch.empty(40, 30).t()  # transposed view
    initlab.normal_(t, seed=8)
    a = np.empty((30, 40), np.float32)
    initlab.normal_(a, seed=8)
    np.testing.assert_array_equal(t.numpy(), a)


def test_torch_unsupported_dtype():
    t = torch.zeros(3, 3, dtype=torch.int32)
    with pytest.raises(TypeError, match="int32"):
        initlab.normal_(t, seed=1)
    assert torch.equal(t, torch.zeros(3, 3, dtype=torch.int32))
