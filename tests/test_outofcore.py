"""initlab.fill_file: a file filled chunk by chunk holds exactly the in-memory fill, in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import initlab
from initlab.outofcore import FileFill, _slabs, fill_file


@pytest.mark.parametrize("chunk_bytes", [4, 52, 4 * 7 * 5, 4096, 1 << 20])
def test_file_equals_in_memory_fill_for_any_chunk_size(tmp_path, chunk_bytes):
    shape = (13, 7, 5)
    ref = initlab.kaiming_normal_(np.empty(shape, np.float32), mode="fan_out", seed=3)
    r = fill_file(tmp_path / "w.npy", shape, "kaiming_normal", seed=3, chunk_bytes=chunk_bytes, mode="fan_out",
                  drop_pages=chunk_bytes > 100)
    back = np.load(tmp_path / "w.npy")
    assert back.shape == shape and back.dtype == np.float32
    assert back.tobytes() == ref.tobytes()
    assert r.nbytes == ref.nbytes and r.chunks >= ref.nbytes // max(chunk_bytes, 4 * 7 * 5)


def test_slabs_tile_the_array_once_in_c_order():
    shape, seen = (4, 3, 6), np.zeros((4, 3, 6), int)
    flat_starts = []
    for off, bshape, flat in _slabs(shape, 8, 8 * 4):
        assert 8 * int(np.prod(bshape)) <= 32  # at most one chunk, even when the last axis is split
        seen[tuple(slice(o, o + n) for o, n in zip(off, bshape))] += 1
        assert flat == np.ravel_multi_index(off, shape)
        flat_starts.append(flat)
    assert (seen == 1).all() and flat_starts == sorted(flat_starts)


def test_args_options_raw_format_and_dtypes(tmp_path):
    r = fill_file(tmp_path / "u.npy", (20, 9), initlab.uniform_, -2.0, 0.5, seed=initlab.Generator(4), dtype="float64",
                  chunk_bytes=100)
    ref = initlab.uniform_(np.empty((20, 9)), -2.0, 0.5, seed=4)
    assert np.load(r.path).tobytes() == ref.tobytes()
    ml_dtypes = pytest.importorskip("ml_dtypes")
    fill_file(tmp_path / "b.bin", (6, 11), "variance_scaling", 2.0, "fan_avg", seed=9, dtype="bfloat16",
              file_format="raw", chunk_bytes=30, layout="keras")
    ref = initlab.variance_scaling_(np.empty((6, 11), ml_dtypes.bfloat16), 2.0, "fan_avg", seed=9, layout="keras")
    assert np.fromfile(tmp_path / "b.bin", np.uint16).tobytes() == ref.tobytes()


@pytest.mark.parametrize("shape", [(), (0, 5), (4, 0, 3), (7,)])
def test_scalar_empty_and_1d_shapes(tmp_path, shape):
    fill_file(tmp_path / "e.npy", shape, "uniform", seed=2, chunk_bytes=8)
    back = np.load(tmp_path / "e.npy")
    assert back.shape == shape
    assert back.tobytes() == initlab.uniform_(np.empty(shape, np.float32), seed=2).tobytes()


def test_sparse_file_keeps_the_seeded_mask(tmp_path):
    ref = initlab.sparse_(np.empty((50, 23), np.float32), 0.4, 0.1, seed=12)
    fill_file(tmp_path / "s.npy", (50, 23), "sparse", 0.4, 0.1, seed=12, chunk_bytes=50 * 4 * 3)
    assert np.load(tmp_path / "s.npy").tobytes() == ref.tobytes()


def test_report_prints_readably(tmp_path):
    r = fill_file(tmp_path / "w.npy", (64, 64), "normal", seed=0, progress=False)
    assert isinstance(r, FileFill) and r.shape == (64, 64) and r.dtype == "float32"
    text = str(r)
    assert "normal (64, 64) float32" in text and "GB/s" in text and "w.npy" in text


def test_progress_bar(tmp_path, capsys):
    pytest.importorskip("tqdm")
    fill_file(tmp_path / "w.npy", (256, 256), "uniform", seed=0, chunk_bytes=1 << 14, progress=True)
    err = capsys.readouterr().err
    assert "256k/256k" in err.replace("K", "k") or "256.0k" in err.replace("K", "k"), err[-300:]
    fill_file(tmp_path / "w.npy", (256, 256), "uniform", seed=0, progress=None)  # not a terminal: silent
    assert capsys.readouterr().err == ""


def test_errors_before_anything_is_written(tmp_path):
    p = tmp_path / "never.npy"
    with pytest.raises(ValueError, match="std"):
        fill_file(p, (4, 4), "normal", 0.0, -1.0)
    with pytest.raises(ValueError, match="not blockwise"):
        fill_file(p, (4, 4), "orthogonal")
    with pytest.raises(ValueError, match="chunk_bytes"):
        fill_file(p, (4, 4), chunk_bytes=2)
    with pytest.raises(ValueError, match="file_format"):
        fill_file(p, (4, 4), file_format="hdf5")
    # Without ml_dtypes "bfloat16" is refused earlier, by an ImportError that names the extra (issue 19 item 20).
    with pytest.raises((TypeError, ImportError), match="bfloat16"):
        fill_file(p, (4, 4), dtype="bfloat16")
    with pytest.raises(ValueError, match=r"bad entries: \[-3\]"):
        fill_file(p, (4, -3))
    assert not p.exists()
    assert initlab.fill_file is fill_file


_MEMORY = r"""
import json, resource, sys
import numpy as np
from initlab.outofcore import fill_file
fill_file(sys.argv[1] + ".warm.npy", (64, 64), "normal", seed=0)  # load everything first
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = fill_file(sys.argv[1], (8192, 8192), "normal", seed=1, chunk_bytes=4 << 20)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
a = np.load(sys.argv[1], mmap_mode="r")
print(json.dumps({"growth_kib": after - before, "nbytes": r.nbytes, "corner": float(a[-1, -1])}))
"""


def test_memory_stays_bounded(tmp_path):
    # 256 MiB written with 4 MiB chunks: the process grows by about two chunks, not by the file.
    path = str(tmp_path / "big.npy")
    out = subprocess.run([sys.executable, "-c", _MEMORY, path], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["nbytes"] == 8192 * 8192 * 4
    assert r["growth_kib"] < 32 * 1024, r
    corner = initlab.normal_(np.empty((1, 1), np.float32), seed=1, global_shape=(8192, 8192), offset=(8191, 8191))
    assert r["corner"] == float(corner[0, 0])


# --- issue 19, items 1-5: a file at the target path is the old one untouched or the complete new one ---

def _old_file(path):
    np.save(path, np.arange(12, dtype=np.float32).reshape(3, 4))
    return path.read_bytes()


def _no_temporaries(directory):
    return [p.name for p in directory.iterdir() if "initlab-tmp" in p.name] == []


@pytest.mark.parametrize("init, args", [("normal", ()), ("sparse", (0.5,))])
def test_write_error_midway_keeps_the_old_file(tmp_path, monkeypatch, init, args):
    """Items 1-2: a full disk (ENOSPC) in the middle of the writes leaves the old file untouched
    and no temporary; the sparse route writes with pwrite (a memory-map write would SIGBUS)."""
    import errno
    import initlab.outofcore as oc

    p = tmp_path / "w.npy"
    old = _old_file(p)
    real, calls = os.pwrite, []

    def pwrite(fd, data, pos):
        calls.append(pos)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, pos)

    monkeypatch.setattr(oc.os, "pwrite", pwrite)
    monkeypatch.setattr(np, "memmap", None)  # no memory-map writes at all
    with pytest.raises(OSError, match="No space"):
        fill_file(p, (64, 32), init, *args, seed=1, chunk_bytes=64 * 4 * 4, drop_pages=False)
    assert p.read_bytes() == old and _no_temporaries(tmp_path)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupt_or_error_in_a_chunk_keeps_the_old_file(tmp_path, monkeypatch, exc):
    """Item 2: Ctrl-C (or an exception) after some chunks are written leaves the old file, not a
    file that np.load opens with zero rows, and removes the temporary."""
    from initlab import _blockwise

    p = tmp_path / "w.npy"
    old = _old_file(p)
    real, n = _blockwise.fill_block, []

    def fill_block(*a, **k):
        n.append(1)
        if len(n) == 3:
            raise exc("stop")
        return real(*a, **k)

    monkeypatch.setattr(_blockwise, "fill_block", fill_block)
    with pytest.raises(exc):
        fill_file(p, (64, 64), "uniform", seed=0, chunk_bytes=1024, drop_pages=False)
    assert p.read_bytes() == old and _no_temporaries(tmp_path)
    monkeypatch.undo()
    fill_file(p, (64, 64), "uniform", seed=0, chunk_bytes=1024, drop_pages=False)
    assert np.load(p).tobytes() == initlab.uniform_(np.empty((64, 64), np.float32), seed=0).tobytes()


def test_failures_before_the_fill_keep_the_old_file(tmp_path, monkeypatch):
    """Item 3: huge chunk_bytes, a 2**61-element shape and too little free space raise before the
    old file is touched (today the file was truncated first)."""
    import shutil

    p = tmp_path / "w.npy"
    old = _old_file(p)
    with pytest.raises(ValueError, match="larger than any file"):
        fill_file(p, (2**61,), "uniform", seed=0)
    assert p.read_bytes() == old
    with pytest.raises((MemoryError, OSError)):
        fill_file(p, (2**40,), "uniform", seed=0, chunk_bytes=2**62)
    assert p.read_bytes() == old
    r = fill_file(p, (4, 4), "uniform", seed=0, chunk_bytes=2**62)  # huge chunks of a small array: fine
    assert r.chunks == 1 and np.load(p).shape == (4, 4)
    old = _old_file(p)
    monkeypatch.setattr(shutil, "disk_usage", lambda d: shutil._ntuple_diskusage(10**6, 10**6 - 100, 100))
    with pytest.raises(OSError, match="free space"):
        fill_file(p, (64, 64), "uniform", seed=0)
    assert p.read_bytes() == old and _no_temporaries(tmp_path)


_FSIZE = r"""
import resource, sys
from initlab.outofcore import fill_file
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
try:
    fill_file(sys.argv[1], (100, 100), "normal", seed=1, chunk_bytes=4096)
except OSError as e:
    print("OSError", e.errno)
"""


def test_file_size_limit_keeps_the_old_file(tmp_path):
    """Item 3: under RLIMIT_FSIZE smaller than the new file, the call raises and the old file stays."""
    p = tmp_path / "w.npy"
    old = _old_file(p)
    out = subprocess.run([sys.executable, "-c", _FSIZE, str(p)], capture_output=True, text=True, timeout=120)
    assert "OSError" in out.stdout, (out.stdout, out.stderr[-2000:])
    assert p.read_bytes() == old and _no_temporaries(tmp_path)


def test_two_writers_to_one_path_each_write_a_complete_file(tmp_path, monkeypatch):
    """Item 4: two fills of one path with different seeds, their chunks interleaved, leave one of
    the two complete files (the last rename wins), never a mix."""
    import threading
    from initlab import _blockwise

    p = tmp_path / "w.npy"
    barrier = threading.Barrier(2, timeout=60)
    real = _blockwise.fill_block

    def fill_block(*a, **k):
        out = real(*a, **k)
        barrier.wait()  # lock step: both writers are always in the middle of their files together
        return out

    monkeypatch.setattr(_blockwise, "fill_block", fill_block)
    errors = []

    def run(seed):
        try:
            fill_file(p, (64, 64), "uniform", seed=seed, chunk_bytes=1024, drop_pages=False)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(s,)) for s in (1, 2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors
    refs = [initlab.uniform_(np.empty((64, 64), np.float32), seed=s).tobytes() for s in (1, 2)]
    assert np.load(p).tobytes() in refs and _no_temporaries(tmp_path)


_FIFO = r"""
import sys
from initlab.outofcore import fill_file
try:
    fill_file(sys.argv[1], (4, 4), "normal", seed=1)
except ValueError as e:
    print("ValueError:", e)
"""


def test_fifo_directory_and_device_are_refused(tmp_path):
    """Item 5: a FIFO with no reader is refused at once (it used to block forever in open), and so
    are a directory and a device, with ValueError."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    try:
        out = subprocess.run([sys.executable, "-c", _FIFO, str(fifo)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("fill_file blocked on a FIFO with no reader")
    assert "ValueError:" in out.stdout and "FIFO" in out.stdout, (out.stdout, out.stderr[-1000:])
    with pytest.raises(ValueError, match="directory"):
        fill_file(tmp_path, (4, 4), "normal", seed=1)
    if os.path.exists("/dev/null"):
        with pytest.raises(ValueError, match="device"):
            fill_file("/dev/null", (4, 4), "normal", seed=1)
    assert _no_temporaries(tmp_path)


def test_new_file_keeps_the_old_permissions_and_a_link_stays(tmp_path):
    """Items 1-5: the renamed file keeps the replaced file's mode; a symbolic link keeps pointing at it."""
    p = tmp_path / "w.npy"
    _old_file(p)
    os.chmod(p, 0o640)
    link = tmp_path / "link.npy"
    link.symlink_to(p)
    fill_file(link, (8, 8), "normal", seed=3)
    assert link.is_symlink() and (os.stat(p).st_mode & 0o777) == 0o640
    assert np.load(p).tobytes() == initlab.normal_(np.empty((8, 8), np.float32), seed=3).tobytes()
