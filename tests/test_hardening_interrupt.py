"""Issue 9, item 8: Ctrl-C stops a long fill promptly (between tasks) with KeyboardInterrupt."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import initlab

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name == "nt", reason="needs POSIX signals")

N = 4_000_000  # float64 trunc_normal_ at a few M/s per thread: about a second uninterrupted


def _interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_interrupts_a_long_fill_promptly(threads):
    x = np.zeros(N)
    with initlab.num_threads(threads):
        # the same call without interrupt, for the time it takes (a quarter of the array is enough)
        t0 = time.perf_counter()
        initlab.trunc_normal_(x[: N // 4], 0.0, 1.0, -3.0, 3.0, seed=1)
        full = 4 * (time.perf_counter() - t0)
        x[:] = 0
        timer = _interrupt_after(0.05)
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            initlab.trunc_normal_(x, 0.0, 1.0, -3.0, 3.0, seed=1)
            time.sleep(5)  # the fill finished first (a very fast machine): the signal lands here
        took = time.perf_counter() - t0
        timer.join()
    assert took < 0.05 + max(0.3, full / 3), f"interrupt took {took:.2f} s (full fill {full:.2f} s)"
    if took < full / 2:
        assert (x == 0).any(), "an interrupted fill leaves the unfinished tasks untouched"


def test_interrupted_sparse_keeps_its_mask():
    x = np.full((1000, 1000), 7.0)
    timer = _interrupt_after(0.05)
    try:
        initlab.sparse_(x, 0.5, 1.0, seed=4)
        time.sleep(2)
    except KeyboardInterrupt:
        pass
    timer.join()
    # whether the interrupt hit the mask draw (nothing written) or the value fill, every column has
    # its zeros or nothing changed at all; never values without their mask
    changed = (x != 7.0).any()
    if changed:
        assert ((x == 0).sum(axis=0) >= 500).all()
