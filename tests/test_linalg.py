"""initlab.linalg.householder_qr against numpy.linalg.qr, and the GEMM kernel under it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bits

import initlab
from initlab import _core
from initlab.linalg import householder_qr

EPS = {np.float32: 2.0**-24, np.float64: 2.0**-53}

SHAPES = [(1, 1), (5, 1), (1, 5), (6, 6), (40, 17), (17, 40), (300, 200), (200, 300), (257, 129), (129, 257)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_matches_numpy(dt, shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(dt)
    keep = a.copy()
    q, r = householder_qr(a)
    m, n = shape
    k = min(m, n)
    assert q.shape == (m, k) and r.shape == (k, n) and q.dtype == dt and r.dtype == dt
    assert np.array_equal(bits(a), bits(keep))  # input unchanged
    assert not np.tril(r, -1).any()  # exactly zero below the diagonal
    eps, size = EPS[dt], max(m, n)
    a64 = a.astype(np.float64)
    # Backward error of Householder QR: O(size * eps) relative to ||A||.
    assert np.abs(q.astype(np.float64) @ r - a64).max() <= 4 * size * eps * np.abs(a64).max() * np.sqrt(k)
    assert np.abs(q.T.astype(np.float64) @ q - np.eye(k)).max() <= 4 * size * eps
    # Same conventions as LAPACK (via NumPy in float64): the factors agree up to rounding,
    # amplified by the conditioning of the leading columns (Gaussian: modest).
    qn, rn = np.linalg.qr(a64)
    assert np.abs(q - qn).max() <= 1e3 * size * eps
    assert np.abs(r - rn).max() <= 1e3 * size * eps * np.abs(a64).max()


def test_layouts_and_rank_deficiency():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 30))
    a[:, 3] = 0.0  # a zero column: tau = 0, no division by zero
    a[:, 7] = a[:, 2]  # a repeated column: r has a (near-)zero diagonal entry
    q, r = householder_qr(a)
    assert np.isfinite(q).all() and np.isfinite(r).all()
    assert np.allclose(q @ r, a, atol=1e-12)
    qf, rf = householder_qr(np.asfortranarray(a))
    assert np.array_equal(bits(qf), bits(q)) and np.array_equal(bits(rf), bits(r))
    wide = np.zeros((50, 60))
    wide[:, ::2] = a
    q2, r2 = householder_qr(wide[:, ::2])  # a strided view
    assert np.array_equal(bits(q2), bits(q)) and np.array_equal(bits(r2), bits(r))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_bit_identical_for_any_thread_count(dt):
    a = np.random.default_rng(1).standard_normal((400, 300)).astype(dt)
    ref = None
    for nt in (1, 2, 3):
        with initlab.num_threads(nt):
            q, r = householder_qr(a)
        if ref is None:
            ref = (q, r)
        else:
            assert np.array_equal(bits(q), bits(ref[0])) and np.array_equal(bits(r), bits(ref[1]))


def test_empty_and_errors():
    q, r = householder_qr(np.empty((0, 3)))
    assert q.shape == (0, 0) and r.shape == (0, 3)
    q, r = householder_qr(np.empty((4, 0), np.float32))
    assert q.shape == (4, 0) and r.shape == (0, 0) and q.dtype == np.float32
    with pytest.raises(TypeError, match="int64"):
        householder_qr(np.ones((3, 3), np.int64))
    with pytest.raises(ValueError, match="2-D"):
        householder_qr(np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        householder_qr(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_accepts_torch_tensor():
    torch = pytest.importorskip("torch")
    t = torch.randn(20, 10, dtype=torch.float64)
    q, r = householder_qr(t)
    assert np.allclose(q @ r, t.numpy(), atol=1e-12)


# ---- the GEMM kernel -------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (37, 29, 300), (300, 13, 5), (64, 100, 513)])
def test_gemm_against_numpy(dt, m, n, k):
    rng = np.random.default_rng(m * n + k)
    a = rng.standard_normal((m, k)).astype(dt)
    b = rng.standard_normal((k, n)).astype(dt)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    tol = 2 * k * EPS[dt] * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)).max()
    ref = None
    for path in initlab.available_simd_paths():
        for order in ("C", "F"):
            for nt in (1, 2):
                c = np.full((m, n), 3.0, dt, order=order)
                _core.gemm(a, b, c, 2, nt, ["scalar", "sse2", "avx2", "avx512"].index(path))  # c -= a @ b
                assert np.abs(c - (3.0 - exact)).max() <= tol + 4 * EPS[dt]
                if path == initlab.available_simd_paths()[-1]:
                    if ref is None:
                        ref = c.copy()
                    assert np.array_equal(bits(c), bits(ref)), (order, nt)  # any layout, any threads
    c = np.empty((m, n), dt)
    _core.gemm(a.T.copy().T, b[::1], c, 0, 2, 3 if "avx512" in initlab.available_simd_paths() else 0)
    assert np.abs(c - exact).max() <= tol
