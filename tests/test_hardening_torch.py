"""Issue 9, items 2-4 for torch tensors: inference tensors, autograd version counters, aliased
(expanded) destinations. Every initializer behaves the same way; nothing is written on error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import initlab  # noqa: E402

# (name, shape, call): every in-place initializer that takes a tensor.
CALLS = [
    ("uniform_", (6, 4), lambda t: initlab.uniform_(t, -1, 1, seed=3)),
    ("normal_", (6, 4), lambda t: initlab.normal_(t, seed=3)),
    ("trunc_normal_", (6, 4), lambda t: initlab.trunc_normal_(t, seed=3)),
    ("constant_", (6, 4), lambda t: initlab.constant_(t, 0.5)),
    ("zeros_", (6, 4), lambda t: initlab.zeros_(t)),
    ("ones_", (6, 4), lambda t: initlab.ones_(t)),
    ("eye_", (6, 4), lambda t: initlab.eye_(t)),
    ("dirac_", (4, 2, 3), lambda t: initlab.dirac_(t)),
    ("xavier_uniform_", (6, 4), lambda t: initlab.xavier_uniform_(t, seed=3)),
    ("xavier_normal_", (6, 4), lambda t: initlab.xavier_normal_(t, seed=3)),
    ("kaiming_uniform_", (6, 4), lambda t: initlab.kaiming_uniform_(t, seed=3)),
    ("kaiming_normal_", (6, 4), lambda t: initlab.kaiming_normal_(t, seed=3)),
    ("lecun_uniform_", (6, 4), lambda t: initlab.lecun_uniform_(t, seed=3)),
    ("lecun_normal_", (6, 4), lambda t: initlab.lecun_normal_(t, seed=3)),
    ("variance_scaling_", (6, 4), lambda t: initlab.variance_scaling_(t, seed=3)),
    ("sparse_", (6, 4), lambda t: initlab.sparse_(t, 0.5, seed=3)),
    ("zero_init_", (6, 4), lambda t: initlab.zero_init_(t)),
    ("orthogonal_", (6, 4), lambda t: initlab.orthogonal_(t, seed=3)),
    ("delta_orthogonal_", (4, 2, 3), lambda t: initlab.delta_orthogonal_(t, seed=3)),
]
IDS = [c[0] for c in CALLS]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def _bytes(t) -> bytes:
    return t.detach().contiguous().view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("name,shape,call", CALLS, ids=IDS)
def test_inference_tensor_outside_inference_mode_is_refused_untouched(name, shape, call):
    with torch.inference_mode():
        t = torch.full(shape, 7.0)
    before = _bytes(t)
    with pytest.raises(ValueError, match="inference"):
        call(t)
    assert _bytes(t) == before


@pytest.mark.parametrize("name,shape,call", CALLS, ids=IDS)
def test_inference_tensor_inside_inference_mode_is_filled_like_a_normal_tensor(name, shape, call):
    ref = call(torch.full(shape, 7.0))
    with torch.inference_mode():
        t = torch.full(shape, 7.0)
        assert call(t) is t
    assert torch.equal(t, ref)


@pytest.mark.parametrize("name,shape,call", CALLS, ids=IDS)
def test_every_initializer_bumps_the_version_counter(name, shape, call):
    w = torch.rand(shape, requires_grad=True)
    loss = (w * w).sum()  # saves w for backward
    v0 = w._version
    with torch.no_grad():
        call(w)
    assert w._version > v0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name,shape,call", CALLS, ids=IDS)
def test_expanded_tensor_is_rejected_untouched(name, shape, call, dtype):
    base = torch.full((1,) + shape[1:], 3.0, dtype=dtype)
    t = base.expand(shape)  # every row aliases the same memory
    before = _bytes(base)
    with pytest.raises(ValueError, match="overlap"):
        call(t)
    assert _bytes(base) == before


@pytest.mark.parametrize("name,shape,call", CALLS, ids=IDS)
def test_overlapping_as_strided_tensor_is_rejected_untouched(name, shape, call):
    store = torch.full((64,), 3.0)
    t = store.as_strided(shape, (1,) * len(shape))  # neighbouring rows/cols share elements
    before = _bytes(store)
    with pytest.raises(ValueError, match="overlap"):
        call(t)
    assert _bytes(store) == before


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_nested_tensor_is_a_value_error():
    nt = torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)])
    with pytest.raises(ValueError, match="nested"):
        initlab.normal_(nt, seed=1)
