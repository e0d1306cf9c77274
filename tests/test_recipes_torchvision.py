"""Recipe ``"torchvision"`` against torchvision's constructors, on the zoo's rebuilt torchvision
structures (tests/_zoo.py): per parameter, exact values where torchvision sets values, the same
distribution (the manifest's Fill and a sample check) where it draws them."""

from __future__ import annotations

import functools

import pytest
import torch

from _zoo import ZOO, ZOO_TV, differences
from initlab.torch import init_module, materialize, plan
from initlab.torch.recipes_torchvision import torchvision_family
from initlab.torch.roles import param_infos

FAMILY = {"tv_resnet18": "resnet", "tv_resnext50_32x4d": "resnet", "tv_mobilenet_v2": "mobilenet", "tv_mobilenet_v3_small": "mobilenet", "tv_efficientnet_b0": "efficientnet",
          "tv_vit_b_16": "vit", "tv_vit_conv_stem": "vit"}


@functools.lru_cache(maxsize=None)
def _diff(name: str) -> tuple[int, tuple[str, ...]]:
    n, d = differences(name, "torchvision")
    return n, tuple(d)


@pytest.mark.parametrize("name", list(ZOO_TV))
def test_torchvision_recipe_equals_torchvision_init(name):
    n, d = _diff(name)
    assert n > 0
    assert not d, f"{name}: {len(d)} of {n} parameters differ from torchvision's init:\n" + "\n".join(d)


def test_torchvision_differing_tensor_counts_are_zero():
    counts = {name: len(_diff(name)[1]) for name in ZOO_TV}
    assert counts == {name: 0 for name in ZOO_TV}


@pytest.mark.parametrize("name", list(ZOO_TV))
def test_family_read_from_structure(name):
    m = ZOO[name].build()
    assert torchvision_family(m, list(param_infos(m))) == FAMILY[name]


def test_resnet_bn2_stays_one_unless_zero_init_residual():
    m = ZOO["tv_resnet18"].build()
    man = plan(m, "torchvision", seed=0)
    names = [n for n, _ in m.named_parameters() if n.endswith("bn2.weight")]
    assert len(names) == 8
    assert all(man[n].init == "constant" and man[n].params["value"] == 1.0 for n in names)
    man = plan(m, "torchvision", seed=0, zero_init_residual=True)
    assert all(man[n].params["value"] == 0.0 for n in names)
    x = ZOO["tv_resnext50_32x4d"].build()  # bottlenecks: bn3 is the last BN
    man = plan(x, "torchvision", seed=0, zero_init_residual=True)
    bn3 = [n for n, _ in x.named_parameters() if n.endswith("bn3.weight")]
    assert len(bn3) == 4 and all(man[n].init == "constant" and man[n].params["value"] == 0.0 for n in bn3)
    assert all(man[n].params["value"] == 1.0 for n, _ in x.named_parameters() if n.endswith("bn2.weight"))


def test_vit_class_token_head_and_stem():
    m = ZOO["tv_vit_b_16"].build()
    man = plan(m, "torchvision", seed=0)
    assert man["class_token"].params["value"] == 0.0
    assert man["heads.head.weight"].params["value"] == 0.0 and man["heads.head.bias"].params["value"] == 0.0
    assert man["encoder.pos_embedding"].init == "normal" and man["encoder.pos_embedding"].params["std"] == 0.02
    stem = man["conv_proj.weight"]
    assert stem.init == "trunc_normal" and stem.params["std"] == pytest.approx((1 / (3 * 16 * 16)) ** 0.5)
    mlp_b = man["encoder.layers.encoder_layer_0.mlp.0.bias"]
    assert mlp_b.init == "normal" and mlp_b.params["std"] == 1e-6


@pytest.mark.parametrize("opts, words", [
    ({"family": "densenet"}, ["'densenet'", "'resnet'", "'mobilenet'", "'efficientnet'", "'vit'"]),
    ({"zero_init_residual": 1}, ["zero_init_residual", "1"]),
])
def test_bad_options_name_the_value_and_leave_the_model(opts, words):
    m = ZOO["tv_resnet18"].build()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError) as ei:
        init_module(m, "torchvision", seed=0, **opts)
    assert all(w in str(ei.value) for w in words), str(ei.value)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", list(ZOO_TV))
def test_materialize_equals_init_module(name):
    build = ZOO[name].build
    eager = init_module(build(), "torchvision", seed=0)
    with torch.device("meta"):
        meta = build()
    m = materialize(meta, "torchvision", seed=0)
    for k, v in eager.state_dict().items():
        assert torch.equal(v, m.state_dict()[k]), k
