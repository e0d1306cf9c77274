"""Property-based check of the fill contract (issue 9): over dtypes x memory layouts x
parameters (extreme ones included) x shard tilings,

* nothing crashes: a call either succeeds or raises TypeError/ValueError;
* on error the destination's memory is byte-for-byte unchanged;
* on success every value is finite and within the promised bounds;
* the bits are the same for 1 and 2 threads, for every available SIMD path, for every layout
  and for the whole tensor versus its shards (``global_shape``/``offset``).

The example count is kept small so the file runs in seconds; the seed is derived from the
example, so any failure reproduces.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import initlab  # noqa: E402

from conftest import FLOAT_DTYPE_IDS, FLOAT_DTYPES, as_f64, bits  # noqa: E402

EXTREME = [0.0, -0.0, 1e-300, -1e-300, 5e-324, 1.0, -1.0, 6.5e4, 1e5, 3.4e38, 1e39, 1e154, 1e155, 1e300,
           1.7976931348623157e308, -1.7976931348623157e308, math.inf, -math.inf, math.nan]
reals = st.one_of(st.floats(-100.0, 100.0), st.sampled_from(EXTREME), st.floats(width=64))
positive = st.one_of(st.floats(1e-3, 10.0), st.sampled_from([0.0, 1e-300, 1e-160, 1e4, 1e38, 1e300, math.inf, -1.0]))
dims = st.sampled_from([0, 1, 2, 3, 5, 8, 17, 64, 70, 130])
LAYOUTS = ["C", "F", "reversed", "strided", "transposed"]

# (name, builder of the call from drawn parameters, bounds check or None)
OPS = ["uniform", "normal", "trunc_normal", "xavier_uniform", "kaiming_normal", "variance_scaling"]


def _call(op: str, p: dict):
    if op == "uniform":
        return lambda x, **k: initlab.uniform_(x, p["a"], p["b"], **k)
    if op == "normal":
        return lambda x, **k: initlab.normal_(x, p["mean"], p["std"], **k)
    if op == "trunc_normal":
        return lambda x, **k: initlab.trunc_normal_(x, p["mean"], p["std"], p["a"], p["b"], **k)
    if op == "xavier_uniform":
        return lambda x, **k: initlab.xavier_uniform_(x, p["mean"], **k)
    if op == "kaiming_normal":
        return lambda x, **k: initlab.kaiming_normal_(x, p["a"], mode="fan_out", **k)
    return lambda x, **k: initlab.variance_scaling_(x, p["std"], "fan_avg", "truncated_normal", **k)


def _dest(shape, dtype, layout, fill_bytes):
    """A destination of `shape` in the given layout, inside a buffer of known bytes."""
    n = int(np.prod(shape)) if shape else 1
    if layout == "strided":
        buf = np.frombuffer(bytearray(fill_bytes(2 * n * np.dtype(dtype).itemsize + 16)), dtype=dtype)
        return buf, buf[: 2 * n].reshape(tuple(shape[:-1]) + (2 * shape[-1],))[..., ::2] if shape else buf[:1].reshape(())
    buf = np.frombuffer(bytearray(fill_bytes(n * np.dtype(dtype).itemsize)), dtype=dtype)
    if layout == "F":
        return buf, buf.reshape(shape[::-1]).T if shape else buf.reshape(())
    if layout == "transposed" and len(shape) >= 2:
        return buf, np.swapaxes(buf.reshape(shape[:-2] + (shape[-1], shape[-2])), -1, -2)
    a = buf.reshape(shape)
    if layout == "reversed" and shape:
        a = a[::-1]
    return buf, a


def _fresh(shape, dtype):
    return np.zeros(shape, dtype)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    dtype_i=st.integers(0, len(FLOAT_DTYPES) - 1),
    shape=st.lists(dims, min_size=2, max_size=3).map(tuple).filter(lambda s: math.prod(s) <= 200_000),
    layout=st.sampled_from(LAYOUTS),
    op=st.sampled_from(OPS),
    p=st.fixed_dictionaries({"a": reals, "b": reals, "mean": reals, "std": positive}),
    seed=st.integers(0, 2**64 - 1),
    cut=st.floats(0.0, 1.0),
)
def test_fill_contract(dtype_i, shape, layout, op, p, seed, cut):
    dtype = FLOAT_DTYPES[dtype_i]
    rng = np.random.default_rng(seed % 2**32)
    buf, dest = _dest(shape, dtype, layout, lambda nbytes: rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes())
    before = buf.tobytes()
    call = _call(op, p)
    try:
        with initlab.num_threads(1):
            call(dest, seed=seed)
    except (TypeError, ValueError):
        event("rejected")
        assert buf.tobytes() == before, "an error left the destination changed"
        return
    event("filled")
    # Success: finite and within bounds.
    v = as_f64(dest)
    assert np.isfinite(v).all(), f"{op} wrote non-finite values with {p}"
    if op == "trunc_normal":
        assert (v >= p["a"]).all() and (v <= p["b"]).all()
    if op == "uniform" and p["a"] < p["b"]:
        assert (v >= p["a"]).all() and (v < p["b"]).all()
    ref = bits(dest)

    # Same bits: 2 threads, every SIMD path, a plain C-ordered destination.
    with initlab.num_threads(2):
        assert np.array_equal(bits(call(_fresh(shape, dtype), seed=seed)), ref), "1 vs 2 threads"
    for isa in initlab.available_simd_paths():
        initlab.set_simd_path(isa)
        try:
            assert np.array_equal(bits(call(_fresh(shape, dtype), seed=seed)), ref), f"SIMD path {isa}"
        finally:
            initlab.set_simd_path("auto")

    # Shards: two blocks along a drawn axis, each filled as part of the global tensor.
    axis = 0 if shape[0] > 1 else len(shape) - 1
    if shape[axis] > 1:
        k = min(shape[axis] - 1, max(1, int(cut * shape[axis])))
        whole = call(_fresh(shape, dtype), seed=seed)
        for lo, hi in ((0, k), (k, shape[axis])):
            bshape = list(shape)
            bshape[axis] = hi - lo
            off = [0] * len(shape)
            off[axis] = lo
            block = call(_fresh(tuple(bshape), dtype), seed=seed, global_shape=shape, offset=tuple(off))
            sl = [slice(None)] * len(shape)
            sl[axis] = slice(lo, hi)
            assert np.array_equal(bits(block), bits(whole[tuple(sl)])), "shard differs from the global fill"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=FLOAT_DTYPE_IDS)
def test_large_fill_same_bits_for_threads_and_paths(dtype):
    # The drawn shapes are mostly below the serial threshold: one large case for the thread split.
    ref = bits(initlab.trunc_normal_(np.empty((300, 257), dtype), 0.5, 2.0, -1.0, 3.0, seed=5))
    with initlab.num_threads(2):
        assert np.array_equal(bits(initlab.trunc_normal_(np.empty((300, 257), dtype), 0.5, 2.0, -1.0, 3.0, seed=5)), ref)
    for isa in initlab.available_simd_paths():
        initlab.set_simd_path(isa)
        f = np.asfortranarray(np.empty((300, 257), dtype))
        assert np.array_equal(bits(initlab.trunc_normal_(f, 0.5, 2.0, -1.0, 3.0, seed=5)), ref), isa
