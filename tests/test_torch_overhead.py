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


def _bits(m):
    return [p.detach().clone().view(torch.uint8) for p in m.parameters()]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("recipe", ["torch_default", "kaiming_normal", "xavier_uniform", "lecun_normal"])
def test_direct_writes_have_the_public_fills_bits(monkeypatch, dtype, recipe):
    """The write loop's shortcut (the core called directly for plain random fills) writes the bits
    the public fills write: the same model initialized with the shortcut turned off is equal."""
    from initlab.torch import Rule
    from initlab.torch import _direct

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.Linear(0, 3), nn.Linear(7, 3),
                             nn.Embedding(4, 3, padding_idx=1)).to(dtype)

    rules = [Rule("trunc_normal", name="3.weight", std=0.5, a=-0.4, b=0.6), Rule("normal", name="4.*", std=0.3)]
    taken = []
    write = _direct.DirectWriter.write
    monkeypatch.setattr(_direct.DirectWriter, "write", lambda self, *a: taken.append(write(self, *a)) or taken[-1])
    for seed in (3, lambda: initlab.Generator(11)):
        fast = init_module(build(), recipe, seed=seed() if callable(seed) else seed, rules=rules)
        assert sum(taken) >= 2, taken  # the shortcut wrote the plain random fills (and small constants)
        taken.clear()
        with monkeypatch.context() as mp:
            mp.setattr(_direct.DirectWriter, "write", lambda self, fill, t, name: False)
            slow = init_module(build(), recipe, seed=seed() if callable(seed) else seed, rules=rules)
        for a, b in zip(_bits(fast), _bits(slow)):
            assert torch.equal(a, b)


def test_direct_writes_bump_the_version_counter_and_keep_errors():
    m = nn.Linear(4, 4)
    v = m.weight._version
    init_module(m, "kaiming_normal", seed=0)
    assert m.weight._version > v  # autograd sees the in-place write
    with torch.inference_mode():
        inf = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="inference tensor"):
        init_module(inf, "kaiming_normal", seed=0)


def test_direct_writes_of_non_contiguous_parameters_take_the_checked_view(monkeypatch):
    """A parameter the quick view does not clear (transposed storage) is still written by the
    core, through core_torch_target's view: the bits of the public fills."""
    from initlab.torch import _direct

    def build():
        m = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
        m[0].weight = nn.Parameter(torch.empty(6, 5).t())  # (5, 6), not C-contiguous
        return m

    fast = init_module(build(), "kaiming_uniform", seed=4)
    assert not fast[0].weight.is_contiguous()
    monkeypatch.setattr(_direct.DirectWriter, "write", lambda self, fill, t, name: False)
    slow = init_module(build(), "kaiming_uniform", seed=4)
    for a, b in zip(fast.parameters(), slow.parameters()):
        assert torch.equal(a.detach().contiguous().view(torch.uint8), b.detach().contiguous().view(torch.uint8))


def test_rules_reading_structural_facts_are_skipped_only_where_they_cannot_match():
    """The engine does not ask an ``extra_only`` rule about a parameter without structural facts;
    every rule it skips would have answered False."""
    from initlab.torch.initialize import _first_match, _matchers
    from initlab.torch.recipes import build_recipe
    from initlab.torch.roles import param_infos

    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Embedding(5, 4, padding_idx=0),
                          nn.utils.parametrizations.weight_norm(nn.Linear(4, 3)), nn.LSTM(4, 4))
    infos = list(param_infos(model))
    for recipe in ("torch_default", "kaiming_normal", "xavier_uniform"):
        _, rules = build_recipe(recipe, model, infos, {})
        assert any(getattr(r, "extra_only", False) for r in rules)
        every = _matchers(rules)[0]
        for info in infos:
            first = next((r for r, m in every if m(info)), None)
            assert _first_match(_matchers(rules), info) is first
            if not info.extra:
                assert not any(m(info) for r, m in every if getattr(r, "extra_only", False))
