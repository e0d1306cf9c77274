"""initlab.torch.buffers.restore_buffers: buffers of meta-built models back to their eager values."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initlab.torch.buffers import _build_twin, plan_buffers, restore_buffers  # noqa: E402


def spoil(model: nn.Module) -> None:
    """Overwrite every buffer with values no constructor gives (to_empty may hand out zeros)."""
    with torch.no_grad():
        for b in model.buffers():
            b.fill_(float("nan") if b.is_floating_point() else 12345)


def on_meta(factory) -> nn.Module:
    with torch.device("meta"):
        m = factory()
    assert all(b.is_meta for b in m.buffers())
    m.to_empty(device="cpu")
    spoil(m)
    return m


def assert_buffers_equal(model: nn.Module, eager: nn.Module) -> None:
    eb = dict(eager.named_buffers(remove_duplicate=False))
    mb = dict(model.named_buffers(remove_duplicate=False))
    assert mb.keys() == eb.keys()
    for n, b in mb.items():
        assert b.dtype == eb[n].dtype and torch.equal(b, eb[n]), n


class Sinusoidal(nn.Module):
    """A module whose buffer is computed at construction (a sinusoidal position table)."""

    def __init__(self, n: int = 16, d: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)
        pos = torch.arange(n, dtype=torch.float32)[:, None]
        freq = torch.exp(-math.log(1e4) * torch.arange(0, d, 2, dtype=torch.float32) / d)
        table = torch.zeros(n, d)
        table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
        self.register_buffer("table", table)


class EmptyThenFilled(nn.Module):
    """A buffer created with torch.empty and filled afterwards (needs the twin without meta empties)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps", torch.empty(5))
        self.steps.copy_(torch.linspace(0, 1, 5))
        self.lin = nn.Linear(4, 4)


def custom_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), Sinusoidal(), nn.Sequential(Sinusoidal(4, 2)))


# ---- plain torch ---------------------------------------------------------------------------------


def test_batchnorm_without_factory():
    def factory():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                             nn.BatchNorm1d(8 * 30 * 30),
                             nn.LayerNorm(4), nn.InstanceNorm1d(3, track_running_stats=True))

    eager = factory()
    m = on_meta(factory)
    report = restore_buffers(m)
    assert_buffers_equal(m, eager)
    assert {how for _, how in report} == {"running_stats"}
    assert [n for n, _ in report] == [n for n, _ in m.named_buffers()]


def test_computed_buffer_needs_factory_and_error_names_every_one():
    m = on_meta(custom_model)
    with pytest.raises(ValueError) as ei:
        restore_buffers(m)
    msg = str(ei.value)
    assert "2 buffer(s)" in msg and "2.table" in msg and "3.0.table" in msg and "factory=" in msg
    assert "1.running_mean" not in msg  # restorable ones are not blamed
    # validated before writing: nothing was changed, not even the restorable running statistics
    assert bool(torch.isnan(m[1].running_mean).all()) and bool(torch.isnan(m[2].table).all())


def test_computed_buffer_with_factory():
    eager = custom_model()
    m = on_meta(custom_model)
    report = restore_buffers(m, factory=custom_model)
    assert_buffers_equal(m, eager)
    assert dict(report) == {n: "factory_twin" for n, _ in m.named_buffers()}


def test_twin_has_no_parameter_storage_and_empty_created_buffers_work():
    twin = _build_twin(custom_model)
    assert all(p.is_meta for p in twin.parameters())
    assert not any(b.is_meta for b in twin.buffers())
    eager = EmptyThenFilled()
    m = on_meta(EmptyThenFilled)
    restore_buffers(m, factory=EmptyThenFilled)
    assert torch.equal(m.steps, eager.steps)
    assert all(p.is_meta for p in _build_twin(EmptyThenFilled).parameters())


def test_errors():
    with torch.device("meta"):
        m = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="still on the meta device: running_mean, running_var, num_batches_tracked"):
        restore_buffers(m)
    with pytest.raises(TypeError, match="nn.Module"):
        restore_buffers("model")
    with pytest.raises(TypeError, match="callable"):
        restore_buffers(nn.Linear(2, 2), factory=3)
    assert restore_buffers(nn.Linear(2, 2)) == []
    with pytest.raises(ValueError, match="shape"):
        m = on_meta(lambda: Sinusoidal(16, 8))
        restore_buffers(m, factory=lambda: Sinusoidal(8, 8))


# ---- Hugging Face transformers (tiny configs, from_config, nothing downloaded) ----------------------


def _hf():
    tf = pytest.importorskip("transformers")
    return tf, {
        "gpt2": lambda: tf.AutoModelForCausalLM.from_config(tf.GPT2Config(
            n_embd=64, n_layer=2, n_head=4, vocab_size=500, n_positions=64, bos_token_id=0, eos_token_id=0)),
        "llama": lambda: tf.AutoModelForCausalLM.from_config(tf.LlamaConfig(
            hidden_size=64, num_hidden_layers=2, vocab_size=500, intermediate_size=128, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)),
        "bert": lambda: tf.AutoModelForMaskedLM.from_config(tf.BertConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=500,
            max_position_embeddings=64)),
        "vit": lambda: tf.AutoModelForImageClassification.from_config(tf.ViTConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
            patch_size=8)),
    }


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert", "vit"])
def test_hf_models(arch):
    _, factories = _hf()
    eager = factories[arch]()
    m = on_meta(factories[arch])
    report = restore_buffers(m)
    assert_buffers_equal(m, eager)
    assert [n for n, _ in report] == [n for n, _ in m.named_buffers(remove_duplicate=False)]
    assert {how for _, how in report} <= {"hf_twin"}
    if arch == "llama":
        assert dict(report) == {"model.rotary_emb.inv_freq": "hf_twin", "model.rotary_emb.original_inv_freq": "hf_twin"}
    if arch == "bert":
        assert "bert.embeddings.position_ids" in dict(report)
        assert torch.equal(m.bert.embeddings.position_ids, torch.arange(64)[None])


def test_hf_model_wrapped_in_a_plain_module():
    _, factories = _hf()

    def factory():
        return nn.ModuleDict({"lm": factories["llama"](), "bn": nn.BatchNorm1d(4)})

    eager = factory()
    m = on_meta(factory)
    report = dict(restore_buffers(m))
    assert_buffers_equal(m, eager)
    assert report["lm.model.rotary_emb.inv_freq"] == "hf_twin" and report["bn.running_var"] == "running_stats"


def test_twin_skips_samplers_on_meta_parameters_only():
    # The twin's constructor samples its (meta) parameter and a real buffer: the buffer is still
    # sampled (its value is what the plan copies), the meta sampling returns the meta tensor, and
    # torch.Tensor is left as it was (the methods inherited again, not copied onto the class).
    class Noisy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(3, 3))
            assert nn.init.normal_(self.w) is self.w
            self.register_buffer("noise", torch.zeros(5).normal_())

    before = {k: k in torch.Tensor.__dict__ for k in ("normal_", "uniform_", "random_")}
    with torch.device("meta"):
        m = Noisy()
    plan = plan_buffers(m, factory=Noisy, allow_meta=True)
    (name, how, src), = plan
    assert name == "noise" and src is not None and src.device.type == "cpu" and bool((src != 0).all())
    assert {k: k in torch.Tensor.__dict__ for k in before} == before
