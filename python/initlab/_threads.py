"""Thread-count control: the single place that decides how many threads a core call gets."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np

from . import _core

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "openmp_enabled", "MAX_THREADS"]

#: The largest accepted thread count. The core never starts more threads than processors
#: anyway (more would only add overhead, and could exceed a per-process thread limit).
MAX_THREADS = 1024

_lock = threading.Lock()
_global_threads: int | None = None
_override: contextvars.ContextVar[int | None] = contextvars.ContextVar("initlab_num_threads", default=None)


_num_procs: int | None = None


def _default_threads() -> int:
    global _num_procs
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    if _num_procs is None:  # asked once: the call costs microseconds and every fill needs it
        _num_procs = max(1, _core.num_procs())
    return _num_procs


def _check(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"number of threads must be in [1, {MAX_THREADS}], got {n}")
    return n


def openmp_enabled() -> bool:
    """Whether the compiled core was built with OpenMP (False means every call is single-threaded)."""
    return bool(_core.openmp_enabled())


def get_num_threads() -> int:
    """Return the number of threads initlab uses for large fills and reductions.

    The value in force is, in order: the innermost :func:`num_threads` context of the calling
    thread, the last :func:`set_num_threads`, ``OMP_NUM_THREADS``, the number of processors.
    Results never depend on it: every fill is bit-identical for any thread count. The core
    uses at most as many threads as there are processors, and runs serially in a process
    forked (``os.fork``, ``multiprocessing``'s "fork" start method) after initlab ran
    multi-threaded: the OpenMP thread pool does not survive ``fork``, and serial runs give the
    same bits.
    """
    o = _override.get()
    if o is not None:
        return o
    with _lock:
        return _global_threads if _global_threads is not None else _default_threads()


def set_num_threads(n: int) -> None:
    """Set the process-wide number of threads (an int in [1, MAX_THREADS]).

    Raises
    ------
    TypeError
        If ``n`` is not an int.
    ValueError
        If ``n < 1`` or ``n > MAX_THREADS`` (1024).
    """
    global _global_threads
    n = _check(n)
    with _lock:
        _global_threads = n


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[int]:
    """Context manager: use ``n`` threads inside the block, in the calling thread (and tasks it starts).

    The override is context-local (``contextvars``), so concurrent Python threads do not see
    each other's settings.
    """
    n = _check(n)
    token = _override.set(n)
    try:
        yield n
    finally:
        _override.reset(token)


_F = TypeVar("_F", bound=Callable[..., Any])


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread inside the block (threadpoolctl when installed; else nothing).

    The ``initlab.nn`` networks multiply small matrices: extra BLAS threads cost more in
    hand-off than they save, and on a busy machine OpenBLAS's spinning threads slow a run
    several-fold (``analyze``/``lsuv``: 23-33 s against 4-7 s with one thread, issue 19 item 18).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def blas_single_threaded_for_nn(fn: _F) -> _F:
    """Decorator: run ``fn(model, ...)`` under :func:`one_blas_thread` when ``model`` is an
    ``initlab.nn`` network (torch models keep torch's own thread settings)."""
    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        if type(model).__module__.startswith("initlab.nn"):
            with one_blas_thread():
                return fn(model, *args, **kwargs)
        return fn(model, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
