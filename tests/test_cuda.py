"""initlab on a CUDA GPU (issue 17): every fill of a CUDA tensor holds the bits of the CPU fill
with the same arguments — whole tensors, windows (``global_shape``/``offset``), strided views,
every dtype — and the torch layer (init_module, materialize, fast_init, LSUV, analyze, DTensor
shards) gives on the GPU exactly what it gives on the CPU, without moving the user's model.

Skipped as a whole where torch has no CUDA device; the device code paths themselves are also
proved without a GPU by tests/test_device_torch.py (forced staged route).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available())")

from torch import nn  # noqa: E402

import initlab  # noqa: E402
import initlab.torch as itorch  # noqa: E402

DEV = "cuda"
SEED = 123
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]
_INT = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16, torch.bfloat16: torch.int16}

GSHAPE = (67, 45)  # 3015 elements: partial super-blocks and chunks at both ends
WINDOW = ((13, 7), (27, 20))  # offset, local shape: rows and columns cut, so the window is not one run

# name -> fill(t, **window_kwargs); a sampler without windows takes none.
SAMPLERS = {
    "uniform": lambda t, **w: initlab.uniform_(t, -2.0, 3.0, seed=SEED, **w),
    "normal": lambda t, **w: initlab.normal_(t, 0.5, 2.0, seed=SEED, **w),
    "trunc_normal": lambda t, **w: initlab.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0, seed=SEED, **w),
    "trunc_normal_far_tail": lambda t, **w: initlab.trunc_normal_(t, 0.0, 1.0, 5.0, 6.0, seed=SEED, **w),
    "trunc_normal_one_sided": lambda t, **w: initlab.trunc_normal_(t, 0.1, 0.02, -0.5, 0.12, seed=SEED, **w),
    "xavier_uniform": lambda t, **w: initlab.xavier_uniform_(t, 1.5, seed=SEED, **w),
    "xavier_normal": lambda t, **w: initlab.xavier_normal_(t, seed=SEED, **w),
    "kaiming_uniform": lambda t, **w: initlab.kaiming_uniform_(t, 5 ** 0.5, seed=SEED, **w),
    "kaiming_normal": lambda t, **w: initlab.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", seed=SEED, **w),
    "sparse": lambda t, **w: initlab.sparse_(t, 0.3, 0.5, seed=SEED, **w),
    "orthogonal": lambda t: initlab.orthogonal_(t, 1.3, seed=SEED),
}
NO_WINDOW = {"orthogonal"}
LAYOUTS = ["whole", "window", "transposed"]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().view(_INT[t.dtype])


def _empty(layout: str, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, dict]:
    if layout == "whole":
        return torch.empty(GSHAPE, dtype=dtype, device=device), {}
    if layout == "window":
        off, shape = WINDOW
        return torch.empty(shape, dtype=dtype, device=device), {"global_shape": GSHAPE, "offset": off}
    return torch.empty(GSHAPE[::-1], dtype=dtype, device=device).t(), {}  # strided (column-major) view


CASES = [(s, lay) for s in SAMPLERS for lay in LAYOUTS if not (s in NO_WINDOW and lay == "window")]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("sampler,layout", CASES, ids=[f"{s}-{lay}" for s, lay in CASES])
def test_device_fill_equals_cpu_fill(sampler, layout, dtype):
    fill = SAMPLERS[sampler]
    cpu, kw = _empty(layout, dtype, "cpu")
    gpu, _ = _empty(layout, dtype, DEV)
    fill(cpu, **kw)
    out = fill(gpu, **kw)
    assert out is gpu and gpu.device.type == "cuda" and gpu.stride() == cpu.stride()
    assert torch.equal(_bits(gpu), _bits(cpu)), f"{sampler} {layout} {dtype}: the CUDA fill differs from the CPU fill"
    if layout == "window":  # and the window is that block of the whole fill
        whole = torch.empty(GSHAPE, dtype=dtype)
        fill(whole)
        (r, c), (h, w) = WINDOW
        assert torch.equal(_bits(gpu), _bits(whole[r:r + h, c:c + w]))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_deterministic_fills_on_the_device(dtype):
    for fill, shape in ((initlab.eye_, (7, 5)), (lambda t: initlab.constant_(t, 0.1), (7, 5)),
                        (initlab.dirac_, (6, 4, 3))):
        cpu, gpu = torch.empty(shape, dtype=dtype), torch.empty(shape, dtype=dtype, device=DEV)
        fill(cpu)
        fill(gpu)
        assert torch.equal(_bits(gpu), _bits(cpu))


def test_device_fill_errors_leave_the_tensor_untouched():
    t = torch.full((8, 8), 7.0, device=DEV)
    with pytest.raises(ValueError):
        initlab.normal_(t, 0.0, -1.0, seed=0)
    with pytest.raises(ValueError):
        initlab.trunc_normal_(t, 0.0, 1.0, 2.0, 1.0, seed=0)
    assert torch.all(t == 7.0)


# ---- the torch layer -----------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.emb = nn.Embedding(37, 16, padding_idx=3, dtype=dtype)
        self.conv = nn.Conv1d(16, 16, 3, padding=1, dtype=dtype)
        self.bn = nn.BatchNorm1d(16, dtype=dtype)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True, dtype=dtype)
        self.rnn = nn.GRU(16, 8, batch_first=True, dtype=dtype)
        self.fc = nn.Linear(8, 16, dtype=dtype)
        self.head = nn.Linear(16, 37, bias=False, dtype=dtype)
        self.head.weight = self.emb.weight

    def forward(self, ids):
        x = self.emb(ids)
        x = self.bn(self.conv(x.transpose(1, 2))).transpose(1, 2)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return self.head(torch.relu(self.fc(self.rnn(x)[0])))


def _differs(a: nn.Module, b: nn.Module) -> list[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return [k for k in sa if sa[k].dtype != sb[k].dtype or not torch.equal(sa[k].cpu(), sb[k].cpu())]


@pytest.mark.parametrize("recipe", ["torch_default", "orthogonal", "trunc_normal"])
def test_init_module_on_a_cuda_model(recipe):
    opts = {"std": 0.02} if recipe == "trunc_normal" else {}
    ref = itorch.init_module(Net(), recipe, seed=5, **opts)
    m = Net().to(DEV)
    params = {k: p for k, p in m.named_parameters()}
    itorch.init_module(m, recipe, seed=5, **opts)
    assert all(p.device.type == "cuda" and params[k] is p for k, p in m.named_parameters())  # in place, not moved
    assert m.head.weight is m.emb.weight
    assert not _differs(ref, m), _differs(ref, m)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_init_module_low_precision_cuda_model(dtype):
    ref = itorch.init_module(Net(dtype), "torch_default", seed=1)
    m = itorch.init_module(Net(dtype).to(DEV), "torch_default", seed=1)
    assert not _differs(ref, m)


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 6)
        self.conv = nn.Conv2d(6, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.out = nn.Linear(6, 11, bias=False)
        self.out.weight = self.emb.weight
        self.register_buffer("freq", 1.0 / (10000 ** (torch.arange(0, 6, 2, dtype=torch.float32) / 6)))


def test_materialize_on_cuda_equals_cpu_materialize():
    def meta():
        with torch.device("meta"):
            return WithBuffers()

    ref = itorch.materialize(meta(), "torch_default", seed=3, factory=WithBuffers)
    m = itorch.materialize(meta(), "torch_default", seed=3, factory=WithBuffers, device=DEV)
    assert all(t.device.type == "cuda" for t in [*m.parameters(), *m.buffers()])
    assert m.out.weight is m.emb.weight
    assert not _differs(ref, m), _differs(ref, m)


def test_materialize_hf_on_cuda_equals_cpu_materialize():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=32, bos_token_id=0,
                                  eos_token_id=0)

    def meta():
        with torch.device("meta"):
            return transformers.GPT2LMHeadModel(cfg)

    ref = itorch.materialize(meta(), "hf", seed=11)
    m = itorch.materialize(meta(), "hf", seed=11, device="cuda:0")
    assert all(t.device.type == "cuda" for t in [*m.parameters(), *m.buffers()])
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight
    assert not _differs(ref, m), _differs(ref, m)


def test_fast_init_under_a_cuda_default_device():
    def build():
        return nn.Sequential(nn.Linear(64, 96), nn.LayerNorm(96), nn.Embedding(50, 96, padding_idx=0),
                             nn.Conv2d(3, 8, 3))

    with itorch.fast_init(seed=4):
        ref = build()
    with itorch.fast_init(seed=4) as f, torch.device(DEV):
        m = build()
    assert all(p.device.type == "cuda" for p in m.parameters())
    served = {n for (n, how) in f.counts if how == "initlab"}
    assert {"kaiming_uniform_", "uniform_", "normal_"} <= served, f.counts
    assert not _differs(ref, m), _differs(ref, m)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5))


@pytest.mark.filterwarnings("ignore:LSUV.*did not converge in 0 iterations:RuntimeWarning")
def test_lsuv_on_a_cuda_model():
    x = torch.randn(64, 20, generator=torch.Generator().manual_seed(1))
    # max_iter=0: only the orthonormal pre-init, which must be the CPU's bits
    ref = _mlp()
    initlab.lsuv(ref, x, seed=7, max_iter=0)
    m = _mlp().to(DEV)
    params = list(m.parameters())
    initlab.lsuv(m, x.to(DEV), seed=7, max_iter=0)
    assert all(p.device.type == "cuda" and p is q for p, q in zip(m.parameters(), params))
    assert not _differs(ref, m)
    rep = initlab.lsuv(_mlp().to(DEV), x.to(DEV), seed=7, tol=0.05, max_iter=20)
    assert all(r.converged and abs(r.var_after - 1.0) < 0.05 for r in rep.layers), rep.table()


def test_analyze_on_a_cuda_model():
    m = itorch.init_module(_mlp().to(DEV), "kaiming_normal", seed=0, nonlinearity="relu")
    tr = itorch.analyze(m, torch.randn(16, 20, device=DEV))
    assert len(tr.layers) == 3 and all(p.device.type == "cuda" for p in m.parameters())
    assert all(p.grad is None for p in m.parameters())


def test_dtensor_on_a_one_gpu_mesh(tmp_path):
    dist = pytest.importorskip("torch.distributed")
    pytest.importorskip("torch.distributed.tensor")
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    torch.cuda.set_device(0)
    backend = "nccl" if dist.is_nccl_available() else "gloo"
    dist.init_process_group(backend, rank=0, world_size=1, init_method=f"file://{tmp_path / 'pg'}")
    try:
        def build():
            return nn.Sequential(nn.Embedding(37, 10), nn.LayerNorm(10), nn.Linear(10, 23), nn.Linear(23, 37))

        ref = itorch.init_module(build(), "torch_default", seed=9)
        with torch.device("meta"):
            model = build()
        mesh = init_device_mesh("cuda", (1,))
        for layer in model[2:]:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        model.to_empty(device=DEV)
        assert any(isinstance(p, DTensor) for p in model.parameters())
        itorch.init_module(model, "torch_default", seed=9)
        bad = []
        for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
            full = p.full_tensor() if isinstance(p, DTensor) else p.detach()
            if full.device.type != "cuda" or not torch.equal(full.cpu(), q.detach()):
                bad.append(name)
        assert not bad, bad
    finally:
        dist.destroy_process_group()
