"""Thread-count API and concurrent fills from several Python threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import initlab


def test_get_set_num_threads():
    initlab.set_num_threads(3)
    assert initlab.get_num_threads() == 3
    initlab.set_num_threads(1)
    assert initlab.get_num_threads() == 1


def test_num_threads_context_nests_and_restores():
    initlab.set_num_threads(2)
    with initlab.num_threads(1) as n:
        assert n == 1 and initlab.get_num_threads() == 1
        with initlab.num_threads(3):
            assert initlab.get_num_threads() == 3
        assert initlab.get_num_threads() == 1
    assert initlab.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with initlab.num_threads(3):
            raise RuntimeError("boom")
    assert initlab.get_num_threads() == 2


def test_num_threads_context_is_thread_local():
    initlab.set_num_threads(2)
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with initlab.num_threads(1):
            seen["worker"] = initlab.get_num_threads()
            inside.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main"] = initlab.get_num_threads()
    release.set()
    t.join()
    assert seen == {"worker": 1, "main": 2}


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                                     (True, TypeError), (None, TypeError)])
def test_bad_thread_counts(bad, exc):
    before = initlab.get_num_threads()
    with pytest.raises(exc):
        initlab.set_num_threads(bad)
    with pytest.raises(exc):
        with initlab.num_threads(bad):
            pass
    assert initlab.get_num_threads() == before


def test_openmp_flag_is_bool():
    assert isinstance(initlab.openmp_enabled(), bool)


def _job(k):
    x = np.empty((200, 300), np.float32 if k % 2 else np.float64)
    [initlab.uniform_, initlab.normal_, initlab.trunc_normal_, initlab.kaiming_normal_][k % 4](x, seed=k)
    return x


def test_concurrent_fills_match_serial():
    serial = [_job(k) for k in range(16)]
    with ThreadPoolExecutor(max_workers=4) as ex:
        parallel = list(ex.map(_job, range(16)))
    for s, p in zip(serial, parallel):
        assert s.tobytes() == p.tobytes()


def test_concurrent_shared_generator_hands_out_distinct_streams():
    g = initlab.Generator(11)

    def job(_):
        x = np.empty(1000, np.float32)
        initlab.normal_(x, seed=g)
        return x.tobytes()

    with ThreadPoolExecutor(max_workers=4) as ex:
        outs = list(ex.map(job, range(32)))
    assert g.streams_used == 32
    assert len(set(outs)) == 32
    ref = initlab.Generator(11)
    expected = set()
    for _ in range(32):
        x = np.empty(1000, np.float32)
        initlab.normal_(x, seed=ref)
        expected.add(x.tobytes())
    assert set(outs) == expected
