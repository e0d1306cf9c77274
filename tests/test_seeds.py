"""Seeds: stateless ints, stateful Generators (one stream per call), spawn, manual_seed, bad seeds."""

from __future__ import annotations

import numpy as np
import pytest

import initlab

FILLS = [
    lambda x, seed: initlab.uniform_(x, seed=seed),
    lambda x, seed: initlab.normal_(x, seed=seed),
    lambda x, seed: initlab.trunc_normal_(x, seed=seed),
    lambda x, seed: initlab.kaiming_uniform_(x, seed=seed),
    lambda x, seed: initlab.xavier_normal_(x, seed=seed),
    lambda x, seed: initlab.lecun_normal_(x, seed=seed),
    lambda x, seed: initlab.sparse_(x, 0.3, seed=seed),
]


def _f(fill, seed, shape=(8, 16)):
    x = np.empty(shape, np.float32)
    fill(x, seed)
    return x


@pytest.mark.parametrize("fill", FILLS)
def test_int_seed_is_stateless(fill):
    np.testing.assert_array_equal(_f(fill, 123), _f(fill, 123))
    assert not np.array_equal(_f(fill, 123), _f(fill, 124))
    np.testing.assert_array_equal(_f(fill, np.uint64(2**64 - 1)), _f(fill, 2**64 - 1))


@pytest.mark.parametrize("fill", FILLS)
def test_generator_consumes_one_stream_per_call(fill):
    g = initlab.Generator(99)
    seq = [_f(fill, g) for _ in range(3)]
    assert g.streams_used == 3
    assert not np.array_equal(seq[0], seq[1]) and not np.array_equal(seq[1], seq[2])
    g2 = initlab.Generator(99)
    for s in seq:
        np.testing.assert_array_equal(_f(fill, g2), s)
    np.testing.assert_array_equal(seq[0], _f(fill, 99))  # first call of Generator(s) == seed=s


def test_one_stream_whatever_the_size():
    g = initlab.Generator(1)
    initlab.normal_(np.empty(10**5, np.float32), seed=g)
    initlab.normal_(np.empty(3, np.float32), seed=g)
    assert g.streams_used == 2


def test_spawn_children_independent_and_reproducible():
    kids = initlab.Generator(7).spawn(3)
    again = initlab.Generator(7).spawn(3)
    vals = [_f(FILLS[0], k) for k in kids]
    for k, v in zip(again, vals):
        np.testing.assert_array_equal(_f(FILLS[0], k), v)
    assert len({k.key for k in kids}) == 3
    assert not np.array_equal(vals[0], vals[1])
    assert abs(np.corrcoef(vals[0].ravel(), vals[1].ravel())[0, 1]) < 0.3
    # a second spawn gives new children; the parent's own stream is not consumed
    g = initlab.Generator(7)
    first, second = g.spawn(2), g.spawn(2)
    assert {k.key for k in first}.isdisjoint({k.key for k in second})
    assert g.streams_used == 0
    assert initlab.Generator(7).spawn(0) == []


def test_manual_seed_makes_none_reproducible():
    initlab.manual_seed(2024)
    a, b = _f(FILLS[1], None), _f(FILLS[1], None)
    initlab.manual_seed(2024)
    np.testing.assert_array_equal(_f(FILLS[1], None), a)
    np.testing.assert_array_equal(_f(FILLS[1], None), b)
    assert not np.array_equal(a, b)
    initlab.manual_seed(2024)
    np.testing.assert_array_equal(_f(FILLS[1], None), _f(FILLS[1], 2024))


@pytest.mark.parametrize("seed,exc", [(-1, ValueError), (2**64, ValueError), (1.0, TypeError), ("1", TypeError),
                                      (True, TypeError), (object(), TypeError), ([1], TypeError)])
def test_bad_seeds(seed, exc):
    x = np.full((4, 4), 3.0, np.float32)
    with pytest.raises(exc):
        initlab.normal_(x, seed=seed)
    assert np.all(x == 3.0)
    with pytest.raises(exc):
        initlab.Generator(seed)
    if exc is ValueError or seed in (1.0, True):
        with pytest.raises(exc):
            initlab.manual_seed(seed)


def test_bad_spawn():
    with pytest.raises(ValueError):
        initlab.Generator(1).spawn(-1)


def test_generator_can_start_at_any_stream():
    a = np.empty(64, np.float32)
    b = np.empty(64, np.float32)
    g = initlab.Generator(9, stream=5)
    initlab.normal_(a, seed=g)
    assert g.streams_used == 6
    h = initlab.Generator(9)
    for _ in range(6):
        initlab.normal_(b, seed=h)  # the sixth call takes stream 5
    assert a.tobytes() == b.tobytes()
    for bad in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError):
            initlab.Generator(9, stream=bad)
