"""Lazy Dask arrays filled by initlab, block by block.

``initlab.dask.normal((100_000, 50_000), std=0.02, chunks="auto", seed=0)`` returns a
``dask.array.Array`` whose every block is filled by initlab's core with ``global_shape=`` and
``offset=`` set to the block's place in the array. Determinism contract: because initlab's value
at an element is a pure function of (seed, stream, distribution, parameters, dtype, global
index), ``.compute()`` equals the in-memory fill of the whole array bit for bit, for any
chunking and any scheduler (threads, processes, ``dask.distributed``), and any block computed
alone equals that block of the full fill.

Seeds: an ``int`` (stream 0, as the in-memory call), an :class:`initlab.Generator` (it hands out
one stream when the array is *built*, so the graph itself is deterministic and computing it
twice gives the same numbers), or ``None`` (the default generator's next stream, also at build
time).

Functions (positional parameters and defaults as the in-memory ``*_`` initializers; ``layout``
and the other keyword options pass through): :func:`uniform`, :func:`normal`,
:func:`trunc_normal`, :func:`xavier_uniform`, :func:`xavier_normal`, :func:`kaiming_uniform`,
:func:`kaiming_normal`, :func:`lecun_uniform`, :func:`lecun_normal`, :func:`variance_scaling`,
:func:`sparse` (its seeded zero mask ranks whole columns, so ``"auto"`` keeps columns whole),
:func:`orthogonal` (one block only: a QR couples every element) and :func:`to_npy` (store any
Dask array into one ``.npy`` file, block by block, from any scheduler; the file appears under its
name only when complete). Zarr stores written with Dask's ``to_zarr`` are directories written in
place: a failed store leaves a partial one (see :func:`to_npy`).

Requires Dask (``pip install initlab[dask]``).
"""

from __future__ import annotations

import functools
import io
import math
import os
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError("initlab.dask needs Dask; install it with `pip install initlab[dask]`") from e

from . import _atomic, _blockwise

__all__ = [
    "uniform", "normal", "trunc_normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
    "kaiming_normal", "lecun_uniform", "lecun_normal", "variance_scaling", "sparse", "orthogonal", "to_npy",
    "from_initializer",
]


def _block_task(name: str, args: tuple, options: dict, key: int, stream: int, global_shape: tuple[int, ...],
                dtype: np.dtype, block_info: Any = None) -> np.ndarray:
    # Runs on a worker: allocate the block, fill it as its place in the global array.
    info = block_info[None]
    loc = info["array-location"]
    block = np.empty(tuple(b - a for a, b in loc), dtype)
    return _blockwise.fill_block(block, name, args, options, key, stream, global_shape, tuple(a for a, _ in loc))


def from_initializer(init: Any, shape: Any, *args: Any, chunks: Any = "auto", dtype: Any = "float32",
                     seed: Any = None, **options: Any) -> da.Array:
    """A Dask array filled by a blockwise initlab initializer.

    Parameters
    ----------
    init : str or callable
        A catalog name (``"normal"``, ``"kaiming_uniform"``, ...; a trailing underscore is
        accepted) or the in-place function itself (``initlab.normal_``).
    shape : int or tuple of int
        The global shape.
    *args
        The initializer's positional parameters (e.g. ``mean, std`` for ``normal``).
    chunks : str, int, tuple or dict, default "auto"
        Any chunk specification Dask accepts (``dask.array.core.normalize_chunks``).
    dtype : {"float32", "float64", "float16", "bfloat16"}
    seed : int, initlab.Generator or None
        Resolved to one (key, stream) now, when the graph is built.
    **options
        Keyword options of the initializer (``layout``, ``mode``, ...).

    Returns
    -------
    dask.array.Array
        Computes to exactly ``fill(np.empty(shape, dtype), *args, seed=seed, **options)``.

    Raises
    ------
    ValueError, TypeError
        Everything the in-memory initializer would raise for the global shape, checked now;
        orthogonal or an unknown name.
    """
    name = _blockwise.resolve_init(init)
    shape = _blockwise.check_shape(shape)
    dt = _blockwise.resolve_dtype(dtype)
    for k in ("global_shape", "offset"):
        if k in options:
            raise TypeError(f"{k}= is set by initlab.dask for each block; do not pass it")
    _blockwise.validate(name, shape, dt, args, options)
    if name == "sparse":
        chunks = _sparse_chunks(chunks, shape)
    norm = da.core.normalize_chunks(chunks, shape, dtype=dt)
    key, stream = _blockwise.resolve_stream(seed)
    task = functools.partial(_block_task, name, tuple(args), dict(options), key, stream, shape, dt)
    token = tokenize(name, shape, norm, dt.str, dt.name, args, sorted(options.items(), key=lambda kv: kv[0]),
                     key, stream)
    return da.map_blocks(task, chunks=norm, dtype=dt, meta=np.empty((0,) * len(shape), dt),
                         name=f"initlab-{name}-{token}")


def _sparse_chunks(chunks: Any, shape: tuple[int, ...]) -> Any:
    # sparse ranks every row of a column for each block, so "auto" keeps columns whole.
    if isinstance(chunks, str) and chunks == "auto" and shape[0]:
        return (shape[0], "auto")
    return chunks


def _factory(name: str, signature: str) -> Any:
    def f(shape: Any, *args: Any, chunks: Any = "auto", dtype: Any = "float32", seed: Any = None,
          **options: Any) -> da.Array:
        return from_initializer(name, shape, *args, chunks=chunks, dtype=dtype, seed=seed, **options)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = (
        f"Lazy Dask array of ``initlab.{name}_`` over the whole ``shape``.\n\n"
        f"``{name}(shape, {signature}*, chunks='auto', dtype='float32', seed=None, **options)``; the "
        f"positional parameters and options are those of ``initlab.{name}_``.\n"
        f"``.compute()`` equals ``initlab.{name}_(np.empty(shape, dtype), ..., seed=seed)`` bit for bit, "
        "for any chunking and scheduler. See :func:`from_initializer` for the parameters and errors."
    )
    return f


uniform = _factory("uniform", "a=0.0, b=1.0, ")
normal = _factory("normal", "mean=0.0, std=1.0, ")
trunc_normal = _factory("trunc_normal", "mean=0.0, std=1.0, a=-2.0, b=2.0, ")
xavier_uniform = _factory("xavier_uniform", "gain=1.0, ")
xavier_normal = _factory("xavier_normal", "gain=1.0, ")
kaiming_uniform = _factory("kaiming_uniform", "a=0, mode='fan_in', nonlinearity='leaky_relu', ")
kaiming_normal = _factory("kaiming_normal", "a=0, mode='fan_in', nonlinearity='leaky_relu', ")
lecun_uniform = _factory("lecun_uniform", "")
lecun_normal = _factory("lecun_normal", "")
variance_scaling = _factory("variance_scaling", "scale=1.0, mode='fan_in', distribution='truncated_normal', ")
sparse = _factory("sparse", "sparsity, std=0.01, ")
sparse.__doc__ += (
    "\n\nThe seeded zero mask ranks the rows of each whole column, so a block costs (all rows) x "
    "(its columns) work: ``chunks='auto'`` keeps columns whole; chunks that split the rows work too, "
    "at that extra cost."
)


def _orthogonal_task(args: tuple, options: dict, key: int, stream: int, shape: tuple[int, ...],
                     dtype: np.dtype) -> np.ndarray:
    from .generator import Generator
    from .orthogonal import orthogonal_

    return orthogonal_(np.empty(shape, dtype), *args, seed=Generator(key, stream=stream), **options)


def orthogonal(shape: Any, gain: float = 1.0, *, chunks: Any = "auto", dtype: Any = "float32", seed: Any = None,
               **options: Any) -> da.Array:
    """A Dask array of ``initlab.orthogonal_`` — only as a single block.

    Every element of an orthogonal matrix depends on the whole matrix (a QR), so it cannot be
    filled block by block: ``chunks`` must resolve to one block (``chunks=-1`` or a shape that
    covers the array; ``"auto"`` is accepted when Dask's automatic chunking gives one block).
    Rechunk the result afterwards if you need smaller blocks.

    Raises
    ------
    ValueError
        ``chunks`` that split the array, and everything ``orthogonal_`` raises.
    """
    shape = _blockwise.check_shape(shape)
    dt = _blockwise.resolve_dtype(dtype)
    norm = da.core.normalize_chunks(chunks, shape, dtype=dt)
    split = [k for k, c in enumerate(norm) if len(c) > 1]
    if split:
        raise ValueError(
            f"orthogonal cannot be computed block by block (a QR couples every element); chunks {norm} split "
            f"dimension(s) {split}. Pass chunks=-1 (one block) and rechunk the result if needed"
        )
    from .orthogonal import orthogonal_

    orthogonal_(np.empty((0,) * len(shape), dt) if len(shape) >= 2 else np.empty(shape, dt), gain, seed=0,
                **options)
    key, stream = _blockwise.resolve_stream(seed)
    task = functools.partial(_orthogonal_task, (gain,), dict(options), key, stream, shape, dt)
    token = tokenize("orthogonal", shape, dt.str, gain, sorted(options.items()), key, stream)
    return da.map_blocks(task, chunks=norm, dtype=dt, meta=np.empty((0,) * len(shape), dt),
                         name=f"initlab-orthogonal-{token}")


class _NpyRegion:
    """A picklable ``da.store`` target: writes a region into a ``.npy`` file (a temporary file
    beside the target, see :func:`to_npy`) with ``pwrite`` from whichever process computed it
    (nothing is shipped but the path)."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: np.dtype, data_offset: int,
                 create: bool = False) -> None:
        self.path, self.shape, self.dtype, self.data_offset = path, shape, dtype, data_offset
        self.create = create

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        key = key if isinstance(key, tuple) else (key,)
        starts = [sl.indices(n)[0] for sl, n in zip(key, self.shape)]
        value = np.ascontiguousarray(value, dtype=self.dtype)
        if value.size == 0:
            return
        nd = len(self.shape)
        # k is the last axis the block does not cover whole: every index of the axes before k
        # starts one contiguous run of the file, written with one pwrite.
        k = max([i for i in range(nd) if value.shape[i] != self.shape[i]], default=0)
        strides = [int(np.prod(self.shape[i + 1:])) for i in range(nd)]
        run = value.reshape(int(np.prod(value.shape[:k])), -1) if k else value.reshape(1, -1)
        # Without ``create`` the temporary file exists already: a block still running after the
        # store failed (and the temporary was removed) cannot bring it back.
        fd = os.open(self.path, os.O_WRONLY | (os.O_CREAT if self.create else 0), 0o666)
        try:
            for r, outer in enumerate(np.ndindex(*value.shape[:k])):
                flat = sum((starts[i] + (outer[i] if i < k else 0)) * strides[i] for i in range(nd))
                buf = memoryview(run[r].view(np.uint8))
                pos = self.data_offset + flat * self.dtype.itemsize
                while len(buf):
                    n = os.pwrite(fd, buf, pos)
                    buf, pos = buf[n:], pos + n
        finally:
            os.close(fd)


def _finish_npy(stored: Any, tmp: str, path: str, header: bytes, nbytes: int) -> None:
    # Runs once every block is in the temporary file: header, full size, sync, rename into place.
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.pwrite(fd, header, 0)
        os.ftruncate(fd, nbytes)
    finally:
        os.close(fd)
    _atomic.replace_into(tmp, path)


def to_npy(x: da.Array, path: str | os.PathLike, *, compute: bool = True, **store_kwargs: Any) -> Any:
    """Store a Dask array into one ``.npy`` file without ever holding the whole array.

    Every block is written into its region (``pwrite``) of a temporary file beside ``path``
    (``.<name>.initlab-tmp-*``, same directory) by the process that computed it, so the
    threaded, process and ``dask.distributed`` schedulers all work (the workers must see the
    directory). Blocks are disjoint, so no lock is needed. When every block is written, the
    header goes in, the file is synced and renamed over ``path``: ``path`` holds either the old
    file untouched or the complete new one. With ``compute=True`` a block that raises, Ctrl-C or
    a full disk removes the temporary file; with ``compute=False`` nothing is created until the
    returned delayed object is computed, and a failed compute can leave the hidden temporary
    file (never a partial file under ``path``). Progress: wrap the call in
    ``dask.diagnostics.ProgressBar()`` or use ``distributed.progress`` on the returned future.

    Zarr: ``x.to_zarr(store)`` (Dask's own) writes a directory store chunk file by chunk file
    in place, so a failed or interrupted store leaves a partial store there; no format-level
    rename makes a directory replace atomic. Write to a new path and rename the directory
    when the compute has returned, or keep the ``.npy`` route for an all-or-nothing file.

    Parameters
    ----------
    x : dask.array.Array
    path : str or PathLike
        The ``.npy`` file to create or replace (a symbolic link is followed).
    compute : bool, default True
        ``False`` returns a delayed object; the file is written (and ``path`` replaced) only
        when it is computed.
    **store_kwargs
        Passed to ``compute`` (e.g. ``scheduler=``); ``regions=`` goes to :func:`dask.array.store`.

    Returns
    -------
    None, or the delayed object with ``compute=False``; read the file back with
    ``np.load(path, mmap_mode="r")``.

    Raises
    ------
    TypeError
        bfloat16 or object data (the format cannot hold them).
    ValueError
        ``path`` exists and is not a regular file (a directory, a FIFO, a device: refused without
        being opened); a file larger than the platform can address.
    OSError
        Not enough free space or above the file-size limit (checked first), any write error.
    """
    dt = np.dtype(x.dtype)
    if dt.hasobject or dt.name == "bfloat16":
        raise TypeError(f"the .npy format cannot hold {dt} data (no bfloat16, no objects); cast first")
    shape = tuple(int(s) for s in x.shape)
    target = _atomic.check_target(path)
    out = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        out, {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": shape})
    header = out.getvalue()
    nbytes = len(header) + math.prod(shape) * dt.itemsize
    _atomic.check_space(target, nbytes)
    tmp = _atomic.temp_name(target)
    regions = store_kwargs.pop("regions", None)
    stored = da.store(x, _NpyRegion(tmp, shape, dt, len(header), create=not compute), lock=False,
                      regions=regions, compute=False)
    final = dask.delayed(_finish_npy, pure=False)(stored, tmp, target, header, nbytes)
    if not compute:
        return final
    # Created (its blocks reserved, so a full disk fails here) only now, when the store runs.
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            _atomic.preallocate(fd, nbytes)
        finally:
            os.close(fd)
        final.compute(**store_kwargs)
    except BaseException:
        _atomic.remove_quietly(tmp)
        raise
    return None
