"""Linear algebra on initlab's Householder core.

The same blocked kernels as :func:`initlab.orthogonal_` (compact-WY Householder, level-3 work in
initlab's deterministic GEMM), exposed so that the QR itself can be checked against
``numpy.linalg.qr`` and used on its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._simd import _isa_code
from ._threads import get_num_threads

__all__ = ["householder_qr"]


def householder_qr(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reduced QR factorization ``a = q @ r`` by blocked Householder reflections.

    Parameters
    ----------
    a : array_like of shape (m, n)
        float32 or float64 matrix (a NumPy array, or anything ``numpy.asarray`` accepts, such
        as a torch CPU tensor). It is not modified.

    Returns
    -------
    q : numpy.ndarray of shape (m, k)
        Orthonormal columns, ``k = min(m, n)``, same dtype as ``a``.
    r : numpy.ndarray of shape (k, n)
        Upper triangular (exactly zero below the diagonal), same dtype as ``a``.

    Raises
    ------
    TypeError
        If ``a`` is not float32 or float64.
    ValueError
        If ``a`` is not 2-D or has non-finite entries.

    Notes
    -----
    LAPACK's conventions (``geqrf``/``orgqr``, the ones ``numpy.linalg.qr`` follows): the
    diagonal of ``r`` is ``-sign(a_kk') * norm`` of each reflected column and is not made
    positive, so ``q`` and ``r`` agree with NumPy's up to rounding. Determinism: the result is
    bit-identical for any thread count (fixed block size, fixed summation order); across SIMD
    paths it agrees to a few ulps (the AVX2/AVX-512 matrix multiply uses FMA).
    """
    arr = np.asarray(a)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"householder_qr supports float32 and float64 matrices, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"householder_qr expects a 2-D matrix, got shape {arr.shape} ({arr.ndim}-D)")
    if arr.size and not np.isfinite(arr).all():
        raise ValueError("householder_qr: the matrix has non-finite entries (inf or nan)")
    m, n = arr.shape
    k = min(m, n)
    work = np.array(arr, dtype=arr.dtype, order="F", copy=True)  # the input stays unchanged
    # Tiny (subnormal) or huge entries: squared norms would underflow or overflow. Scaling by a
    # power of two is exact and QR is scale-equivariant (Q unchanged, R scaled), so the matrix is
    # brought near 1 and R scaled back.
    exp = 0
    if work.size:
        amax = float(np.max(np.abs(work)))
        lo, hi = (2.0**-400, 2.0**400) if arr.dtype == np.float64 else (2.0**-40, 2.0**40)
        if amax and not lo <= amax <= hi:
            exp = math.frexp(amax)[1]
            work = np.asfortranarray(np.ldexp(work.astype(np.float64), -exp).astype(arr.dtype))
    q = np.zeros((m, k), dtype=arr.dtype, order="F")
    if k:
        _core.householder_qr(work, q, get_num_threads(), _isa_code())
    r = np.triu(work[:k, :])
    if exp:
        r = np.ldexp(r, exp).astype(arr.dtype)  # exact: a power-of-two rescale
    return np.ascontiguousarray(q), np.ascontiguousarray(r)
