"""Shared benchmark plumbing: prefaulted buffers, thread control, and a ratio table.

Every case records its median seconds in RESULTS; at the end of the session the table of
ratios (initlab vs each peer, and vs the write bandwidth measured with ndarray.fill in the same
run) is printed. Run: ``pytest benchmarks/ -s`` (add ``--benchmark-disable`` to skip timing).
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np
import pytest

RESULTS: dict[tuple, dict[str, float]] = defaultdict(dict)

SIZES = [int(s) for s in os.environ.get("INITLAB_BENCH_SIZES", "4096,16384").split(",")]
THREADS = [int(s) for s in os.environ.get("INITLAB_BENCH_THREADS", "1,2").split(",")]


def record(key: tuple, name: str, benchmark) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        RESULTS[key][name] = stats.stats.median


_buffers: dict[tuple, np.ndarray] = {}


def buffer(n: int, dtype=np.float32) -> np.ndarray:
    """An n x n buffer, written once (prefaulted) and reused by every case of that size."""
    key = (n, np.dtype(dtype).str)
    if key not in _buffers:
        _buffers.clear()  # keep at most one big buffer alive
        a = np.empty((n, n), dtype=dtype)
        a.fill(0)
        _buffers[key] = a
    return _buffers[key]


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    w = terminalreporter.write_line
    w("")
    w("initlab vs peers (same run, same prefaulted buffer; >1 means initlab is faster)")
    for key in sorted(RESULTS, key=str):
        r = RESULTS[key]
        mine = {k: v for k, v in r.items() if k.startswith("initlab")}
        peers = {k: v for k, v in r.items() if not k.startswith("initlab")}
        n_elem = key[1] * key[1]
        for mk, mv in mine.items():
            parts = [f"{mk}: {n_elem / mv / 1e9:.3f} Gs/s"]
            for pk, pv in peers.items():
                if pk == "fill (write bandwidth)":
                    parts.append(f"{pv / mv:.0%} of ndarray.fill")
                else:
                    parts.append(f"{pv / mv:.1f}x {pk}")
            w(f"  {key}: " + "; ".join(parts))
