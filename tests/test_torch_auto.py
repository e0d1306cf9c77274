"""recipe="auto" keeps the signal at the model's own depth and says what it chose (issue 19,
items 9 and 10).

Plain MLPs of width 256 (Linear + activation, then a Linear head), an example input of 64
standard-normal rows: every hidden layer's pre-activation variance must lie in [0.25, 4] and
within a factor 4 of the first layer's, at depth 10, 30 and 100. Before the fix SiLU went
2.8 -> 31 / 2.4e4 / 6.5e13, GELU and Mish grew likewise, tanh (Xavier) decayed to 0.0044 and
ReLU (He) at depth 100 fell to 0.26.
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.torch import init_module, plan  # noqa: E402

ACTS = {"silu": nn.SiLU, "gelu": nn.GELU, "mish": nn.Mish, "selu": nn.SELU, "tanh": nn.Tanh, "relu": nn.ReLU}
WIDTH = 256


def _mlp(act: str, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(WIDTH, WIDTH), ACTS[act]()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, 10))


def _preactivation_vars(m: nn.Sequential, x: torch.Tensor) -> list[float]:
    out: list[float] = []
    hooks = [mod.register_forward_hook(lambda _m, _i, o: out.append(float(o.double().var(unbiased=False))))
             for mod in m if isinstance(mod, nn.Linear)]
    try:
        with torch.no_grad():
            m(x)
    finally:
        for h in hooks:
            h.remove()
    return out[:-1]  # the hidden layers (the head is the output)


def _in_band(v: list[float]) -> bool:
    return all(0.25 <= a <= 4.0 and 0.25 <= a / v[0] <= 4.0 for a in v)


@pytest.mark.parametrize("depth", [10, 30, 100])
@pytest.mark.parametrize("act", list(ACTS))
def test_item9_auto_keeps_preactivation_variance_at_the_models_depth(act, depth):
    g = torch.Generator().manual_seed(1)
    m = _mlp(act, depth)
    x = torch.randn(64, WIDTH, generator=g)
    _, man = init_module(m, "auto", seed=0, example_input=x, validate=False, return_manifest=True)
    v = _preactivation_vars(m, x)
    assert len(v) == depth
    assert _in_band(v), (act, depth, v[0], min(v), max(v))
    # not only on the example batch: a fresh batch of the same distribution stays in the band too
    v2 = _preactivation_vars(m, torch.randn(64, WIDTH, generator=g))
    assert all(0.25 <= a <= 4.0 for a in v2), (act, depth, min(v2), max(v2))
    assert man["0.weight"].params["activation"] == act


@pytest.mark.parametrize("act", ["tanh", "selu"])
def test_item9_attracting_fixed_point_holds_without_example_input(act):
    # theory alone: the stable-fixed-point gain keeps depth 100 in the band (tanh: Xavier decayed to 0.0044)
    m = _mlp(act, 100)
    init_module(m, "auto", seed=0)
    v = _preactivation_vars(m, torch.randn(64, WIDTH, generator=torch.Generator().manual_seed(1)))
    assert _in_band(v), (act, v[0], min(v), max(v))


def test_item9_input_layer_reads_the_inputs_mean_square():
    # tanh on inputs of mean square 25: the input layer is scaled by the measured 1/25, so layer 1
    # sits at q = 1 instead of 25 (saturated); the others keep the fixed point
    m = _mlp("tanh", 10)
    x = 5.0 * torch.randn(64, WIDTH, generator=torch.Generator().manual_seed(2))
    _, man = init_module(m, "auto", seed=0, example_input=x, return_manifest=True, validate=False)
    assert "measured on example_input" in man["0.weight"].params["why"]
    v = _preactivation_vars(m, x)
    assert _in_band(v) and abs(v[0] - 1.0) < 0.1, v[:3]


def test_item10_manifest_names_scheme_activation_and_correction():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c, self.d = nn.Linear(32, 64), nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            x = torch.relu(self.a(x))
            x = torch.tanh(self.b(x))
            x = nn.functional.selu(self.c(x))
            x = nn.functional.silu(self.d(x))
            return self.head(x)

    x = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    m = Net()
    dry = plan(m, "auto", seed=0, example_input=x)
    _, man = init_module(m, "auto", seed=0, example_input=x, return_manifest=True)
    assert dry == man  # the dry run and the call agree entry by entry
    p = {k: man[f"{k}.weight"].params for k in "abcd"}
    assert (p["a"]["scheme"], p["a"]["activation"]) == ("kaiming_normal", "relu")
    assert (p["b"]["scheme"], p["b"]["activation"]) == ("kaiming_normal", "tanh")
    assert p["b"]["gain"] == pytest.approx(initlab.gain("tanh")) and "attracting fixed point" in p["b"]["why"]
    assert (p["c"]["scheme"], p["c"]["activation"]) == ("lecun_normal", "selu")
    assert (p["d"]["scheme"], p["d"]["activation"]) == ("kaiming_normal", "silu")
    assert "not an attracting one" in p["d"]["why"] and "corrected from example_input" in p["d"]["why"]
    # which layers got the data correction, and why: the ones without an attracting fixed point
    assert "correction" in p["a"] and "correction" in p["d"]
    assert "correction" not in p["b"] and "correction" not in p["c"]
    corr = man.correction
    assert corr["method"] == "lsuv" and corr["applied"] and corr["target_var"] == 1.0
    assert set(corr["layers"]) == {"a.weight", "d.weight"}
    assert all(math.isfinite(r["scale"]) and r["converged"] for r in corr["layers"].values())
    d = man.to_dict()
    assert d["correction"] == corr and d["entries"][0]["params"]["scheme"] == "kaiming_normal"
    table = man.table()
    assert "scheme=kaiming_normal" in table and "correction: lsuv" in table
    # correct=False: the theory's scheme only, said so in the manifest
    m2 = Net()
    _, man2 = init_module(m2, "auto", seed=0, example_input=x, correct=False, return_manifest=True)
    assert man2.correction is None and "pass example_input=" in man2["d.weight"].params["why"]


def test_auto_with_example_input_leaves_batchnorm_statistics_alone():
    # issue 18 item 4: the measuring forward ran in training mode and updated BatchNorm's running
    # statistics from weights not yet initialized (NaN from garbage memory); they must be as before
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                      nn.ReLU())
    x = torch.randn(4, 3, 16, 16)
    before = {k: v.clone() for k, v in m.named_buffers()}
    initlab.torch.init_module(m, "auto", example_input=x, seed=0)
    assert m.training
    for k, v in m.named_buffers():
        assert torch.equal(v, before[k]), k
