"""Per-parameter overhead of the whole-model calls (issue 21 item 4): what the shortcuts keep exact."""

from __future__ import annotations

import gc

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.torch import init_module, materialize, plan  # noqa: E402
from initlab.torch.rules import Fill, execute  # noqa: E402

VALUES = [0.0, -0.0, 1.0, 1 / 3, 0.1, 1e-45, 1.5e-45, 7e-46, 2.0 ** -149 * 1.5, 3.4028234e38,
          3.4028234663852886e38, -2.5e-40, 1e-300, -1e-300]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [5, 1 << 16])  # torch's fill_ below 2^16 elements, the core's above
def test_constant_fills_have_the_cores_bits(dtype, n):
    for v in VALUES:
        a, b = torch.empty(n, dtype=dtype), torch.empty(n, dtype=dtype)
        execute(Fill("constant", {"value": v}), a, 0)
        initlab.init.constant_(b, v)
        assert torch.equal(a.view(torch.uint8), b.view(torch.uint8)), (dtype, n, v)


def test_overflowing_constant_still_refused_by_the_core():
    t = torch.zeros(4)
    with pytest.raises(ValueError, match="overflows float32"):
        execute(Fill("constant", {"value": 3.5e38}), t, 0)
    assert torch.equal(t, torch.zeros(4))


def test_whole_model_calls_pause_the_cyclic_collector_and_restore_it():
    m = nn.ModuleList(nn.LayerNorm(8) for _ in range(3000))
    seen: list[int] = []

    def cb(phase, info):
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(cb)
    try:
        for call in (lambda: init_module(m, "torch_default", seed=0), lambda: plan(m, "kaiming_normal", seed=0)):
            assert gc.isenabled()
            call()
            assert gc.isenabled()
        assert seen == [], seen  # 6000 parameters, no collection during the calls
        gc.disable()
        init_module(m, "torch_default", seed=0)
        assert not gc.isenabled()  # a paused collector stays paused
        gc.enable()
        with torch.device("meta"):
            meta = nn.Linear(3, 3)
        with pytest.raises(ValueError):
            materialize(meta, "torch_default", device="no-such-device")
        assert gc.isenabled()  # restored when the call raises
    finally:
        gc.callbacks.remove(cb)
        gc.enable()
