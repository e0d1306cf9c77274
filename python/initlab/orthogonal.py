"""Orthogonal and delta-orthogonal initializers on initlab's Householder core.

The matrix is Haar distributed (uniform on the orthogonal group / Stiefel manifold), built by
Stewart's method (1980): the Householder vectors of the QR of a Gaussian matrix are
independent Gaussian vectors, so Q is formed from freshly drawn reflectors, with the sign
correction of Mezzadri (2007). That is the distribution of torch's, Keras' and JAX's
``QR(Gaussian) * sign(diag R)`` at about half of their flops, blocked (compact WY) so that
the work runs in a cache-blocked, multi-threaded GEMM.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _core
from ._buffers import BF16, F16, F32, F64, as_target, mark_written, store
from ._simd import _isa_code
from ._threads import get_num_threads
from ._typing import TensorT
from .generator import SeedLike, resolve_seed

__all__ = ["orthogonal_", "delta_orthogonal_"]

_LAYOUTS = ("torch", "keras", "jax")


# Largest finite value of each destination dtype; |Q_ij| <= 1 up to rounding, so a gain at most
# _GAIN_HEADROOM below it keeps every entry of gain * Q finite.
_MAX_FINITE = {F32: 3.4028234663852886e38, F64: 1.7976931348623157e308, F16: 65504.0, BF16: 3.3895313892515355e38}
_GAIN_HEADROOM = 1.001
_DTYPE_NAMES = {F32: "float32", F64: "float64", F16: "float16", BF16: "bfloat16"}


def _check_gain(gain: Any, code: int) -> float:
    if isinstance(gain, bool) or not isinstance(gain, (int, float, np.integer, np.floating)):
        raise TypeError(f"gain must be a real number, got {type(gain).__name__}")
    try:
        g = float(gain)
    except OverflowError:
        raise ValueError(f"gain = {gain!r} is beyond the float64 range") from None
    if not math.isfinite(g):
        raise ValueError(f"gain must be finite, got {gain!r}")
    limit = _MAX_FINITE[code] / _GAIN_HEADROOM
    if abs(g) > limit:
        raise ValueError(f"gain = {g!r} would overflow {_DTYPE_NAMES[code]} (|gain| must be <= {limit:.6g})")
    return g


def _check_layout(layout: Any) -> str:
    if not isinstance(layout, str) or layout not in _LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; accepted: 'torch' (rows = dim 0), 'keras' or 'jax' (columns = last dim)")
    return layout


def _matrix_shape(shape: tuple[int, ...], layout: str) -> tuple[int, int]:
    """(rows, cols) of the flattened matrix: torch = (dim 0, rest), keras/jax = (leading, last)."""
    if layout == "torch":
        rows = int(shape[0])
        return rows, (math.prod(shape) // rows if rows else 0)
    return math.prod(shape[:-1]), int(shape[-1])


def _fill_matrix(mat: np.ndarray, gain: float, key: int, stream: int) -> None:
    """Write gain * Q into the 2-D float32/float64 array ``mat`` (any strides)."""
    rows, cols = mat.shape
    _core.orthogonal(mat, rows < cols, gain, key, stream, get_num_threads(), _isa_code())


def _compute_dtype(code: int) -> type:
    return np.float64 if code == F64 else np.float32


def orthogonal_(tensor: TensorT, gain: float = 1.0, *, seed: SeedLike = None, layout: str = "torch") -> TensorT:
    """Fill ``tensor`` in place with a Haar-distributed (semi-)orthogonal matrix times ``gain``.

    Semantics of ``torch.nn.init.orthogonal_``: with ``layout="torch"`` the rows are dim 0 and
    the trailing dims are flattened into the columns; ``layout="keras"`` (or ``"jax"``) flattens
    the leading dims into the rows and keeps the last dim as the columns. The matrix has
    orthonormal columns when rows >= cols and orthonormal rows otherwise (as the peers, the
    wide case is the transpose of a tall draw).

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable destination with at least 2 dimensions; float32, float64, float16 or
        bfloat16 (low precision is computed in float32 and rounded to nearest-even), any
        memory layout; torch tensors and ``nn.Parameter`` on any device.
    gain : float, default 1.0
        Multiplier applied to the orthogonal matrix, finite.
    seed : int, Generator or None, keyword-only
        ``int`` in ``[0, 2**64)``: stateless, the same call gives the same matrix; a
        :class:`~initlab.Generator`: its next stream (one per call); ``None`` (default): the
        module-wide :func:`~initlab.default_generator`.
    layout : {"torch", "keras", "jax"}, keyword-only, default "torch"
        How an n-D tensor is flattened into a matrix (see above).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    ValueError
        Fewer than 2 dimensions, an unknown layout, a non-finite gain or one whose product with
        the matrix could overflow the dtype, ``seed`` outside ``[0, 2**64)``, a read-only array,
        elements overlapping in memory, an inference tensor outside ``torch.inference_mode()``.
        Nothing is written on error.
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype; a
        non-real ``gain``; ``seed`` not an int, Generator or None.

    See Also
    --------
    delta_orthogonal_, Generator.orthogonal, initlab.linalg.householder_qr

    Notes
    -----
    Determinism: the values are a pure function of (seed, stream, shape, layout, dtype, gain):
    bit-identical for any thread count and any memory layout of the destination (the blocking
    and every summation order are fixed). The AVX2/AVX-512 paths use FMA in the matrix
    multiply, so values on the generic (SSE2/scalar) path differ by a few ulps. float16 and
    bfloat16 are the float32 result rounded once. Reflector k of an m x n draw uses the
    normal values at indices [k*m, k*m + m - k) of the Philox stream (see
    ``csrc/include/initlab/orthogonal.hpp``). Cost: about 2mn^2 - 2n^3/3 flops for an m x n
    matrix (m >= n), half of QR + forming Q. Zero-size tensors are a no-op (a Generator still
    advances by one stream).

    Devices: a tensor on a GPU or any other torch device gets the CPU Householder result,
    computed on the host and copied, so its bits equal the CPU fill's (there is no device QR:
    one would not be bit-identical).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> w = initlab.orthogonal_(np.empty((6, 4), np.float64), seed=0)   # tall: orthonormal columns
    >>> np.allclose(w.T @ w, np.eye(4))
    True
    >>> w = initlab.orthogonal_(np.empty((4, 6), np.float64), gain=2.0, seed=0)   # wide: rows
    >>> np.allclose(w @ w.T, 4 * np.eye(4))
    True
    """
    t = as_target(tensor)
    if t.ndim < 2:
        raise ValueError(f"Only tensors with 2 or more dimensions are supported (got shape {t.shape}, {t.ndim}-D)")
    g = _check_gain(gain, t.code)
    lay = _check_layout(layout)
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return tensor
    rows, cols = _matrix_shape(t.shape, lay)
    if t.code in (F32, F64):
        try:  # a zero-copy 2-D view of the destination: the core writes it directly
            mat = np.reshape(t.array, (rows, cols), copy=False)
        except ValueError:
            mat = None
        if mat is not None:
            try:
                _fill_matrix(mat, g, key, stream)
            finally:
                mark_written(t)  # autograd must see the new values (also after an interrupt)
            return tensor
    # float16/bfloat16 or a layout with no 2-D view: compute, then store (rounds once).
    tmp: np.ndarray = np.empty((rows, cols), dtype=_compute_dtype(t.code), order="C" if rows < cols else "F")
    _fill_matrix(tmp, g, key, stream)
    store(t, tmp.reshape(t.shape))
    mark_written(t)
    return tensor


def delta_orthogonal_(tensor: TensorT, gain: float = 1.0, *, seed: SeedLike = None, layout: str = "torch") -> TensorT:
    """Delta-orthogonal initialization of a 3-, 4- or 5-D convolution kernel (Xiao et al. 2018).

    All taps are zero except the centre tap, which holds ``gain`` times a Haar-distributed
    matrix with orthonormal columns: the convolution is an orthogonal map at initialization
    (dynamical isometry). The centre is at spatial index ``(k - 1) // 2`` in every spatial
    dimension (the JAX/TF convention; torch's ``dirac_`` uses ``k // 2``, which differs for
    even ``k``).

    Parameters
    ----------
    tensor : numpy.ndarray or torch.Tensor
        Writable kernel. ``layout="torch"``: shape ``(c_out, c_in, *k)``, the centre tap is a
        c_out x c_in matrix with orthonormal columns. ``layout="keras"``/``"jax"``: shape
        ``(*k, c_in, c_out)``, the centre tap is c_in x c_out with orthonormal rows. For one
        seed the keras-layout matrix is the transpose of the torch-layout one.
    gain : float, default 1.0
        Multiplier, finite.
    seed : int, Generator or None, keyword-only
        As in :func:`orthogonal_`.
    layout : {"torch", "keras", "jax"}, keyword-only, default "torch"
        Axis order of the kernel.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``tensor`` itself (the same object), filled.

    Raises
    ------
    ValueError
        Not 3-, 4- or 5-D; ``c_in > c_out`` (an orthogonal map cannot have more inputs than
        outputs); an unknown layout; a non-finite gain or one that would overflow the dtype;
        ``seed`` outside ``[0, 2**64)``; a read-only array or elements overlapping in memory.
        Nothing is written on error.
    TypeError
        ``tensor`` is not a NumPy array or torch tensor, or has an unsupported dtype; a
        non-real ``gain``; ``seed`` not an int, Generator or None.

    See Also
    --------
    orthogonal_, dirac_

    Notes
    -----
    Determinism: as :func:`orthogonal_` (bit-identical for any thread count and memory
    layout); the centre matrix is ``orthogonal_`` of a ``(c_out, c_in)`` matrix of the same
    seed and dtype. A torch tensor on any device gets the same bits (computed on the host).

    Examples
    --------
    >>> import numpy as np
    >>> import initlab
    >>> k = initlab.delta_orthogonal_(np.empty((8, 4, 3, 3), np.float64), seed=0)
    >>> c = k[:, :, 1, 1]                      # the centre tap: orthonormal columns
    >>> np.allclose(c.T @ c, np.eye(4)), bool(np.count_nonzero(k) == np.count_nonzero(c))
    (True, True)
    """
    t = as_target(tensor)
    if t.ndim not in (3, 4, 5):
        raise ValueError(f"Only tensors with 3, 4, or 5 dimensions are supported (got shape {t.shape}, {t.ndim}-D)")
    g = _check_gain(gain, t.code)
    lay = _check_layout(layout)
    if lay == "torch":
        c_out, c_in, ks = int(t.shape[0]), int(t.shape[1]), t.shape[2:]
    else:
        ks, c_in, c_out = t.shape[:-2], int(t.shape[-2]), int(t.shape[-1])
    if c_in > c_out:
        raise ValueError(
            f"`fan_in` must be less or equal than `fan_out`: delta_orthogonal_ needs in-channels <= out-channels, "
            f"got c_in={c_in} > c_out={c_out} for shape {t.shape} in {lay!r} layout"
        )
    key, stream = resolve_seed(seed)
    if t.size == 0:
        return tensor
    q: np.ndarray = np.empty((c_out, c_in), dtype=_compute_dtype(t.code), order="F")
    _fill_matrix(q, g, key, stream)
    vals = np.zeros(t.shape, dtype=q.dtype)
    centre = tuple((int(k) - 1) // 2 for k in ks)
    if lay == "torch":
        vals[(slice(None), slice(None)) + centre] = q
    else:
        vals[centre + (slice(None), slice(None))] = q.T
    store(t, vals)
    mark_written(t)
    return tensor

