"""The blockwise catalog: initializers whose every block can be filled alone.

A fill is *blockwise* when the block at ``offset`` of a tensor of shape ``global_shape``, filled
by itself with ``global_shape=``/``offset=``, equals that block of the full fill. The Dask
adapter and the out-of-core file fill build on this module: they resolve the user's
initializer and seed once, then fill each block independently (in any order, in any process).

``sparse_`` is blockwise too, but its zero mask ranks the rows of each whole global column, so
a block costs ``global rows x block cols`` work: blocks of whole columns are the efficient
shape. ``orthogonal_`` is not blockwise at all.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Callable

import numpy as np

from .generator import SeedLike
from . import init as _init
from .generator import Generator, _resolve_dtype, resolve_seed

__all__ = ["BLOCKWISE", "check_shape", "resolve_init", "fill_block", "validate", "resolve_dtype", "resolve_stream"]

# name -> in-place fill; every one accepts seed=, global_shape=, offset=.
BLOCKWISE: dict[str, Callable[..., Any]] = {
    "uniform": _init.uniform_,
    "normal": _init.normal_,
    "trunc_normal": _init.trunc_normal_,
    "xavier_uniform": _init.xavier_uniform_,
    "xavier_normal": _init.xavier_normal_,
    "kaiming_uniform": _init.kaiming_uniform_,
    "kaiming_normal": _init.kaiming_normal_,
    "lecun_uniform": _init.lecun_uniform_,
    "lecun_normal": _init.lecun_normal_,
    "variance_scaling": _init.variance_scaling_,
    "sparse": _init.sparse_,
}


def resolve_init(init: Any) -> str:
    """Map ``"normal"``, ``"normal_"`` or ``initlab.normal_`` to the catalog name ``"normal"``.

    Raises ``ValueError`` naming the accepted names for anything else (orthogonal included,
    with the reason).
    """
    name = getattr(init, "__name__", init)
    if isinstance(name, str):
        name = name[:-1] if name.endswith("_") else name
        if name in BLOCKWISE:
            return name
        if name in ("orthogonal", "delta_orthogonal"):
            raise ValueError(
                f"{name} is not blockwise: every element depends on the whole matrix (a QR), so it cannot "
                "be filled block by block; fill it in memory (initlab.orthogonal_) or as a single block"
            )
    raise ValueError(f"unknown or non-blockwise initializer {init!r}; accepted: {sorted(BLOCKWISE)}")


def check_shape(shape: Any) -> tuple[int, ...]:
    """An int or a sequence of non-negative ints as a tuple; the error lists every bad entry."""
    items = (shape,) if isinstance(shape, numbers.Integral) and not isinstance(shape, bool) else shape
    try:
        out = tuple(items)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0]
    if bad:
        raise ValueError(f"shape must hold non-negative ints, got {shape!r} (bad entries: {bad})")
    return tuple(int(s) for s in out)


def resolve_dtype(dtype: Any) -> np.dtype:
    """float32, float64, float16 or bfloat16 (``"bfloat16"`` needs ml_dtypes) as a NumPy dtype."""
    return np.dtype(_resolve_dtype(dtype))


def resolve_stream(seed: SeedLike) -> tuple[int, int]:
    """Resolve a seed to (key, stream) once. A Generator hands out exactly one stream here, so a
    lazily evaluated graph built from it is deterministic; ``None`` takes the default generator's next."""
    return resolve_seed(seed)


def validate(name: str, shape: tuple[int, ...], dtype: np.dtype, args: tuple, options: dict) -> None:
    """Check every argument (parameters, fans of the global shape, dtype) before any block is filled.

    A one-element scratch block of the global shape goes through the initializer's own
    validation, so the errors are exactly those of the in-memory call.
    """
    origin = (0,) * len(shape)
    if math.prod(shape):
        # A one-element block at the origin: checks what an empty probe would skip (e.g. the
        # fans, which kaiming_* does not compute for an empty tensor); a scratch element is written.
        BLOCKWISE[name](np.empty((1,) * len(shape), dtype), *args, seed=0, global_shape=shape, offset=origin,
                        **options)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # kaiming_*'s "zero-element tensor" warning
        BLOCKWISE[name](np.empty((0,) * len(shape), dtype), *args, seed=0, global_shape=shape, offset=origin,
                        **options)


def fill_block(block: np.ndarray, name: str, args: tuple, options: dict, key: int, stream: int,
               global_shape: tuple[int, ...], offset: tuple[int, ...]) -> np.ndarray:
    """Fill ``block`` in place as the block at ``offset`` of the global fill; return it."""
    if block.size == 0:
        return block  # validated when the work was planned; nothing to write (and no warning per block)
    BLOCKWISE[name](block, *args, seed=Generator(key, stream=stream), global_shape=global_shape, offset=offset,
                    **options)
    return block
