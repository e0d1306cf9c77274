"""Issue 18, small items (4 and 5): fast_init and torch's random factories, materialize with
kept parameters of Hugging Face models, manifest lookups of left-alone parameters,
materialize with recipe "auto"."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab.torch as it  # noqa: E402
from initlab.manifest import LeftAlone  # noqa: E402


# ---- manifest[name] for a parameter left alone -----------------------------------------------

def test_manifest_getitem_left_alone_parameter():
    m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    man = it.plan(m, [it.Rule("normal", role="weight", std=0.02), it.Rule("keep")], seed=0)
    rec = man["1.bias"]
    assert isinstance(rec, LeftAlone) and rec.kind == "parameter" and rec.reason
    assert man["0.weight"].name == "0.weight"
    with pytest.raises(KeyError, match="nope"):
        man["nope"]


# ---- fast_init and torch's random factories ---------------------------------------------------

class _Draws(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.a = nn.Parameter(torch.rand(5, 4))
        self.b = nn.Parameter(torch.randn((6,), dtype=torch.float64), requires_grad=False)
        self.c = nn.Parameter(torch.rand_like(self.a) * 2)
        self.register_buffer("d", torch.randn_like(self.b, dtype=torch.float32))
        self.e = nn.Parameter(torch.normal(1.0, 2.0, size=(7,)))


def _state(m: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_fast_init_random_factories_reproducible():
    with it.fast_init(seed=3):
        s1 = _state(_Draws())
    torch.manual_seed(123)  # torch's generator must not matter
    with it.fast_init(seed=3):
        m2 = _Draws()
    s2 = _state(m2)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
    with it.fast_init(seed=4):
        s3 = _state(_Draws())
    for k in ("a", "b", "c", "d", "e"):
        assert not torch.equal(s1[k], s3[k]), k
    # torch's semantics kept: shapes, dtypes, ranges, requires_grad
    assert m2.a.shape == (5, 4) and m2.a.dtype == torch.float32 and m2.a.requires_grad
    assert 0 <= float(m2.a.detach().min()) and float(m2.a.detach().max()) < 1
    assert m2.b.dtype == torch.float64 and not m2.b.requires_grad
    assert m2.d.dtype == torch.float32 and m2.d.shape == (6,)
    x = None
    with it.fast_init(seed=0):
        x = torch.randn(1000, requires_grad=True)
    assert x.requires_grad and x.is_leaf and abs(float(x.detach().mean())) < 0.2 and 0.8 < float(x.detach().std()) < 1.2


def test_fast_init_explicit_generator_left_to_torch():
    g = torch.Generator().manual_seed(5)
    ref = torch.rand(4, generator=g)
    with it.fast_init(seed=3):
        got = torch.rand(4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(ref, got)


def test_fast_init_warns_for_unreproducible_factories():
    with pytest.warns(RuntimeWarning, match="torch.randint"):
        with it.fast_init(seed=3):
            torch.randint(0, 10, (4,))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with it.fast_init(seed=3):
            torch.randint(0, 10, (4,))
            torch.randint(0, 10, (4,))  # once per name and block
            torch.empty(3).random_()
            torch.randint(0, 10, (4,), generator=torch.Generator().manual_seed(0))  # the caller's generator
        torch.randint(0, 10, (4,))  # outside any block: silent
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    assert sum("torch.randint" in m for m in msgs) == 1
    assert sum("Tensor.random_" in m for m in msgs) == 1
    assert len(msgs) == 2
    assert torch.randint is not None and getattr(torch.randint, "__initlab_fast_init_original__", None) is None


# ---- materialize: kept parameters of Hugging Face models from the config twin ------------------

def _tiny_clip():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPConfig(
        text_config=dict(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=8, patch_size=4),
        projection_dim=8, logit_scale_init_value=1.75)
    return transformers.CLIPModel, cfg


def _tiny_convnext():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1],
                                      layer_scale_init_value=0.25)
    return transformers.ConvNextModel, cfg


@pytest.mark.parametrize("build", [_tiny_clip, _tiny_convnext])
def test_materialize_hf_kept_parameters_without_factory(build):
    cls, cfg = build()
    eager = cls(cfg)
    with torch.device("meta"):
        meta = cls(cfg)
    kept = [x.name for x in it.plan(meta, "hf", seed=0).left_alone if x.kind == "parameter"]
    model, man = it.materialize(meta, "hf", seed=0, return_manifest=True)
    assert not any(p.is_meta for p in model.parameters())
    for n in kept:
        assert isinstance(man[n], LeftAlone)
        assert torch.equal(model.get_parameter(n), eager.get_parameter(n)), n
    if cls.__name__ == "CLIPModel":
        assert kept and float(model.logit_scale.detach()) == 1.75


# ---- materialize(model, "auto", example_input=...) -----------------------------------------------

def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_materialize_auto_with_example_input_equals_eager():
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    with torch.device("meta"):
        meta = _mlp()
    model, man = it.materialize(meta, "auto", seed=0, example_input=x, return_manifest=True)
    eager = _mlp()
    it.init_module(eager, "auto", seed=0, example_input=x)
    for (k, a), (_, b) in zip(model.state_dict().items(), eager.state_dict().items()):
        assert torch.equal(a, b), k
    assert man.correction is not None
    assert torch.isfinite(model(x)).all()


class _DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if float(x.abs().max()) > 100:  # reads values: impossible on the meta device
            x = x / 100
        return torch.relu(self.lin(x))


def test_materialize_auto_forward_impossible_on_meta_is_a_clear_error():
    with torch.device("meta"):
        meta = _DataDependent()
    with pytest.raises(ValueError, match="meta device.*init_module"):
        it.materialize(meta, "auto", seed=0, example_input=torch.randn(2, 4))
    assert meta.lin.weight.is_meta  # nothing allocated
    it.materialize(meta, "torch_default", seed=0)  # what the message suggests works
    it.init_module(meta, "auto", seed=0, example_input=torch.randn(2, 4))
    assert not meta.lin.weight.is_meta
