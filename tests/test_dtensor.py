"""initlab.torch._dtensor.local_shard: each rank fills its DTensor shard alone; the gathered
tensor equals the single-process fill bit for bit (gloo on CPU, 2 and 4 processes)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)
pytest.importorskip("torch.distributed.tensor")

from torch.distributed.tensor import Partial, Replicate, Shard  # noqa: E402

import initlab  # noqa: E402
from initlab.torch._dtensor import check_placements, local_shard  # noqa: E402

from _ranks import run_ranks  # noqa: E402

SEED = 31


def _reference(shape, fill):
    return fill(torch.empty(shape), None, None)


def _fills():
    # Each takes (tensor, global_shape, offset); fans come from the global shape.
    return {
        "normal": lambda t, g, o: initlab.normal_(t, 0.5, 2.0, seed=SEED, global_shape=g, offset=o),
        "kaiming_uniform": lambda t, g, o: initlab.kaiming_uniform_(t, 5 ** 0.5, seed=SEED, global_shape=g, offset=o),
        "trunc_normal": lambda t, g, o: initlab.trunc_normal_(t, std=0.02, seed=SEED, global_shape=g, offset=o),
    }


def _check(mesh, shape, placements, fill_name, rank, as_parameter=False):
    from torch.distributed.tensor import distribute_tensor

    fill = _fills()[fill_name]
    dt = distribute_tensor(torch.zeros(shape), mesh, placements)
    if as_parameter:
        dt = torch.nn.Parameter(dt)
    got = local_shard(dt, name="w")
    assert got is not None
    local, g, o = got
    assert g == tuple(shape) and len(o) == len(shape)
    if local.numel():
        fill(local, g, o)
    if not mesh._is_current_rank_part_of_mesh():
        return tuple(local.shape), o  # a rank outside the mesh holds nothing and gathers nothing
    full = dt.full_tensor()
    ref = _reference(shape, fill)
    assert torch.equal(full.view(torch.int32), ref.view(torch.int32)), (
        f"rank {rank}: {shape} {placements} {fill_name}: gathered shard fill differs from the single-process fill")
    if as_parameter:
        assert dt.requires_grad
    return tuple(local.shape), o


class _Block(torch.nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.ln = torch.nn.LayerNorm(d)
        self.q, self.o = torch.nn.Linear(d, d), torch.nn.Linear(d, d)
        self.up, self.down = torch.nn.Linear(d, h), torch.nn.Linear(h, d)

    def forward(self, x):
        x = x + self.o(torch.relu(self.q(self.ln(x))))
        return x + self.down(torch.relu(self.up(x)))


class _Tiny(torch.nn.Module):
    """A small transformer-shaped model; odd sizes so that every shard split is uneven."""

    def __init__(self, vocab=37, d=10, h=23, n=2):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(_Block(d, h) for _ in range(n))
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, x):
        x = self.emb(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def _whole_model(mode, world, rank):
    """Shard _Tiny (FSDP2, tensor parallel, or both on a 2-D mesh), init_module it, gather every
    parameter and compare with the single-process init_module; every rank's manifest agrees."""
    import copy

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    import initlab.torch as itorch

    torch.manual_seed(0)
    ref = _Tiny()
    model = copy.deepcopy(ref)
    itorch.init_module(ref, "torch_default", seed=SEED)
    tp_plan = {"q": ColwiseParallel(), "o": RowwiseParallel(), "up": ColwiseParallel(), "down": RowwiseParallel()}
    if mode == "fsdp+tp":
        mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("dp", "tp"))
        for b in model.blocks:
            parallelize_module(b, mesh["tp"], tp_plan)
            fully_shard(b, mesh=mesh["dp"])
        fully_shard(model, mesh=mesh["dp"])
    else:
        mesh = init_device_mesh("cpu", (world,))
        if mode == "fsdp":
            for b in model.blocks:
                fully_shard(b, mesh=mesh)
            fully_shard(model, mesh=mesh)
        else:
            for b in model.blocks:
                parallelize_module(b, mesh, tp_plan)
    sharded = [p for p in model.named_parameters() if local_shard(p[1]) is not None]
    assert sharded, "nothing was sharded"
    if mode == "fsdp+tp":  # FSDP2 over TP leaves strided shards whose local data is still one block
        assert any(type(pl).__name__ == "_StridedShard" for _, p in sharded for pl in p.placements)
    _, manifest = itorch.init_module(model, "torch_default", seed=SEED, return_manifest=True)
    bad = []
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        full = p.full_tensor() if local_shard(p) is not None else p.detach()
        if not torch.equal(full.view(torch.int32), q.detach().view(torch.int32)):
            bad.append(name)
    assert not bad, f"rank {rank} {mode}: gathered parameters differ from the single-process init: {bad}"
    mine = str(manifest.to_dict())
    everyone = [None] * world
    dist.all_gather_object(everyone, mine)
    assert all(m == mine for m in everyone), f"{mode}: the ranks' manifests differ"


def _worker(rank, world, cases):
    import torch.distributed as dist
    from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

    torch.set_num_threads(1)
    seen = {}
    for mesh_shape, shape, placements, fill_name, as_param in cases:
        mesh = init_device_mesh("cpu", mesh_shape) if mesh_shape != "sub" else DeviceMesh("cpu", [0, 1])
        seen[(str(mesh_shape), shape, str(placements))] = _check(mesh, shape, placements, fill_name, rank,
                                                                  as_param)
    for mode in (["fsdp", "tp"] if world == 2 else ["fsdp", "fsdp+tp"]):
        _whole_model(mode, world, rank)
    if world == 4:
        from torch.distributed.tensor import DTensor
        from torch.distributed.tensor.placement_types import _StridedShard

        # (The contiguous strided case, FSDP2 over tensor parallel, is the "fsdp+tp" model above.)
        # Strided the other way round interleaves every rank's rows: refused, naming the dimension.
        mesh = init_device_mesh("cpu", (2, 2))
        dt = DTensor.from_local(torch.zeros(2, 3), mesh, (Shard(0), _StridedShard(0, split_factor=2)),
                                shape=torch.Size((8, 3)), stride=(3, 1))
        try:
            local_shard(dt, name="w.interleaved")
        except ValueError as e:
            assert "w.interleaved" in str(e) and "dim 0" in str(e), str(e)
        else:
            raise AssertionError("an interleaved strided shard was accepted")
        # Uneven 1-D: 5 rows over 4 ranks -> 2, 2, 1, 0 rows (torch's chunking); the empty shard is fine.
        rows = [seen[("(4,)", (5, 3), str((Shard(0),)))][0][0]]
        gathered = [None] * world
        dist.all_gather_object(gathered, rows[0])
        assert gathered == [2, 2, 1, 0], gathered
        # A rank outside a 2-rank sub-mesh holds nothing.
        local, o = seen[("sub", (6, 4), str((Shard(0),)))]
        assert (local == (3, 4)) if rank < 2 else (local == (0, 0) and o == (0, 0)), (rank, local, o)


CASES_2 = [
    ((2,), (7, 5), (Shard(0),), "normal", False),
    ((2,), (6, 9), (Shard(1),), "kaiming_uniform", True),
    ((2,), (4, 3), (Replicate(),), "normal", False),
    ((2,), (3, 2, 5), (Shard(2),), "trunc_normal", True),
    ((2,), (1, 8), (Shard(0),), "normal", False),  # one row over two ranks: one rank is empty
]

CASES_4 = [
    ((4,), (5, 3), (Shard(0),), "normal", False),
    ((4,), (10, 7), (Shard(1),), "kaiming_uniform", True),
    ((2, 2), (9, 7), (Shard(0), Shard(1)), "normal", True),
    ((2, 2), (9, 7), (Shard(1), Shard(0)), "kaiming_uniform", False),
    ((2, 2), (11, 6), (Replicate(), Shard(0)), "trunc_normal", False),
    ((2, 2), (13, 4), (Shard(0), Shard(0)), "normal", False),  # both mesh dims split dim 0
    ((2, 2), (5, 6), (Shard(1), Replicate()), "normal", True),
    ("sub", (6, 4), (Shard(0),), "normal", False),
]


@pytest.fixture(scope="module")
def start_method():
    # Each rank is a fresh process; a forkserver that has imported torch and initlab once (and
    # run nothing multi-threaded) forks them, instead of every rank importing torch again.
    import multiprocessing

    multiprocessing.set_forkserver_preload(["torch", "torch.distributed.tensor", "initlab",
                                            "initlab.torch._dtensor", "_ranks"])
    return "forkserver"


@pytest.mark.parametrize("world,cases", [(2, CASES_2), (4, CASES_4)], ids=["2-ranks", "4-ranks"])
def test_shards_filled_alone_equal_single_process_fill(world, cases, start_method):
    run_ranks(_worker, world, (cases,), start_method=start_method)


def test_plain_tensor_is_none():
    assert local_shard(torch.empty(3, 4)) is None
    assert local_shard(torch.nn.Parameter(torch.empty(3))) is None


def test_partial_placements_are_refused_listing_every_offender():
    from torch.distributed.tensor.placement_types import _StridedShard

    check_placements((Shard(0), Replicate(), Shard(1), _StridedShard(0, split_factor=2)))
    with pytest.raises(ValueError) as e:
        check_placements((Partial(), Shard(0), Partial("max"), _StridedShard(1, split_factor=2)), name="blocks.0.w")
    msg = str(e.value)
    assert "blocks.0.w" in msg and "mesh dim 0" in msg and "mesh dim 2" in msg
    assert "mesh dim 1" not in msg and "mesh dim 3" not in msg and "summands" in msg
