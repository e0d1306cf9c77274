"""initlab.torch.fast_init: library constructors on initlab's fills, same distributions, reproducible."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
from initlab.torch.fast_init import fast_init  # noqa: E402

ALPHA = 1e-4  # per-parameter KS significance level
_INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_", "dirac_",
               "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
               "sparse_")
ORIGINALS = {n: getattr(torch.nn.init, n) for n in _INIT_NAMES}


def ks_2samp_stat(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic D and its critical value at level ALPHA
    (asymptotic: c(α) sqrt((n + m) / (n m)), c(α) = sqrt(-ln(α / 2) / 2))."""
    x, y = np.sort(x.ravel()), np.sort(y.ravel())
    allv = np.concatenate([x, y])
    d = np.max(np.abs(np.searchsorted(x, allv, "right") / x.size - np.searchsorted(y, allv, "right") / y.size))
    n, m = x.size, y.size
    return float(d), math.sqrt(-math.log(ALPHA / 2) / 2) * math.sqrt((n + m) / (n * m))


def assert_same_distributions(eager: nn.Module, fast: nn.Module) -> int:
    """Per parameter and buffer: constants equal exactly, all-zero rows at the same places,
    otherwise the same distribution (KS at level ALPHA and std within 6 standard errors)."""
    e_sd, f_sd = eager.state_dict(), fast.state_dict()
    assert e_sd.keys() == f_sd.keys()
    checked = 0
    for k, e in e_sd.items():
        f = f_sd[k]
        assert f.shape == e.shape and f.dtype == e.dtype, k
        if not e.is_floating_point() or e.numel() < 2:
            assert torch.equal(e, f), k
            continue
        e64, f64 = e.double(), f.double()
        if bool((e64 == e64.flatten()[0]).all()):  # constant in the library's construction
            assert torch.equal(e, f), f"{k}: expected the constant {float(e.flatten()[0])}"
            continue
        if e.dim() == 2:  # padding rows and other zeroed rows
            assert torch.equal((e64 == 0).all(dim=1), (f64 == 0).all(dim=1)), k
            keep = ~(e64 == 0).all(dim=1)
            e64, f64 = e64[keep], f64[keep]
        x, y = e64.flatten().numpy(), f64.flatten().numpy()
        d, crit = ks_2samp_stat(x, y)
        assert d < crit, f"{k}: KS D = {d:.4f} >= {crit:.4f} (n = {x.size})"
        tol = 6.0 / math.sqrt(x.size)  # rel. s.e. of a std ratio is <= 1/sqrt(n) for kurtosis <= 3
        assert abs(y.std() / x.std() - 1) < tol, f"{k}: std {y.std():.5g} vs {x.std():.5g}"
        checked += 1
    return checked


def assert_unpatched() -> None:
    for n, f in ORIGINALS.items():
        assert getattr(torch.nn.init, n) is f, n
    for n in ("normal_", "uniform_", "zero_", "fill_"):
        assert n not in torch.Tensor.__dict__, n
    hf = __import__("sys").modules.get("transformers.initialization")
    if hf is not None:
        for n, f in hf.TORCH_INIT_FUNCTIONS.items():
            assert f is ORIGINALS[n], n


def torch_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(256, 512), nn.Conv2d(16, 32, 3), nn.Embedding(300, 64, padding_idx=5),
        nn.LayerNorm(512), nn.BatchNorm2d(32), nn.LSTM(32, 64), nn.MultiheadAttention(64, 4),
        nn.TransformerEncoderLayer(64, 4, 128), nn.Bilinear(20, 30, 40), nn.ConvTranspose1d(8, 16, 5),
    )


def build(factory, seed):
    if seed == "eager":
        torch.manual_seed(0)
        return factory()
    with fast_init(seed=seed) as f:
        m = factory()
    return m, f


# ---- plain torch --------------------------------------------------------------------------------


def test_torch_modules_same_distributions_and_counts():
    eager = build(torch_model, "eager")
    fast, f = build(torch_model, 0)
    assert assert_same_distributions(eager, fast) >= 15
    served = {n for (n, how) in f.counts if how == "initlab"}
    assert {"kaiming_uniform_", "uniform_", "normal_", "xavier_uniform_"} <= served
    bound = 1 / math.sqrt(256)
    w = fast[0].weight.detach()
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.99 * bound
    assert torch.equal(fast[2].weight[5], torch.zeros(64))
    assert "calls on initlab" in str(f)
    assert_unpatched()


def test_checker_detects_a_wrong_scale_and_a_lost_constant():
    eager = build(torch_model, "eager")
    fast, _ = build(torch_model, 0)
    with torch.no_grad():
        fast[0].weight.mul_(1.1)
    with pytest.raises(AssertionError, match="0.weight"):
        assert_same_distributions(eager, fast)
    fast, _ = build(torch_model, 0)
    with torch.no_grad():
        fast[3].weight.normal_()
    with pytest.raises(AssertionError, match="3.weight"):
        assert_same_distributions(eager, fast)


def test_reproducible_and_seed_sensitive():
    a, _ = build(torch_model, 7)
    b, _ = build(torch_model, 7)
    c, _ = build(torch_model, 8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    random_keys = [k for k in sa if k.endswith("weight") and sa[k].is_floating_point() and sa[k].std() > 0]
    assert len(random_keys) >= 8
    assert all(not torch.equal(sa[k], sc[k]) for k in random_keys)


def test_thread_count_does_not_change_values():
    with initlab.num_threads(1):
        a, _ = build(lambda: nn.Linear(1024, 1024), 3)
    with initlab.num_threads(2):
        b, _ = build(lambda: nn.Linear(1024, 1024), 3)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_successive_calls_take_successive_streams():
    t1, t2 = torch.empty(1000), torch.empty(1000)
    with fast_init(seed=11):
        torch.nn.init.normal_(t1)
        torch.nn.init.normal_(t2, 0.0, 2.0)
    g = initlab.Generator(11)
    r1, r2 = initlab.normal_(torch.empty(1000), seed=g), initlab.normal_(torch.empty(1000), 0.0, 2.0, seed=g)
    assert torch.equal(t1, r1) and torch.equal(t2, r2)


def test_generator_instance_and_default_generator():
    g = initlab.Generator(5)
    with fast_init(seed=g):
        x = torch.nn.init.uniform_(torch.empty(100))
    assert g.streams_used == 1
    assert torch.equal(x, initlab.uniform_(torch.empty(100), seed=5))
    initlab.manual_seed(9)
    with fast_init():
        y = torch.empty(100).normal_(1.0, 3.0)
    initlab.manual_seed(9)
    with fast_init():
        z = torch.empty(100).normal_(1.0, 3.0)
    assert torch.equal(y, z) and torch.equal(y, initlab.normal_(torch.empty(100), 1.0, 3.0, seed=9))


def test_tensor_methods_semantics():
    t = torch.empty(200_000)
    with fast_init(seed=1) as f:
        t.uniform_(-3, 5)
        assert float(t.min()) >= -3 and float(t.max()) < 5
        t.uniform_(**{"from": 2.0, "to": 2.5})
        assert float(t.min()) >= 2.0 and float(t.max()) < 2.5
        t.fill_(0.25)
        assert bool((t == 0.25).all())
        t.zero_()
        assert bool((t == 0).all())
        t.normal_(std=0.5)
    assert abs(float(t.std()) - 0.5) < 6 * 0.5 / math.sqrt(2 * t.numel())
    assert f.counts[("Tensor.uniform_", "initlab")] == 2 and f.counts[("Tensor.zero_", "initlab")] == 1
    assert_unpatched()


# ---- fall-through ------------------------------------------------------------------------------


def test_meta_tensors_fall_through():
    with torch.device("meta"), fast_init(seed=0) as f:
        m = nn.Sequential(nn.Linear(64, 64), nn.Embedding(10, 8, padding_idx=0), nn.LayerNorm(8))
    assert all(p.is_meta for p in m.parameters())
    assert not any(how == "initlab" for (_, how) in f.counts)
    assert f.counts[("kaiming_uniform_", "torch")] == 1


def test_generator_argument_falls_through():
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    with fast_init(seed=0):
        a = torch.nn.init.normal_(torch.empty(500), generator=g1)
        b = torch.empty(500).uniform_(generator=g1)
    ra = ORIGINALS["normal_"](torch.empty(500), generator=g2)
    rb = torch.empty(500).uniform_(generator=g2)
    assert torch.equal(a, ra) and torch.equal(b, rb)


def test_unsupported_tensors_and_torch_errors_fall_through():
    with fast_init(seed=0) as f:
        i = torch.zeros(10, dtype=torch.int64)
        i.fill_(3)  # integer dtype: torch
        assert bool((i == 3).all())
        e = torch.empty(0, 5)
        with pytest.warns(UserWarning, match="zero-element"):
            torch.nn.init.kaiming_uniform_(e)  # torch's own warning, from torch's own function
        w = torch.empty(5, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            w.normal_()  # torch raises for in-place ops on a leaf that requires grad
        torch.nn.init.normal_(w)  # nn.init runs under no_grad: allowed, served
        with pytest.raises(ValueError, match="Mode fan_avg not supported"):
            torch.nn.init.kaiming_normal_(torch.empty(4, 4), mode="fan_avg")  # torch's modes only
        with pytest.raises(ValueError, match="fewer than 2 dimensions"):
            torch.nn.init.xavier_uniform_(torch.empty(7))
        x = torch.zeros(3, 1).expand(3, 4)
        with pytest.raises(RuntimeError):
            x.normal_()  # overlapping memory: torch's error
    assert f.counts[("normal_", "initlab")] == 1
    assert f.counts[("Tensor.fill_", "torch")] == 1
    assert_unpatched()


def test_other_threads_not_redirected():
    result = {}

    def worker():
        result["counts_before"] = sum(fi.counts.total() for fi in [f])
        torch.nn.init.normal_(torch.empty(1000))
        result["counts_after"] = sum(fi.counts.total() for fi in [f])

    with fast_init(seed=0) as f:
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert result["counts_before"] == result["counts_after"]


def test_nesting_and_exceptions_restore():
    with fast_init(seed=1):
        a = torch.nn.init.normal_(torch.empty(100))
        with fast_init(seed=2):
            b = torch.nn.init.normal_(torch.empty(100))
        assert torch.nn.init.normal_ is not ORIGINALS["normal_"]  # still patched for the outer block
        c = torch.nn.init.normal_(torch.empty(100))
    assert_unpatched()
    g = initlab.Generator(1)
    assert torch.equal(a, initlab.normal_(torch.empty(100), seed=g))
    assert torch.equal(c, initlab.normal_(torch.empty(100), seed=g))
    assert torch.equal(b, initlab.normal_(torch.empty(100), seed=2))
    with pytest.raises(KeyError):
        with fast_init(seed=0):
            raise KeyError("boom")
    assert_unpatched()


def test_decorator_fresh_generator_per_call():
    @fast_init(seed=3)
    def make():
        return nn.Linear(64, 32)

    a, b = make(), make()
    assert torch.equal(a.weight, b.weight)
    assert_unpatched()


def test_bad_seed():
    with pytest.raises(TypeError, match="seed"):
        fast_init(seed="x")
    with pytest.raises(ValueError, match="seed"):
        fast_init(seed=-1)


def test_bfloat16_parameters():
    def make():
        return nn.Linear(512, 512, dtype=torch.bfloat16)

    eager = build(make, "eager")
    fast, f = build(make, 0)
    assert f.counts[("kaiming_uniform_", "initlab")] == 1
    assert_same_distributions(eager, fast)


# ---- Hugging Face transformers (tiny configs, from_config, nothing downloaded) ----------------------


def _hf_factories():
    tf = pytest.importorskip("transformers")
    gpt2 = tf.GPT2Config(n_embd=128, n_layer=3, n_head=4, vocab_size=2000, n_positions=256,
                         bos_token_id=0, eos_token_id=0)
    llama = tf.LlamaConfig(hidden_size=128, num_hidden_layers=2, vocab_size=2000, intermediate_size=256,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    bert = tf.BertConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                         vocab_size=2000, max_position_embeddings=256, pad_token_id=0)
    return tf, {
        "gpt2": lambda: tf.AutoModelForCausalLM.from_config(gpt2),
        "llama": lambda: tf.AutoModelForCausalLM.from_config(llama),
        "bert": lambda: tf.AutoModelForMaskedLM.from_config(bert),
    }


@pytest.mark.parametrize("arch", ["gpt2", "llama", "bert"])
def test_hf_same_distributions(arch):
    tf, factories = _hf_factories()
    factory = factories[arch]
    eager = build(factory, "eager")
    fast, f = build(factory, 0)
    assert assert_same_distributions(eager, fast) >= 8
    assert f.counts[("normal_", "initlab")] >= 8  # HF's _init_weights went through initlab
    assert_unpatched()
    sd = fast.state_dict()
    if arch == "gpt2":
        std = 0.02 / math.sqrt(2 * 3)  # GPT-2's scaled residual projections
        w = sd["transformer.h.0.attn.c_proj.weight"]
        assert abs(float(w.std()) / std - 1) < 6 / math.sqrt(w.numel())
        assert fast.lm_head.weight is fast.transformer.wte.weight
        assert torch.equal(sd["transformer.h.1.ln_2.weight"], torch.ones(128))
        assert torch.equal(sd["transformer.h.1.mlp.c_fc.bias"], torch.zeros(512))
    if arch == "llama":
        assert torch.equal(sd["model.norm.weight"], torch.ones(128))
        w = sd["model.layers.0.mlp.down_proj.weight"]
        assert abs(float(w.std()) / 0.02 - 1) < 6 / math.sqrt(w.numel())
    if arch == "bert":
        assert torch.equal(sd["bert.embeddings.word_embeddings.weight"][0], torch.zeros(128))  # padding row
        assert torch.equal(sd["bert.embeddings.LayerNorm.bias"], torch.zeros(128))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_hf_reproducible(arch):
    _, factories = _hf_factories()
    a, _ = build(factories[arch], 21)
    b, _ = build(factories[arch], 21)
    c, _ = build(factories[arch], 22)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["lm_head.weight"], sc["lm_head.weight"])


# ---- deferred writes --------------------------------------------------------------------------------


class ReadsItsWeights(nn.Module):
    """A constructor that reads, rescales and partly overwrites weights between fills."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(128, 128, bias=False)
        self.a_max = float(self.a.weight.detach().abs().max())  # a read: the fill must be real by now
        with torch.no_grad():
            self.a.weight.mul_(0.5)  # in-place scaling of the filled values
        self.b = nn.Linear(128, 128, bias=False)
        nn.init.normal_(self.b.weight, 0.0, 0.1)
        self.b_copy = self.b.weight.detach().clone()  # a copy taken between the two fills
        nn.init.normal_(self.b.weight, 0.0, 0.2)  # whole overwrite: replaces nothing already read
        self.c = nn.Embedding(1000, 64, padding_idx=7)
        nn.init.normal_(self.c.weight, 0.0, 0.05)
        with torch.no_grad():
            self.c.weight[3].fill_(2.0)  # partial write after a deferred whole fill
        self.d = nn.Linear(256, 256)
        np_view = self.d.weight.detach().numpy()  # memory read around torch: not tracked ...
        self.d_view = np_view


def test_deferred_and_immediate_writes_give_identical_values():
    a, fa = build(torch_model, 5)
    with fast_init(seed=5, defer=False) as fb:
        b = torch_model()
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not any(how == "skipped" for (_, how) in fb.counts)


def test_deferred_fills_are_written_before_any_use():
    with fast_init(seed=0) as f:
        m = ReadsItsWeights()
    with fast_init(seed=0, defer=False):
        ref = ReadsItsWeights()
    bound = 1 / math.sqrt(128)
    assert 0.9 * bound < m.a_max <= bound
    assert float(m.a.weight.detach().abs().max()) <= bound / 2  # the scaling applied to the real fill
    assert torch.equal(m.a.weight, ref.a.weight)
    assert torch.equal(m.b_copy, ref.b_copy) and abs(float(m.b_copy.std()) / 0.1 - 1) < 0.05
    assert torch.equal(m.b.weight, ref.b.weight) and abs(float(m.b.weight.detach().std()) / 0.2 - 1) < 0.05
    assert torch.equal(m.c.weight, ref.c.weight) and bool((m.c.weight[3] == 2.0).all())
    # A NumPy view is not tracked: by the end of the block it holds the fill.
    assert torch.equal(torch.from_numpy(m.d_view), m.d.weight.detach())
    assert torch.equal(m.d.weight, ref.d.weight)
    assert f.counts[("(deferred fill, overwritten)", "skipped")] >= 1


def test_unreferenced_deferred_fill_is_dropped():
    with fast_init(seed=0) as f:
        lin = nn.Linear(512, 512)
        lin.weight = nn.Parameter(torch.zeros(512, 512))  # the filled weight is never reachable again
    assert f.counts[("(deferred fill, storage freed)", "skipped")] == 1
    assert bool((lin.weight == 0).all())


def test_defer_must_be_bool():
    with pytest.raises(TypeError, match="defer"):
        fast_init(0, defer="yes")


def _timm_style_trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """timm's layers.weight_init.trunc_normal_ recipe: uniform_, then in-place erfinv/mul/add/clamp."""
    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    with torch.no_grad():
        lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.0))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor


class TimmLikeBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(384, 1536)
        self.pos_embed = nn.Parameter(torch.zeros(1, 197, 384))
        _timm_style_trunc_normal_(self.fc.weight, std=0.02, a=-0.04, b=0.04)
        _timm_style_trunc_normal_(self.pos_embed, std=0.02)
        nn.init.zeros_(self.fc.bias)


def test_in_place_chains_after_a_deferred_fill():
    eager = build(TimmLikeBlock, "eager")
    fast, f = build(TimmLikeBlock, 3)
    assert assert_same_distributions(eager, fast) == 2
    w = fast.fc.weight.detach()
    assert float(w.min()) >= -0.04 and float(w.max()) <= 0.04
    assert f.counts[("Tensor.uniform_", "initlab")] == 2


def test_names_bound_by_other_modules_are_patched_and_restored():
    import sys
    import types

    with fast_init(seed=0):
        pass  # a first block: the module below did not exist yet
    mod = types.ModuleType("initlab_test_binds_normal")
    mod.normal_ = ORIGINALS["normal_"]  # as ``from torch.nn.init import normal_`` would bind it
    sys.modules[mod.__name__] = mod
    try:
        with fast_init(seed=4) as f:
            t = mod.normal_(torch.empty(1000))
        assert f.counts[("normal_", "initlab")] == 1
        assert torch.equal(t, initlab.normal_(torch.empty(1000), seed=4))
        assert mod.normal_ is ORIGINALS["normal_"]
    finally:
        del sys.modules[mod.__name__]
