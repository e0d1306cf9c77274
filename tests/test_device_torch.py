"""The torch layer on the device routes (issue 17): init_module, plan, materialize, fast_init,
LSUV and DTensor shards give the same bits when every fill is forced through a device route.

``INITLAB_DEVICE_BACKEND=staged`` sends even CPU tensors through the staged route (the core
fills a host buffer chunk by chunk, copied into the tensor), so these tests prove the device
code paths of the torch layer bit for bit without a GPU: each whole-model result is compared,
``torch.equal`` on every tensor of the state dict, with the default core route's.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import initlab  # noqa: E402
import initlab.torch as itorch  # noqa: E402

ENV = "INITLAB_DEVICE_BACKEND"


def _same(a: dict, b: dict) -> list[str]:
    """Names whose tensors differ in any bit (or are missing), dtype and device included."""
    bad = [k for k in a if k not in b]
    for k, v in b.items():
        w = a.get(k)
        if w is None or w.dtype != v.dtype or w.shape != v.shape or not torch.equal(w.cpu(), v.cpu()):
            bad.append(k)
    return bad


def _state(m: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in m.state_dict(keep_vars=True).items()}


def _triton_interpreted() -> bool:
    """Triton's kernels can run on CPU tensors here (in Triton's interpreter; tests/conftest.py
    sets TRITON_INTERPRET=1 before Triton is imported on machines without CUDA)."""
    import os

    try:
        from initlab.device import triton_available
    except ImportError:
        return False
    return os.environ.get("TRITON_INTERPRET") == "1" and triton_available()


ROUTES = ["staged"] + (["triton"] if _triton_interpreted() else [])


def _forced(monkeypatch, route: str = "staged") -> list:
    """Force ``route``; the returned list grows by one per random fill that route performs."""
    monkeypatch.setenv(ENV, route)
    calls: list = []
    backend = getattr(initlab, "device_backend", None)
    if backend is not None:  # the route really is taken (else these tests would prove nothing)
        assert backend(torch.empty(3)) == route
        from initlab.device import staged, triton_route

        mod = staged if route == "staged" else triton_route
        real = mod.fill

        def counted(*a, **k):
            calls.append(a[0].shape)
            return real(*a, **k)

        monkeypatch.setattr(mod, "fill", counted)
    return calls


class Net(nn.Module):
    """Every kind of parameter the recipes know: conv, linear, norms (buffers), an embedding
    with a padding row, attention (in_proj blocks), a recurrent cell, a tied output head."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.emb = nn.Embedding(37, 16, padding_idx=3, dtype=dtype)
        self.conv = nn.Conv1d(16, 16, 3, padding=1, dtype=dtype)
        self.bn = nn.BatchNorm1d(16, dtype=dtype)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True, dtype=dtype)
        self.rnn = nn.GRU(16, 8, batch_first=True, dtype=dtype)
        self.ln = nn.LayerNorm(8, dtype=dtype)
        self.fc = nn.Linear(8, 16, dtype=dtype)
        self.head = nn.Linear(16, 37, bias=False, dtype=dtype)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        x = self.emb(ids)
        x = self.bn(self.conv(x.transpose(1, 2))).transpose(1, 2)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        x = self.fc(self.ln(self.rnn(x)[0]))
        return self.head(torch.relu(x))


RECIPES = [
    ("torch_default", {}),
    ("orthogonal", {}),
    ("trunc_normal", {"std": 0.02}),
    ("kaiming_uniform", {"nonlinearity": "relu"}),
    ("xavier_normal", {}),
]


def test_forced_route_is_named(monkeypatch):
    if not hasattr(initlab, "device_backend"):
        pytest.skip("initlab.device_backend is not available in this build")
    assert initlab.device_backend(torch.empty(2)) == "core"
    _forced(monkeypatch)


@pytest.mark.parametrize("recipe,opts", RECIPES, ids=[r for r, _ in RECIPES])
@pytest.mark.parametrize("route", ROUTES)
def test_init_module_forced_route_equals_core(monkeypatch, recipe, opts, route):
    torch.manual_seed(0)
    m = Net()
    ref = _state(itorch.init_module(Net(), recipe, seed=5, **opts))
    _, man = itorch.init_module(m, recipe, seed=5, return_manifest=True, **opts)
    assert not _same(ref, _state(m))  # the reference itself is reproducible
    torch.manual_seed(0)
    m = Net()
    calls = _forced(monkeypatch, route)
    _, man2 = itorch.init_module(m, recipe, seed=5, return_manifest=True, **opts)
    assert calls or recipe == "orthogonal" or not hasattr(initlab, "device_backend")  # samplers: staged route
    assert man2 == man and man2 == itorch.plan(m, recipe, seed=5, **opts)
    assert not _same(ref, _state(m)), _same(ref, _state(m))
    assert m.head.weight is m.emb.weight


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=["f64", "f16", "bf16"])
@pytest.mark.parametrize("route", ROUTES)
def test_init_module_forced_route_low_and_high_precision(monkeypatch, dtype, route):
    ref = _state(itorch.init_module(Net(dtype), "torch_default", seed=1))
    _forced(monkeypatch, route)
    m = itorch.init_module(Net(dtype), "torch_default", seed=1)
    assert not _same(ref, _state(m))


def test_init_module_only_and_rules_forced_route(monkeypatch):
    rules = [itorch.Rule(name="fc.weight", init="trunc_normal", std=0.5, a=-0.1, b=0.1)]
    ref = _state(itorch.init_module(Net(), "torch_default", seed=2, rules=rules, only=["fc", "attn"]))
    _forced(monkeypatch)
    m = itorch.init_module(Net(), "torch_default", seed=2, rules=rules, only=["fc", "attn"])
    got = _state(m)
    for k in ref:
        if k.startswith(("fc.", "attn.")):
            assert torch.equal(ref[k], got[k]), k


def test_errors_leave_the_model_untouched_on_the_forced_route(monkeypatch):
    _forced(monkeypatch)
    m = Net()
    before = _state(m)
    with pytest.raises(ValueError):
        itorch.init_module(m, "normal", std=-1.0, seed=0)
    with pytest.raises(ValueError):
        itorch.init_module(m, "trunc_normal", std=1.0, a=2.0, b=1.0, seed=0)
    with pytest.raises(TypeError):
        itorch.init_module(m, seed="abc")
    m.extra = nn.Parameter(torch.ones(2, 3))
    with pytest.raises(ValueError, match="extra"):
        itorch.init_module(m, "torch_default", seed=0)
    del m.extra
    assert not _same(before, _state(m))


def test_meta_parameters_still_refused():
    with torch.device("meta"):
        m = nn.Linear(3, 4)
    with pytest.raises(ValueError, match="meta device"):
        itorch.init_module(m, seed=0)
    assert itorch.plan(m, seed=0)["weight"].init == "uniform"  # the dry run works on meta


@pytest.mark.filterwarnings("ignore:LSUV.*did not converge in 0 iterations:RuntimeWarning")
@pytest.mark.parametrize("route", ROUTES)
def test_a_default_device_context_does_not_move_initlabs_scratch(monkeypatch, route):
    """Inside ``with torch.device(...)`` (the user's default device, e.g. "cuda"), the fills'
    host buffers must still be CPU tensors. The meta device stands in for the GPU here: a
    scratch buffer created without a device would land on meta and the fill would fail."""
    for recipe in ("torch_default", "orthogonal"):  # the samplers' chunk buffers; orthogonal's host copy
        monkeypatch.delenv(ENV, raising=False)
        ref = _state(itorch.init_module(Net(), recipe, seed=6))
        m = Net()
        _forced(monkeypatch, route)
        with torch.device("meta"):
            itorch.init_module(m, recipe, seed=6)
        assert not _same(ref, _state(m))

    def build():
        return nn.Sequential(nn.Linear(64, 96, device="cpu"), nn.Embedding(50, 96, padding_idx=0, device="cpu"))

    with itorch.fast_init(seed=4):
        ref = build()
    for defer in (True, False):  # deferred fills are written at the block's exit, still inside the context
        with torch.device("meta"), itorch.fast_init(seed=4, defer=defer) as f:
            m = build()
        assert {"kaiming_uniform_", "normal_"} <= {n for (n, how) in f.counts if how == "initlab"}, f.counts
        assert not _same(_state(ref), _state(m))
    x = torch.randn(32, 64, generator=torch.Generator().manual_seed(0))
    ref = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 8))
    m = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 8))
    m.load_state_dict(ref.state_dict())
    monkeypatch.delenv(ENV)
    initlab.lsuv(ref, x, seed=2, max_iter=0)
    _forced(monkeypatch, route)
    with torch.device("meta"):
        initlab.lsuv(m, x, seed=2, max_iter=0)
    assert not _same(_state(ref), _state(m))


# ---- materialize ---------------------------------------------------------------------------------


class WithBuffers(nn.Module):
    """Buffers computed at construction (a frequency table, running statistics) and a tie."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.conv = nn.Conv2d(6, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.out = nn.Linear(6, 11, bias=False)
        self.out.weight = self.emb.weight
        self.register_buffer("freq", 1.0 / (10000 ** (torch.arange(0, 6, 2, dtype=torch.float32) / 6)))


@pytest.mark.parametrize("recipe", ["torch_default", "kaiming_normal"])
@pytest.mark.parametrize("route", ROUTES)
def test_materialize_forced_route_equals_core(monkeypatch, recipe, route):
    def build():
        with torch.device("meta"):
            return WithBuffers()

    ref = itorch.materialize(build(), recipe, seed=3, factory=WithBuffers)
    eager = itorch.init_module(WithBuffers(), recipe, seed=3)
    assert not _same(_state(eager), _state(ref))
    calls = _forced(monkeypatch, route)
    m, man = itorch.materialize(build(), recipe, seed=3, factory=WithBuffers, device=torch.device("cpu"),
                                return_manifest=True)
    assert not _same(_state(ref), _state(m)), _same(_state(ref), _state(m))
    assert m.out.weight is m.emb.weight
    assert calls or not hasattr(initlab, "device_backend")
    assert {x.name for x in man.left_alone if x.kind == "buffer"} >= {"freq", "bn.running_mean"}


def test_materialize_rejects_bad_devices_before_allocating():
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    bad = ["bogus", "meta", torch.device("meta"), "cuda:banana"]
    if not torch.cuda.is_available():
        bad += ["cuda", "cuda:0", 0]
    for dev in bad:
        with pytest.raises(ValueError) as e:
            itorch.materialize(m, seed=0, device=dev)
        assert repr(dev) in str(e.value) or str(dev) in str(e.value), (dev, str(e.value))
    with pytest.raises(TypeError, match="device"):
        itorch.materialize(m, seed=0, device=1.5)
    assert all(t.device.type == "meta" for t in [*m.parameters(), *m.buffers()])  # nothing allocated
    itorch.materialize(m, seed=0, device="cpu")
    assert all(t.device.type == "cpu" for t in [*m.parameters(), *m.buffers()])


def test_restore_buffers_copies_across_dtype_and_device():
    """The twin's buffers are built on the CPU; copy_ casts them into wherever the model's are."""
    from initlab.torch.buffers import restore_buffers

    with torch.device("meta"):
        m = WithBuffers()
    m.to_empty(device="cpu")
    m.freq = torch.empty(3, dtype=torch.float64)  # a buffer whose dtype differs from the twin's
    how = dict(restore_buffers(m, factory=WithBuffers))
    assert how["freq"] == "factory_twin" and how["bn.running_var"] == "factory_twin"
    assert torch.equal(m.freq, WithBuffers().freq.double())
    assert torch.equal(m.bn.running_var, torch.ones(6)) and int(m.bn.num_batches_tracked) == 0


# ---- fast_init -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
def test_fast_init_forced_route_equals_core(monkeypatch, route):
    def build():
        return nn.Sequential(nn.Linear(64, 96), nn.LayerNorm(96), nn.Embedding(50, 96, padding_idx=0),
                             nn.Conv2d(3, 8, 3), nn.LSTM(8, 8))

    for defer in (True, False):
        monkeypatch.delenv(ENV, raising=False)
        with itorch.fast_init(seed=4, defer=defer) as f:
            ref = build()
        ref_counts = dict(f.counts)
        assert sum(v for (_, how), v in f.counts.items() if how == "initlab") > 0
        calls = _forced(monkeypatch, route)
        with itorch.fast_init(seed=4, defer=defer) as f:
            m = build()
        assert dict(f.counts) == ref_counts
        assert calls or not hasattr(initlab, "device_backend")
        assert not _same(_state(ref), _state(m)), (defer, _same(_state(ref), _state(m)))


def test_fast_init_meta_tensors_go_to_torch():
    with itorch.fast_init(seed=0) as f, torch.device("meta"):
        m = nn.Linear(8, 8)
    assert m.weight.device.type == "meta"
    assert not any(how == "initlab" for (_, how) in f.counts)


# ---- LSUV and analyze ----------------------------------------------------------------------------


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5))


@pytest.mark.parametrize("route", ROUTES)
def test_lsuv_forced_route_equals_core(monkeypatch, route):
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(1))
    ref = _mlp()
    rep = initlab.lsuv(ref, x, seed=7)
    m = _mlp()
    _forced(monkeypatch, route)
    rep2 = initlab.lsuv(m, x, seed=7)
    assert not _same(_state(ref), _state(m))
    assert [r.scale for r in rep.layers] == [r.scale for r in rep2.layers]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_lsuv_weight_list_forced_route_equals_core(monkeypatch, route, dtype):
    """The framework-neutral front end (a list of torch weights + forward) on device tensors:
    the pre-init, the rescaling and the bias shift reach the tensors, the same bits as on the core."""
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)

    def setup():
        g = torch.Generator().manual_seed(0)
        ws = [torch.randn(16, 12, generator=g).to(dtype), torch.randn(4, 16, generator=g).to(dtype)]
        bs = [torch.randn(16, generator=g).to(dtype), torch.randn(4, generator=g).to(dtype)]
        return ws, bs

    def forward(ws, bs):
        def f(b):
            h = b @ ws[0].double().T + bs[0].double()
            return [h, torch.tanh(h) @ ws[1].double().T + bs[1].double()]
        return f

    ws, bs = setup()
    rep = initlab.lsuv(ws, x, forward=forward(ws, bs), biases=bs, seed=3, center=True)
    ws2, bs2 = setup()
    ids = [id(t) for t in ws2 + bs2]
    _forced(monkeypatch, route)
    rep2 = initlab.lsuv(ws2, x, forward=forward(ws2, bs2), biases=bs2, seed=3, center=True)
    assert [id(t) for t in ws2 + bs2] == ids
    for a, b in zip(ws + bs, ws2 + bs2):
        assert torch.equal(a, b)
    assert [r.scale for r in rep.layers] == [r.scale for r in rep2.layers]
    assert all(r.converged for r in rep2.layers)


def test_lsuv_mha_in_projection_forced_route(monkeypatch):
    """The in-projection's q/k/v blocks are views of one parameter: written in place."""

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(8, 16)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x):
            h = self.inp(x)
            return self.attn(h, h, h, need_weights=False)[0]

    x = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    ref = Attn()
    initlab.lsuv(ref, x, seed=1)
    torch.manual_seed(0)
    m = Attn()
    _forced(monkeypatch)
    initlab.lsuv(m, x, seed=1)
    assert not _same(_state(ref), _state(m))


def test_lsuv_error_restores_weights_on_forced_route(monkeypatch):
    _forced(monkeypatch)
    m = _mlp()
    before = _state(m)
    with pytest.raises(ValueError, match="does not depend on its weights"):
        initlab.lsuv(m, torch.zeros(8, 20), seed=0, center=False)  # zero input: weights contribute nothing
    assert not _same(before, _state(m))


def test_moments_of_a_tensor_match_the_host_statistics():
    from initlab.lsuv import _moments

    t = torch.randn(1000, dtype=torch.float32, generator=torch.Generator().manual_seed(3)) * 3 + 1
    m = _moments(t)
    d = t.double()
    assert m.count == 1000 and m.nonfinite == 0
    assert m.mean == pytest.approx(float(d.mean()), rel=1e-12)
    assert m.var == pytest.approx(float(d.var(unbiased=False)), rel=1e-12)


def test_analyze_forced_route_leaves_model_in_place(monkeypatch):
    _forced(monkeypatch)
    m = itorch.init_module(_mlp(), "kaiming_normal", seed=0, nonlinearity="relu")
    before = _state(m)
    tr = itorch.analyze(m, torch.randn(16, 20, generator=torch.Generator().manual_seed(0)))
    assert len(tr.layers) == 3 and tr.layers[0].gain is not None
    assert not _same(before, _state(m))
    assert all(p.device.type == "cpu" for p in m.parameters())


# ---- DTensor shards (gloo, one process) ----------------------------------------------------------


@pytest.fixture
def world1(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    pytest.importorskip("torch.distributed.tensor")
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{tmp_path / 'pg'}")
    try:
        yield dist
    finally:
        dist.destroy_process_group()


class _Block(nn.Module):
    def __init__(self, d=10, h=23):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.q, self.o = nn.Linear(d, d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, h), nn.Linear(h, d)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(37, 10)
        self.blocks = nn.ModuleList(_Block() for _ in range(2))
        self.head = nn.Linear(10, 37, bias=False)


@pytest.mark.parametrize("mode", ["fsdp", "tp"])
@pytest.mark.parametrize("route", ROUTES)
def test_meta_fully_shard_to_empty_init_module_forced_route(monkeypatch, world1, mode, route):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    ref = itorch.init_module(_Tiny(), "torch_default", seed=9)
    with torch.device("meta"):
        model = _Tiny()
    mesh = init_device_mesh("cpu", (1,))
    if mode == "fsdp":
        for b in model.blocks:
            fully_shard(b, mesh=mesh)
        fully_shard(model, mesh=mesh)
    else:
        plan = {"q": ColwiseParallel(), "o": RowwiseParallel(), "up": ColwiseParallel(), "down": RowwiseParallel()}
        for b in model.blocks:
            parallelize_module(b, mesh, plan)
    model.to_empty(device="cpu")
    assert any(isinstance(p, DTensor) for p in model.parameters())
    calls = _forced(monkeypatch, route)
    _, man = itorch.init_module(model, "torch_default", seed=9, return_manifest=True)
    assert calls or not hasattr(initlab, "device_backend")  # the local shards took the staged route
    assert man == itorch.plan(ref, "torch_default", seed=9)
    bad = []
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        full = p.full_tensor() if isinstance(p, DTensor) else p.detach()
        if not torch.equal(full, q.detach()):
            bad.append(name)
    assert not bad, bad


def test_dtensor_bad_placements_fail_before_any_write(world1):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial

    mesh = init_device_mesh("cpu", (1,))
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    m[1].weight = nn.Parameter(DTensor.from_local(torch.zeros(4, 4), mesh, [Partial()]))
    before = m[0].weight.detach().clone()
    with pytest.raises(ValueError, match="1.weight"):
        itorch.init_module(m, "torch_default", seed=0)
    assert torch.equal(m[0].weight, before)  # the plain parameter planned first was not written
