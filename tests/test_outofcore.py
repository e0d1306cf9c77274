"""initlab.fill_file: a file filled chunk by chunk holds exactly the in-memory fill, in bounded memory."""

from __future__ import annotations

import json
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
    with pytest.raises(TypeError, match="bfloat16"):
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
