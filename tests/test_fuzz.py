"""Randomized robustness: odd shapes, layouts, dtypes and parameter values never crash, never
write on error, and successful bounded fills stay in their bounds. Seeded, so deterministic."""

from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest

import initlab
from conftest import BF16

VALS = [0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan, 2.0, -2.0, 5.0, 40.0,
        -40.0, 1e-3, 65504.0, 3.4e38, 1e5]
DTYPES = [np.float32, np.float64, np.float16] + ([BF16] if BF16 is not None else [])
FNS = [
    lambda a, p: initlab.uniform_(a, p[0], p[1], seed=p[4]),
    lambda a, p: initlab.normal_(a, p[0], p[1], seed=p[4]),
    lambda a, p: initlab.trunc_normal_(a, p[0], p[1], p[2], p[3], seed=p[4]),
    lambda a, p: initlab.constant_(a, p[0]),
    lambda a, p: initlab.xavier_uniform_(a, p[0], seed=p[4]),
    lambda a, p: initlab.kaiming_normal_(a, p[0], seed=p[4]),
    lambda a, p: initlab.variance_scaling_(a, p[1], seed=p[4]),
    lambda a, p: initlab.sparse_(a, p[0], p[1], seed=p[4]),
    lambda a, p: initlab.orthogonal_(a, p[0], seed=p[4]),
    lambda a, p: initlab.dirac_(a),
    lambda a, p: initlab.eye_(a),
    lambda a, p: initlab.zero_init_(a),
    lambda a, p: initlab.lecun_normal_(a, seed=p[4]),
]


def _random_view(rng: random.Random):
    shape = tuple(rng.choice([0, 1, 2, 3, 5, 17]) for _ in range(rng.randint(0, 4)))
    base = np.zeros(tuple(s * 2 + 1 for s in shape), rng.choice(DTYPES))
    view = base[tuple(slice(None, None, rng.choice([1, 2, -1, -2])) for _ in shape)]
    view = view[tuple(slice(0, s) for s in shape)]
    if view.ndim >= 2 and rng.random() < 0.3:
        view = view.T
    return base, view


@pytest.mark.parametrize("chunk", range(4))
def test_no_crash_and_untouched_on_error(chunk):
    rng = random.Random(chunk)
    for _ in range(300):
        base, a = _random_view(rng)
        p = [rng.choice(VALS) for _ in range(4)] + [rng.choice([0, 1, 2**64 - 1, initlab.Generator(3)])]
        before = base.tobytes()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rng.choice(FNS)(a, p)
        except (ValueError, TypeError):
            assert base.tobytes() == before


@pytest.mark.parametrize("chunk", range(2))
def test_bounded_fills_stay_in_bounds(chunk):
    rng = random.Random(100 + chunk)
    vals = [0.0, 1.0, -1.0, 1e-30, 1e30, -1e30, 2.0, -2.0, 5.0, 6.0, 40.0, -40.0, 1e-3, -1e-3, 65504.0, 1e5,
            -math.inf, math.inf, 0.1, 1.0001, 1.0002]
    for it in range(400):
        a = np.zeros(rng.choice([1, 7, 64, 1000]), rng.choice(DTYPES))
        lo, hi = sorted([rng.choice(vals), rng.choice(vals)])
        try:
            if rng.random() < 0.5:
                if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                    continue
                initlab.uniform_(a, lo, hi, seed=it)
                v = a.astype(np.float64)
                assert v.min() >= lo and v.max() < hi
            else:
                mean, std = rng.choice([0.0, 1.0, -3.0, 10.0, 1e5]), rng.choice([1.0, 0.02, 1e-6, 3.0, 1e4])
                initlab.trunc_normal_(a, mean, std, lo, hi, seed=it)
                v = a.astype(np.float64)
                assert np.all(np.isfinite(v)) and v.min() >= lo and v.max() <= hi
        except ValueError:
            pass
