"""Every error path: the right exception, and the destination byte-for-byte unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

import initlab

NAN, INF = math.nan, math.inf


def _check(call, exc, x=None, match=None, shape=(6, 8), dtype=np.float32):
    x = np.full(shape, 3.25, dtype) if x is None else x
    before = x.tobytes()
    with pytest.raises(exc, match=match):
        call(x)
    assert x.tobytes() == before
    return x


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.complex64, np.uint16, object])
@pytest.mark.parametrize("fn", [lambda x: initlab.uniform_(x, seed=1), lambda x: initlab.normal_(x, seed=1),
                                lambda x: initlab.trunc_normal_(x, seed=1), lambda x: initlab.xavier_uniform_(x, seed=1),
                                lambda x: initlab.zeros_(x), lambda x: initlab.eye_(x)])
def test_unsupported_dtype(fn, dtype):
    x = np.zeros((4, 4), dtype)
    before = x.tobytes() if dtype is not object else None
    with pytest.raises(TypeError, match=np.dtype(dtype).name if dtype is not object else "object"):
        fn(x)
    if before is not None:
        assert x.tobytes() == before


def test_read_only_and_broadcast():
    x = np.full((4, 4), 2.0, np.float32)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        initlab.normal_(x, seed=1)
    assert np.all(x == 2.0)
    b = np.broadcast_to(np.float32(2.0), (4, 4))
    with pytest.raises(ValueError):
        initlab.uniform_(b, seed=1)
    base = np.full(4, 2.0, np.float32)
    v = np.lib.stride_tricks.as_strided(base, (4, 4), (4, 0), writeable=True)
    with pytest.raises(ValueError, match="zero stride"):
        initlab.uniform_(v, seed=1)
    assert np.all(base == 2.0)


@pytest.mark.parametrize("obj", [[1.0, 2.0], 3.0, None, (1.0,), "abc"])
def test_non_array_input(obj):
    with pytest.raises(TypeError, match="NumPy array"):
        initlab.normal_(obj, seed=1)


@pytest.mark.parametrize("call", [
    lambda x: initlab.normal_(x, 0.0, -1.0, seed=1),
    lambda x: initlab.normal_(x, 0.0, NAN, seed=1),
    lambda x: initlab.normal_(x, 0.0, INF, seed=1),
    lambda x: initlab.normal_(x, NAN, 1.0, seed=1),
    lambda x: initlab.uniform_(x, 1.0, 0.0, seed=1),
    lambda x: initlab.uniform_(x, NAN, 1.0, seed=1),
    lambda x: initlab.uniform_(x, 0.0, INF, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, 1.0, NAN, 1.0, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, 1.0, -1.0, NAN, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, 1.0, 1.0, 1.0, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, 1.0, 2.0, -2.0, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, 0.0, seed=1),
    lambda x: initlab.trunc_normal_(x, 0.0, -1.0, seed=1),
    lambda x: initlab.kaiming_uniform_(x, mode="fan_sideways", seed=1),
    lambda x: initlab.kaiming_normal_(x, nonlinearity="gelu", seed=1),
    lambda x: initlab.kaiming_normal_(x, nonlinearity="Tanh", seed=1),
    lambda x: initlab.kaiming_normal_(x, a="x", seed=1),
    lambda x: initlab.variance_scaling_(x, 1.0, "fan_in", "cauchy", seed=1),
    lambda x: initlab.variance_scaling_(x, 1.0, "FAN_IN", seed=1),
    lambda x: initlab.variance_scaling_(x, 0.0, seed=1),
    lambda x: initlab.variance_scaling_(x, -1.0, seed=1),
    lambda x: initlab.variance_scaling_(x, NAN, seed=1),
    lambda x: initlab.sparse_(x, 1.5, seed=1),
    lambda x: initlab.sparse_(x, -0.1, seed=1),
    lambda x: initlab.sparse_(x, 0.5, -0.01, seed=1),
    lambda x: initlab.xavier_uniform_(x, layout="nchw", seed=1),
])
def test_bad_parameters_raise_value_error_untouched(call):
    _check(call, ValueError)


def test_messages_follow_torch_wording():
    _check(lambda x: initlab.kaiming_normal_(x, nonlinearity="gelu"), ValueError, match="Unsupported nonlinearity gelu")
    _check(lambda x: initlab.kaiming_normal_(x, mode="bad"), ValueError, match="Mode bad not supported")
    _check(lambda x: initlab.variance_scaling_(x, -1.0), ValueError, match="scale")
    _check(lambda x: initlab.normal_(x, 0.0, -1.0), ValueError, match="std")
    _check(lambda x: initlab.eye_(x), ValueError, match="Only tensors with 2 dimensions are supported", shape=(2, 2, 2))
    _check(lambda x: initlab.dirac_(x), ValueError, match="Only tensors with 3, 4, or 5 dimensions", shape=(4, 4))
    _check(lambda x: initlab.dirac_(x, groups=4), ValueError, match="dim 0 must be divisible by groups", shape=(6, 2, 3))
    _check(lambda x: initlab.xavier_uniform_(x), ValueError, match="fewer than 2 dimensions", shape=(8,))


@pytest.mark.parametrize("call,shape", [
    (lambda x: initlab.xavier_normal_(x, seed=1), (5,)),
    (lambda x: initlab.kaiming_uniform_(x, seed=1), (5,)),
    (lambda x: initlab.lecun_normal_(x, seed=1), ()),
    (lambda x: initlab.sparse_(x, 0.5, seed=1), (3, 4, 5)),
    (lambda x: initlab.dirac_(x, groups=0), (4, 2, 3)),
    (lambda x: initlab.dirac_(x, groups=3), (4, 2, 3)),
    (lambda x: initlab.dirac_(x), (4, 2, 3, 3, 3, 3)),
    (lambda x: initlab.eye_(x), (5,)),
])
def test_shape_requirements(call, shape):
    _check(call, ValueError, shape=shape)


@pytest.mark.parametrize("gs,off", [
    ((6,), None), ((6, 8, 1), (0, 0, 0)), ((5, 8), None), ((6, 8), (1, 0)), ((6, 8), (0, -1)),
    ((6, 8), (0,)), ((6, 8), (0, 0, 0)), ((6, -8), None), ((12, 12), (7, 0)), ((12, 12), (0, 5)),
    ("bad", None), ((6.0, 8), None), ((12, 12), (0.5, 0)),
])
@pytest.mark.parametrize("fn", [initlab.uniform_, initlab.normal_, initlab.xavier_uniform_, initlab.lecun_normal_])
def test_bad_global_shape_or_offset(fn, gs, off):
    _check(lambda x: fn(x, seed=1, global_shape=gs, offset=off), ValueError)


def test_offset_without_global_shape():
    _check(lambda x: initlab.normal_(x, seed=1, offset=(0, 0)), ValueError)


def test_bad_param_types():
    _check(lambda x: initlab.normal_(x, "0", 1.0, seed=1), TypeError)
    _check(lambda x: initlab.uniform_(x, None, 1.0, seed=1), TypeError)
    _check(lambda x: initlab.xavier_uniform_(x, gain="2", seed=1), TypeError)




def _zs(shapes):
    return list(shapes)


@pytest.mark.parametrize("shape", _zs([(0,), (0, 5), (5, 0), (3, 0, 2)]))
@pytest.mark.parametrize("call", [
    lambda x: initlab.uniform_(x, seed=1), lambda x: initlab.normal_(x, seed=1),
    lambda x: initlab.trunc_normal_(x, seed=1), lambda x: initlab.zeros_(x), lambda x: initlab.constant_(x, 2.0),
])
def test_zero_size_is_a_noop(call, shape):
    x = np.empty(shape, np.float32)
    assert call(x) is x


@pytest.mark.parametrize("shape", _zs([(0, 5), (5, 0), (0, 0), (3, 0, 2)]))
@pytest.mark.parametrize("call", [
    lambda x: initlab.xavier_uniform_(x, seed=1), lambda x: initlab.xavier_normal_(x, seed=1),
    lambda x: initlab.kaiming_uniform_(x, seed=1), lambda x: initlab.kaiming_normal_(x, seed=1),
    lambda x: initlab.variance_scaling_(x, seed=1), lambda x: initlab.lecun_uniform_(x, seed=1),
])
def test_zero_size_fan_based_noop(call, shape, recwarn):
    x = np.empty(shape, np.float32)
    assert call(x) is x  # no ZeroDivisionError
    # torch's warning comes from kaiming_* only (as torch.nn.init)
    kaiming = any("kaiming" in n for n in call.__code__.co_names)
    assert [str(w.message) for w in recwarn] == (["Initializing zero-element tensors is a no-op"] if kaiming else [])


def test_zero_size_still_validates_parameters():
    x = np.empty((0,), np.float32)
    with pytest.raises(ValueError):
        initlab.normal_(x, 0.0, -1.0, seed=1)
    with pytest.raises(ValueError):
        initlab.uniform_(x, 2.0, 1.0, seed=1)


def test_generator_dtype_errors():
    g = initlab.Generator(1)
    with pytest.raises(TypeError):
        g.normal(10, dtype=np.int32)
    with pytest.raises(ValueError):
        g.normal(-1)


def test_simd_path_errors():
    with pytest.raises(ValueError, match="unknown SIMD path"):
        initlab.set_simd_path("neon")
    if "avx512" not in initlab.available_simd_paths():
        with pytest.raises(ValueError, match="not supported"):
            initlab.set_simd_path("avx512")


def test_big_endian_rejected():
    x = np.full(8, 1.0, ">f4")
    _check(lambda a: initlab.normal_(a, seed=1), ValueError, x=x)


def test_parameters_must_be_finite_in_the_compute_precision():
    # float32 / float16 / bfloat16 fills are computed in float32: an overflow there is an error,
    # not a silent inf/NaN, and the destination stays untouched.
    _check(lambda x: initlab.uniform_(x, -3e38, 3e38, seed=1), ValueError)
    _check(lambda x: initlab.normal_(x, 0.0, 1e39, seed=1), ValueError)
    _check(lambda x: initlab.normal_(x, 1e39, 1.0, seed=1), ValueError)
    _check(lambda x: initlab.trunc_normal_(x, 0.0, 1e39, -np.inf, np.inf, seed=1), ValueError)
    big = np.empty(4)
    initlab.normal_(big, 0.0, 1e39, seed=1)  # fine in float64
    assert np.all(np.isfinite(big))
