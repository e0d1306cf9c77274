"""Roles that come from a parameter's structure, not its name (issue 18 item 6).

Each kind on a small home-made module and, where transformers 5 has one, a tiny HF config:
norms that compute ``x_hat * (1 + w)`` (Gemma), fused mixture-of-experts tensors (Mixtral,
OLMoE, Qwen2-MoE), ``weight_norm`` / ``spectral_norm`` layers (init and LSUV), and bare
parameters recognized by their use (differential attention's ``lambda1``, an attention pool's
``probe``, torchvision ViT's ``class_token``). Deterministic values are compared exactly; random
ones by their sample std, with a tolerance of 6 standard errors (std / sqrt(2n)).
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import initlab  # noqa: E402
from initlab.torch import init_module, plan  # noqa: E402
from initlab.torch.roles import param_infos  # noqa: E402

SINGLE = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "lecun_normal", "orthogonal",
          "normal", "trunc_normal")


def _check_std(t: torch.Tensor, std: float) -> None:
    """The sample std of ``t`` is ``std`` within 6 standard errors (std / sqrt(2n))."""
    n = t.numel()
    got = float(t.detach().double().std())
    assert abs(got - std) < 6 * std / math.sqrt(2 * n), (got, std, n)


# ---- modules -------------------------------------------------------------------------------


class GemmaNorm(nn.Module):
    """RMSNorm whose forward scales by (1 + w), w built as 0 (Gemma)."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * (1.0 + self.weight.float())).type_as(x)


class PlainRMSNorm(nn.Module):
    """RMSNorm whose forward scales by w (Llama), w built as 1."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


class NormNet(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, d)
        self.gnorm = GemmaNorm(d)
        self.rms = PlainRMSNorm(d)
        self.ln = nn.LayerNorm(d)
        self.fc2 = nn.Linear(d, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.ln(self.rms(torch.relu(self.gnorm(self.fc1(x))))))


class Experts(nn.Module):
    """Fused experts stored (E, out, in), used as F.linear weights (HF Mixtral's layout)."""

    def __init__(self, e: int = 4, d: int = 32, i: int = 64) -> None:
        super().__init__()
        self.num_experts = e
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, d))
        self.down_proj = nn.Parameter(torch.empty(e, d, i))

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for e in range(self.num_experts):
            sel = idx == e
            g, u = F.linear(x[sel], self.gate_up_proj[e]).chunk(2, dim=-1)
            out[sel] = F.linear(F.silu(g) * u, self.down_proj[e])
        return out


class MatmulExperts(nn.Module):
    """Fused experts stored (E, in, out), used as x @ W[e]."""

    def __init__(self, e: int = 3, d: int = 32, i: int = 64) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.empty(e, d, i))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x @ self.w_in[e] for e in range(self.w_in.shape[0])]).sum(0)


class MoE(nn.Module):
    def __init__(self, e: int = 4, d: int = 32, i: int = 64) -> None:
        super().__init__()
        self.gate = nn.Linear(d, e, bias=False)
        self.experts = Experts(e, d, i)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.experts(x, self.gate(x).argmax(-1))


class DiffAttn(nn.Module):
    """Differential attention: softmax(q1 k1) - lambda1 * softmax(q2 k2)."""

    def __init__(self, d: int = 16, h: int = 2) -> None:
        super().__init__()
        self.h = h
        self.q_proj = nn.Linear(d, 2 * d, bias=False)
        self.k_proj = nn.Linear(d, 2 * d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        self.lambda1 = nn.Parameter(torch.full((h, 1, 1), 0.8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q_proj(x).view(b, n, 2 * self.h, -1).transpose(1, 2)
        k = self.k_proj(x).view(b, n, 2 * self.h, -1).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.h, -1).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1).view(b, self.h, 2, n, n)
        a = a[:, :, 0] - self.lambda1 * a[:, :, 1]
        return self.out_proj((a @ v).transpose(1, 2).reshape(b, n, d))


class AttnPool(nn.Module):
    """Attention pooling: a learned `probe` is the query of an attention over the sequence."""

    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.randn(1, 1, d))
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.probe.repeat(x.shape[0], 1, 1)
        return self.head(self.attention(q, x, x)[0][:, 0])


class TinyViT(nn.Module):
    """torchvision's VisionTransformer layout: `class_token` concatenated, `pos_embedding` added."""

    def __init__(self, d: int = 16, n: int = 4) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, d, 4, 4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embedding = nn.Parameter(torch.empty(1, n + 1, d).normal_(std=0.02))
        self.ln = nn.LayerNorm(d)
        self.heads = nn.Linear(d, 3)

    def _process_input(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = self.conv_proj(x)
        return x.reshape(n, x.shape[1], -1).permute(0, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        n = x.shape[0]
        batch_class_token = self.class_token.expand(n, -1, -1)
        x = torch.cat([batch_class_token, x], dim=1)
        x = x + self.pos_embedding
        return self.heads(self.ln(x)[:, 0])


class OddNames(nn.Module):
    """Names that mislead: `alpha` is a matmul weight (x @ alpha), `summary` a concatenated token."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.empty(d, 2 * d))
        self.summary = nn.Parameter(torch.zeros(1, 1, 2 * d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x @ self.alpha
        return torch.cat([self.summary.expand(h.shape[0], -1, -1), h], dim=1)


def _roles(m: nn.Module) -> dict[str, str | None]:
    return {i.name: i.role for i in param_infos(m)}


# ---- (1 + w) norms ----------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ("torch_default", "auto") + SINGLE)
def test_one_plus_w_norm_gets_zero_others_one(recipe):
    torch.manual_seed(0)
    m = NormNet()
    opts = {"example_input": torch.randn(8, 16)} if recipe == "auto" else {}
    m.gnorm.weight.data.fill_(0.5)
    m.rms.weight.data.fill_(0.5)
    _, man = init_module(m, recipe, seed=1, return_manifest=True, **opts)
    assert torch.equal(m.gnorm.weight, torch.zeros(16))  # x_hat * (1 + 0): the identity scale
    assert torch.equal(m.rms.weight, torch.ones(16)) and torch.equal(m.ln.weight, torch.ones(16))
    e = man["gnorm.weight"]
    assert e.params["value"] == 0.0 and "1 + w" in e.params["why"]


def test_norm_probe_leaves_module_untouched_and_reads_form():
    g = GemmaNorm(8)
    g.weight.data.copy_(torch.arange(8.0))
    info = next(i for i in param_infos(g))
    assert info.extra["norm_identity"] == 0.0 and info.extra["norm_form"] == "x_hat * (1 + w)"
    assert torch.equal(g.weight, torch.arange(8.0))  # the probe never writes the module
    info = next(i for i in param_infos(PlainRMSNorm(8)))
    assert "norm_identity" not in info.extra


def _tiny_lm(kind: str):
    transformers = pytest.importorskip("transformers")
    common = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=64)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "gemma":
            return transformers.GemmaForCausalLM(transformers.GemmaConfig(**common))
        if kind == "gemma2":
            return transformers.Gemma2ForCausalLM(transformers.Gemma2Config(**common))
        if kind == "gemma3":
            return transformers.Gemma3ForCausalLM(transformers.Gemma3TextConfig(**common))
        if kind == "llama":
            return transformers.LlamaForCausalLM(transformers.LlamaConfig(**common))
        if kind == "mixtral":
            return transformers.MixtralForCausalLM(transformers.MixtralConfig(**common, num_local_experts=4,
                                                                              num_experts_per_tok=2))
        if kind == "olmoe":
            return transformers.OlmoeForCausalLM(transformers.OlmoeConfig(**common, num_experts=4,
                                                                          num_experts_per_tok=2))
        if kind == "qwen2_moe":
            c = {k: v for k, v in common.items() if k != "head_dim"}
            return transformers.Qwen2MoeForCausalLM(transformers.Qwen2MoeConfig(
                **c, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                shared_expert_intermediate_size=48))
    raise AssertionError(kind)


# every RMSNorm of the tiny configs: Gemma 2 per layer + final; Gemma2 4 per layer + final;
# Gemma3 4 per layer + q_norm/k_norm + final
_GEMMA_NORMS = {"gemma": 5, "gemma2": 9, "gemma3": 13}


@pytest.mark.parametrize("kind", sorted(_GEMMA_NORMS))
def test_hf_gemma_norms_zero_in_every_recipe(kind):
    m = _tiny_lm(kind)
    norms = [i.name for i in param_infos(m) if i.role == "norm_weight"]
    assert len(norms) == _GEMMA_NORMS[kind]
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    for recipe, opts in (("torch_default", {}), ("kaiming_normal", {}), ("auto", {"example_input": ids}),
                         ("hf", {})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            man = plan(m, recipe, seed=0, **opts)
        wrong = [n for n in norms if man[n].init != "constant" or man[n].params["value"] != 0.0]
        assert not wrong, (recipe, wrong)
    init_module(m, "kaiming_normal", seed=0)
    params = dict(m.named_parameters())
    assert all(torch.equal(params[n], torch.zeros_like(params[n])) for n in norms)


def test_hf_llama_norms_stay_one():
    m = _tiny_lm("llama")
    man = plan(m, "kaiming_normal", seed=0)
    norms = [e for e in man.entries if e.role == "norm_weight"]
    assert len(norms) == 5 and all(e.params == {"value": 1.0} for e in norms)


# ---- fused experts ------------------------------------------------------------------------------


def test_fused_experts_fans_per_expert():
    m = MoE(e=4, d=32, i=64)
    infos = {i.name: i for i in param_infos(m)}
    gu, dn = infos["experts.gate_up_proj"], infos["experts.down_proj"]
    assert (gu.role, gu.fan_in, gu.fan_out, gu.extra["experts"]) == ("mlp_in", 32, 128, 4)
    assert (dn.role, dn.fan_in, dn.fan_out) == ("mlp_out", 64, 32)
    mm = {i.name: i for i in param_infos(MatmulExperts(e=3, d=32, i=64))}["w_in"]
    assert (mm.fan_in, mm.fan_out, mm.extra["expert_layout"]) == (32, 64, "in_out")
    man = plan(m, "kaiming_normal", seed=0)
    assert man["experts.gate_up_proj"].params["std"] == math.sqrt(2.0) / math.sqrt(32)
    assert man["experts.down_proj"].params["std"] == math.sqrt(2.0) / math.sqrt(64)
    assert "per-expert fans" in man["experts.gate_up_proj"].params["fans"]
    man = plan(m, "xavier_uniform", seed=0)
    assert man["experts.gate_up_proj"].params["bound"] == math.sqrt(6.0 / (32 + 128))


def test_fused_experts_values():
    m = MoE(e=4, d=32, i=64)
    init_module(m, "kaiming_normal", seed=3)
    for e in range(4):
        _check_std(m.experts.gate_up_proj[e], math.sqrt(2.0) / math.sqrt(32))
        _check_std(m.experts.down_proj[e], math.sqrt(2.0) / math.sqrt(64))
    init_module(m, "torch_default", seed=3)
    b = 1.0 / math.sqrt(32)
    w = m.experts.gate_up_proj
    assert float(w.detach().abs().max()) <= b and float(w.detach().abs().max()) > 0.95 * b
    _check_std(w, b / math.sqrt(3.0))
    init_module(m, "orthogonal", seed=3)
    for e in range(4):  # one orthogonal matrix per expert: (128, 32) has orthonormal columns
        g = m.experts.gate_up_proj[e].detach().double()
        assert torch.allclose(g.T @ g, torch.eye(32, dtype=torch.float64), atol=1e-5)
        d = m.experts.down_proj[e].detach().double()  # (32, 64): orthonormal rows
        assert torch.allclose(d @ d.T, torch.eye(32, dtype=torch.float64), atol=1e-5)
    init_module(m, "auto", seed=3, example_input=torch.randn(16, 32))
    _check_std(m.experts.down_proj, 1.0 / 8.0)


@pytest.mark.parametrize("kind", ("mixtral", "olmoe", "qwen2_moe"))
def test_hf_fused_experts(kind):
    m = _tiny_lm(kind)
    ex = [i for i in param_infos(m) if "experts" in i.extra]
    assert len(ex) == 4 and all(i.extra["expert_layout"] == "out_in" for i in ex)  # F.linear weights (E, out, in)
    for i in ex:
        assert (i.fan_in, i.fan_out) == (i.shape[2], i.shape[1])
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    for recipe, opts in (("torch_default", {}), ("auto", {"example_input": ids})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, man = init_module(m, recipe, seed=0, return_manifest=True, **opts)
        params = dict(m.named_parameters())
        for i in ex:
            e = man[i.name]
            std = e.params["std"] if "std" in e.params else e.params["bound"] / math.sqrt(3.0)
            assert std == pytest.approx(1.0 / math.sqrt(i.fan_in) / (math.sqrt(3.0) if "bound" in e.params else 1))
            _check_std(params[i.name], std)
    assert plan(m, "hf", seed=0)[ex[0].name].init == "normal"  # hf stays recorded


# ---- parametrizations ---------------------------------------------------------------------------


def _wn_sn():
    return nn.ModuleDict({
        "wl": nn.utils.parametrizations.weight_norm(nn.Linear(48, 64)),
        "wc": nn.utils.parametrizations.weight_norm(nn.Conv2d(8, 16, 3)),
        "sl": nn.utils.parametrizations.spectral_norm(nn.Linear(48, 32)),
        "sc": nn.utils.parametrizations.spectral_norm(nn.Conv2d(8, 16, 3)),
    })


@pytest.mark.parametrize("recipe", ("torch_default", "kaiming_normal", "xavier_uniform", "orthogonal"))
def test_weight_norm_weight_is_the_fill(recipe):
    m = _wn_sn()
    _, man = init_module(m, recipe, seed=5, return_manifest=True)
    for k, fan_in in (("wl", 48), ("wc", 72)):
        lay = m[k]
        g, v = lay.parametrizations.weight.original0, lay.parametrizations.weight.original1
        red = tuple(range(1, v.dim()))
        assert torch.allclose(g.detach().reshape(-1), torch.linalg.vector_norm(v.detach().double(), dim=red).float(), rtol=1e-6)
        assert torch.allclose(lay.weight, v, rtol=1e-5, atol=1e-7)  # g * v / ||v|| == v
        assert man[f"{k}.parametrizations.weight.original0"].init == "derived"
        e = man[f"{k}.parametrizations.weight.original1"]
        assert e.role == "weight" and e.params["post"][0][0] == "derive"
        if recipe == "kaiming_normal":
            assert e.params["std"] == math.sqrt(2.0) / math.sqrt(fan_in)
            _check_std(lay.weight, math.sqrt(2.0) / math.sqrt(fan_in))
        if recipe == "torch_default":
            assert e.params["bound"] == 1.0 / math.sqrt(fan_in)


def test_spectral_norm_original_and_power_iteration():
    m = _wn_sn()
    _, man = init_module(m, "kaiming_normal", seed=5, return_manifest=True)
    for k, fan_in in (("sl", 48), ("sc", 72)):
        lay = m[k]
        orig = lay.parametrizations.weight.original
        assert man[f"{k}.parametrizations.weight.original"].params["std"] == math.sqrt(2.0) / math.sqrt(fan_in)
        _check_std(orig, math.sqrt(2.0) / math.sqrt(fan_in))
        sn = lay.parametrizations.weight[0]
        mat = orig.detach().reshape(orig.shape[0], -1).double()
        sigma = float(torch.linalg.matrix_norm(mat, 2))
        est = float(sn._u.double() @ mat @ sn._v.double())
        assert 0.9 * sigma < est <= sigma * (1 + 1e-6)  # u, v re-estimated for the new original
        lay.eval()
        assert float(torch.linalg.matrix_norm(lay.weight.detach().reshape(orig.shape[0], -1).double(), 2)) \
            == pytest.approx(sigma / est, rel=1e-5)


def test_parametrized_plan_no_rule_errors_any_more():
    m = _wn_sn()
    for recipe in ("torch_default", "auto", "lecun_normal"):
        opts = {"example_input": torch.randn(2, 48)} if recipe == "auto" else {}
        if recipe == "auto":
            net = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(48, 64)), nn.Tanh(),
                                nn.utils.parametrizations.spectral_norm(nn.Linear(64, 8)))
            man = plan(net, recipe, seed=0, **opts)
            assert man["0.parametrizations.weight.original0"].init == "derived"
            assert man["0.parametrizations.weight.original1"].params["activation"] == "tanh"
        else:
            man = plan(m, recipe, seed=0)
        assert all(e.init != "keep" for e in man.entries)


def test_lsuv_weight_norm_scale_is_the_output_change():
    torch.manual_seed(0)
    m = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(32, 64, bias=False)), nn.ReLU(),
                      nn.utils.parametrizations.spectral_norm(nn.Linear(64, 16)))
    x = torch.randn(256, 32)
    m.eval()
    with torch.no_grad():
        h0, y0 = m[0](x).clone(), m(x).clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = initlab.torch.lsuv(m, x, orthogonal=False, seed=0)
    m.eval()
    with torch.no_grad():
        h1 = m[0](x)
    assert [r.name for r in rep.layers] == ["0"]
    s = rep.layers[0].scale
    assert abs(s - 1.0) > 0.1  # it had something to do
    assert torch.allclose(h1, s * h0, rtol=1e-5, atol=1e-6)  # the output changed by exactly the reported scale
    assert float(h1.var(unbiased=False)) == pytest.approx(1.0, abs=0.1)
    assert "spectral_norm" in rep.not_scaled["2.weight"]
    assert not any("parametrizations" in k for k in rep.not_scaled)
    assert any("2.weight" in str(w.message) for w in caught)
    with torch.no_grad():  # the spectral-normalized layer's weight is as it was (its output only sees layer 0's change)
        assert torch.equal(m[2].parametrizations.weight.original, m[2].parametrizations.weight.original)
    rep = initlab.torch.lsuv(m, x, seed=0)  # with the orthonormal pre-init: v orthonormal, g = ||v||
    g, v = m[0].parametrizations.weight.original0, m[0].parametrizations.weight.original1
    assert float(m[0](x).var(unbiased=False)) == pytest.approx(1.0, abs=0.1)
    assert torch.allclose(m[0].weight, rep.layers[0].scale * v, rtol=1e-5, atol=1e-7)
    assert y0.shape == (256, 16) and g.shape == (64, 1)


# ---- tokens, layer scales, queries by use ------------------------------------------------------


def test_bare_parameter_roles_from_use():
    r = _roles(DiffAttn())
    assert r["lambda1"] == "scalar"
    r = _roles(AttnPool())
    assert r["probe"] == "token"
    r = _roles(TinyViT())
    assert r["class_token"] == "token" and r["pos_embedding"] == "token"
    r = _roles(OddNames())
    assert r["alpha"] == "weight" and r["summary"] == "token"  # the use wins over the name
    infos = {i.name: i for i in param_infos(OddNames(8))}
    assert (infos["alpha"].fan_in, infos["alpha"].fan_out) == (8, 16)  # x @ alpha: stored (in, out)


@pytest.mark.parametrize("recipe", ("torch_default", "auto") + SINGLE)
def test_tokens_and_scalars_by_use_in_every_recipe(recipe):
    torch.manual_seed(0)
    nets = {"diff": DiffAttn(), "pool": AttnPool(), "vit": TinyViT()}
    inputs = {"diff": torch.randn(2, 5, 16), "pool": torch.randn(2, 5, 16), "vit": torch.randn(2, 3, 8, 8)}
    for key, m in nets.items():
        before = {k: v.detach().clone() for k, v in m.named_parameters()}
        opts = {"example_input": inputs[key]} if recipe == "auto" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, man = init_module(m, recipe, seed=2, return_manifest=True, **opts)
        left = {x.name: x.reason for x in man.left_alone}
        if key == "diff":  # a layer scale: kept as constructed, in every recipe
            assert torch.equal(m.lambda1, before["lambda1"]) and "multiplies a branch" in left["lambda1"]
        names = {"pool": ("probe",), "vit": ("class_token", "pos_embedding")}.get(key, ())
        for n in names:
            t = dict(m.named_parameters())[n]
            if recipe == "torch_default":  # no reset_parameters owns a bare token: constructed value kept
                assert torch.equal(t, before[n]) and "token" in left[n]
            else:  # a token, never fan-based: truncated N(0, 0.02)
                e = man[n]
                assert e.init == "trunc_normal" and e.params["std"] == 0.02 and "token" in e.params["why"]
                assert float(t.abs().max()) <= 0.04
    assert "query" in plan(AttnPool(), "kaiming_normal", seed=0)["probe"].params["why"]


def test_torchvision_vit_layout_timm_does_not_raise():
    m = TinyViT()
    man = plan(m, "timm", seed=0)
    filled = {e.name: e for e in man.entries}
    left = {x.name for x in man.left_alone}
    assert "class_token" in filled or "class_token" in left
    if "class_token" in filled:
        assert filled["class_token"].init != "uniform" or "fan" not in filled["class_token"].params


def test_materialize_equals_eager_for_structures():
    def build():
        torch.manual_seed(0)
        return nn.ModuleDict({"n": NormNet(), "moe": MoE(e=2, d=8, i=16), "vit": TinyViT(),
                              "wn": nn.utils.parametrizations.weight_norm(nn.Linear(8, 6))})

    for recipe in ("torch_default", "kaiming_normal"):
        with torch.device("meta"):
            m = build()
        initlab.torch.materialize(m, recipe, seed=4, factory=build)
        e = build()
        init_module(e, recipe, seed=4)
        got, want = dict(m.named_parameters()), dict(e.named_parameters())
        assert [k for k in want if not torch.equal(got[k], want[k])] == []
        assert torch.equal(m["n"].gnorm.weight, torch.zeros(16))


def _attend(q: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    attn = q @ q.transpose(-1, -2)
    if bias is not None:
        attn = attn + bias
    return attn.softmax(-1) @ q


class TimmStyleViT(nn.Module):
    """timm's patterns: tokens collected with list.append / a conditional list, an attention bias
    passed to a module-level helper, q/v biases concatenated into F.linear's bias."""

    def __init__(self, d: int = 8, n: int = 4, dist: bool = True) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        if dist:
            self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.reg = nn.Parameter(torch.zeros(1, 2, d))
        self.rel_table = nn.Parameter(torch.zeros(n + 5, n + 5))
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(d))
        self.v_bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("k_bias", torch.zeros(d), persistent=False)

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        to_cat = []
        to_cat.append(self.reg.expand(x.shape[0], -1, -1))
        return torch.cat(to_cat + [x], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        toks = [self.cls_token] + ([self.dist_token] if hasattr(self, "dist_token") else [])
        x = torch.cat([t.expand(x.shape[0], -1, -1) for t in toks] + [x], dim=1)
        x = self._pos_embed(x)
        bias = torch.cat((self.q_bias, self.k_bias, self.v_bias))
        x = F.linear(x, self.qkv.weight, bias=bias)[..., :8]
        return _attend(x, self.rel_table)


def test_usage_through_lists_helpers_and_functions():
    infos = {i.name: i for i in param_infos(TimmStyleViT())}
    roles = {k: v.role for k, v in infos.items()}
    assert roles["cls_token"] == roles["dist_token"] == roles["reg"] == "token"
    assert "concatenated" in infos["reg"].extra["usage"] and "concatenated" in infos["dist_token"].extra["usage"]
    assert roles["rel_table"] == "token" and "_attend" in infos["rel_table"].extra["usage"]
    assert roles["q_bias"] == roles["v_bias"] == "bias" and "F.linear" in infos["q_bias"].extra["usage"]
    man = plan(TimmStyleViT(), "torch_default", seed=0)  # all recognized by use: kept, no "no rule"
    assert {x.name for x in man.left_alone} >= {"cls_token", "dist_token", "reg", "rel_table", "q_bias", "v_bias"}


def test_hf_layer_scale_lambda1_probe_and_mask_tokens_by_use():
    transformers = pytest.importorskip("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dino = transformers.Dinov2Model(transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2,
                                                                  num_attention_heads=2, image_size=16, patch_size=4))
        sig = transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37, image_size=16,
            patch_size=4))
    roles = _roles(dino)
    lam = [n for n in roles if n.endswith("lambda1")]
    assert len(lam) == 4 and all(roles[n] == "scalar" for n in lam)  # Dinov2LayerScale: x * lambda1
    assert roles["embeddings.mask_token"] == "token"  # expanded, then x * (1 - mask) + token * mask
    assert roles["embeddings.cls_token"] == roles["embeddings.position_embeddings"] == "token"
    assert _roles(sig)["head.probe"] == "token"  # the query of SigLIP's attention-pooling head
    before = {n: p.detach().clone() for n, p in dino.named_parameters() if n.endswith("lambda1")}
    init_module(dino, "kaiming_normal", seed=0)  # was: "no rule" for the lambda1's
    assert all(torch.equal(dict(dino.named_parameters())[n], v) for n, v in before.items())
    man = plan(sig, "torch_default", seed=0)  # was: "no rule" for head.probe
    assert any(x.name == "head.probe" and "attention queries" in x.reason for x in man.left_alone)


class CountingNorm(nn.Module):
    """A norm that updates a running statistic in its forward (a custom batch norm)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.register_buffer("running_mean", torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.running_mean.add_(x.mean(0))
        return (x - x.mean(0)) / (x.std(0) + 1e-5) * self.weight


def test_norm_probe_writes_nothing_runs_no_hook():
    m = CountingNorm(6)
    calls = []
    m.register_forward_hook(lambda *a: calls.append(1))
    info = next(i for i in param_infos(m))
    assert info.role == "norm_weight" and "norm_identity" not in info.extra  # x_hat * w: identity 1
    assert torch.equal(m.running_mean, torch.zeros(6)) and calls == []


class OwnInitNet(NormNet):
    """A model whose own init sets its (1 + w) norm to 0.25 on purpose."""

    def __init__(self) -> None:
        super().__init__()
        nn.init.constant_(self.gnorm.weight, 0.25)


def test_own_recipe_keeps_the_models_own_norm_value():
    m = OwnInitNet()
    init_module(m, "own", seed=0, factory=OwnInitNet)
    assert torch.equal(m.gnorm.weight, torch.full((16,), 0.25))  # the model's own init decides
    init_module(m, "torch_default", seed=0)
    assert torch.equal(m.gnorm.weight, torch.zeros(16))  # a recipe's "norm at identity" is 0 here
