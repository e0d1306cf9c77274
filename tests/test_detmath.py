"""The core's deterministic (libm-free) math, through the `_core.eval_detmath` test hook,
compared with NumPy/SciPy (libm) to a few ulp over the ranges the samplers use."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OptionalModule

sp = OptionalModule("scipy.special")

from initlab import _core

ev = _core.eval_detmath
RNG = np.random.default_rng(20240601)


def ulp32(ref):
    return np.spacing(np.abs(np.asarray(ref, np.float64)).astype(np.float32)).astype(np.float64)


def ulp64(ref):
    return np.spacing(np.abs(np.asarray(ref, np.float64)))


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="unknown function"):
        ev("no_such_function", [1.0])


def test_log_f32_within_2_ulp():
    x = np.concatenate([
        RNG.uniform(0, 1, 50_000),
        2.0 ** RNG.uniform(-126, 127, 50_000),
        1.0 + RNG.uniform(-1e-3, 1e-3, 5_000),
        [2.0**-126, 1.0, 2.0, 0.5, np.sqrt(2.0), 3.4e38],
    ]).astype(np.float32).astype(np.float64)
    x = x[x > 0]
    ref = np.log(x)
    err = np.abs(ev("log_f32", x) - ref)
    assert np.all(err <= 2 * ulp32(ref) + 2.0**-149)
    assert ev("log_f32", [1.0])[0] == 0.0


def test_log_f64_within_2_ulp():
    x = np.concatenate([RNG.uniform(0, 1, 50_000), 2.0 ** RNG.uniform(-1022, 1023, 50_000),
                        1.0 + RNG.uniform(-1e-6, 1e-6, 5_000), [2.0**-1022, 1.0, 2.0, 1.7e308]])
    x = x[x > 0]
    ref = np.log(x)
    err = np.abs(ev("log_f64", x) - ref)
    assert np.all(err <= 2 * ulp64(ref) + 5e-324)


def test_exp_f64_within_1_ulp_including_subnormals():
    x = np.concatenate([RNG.uniform(-745, 709, 100_000), RNG.uniform(-1, 1, 10_000), [0.0, -708.4, -740.0]])
    ref = np.exp(x)
    got = ev("exp_f64", x)
    assert np.all(np.abs(got - ref) <= np.maximum(ulp64(ref), 5e-324))
    assert ev("exp_f64", [0.0])[0] == 1.0
    assert ev("exp_f64", [-800.0])[0] == 0.0


@pytest.mark.parametrize("name", ["ndtri_lower_f32", "ndtri_lower_f64"])
def test_ndtri_lower_in_the_float32_sampler_range(name):
    # The float32 inverse CDF sees p >= 2**-24 * (interval mass); Giles' single-precision
    # polynomial must be ~1e-6 relative there.
    p = np.concatenate([RNG.uniform(0, 0.5, 50_000), 10 ** RNG.uniform(np.log10(2.0**-24), np.log10(0.5), 50_000)])
    p = p.astype(np.float32).astype(np.float64)
    ref = sp.ndtri(p)
    got = ev(name, p)
    assert np.all(np.abs(got - ref) <= 2e-6 * np.abs(ref) + 1e-7)
    assert ev(name, [0.5])[0] == 0.0


@pytest.mark.parametrize("name", ["ndtri_lower_f32", "ndtri_lower_f64"])
def test_ndtri_lower_documented_domain_edge(name):
    # ndtri_lower is documented for 1e-8 <= p <= 1/2; smaller p goes to the log-space inverse.
    p = np.array([1e-8, 2e-8, 1e-7, 1e-6])
    np.testing.assert_allclose(ev(name, p), sp.ndtri(p), rtol=1e-5)


def test_log_ndtr_matches_scipy_where_relatively_accurate():
    x = np.concatenate([RNG.uniform(-40, 3, 50_000), -(10 ** RNG.uniform(0, 4, 5_000)), [-2.0, 0.0, 2.0, 3.0]])
    ref = sp.log_ndtr(x)
    got = ev("log_ndtr", x)
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)
    # Far positive: the absolute error is tiny (these values are ~ -Phi(-x)).
    xp = RNG.uniform(3, 40, 5_000)
    np.testing.assert_allclose(ev("log_ndtr", xp), sp.log_ndtr(xp), rtol=0, atol=1e-16)
    assert ev("log_ndtr", [np.inf])[0] == 0.0
    assert ev("log_ndtr", [-np.inf])[0] == -np.inf
    assert np.isnan(ev("log_ndtr", [np.nan])[0])


def test_log_ndtr_relative_accuracy_positive_tail():
    x = np.array([5.0, 7.9, 8.0, 10.0, 20.0])
    np.testing.assert_allclose(ev("log_ndtr", x), sp.log_ndtr(x), rtol=1e-12)


@pytest.mark.parametrize("name,f", [("sin2pi_u24", np.sin), ("cos2pi_u24", np.cos)])
def test_sincos_2pi_u24_within_2_ulp(name, f):
    k = np.concatenate([RNG.integers(0, 2**24, 100_000), np.arange(0, 2**24, 2**20),
                        [1, 2**21 - 1, 2**21, 2**22, 2**23, 3 * 2**22, 2**24 - 1]]).astype(np.float64)
    ref = f(2 * np.pi * k / 2**24)
    got = ev(name, k)
    assert np.all(np.abs(got - ref) <= 2 * ulp32(ref) + 1e-9)
    # exact quarter turns
    assert ev(name, [0.0])[0] == (0.0 if name.startswith("sin") else 1.0)


@pytest.mark.parametrize("name,f", [("sin2pi_u53", np.sin), ("cos2pi_u53", np.cos)])
def test_sincos_2pi_u53_at_exact_quarter_turns(name, f):
    k = np.array([0, 2**51, 2**52, 3 * 2**51], dtype=np.float64)
    np.testing.assert_array_equal(ev(name, k), np.round(f(2 * np.pi * k / 2**53)))


@pytest.mark.parametrize("name,f", [("sin2pi_u53", np.sin), ("cos2pi_u53", np.cos)])
def test_sincos_2pi_u53_at_exact_quarter_turns(name, f):
    k = np.array([0, 2**51, 2**52, 3 * 2**51], dtype=np.float64)
    np.testing.assert_array_equal(ev(name, k), np.round(f(2 * np.pi * k / 2**53)))


@pytest.mark.parametrize("name,f", [("sin2pi_u53", np.sin), ("cos2pi_u53", np.cos)])
def test_sincos_2pi_u53_within_few_ulp(name, f):
    k = RNG.integers(0, 2**53, 100_000, dtype=np.int64)
    ref = f(2 * np.pi * (k.astype(np.float64) / 2**53))  # argument exact to ~1 ulp of 2*pi
    got = ev(name, k.astype(np.float64))
    assert np.max(np.abs(got - ref)) <= 2e-15
