"""Destination layouts for the device routes: rows of consecutive global indices, as the core's
Walker sees them (csrc/src/fill.cpp), and sub-blocks for chunked staging.

Plain Python on shapes and strides; no torch, no Triton, so it is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


def merge_dims(shape: list[int], strides: list[int], gstrides: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Merge a dimension into the next where both memory and global index run on contiguously
    (the core's rule): fewer, longer rows, the same element -> (memory, global index) map."""
    shape, strides, gstrides = list(shape) or [1], list(strides) or [0], list(gstrides) or [1]
    if math.prod(shape) > 0:
        k = len(shape) - 2
        while k >= 0:
            b = k + 1
            if strides[k] == strides[b] * shape[b] and gstrides[k] == gstrides[b] * shape[b]:
                strides[k], gstrides[k] = strides[b], gstrides[b]
                shape[k] *= shape[b]
                del shape[b], strides[b], gstrides[b]
            k -= 1
    return shape, strides, gstrides


def row_groups(shape: list[int], strides: list[int], gstrides: list[int], gbase: int,
               max_rows: int = 1 << 20) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(global index, memory offset) of the first element of every row, in groups of at most
    ``max_rows`` rows (so the tables stay small whatever the layout). ``shape`` etc. are merged."""
    lead = shape[:-1]
    n_rows = math.prod(lead)
    if n_rows == 0:
        return
    for r0 in range(0, n_rows, max_rows):
        idx = np.arange(r0, min(n_rows, r0 + max_rows), dtype=np.int64)
        g = np.full(idx.shape, gbase, np.int64)
        m = np.zeros(idx.shape, np.int64)
        rem = idx
        for k in range(len(lead) - 1, -1, -1):
            i_k = rem % lead[k]
            rem = rem // lead[k]
            g += i_k * gstrides[k]
            m += i_k * strides[k]
        yield g, m


def sub_blocks(shape: tuple[int, ...], limit: int) -> Iterator[tuple[slice, ...]]:
    """Split an n-d index space into C-ordered boxes of at most ``limit`` elements (at least one
    element of the last dimension's rows at a time, cut further only when a row is too long)."""
    if len(shape) == 0:
        yield ()
        return
    inner = math.prod(shape[1:])
    if inner <= limit:
        step = max(1, limit // max(inner, 1))
        for i in range(0, shape[0], step):
            yield (slice(i, min(shape[0], i + step)),) + tuple(slice(0, n) for n in shape[1:])
        return
    for i in range(shape[0]):
        for sub in sub_blocks(shape[1:], limit):
            yield (slice(i, i + 1),) + sub
