"""What a library's own init code computes is computed, not replaced (issue 18, item 1).

``initlab.torch.own_record`` records the code's events and folds them into fills; values the code
computes (Whisper's sinusoid table, Mamba's ``A_log`` and inverse-softplus ``dt_proj.bias``) are
computed by running the same code on a scratch copy, its random draws on initlab's stream.
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initlab.torch import init_module, materialize, plan  # noqa: E402
from initlab.torch.own_record import Computed, finish, fold  # noqa: E402
from initlab.torch.roles import ParamInfo  # noqa: E402
from initlab.torch.rules import Fill, execute  # noqa: E402

transformers = pytest.importorskip("transformers")


def _quiet(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        return make()


def _whisper(cls=None):
    from transformers import WhisperConfig, WhisperModel

    cfg = WhisperConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8,
                        max_source_positions=24, max_target_positions=16, vocab_size=100, pad_token_id=1,
                        bos_token_id=2, eos_token_id=2, decoder_start_token_id=3)
    return _quiet(lambda: (cls or WhisperModel)(cfg))


def _mamba(**kw):
    from transformers import MambaConfig, MambaModel

    cfg = MambaConfig(hidden_size=64, num_hidden_layers=2, vocab_size=50, state_size=4, expand=2, **kw)
    return _quiet(lambda: MambaModel(cfg))


def _bits(t):
    return t.detach().contiguous().view(torch.uint8).clone()


# ---- the fold ------------------------------------------------------------------------------------


def _info(shape=(8, 8)):
    p = nn.Parameter(torch.empty(shape))
    return ParamInfo("w", "", "w", nn.Module(), p, "weight", shape[1], shape[0])


def test_scalar_arithmetic_folds_into_the_fill():
    i = _info()
    st = fold(None, "call", "normal_", (0.5, 0.02), {}, i)
    st = fold(st, "write", "div_", (math.sqrt(4.0),), {}, i)
    st = fold(st, "write", "add_", (1.0,), {"alpha": 2.0}, i)
    assert finish(st) == Fill("normal", {"mean": 2.25, "std": 0.01})
    st = fold(fold(None, "call", "uniform_", (-1.0, 3.0), {}, i), "write", "mul_", (-0.5,), {}, i)
    assert finish(st) == Fill("uniform", {"a": -1.5, "b": 0.5})
    st = fold(fold(None, "call", "zeros_", (), {}, i), "write", "add_", (0.25,), {}, i)
    assert finish(st) == Fill("constant", {"value": 0.25})


def test_inverse_cdf_truncated_normal_is_recognized():
    # timm's trunc_normal_(mean=0.1, std=0.02, a=-2, b=2) as its code does it
    mean, std, a, b = 0.1, 0.02, -2.0, 2.0
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
    i = _info()
    st = fold(None, "call", "uniform_", (2 * lo - 1, 2 * hi - 1), {}, i)
    for op, args in (("erfinv_", ()), ("mul_", (std * math.sqrt(2.0),)), ("add_", (mean,)), ("clamp_", (a, b))):
        st = fold(st, "write", op, args, {}, i)
    f = finish(st)
    assert f.init == "trunc_normal"
    assert f.params == pytest.approx({"mean": mean, "std": std, "a": a, "b": b}, rel=1e-12)
    # timm's trunc_normal_tf_: a standard truncated normal, then scaled and shifted
    st = fold(None, "call", "trunc_normal_", (0.0, 1.0, -2.0, 2.0), {}, i)
    st = fold(fold(st, "write", "mul_", (0.5,), {}, i), "write", "add_", (1.0,), {}, i)
    assert finish(st) == Fill("trunc_normal", {"mean": 1.0, "std": 0.5, "a": 0.0, "b": 2.0})


def test_what_the_fold_cannot_express_is_computed():
    i = _info()
    half = fold(fold(None, "call", "uniform_", (-0.5, 0.5), {}, i), "write", "erfinv_", (), {}, i)
    assert isinstance(finish(half), Computed)  # no affine map and clamp after erfinv_
    wrong = fold(fold(half, "write", "mul_", (1.0,), {}, i), "write", "clamp_", (-3.0, 3.0), {}, i)
    assert isinstance(finish(wrong), Computed)  # bounds that do not match the uniform's
    assert isinstance(finish(fold(fold(None, "call", "normal_", (), {}, i), "write", "exp_", (), {}, i)), Computed)
    assert isinstance(finish(fold(None, "call", "copy_", (torch.ones(8, 8),), {}, i)), Computed)
    tensor_factor = fold(fold(None, "call", "normal_", (), {}, i), "write", "mul_", (torch.ones(8, 8),), {}, i)
    assert isinstance(finish(tensor_factor), Computed)


# ---- Whisper's sinusoids ---------------------------------------------------------------------------


def test_whisper_sinusoids_are_computed_exactly_and_other_recipes_keep_them():
    ref = _whisper()
    table = ref.encoder.embed_positions.weight.detach().clone()
    assert table.pow(2).mean().sqrt().item() == pytest.approx(math.sqrt(0.5), rel=1e-6)  # HF's own value
    m = _whisper()
    with torch.no_grad():
        m.encoder.embed_positions.weight.normal_()  # trained away: "hf" must compute it again
    _, man = init_module(m, "hf", seed=0, return_manifest=True)
    e = man["encoder.embed_positions.weight"]
    assert e.init == "computed" and e.params["random"] is False and e.stream is None, e
    assert e.params["by"] == "WhisperModel._init_weights(encoder): copy_", e.params
    assert torch.equal(m.encoder.embed_positions.weight, table)
    assert m.encoder.embed_positions.weight.requires_grad is False
    for recipe in ("kaiming_normal", "torch_default", "normal"):
        m2 = _whisper()
        _, man = init_module(m2, recipe, seed=0, return_manifest=True, unknown="keep")
        left = {x.name: x.reason for x in man.left_alone}
        assert "computes this value" in left["encoder.embed_positions.weight"], left
        assert torch.equal(m2.encoder.embed_positions.weight, table), recipe


# ---- Mamba's state-space init ---------------------------------------------------------------------


def test_mamba_a_log_exact_dt_bias_reproducible_and_distributed_as_hf():
    ref = _mamba()
    m = _mamba()
    _, man = init_module(m, "hf", seed=0, return_manifest=True)
    for layer in range(2):
        a = f"layers.{layer}.mixer.A_log"
        assert man[a].init == "computed" and man[a].params["random"] is False
        assert torch.equal(m.get_parameter(a), ref.get_parameter(a))
        assert torch.equal(m.get_parameter(f"layers.{layer}.mixer.D"), torch.ones(128))
        b = f"layers.{layer}.mixer.dt_proj.bias"
        assert man[b].init == "computed" and man[b].params["random"] is True and man[b].stream is not None
    again = _mamba()
    init_module(again, "hf", seed=0)
    other = _mamba()
    init_module(other, "hf", seed=1)
    b0, b1 = "layers.0.mixer.dt_proj.bias", "layers.1.mixer.dt_proj.bias"
    assert torch.equal(_bits(m.get_parameter(b0)), _bits(again.get_parameter(b0)))
    assert not torch.equal(m.get_parameter(b0), other.get_parameter(b0))
    assert not torch.equal(m.get_parameter(b0), m.get_parameter(b1))  # each layer its own stream
    # softplus(bias) = dt, log-uniform on [time_step_min, time_step_max] (HF's construction)
    cfg = m.config
    dt = torch.nn.functional.softplus(torch.cat([m.get_parameter(b0), m.get_parameter(b1)]).double())
    lo, hi = math.log(cfg.time_step_min), math.log(cfg.time_step_max)
    assert dt.min() >= cfg.time_step_min * (1 - 1e-4) and dt.max() <= cfg.time_step_max * (1 + 1e-4)
    n = dt.numel()
    sd = (hi - lo) / math.sqrt(12)
    assert abs(dt.log().mean().item() - (lo + hi) / 2) < 5 * sd / math.sqrt(n)
    assert abs(dt.log().std().item() - sd) < 5 * sd / math.sqrt(2 * n) + 0.05 * sd
    # HF's own bias has the same construction: the same range
    dt_ref = torch.nn.functional.softplus(ref.get_parameter(b0).double())
    assert dt_ref.min() >= cfg.time_step_min * (1 - 1e-4) and dt_ref.max() <= cfg.time_step_max * (1 + 1e-4)


def test_mamba_rescaled_out_proj_folds_the_division():
    m = _mamba(rescale_prenorm_residual=True)
    e = plan(m, "hf", seed=0)["layers.0.mixer.out_proj.weight"]
    # kaiming_uniform_(a=sqrt 5) on fan_in 128, then p /= sqrt(num_hidden_layers)
    bound = 1 / math.sqrt(128) / math.sqrt(2)
    assert e.init == "uniform" and e.params["a"] == pytest.approx(-bound) and e.params["b"] == pytest.approx(bound)


def test_materialize_equals_init_module_for_computed_values():
    eager = _mamba()
    init_module(eager, "hf", seed=3)
    with torch.device("meta"):
        meta = _mamba()
    materialize(meta, "hf", seed=3)
    for (n, p), (_, q) in zip(meta.named_parameters(), eager.named_parameters()):
        assert p.device.type == "cpu" and torch.equal(_bits(p), _bits(q)), n
    w_eager = _whisper()
    init_module(w_eager, "hf", seed=3)
    with torch.device("meta"):
        w_meta = _whisper()
    materialize(w_meta, "hf", seed=3)
    assert torch.equal(w_meta.encoder.embed_positions.weight, w_eager.encoder.embed_positions.weight)


def test_computed_value_in_a_window_is_that_block_of_the_whole():
    m = _mamba()
    from initlab.torch.hf_record import record_hf_init
    from initlab.torch.roles import param_infos

    infos = list(param_infos(m))
    fills = record_hf_init(m, infos)
    info = next(i for i in infos if i.name == "layers.1.mixer.dt_proj.bias")
    fill = fills[id(info.param)]
    from initlab.generator import Generator

    whole = torch.empty(128)
    execute(fill, whole, Generator(5, stream=9))
    part = torch.empty(40)
    execute(fill, part, Generator(5, stream=9), global_shape=(128,), offset=(70,))
    assert torch.equal(part, whole[70:110])


def test_code_that_cannot_run_on_a_scratch_copy_keeps_the_value_and_says_why():
    from transformers import PretrainedConfig, PreTrainedModel

    class Cfg(PretrainedConfig):
        model_type = "initlab-scratch-test"

    class Net(PreTrainedModel):
        config_class = Cfg

        def __init__(self, config):
            super().__init__(config)
            self.lin = nn.Linear(4, 4)
            self.table = nn.Parameter(torch.arange(8.0))
            self.calls = 0
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.5)
                torch.nn.init.zeros_(module.bias)
            if module is self or isinstance(module, Net):
                if getattr(module, "table", None) is not None and module.table.device.type == "cpu" \
                        and module.table.data_ptr() != self.table.data_ptr():
                    raise RuntimeError("needs the model's own storage")
                with torch.no_grad():
                    module.table.copy_(torch.arange(8.0) * 3)

    net = _quiet(lambda: Net(Cfg()))
    before = net.table.detach().clone()
    _, man = init_module(net, "hf", seed=0, return_manifest=True)
    left = {x.name: x.reason for x in man.left_alone}
    assert "table" in left and "scratch copy failed" in left["table"] and "RuntimeError" in left["table"], left
    assert torch.equal(net.table, before)  # the library's value, not a substitute
    assert man["lin.weight"].params["std"] == 0.5


def test_computed_value_that_fails_when_written_leaves_the_model_unchanged():
    # the library's code runs again at write time (on the parameter's own stream); if it raises
    # there, no parameter has changed: computed values are written first, each snapshotted
    from transformers import PretrainedConfig, PreTrainedModel

    class Cfg(PretrainedConfig):
        model_type = "initlab-computed-fails-test"

    calls = {"n": 0}

    class Net(PreTrainedModel):
        config_class = Cfg

        def __init__(self, config):
            super().__init__(config)
            self.lin = nn.Linear(4, 4)
            self.a = nn.Parameter(torch.zeros(3))
            self.b = nn.Parameter(torch.zeros(3))
            self.post_init()

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.5)
                torch.nn.init.zeros_(module.bias)
            if isinstance(module, Net):
                calls["n"] += 1
                if calls["n"] > 7:  # construction, the dry record and two trials each: then it fails
                    raise RuntimeError("fails at write time")
                with torch.no_grad():
                    module.a.copy_(torch.arange(3.0))
                    module.b.copy_(torch.arange(3.0) * 2)

    net = _quiet(lambda: Net(Cfg()))
    with torch.no_grad():
        net.a.fill_(-1.0)  # trained away from the library's value: writing it again would show
        net.b.fill_(-1.0)
    before = {n: _bits(p) for n, p in net.named_parameters()}
    calls["n"] = 1  # construction ran the init once
    with pytest.raises(RuntimeError, match="fails at write time"):
        init_module(net, "hf", seed=0)
    assert calls["n"] > 7
    assert all(torch.equal(before[n], _bits(p)) for n, p in net.named_parameters())
