"""Issue 9, items 4-7 and 9 on NumPy destinations: aliasing, extreme parameters, bit identity
gaps, costs and limits, peers' semantics. Each test fails on the code before the fix."""

from __future__ import annotations

import math
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import initlab
from initlab._threads import MAX_THREADS
from initlab.init import _sparse_mask_coord
from initlab.linalg import householder_qr

from conftest import BF16, FLOAT_DTYPES, FLOAT_DTYPE_IDS, bits

RANDOM = [
    lambda x: initlab.uniform_(x, seed=1), lambda x: initlab.normal_(x, seed=1),
    lambda x: initlab.trunc_normal_(x, seed=1), lambda x: initlab.constant_(x, 2.0),
    lambda x: initlab.xavier_uniform_(x, seed=1), lambda x: initlab.kaiming_normal_(x, seed=1),
    lambda x: initlab.variance_scaling_(x, seed=1), lambda x: initlab.sparse_(x, 0.3, seed=1),
    lambda x: initlab.zero_init_(x), lambda x: initlab.orthogonal_(x, seed=1), lambda x: initlab.eye_(x),
]


# ---- item 4: aliased destinations -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
@pytest.mark.parametrize("call", RANDOM)
def test_overlapping_as_strided_view_is_rejected_untouched(call, dtype):
    base = np.arange(64, dtype=np.float32).astype(dtype)
    view = as_strided(base, shape=(8, 8), strides=(base.itemsize * 4, base.itemsize))  # rows overlap
    before = base.tobytes()
    with pytest.raises(ValueError, match="overlap"):
        call(view)
    assert base.tobytes() == before


def test_interleaved_but_disjoint_view_is_accepted():
    base = np.zeros(12)
    inter = as_strided(base, shape=(2, 3), strides=(24, 16))  # elements 0, 2, 4 / 3, 5, 7: interleaved, disjoint
    initlab.uniform_(inter, seed=1)
    np.testing.assert_array_equal(inter, initlab.uniform_(np.empty((2, 3)), seed=1))
    assert np.count_nonzero(base) == 6


# ---- item 5: extreme parameters -------------------------------------------------------------------

@pytest.mark.parametrize("mean,std,a,b", [
    (0.0, 1e-160, 1.0, 2.0), (0.0, 1e-160, -2.0, -1.0), (0.0, 1e-160, -math.inf, -1.0),
    (0.0, 1.0, 1e155, math.inf), (0.0, 1e-170, -1.0, 1.0), (5.0, 1e-200, -math.inf, 4.0),
])
def test_trunc_normal_far_tails_are_finite_and_in_bounds(mean, std, a, b):
    x = np.empty(4096)
    initlab.trunc_normal_(x, mean, std, a, b, seed=2)
    assert np.isfinite(x).all()
    assert (x >= a).all() and (x <= b).all()


def test_trunc_normal_far_tail_is_the_near_end():
    x = np.empty(100)
    initlab.trunc_normal_(x, 0.0, 1e-160, 1.0, 2.0, seed=2)
    assert (x == 1.0).all()  # the mass lies within 1e-160 of a


@pytest.mark.parametrize("dtype,v", [(np.float16, 1e5), (np.float32, 1e39)] + ([(BF16, 1e39)] if BF16 else []))
def test_uniform_degenerate_interval_beyond_range_is_a_value_error(dtype, v):
    x = np.zeros(16, dtype)
    with pytest.raises(ValueError, match="beyond the finite range"):
        initlab.uniform_(x, v, v)
    assert not x.any()


@pytest.mark.parametrize("dtype,mean,std", [
    (np.float16, 6e4, 1e4), (np.float16, 0.0, 1e4), (np.float32, 0.0, 1e38), (np.float64, 0.0, 1e308),
] + ([(BF16, 0.0, 1e38)] if BF16 else []))
def test_normal_that_could_overflow_is_a_value_error(dtype, mean, std):
    x = np.zeros(4096, dtype)
    with pytest.raises(ValueError, match="finite range"):
        initlab.normal_(x, mean, std, seed=1)
    assert not x.any()


def test_normal_at_the_limit_is_finite():
    # 16-bit normal_ refines its tail pairs down to u1 = 2^-42: |z| <= 7.6305 (the core's float32
    # log/sqrt of that u1), so the bound is 7.632; float32 words stop at 6.661
    from initlab import _core
    lg = np.float32(_core.eval_detmath("log_f32", np.array([2.0**-42]))[0])
    assert 7.63 < float(np.sqrt(np.float32(-2.0) * lg, dtype=np.float32)) < 7.632
    x = np.empty(1 << 20, np.float16)
    initlab.normal_(x, 0.0, 65504.0 / 7.632, seed=1)
    assert np.isfinite(x).all()
    with pytest.raises(ValueError, match="finite range"):
        initlab.normal_(x, 0.0, 65504.0 / 7.0, seed=1)
    y = np.empty(1 << 16, np.float32)
    initlab.normal_(y, 0.0, 3.4028234e38 / 6.661, seed=1)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("dtype,gain", [(np.float16, 1e5), (np.float32, 1e39), (np.float64, 1.797e308)])
@pytest.mark.parametrize("fn", ["orthogonal_", "delta_orthogonal_", "xavier_normal_"])
def test_huge_gain_is_a_value_error(fn, dtype, gain):
    x = np.zeros((4, 3, 3) if fn == "delta_orthogonal_" else (4, 3), dtype)
    with pytest.raises(ValueError):
        getattr(initlab, fn)(x, gain, seed=1)
    assert not x.any()


@pytest.mark.parametrize("scale", [1e-310, 1e-320, 1e300])
def test_householder_qr_tiny_and_huge_entries(scale):
    a = np.random.default_rng(0).standard_normal((7, 4)) * scale
    q, r = householder_qr(a)
    assert np.isfinite(q).all() and np.isfinite(r).all()
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-12)
    qn, rn = np.linalg.qr(a)
    tol = 1e-12 * np.abs(rn).max() if scale > 1e-308 else 64 * 5e-324 + 1e-12 * np.abs(rn).max()
    np.testing.assert_allclose(np.abs(r), np.abs(rn), rtol=0, atol=tol)


# ---- item 6: bit-identity gaps --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float16] + ([BF16] if BF16 else []))
@pytest.mark.parametrize("mean,std,a,b", [(-1.0, 1.0, -0.0, 1e-6), (1.0, 1.0, -1e-6, -0.0), (-0.3, 1.7, -0.0, 1e-5),
                                          (0.5, 1e-3, -1e-3, -0.0)])
def test_signed_zero_bounds_same_bits_on_every_simd_path(dtype, mean, std, a, b):
    out = {}
    for isa in initlab.available_simd_paths():
        initlab.set_simd_path(isa)
        x = np.empty(1 << 12, dtype)
        initlab.trunc_normal_(x, mean, std, a, b, seed=3)
        out[isa] = bits(x)
    ref = out.pop("scalar")
    for isa, v in out.items():
        np.testing.assert_array_equal(v, ref, err_msg=isa)


@pytest.mark.parametrize("shape,axis", [((300, 500), None), ((64, 3000), 1), ((3000, 7), 0), ((40, 50, 60), (0, 2))])
def test_stats_same_bits_for_c_fortran_and_reversed_layouts(shape, axis):
    a = np.random.default_rng(1).standard_normal(shape) * 3 + 1
    ref = initlab.stats(a, axis=axis).to_dict()
    for other in (np.asfortranarray(a), a[::-1, ...][::-1, ...].copy(order="F")[::-1][::-1],
                  np.ascontiguousarray(a[..., ::-1])[..., ::-1]):
        assert initlab.stats(other, axis=axis).to_dict() == ref


def test_stats_mean_of_data_spanning_the_float64_range_is_finite():
    a = np.array([1e308, -1e308, 1e308, 5.0] * 5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = initlab.stats(a)
    assert math.isfinite(s.mean)
    assert s.mean == pytest.approx(2.5e307, rel=1e-12)
    assert s.var == math.inf  # the variance itself is beyond float64
    assert s.min == -1e308 and s.max == 1e308


# ---- item 7: costs and limits ---------------------------------------------------------------------

def _sylvester(n: int) -> np.ndarray:
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


@pytest.mark.parametrize("shape,constant", [((300, 40), "code"), ((130, 7, 3), "paper"), ((9, 9), "code"), ((5, 8), "code")])
def test_zero_init_same_values_as_the_dense_product(shape, constant):
    x = np.empty(shape)
    initlab.zero_init_(x, constant=constant)
    p_out, p_in = shape[:2]
    if p_out <= p_in:
        mat = np.eye(p_out, p_in)
    else:
        m = math.ceil(math.log2(p_out))
        c = 2.0 ** (-m / 2.0) if constant == "code" else 2.0 ** (-(m - 1) / 2.0)
        mat = c * (np.eye(p_out, 2**m) @ _sylvester(2**m) @ np.eye(2**m, p_in))
    ref = np.zeros(shape)
    ref[(slice(None), slice(None)) + tuple((k - 1) // 2 for k in shape[2:])] = mat
    np.testing.assert_array_equal(x, ref)


def test_zero_init_memory_is_linear_in_the_size():
    x = np.empty((4097, 512), np.float32)  # 8 MiB; the dense 8192 x 8192 product needed > 1 GiB
    tracemalloc.start()
    try:
        initlab.zero_init_(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak scratch {peak / 2**20:.0f} MiB"
    assert x[4096, 0] == np.float32(2.0**-6.5) and x[1, 1] == -np.float32(2.0**-6.5)


@pytest.mark.parametrize("bad", [0, -1, 2**31, 10**6, 1025])
def test_set_num_threads_is_bounded(bad):
    with pytest.raises(ValueError, match="number of threads"):
        initlab.set_num_threads(bad)
    with pytest.raises(ValueError):
        with initlab.num_threads(bad):
            pass


def test_many_threads_are_capped_at_the_processors():
    initlab.set_num_threads(MAX_THREADS)
    x = np.empty(1 << 18, np.float32)
    initlab.normal_(x, seed=1)  # used to try to start 500+ OpenMP threads
    with initlab.num_threads(1):
        y = initlab.normal_(np.empty_like(x), seed=1)
    np.testing.assert_array_equal(bits(x), bits(y))


def test_sparse_mask_stream_is_independent_for_streams_above_2_63():
    stream = (1 << 63) + 5
    x = np.empty((50, 40))
    initlab.sparse_(x, 0.5, 1.0, seed=initlab.Generator(9, stream=stream))
    values = initlab.normal_(np.empty_like(x), 0.0, 1.0, seed=initlab.Generator(9, stream=stream))
    zero = x == 0
    np.testing.assert_array_equal(x[~zero], values[~zero])
    mkey, mstream = _sparse_mask_coord(9, stream)
    assert (mkey, mstream) != (9, stream)
    keys = initlab.uniform_(np.empty_like(x), seed=initlab.Generator(mkey, stream=mstream))
    expect = np.zeros_like(zero)
    expect[np.argsort(keys, axis=0, kind="stable")[:25], np.arange(40)] = True
    np.testing.assert_array_equal(zero, expect)
    # the old mask came from the value stream itself: its keys were the values' own uniforms
    own = initlab.uniform_(np.empty_like(x), seed=initlab.Generator(9, stream=stream))
    old = np.zeros_like(zero)
    old[np.argsort(own, axis=0, kind="stable")[:25], np.arange(40)] = True
    assert (old != zero).any()


def test_sparse_mask_unchanged_for_ordinary_streams():
    assert _sparse_mask_coord(9, 3) == (9, 3 | (1 << 63))


@pytest.mark.parametrize("call", [
    lambda x: initlab.uniform_(x, 0, 10**400), lambda x: initlab.normal_(x, 10**400),
    lambda x: initlab.xavier_uniform_(x, 10**400), lambda x: initlab.orthogonal_(x, 10**400),
    lambda x: initlab.constant_(x, 10**400), lambda x: initlab.trunc_normal_(x, 0, 1, -(10**400), 1),
])
def test_huge_python_ints_are_value_errors(call):
    x = np.zeros((3, 3))
    with pytest.raises(ValueError):
        call(x)
    assert not x.any()


def test_exhausted_generator_is_a_value_error():
    g = initlab.Generator(1, stream=2**64 - 1)
    initlab.normal_(np.empty(3), seed=g)
    with pytest.raises(ValueError, match="2\\*\\*64 streams"):
        initlab.normal_(np.empty(3), seed=g)


EMPTY_FAN = [
    ("xavier_uniform_", lambda x, **k: initlab.xavier_uniform_(x, **k)),
    ("xavier_normal_", lambda x, **k: initlab.xavier_normal_(x, **k)),
    ("kaiming_uniform_", lambda x, **k: initlab.kaiming_uniform_(x, **k)),
    ("kaiming_normal_", lambda x, **k: initlab.kaiming_normal_(x, **k)),
    ("variance_scaling_", lambda x, **k: initlab.variance_scaling_(x, **k)),
    ("lecun_normal_", lambda x, **k: initlab.lecun_normal_(x, **k)),
    ("uniform_", lambda x, **k: initlab.uniform_(x, **k)),
    ("sparse_", lambda x, **k: initlab.sparse_(x, 0.1, **k)),
    ("orthogonal_", lambda x, **k: initlab.orthogonal_(x, **k)),
]


@pytest.mark.parametrize("name,call", EMPTY_FAN, ids=[n for n, _ in EMPTY_FAN])
def test_empty_tensors_validate_the_seed_and_take_one_stream(name, call):
    x = np.empty((0, 4), np.float32)
    g = initlab.Generator(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(x, seed=g)
        assert g.streams_used == 1
        with pytest.raises((TypeError, ValueError)):
            call(x, seed="not a seed")


@pytest.mark.parametrize("fn", ["xavier_uniform_", "xavier_normal_"])
def test_empty_tensors_validate_the_gain(fn):
    with pytest.raises(ValueError, match="gain"):
        getattr(initlab, fn)(np.empty((0, 4)), math.inf, seed=1)


@pytest.mark.parametrize("fn", ["kaiming_uniform_", "kaiming_normal_"])
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 3)])
def test_kaiming_empty_warns_like_torch(fn, shape):
    x = np.empty(shape, np.float32)
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        assert getattr(initlab, fn)(x, seed=1) is x


# ---- item 9: peers' semantics ---------------------------------------------------------------------

def test_compute_fans_of_a_scalar_with_empty_axes():
    assert initlab.compute_fans((), layout=((), ())) == (1, 1)
    with pytest.raises(ValueError):
        initlab.compute_fans((), layout=(0, ()))


def test_docs_state_the_normal_alias_and_the_fan_avg_extension():
    doc = initlab.variance_scaling_.__doc__
    assert "untruncated_normal" in doc and "JAX" in doc and "layout=\"jax\"" in doc
    for fn in (initlab.kaiming_uniform_, initlab.kaiming_normal_):
        assert "extension" in fn.__doc__ and "fan_avg" in fn.__doc__


@pytest.mark.parametrize("tiles", [((0, 20), (20, 50)), ((0, 1), (1, 49), (49, 50))])
@pytest.mark.parametrize("axis", [0, 1])
def test_sparse_takes_global_shape_and_offset(tiles, axis):
    shape = (50, 50)
    whole = initlab.sparse_(np.empty(shape), 0.3, 1.0, seed=11)
    for lo, hi in tiles:
        sl = (slice(lo, hi), slice(None)) if axis == 0 else (slice(None), slice(lo, hi))
        off = (lo, 0) if axis == 0 else (0, lo)
        block = np.empty(whole[sl].shape)
        initlab.sparse_(block, 0.3, 1.0, seed=11, global_shape=shape, offset=off)
        np.testing.assert_array_equal(block, whole[sl])
    assert ((whole == 0).sum(axis=0) == 15).all()
