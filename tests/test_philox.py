"""Philox4x32-10: published known-answer vectors, an independent reference, and the documented
element -> (block, word) mapping of the samplers, reconstructed directly from the generator."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import initlab
from initlab import _core
from conftest import philox_block, philox_py, uniform_f32_ref, uniform_f64_ref

KAT = pathlib.Path(__file__).parent / "data" / "philox4x32_10_kat.txt"


def _kat_vectors():
    rows = []
    for line in KAT.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        f = line.split()
        assert f[0] == "philox4x32" and f[1] == "10", line
        words = [int(x, 16) for x in f[2:]]
        assert len(words) == 10, line
        rows.append((words[0:4], words[4:6], words[6:10]))
    return rows


def test_kat_file_has_the_three_published_vectors():
    assert len(_kat_vectors()) == 3


@pytest.mark.parametrize("ctr,key,expected", _kat_vectors())
def test_known_answer_vectors(ctr, key, expected):
    assert [int(w) for w in _core.philox4x32_10(ctr, key)] == expected
    # The independent Python reference must agree with the published answers too.
    assert philox_py(ctr, key) == expected


def test_core_matches_python_reference_on_random_inputs():
    rng = np.random.default_rng(1234)
    for _ in range(50):
        ctr = [int(x) for x in rng.integers(0, 2**32, 4, dtype=np.uint64)]
        key = [int(x) for x in rng.integers(0, 2**32, 2, dtype=np.uint64)]
        assert [int(w) for w in _core.philox4x32_10(ctr, key)] == philox_py(ctr, key)


def test_philox_rejects_words_out_of_range():
    with pytest.raises(TypeError):
        _core.philox4x32_10([2**32, 0, 0, 0], [0, 0])
    with pytest.raises(TypeError):
        _core.philox4x32_10([0, 0, 0], [0, 0])


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**64 - 1, 0xDEADBEEF_01234567])
def test_uniform_f32_reconstructed_from_philox(seed):
    a = np.empty(37, np.float32)
    initlab.uniform_(a, seed=seed)
    np.testing.assert_array_equal(a, uniform_f32_ref(seed, 0, range(37)))


@pytest.mark.parametrize("seed", [0, 7, 2**63 + 5])
def test_uniform_f64_reconstructed_from_philox(seed):
    a = np.empty(19, np.float64)
    initlab.uniform_(a, seed=seed)
    np.testing.assert_array_equal(a, uniform_f64_ref(seed, 0, range(19)))


def test_uniform_f32_affine_bounds_follow_the_mapping():
    # y = a + (b - a) * u in float32 arithmetic (no FMA), clamped strictly below b.
    a, b = np.float32(-2.0), np.float32(3.0)
    x = np.empty(64, np.float32)
    initlab.uniform_(x, -2.0, 3.0, seed=99)
    u = uniform_f32_ref(99, 0, range(64))
    np.testing.assert_array_equal(x, a + (b - a) * u)


def test_generator_streams_use_the_stream_words_of_the_counter():
    g = initlab.Generator(2024)
    first = g.uniform(10)
    second = g.uniform(10)
    np.testing.assert_array_equal(first, uniform_f32_ref(2024, 0, range(10)))
    np.testing.assert_array_equal(second, uniform_f32_ref(2024, 1, range(10)))


def test_counter_layout_high_words():
    # A stream id above 2**32 and a block index above 2**32 land in the high counter words.
    stream = (5 << 32) | 3
    ref = philox_py([7, 1, 3, 5], [11, 13])
    assert philox_block((13 << 32) | 11, stream, (1 << 32) | 7) == ref


def test_uniform_beyond_2_32_elements_through_offset():
    # global tensor of 2**34 elements (never allocated); the block sits past 2**32 and past
    # 2**34 / 2 words of counter space, so block indices use the counter's high word.
    gs = (2**20, 2**14)
    off = (2**20 - 3, 2**14 - 40)
    blk = np.empty((3, 40), np.float32)
    initlab.uniform_(blk, seed=31337, global_shape=gs, offset=off)
    idx = [(off[0] + r) * gs[1] + off[1] + c for r in range(3) for c in range(40)]
    assert min(idx) > 2**32
    np.testing.assert_array_equal(blk.ravel(), uniform_f32_ref(31337, 0, idx))

    blk64 = np.empty((2, 9), np.float64)
    off64 = (2**19 + 17, 5)
    initlab.uniform_(blk64, seed=5, global_shape=gs, offset=off64)
    idx64 = [(off64[0] + r) * gs[1] + off64[1] + c for r in range(2) for c in range(9)]
    assert min(idx64) // 2 > 2**31  # float64 block index beyond 2**31 too
    np.testing.assert_array_equal(blk64.ravel(), uniform_f64_ref(5, 0, idx64))


def test_unaligned_start_index_uses_the_right_word():
    # A block starting at a global index that is not a multiple of 4 (word 1, 2, 3 of a block).
    for start in (1, 2, 3, 5, 4097):
        blk = np.empty((1, 11), np.float32)
        initlab.uniform_(blk, seed=3, global_shape=(1, start + 11), offset=(0, start))
        np.testing.assert_array_equal(blk.ravel(), uniform_f32_ref(3, 0, range(start, start + 11)))
