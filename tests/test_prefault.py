"""Large contiguous fills fault their pages in ahead of the writes (issue 21 item 1):
``_core.prefault_write`` changes no byte, and fills above its threshold give the same bits as
the same values written in windows below it."""

import mmap

import numpy as np
import pytest

import initlab
from initlab import _core

BIG = (3 << 20) + 12345  # float32 elements: 12 MiB, above the core's 8 MiB prefault threshold


def test_prefault_write_changes_nothing():
    a = np.arange(1 << 20, dtype=np.float32)
    before = a.copy()
    ok = _core.prefault_write(a)
    assert isinstance(ok, bool)
    np.testing.assert_array_equal(a, before)
    # Fresh, never-touched memory stays zero (only made present).
    m = mmap.mmap(-1, 1 << 22)
    b = np.frombuffer(m, dtype=np.uint8)
    _core.prefault_write(b)
    assert not b.any()
    del b
    m.close()


def test_prefault_write_unaligned_slice_and_refusals():
    a = np.arange(100_000, dtype=np.float64)
    v = a[3:70_001]  # starts inside a page
    _core.prefault_write(v)
    np.testing.assert_array_equal(a, np.arange(100_000, dtype=np.float64))
    with pytest.raises(ValueError):
        _core.prefault_write(a[::2])
    r = np.ones(10)
    r.flags.writeable = False
    with pytest.raises(ValueError):
        _core.prefault_write(r)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("fill", ["normal", "uniform", "trunc", "zeros"])
def test_large_fill_equals_windows(dtype, fill):
    if dtype == "bfloat16":
        ml = pytest.importorskip("ml_dtypes")
        dt = ml.bfloat16
        n = BIG * 2  # the same bytes
    else:
        dt = np.float32
        n = BIG

    def run(t, **kw):
        if fill == "normal":
            initlab.normal_(t, 0.0, 0.02, seed=7, **kw)
        elif fill == "uniform":
            initlab.uniform_(t, -0.1, 0.1, seed=7, **kw)
        elif fill == "trunc":
            initlab.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0, seed=7, **kw)
        else:
            initlab.zeros_(t)

    whole = np.empty(n, dt)  # fresh memory: prefaulted per task before the fill
    run(whole)
    parts = np.full(n, 3.0, dt)
    for lo in range(0, n, 1 << 20):  # 4 or 2 MiB windows: below the threshold, no prefault
        hi = min(n, lo + (1 << 20))
        if fill == "zeros":
            initlab.zeros_(parts[lo:hi])
        else:
            run(parts[lo:hi], global_shape=(n,), offset=(lo,))
    np.testing.assert_array_equal(whole.view(np.uint16 if dtype == "bfloat16" else np.uint32),
                                  parts.view(np.uint16 if dtype == "bfloat16" else np.uint32))


def test_large_fill_into_file_mapping(tmp_path):
    # A file-backed destination: the prefault only makes present the pages the fill writes.
    path = tmp_path / "w.bin"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(BIG,))
    initlab.normal_(mm, seed=3)
    mm.flush()
    ref = np.empty(BIG, np.float32)
    initlab.normal_(ref, seed=3)
    np.testing.assert_array_equal(np.load(path), ref)
    del mm
