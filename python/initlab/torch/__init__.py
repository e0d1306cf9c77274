"""initlab on ``torch.nn.Module``: LSUV through forward hooks, whole-module initialization with
initlab's fills, and variance analysis.

* :func:`lsuv` — LSUV (Mishkin & Matas 2016) on Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and
  the output projection of MultiheadAttention, in execution order, BatchNorm-aware; the
  module's train/eval state, BatchNorm running statistics and hooks are restored afterwards,
  also when an error is raised.
* :func:`init_module` — re-initialize every parameter with initlab's fills (zero-copy,
  multi-threaded, bfloat16/float16 included), each parameter's stream derived from its
  qualified name.
* :func:`analyze` — per-layer forward/backward statistics, the same ``Trace`` as
  :func:`initlab.analyze`.

Requires PyTorch (``pip install initlab[torch]``); ``import initlab`` itself does not.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "initlab.torch needs PyTorch, which is not installed; install it with `pip install initlab[torch]` "
        "(initlab itself works without it)"
    ) from e

from ._analyze import analyze
from ._init import METHODS, init_module
from ._lsuv import lsuv

__all__ = ["lsuv", "init_module", "analyze", "METHODS"]
