"""The demo's numbers and verdicts against theory: ReLU closed forms, tanh mean-field, the verdict rule."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from initlab.demo import DEFAULT_DRAWS, KEEP_BAND, run_demo, verdict

# Expected per-layer factor of the variance for ReLU at width 10: 5 sigma^2 (He: 1, Xavier: 1/2).
RELU_FACTORS = {
    "N(0, 1e-05^2)": 5 * 1e-10,
    "N(0, 0.001^2)": 5 * 1e-6,
    "N(0, 0.01^2)": 5 * 1e-4,
    "N(0, 0.1^2)": 5 * 1e-2,
    "N(0, 0.5^2)": 5 * 0.25,
    "Xavier (Glorot) normal": 0.5,
    "He (Kaiming) normal, relu gain": 1.0,
    "orthogonal, relu gain": 1.0,
}
RELU_VERDICTS = ["vanishes"] * 4 + ["explodes", "vanishes", "keeps", "keeps", "keeps"]
TANH_VERDICTS = ["vanishes"] * 4 + ["settles", "vanishes", "settles", "settles", "keeps"]


@pytest.fixture(scope="module")
def relu():
    return run_demo(output=None, out=io.StringIO())


@pytest.fixture(scope="module")
def tanh():
    out = io.StringIO()
    res = run_demo(activation="tanh", output=None, out=out)
    res.text = out.getvalue()
    return res


def test_relu_factors_match_closed_forms_within_their_standard_error(relu):
    assert [r.label for r in relu.rows][:-1] == list(RELU_FACTORS)
    for r in relu.rows[:-1]:
        want = RELU_FACTORS[r.label]
        assert r.draws == DEFAULT_DRAWS
        assert r.theory_name == "exact" and r.theory_factor == pytest.approx([want] * 7, rel=1e-12)
        for layer, (f, se) in enumerate(zip(r.factor, r.factor_se), start=2):
            # The tolerance comes from the number of draws: the spread of one draw's ratio is
            # below its mean, so se < want / sqrt(draws); 4.5 se is a 1-in-150000 event per check.
            assert 0 < se < want / math.sqrt(r.draws), (r.label, layer, se)
            assert abs(f - want) < 4.5 * se, (r.label, layer, f, want, se)
        # The factor fitted over all layers is closer still (~0.4% at 4096 draws).
        assert r.growth == pytest.approx(want, rel=0.015), r.label


def test_relu_table_variances_match_expectation(relu):
    # Layer 1 of N(0, sigma^2): E[np.var(z_1)] = (9/10) * sigma^2 * |X|^2 = 0.9 * 55 sigma^2.
    r = relu["N(0, 0.1^2)"]
    assert r.theory_pre_var[0] == pytest.approx(0.9 * 55 * 0.01)
    assert r.pre_var[0] == pytest.approx(r.theory_pre_var[0], rel=0.05)
    for r in relu.rows[:-1]:
        # Each mean within 4.5 of its own standard errors (at width 10 these grow with depth:
        # a draw's variance is a product of per-layer factors, with a heavy right tail).
        for v, se, want in zip(r.pre_var, r.pre_var_se, r.theory_pre_var):
            assert abs(v - want) < 4.5 * se, (r.label, v, want, se)
    assert relu["He"].theory_pre_var == pytest.approx([0.9 * 55 * 0.4] * 8)  # He's first layer: 2 / fan_in = 2/5


def test_lsuv_row_has_unit_variance_within_lsuv_tolerance(relu):
    r = relu.rows[-1]
    assert r.label.startswith("LSUV")
    assert np.all(np.abs(np.array(r.pre_var) - 1) < 0.1)
    assert all(1 / 1.25 < f < 1.25 for f in r.factor)


def test_relu_verdicts(relu):
    assert [r.verdict for r in relu.rows] == RELU_VERDICTS
    assert [r.theory_verdict for r in relu.rows] == RELU_VERDICTS
    assert relu["N(0, 0.5^2)"].verdict != "keeps"  # x1.25 per layer: 12 -> 60 over 8 layers


def test_tanh_verdicts_agree_with_mean_field(tanh):
    assert [r.verdict for r in tanh.rows] == TANH_VERDICTS
    assert [r.theory_verdict for r in tanh.rows] == TANH_VERDICTS
    for r in tanh.rows[:-1]:
        assert r.theory_name == "mean-field"
        # Mean-field is exact only for infinitely wide layers; at width 10 the fitted factor is within a few percent.
        assert r.growth == pytest.approx(r.theory_growth, rel=0.05), r.label
    he, orth = tanh["He"], tanh["orthogonal"]
    assert he.verdict == orth.verdict  # same curve shape, same word
    assert "settles toward the fixed point" in tanh.text and "vanishes" in tanh.text


def test_verdict_rule_thresholds():
    layers = np.arange(8)
    assert verdict(1.25**layers)[0] == "explodes"
    assert verdict(0.84**layers)[0] == "vanishes"
    assert verdict(np.ones(8))[0] == "keeps"
    assert verdict(1.05**layers)[0] == "keeps"
    # Fitted over all layers, not first/last only: steady growth with a drop at the last layer
    # (first = last) is not "keeps" with a factor of 1.
    word, g, _ = verdict([1.0, 1.25, 1.56, 1.95, 2.44, 3.05, 3.81, 1.0])
    assert g > 1.05
    lo, hi = KEEP_BAND
    assert 0.84 < lo <= 0.9 and 1.11 <= hi < 1.25  # x0.84/layer vanishes, x1.25/layer explodes
    # A saturating profile: falls at first, then levels off.
    assert verdict([30, 2.4, 1.5, 1.3, 1.25, 1.22, 1.21, 1.2])[0] == "settles"
    assert verdict([1.0, 1e-5, 0.0, 0.0])[0] == "vanishes"
    g = verdict(0.5**layers)[1]
    assert g == pytest.approx(0.5)


def test_demo_is_reproducible_and_validates():
    a = run_demo(depth=4, draws=64, sigmas=(0.5,), lsuv_draws=2, output=None, out=io.StringIO())
    b = run_demo(depth=4, draws=64, sigmas=(0.5,), lsuv_draws=2, output=None, out=io.StringIO())
    assert [r.factor for r in a] == [r.factor for r in b] and [r.pre_var for r in a] == [r.pre_var for r in b]
    with pytest.raises(ValueError) as e:
        run_demo(depth=1, draws=0, sigmas=(-1.0, 0.1), output=None, out=io.StringIO())
    msg = str(e.value)
    assert "depth" in msg and "draws" in msg and "[-1.0]" in msg


def test_demo_figure_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = io.StringIO()
    p = tmp_path / "d.png"
    run_demo(depth=4, draws=64, sigmas=(1e-5, 0.5), lsuv_draws=2, output=str(p), out=out)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"figure written to {p}" in out.getvalue()


@pytest.mark.parametrize("activation, per_sigma2, theory", [("linear", 10.0, "exact"), ("leaky_relu", 5 * (1 + 0.01**2), "exact"),
                                                            ("gelu", None, "mean-field"), ("selu", None, "mean-field")])
def test_other_activations_use_their_own_theory(activation, per_sigma2, theory):
    res = run_demo(activation=activation, depth=5, draws=1024, sigmas=(0.1, 0.5), lsuv_draws=2, output=None, out=io.StringIO())
    for r in res.rows[:-1]:
        assert r.theory_name == theory
        if per_sigma2 is not None and r.label.startswith("N(0"):
            s = float(r.label[4:].split("^")[0])
            assert r.theory_factor[0] == pytest.approx(per_sigma2 * s * s)
        for f, se, want in zip(r.factor, r.factor_se, r.theory_factor):
            assert abs(f - want) < 4.5 * se + (0.1 * want if theory == "mean-field" else 0), (r.label, f, want, se)
    assert [r.verdict for r in res.rows] == [r.theory_verdict for r in res.rows]


# ---- issue 19 item 11: a verdict must not depend on stopping early --------------------------


@pytest.mark.parametrize("depth", [8, 30])
def test_item11_selu_converging_to_its_fixed_point_is_not_vanishing(depth):
    # SELU: Xavier (= LeCun for square layers) converges to the fixed point 1, He/orthogonal with
    # torch's 3/4 gain to q* ~ 0.02; at depth 8 these were called "vanishes x0.781" etc.
    res = run_demo(activation="selu", depth=depth, draws=1024, lsuv_draws=2, output=None, out=io.StringIO())
    for label in ("Xavier", "He", "orthogonal"):
        r = res[label]
        assert r.verdict in ("keeps", "settles"), (depth, label, r.verdict, r.describe())
        assert r.theory_verdict in ("keeps", "settles"), (depth, label, r.theory_verdict)
        assert math.isfinite(r.fixed_point) and r.fixed_point > 0
    assert res["He"].fixed_point == pytest.approx(0.0230338 * 9 / 10, rel=1e-3)  # depth_stability's q*, as np.var
    assert "fixed point" in res["He"].describe()
    # what really vanishes (q* = 0) or explodes still says so
    assert res["N(0, 0.1^2)"].verdict == "vanishes" and res["N(0, 0.5^2)"].verdict == "explodes"


def test_item11_verdict_judges_convergence_toward_the_theorys_fixed_point():
    prof = [5.77, 2.24, 1.06, 0.574, 0.335, 0.215, 0.156, 0.119]  # SELU, He with gain 3/4, depth 8
    assert verdict(prof)[0] == "vanishes"  # without theory: the profile alone looks like decay
    assert verdict(prof, fixed_point=0.0207)[0] == "settles"
    # moving away from the fixed point is not settling
    assert verdict(prof[::-1], fixed_point=0.0207)[0] == "explodes"
    assert verdict(0.5 ** np.arange(8), fixed_point=None)[0] == "vanishes"
