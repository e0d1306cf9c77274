"""The element -> counter mappings introduced by issue 13 (see csrc/include/initlab/distributions.hpp),
reconstructed independently from Philox words, and distribution tests sized to catch a 1% error
in the standard deviation on the new routes:

- float32 uniform_: 24 random bits per element, five elements per Philox block in lane-major
  super-blocks of 16 blocks (80 elements);
- float16/bfloat16 uniform_: 16 random bits per element, eight elements per block in lane-major
  super-blocks of 16 blocks (128 elements);
- float16/bfloat16 normal_: one word per Box-Muller pair, tail pairs refined by a word of their own;
- trunc_normal_'s hard regimes (every dtype) and every float64 trunc_normal_: exact rejection
  (uniform / exponential / normal proposals) from each element's own counters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import initlab
from conftest import BF16, OptionalModule, as_f64, bits, ks_pvalue, philox_block, uniform16_ref, uniform_f32_ref

# Issue 19 item 20: without scipy the file used to error at collection; now only the tests that
# use scipy.stats are skipped.
stats = OptionalModule("scipy.stats")

LOWP = [np.float16] + ([BF16] if BF16 is not None else [])
LOWP_IDS = ["f16", "bf16"][: len(LOWP)]


# ---- float32 uniform: five elements per block, super-blocks of 80 ------------------------------

_U32_REF = {}


def _u32_ref(seed):
    if seed not in _U32_REF:
        _U32_REF[seed] = uniform_f32_ref(seed, 0, range(3000))
    return _U32_REF[seed]


_U16_REF = {}


def _u16_ref(seed):
    if seed not in _U16_REF:
        _U16_REF[seed] = uniform16_ref(seed, 0, range(3000))
    return _U16_REF[seed]


@pytest.mark.parametrize("dn", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("path", ["scalar", "sse2", "avx2", "avx512"])
def test_uniform_windows_on_every_simd_path(path, dn):
    # every way a window can cut the super-blocks (80 float32 / 128 16-bit elements): starts inside
    # a super-block's first and last parts, lengths shorter than one super-block and spanning
    # several, and windows across the 1280-element chunk boundary of the fill loop
    if path not in initlab.available_simd_paths():
        pytest.skip(f"{path} not available on this CPU")
    dtype = {"f32": np.float32, "f16": np.float16, "bf16": BF16}[dn]
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    if dn == "f32":
        ref = _u32_ref(77)
    else:  # U[0, 1) in float32, clamped to the largest value below 1, rounded to nearest even
        hi = np.float32(np.nextafter(np.array(1.0, dtype), np.array(0.0, dtype)).astype(np.float32))
        ref = np.minimum(_u16_ref(77), hi).astype(dtype)
    initlab.set_simd_path(path)
    try:
        for start in (0, 1, 15, 16, 63, 64, 65, 79, 80, 81, 127, 128, 129, 159, 1279, 1280, 1281):
            for length in (1, 2, 15, 16, 17, 64, 79, 80, 81, 128, 161, 257, 1300):
                if start + length > ref.size:
                    continue
                x = np.empty((1, length), dtype)
                initlab.uniform_(x, seed=77, global_shape=(1, 3000), offset=(0, start))
                assert bits(x[0]).tobytes() == bits(ref[start:start + length]).tobytes(), (path, dn, start, length)
    finally:
        initlab.set_simd_path("auto")


def test_uniform_f32_uses_the_byte_part_of_each_block():
    # element 64 of a super-block is built from the low bytes of block 0's words 0, 1, 2: check it
    # against the words themselves, not against the reference function
    for seed in (0, 9, 2**64 - 1):
        w = philox_block(seed, 0, 16 * 3)  # super-block 3
        x = np.empty(3 * 80 + 65, np.float32)
        initlab.uniform_(x, seed=seed)
        want = (((w[0] & 0xFF) << 16) | ((w[1] & 0xFF) << 8) | (w[2] & 0xFF)) * 2.0**-24
        assert float(x[3 * 80 + 64]) == want
        assert float(x[3 * 80 + 16]) == (w[1] >> 8) * 2.0**-24  # element 16 k + j: word k of block j


@pytest.mark.parametrize("dn", ["f32", "f16", "bf16"])
def test_uniform_every_position_of_the_super_block_is_uniform_and_uncorrelated(dn):
    # Each position r of a super-block draws different bits (top 24 bits of a word, the byte part,
    # the low or high half of a word): each position class on its own must be U[0, 1), and
    # neighbours in memory (lag 1), across the block lanes (lag 16) and across super-blocks
    # (lag 80 / 128) must be uncorrelated. n values per class: KS catches a 1% error in the
    # scale (D ~ 1.36 / sqrt(n) = 0.0054 at n = 64000); correlations are held to 5 / sqrt(n).
    dtype = {"f32": np.float32, "f16": np.float16, "bf16": BF16}[dn]
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    period = 80 if dn == "f32" else 128
    classes = [(0, 16), (16, 64), (64, 80)] if dn == "f32" else [(0, 128, 0), (0, 128, 1)]
    x = np.empty(period * 64000, dtype)
    initlab.uniform_(x, seed=2024)
    v = x.astype(np.float64).reshape(-1, period)
    for c in classes:
        if dn == "f32":
            sample = v[:, c[0]:c[1]].ravel()[:64000]
        else:  # low halves (even positions) and high halves (odd positions) of the words
            sample = v[:, c[2]::2].ravel()[:64000]
        p = ks_pvalue(np.sort(sample), lambda t: np.clip(t, 0.0, 1.0))
        assert p > 1e-4, (dn, c, p)
        wrong = ks_pvalue(np.sort(sample) * 1.01, lambda t: np.clip(t, 0.0, 1.0))
        assert wrong < 1e-4, (dn, c, wrong)  # the sample size resolves a 1% error
    flat = x.astype(np.float64) - 0.5
    n = flat.size
    for lag in (1, 16, period - 1, period, period + 1):
        r = float(np.dot(flat[:-lag], flat[lag:]) / np.dot(flat, flat))
        assert abs(r) < 5 / np.sqrt(n), (dn, lag, r)


@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
def test_normal16_tails_reach_beyond_the_main_words(dtype):
    # 16-bit normal_ draws one word per pair; radii beyond 3.53 come from the refining word. The
    # tail masses at 3.5, 4, 4.5 and 5 sigma must match the normal's (Poisson bounds, 5 sd), and
    # the KS test must accept the whole sample and reject a 1%-wrong scale.
    n = 1 << 23
    x = np.empty(n, dtype)
    initlab.normal_(x, 0.0, 1.0, seed=77)
    a = np.abs(x.astype(np.float64))
    for t in (3.5, 4.0, 4.5, 5.0):
        want = n * 2 * stats.norm.sf(t)
        got = int((a > t).sum())
        assert abs(got - want) < 5 * math.sqrt(want) + 2, (t, got, want)
    assert a.max() > 5.0
    s = np.sort(x.astype(np.float64)[: 1 << 20])
    assert ks_pvalue(s, stats.norm.cdf) > 1e-4
    assert ks_pvalue(s, stats.norm(scale=1.01).cdf) < 1e-4


# ---- float16 / bfloat16 uniform ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
@pytest.mark.parametrize("seed", [0, 5, 2**64 - 1])
def test_uniform16_reconstructed_from_philox(dtype, seed):
    hi = np.float32(np.nextafter(np.array(1.0, dtype), np.array(0.0, dtype)).astype(np.float32))
    a = np.empty(61, dtype)
    initlab.uniform_(a, seed=seed)
    ref = np.minimum(uniform16_ref(seed, 0, range(61)), hi).astype(dtype)
    assert bits(a).tobytes() == bits(ref).tobytes()
    # an unaligned block far into a sharded tensor: the mapping follows the global index
    gs, off = (2**20, 2**20), (2**19 + 3, 12345)
    b = np.empty((2, 13), dtype)
    initlab.uniform_(b, seed=seed, global_shape=gs, offset=off)
    idx = [(off[0] + r) * gs[1] + off[1] + c for r in range(2) for c in range(13)]
    ref = np.minimum(uniform16_ref(seed, 0, idx), hi).astype(dtype).reshape(2, 13)
    assert bits(b).tobytes() == bits(ref).tobytes()


@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
def test_uniform16_affine_bounds(dtype):
    a = np.empty(4099, dtype)
    initlab.uniform_(a, -1.0, 3.0, seed=8)
    u = uniform16_ref(8, 0, range(4099))
    y = np.float32(-1.0) + np.float32(4.0) * u  # two float32 operations, as the kernel
    hi = np.float32(np.nextafter(np.array(3.0, dtype), np.array(0.0, dtype)).astype(np.float32))
    ref = np.clip(y, np.float32(-1.0), hi).astype(dtype)
    assert bits(a).tobytes() == bits(ref).tobytes()


@pytest.mark.parametrize("dtype", LOWP, ids=LOWP_IDS)
def test_uniform16_moments_catch_one_percent(dtype):
    n = 4_000_000
    x = np.empty(n, dtype)
    initlab.uniform_(x, -1.0, 1.0, seed=9)
    v = as_f64(x)
    # mean and variance of the dtype-rounded U[-1, 1) are those of U[-1, 1) to far below these tolerances
    sd = 1.0 / math.sqrt(3.0)
    assert abs(v.mean()) < 5 * sd / math.sqrt(n)
    assert abs(v.std() - sd) < 5 * sd / math.sqrt(2 * n) * 1.3  # uniform's kurtosis: var(s^2) < var for normal
    assert 0.01 * sd > 10 * sd / math.sqrt(2 * n)  # a 1% error in std would be > 10 sigma here
    # the draws use their 16 bits: near 0 (where the dtype's grid is finer than 2^-15) the
    # values sit on the 2^-15 lattice of a + (b - a) h 2^-16, and every lattice point is reached
    small = v[np.abs(v) < 2.0**-7]
    assert np.all(np.round(small * 2.0**15) == small * 2.0**15)
    assert np.unique(small).size == 2 * 2**8 - 1  # -2^-7 < y = -1 + h 2^-15 < 2^-7


# ---- truncated normal: exact rejection --------------------------------------------------------

def _u53(lo, hi):
    return (((lo | (hi << 32)) >> 11) + 0.5) * 2.0**-53


def trunc_reject_ref(seed, stream, g, alpha, beta):
    """Documented rejection sampler for element g of a standardized interval [alpha, beta]."""
    a, b, flip = alpha, beta, False
    if b <= 0.0:
        a, b, flip = -beta, -alpha, True
    if a >= 0.0:
        mode = 0 if (b - a) * (b + a) <= 2.0 else 1
        c = a * a
        lam = 0.5 * (a + math.sqrt(a * a + 4.0))
    else:
        mode = 0 if (-a <= 1.5 and b <= 1.5) else 2
        c = 0.0
    z = a
    for at in range(256):
        w = philox_block(seed, stream, 2**63 + (g << 8) + at)
        u1, u2 = _u53(w[0], w[1]), _u53(w[2], w[3])
        if mode == 0:
            z = a + (b - a) * u1
            t = 0.5 * (a - z) * (a + z) if c > 0 else -0.5 * z * z
            if u2 <= math.exp(t):
                break
        elif mode == 1:
            z = a - math.log(u1) / lam
            if z <= b and u2 <= math.exp(-0.5 * (z - lam) ** 2):
                break
        else:
            r = math.sqrt(-2.0 * math.log(u1))
            th = 2.0 * math.pi * (((w[2] | (w[3] << 32)) >> 11) * 2.0**-53)
            z = r * math.cos(th)
            if a <= z <= b:
                break
            z = r * math.sin(th)
            if a <= z <= b:
                break
    x = -z if flip else z
    return min(max(x, alpha), beta)


# (a, b) standardized; which proposal: 0 uniform, 1 exponential, 2 normal (mirrored when b <= 0)
REJECT_CASES = [(-2.0, 2.0), (0.0, math.inf), (-3.0, 1.0), (-100.0, 100.0), (5.0, 6.0), (-1e-3, 1e-3),
                (-6.0, -5.0), (1.0, 1.001), (-1.0, 1.0), (-math.inf, -30.0)]


@pytest.mark.parametrize("a,b", REJECT_CASES)
def test_float64_trunc_follows_the_documented_rejection(a, b):
    seed, n = 77, 48
    x = np.empty(n, np.float64)
    initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=seed)
    ref = [trunc_reject_ref(seed, 0, g, max(a, -1e150), min(b, 1e150)) for g in range(n)]
    # Python's libm against the core's own log/exp/sincos: equal to rounding (a decision that
    # flips on the last bit has probability ~1e-16 per draw)
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("a,b", [(5.0, 6.0), (-1e-3, 1e-3), (1.0, 1.001)])
def test_float32_hard_regimes_follow_the_documented_rejection(a, b):
    seed, n = 78, 40
    x = np.empty(n, np.float32)
    initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=seed)
    ref = np.array([trunc_reject_ref(seed, 0, g, a, b) for g in range(n)], np.float32)
    np.testing.assert_allclose(x, ref, rtol=2e-7)


def _ks_one_percent(x, make, std):
    xs = np.sort(as_f64(x))
    assert ks_pvalue(xs, make(std).cdf) > 1e-3
    for s in (0.99 * std, 1.01 * std):
        assert ks_pvalue(xs, make(s).cdf) < 1e-6, f"KS cannot tell std {s} from {std}"


@pytest.mark.parametrize("a,b", [(-2.0, 2.0), (-3.0, 1.5), (-0.5, math.inf), (0.5, math.inf), (-math.inf, 1.0)])
def test_float64_rejection_ks_catches_one_percent_std(a, b):
    n = 4_000_000
    x = np.empty(n, np.float64)
    initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=31)
    assert x.min() >= a and x.max() <= b
    _ks_one_percent(x, lambda s: stats.truncnorm(a / s, b / s, scale=s), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_far_tail_rejection_ks_and_tail_mass(dtype):
    # [4, inf): the mass beyond 5 and 6 sigma (relative to the interval) matches the exact truncated normal
    n = 2_000_000
    x = np.empty(n, dtype)
    initlab.trunc_normal_(x, 0.0, 1.0, 4.0, math.inf, seed=32)
    v = as_f64(x)
    assert v.min() >= 4.0
    d = stats.truncnorm(4.0, math.inf)
    assert ks_pvalue(np.sort(v), d.cdf) > 1e-3
    for t in (4.5, 5.0, 5.5, 6.0):
        p = d.sf(t)
        k = int((v > t).sum())
        assert abs(k - n * p) < 5 * math.sqrt(n * p * (1 - p)) + 1, (t, k, n * p)


@pytest.mark.parametrize("dn", ["f16", "bf16"])
def test_simd_paths_trunc_hard_regimes_lowp(dn):
    dtype = np.float16 if dn == "f16" else BF16
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    for a, b in [(5.0, 6.0), (-1e-2, 1e-2), (-np.inf, -4.0)]:
        try:
            initlab.set_simd_path("scalar")
            ref = np.empty(4099, dtype)
            initlab.trunc_normal_(ref, 0.0, 1.0, a, b, seed=3)
            for p in initlab.available_simd_paths():
                initlab.set_simd_path(p)
                x = np.empty(4099, dtype)
                initlab.trunc_normal_(x, 0.0, 1.0, a, b, seed=3)
                assert bits(x).tobytes() == bits(ref).tobytes(), (p, a, b)
        finally:
            initlab.set_simd_path("auto")


@pytest.mark.parametrize("dn", ["f32", "f64", "f16", "bf16"])
def test_new_routes_bit_identical_across_threads_and_shards(dn):
    dtype = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": BF16}[dn]
    if dtype is None:
        pytest.skip("ml_dtypes not installed")
    cases = [(initlab.uniform_, (-1.0, 2.0)), (initlab.trunc_normal_, (0.0, 1.0, 5.0, 6.0)),
             (initlab.trunc_normal_, (0.0, 1.0, -2.0, 2.0)), (initlab.normal_, (0.0, 0.02))]
    for fn, args in cases:
        full = []
        for t in (1, 2, 3):
            x = np.empty((211, 331), dtype)
            with initlab.num_threads(t):
                fn(x, *args, seed=12)
            full.append(bits(x).tobytes())
        assert full[0] == full[1] == full[2], fn
        ref = np.frombuffer(full[0], bits(x).dtype).reshape(211, 331)
        blk = np.empty((17, 29), dtype)
        fn(blk, *args, seed=12, global_shape=(211, 331), offset=(101, 7))
        assert bits(blk).tobytes() == ref[101:118, 7:36].tobytes(), fn
        fo = np.empty((211, 331), dtype, order="F")
        fn(fo, *args, seed=12)
        assert bits(np.ascontiguousarray(fo)).tobytes() == full[0], fn


def test_rejection_counters_need_indices_below_2_55():
    # element g's rejection counters are blocks 2^63 + 256 g + attempt: distinct for g < 2^55
    x = np.full((1, 4), 7.0)
    with pytest.raises(ValueError, match="2\\^55"):
        initlab.trunc_normal_(x, 0.0, 1.0, -2.0, 2.0, seed=1, global_shape=(2**30, 2**30), offset=(2**30 - 1, 0))
    assert np.all(x == 7.0)
    y = np.empty((1, 4))  # just below the limit: fine, and a shard of the same global tensor agrees
    initlab.trunc_normal_(y, 0.0, 1.0, -2.0, 2.0, seed=1, global_shape=(2**27, 2**28), offset=(2**27 - 1, 2**28 - 4))
    z = np.empty((1, 2))
    initlab.trunc_normal_(z, 0.0, 1.0, -2.0, 2.0, seed=1, global_shape=(2**27, 2**28), offset=(2**27 - 1, 2**28 - 2))
    np.testing.assert_array_equal(y[:, 2:], z)
    # the float32 central route uses the main stream only: no such limit
    f = np.empty((1, 4), np.float32)
    initlab.trunc_normal_(f, 0.0, 1.0, -2.0, 2.0, seed=1, global_shape=(2**30, 2**30), offset=(2**30 - 1, 0))
