"""Out-of-core fills on one machine: a weight file larger than memory, written chunk by chunk.

:func:`fill_file` writes a ``.npy`` (or raw C-order) file of any size with a blockwise initlab
initializer while holding at most two chunks in memory: each chunk is filled by the core as
the block at its ``offset`` of the global tensor (``global_shape=``/``offset=``), written with
``pwrite`` while the next chunk is being filled, then flushed to disk and dropped from the page
cache so the fill does not push everything else out of memory. The file is written beside the
target under a temporary name and renamed into place when complete, so a file that loads is
always complete. Determinism contract: the file
holds exactly the bytes of the in-memory fill of the whole array with the same seed, whatever
``chunk_bytes`` is. Read it back with ``np.load(path, mmap_mode="r")``.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import pathlib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .generator import SeedLike
from . import _atomic, _blockwise

__all__ = ["fill_file", "FileFill"]

_DEFAULT_CHUNK = 64 << 20


@dataclass(frozen=True)
class FileFill:
    """What :func:`fill_file` wrote: the file, its shape and dtype, the chunks and the time taken."""

    path: pathlib.Path
    shape: tuple[int, ...]
    dtype: str
    init: str
    nbytes: int
    chunks: int
    seconds: float

    @property
    def gb_per_s(self) -> float:
        """Data written per second (10**9 bytes)."""
        return self.nbytes / self.seconds / 1e9 if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        return (f"{self.init} {self.shape} {self.dtype} -> {self.path}: {self.nbytes / 2**30:.2f} GiB in "
                f"{self.chunks} chunks, {self.seconds:.2f} s ({self.gb_per_s:.2f} GB/s)")


def _slabs(shape: tuple[int, ...], itemsize: int, chunk_bytes: int) -> Iterator[tuple[tuple[int, ...], tuple[int, ...], int]]:
    """C-contiguous hyper-rectangles of at most ``chunk_bytes`` (or one line of the last axis):
    yields (offset, block shape, flat element start)."""
    nd = len(shape)
    if nd == 0:
        yield (), (), 0
        return
    if 0 in shape:
        return  # nothing to write
    strides = [math.prod(shape[k + 1:]) for k in range(nd)]
    # The outermost axis whose sub-blocks fit in a chunk: split it, keep every inner axis whole.
    k = next((k for k in range(nd) if strides[k] * itemsize <= chunk_bytes), nd - 1)
    step = max(1, chunk_bytes // (strides[k] * itemsize))
    for outer in np.ndindex(*shape[:k]):
        for start in range(0, shape[k], step):
            n = min(step, shape[k] - start)
            off = tuple(int(i) for i in outer) + (start,) + (0,) * (nd - k - 1)
            yield off, (1,) * k + (n,) + shape[k + 1:], sum(o * s for o, s in zip(off, strides))


def _progress_bar(progress: Any, total: int, desc: str) -> Any:
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress is True:
            raise ImportError("progress=True needs tqdm; install it with `pip install tqdm`") from None
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc)


def _check_chunk_bytes(chunk_bytes: Any, itemsize: int) -> int:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, numbers.Integral) or chunk_bytes < itemsize:
        raise ValueError(f"chunk_bytes must be an int >= the item size ({itemsize}), got {chunk_bytes!r}")
    return int(chunk_bytes)


def fill_file(path: str | os.PathLike, shape: Any, init: Any = "normal", *args: Any, dtype: Any = "float32",
              seed: SeedLike = None, chunk_bytes: int = _DEFAULT_CHUNK, progress: bool | None = None,
              file_format: str = "npy", drop_pages: bool = True, **options: Any) -> FileFill:
    """Write a tensor filled by a blockwise initializer to a file, chunk by chunk, in bounded memory.

    Parameters
    ----------
    path : str or PathLike
        The file to create or replace. It is written under a hidden temporary name in the same
        directory (``.<name>.initlab-tmp-*``, its blocks reserved first), synced, then renamed
        over ``path``: the path holds either the old file untouched or the complete new one,
        whatever happens (an exception, Ctrl-C, a full disk, a file-size limit: the temporary
        file is removed; a process killed by SIGKILL may leave the temporary file, never a
        partial file under ``path``). Two processes filling the same path each write a complete
        file; the last rename wins. A symbolic link is followed (the link keeps pointing at the
        new file). Needs free space for the whole new file while the old one still exists.
    shape : int or tuple of int
        The global shape.
    init : str or callable, default "normal"
        A blockwise catalog name (``"uniform"``, ``"normal"``, ``"trunc_normal"``,
        ``"xavier_*"``, ``"kaiming_*"``, ``"lecun_*"``, ``"variance_scaling"``, ``"sparse"``) or
        the in-place function (``initlab.kaiming_uniform_``).
    *args
        The initializer's positional parameters.
    dtype : {"float32", "float64", "float16"} (and "bfloat16" with ``file_format="raw"``)
    seed : int, initlab.Generator or None
        Resolved once (a Generator hands out one stream for the whole file).
    chunk_bytes : int, default 64 MiB
        Size of one chunk; memory use is about two chunks. The bytes written do not depend on it.
    progress : bool or None
        A tqdm progress bar (bytes written). ``None``: on when stderr is a terminal.
    file_format : {"npy", "raw"}
        ``"npy"``: a NumPy ``.npy`` file (header, then C-order data). ``"raw"``: the C-order data only.
    drop_pages : bool, default True
        After each chunk, flush it to disk (``fdatasync``) and tell the kernel to drop its pages
        from the page cache (``posix_fadvise(DONTNEED)``), so a file larger than memory does not
        evict everything else. ``False`` leaves write-back to the kernel (faster when the file
        fits in memory comfortably).
    **options
        Keyword options of the initializer (``layout``, ``mode``, ...).

    Returns
    -------
    FileFill
        The path, shape, dtype, chunk count and time.

    Raises
    ------
    ValueError, TypeError
        Everything the in-memory initializer raises for the global shape, checked before the file
        is created; a bad ``chunk_bytes`` or ``file_format``; bfloat16 in a ``.npy`` file; a
        ``path`` that exists and is not a regular file (a directory, a FIFO, a device: refused
        without being opened); a file larger than the platform can address.
    OSError
        Not enough free space, or above the process's file-size limit (``RLIMIT_FSIZE``), checked
        before the file is created; any write error during the fill (the old file stays).
    MemoryError
        The chunk buffers cannot be allocated (checked before the file is created).
    """
    name = _blockwise.resolve_init(init)
    shape = _blockwise.check_shape(shape)
    dt = _blockwise.resolve_dtype(dtype)
    if file_format not in ("npy", "raw"):
        raise ValueError(f"file_format must be 'npy' or 'raw', got {file_format!r}")
    if file_format == "npy" and dt.name == "bfloat16":
        raise TypeError("the .npy format has no bfloat16 type; use file_format='raw' or float16/float32")
    chunk_bytes = _check_chunk_bytes(chunk_bytes, dt.itemsize)
    for k in ("global_shape", "offset"):
        if k in options:
            raise TypeError(f"{k}= is set by fill_file for each chunk; do not pass it")
    _blockwise.validate(name, shape, dt, args, options)
    key, stream = _blockwise.resolve_stream(seed)

    nbytes = math.prod(shape) * dt.itemsize
    header = _npy_header(shape, dt) if file_format == "npy" else b""
    path = pathlib.Path(_atomic.check_target(path))  # not a regular file (FIFO, directory, device): ValueError
    _atomic.check_space(str(path), len(header) + nbytes)
    # The chunk buffers are allocated before any file exists, and never larger than the array.
    elems = max(1, min(chunk_bytes // dt.itemsize, math.prod(shape)))
    if name == "sparse":
        bufs = [np.empty(max(1, shape[0] * _sparse_step(shape, dt.itemsize, chunk_bytes)), dt)]
    else:
        bufs = [np.empty(elems, dt) for _ in range(2)]
    t0 = time.perf_counter()
    bar = _progress_bar(progress, nbytes, path.name)
    nchunks = 0
    try:
        # Written under a temporary name beside the target, synced, then renamed over it: the
        # target is the old file or the complete new one, whatever happens in between.
        with _atomic.atomic_output(str(path), len(header) + nbytes) as fd:
            if header:
                _pwrite_all(fd, np.frombuffer(header, np.uint8), 0)
            base = len(header)
            if name == "sparse":
                nchunks = _fill_sparse(fd, base, shape, dt, args, options, key, stream, chunk_bytes, bar,
                                       drop_pages, bufs[0])
            else:
                nchunks = _fill_slabs(fd, base, shape, dt, name, args, options, key, stream, chunk_bytes, bar,
                                      drop_pages, bufs)
    finally:
        if bar is not None:
            bar.close()
    return FileFill(path, shape, dt.name, name, nbytes, nchunks, time.perf_counter() - t0)


def _npy_header(shape: tuple[int, ...], dt: np.dtype) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        out, {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": shape})
    return out.getvalue()


def _release(fd: int, start: int, length: int, drop_pages: bool) -> None:
    if drop_pages and length:
        os.fdatasync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)


def _pwrite_all(fd: int, buf: np.ndarray, pos: int) -> None:
    view = memoryview(buf.reshape(-1).view(np.uint8))
    while len(view):
        n = os.pwrite(fd, view, pos)
        view, pos = view[n:], pos + n


def _fill_slabs(fd: int, base: int, shape: tuple[int, ...], dt: np.dtype, name: str, args: tuple, options: dict,
                key: int, stream: int, chunk_bytes: int, bar: Any, drop_pages: bool, bufs: list) -> int:
    # Two buffers: the core fills one (GIL released) while a writer thread writes the other.
    pending = None
    n = 0

    def write(block: np.ndarray, pos: int) -> None:
        _pwrite_all(fd, block, pos)
        _release(fd, pos, block.nbytes, drop_pages)
        if bar is not None:
            bar.update(block.nbytes)

    with ThreadPoolExecutor(max_workers=1) as writer:
        for off, bshape, flat in _slabs(shape, dt.itemsize, chunk_bytes):
            buf = bufs[n % 2]
            block = buf[: math.prod(bshape)].reshape(bshape)
            _blockwise.fill_block(block, name, args, options, key, stream, shape, off)
            # The writer still holds the other buffer (chunk n-1); this one's last write (chunk
            # n-2) was awaited in the previous iteration, so filling it above was safe.
            if pending is not None:
                pending.result()
            pending = writer.submit(write, block, base + flat * dt.itemsize)
            n += 1
        if pending is not None:
            pending.result()
    return n


def _sparse_step(shape: tuple[int, ...], itemsize: int, chunk_bytes: int) -> int:
    # Columns per chunk (at least one whole column, at most all of them).
    return max(1, min(shape[1], chunk_bytes // max(1, shape[0] * itemsize)))


def _fill_sparse(fd: int, base: int, shape: tuple[int, ...], dt: np.dtype, args: tuple, options: dict, key: int,
                 stream: int, chunk_bytes: int, bar: Any, drop_pages: bool, buf: np.ndarray) -> int:
    # sparse's mask ranks whole columns: fill blocks of columns, write each row's run with pwrite
    # (never through a memory map: a full disk would kill the process with SIGBUS).
    rows, cols = shape
    step = _sparse_step(shape, dt.itemsize, chunk_bytes)
    row_bytes = cols * dt.itemsize
    n = 0
    for c0 in range(0, cols, step):
        c1 = min(cols, c0 + step)
        block = buf[: rows * (c1 - c0)].reshape(rows, c1 - c0)
        _blockwise.fill_block(block, "sparse", args, options, key, stream, shape, (0, c0))
        for r in range(rows):
            _pwrite_all(fd, block[r], base + r * row_bytes + c0 * dt.itemsize)
        _release(fd, base, rows * row_bytes, drop_pages)
        if bar is not None:
            bar.update(block.nbytes)
        n += 1
    return n
