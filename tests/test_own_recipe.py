"""recipe="own": any library's own initialization, recorded from its code and replayed (issue 18).

No family rule: the model's construction (with ``factory=``) or a Hugging Face model's
``_init_weights`` is run under a recorder; random fills are replayed on initlab's per-name
streams, values the code computes are copied exactly, what cannot be replayed is kept with the
reason. Checked on every rebuilt timm/torchvision structure of ``tests/_zoo.py`` against what
the library's own init wrote, and on Hugging Face models against ``"hf"``.
"""

from __future__ import annotations

import math
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initlab.torch import init_module, materialize, plan  # noqa: E402

from _zoo import ZOO  # noqa: E402


def _factory(entry):
    def build():
        m = entry.build()
        entry.library_init(m)
        return m

    return build


def _bits(m):
    return {n: p.detach().contiguous().view(torch.uint8).clone() for n, p in m.named_parameters()}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_own_equals_the_library_init_on_every_zoo_model(name):
    entry = ZOO[name]
    model = entry.build()
    spec = entry.library_init(model)
    man = plan(model, "own", factory=_factory(entry), seed=0)
    off = []
    for e in man.entries:
        kind, params = spec[e.name]
        if e.init != kind or not all(math.isclose(e.params.get(k, math.nan), v, rel_tol=1e-9, abs_tol=1e-12)
                                     for k, v in params.items()):
            off.append((e.name, e.init, e.params, kind, params))
    left = [x.name for x in man.left_alone if x.kind == "parameter"]
    assert not off and not left, (off[:3], left)
    assert len(man.entries) == len(spec)


@pytest.mark.parametrize("name", ["timm_swin", "timm_efficientnet_b0", "tv_vit_b_16"])
def test_own_materialize_equals_init_module_and_is_reproducible(name):
    entry = ZOO[name]
    eager = entry.build()
    init_module(eager, "own", factory=_factory(entry), seed=4)
    again = entry.build()
    init_module(again, "own", factory=_factory(entry), seed=4)
    assert _bits(eager).keys() == _bits(again).keys()
    assert all(torch.equal(a, b) for a, b in zip(_bits(eager).values(), _bits(again).values()))
    with torch.device("meta"):
        meta = entry.build()
    materialize(meta, "own", factory=_factory(entry), seed=4)
    for (n, p), (_, q) in zip(meta.named_parameters(), eager.named_parameters()):
        assert p.device.type == "cpu" and torch.equal(p.view(torch.uint8) if p.dim() else p, q.view(torch.uint8) if q.dim() else q), n


class _PE(nn.Module):
    def __init__(self, n=16, d=8):
        super().__init__()
        pos = torch.arange(n).unsqueeze(1)
        div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        t = torch.zeros(n, d)
        t[:, 0::2] = torch.sin(pos * div)
        t[:, 1::2] = torch.cos(pos * div)
        self.table = nn.Parameter(t, requires_grad=False)


def _timm_style_trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    # timm.layers.trunc_normal_'s construction: inverse CDF of a uniform, by tensor ops
    def cdf(x):
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
    with torch.no_grad():
        t.uniform_(2 * lo - 1, 2 * hi - 1)
        t.erfinv_()
        t.mul_(std * math.sqrt(2.0))
        t.add_(mean)
        t.clamp_(min=a, max=b)
    return t


class _Research(nn.Module):
    """A model whose constructor does what research code does."""

    def __init__(self):
        super().__init__()
        self.pe = _PE()
        self.lin = nn.Linear(8, 16)
        self.conv = nn.Conv2d(3, 8, 3)
        self.cls = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos = nn.Parameter(torch.empty(1, 5, 8))
        self.q = nn.Parameter(torch.randn(4, 8) * 0.02)
        self.gamma = nn.Parameter(1e-5 * torch.ones(8))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, 5, dtype=torch.float32)).repeat(8, 1))
        self.noisy = nn.Parameter(torch.randn(8).exp())
        self.unset = nn.Parameter(torch.empty(3))
        self.bn = nn.BatchNorm1d(8)
        nn.init.trunc_normal_(self.cls, std=0.02)
        _timm_style_trunc_normal_(self.pos, std=0.02)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.conv.bias)
        self.lin.weight.data.mul_(0.5)


def test_own_on_a_research_constructor():
    ref = _Research()
    m = _Research()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    _, man = init_module(m, "own", factory=_Research, seed=0, return_manifest=True)
    assert man["cls"].init == "trunc_normal" and man["cls"].params == pytest.approx(
        {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0})
    assert man["pos"].init == "trunc_normal" and man["pos"].params == pytest.approx(
        {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0}, rel=1e-9)
    assert man["q"].init == "normal" and man["q"].params == pytest.approx({"mean": 0.0, "std": 0.02})
    assert man["gamma"].init == "constant" and man["gamma"].params["value"] == pytest.approx(1e-5)
    bound = 1 / math.sqrt(8)  # kaiming_uniform_(a=sqrt 5) on fan_in 8, then mul_(0.5)
    assert man["lin.weight"].params["a"] == pytest.approx(-bound / 2) and man["lin.weight"].params["b"] == pytest.approx(bound / 2)
    assert man["conv.weight"].init == "normal" and man["conv.weight"].params["std"] == pytest.approx(math.sqrt(2 / 72))
    for n in ("pe.table", "A_log"):  # computed by the constructor: exact
        assert man[n].init == "computed" and man[n].params["random"] is False
        assert torch.equal(m.get_parameter(n), ref.get_parameter(n)), n
    assert not m.pe.table.requires_grad
    left = {x.name: x.reason for x in man.left_alone}
    assert "random draws" in left["noisy"] and "exp" in left["noisy"], left
    assert "uninitialized" in left["unset"], left
    for n in ("noisy", "unset"):  # kept: the model's own values, not a substitute
        assert torch.equal(m.get_parameter(n).view(torch.uint8), before[n].view(torch.uint8)), n
    assert m.q.std().item() == pytest.approx(0.02, rel=5 / math.sqrt(2 * 32) + 0.05)


def test_own_on_hugging_face_models_equals_hf_with_or_without_factory():
    transformers = pytest.importorskip("transformers")
    from transformers import GPT2Config, GPT2LMHeadModel, MambaConfig, MambaModel

    transformers.logging.set_verbosity_error()
    makers = [lambda: GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16)),
              lambda: MambaModel(MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=50, state_size=4, expand=2))]
    for make in makers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = make()
        hf = plan(m, "hf", seed=0)
        for man in (plan(m, "own", seed=0), plan(m, "own", factory=make, seed=0)):
            assert [x.name for x in man.left_alone if x.kind == "parameter"] == []
            for e in hf.entries:
                o = man[e.name]
                assert (o.init, o.params.get("std"), o.params.get("a"), o.params.get("random")) == \
                    (e.init, e.params.get("std"), e.params.get("a"), e.params.get("random")), e.name


def test_own_errors_name_every_offender_and_leave_the_model_unchanged():
    m = nn.Sequential(nn.Linear(4, 5), nn.Linear(5, 3))
    before = _bits(m)
    with pytest.raises(ValueError, match=r"needs factory=.*Sequential"):
        init_module(m, "own", seed=0)
    with pytest.raises(TypeError, match="factory must be a callable"):
        init_module(m, "own", factory=3, seed=0)
    with pytest.raises(TypeError, match="must return an nn.Module"):
        init_module(m, "own", factory=lambda: 3, seed=0)
    with pytest.raises(ValueError) as e:
        init_module(m, "own", factory=lambda: nn.Sequential(nn.Linear(4, 6)), seed=0)
    msg = str(e.value)
    for bad in ("0.weight (shape (5, 4)", "0.bias (shape (5,)", "1.weight (the factory", "1.bias (the factory"):
        assert bad in msg, msg
    with pytest.raises(RuntimeError, match="boom"):
        init_module(m, "own", factory=lambda: (_ for _ in ()).throw(RuntimeError("boom")), seed=0)
    after = _bits(m)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.nn.init.normal_.__module__ in ("torch.nn.init", "initlab.torch.fast_init")  # patching undone
    assert nn.Parameter.__new__ is nn.parameter.Parameter.__new__ and "__new__" in nn.Parameter.__dict__
    assert isinstance(nn.Parameter.__dict__["__new__"], staticmethod)  # put back as it was stored
    assert not any(k in torch.Tensor.__dict__ for k in ("normal_", "uniform_", "zero_", "fill_"))


def test_other_threads_keep_torchs_own_functions_while_recording():
    import threading

    written = {}

    def other():
        t = torch.zeros(1000)
        torch.nn.init.normal_(t)
        t.uniform_()
        written["t"] = t
        written["r"] = torch.randn(10)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            th = threading.Thread(target=other)
            th.start()
            th.join()

    _, man = init_module(Net(), "own", factory=Net, seed=0, return_manifest=True)
    assert man["lin.weight"].init == "uniform"
    assert written["t"].min() >= 0 and written["t"].max() <= 1 and written["t"].std() > 0.2  # really written
    assert written["r"].std() > 0


def test_a_factory_that_builds_on_meta_keeps_computed_values_and_says_why():
    def on_meta():
        with torch.device("meta"):
            return _Research()

    m = _Research()
    before = _bits(m)
    _, man = init_module(m, "own", factory=on_meta, seed=0, return_manifest=True)
    left = {x.name: x.reason for x in man.left_alone}
    assert "meta device" in left["pe.table"] and "meta device" in left["A_log"], left
    assert torch.equal(before["pe.table"], _bits(m)["pe.table"])
    assert man["q"].init == "normal"  # sampled fills are still replayed
