"""trunc_normal_ in its hard regimes: far tails, very narrow and one-sided intervals, absolute
bounds with a tiny std (torch's trunc_normal_(std=0.02)); bounds kept in every dtype; a clear
ValueError when the dtype has no value in [a, b]."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import OptionalModule

special = OptionalModule("scipy.special")
stats = OptionalModule("scipy.stats")

import initlab
from conftest import BF16, FLOAT_DTYPE_IDS, FLOAT_DTYPES, as_f64, assert_ks, ks_pvalue, scaled

N = 200_000
INF = math.inf


class tn:
    """N(mean, std**2) truncated to [a, b]: a fast vectorised CDF in log space (scipy.special),
    checked against scipy.stats.truncnorm by test_fast_cdf_matches_scipy_truncnorm."""

    def __init__(self, mean, std, a, b):
        self.mean, self.std = mean, std
        self.al, self.be = (a - mean) / std, (b - mean) / std
        self.frozen = stats.truncnorm(self.al, self.be, loc=mean, scale=std)

    def cdf(self, x):
        z = np.clip((np.asarray(x, np.float64) - self.mean) / self.std, self.al, self.be)
        lp = special.log_ndtr
        if self.be <= 0:  # left side: ratios of Phi in log space
            ra = np.exp(lp(self.al) - lp(self.be))
            return (np.exp(lp(z) - lp(self.be)) - ra) / (1.0 - ra)
        if self.al >= 0:  # right side: ratios of Phi(-x)
            rb = np.exp(lp(-self.be) - lp(-self.al))
            return (1.0 - np.exp(lp(-z) - lp(-self.al))) / (1.0 - rb)
        pa, pb = special.ndtr(self.al), special.ndtr(self.be)
        return (special.ndtr(z) - pa) / (pb - pa)


# (mean, std, a, b): absolute bounds, as torch.
REGIMES = {
    "right_tail_5_6": (0.0, 1.0, 5.0, 6.0),
    "left_tail_-40_-39": (0.0, 1.0, -40.0, -39.0),
    "far_tail_shifted": (2.0, 0.5, 2.0 + 0.5 * 7.0, 2.0 + 0.5 * 7.5),
    "narrow_1e-3": (0.0, 1.0, -1e-3, 1e-3),
    "narrow_off_centre": (0.0, 1.0, 1.0, 1.0 + 1e-3),
    "one_sided_upper": (0.0, 1.0, -INF, 1.0),
    "one_sided_lower": (0.0, 1.0, -0.5, INF),
    "one_sided_left_tail": (0.0, 1.0, -INF, -3.0),
    "tiny_std_torch": (0.0, 0.02, -2.0, 2.0),
    "default": (0.0, 1.0, -2.0, 2.0),
    "asymmetric": (3.0, 2.0, -1.0, 10.0),
}
# Where a 5%-wrong std changes nothing measurable (the interval is a sliver of the density).
NO_SCALE_SENSITIVITY = {"narrow_1e-3", "narrow_off_centre"}


@pytest.mark.parametrize("regime", list(REGIMES))
def test_fast_cdf_matches_scipy_truncnorm(regime):
    mean, std, a, b = REGIMES[regime]
    d = tn(mean, std, a, b)
    q = np.linspace(0.0005, 0.9995, 300)
    x = d.frozen.ppf(q)
    np.testing.assert_allclose(d.cdf(x), d.frozen.cdf(x), rtol=1e-9, atol=1e-12)


# Regression: float32 far-tail intervals once used the float32 inverse CDF outside its range.


def _ks_cases():
    for regime in REGIMES:
        for dtype, did in ((np.float32, "f32"), (np.float64, "f64")):
            yield pytest.param(regime, dtype, id=f"{regime}-{did}")


@pytest.mark.parametrize("regime,dtype", list(_ks_cases()))
def test_ks_hard_regimes(regime, dtype):
    mean, std, a, b = REGIMES[regime]
    x = np.empty(N, dtype)
    initlab.trunc_normal_(x, mean, std, a, b, seed=101)
    xv = as_f64(x)
    assert xv.min() >= a and xv.max() <= b
    wrong = () if regime in NO_SCALE_SENSITIVITY else scaled(lambda s: tn(mean, s, a, b), std)
    assert_ks(xv, tn(mean, std, a, b), wrong)


def test_narrow_interval_is_not_a_constant():
    # ±1e-3 sigma: nearly uniform on the interval, but it must fill it.
    x = np.empty(N, np.float64)
    initlab.trunc_normal_(x, 0.0, 1.0, -1e-3, 1e-3, seed=102)
    assert x.min() < -0.999e-3 and x.max() > 0.999e-3
    assert abs(x.std() - 2e-3 / math.sqrt(12)) < 0.01 * 2e-3 / math.sqrt(12)


@pytest.mark.parametrize("a,b", [(-INF, -6.0), (6.0, INF)])
def test_far_one_sided_tail_float32(a, b):
    n = 1_000_000
    x = np.empty(n, np.float32)
    initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=103)
    edge = b if math.isfinite(b) else a
    # the density near the bound is ~6/sigma; a float32 ulp there is 4.8e-7 -> P(x == bound) ~ 1e-6
    assert np.mean(x == np.float32(edge)) < 1e-4
    assert ks_pvalue(np.sort(x.astype(np.float64)), tn(0.0, 1.0, a, b).cdf) > 1e-3


@pytest.mark.parametrize("a,b", [(-INF, -6.0), (6.0, INF), (-INF, -20.0), (30.0, INF)])
def test_far_one_sided_tail_float64(a, b):
    x = np.empty(N, np.float64)
    initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=104)
    assert x.min() >= a and x.max() <= b
    assert_ks(x, tn(0.0, 1.0, a, b), scaled(lambda s: tn(0.0, s, a, b), 1.0))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
@pytest.mark.parametrize("regime", list(REGIMES) + ["unrepresentable_bounds", "huge_std"])
def test_never_outside_bounds(regime, dtype):
    if regime == "unrepresentable_bounds":
        mean, std, a, b = 0.0, 1.0, 0.1, 0.30000001
    elif regime == "huge_std":
        mean, std, a, b = 0.0, 1e6, -0.3, 0.7  # essentially uniform: every value near the bounds
    else:
        mean, std, a, b = REGIMES[regime]
    if dtype == np.float16 and regime in ("left_tail_-40_-39",):
        pass  # representable (-40 .. -39 step 2**-5)
    x = np.empty(50_000, dtype)
    initlab.trunc_normal_(x, mean, std, a, b, seed=105)
    v = as_f64(x)
    assert np.all(np.isfinite(v))
    assert v.min() >= a, (v.min(), a)
    assert v.max() <= b, (v.max(), b)


@pytest.mark.parametrize("dtype,a,b", [
    (np.float16, 1.0001, 1.0002),
    (np.float16, -1.0002, -1.0001),
    (np.float32, 1.0 + 1e-9, 1.0 + 2e-9),
] + ([(BF16, 1.001, 1.002)] if BF16 is not None else []))
def test_no_representable_value_raises(dtype, a, b):
    x = np.full(16, 7.0, dtype)
    before = x.tobytes()
    with pytest.raises(ValueError, match="no .* value lies in"):
        initlab.trunc_normal_(x, 1.0, 1.0, a, b, seed=1)
    assert x.tobytes() == before
    # float64 has values there and works.
    y = np.empty(16, np.float64)
    initlab.trunc_normal_(y, 1.0, 1.0, a, b, seed=1)
    assert np.all((y >= a) & (y <= b))


def test_single_representable_value_fills_it():
    # [1.0001, 1.001] in float16 contains exactly 1.0009765625.
    x = np.empty(100, np.float16)
    initlab.trunc_normal_(x, 1.0, 1.0, 1.0001, 1.001, seed=1)
    assert np.all(x == np.float16(1.0009765625))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_mean_far_outside_interval(dtype):
    # mean 10 sigma above b: the mass piles up at b with an exponential profile.
    mean, std, a, b = 10.0, 1.0, -1.0, 0.0
    x = np.empty(N, dtype)
    initlab.trunc_normal_(x, mean, std, a, b, seed=106)
    assert as_f64(x).max() <= b and as_f64(x).min() >= a
    assert_ks(x, tn(mean, std, a, b), scaled(lambda s: tn(mean, s, a, b), std))


@pytest.mark.parametrize("dtype", [np.float16] + ([BF16] if BF16 is not None else []), ids=["f16", "bf16"][: 1 + (BF16 is not None)])
def test_lowp_moments_hard_regimes(dtype):
    for regime in ("tiny_std_torch", "one_sided_lower", "right_tail_5_6"):
        mean, std, a, b = REGIMES[regime]
        x = np.empty(N, dtype)
        initlab.trunc_normal_(x, mean, std, a, b, seed=107)
        v = as_f64(x)
        d = tn(mean, std, a, b).frozen
        rel = 2.0**-11 if dtype == np.float16 else 2.0**-8
        scale = max(abs(d.mean()), d.std())
        assert abs(v.mean() - d.mean()) < 5 * d.std() / math.sqrt(N) + rel * scale
        assert abs(v.std() - d.std()) < 5 * d.std() * math.sqrt(2.0 / N) + 2 * rel * scale


@pytest.mark.parametrize("dtype,mean,std", [(np.float16, 1e5, 1.0), (BF16, 3.3e38, 1e37), (np.float32, 3.3e38, 1e37)])
def test_infinite_bound_never_gives_an_infinite_value(dtype, mean, std):
    # The dtype cannot hold most of N(mean, std)'s values: the interval [-1, inf) is cut to the
    # dtype's finite range, so samples pile up below the largest finite value instead of rounding to inf.
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    x = np.empty(1000, dtype)
    initlab.trunc_normal_(x, mean, std, -1.0, np.inf, seed=5)
    v = as_f64(x)
    assert np.all(np.isfinite(v)) and v.min() >= -1.0


def test_interval_beyond_the_dtype_range_is_an_error():
    x = np.full(8, 7.0, np.float16)
    with pytest.raises(ValueError, match="no finite float16 value"):
        initlab.trunc_normal_(x, 0.0, 1.0, 1e30, np.inf, seed=1)
    assert np.all(x == 7.0)


# float64 values follow the documented exact rejection (issue 13): tests/test_mappings.py
# (test_float64_trunc_follows_the_documented_rejection) reconstructs them from Philox words.
