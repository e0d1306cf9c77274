"""initlab on ``torch.nn.Module``: LSUV through forward hooks, whole-module initialization with
initlab's fills, and variance analysis.

* :func:`lsuv` — LSUV (Mishkin & Matas 2016) on Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d and
  the output projection of MultiheadAttention, in execution order, BatchNorm-aware; the
  module's train/eval state, BatchNorm running statistics and hooks are restored afterwards,
  also when an error is raised.
* :func:`init_module` / :func:`plan` — whole-model initialization by a recipe (``"torch_default"``,
  ``"hf"``, ``"timm"``, ``"torchvision"``, ``"auto"`` or one initializer) of :class:`Rule` objects
  matched on module type, qualified name and role; :func:`plan` is the dry run and returns the same
  :class:`~initlab.manifest.Manifest`. Files by role: ``roles.py`` (what a parameter is),
  ``rules.py`` (Rule, resolution, fills), ``recipes.py`` (the named recipes), ``auto.py`` (the
  traced ``"auto"`` recipe), ``hf_record.py`` (reading HF's ``_init_weights``),
  ``initialize.py`` (the engine).
* :func:`materialize` — meta-device models to real storage, parameters, buffers and ties;
  :func:`fast_init` — any library's constructor on initlab's fills.
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
from ._lsuv import lsuv
from .fast_init import fast_init
from .initialize import init_module, plan
from .materialize import materialize
from .recipes import METHODS, RECIPES
from .roles import ROLES
from .rules import Rule

__all__ = ["lsuv", "init_module", "plan", "materialize", "fast_init", "Rule", "analyze", "METHODS",
           "RECIPES", "ROLES"]

