"""README's device recipe (meta -> FSDP2 -> to_empty -> init_module), run verbatim in a fresh
process: on the core route, and with the staged and Triton (interpreter) routes forced for the
CPU shards, as a GPU run would take them."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch.distributed.fsdp", reason="needs torch with torch.distributed")

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _snippet() -> str:
    text = README.read_text()
    m = re.search(r"<!-- readme-device-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its device snippet"
    return m.group(1)


@pytest.mark.parametrize("route", ["", "staged", "triton"])
def test_readme_device_snippet_runs(route, tmp_path):
    if route == "triton":
        pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "INITLAB_DEVICE_BACKEND"}
    env["MASTER_PORT"] = str(29600 + {"": 0, "staged": 1, "triton": 2}[route])
    if route:
        env["INITLAB_DEVICE_BACKEND"] = route
    if route == "triton":
        env["TRITON_INTERPRET"] = "1"
    r = subprocess.run([sys.executable, "-c", _snippet()], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    backend, std = r.stdout.split()[-2:]
    assert backend == (route or "core")
    assert 0.05 < float(std) < 0.1  # U(-1/8, 1/8): std 0.072
