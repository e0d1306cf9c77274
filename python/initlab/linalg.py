"""Linear algebra on initlab's Householder core.

The same blocked kernels as :func:`initlab.orthogonal_` (compact-WY Householder, level-3 work in
initlab's deterministic GEMM), exposed so that the QR itself can be checked against
``numpy.linalg.qr`` and used on its own.
"""

from __future__ import annotations

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
        as a torch tensor: one that requires grad or lives on a device is read through
        ``.detach()``/``.cpu()``). It is not modified.

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
    if getattr(a, "requires_grad", False) and hasattr(a, "detach"):
        a = a.detach()  # a torch tensor in an autograd graph: read its values (the input is never modified)
    if hasattr(a, "detach") and getattr(getattr(a, "device", None), "type", "cpu") != "cpu":
        a = a.detach().cpu()
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
    # Tiny (subnormal) or huge entries: squared norms would underflow or overflow. QR is
    # equivariant under column scaling (A D = Q (R D) for a positive diagonal D), and scaling by
    # powers of two is exact, so a column whose largest entry is outside [lo, hi] is brought near 1
    # by its own power of two (every column, so mixed ordinary and subnormal columns work) and the
    # columns of R scaled back.
    exps = None
    if work.size:
        colmax = np.max(np.abs(work), axis=0).astype(np.float64)
        lo, hi = (2.0**-400, 2.0**400) if arr.dtype == np.float64 else (2.0**-40, 2.0**40)
        nz = colmax > 0
        if np.any(nz & ((colmax < lo) | (colmax > hi))):
            exps = np.zeros(n, dtype=np.int64)
            exps[nz] = np.frexp(colmax[nz])[1]
            work = np.asfortranarray(np.ldexp(work.astype(np.float64), -exps[None, :]).astype(arr.dtype))
    q = np.zeros((m, k), dtype=arr.dtype, order="F")
    if k:
        _core.householder_qr(work, q, get_num_threads(), _isa_code())
    r = np.triu(work[:k, :])
    if exps is not None:
        with np.errstate(over="ignore", under="ignore"):
            r = np.ldexp(r.astype(np.float64), exps[None, :]).astype(arr.dtype)  # a power-of-two rescale per column
    return np.ascontiguousarray(q), np.ascontiguousarray(r)
