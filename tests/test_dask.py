"""initlab.dask: lazy arrays whose blocks initlab fills equal the in-memory fill bit for bit."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("dask.array")
import dask.array as da  # noqa: E402

import initlab  # noqa: E402
import initlab.dask as idk  # noqa: E402

# (name, shape, positional args, options)
CASES = [
    ("uniform", (37, 23), (-0.5, 2.0), {}),
    ("normal", (41, 19), (0.25, 3.0), {}),
    ("trunc_normal", (29, 31), (0.0, 1.0, -1.5, 0.5), {}),
    ("xavier_uniform", (24, 18, 3), (1.3,), {}),
    ("xavier_normal", (33, 17), (), {}),
    ("kaiming_uniform", (20, 9, 5), (0.1,), {"mode": "fan_out"}),
    ("kaiming_normal", (31, 13), (), {"nonlinearity": "relu"}),
    ("lecun_uniform", (3, 11, 16), (), {"layout": "keras"}),
    ("lecun_normal", (27, 22), (), {}),
    ("variance_scaling", (5, 12, 14), (2.0, "fan_avg", "uniform"), {"layout": "jax"}),
]


def _reference(name, shape, args, options, seed, dtype=np.float32):
    return getattr(initlab, name + "_")(np.empty(shape, dtype), *args, seed=seed, **options)


def _random_chunks(rng, shape):
    """Uneven chunks along every axis, with 1-element chunks mixed in."""
    out = []
    for n in shape:
        sizes, left = [], n
        while left:
            s = int(min(left, rng.choice([1, 1, 2, 3, 5, 8, max(1, n // 2)])))
            sizes.append(s)
            left -= s
        out.append(tuple(sizes))
    return tuple(out)


@pytest.mark.parametrize("name,shape,args,options", CASES, ids=[c[0] for c in CASES])
def test_random_chunkings_equal_in_memory_fill(name, shape, args, options):
    rng = np.random.default_rng(sum(map(ord, name)))
    ref = _reference(name, shape, args, options, seed=1234)
    for trial in range(4):
        chunks = _random_chunks(rng, shape)
        x = getattr(idk, name)(shape, *args, chunks=chunks, seed=1234, **options)
        assert x.chunks == chunks
        got = x.compute(scheduler="threads" if trial % 2 else "synchronous")
        assert got.dtype == np.float32
        assert got.tobytes() == ref.tobytes(), (name, chunks)


def test_one_element_chunks_and_single_block():
    shape = (7, 5)
    ref = _reference("normal", shape, (), {}, seed=99)
    assert idk.normal(shape, chunks=1, seed=99).compute().tobytes() == ref.tobytes()
    assert idk.normal(shape, chunks=-1, seed=99).compute().tobytes() == ref.tobytes()


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_low_and_double_precision(dtype):
    if dtype == "bfloat16":
        pytest.importorskip("ml_dtypes")
    x = idk.trunc_normal((19, 13), 0.0, 0.02, -0.04, 0.04, chunks=(4, 6), dtype=dtype, seed=5)
    ref = initlab.trunc_normal_(np.empty((19, 13), x.dtype), 0.0, 0.02, -0.04, 0.04, seed=5)
    assert x.dtype == ref.dtype
    assert x.compute().tobytes() == ref.tobytes()


def test_processes_scheduler():
    ref = _reference("kaiming_normal", (64, 48), (), {}, seed=7)
    x = idk.kaiming_normal((64, 48), chunks=(13, 17), seed=7)
    assert x.compute(scheduler="processes", num_workers=2).tobytes() == ref.tobytes()


@pytest.fixture
def restore_environ():
    # distributed writes OMP_NUM_THREADS=1 (and friends) into this process's environment for its
    # workers; put it back so later tests keep their thread defaults.
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_local_cluster_processes(tmp_path, restore_environ):
    distributed = pytest.importorskip("distributed")
    shape = (96, 40)
    ref = _reference("variance_scaling", shape, (1.5, "fan_in", "truncated_normal"), {}, seed=11)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        x = idk.variance_scaling(shape, 1.5, "fan_in", "truncated_normal", chunks=(7, 9), seed=11)
        got = client.compute(x).result()
        assert len(client.scheduler_info()["workers"]) == 2
        # Each worker process writes its blocks straight into the file (no gather on the client).
        idk.to_npy(x, tmp_path / "w.npy")
    assert got.tobytes() == ref.tobytes()
    assert np.load(tmp_path / "w.npy").tobytes() == ref.tobytes()


def test_generator_seed_takes_one_stream_at_build_time():
    g = initlab.Generator(42)
    x = idk.normal((12, 10), chunks=(5, 3), seed=g)
    y = idk.normal((12, 10), chunks=(5, 3), seed=g)
    assert g.streams_used == 2
    g2 = initlab.Generator(42)
    rx = initlab.normal_(np.empty((12, 10), np.float32), seed=g2)
    ry = initlab.normal_(np.empty((12, 10), np.float32), seed=g2)
    # Computing twice gives the same numbers: the stream was fixed when the graph was built.
    assert x.compute().tobytes() == rx.tobytes() == x.compute().tobytes()
    assert y.compute().tobytes() == ry.tobytes()
    assert x.name != y.name


def test_graph_names_are_deterministic_for_int_seeds():
    a = idk.uniform((10, 10), chunks=3, seed=1)
    assert a.name == idk.uniform((10, 10), chunks=3, seed=1).name
    assert a.name != idk.uniform((10, 10), chunks=3, seed=2).name


def test_sparse_with_its_seeded_mask_equals_sparse_():
    shape = (40, 29)
    ref = initlab.sparse_(np.empty(shape, np.float32), 0.3, 0.5, seed=8)
    for chunks in [(40, 1), (40, (10, 3, 16)), "auto", (7, 5), 1]:
        x = idk.sparse(shape, 0.3, 0.5, chunks=chunks, seed=8)
        assert x.compute().tobytes() == ref.tobytes(), chunks
    assert idk.sparse(shape, 0.3, seed=8).chunks[0] == (40,)  # "auto" keeps columns whole
    assert int((ref == 0).sum(axis=0).min()) == 12  # ceil(0.3 * 40) per column: the mask is really there
    g = initlab.Generator(3, stream=2**63 + 5)  # streams with the top bit set take the mask's other route
    x = idk.sparse(shape, 0.5, seed=g, chunks=(9, 4))
    assert x.compute().tobytes() == initlab.sparse_(np.empty(shape, np.float32), 0.5,
                                                    seed=initlab.Generator(3, stream=2**63 + 5)).tobytes()


def test_orthogonal_single_block_only():
    x = idk.orthogonal((12, 5), 2.0, chunks=-1, seed=3)
    assert x.compute().tobytes() == initlab.orthogonal_(np.empty((12, 5), np.float32), 2.0, seed=3).tobytes()
    with pytest.raises(ValueError, match="split dimension"):
        idk.orthogonal((12, 5), chunks=(4, 5), seed=3)
    with pytest.raises(ValueError, match="not blockwise"):
        idk.from_initializer("orthogonal", (12, 5), chunks=4)


def test_errors_are_raised_at_build_time():
    with pytest.raises(ValueError, match="std"):
        idk.normal((4, 4), 0.0, -1.0)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        idk.xavier_uniform((8,))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        idk.kaiming_uniform((8,))  # the fans are checked at build time, not when a block runs
    with pytest.raises(ValueError, match="fan_sideways"):
        idk.kaiming_normal((4, 4), mode="fan_sideways")
    with pytest.raises(TypeError, match="dtype"):
        idk.normal((4, 4), dtype="int32")
    with pytest.raises(TypeError, match="offset"):
        idk.normal((4, 4), offset=(0, 0))
    with pytest.raises(ValueError, match="bad entries"):
        idk.normal((4, -1, 2.5))
    with pytest.raises(ValueError, match="accepted"):
        idk.from_initializer("gaussian", (4, 4))


def test_to_npy_and_zarr_round_trip(tmp_path):
    shape = (53, 31)
    ref = _reference("uniform", shape, (-1.0, 1.0), {}, seed=21)
    x = idk.uniform(shape, -1.0, 1.0, chunks=(10, 7), seed=21)
    path = tmp_path / "w.npy"
    idk.to_npy(x, path, scheduler="threads")
    back = np.load(path, mmap_mode="r")
    assert back.shape == shape and back.dtype == np.float32
    assert np.asarray(back).tobytes() == ref.tobytes()
    # Blocks that split the middle and last axes are written as several runs each.
    ref3 = _reference("normal", (6, 9, 11), (), {}, seed=4)
    idk.to_npy(idk.normal((6, 9, 11), chunks=((1, 5), (2, 3, 4), (4, 7)), seed=4), tmp_path / "n.npy")
    assert np.load(tmp_path / "n.npy").tobytes() == ref3.tobytes()
    zarr = pytest.importorskip("zarr")
    x.to_zarr(str(tmp_path / "w.zarr"))
    z = zarr.open_array(str(tmp_path / "w.zarr"), mode="r")
    assert z.chunks == (10, 7)
    assert np.asarray(z[...]).tobytes() == ref.tobytes()
    assert da.from_zarr(str(tmp_path / "w.zarr")).compute().tobytes() == ref.tobytes()


def test_lazy_attribute_and_progress_bar(capsys):
    from dask.diagnostics import ProgressBar

    assert initlab.dask is idk
    with ProgressBar(minimum=0, dt=0.001):
        out = idk.normal((20, 20), chunks=5, seed=0).compute(scheduler="sync")
    assert out.tobytes() == _reference("normal", (20, 20), (), {}, seed=0).tobytes()
    assert "100%" in capsys.readouterr().out


# --- issue 19, items 2-5: to_npy writes beside the target and renames; the old file or the complete new one ---

def _old_npy(path):
    np.save(path, np.arange(6, dtype=np.float64))
    return path.read_bytes()


def _temporaries(directory):
    return [p.name for p in directory.iterdir() if "initlab-tmp" in p.name]


def test_to_npy_compute_false_leaves_the_file_until_computed(tmp_path):
    """Item 3: to_npy(compute=False) only builds the graph; the old file is untouched until it is computed."""
    p = tmp_path / "w.npy"
    old = _old_npy(p)
    x = idk.normal((30, 20), chunks=(7, 6), seed=5)
    delayed = idk.to_npy(x, p, compute=False)
    assert p.read_bytes() == old and _temporaries(tmp_path) == []
    delayed.compute(scheduler="threads")
    assert np.load(p).tobytes() == _reference("normal", (30, 20), (), {}, seed=5).tobytes()
    assert _temporaries(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_to_npy_failing_block_keeps_the_old_file(tmp_path, exc):
    """Item 2: a block that raises (or Ctrl-C) leaves the old file, not a loadable file with zero
    rows, and removes the temporary."""
    p = tmp_path / "w.npy"
    old = _old_npy(p)
    x = idk.uniform((40, 10), chunks=(5, 10), seed=1)

    def boom(b, block_info=None):
        if block_info[0]["chunk-location"][0] == 5:
            raise exc("block failed")
        return b

    with pytest.raises(exc):
        idk.to_npy(x.map_blocks(boom, dtype=x.dtype), p, scheduler="sync")
    assert p.read_bytes() == old and _temporaries(tmp_path) == []


def test_to_npy_refuses_non_regular_targets_and_huge_files(tmp_path):
    """Items 3 and 5: a directory or FIFO is refused with ValueError (never opened, so no block);
    a file that cannot fit is refused before the old file is touched."""
    import subprocess
    import sys

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = ("import sys, initlab.dask as idk\ntry:\n    idk.to_npy(idk.normal((4, 4), seed=0), sys.argv[1])\n"
            "except ValueError as e:\n    print('ValueError:', e)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("to_npy blocked on a FIFO with no reader")
    assert "ValueError:" in out.stdout and "FIFO" in out.stdout, (out.stdout, out.stderr[-1000:])
    x = idk.normal((4, 4), seed=0)
    with pytest.raises(ValueError, match="directory"):
        idk.to_npy(x, tmp_path)
    p = tmp_path / "w.npy"
    old = _old_npy(p)
    with pytest.raises((ValueError, OSError)):
        idk.to_npy(da.zeros((2**61,), chunks=2**40, dtype=np.float32), p)
    assert p.read_bytes() == old and _temporaries(tmp_path) == []
