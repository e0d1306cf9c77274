"""The command line: `python -m initlab demo` end to end (small settings) and `bench`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "initlab", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_demo_end_to_end(tmp_path):
    png = tmp_path / "demo.png"
    r = run("demo", "--depth", "5", "--width", "8", "--trials", "2", "--sigmas", "1e-5,0.5", "--output", str(png))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    # The sigma = 1e-5 table: five layers whose pre-activation variance falls by ~sigma^2 * width / 2 each.
    block = out.split("sigma = 1e-05")[1].split("->")[0]
    pre = [float(m) for m in re.findall(r"^\s+\d+\s+(\S+)", block, flags=re.M)]
    assert len(pre) == 5
    assert all(b < a * 1e-6 for a, b in zip(pre, pre[1:])), pre
    assert pre[-1] < 1e-40
    assert re.search(r"N\(0, 1e-05\^2\)\s+vanishes", out)
    assert re.search(r"He \(Kaiming\) normal, relu\s+keeps the variance", out)
    for name in ("Xavier", "orthogonal"):
        assert name in out
    if "no figure" not in out:
        assert png.stat().st_size > 1000


def test_demo_options_and_errors(tmp_path):
    r = run("demo", "--depth", "3", "--width", "6", "--activation", "tanh", "--batch", "4", "--trials", "1", "--no-plot", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Tanh network, 3 hidden layers x 6 units" in r.stdout and not list(tmp_path.iterdir())
    bad = run("demo", "--activation", "swish", "--no-plot")
    assert bad.returncode == 2 and "unknown activation 'swish'" in bad.stderr
    assert run("demo", "--sigmas", "a,b").returncode == 2


def test_bench_runs():
    r = run("bench", "--size", "4096", "--matrix", "16", "--repeat", "1", "--threads", "1")
    assert r.returncode == 0, r.stderr
    for op in ("uniform", "normal", "trunc_normal", "orthogonal"):
        assert re.search(rf"^{op}\s", r.stdout, flags=re.M)


def test_console_script_entry_point():
    from initlab.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
