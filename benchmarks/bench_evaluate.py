"""Wall and CPU time of the two commands a user runs first: ``initlab demo`` and ``initlab evaluate``.

Each runs as a fresh process with its defaults (imports, the figure and, for evaluate, loading
the digits included), the way a user meets them. Targets: demo under 10 s, evaluate under 60 s
on the project's 2-vCPU machine. CPU time (user + system of the child) is printed beside the
wall time because a busy machine stretches the wall time but not the CPU time.
Run: ``pytest benchmarks/bench_evaluate.py -s``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest


def _timed(args: list[str], cwd: str) -> tuple[float, float]:
    before = os.times()
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "initlab", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    after = os.times()
    assert r.returncode == 0, r.stderr
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu


@pytest.mark.parametrize("command, target", [(["demo"], 10.0), (["evaluate", "--no-progress"], 60.0)], ids=["demo", "evaluate"])
def test_command_time(benchmark, tmp_path, command, target):
    if command[0] == "evaluate":
        pytest.importorskip("sklearn")
    times: list[tuple[float, float]] = []
    benchmark.pedantic(lambda: times.append(_timed(command, str(tmp_path))), rounds=1, iterations=1)
    wall, cpu = times[-1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\ninitlab {' '.join(command)}: {wall:.1f} s wall, {cpu:.1f} s CPU (target {target:g} s; "
          f"load average {load:.1f} on {os.cpu_count()} CPUs)")
