"""Issue 9, item 1: a process forked after a multi-threaded call must not hang.

Each check runs the child under a timeout, so a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time

import numpy as np
import pytest

import initlab
from initlab import _core

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork")

N = 1 << 20  # large enough for several parallel tasks
TIMEOUT_S = 60.0


def _fill(seed: int) -> bytes:
    x = np.empty(N, np.float32)
    initlab.normal_(x, seed=seed)
    stats = initlab.stats(x)  # the reductions run on the pool too
    return x.tobytes() + np.float64(stats.mean).tobytes()


def _reference(seed: int) -> bytes:
    with initlab.num_threads(1):
        return _fill(seed)


@pytest.fixture
def warm_pool():
    """A multi-threaded call in the parent first: this is what used to break the child."""
    initlab.set_num_threads(2)
    _fill(0)


def test_os_fork_child_completes_multithreaded_calls(warm_pool):
    expected = _reference(7)
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            ok = _fill(7) == expected and initlab.get_num_threads() == 2
            code = 0 if ok and _core.serial_after_fork() == (initlab.openmp_enabled() and _core.num_procs() > 1) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in its first multi-threaded call")
        time.sleep(0.02)
    assert os.waitstatus_to_exitcode(status) == 0, "the child computed different values"


def _pool_task(seed: int) -> bytes:
    return _fill(seed)


def test_multiprocessing_fork_pool(warm_pool):
    ctx = mp.get_context("fork")  # DataLoader workers' default start method on Linux
    with ctx.Pool(2) as pool:
        try:
            got = pool.map_async(_pool_task, [1, 2, 3]).get(timeout=TIMEOUT_S)
        except mp.TimeoutError:
            pool.terminate()
            pytest.fail("multiprocessing workers forked after a multi-threaded call hung")
    assert got == [_reference(s) for s in (1, 2, 3)]


def test_parent_keeps_its_threads_after_forking(warm_pool):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert not _core.serial_after_fork()  # only the child is marked
    assert _fill(5) == _reference(5)
