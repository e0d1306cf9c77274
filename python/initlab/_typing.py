"""Type aliases of the public API, for annotations (nothing here is used at run time).

``TensorLike``: what an in-place initializer fills, a NumPy array or a torch tensor (any
subclass: ``nn.Parameter``, DTensor). ``TensorT``: the same, as a type variable, so that each
initializer is typed to return the very type it was given. ``Layout``: how fans are read from a
shape (``"torch"``, ``"keras"``, ``"jax"`` or a pair of axes). ``SeedLike`` lives in
:mod:`initlab.generator` (it names :class:`~initlab.Generator`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TypeVar, Union

import numpy as np

if TYPE_CHECKING:  # torch is optional: the alias names it only for type checkers
    import torch

    TensorLike = Union[np.ndarray, torch.Tensor]
else:
    TensorLike = Union[np.ndarray, "torch.Tensor"]

TensorT = TypeVar("TensorT", bound=TensorLike)

Axes = Union[int, Sequence[int]]
Layout = Union[str, tuple[Axes, Axes], Sequence[Axes]]

__all__ = ["TensorLike", "TensorT", "Layout", "Axes"]
