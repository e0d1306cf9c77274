"""Recipe ``"timm"`` against timm's own init, on the zoo of rebuilt timm structures (tests/_zoo.py).

For every zoo model and every parameter: a value timm sets is written exactly; a random fill has
the kind and numbers of timm's call (the manifest's Fill) and a sample with that distribution's
mean and std (6 standard errors). The family is read from the structure (golden table).
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from _zoo import ZOO, ZOO_TIMM, differences
from initlab.torch import init_module, materialize, plan
from initlab.torch.recipes_timm import TIMM_FAMILIES, timm_family
from initlab.torch.roles import param_infos

FAMILY = {
    "timm_efficientnet_b0": "efficientnet", "timm_mobilenetv3": "efficientnet", "timm_regnetx": "regnet",
    "timm_resnet": "resnet", "timm_resnext": "resnet", "timm_convnext": "convnext", "timm_vit": "vit",
    "timm_deit_distilled": "vit", "timm_eva": "eva", "timm_beit": "eva", "timm_swin": "swin", "timm_maxvit": "maxxvit", "timm_maxvit_tf": "maxxvit",
    "timm_coatnet": "maxxvit", "timm_levit": "levit",
}


@functools.lru_cache(maxsize=None)
def _diff(name: str) -> tuple[int, tuple[str, ...]]:
    n, d = differences(name, "timm")
    return n, tuple(d)


def test_zoo_covers_every_family():
    assert set(FAMILY) == set(ZOO_TIMM)
    assert set(FAMILY.values()) == set(TIMM_FAMILIES)


@pytest.mark.parametrize("name", ZOO_TIMM)
def test_timm_recipe_equals_timm_init(name):
    n, d = _diff(name)
    assert n > 0
    assert not d, f"{name}: {len(d)} of {n} parameters differ from timm's own init:\n" + "\n".join(d)


def test_timm_differing_tensor_counts_are_zero():
    counts = {name: len(_diff(name)[1]) for name in ZOO_TIMM}
    assert counts == {name: 0 for name in ZOO_TIMM}


@pytest.mark.parametrize("name", ZOO_TIMM)
def test_family_read_from_structure(name):
    m = ZOO[name].build()
    assert timm_family(m, list(param_infos(m))) == FAMILY[name]


def test_depthwise_and_grouped_fans_as_timm():
    m = ZOO["timm_efficientnet_b0"].build()
    man = plan(m, "timm", seed=0)
    dw = man["blocks.0.0.conv_dw.weight"]  # 3x3 depthwise, 8 channels: fan_out = 9 * 8 // 8
    assert dw.init == "normal" and dw.params["std"] == pytest.approx((2 / 9) ** 0.5)
    assert man["blocks.0.0.se.conv_reduce.bias"].params["value"] == 0.0
    r = ZOO["timm_regnetx"].build()
    man = plan(r, "timm", seed=0)
    g = r.s1.b1.conv2.conv  # grouped 3x3: fan_out = 9 * out // groups
    assert man["s1.b1.conv2.conv.weight"].params["std"] == pytest.approx((2 / (9 * 16 // g.groups)) ** 0.5)
    assert man["s1.b1.conv3.bn.weight"].params["value"] == 0.0


def test_swin_tables_and_class_tokens():
    man = plan(ZOO["timm_swin"].build(), "timm", seed=0)
    t = man["layers.0.blocks.0.attn.relative_position_bias_table"]
    assert t.init == "trunc_normal" and t.params["std"] == 0.02
    man = plan(ZOO["timm_vit"].build(), "timm", seed=0)
    assert man["cls_token"].init == "normal" and man["cls_token"].params["std"] == 1e-6
    assert man["pos_embed"].init == "trunc_normal"


def test_class_token_of_any_name():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.my_summary_vector = nn.Parameter(torch.zeros(1, 1, 8))
            self.proj = nn.Linear(8, 8)

        def forward(self, x):
            return self.proj(torch.cat([self.my_summary_vector.expand(x.shape[0], -1, -1), x], 1))

    man = plan(Tiny(), "timm", seed=0)
    assert man["my_summary_vector"].init == "normal" and man["my_summary_vector"].params["std"] == 1e-6


def test_options_family_layer_scale_head_init_scale():
    m = ZOO["timm_mobilenetv3"].build()
    by_alias = plan(m, "timm", seed=0, family="mobilenetv3").to_dict()
    assert by_alias == plan(m, "timm", seed=0).to_dict()
    c = ZOO["timm_convnext"].build()
    init_module(c, "timm", seed=0, layer_scale=0.5)
    assert torch.all(c.stages[0].blocks[0].gamma == 0.5)
    e = ZOO["timm_eva"].build()
    assert plan(e, "timm", seed=0, head_init_scale=0.01)["head.weight"].params["std"] == pytest.approx(2e-4)


@pytest.mark.parametrize("opts, words", [
    ({"family": "transformer"}, ["'transformer'", "'efficientnet'", "'levit'", "'coatnet'"]),
    ({"layer_scale": float("nan")}, ["layer_scale", "nan"]),
    ({"head_init_scale": "big"}, ["head_init_scale", "'big'"]),
])
def test_bad_options_name_the_value_and_leave_the_model(opts, words):
    m = ZOO["timm_resnet"].build()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError) as ei:
        init_module(m, "timm", seed=0, **opts)
    assert all(w in str(ei.value) for w in words), str(ei.value)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", ["timm_efficientnet_b0", "timm_regnetx", "timm_vit", "timm_swin", "timm_levit"])
def test_materialize_equals_init_module(name):
    build = ZOO[name].build
    torch.manual_seed(0)
    eager = init_module(build(), "timm", seed=0)
    with torch.device("meta"):
        meta = build()
    # buffers computed at construction (relative position indices) come from the factory's twin
    m = materialize(meta, "timm", seed=0, factory=build)
    for k, v in eager.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k


@pytest.mark.parametrize("recipe", ["timm", "torchvision"])
def test_lazy_parameters_reported_by_the_engine(recipe):
    # family detection reads shapes without touching an uninitialized parameter
    with pytest.raises(ValueError, match="not materialized yet"):
        plan(nn.Sequential(nn.LazyLinear(4), nn.Conv2d(3, 3, 3, groups=3)), recipe, seed=0)
