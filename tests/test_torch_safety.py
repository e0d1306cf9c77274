"""The model layer leaves a model as it was when a call raises (issue 19, items 6-8).

* item 6: ``materialize`` checks every buffer's source and runs ``factory`` before allocating,
  and puts the model back on the meta device (its own Parameter objects) if anything later fails;
* item 7: ``init_module`` checks every fill (shape, DTensor block) before the first write, and a
  user rule's function that raises leaves every parameter byte for byte as it was;
* item 8: a model that contains itself is a clear ValueError (not a RecursionError); bool/int
  parameters can be kept (``unknown="keep"`` or a ``"keep"`` rule) and are refused clearly otherwise.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from initlab.torch import Rule, init_module, materialize, plan  # noqa: E402

from _ranks import run_ranks  # noqa: E402


def _bytes(model: nn.Module) -> dict[str, bytes]:
    return {n: p.detach().contiguous().view(torch.uint8).numpy().tobytes() if p.device.type != "meta" else b"meta"
            for n, p in model.named_parameters()}


def _raises_after_writing(t, g):
    t.fill_(3.0)  # half-done work of the user's function
    raise RuntimeError("user rule failed")


# ---- item 7: init_module -----------------------------------------------------------------------


def test_item7_user_rule_that_raises_leaves_every_parameter_byte_identical():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.Linear(4, 3))
    before = _bytes(m)
    ids = [id(p) for p in m.parameters()]
    # the failing rule sits in the middle of the model: parameters before and after it exist
    with pytest.raises(RuntimeError, match="user rule failed"):
        init_module(m, "kaiming_normal", rules=[Rule(_raises_after_writing, name="2.weight")], seed=0)
    assert _bytes(m) == before
    assert [id(p) for p in m.parameters()] == ids
    # two callables, the second raises: the first one's writes are undone too
    ok = lambda t, g: t.fill_(7.0)  # noqa: E731
    with pytest.raises(RuntimeError, match="user rule failed"):
        init_module(m, "xavier_normal", rules=[Rule(ok, name="0.weight"), Rule(_raises_after_writing, name="3.bias")],
                    seed=0)
    assert _bytes(m) == before


def test_item7_callables_and_recipe_fills_give_the_same_values_as_before():
    # callables now run first: values do not depend on the order (streams come from names)
    m1 = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
    m2 = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
    rule = Rule(lambda t, g: t.copy_(torch.from_numpy(g.normal(tuple(t.shape)))), name="0.weight")
    init_module(m1, "kaiming_normal", rules=[rule], seed=3)
    init_module(m2, "kaiming_normal", rules=[rule], seed=3)
    assert _bytes(m1) == _bytes(m2)
    ref = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4))
    init_module(ref, "kaiming_normal", seed=3)
    assert torch.equal(m1[1].weight, ref[1].weight) and torch.equal(m1[0].bias, ref[0].bias)


def test_item7_shape_errors_found_in_the_plan_before_any_write():
    # orthogonal on every parameter: the weights could be written, the 1-D biases cannot; before
    # the fix 0.weight was written, then 0.bias raised in the write loop
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    before = _bytes(m)
    with pytest.raises(ValueError, match=r"0\.bias.*2 or more dimensions"):
        init_module(m, [Rule("orthogonal")], seed=0)
    assert _bytes(m) == before
    with pytest.raises(ValueError, match=r"0\.bias"):
        plan(m, [Rule("orthogonal")], seed=0)  # the dry run reports it too


def _dtensor_worker(rank: int, world: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    import initlab
    from initlab.torch import Rule as R
    from initlab.torch import init_module as init

    mesh = init_device_mesh("cpu", (world,))
    m = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    m[1].weight = nn.Parameter(distribute_tensor(torch.zeros(4, 4), mesh, [Shard(0)]))
    w0 = m[0].weight.detach().clone()
    try:
        init(m, "torch_default", rules=[R("orthogonal", name="1.weight")], seed=0)
    except ValueError as e:
        assert "1.weight" in str(e) and "whole matrix" in str(e), str(e)
    else:
        raise AssertionError("orthogonal on a Shard(0) block did not raise")
    assert torch.equal(m[0].weight, w0)  # planned before the DTensor, not written
    assert torch.equal(m[1].weight.to_local(), torch.zeros(2, 4))
    # a replicated DTensor holds the whole matrix: orthogonal works and equals the plain fill
    m[1].weight = nn.Parameter(distribute_tensor(torch.zeros(4, 4), mesh, [Replicate()]))
    init(m, "torch_default", rules=[R("orthogonal", name="1.weight")], seed=0)
    ref = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    init(ref, "torch_default", rules=[R("orthogonal", name="1.weight")], seed=0)
    assert torch.equal(m[1].weight.to_local(), ref[1].weight.detach())
    assert initlab is not None


def test_item7_orthogonal_on_dtensor_shards_refused_in_the_plan():
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    pytest.importorskip("torch.distributed.tensor")

    run_ranks(_dtensor_worker, 2)


# ---- item 6: materialize -----------------------------------------------------------------------


class _WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("freq", torch.arange(3.0))

    def forward(self, x):
        return self.lin(x) * self.freq


def _meta_state(model):
    return ([id(p) for p in model.parameters()], [p.device.type for p in model.parameters()],
            [b.device.type for b in model.buffers()])


def test_item6_buffer_without_factory_fails_before_allocation():
    with torch.device("meta"):
        m = _WithBuffer()
    state = _meta_state(m)
    with pytest.raises(ValueError, match="freq"):
        materialize(m, seed=0)
    assert _meta_state(m) == state  # still on meta, the same Parameter objects
    assert all(t.is_meta for t in list(m.parameters()) + list(m.buffers()))


def test_item6_factory_that_raises_leaves_the_model_on_meta():
    with torch.device("meta"):
        m = _WithBuffer()
    state = _meta_state(m)

    def factory():
        raise RuntimeError("factory failed")

    with pytest.raises(RuntimeError, match="factory failed"):
        materialize(m, seed=0, factory=factory)
    assert _meta_state(m) == state


def test_item6_failure_after_allocation_puts_the_model_back_on_meta():
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4))
    state = _meta_state(m)
    with pytest.raises(RuntimeError, match="user rule failed"):
        materialize(m, "kaiming_normal", seed=0, rules=[Rule(_raises_after_writing, name="2.bias")])
    assert _meta_state(m) == state
    assert all(t.is_meta for t in list(m.parameters()) + list(m.buffers()))
    # and the call can simply be repeated: same result as an eager model initialized alike
    materialize(m, "kaiming_normal", seed=0)
    eager = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 4))
    init_module(eager, "kaiming_normal", seed=0)
    assert all(torch.equal(a, b) for a, b in zip(m.parameters(), eager.parameters()))
    assert torch.equal(m[1].running_var, torch.ones(4))


def test_item6_tied_meta_model_restored_with_its_ties():
    with torch.device("meta"):
        m = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    m[1].weight = m[0].weight
    with pytest.raises(RuntimeError, match="user rule failed"):
        materialize(m, "torch_default", seed=0, rules=[Rule(_raises_after_writing, name="0.weight")])
    assert m[1].weight is m[0].weight and m[0].weight.is_meta


# ---- item 8: a model that contains itself, bool/int parameters -----------------------------------


class _SelfContaining(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
        self.body.add_module("back", self)  # registered as its own descendant

    def forward(self, x):
        return self.body[0](x)


@pytest.mark.parametrize("call", ["plan", "init_module", "materialize"])
def test_item8_model_that_contains_itself_is_a_clear_error(call):
    if call == "materialize":
        with torch.device("meta"):
            m = _SelfContaining()
    else:
        m = _SelfContaining()
    before = _bytes(m)
    fn = {"plan": plan, "init_module": init_module, "materialize": materialize}[call]
    with pytest.raises(ValueError, match=r"contains itself.*'body\.back'"):
        fn(m, "torch_default", seed=0)
    assert _bytes(m) == before


def test_item8_shared_submodule_is_not_a_cycle():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU(), lin)  # a DAG: the same module twice, no cycle
    man = plan(m, "kaiming_normal", seed=0)
    assert man.names() == ["0.weight", "0.bias"]


class _WithCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.steps = nn.Parameter(torch.tensor([1, 2], dtype=torch.int64), requires_grad=False)
        self.mask = nn.Parameter(torch.tensor([True, False]), requires_grad=False)


@pytest.mark.parametrize("unknown", ["keep", "skip"])
def test_item8_int_and_bool_parameters_kept(unknown):
    m = _WithCounter()
    before = _bytes(m)
    _, man = init_module(m, "kaiming_normal", seed=0, unknown=unknown, return_manifest=True)
    left = {x.name: x.reason for x in man.left_alone}
    assert "int64" in left["steps"] and "bool" in left["mask"]
    assert torch.equal(m.steps, torch.tensor([1, 2])) and torch.equal(m.mask, torch.tensor([True, False]))
    assert _bytes(m)["lin.weight"] != before["lin.weight"]  # the float parameters were written
    # a "keep" rule keeps them with unknown="error" as well
    init_module(m, "kaiming_normal", seed=0, rules=[Rule("keep", name=("steps", "mask"))])
    assert torch.equal(m.steps, torch.tensor([1, 2]))


def test_item8_int_parameter_refused_clearly_otherwise():
    m = _WithCounter()
    before = _bytes(m)
    with pytest.raises(ValueError, match=r"steps has dtype int64.*unknown='keep'") as e:
        init_module(m, "kaiming_normal", seed=0)
    assert "mask has dtype bool" in str(e.value)
    with pytest.raises(ValueError, match=r"steps has dtype int64 \(rule .* would fill it\)"):
        init_module(m, "kaiming_normal", seed=0, unknown="keep", rules=[Rule("normal", name="steps")])
    assert _bytes(m) == before


def test_fill_checked_per_dtype_before_any_write():
    # the same constant and shape on a float32 and a float16 layer: the float16 one overflows; the
    # plan's check tried each distinct fill once per dtype (it used to try it once, on float32)
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3).half())
    before = _bytes(m)
    with pytest.raises(ValueError, match=r"1\.weight: constant_: val=100000 overflows float16"):
        init_module(m, [Rule("constant", value=1e5)], seed=0)
    assert _bytes(m) == before
