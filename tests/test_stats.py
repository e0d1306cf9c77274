"""initlab.stats against NumPy float64 references: values, axes, layouts, dtypes, non-finite
data, determinism across thread counts and SIMD paths, errors."""

from __future__ import annotations

import numpy as np
import pytest

import initlab
from initlab import stats

EPS = np.finfo(np.float64).eps


def reference(x: np.ndarray, axis=None) -> dict[str, np.ndarray]:
    """Two-pass float64 reference that follows the documented non-finite rule."""
    x = np.asarray(x, dtype=np.float64)
    fin = np.isfinite(x)
    xf = np.where(fin, x, 0.0)
    n = fin.sum(axis=axis)
    count = np.ones_like(x).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xf.sum(axis=axis) / n
        m = mean if axis is None else np.expand_dims(mean, axis)
        var = (np.where(fin, x - m, 0.0) ** 2).sum(axis=axis) / n
        return {
            "count": count,
            "mean": mean,
            "var": var,
            "min": np.where(fin, x, np.inf).min(axis=axis),
            "max": np.where(fin, x, -np.inf).max(axis=axis),
            "abs_max": np.where(fin, np.abs(x), -np.inf).max(axis=axis),
            "zero_fraction": (x == 0).sum(axis=axis) / count,
            "nonfinite_count": (~fin).sum(axis=axis),
            "rms": np.sqrt((xf**2).sum(axis=axis) / n),
        }


def check(s, ref, rtol):
    for k, v in ref.items():
        got = np.asarray(getattr(s, k), dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        assert got.shape == v.shape, k
        if k in ("count", "nonfinite_count", "min", "max", "abs_max", "zero_fraction"):
            np.testing.assert_array_equal(got, v, err_msg=k)  # exact figures
        else:
            # Rounding error scales with the data's magnitude: sqrt(ms) for the mean, ms for var.
            ms = np.asarray(ref["var"]) + np.asarray(ref["mean"]) ** 2
            scale = {"mean": np.sqrt(ms), "var": ms}.get(k, np.abs(v))
            np.testing.assert_array_less(np.abs(got - v), rtol * scale + 1e-300, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 1000, 32768, 32769, 300_001])
def test_random_against_numpy(dtype, n):
    x = np.random.default_rng(n).normal(0.3, 2.0, size=n).astype(dtype)
    s = stats(x)
    if n == 0:
        assert s.count == 0 and np.isnan(s.mean) and np.isnan(s.var)
        return
    # float64 accumulation over n elements: relative error well below 1e-12 for these sizes.
    check(s, reference(x), 1e-12)
    assert isinstance(s.count, int) and isinstance(s.mean, float)


def test_constant_is_exact():
    for c in (0.0, 1.5, -3.25e7, 1e-30):
        x = np.full(50_000, c, np.float32)
        s = stats(x)
        assert s.mean == float(np.float32(c)) and s.var == 0.0 and s.std == 0.0
        assert s.min == s.max == float(np.float32(c))
        assert s.zero_fraction == (1.0 if c == 0 else 0.0)


@pytest.mark.parametrize("offset", [1e4, 1e6, -3e7])
def test_huge_offset_no_cancellation(offset):
    # Data far from zero with a tiny spread: the naive E[x^2] - E[x]^2 in float64 loses every
    # digit here (offset^2 / var ~ 1e14..1e20); the shifted sums must not.
    rng = np.random.default_rng(1)
    x = (offset + rng.standard_normal(200_000) * 1e-2 * max(1.0, abs(offset) * 1e-6)).astype(np.float32)
    ref = reference(x)
    s = stats(x)
    assert abs(s.var / ref["var"] - 1) < 1e-9
    assert abs(s.mean - ref["mean"]) < 1e-9 * np.sqrt(ref["var"]) + 4 * EPS * abs(offset)
    x64 = 1e9 + rng.standard_normal(100_000)
    assert abs(stats(x64).var / x64.var() - 1) < 1e-6


def test_nan_inf_rule():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(100_000)
    x[[5, 77, 9000, 50_000]] = [np.nan, np.inf, -np.inf, np.nan]
    x[[3, 4]] = 0.0
    s = stats(x)
    assert s.count == 100_000 and s.nonfinite_count == 4
    check(s, reference(x), 1e-12)
    assert np.isfinite([s.mean, s.var, s.min, s.max, s.abs_max, s.rms]).all()
    # float32 and every block position of the non-finite value
    for pos in (0, 1, 15, 16, 32767, 32768, 40_000):
        y = np.ones(50_000, np.float32)
        y[pos] = np.inf
        t = stats(y)
        assert t.nonfinite_count == 1 and t.mean == 1.0 and t.var == 0.0 and t.max == 1.0
    allnan = stats(np.full(10, np.nan))
    assert allnan.nonfinite_count == 10 and np.isnan(allnan.mean) and np.isnan(allnan.min)
    assert allnan.zero_fraction == 0.0


def test_overflowing_squares_stay_finite_elsewhere():
    x = np.array([1e200, -1e200, 3.0])
    s = stats(x)
    assert s.nonfinite_count == 0 and s.max == 1e200 and s.min == -1e200
    assert abs(s.mean - 1.0) <= 8 * EPS * 1e200  # the rounding error of a sum at that scale
    assert s.var == np.inf  # the true variance (~2.7e399) is beyond float64, not a NaN


@pytest.mark.parametrize(
    "shape,axis",
    [
        ((6, 7), 0),
        ((6, 7), 1),
        ((6, 7), -1),
        ((6, 7), (0, 1)),
        ((6, 7), ()),
        ((4, 3, 5, 6), (0, 2, 3)),
        ((4, 3, 5, 6), (1,)),
        ((4, 3, 5, 6), (0, 3)),
        ((2, 3, 40_000), 2),
        ((2, 300_000), 1),
        ((300_000, 2), 0),
        ((5, 0, 3), 1),
        ((5, 0, 3), 0),
    ],
)
def test_axis_against_numpy(shape, axis):
    x = np.random.default_rng(3).normal(1.0, 3.0, size=shape)
    x.flat[::97] = 0.0
    s = stats(x, axis=axis)
    if x.size == 0:
        assert s.shape == x.sum(axis=axis).shape and s.count.shape == s.shape
        assert np.isnan(s.mean).all()
        return
    ref = reference(x, axis=axis)
    assert s.shape == np.asarray(ref["mean"]).shape
    check(s, ref, 1e-12)


def test_layouts_read_in_place():
    base = np.random.default_rng(4).standard_normal((64, 48, 9))
    views = [
        base,
        np.asfortranarray(base),
        base[::2, ::-3, 1:],
        base.transpose(2, 0, 1),
        base[:, 5, :],
        np.broadcast_to(base[0, 0], (1000, 9)),
    ]
    for v in views:
        ro = v.view()
        ro.flags.writeable = False
        for axis in (None, 0, (0, v.ndim - 1)):
            check(stats(ro, axis=axis), reference(v, axis=axis), 1e-12)


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
def test_low_precision(kind):
    rng = np.random.default_rng(5)
    f = rng.standard_normal((300, 70)).astype(np.float32)
    if kind == "float16":
        x = f.astype(np.float16)
    else:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        x = f.astype(ml_dtypes.bfloat16)
    exact = x.astype(np.float64)  # 16-bit values widen exactly
    x[3, 4] = np.nan
    exact[3, 4] = np.nan
    check(stats(x), reference(exact), 1e-12)
    check(stats(x[:, ::-2], axis=0), reference(exact[:, ::-2], axis=0), 1e-12)


def test_torch_zero_copy_and_dtypes():
    torch = pytest.importorskip("torch")
    t = torch.randn(40, 30, 5, dtype=torch.float32, requires_grad=True)
    ref = reference(t.detach().numpy().astype(np.float64), axis=(0, 2))
    check(initlab.stats(t, axis=(0, 2)), ref, 1e-12)
    check(initlab.stats(t.transpose(0, 2)), reference(t.detach().numpy()), 1e-12)
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        u = t.detach().to(dt)
        check(initlab.stats(u), reference(u.to(torch.float64).numpy()), 1e-12)
    with pytest.raises(TypeError, match="int64"):
        initlab.stats(torch.arange(5))


def test_bit_identical_for_any_thread_count_and_simd_path():
    x = np.random.default_rng(6).normal(5.0, 1.0, size=(3, 400_000)).astype(np.float32)
    x[1, 123_456] = np.nan
    results = []
    saved = initlab.simd_path()
    try:
        for path in initlab.available_simd_paths():
            initlab.set_simd_path(path)
            for nt in (1, 2, 3, 8):
                with initlab.num_threads(nt):
                    for axis in (None, 1, 0):
                        s = stats(x, axis=axis)
                        results.append((axis, [np.asarray(getattr(s, k)).tobytes() for k in ("mean", "var", "min", "max", "zero_fraction", "nonfinite_count")]))
    finally:
        initlab.set_simd_path(saved)
    for axis in (None, 1, 0):
        runs = [r for a, r in results if a == axis]
        assert all(r == runs[0] for r in runs)


def test_inputs_and_errors():
    s = stats([1, 2, 3, 4])  # list of ints -> float64
    assert s.mean == 2.5 and s.var == 1.25 and s.rms == pytest.approx(np.sqrt(7.5))
    assert stats(3.0).count == 1
    with pytest.raises(TypeError, match="int32"):
        stats(np.arange(4, dtype=np.int32))
    with pytest.raises(TypeError, match="complex128"):
        stats(np.ones(3, complex))
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        stats(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match="repeated axis"):
        stats(np.ones((2, 2)), axis=(0, -2))
    with pytest.raises(TypeError, match="axis"):
        stats(np.ones((2, 2)), axis=1.0)
    big_endian = np.arange(10, dtype=">f8")
    assert stats(big_endian).mean == 4.5
    d = stats(np.ones((2, 3)), axis=1).to_dict()
    assert d["mean"] == [1.0, 1.0] and d["count"] == [3, 3]
    assert "nonfinite_count=0" in repr(stats(np.ones(3)))


# Strided innermost axes take the transposed staging route (a task copies its elements into
# logical order walking memory in its own order; see csrc/src/stats.cpp). Shapes chosen so each
# branch runs: a Fortran array larger than one task (rows staged task by task), one that fits in a
# task (a whole slice staged), and per-column statistics of a C array (slices staged together).
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shape,axis", [((300, 500), None), ((200, 600), None), ((1000, 64), 0),
                                        ((64, 1000), 1), ((7, 40, 900), None), ((7, 40, 900), (0, 2))])
def test_staged_layouts_have_the_bits_of_the_c_layout(dtype, shape, axis):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        dt = ml_dtypes.bfloat16
    else:
        dt = np.dtype(dtype)
    rng = np.random.default_rng(3)
    a = (rng.standard_normal(shape) * 3 + 1).astype(dt)
    a.flat[7] = 0
    a.flat[a.size // 2] = np.nan  # a block with a non-finite value: the exact path, also staged
    a.flat[a.size - 3] = -np.inf
    c = np.ascontiguousarray(a)
    f = np.asfortranarray(a)
    t = np.ascontiguousarray(np.swapaxes(a, 0, -1)).swapaxes(0, -1)  # another non-C layout
    ref = initlab.stats(c, axis=axis)
    for lay in (f, t):
        got = initlab.stats(lay, axis=axis)
        for field in ("mean", "var", "min", "max", "count", "nonfinite_count", "zero_fraction"):
            x, y = np.asarray(getattr(ref, field)), np.asarray(getattr(got, field))
            assert x.tobytes() == y.tobytes(), (field, lay.strides)
    # and the figures are right (NumPy on the finite values, float64)
    x = c.astype(np.float64)
    fin = np.isfinite(x)
    if axis is None:
        assert int(ref.count) - int(ref.nonfinite_count) == int(fin.sum())
        np.testing.assert_allclose(float(ref.mean), x[fin].mean(), rtol=1e-12)
        np.testing.assert_allclose(float(ref.var), x[fin].var(), rtol=1e-10)


# Every SIMD path (direct 16-bit kernels, vector tile transposes of the staged walk, the loops
# without the shift) against the portable path, C and Fortran layouts, 1 and 2 threads. Half of
# the rows sit far from 0 compared with their spread: their blocks are summed again shifted by their mean
# (cancellation), the others are not, and both must agree everywhere. Shape (100, 5000): a
# Fortran task stages several groups (rows span 256 bytes of each column).
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_every_simd_path_layout_and_thread_count_agree(dtype):
    dt = pytest.importorskip("ml_dtypes").bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    rng = np.random.default_rng(11)
    # magnitudes spread over 9 decades, so that any change in which lane sums which value, or in
    # what order, changes the bits of the sums
    x = rng.standard_normal((100, 5000)) * 10.0 ** rng.uniform(-6, 3, (100, 5000))
    x[50:] = 1e4 + x[50:] * 1e-3
    x[3, 17] = 0.0
    x[70, 4999] = np.nan
    a = x.astype(dt)
    fields = ("mean", "var", "min", "max", "count", "nonfinite_count", "zero_fraction")
    saved = initlab.simd_path()
    runs = {}
    try:
        for path in initlab.available_simd_paths():
            initlab.set_simd_path(path)
            for nt in (1, 2):
                with initlab.num_threads(nt):
                    # each half alone too: in the whole, the offset half hides the other's last bits
                    for part, b in (("all", a), ("wide", a[:50]), ("offset", a[50:])):
                        for name, lay in (("C", np.ascontiguousarray(b)), ("F", np.asfortranarray(b))):
                            for axis in (None, 0, 1):
                                s = initlab.stats(lay, axis=axis)
                                runs[(path, nt, name, part, axis)] = [np.asarray(getattr(s, k)).tobytes() for k in fields]
    finally:
        initlab.set_simd_path(saved)
    for part in ("all", "wide", "offset"):
        for axis in (None, 0, 1):
            ref = runs[("scalar", 1, "C", part, axis)]
            bad = [k for k, v in runs.items() if k[3:] == (part, axis) and v != ref]
            assert not bad, bad
    s = initlab.stats(a)
    f = a.astype(np.float64)
    f = f[np.isfinite(f)]
    np.testing.assert_allclose(float(s.mean), f.mean(), rtol=1e-13)
    np.testing.assert_allclose(float(s.var), f.var(), rtol=1e-11)
    assert float(s.min) == f.min() and float(s.max) == f.max() and int(s.nonfinite_count) == 1
