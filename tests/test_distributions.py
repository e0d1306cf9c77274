"""Distribution tests of the base samplers (uniform_, normal_, trunc_normal_): KS against the exact
target in float32/float64 (each test also shows the same KS statistic rejects a 5%-wrong scale),
moments of float16/bfloat16 fills with n-derived tolerances, and the low-precision contract
(sampled in float32, rounded to nearest-even, bounds kept)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import OptionalModule

stats = OptionalModule("scipy.stats")

import initlab
from conftest import BF16, FLOAT_DTYPE_IDS, FLOAT_DTYPES, as_f64, assert_ks, normal16_ref, scaled, uniform16_ref

N = 200_000
LOWP = [np.float16] + ([BF16] if BF16 is not None else [])
LOWP_IDS = ["f16", "bf16"][: len(LOWP)]


def _fill(fn, dtype, *args, seed=11, n=N, **kw):
    x = np.empty(n, dtype)
    fn(x, *args, seed=seed, **kw)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("a,b", [(0.0, 1.0), (-3.0, 5.0), (-1e-3, 1e-3), (100.0, 101.0)])
def test_uniform_ks(dtype, a, b):
    x = _fill(initlab.uniform_, dtype, a, b)
    c, h = (a + b) / 2, (b - a) / 2
    assert_ks(x, stats.uniform(a, b - a), scaled(lambda s: stats.uniform(c - s, 2 * s), h))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mean,std", [(0.0, 1.0), (2.5, 0.1), (-1.0, 30.0), (0.0, 1e-3)])
def test_normal_ks(dtype, mean, std):
    x = _fill(initlab.normal_, dtype, mean, std, seed=12)
    assert_ks(x, stats.norm(mean, std), scaled(lambda s: stats.norm(mean, s), std))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_normal_ks_odd_offset_block(dtype):
    # A block starting at an odd global index (the Box-Muller pair is split) is still N(0, 1).
    x = np.empty((1, N), dtype)
    initlab.normal_(x, seed=13, global_shape=(1, N + 3), offset=(0, 3))
    assert_ks(x, stats.norm(), scaled(lambda s: stats.norm(0, s), 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_normal_pairs_are_independent(dtype):
    # Box-Muller outputs (2j, 2j+1) are independent: their correlation is ~ N(0, 1/n).
    x = as_f64(_fill(initlab.normal_, dtype, seed=14))
    r = np.corrcoef(x[0::2], x[1::2])[0, 1]
    assert abs(r) < 5 / math.sqrt(N / 2)
    r4 = np.corrcoef(x[0::4], x[2::4])[0, 1]  # across pairs of the same Philox block
    assert abs(r4) < 5 / math.sqrt(N / 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (1.0, 2.0, -1.0, 4.0)])
def test_trunc_normal_ks(dtype, mean, std, a, b):
    x = _fill(initlab.trunc_normal_, dtype, mean, std, a, b, seed=15)

    def tn(s):
        return stats.truncnorm((a - mean) / s, (b - mean) / s, loc=mean, scale=s)

    assert_ks(x, tn(std), scaled(tn, std))


def test_trunc_normal_has_no_variance_correction_like_torch():
    x = _fill(initlab.trunc_normal_, np.float64, seed=16)
    assert abs(x.std() - 0.87962566103423978) < 5 * 0.88 / math.sqrt(2 * N)


def test_uniform_f64_uses_53_bits():
    x = _fill(initlab.uniform_, np.float64, seed=17, n=4096)
    frac = x * 2.0**53
    assert np.all(frac == np.floor(frac))
    assert np.any((frac % 2**29) != 0)  # more than float32's 24 bits


# ---- float16 / bfloat16 ------------------------------------------------------------------------


def _moment_tol(sd, n, dtype):
    rel = 2.0**-11 if dtype == np.float16 else 2.0**-8  # half an ulp, relative
    return 5 * sd / math.sqrt(n) + rel * sd, 5 * sd * math.sqrt(2.0 / n) + 2 * rel * sd


@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
@pytest.mark.parametrize("kind", ["uniform", "normal", "trunc"])
def test_lowp_moments(dtype, kind):
    if kind == "uniform":
        x = as_f64(_fill(initlab.uniform_, dtype, -1.0, 3.0, seed=21))
        mu, sd = 1.0, 4.0 / math.sqrt(12.0)
    elif kind == "normal":
        x = as_f64(_fill(initlab.normal_, dtype, 0.5, 2.0, seed=22))
        mu, sd = 0.5, 2.0
    else:
        x = as_f64(_fill(initlab.trunc_normal_, dtype, 0.0, 1.0, -1.0, 2.0, seed=23))
        d = stats.truncnorm(-1.0, 2.0)
        mu, sd = d.mean(), d.std()
    tm, ts = _moment_tol(sd, N, dtype)
    assert abs(x.mean() - mu) < tm
    assert abs(x.std() - sd) < ts
    # the same tolerance rejects a 5%-wrong std
    assert abs(1.05 * sd - sd) > ts


def _round_to(x32, dtype):
    return np.asarray(x32, np.float32).astype(dtype)


@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
def test_lowp_is_float32_rounded_to_nearest_even(dtype):
    n = 50_000
    x32 = np.empty(n, np.float32)
    xl = np.empty(n, dtype)
    initlab.trunc_normal_(x32, 0.0, 1.0, -2.0, 2.0, seed=24)
    initlab.trunc_normal_(xl, 0.0, 1.0, -2.0, 2.0, seed=24)
    np.testing.assert_array_equal(xl.view(np.uint16), _round_to(x32, dtype).view(np.uint16))
    # normal: 16-bit outputs draw one word per Box-Muller pair (conftest.normal16_ref), computed in
    # float32 with the core's log/sincos, then rounded to nearest even. 20000 values hold about
    # 20 tail pairs that take the refining word.
    xl = np.empty(20_000, dtype)
    initlab.normal_(xl, 0.5, 3.0, seed=24)
    x32 = normal16_ref(24, 0, range(xl.size), 0.5, 3.0)
    np.testing.assert_array_equal(xl.view(np.uint16), _round_to(x32, dtype).view(np.uint16))
    z = (x32.astype(np.float64) - 0.5) / 3.0
    assert (np.hypot(z[0::2], z[1::2]) > 3.6).any()  # some pairs went through the refining word
    # uniform: 16-bit outputs draw 16 bits of their own (two per word; tests/test_mappings.py), a
    # float32 value clamped to the largest value of the dtype below b, then rounded.
    xl = np.empty(n, dtype)
    initlab.uniform_(xl, seed=25)
    x32 = uniform16_ref(25, 0, range(n))
    hi = np.float32(np.nextafter(np.array(1.0, dtype), np.array(0.0, dtype)).astype(np.float32)) \
        if dtype == np.float16 else np.float32(1.0 - 2.0**-8)
    np.testing.assert_array_equal(xl.view(np.uint16), _round_to(np.minimum(x32, hi), dtype).view(np.uint16))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
@pytest.mark.parametrize("a,b", [(0.0, 1.0), (-1.0, 1.0), (1.0, 1.0009765625), (0.1, 0.3)])
def test_uniform_never_reaches_b_in_any_dtype(dtype, a, b):
    x = as_f64(_fill(initlab.uniform_, dtype, a, b, seed=26, n=100_000))
    assert x.min() >= a
    assert x.max() < b


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
def test_uniform_values_at_least_a(dtype):
    # a not representable in the dtype: the smallest value at least a is used.
    x = as_f64(_fill(initlab.uniform_, dtype, 0.1, 0.2, seed=27, n=100_000))
    assert x.min() >= 0.1 and x.max() < 0.2


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
def test_degenerate_parameters(dtype):
    x = np.empty(1000, dtype)
    initlab.uniform_(x, 0.25, 0.25, seed=1)
    assert np.all(as_f64(x) == 0.25)
    initlab.normal_(x, 1.5, 0.0, seed=1)
    assert np.all(as_f64(x) == 1.5)


def test_uniform_is_not_constant_and_covers_the_interval():
    x = _fill(initlab.uniform_, np.float32, seed=28)
    assert x.min() < 1e-4 and x.max() > 1 - 1e-4
    counts = np.histogram(x, bins=20, range=(0, 1))[0]
    assert stats.chisquare(counts).pvalue > 1e-3
