"""Named initializers: KS against the exact target of every scheme (with 5%-wrong-scale
rejection), fans/layouts, gains, deterministic initializers, sparse_ and ZerO."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import OptionalModule

stats = OptionalModule("scipy.stats")

import initlab
from conftest import BF16, as_f64, assert_ks, scaled

SHAPE = (400, 500)  # torch layout: fan_in = 500, fan_out = 400; 2e5 elements
FI, FO = 500, 400
TRUNC = 0.87962566103423978


def U(bound):
    return stats.uniform(-bound, 2 * bound)


def TN(s):
    return stats.truncnorm(-2.0, 2.0, scale=s)


def _x(fn, *args, seed=31, shape=SHAPE, dtype=np.float32, **kw):
    x = np.empty(shape, dtype)
    assert fn(x, *args, seed=seed, **kw) is x
    return x


def test_xavier_uniform():
    b = 1.5 * math.sqrt(6.0 / (FI + FO))
    assert_ks(_x(initlab.xavier_uniform_, 1.5), U(b), scaled(U, b))


def test_xavier_normal():
    s = 0.7 * math.sqrt(2.0 / (FI + FO))
    assert_ks(_x(initlab.xavier_normal_, 0.7), stats.norm(0, s), scaled(lambda t: stats.norm(0, t), s))


@pytest.mark.parametrize("a,mode,nl", [(0, "fan_in", "leaky_relu"), (math.sqrt(5), "fan_in", "leaky_relu"),
                                       (0.2, "fan_out", "leaky_relu"), (0, "fan_in", "relu"), (0, "FAN_OUT", "tanh"),
                                       (0, "fan_avg", "selu"), (0, "fan_geo_avg", "linear")])
@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_kaiming(kind, a, mode, nl):
    fan = {"fan_in": FI, "fan_out": FO, "fan_avg": (FI + FO) / 2, "fan_geo_avg": math.sqrt(FI * FO)}[mode.lower()]
    std = initlab.calculate_gain(nl, a) / math.sqrt(fan)
    if kind == "uniform":
        x = _x(initlab.kaiming_uniform_, a, mode, nl)
        b = math.sqrt(3) * std
        assert_ks(x, U(b), scaled(U, b))
    else:
        x = _x(initlab.kaiming_normal_, a, mode, nl)
        assert_ks(x, stats.norm(0, std), scaled(lambda t: stats.norm(0, t), std))


def test_lecun_uniform():
    b = math.sqrt(3.0 / FI)
    assert_ks(_x(initlab.lecun_uniform_), U(b), scaled(U, b))


def test_lecun_normal_is_keras_truncated_with_correction():
    s = math.sqrt(1.0 / FI) / TRUNC
    x = _x(initlab.lecun_normal_)
    assert_ks(x, TN(s), scaled(TN, s))
    assert abs(x.std() - math.sqrt(1.0 / FI)) < 0.01 * math.sqrt(1.0 / FI)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg", "fan_geo_avg"])
@pytest.mark.parametrize("dist", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling(dist, mode):
    fan = {"fan_in": FI, "fan_out": FO, "fan_avg": (FI + FO) / 2, "fan_geo_avg": math.sqrt(FI * FO)}[mode]
    var = 2.0 / fan
    x = _x(initlab.variance_scaling_, 2.0, mode, dist)
    if dist == "truncated_normal":
        s = math.sqrt(var) / TRUNC
        assert_ks(x, TN(s), scaled(TN, s))
    elif dist == "untruncated_normal":
        assert_ks(x, stats.norm(0, math.sqrt(var)), scaled(lambda t: stats.norm(0, t), math.sqrt(var)))
    else:
        b = math.sqrt(3 * var)
        assert_ks(x, U(b), scaled(U, b))


def test_variance_scaling_normal_alias_and_keras_layout():
    a = _x(initlab.variance_scaling_, 1.0, "fan_in", "normal")
    b = _x(initlab.variance_scaling_, 1.0, "fan_in", "truncated_normal")
    np.testing.assert_array_equal(a, b)
    # keras layout (*k, in, out): fan_in = k*k*in
    k = _x(initlab.variance_scaling_, 1.0, "fan_in", "uniform", shape=(3, 3, 64, 128), layout="keras")
    bnd = math.sqrt(3.0 / (9 * 64))
    assert_ks(k, U(bnd), scaled(U, bnd))


@pytest.mark.parametrize("sparsity", [0.1, 0.7])
def test_sparse(sparsity):
    x = _x(initlab.sparse_, sparsity, 0.05, shape=(1000, 300))
    nz = math.ceil(sparsity * 1000)
    assert np.all((x == 0).sum(axis=0) == nz)
    vals = x[x != 0]
    assert_ks(vals, stats.norm(0, 0.05), scaled(lambda t: stats.norm(0, t), 0.05))
    y = _x(initlab.sparse_, sparsity, 0.05, shape=(1000, 300))
    np.testing.assert_array_equal(x, y)  # mask seeded too
    z = _x(initlab.sparse_, sparsity, 0.05, shape=(1000, 300), seed=32)
    assert not np.array_equal(x == 0, z == 0)


def test_sparse_edges():
    x = _x(initlab.sparse_, 0.0, shape=(10, 7))
    assert np.all(x != 0)
    x = _x(initlab.sparse_, 1.0, shape=(10, 7))
    assert np.all(x == 0)
    x = _x(initlab.sparse_, 0.913, shape=(100, 7))
    assert np.all((x == 0).sum(axis=0) == 92)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16] + ([BF16] if BF16 is not None else []))
def test_deterministic_initializers(dtype):
    x = np.empty((3, 5), dtype)
    assert initlab.zeros_(x) is x and np.all(as_f64(x) == 0)
    assert initlab.ones_(x) is x and np.all(as_f64(x) == 1)
    assert initlab.constant_(x, 0.1) is x and np.all(x == np.array(0.1, dtype))
    assert initlab.eye_(x) is x
    np.testing.assert_array_equal(as_f64(x), np.eye(3, 5))
    w = np.empty((6, 4, 3, 4), dtype)
    initlab.dirac_(w, groups=2)
    ref = np.zeros((6, 4, 3, 4))
    for g in range(2):
        for d in range(3):
            ref[g * 3 + d, d, 1, 2] = 1
    np.testing.assert_array_equal(as_f64(w), ref)


def test_zero_init():
    x = np.empty((4, 6))
    initlab.zero_init_(x)
    np.testing.assert_array_equal(x, np.eye(4, 6))
    y = np.empty((8, 3))
    initlab.zero_init_(y)
    # columns orthonormal (H_3 / sqrt(8) restricted to 3 columns)
    np.testing.assert_allclose(y.T @ y, np.eye(3), atol=1e-12)


def test_compute_fans_layouts():
    assert initlab.compute_fans((6, 4, 3, 3)) == (36, 54)
    assert initlab.compute_fans((3, 3, 4, 6), layout="keras") == (36, 54)
    assert initlab.compute_fans((3, 3, 4, 6), layout="jax") == (36, 54)
    assert initlab.compute_fans((5, 7)) == (7, 5)
    assert initlab.compute_fans((2, 3, 4), layout=(0, 2)) == (6, 12)
    assert initlab.compute_fans((2, 3, 4), layout=((0, 1), 2)) == (6, 4)


def test_calculate_gain_table():
    g = initlab.calculate_gain
    for n in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "sigmoid"):
        assert g(n) == 1
    assert g("tanh") == 5.0 / 3
    assert g("relu") == math.sqrt(2.0)
    assert g("leaky_relu") == math.sqrt(2.0 / (1 + 0.01**2))
    assert g("leaky_relu", 0.2) == math.sqrt(2.0 / 1.04)
    assert g("leaky_relu", 1) == 1.0
    assert g("selu") == 0.75


def test_bfloat16_ml_dtypes_array():
    if BF16 is None:
        pytest.skip("ml_dtypes not installed")
    x = np.empty((200, 500), BF16)
    assert initlab.kaiming_normal_(x, seed=3) is x
    v = as_f64(x)
    assert abs(v.std() - math.sqrt(2.0 / 500)) < 0.02 * math.sqrt(2.0 / 500)


def test_generator_array_methods():
    g = initlab.Generator(5)
    a = g.uniform((3, 4), -1, 1, dtype=np.float64)
    assert a.shape == (3, 4) and a.dtype == np.float64 and a.min() >= -1 and a.max() < 1
    n = g.normal(1000, 2.0, 0.5)
    assert n.dtype == np.float32 and abs(n.mean() - 2.0) < 0.1
    if BF16 is not None:  # dtype="bfloat16" needs ml_dtypes (an optional extra)
        t = g.truncated_normal((10, 10), a=-1, b=1, dtype="bfloat16")
        assert as_f64(t).max() <= 1 and as_f64(t).min() >= -1
    out = np.empty(7, np.float16)
    assert g.normal(out=out) is out
