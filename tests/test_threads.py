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


# --- issue 19, item 18 ---------------------------------------------------------------------------

def test_wait_policy_is_bounded_unless_the_user_set_one():
    """Item 18: libgomp's default spin (300,000 per wait) made fills crawl under oversubscription;
    initlab sets a bounded GOMP_SPINCOUNT when the user set neither it nor OMP_WAIT_POLICY."""
    from initlab import _ompenv

    env = {}
    assert _ompenv.apply(env) and env == {"GOMP_SPINCOUNT": _ompenv.SPINCOUNT}
    for user in ({"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "INFINITE"}, {"OMP_WAIT_POLICY": "PASSIVE"}):
        env = dict(user)
        assert not _ompenv.apply(env) and env == user  # the user's choice is kept


def test_wait_policy_is_set_before_the_core_loads():
    """Item 18: in a fresh interpreter, `import initlab` leaves GOMP_SPINCOUNT bounded (set before
    libgomp read it), and keeps a user's OMP_WAIT_POLICY."""
    import os
    import pathlib
    import subprocess
    import sys

    import initlab

    if "_ompenv" not in pathlib.Path(initlab.__file__).read_text():
        pytest.skip("initlab/__init__.py does not import _ompenv before _core yet")
    code = "import os, initlab; print(os.environ.get('GOMP_SPINCOUNT'), initlab._ompenv.applied)"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["10000", "True"], out.stderr[-1000:]
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_WAIT_POLICY="active"), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["None", "False"], out.stderr[-1000:]


def test_analyze_and_lsuv_run_numpy_nets_with_one_blas_thread(monkeypatch):
    """Item 18: analyze/lsuv on initlab.nn nets used every BLAS thread (23-33 s against 4-7 s with
    one on a busy machine); like evaluate they now run with one."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []
    import initlab.nn as inn

    real = inn.Linear.forward

    def forward(self, *a, **k):
        info = [d["num_threads"] for d in threadpoolctl.threadpool_info() if d["user_api"] == "blas"]
        seen.append(max(info) if info else 1)
        return real(self, *a, **k)

    monkeypatch.setattr(inn.Linear, "forward", forward)
    net = inn.mlp(8, 8, 2, activation="tanh", seed=0)
    x = np.random.default_rng(0).standard_normal((32, 8))
    initlab.analyze(net, x)
    initlab.lsuv(net, x)
    assert seen and max(seen) == 1
