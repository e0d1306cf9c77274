"""initlab: fast, reproducible neural-network weight initialization, deep-network start-up
schemes and variance analysis, on a C++/OpenMP core.

See README.md for the contracts (reproducibility, seeds, buffers, errors, threads).
"""

from __future__ import annotations

from . import _ompenv  # noqa: F401  (first: the OpenMP wait policy must be set before the core loads)

try:
    from . import _core  # noqa: F401
except ImportError as e:  # pragma: no cover - only when the extension was not built
    raise ImportError(
        "initlab's compiled core (initlab._core) could not be imported; install the package with "
        "`pip install .` from a source checkout so the C++ extension is built"
    ) from e

from ._simd import available_simd_paths, set_simd_path, simd_path
from ._threads import get_num_threads, num_threads, openmp_enabled, set_num_threads
from .generator import Generator, default_generator, manual_seed
from .device import device_backend

# --- core catalog (issue: core) ---
from .fans import calculate_gain, compute_fans
from .init import (
    constant_,
    dirac_,
    eye_,
    kaiming_normal_,
    kaiming_uniform_,
    lecun_normal_,
    lecun_uniform_,
    normal_,
    ones_,
    sparse_,
    trunc_normal_,
    uniform_,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
    zero_init_,
    zeros_,
)
# --- orthogonal (issue: Householder orthogonal) ---
from . import linalg
from .orthogonal import delta_orthogonal_, orthogonal_
# --- statistics, networks, analysis (issue: variance analysis) ---
from .stats import Stats, stats
from . import analysis, nn
from .analysis import Trace, analyze
# --- LSUV and schemes (issue: LSUV) ---
from .lsuv import LSUVReport, lsuv

from ._version import __version__

# Optional parts load on first use, so `import initlab` stays light and needs no extra:
# `initlab.torch.init_module(...)` works without a separate `import initlab.torch`.
# Each lazy module with the package it needs (None: nothing beyond initlab's own dependencies).
_LAZY_MODULES = {"torch": "torch", "dask": "dask", "keras": "keras", "jax": "jax", "schemes": None}
_LAZY_NAMES = {
    "gain": "activation_gain",
    "register_activation": "activation_gain",
    "evaluate": "evaluation",
    "Evaluation": "evaluation",
    "Manifest": "manifest",
    "fill_file": "outofcore",
}


class MissingOptionalDependency(AttributeError):
    """``initlab.<adapter>`` was used but the package it needs is missing (or fails to import).

    An ``AttributeError`` (what PEP 562 asks of a module's ``__getattr__``), so ``help(initlab)``,
    ``hasattr`` and IDEs treat the adapter as absent; the message names the extra to install and
    the original ``ImportError`` is chained. ``import initlab.torch`` still raises ``ImportError``.
    """


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ImportError as e:
            raise MissingOptionalDependency(f"initlab.{name} is unavailable: {e}") from e
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    raise AttributeError(f"module 'initlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    # A lazy adapter is listed only when the package it needs is installed (or it is loaded).
    import importlib.util
    import sys

    def present(mod: str, dep: str | None) -> bool:
        if f"{__name__}.{mod}" in sys.modules or dep is None:
            return True
        try:
            return importlib.util.find_spec(dep) is not None
        except (ImportError, ValueError):
            return False

    lazy = {m for m, dep in _LAZY_MODULES.items() if present(m, dep)}
    return sorted(set(__all__) | lazy | {"__version__", "MissingOptionalDependency"})

__all__ = [
    # seeds, threads, SIMD
    "Generator", "default_generator", "manual_seed", "get_num_threads", "set_num_threads", "num_threads",
    "openmp_enabled", "simd_path", "set_simd_path", "available_simd_paths",
    # the fill catalog
    "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "lecun_uniform_",
    "lecun_normal_", "variance_scaling_", "sparse_", "zero_init_", "orthogonal_", "delta_orthogonal_",
    "calculate_gain", "compute_fans", "linalg",
    # statistics, networks, analysis, LSUV
    "stats", "Stats", "nn", "analysis", "analyze", "Trace", "lsuv", "LSUVReport",
    # activation theory, evaluation, manifests (loaded on first use)
    "gain", "register_activation", "evaluate", "Evaluation", "Manifest",
    # out-of-core file fills (loaded on first use)
    "fill_file",
    # the error a lazy adapter raises when its package is missing
    "MissingOptionalDependency",
]

del annotations
