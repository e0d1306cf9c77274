"""The device routes (issue 17) against the core, bit for bit, without a GPU.

* ``"triton"``: the Triton kernels run by Triton's interpreter (``TRITON_INTERPRET=1``) on CPU
  tensors, forced with ``INITLAB_DEVICE_BACKEND=triton``. Sizes are small for the interpreter:
  tensors of at most 3,000 elements per launch (windows of a (4, 3000) global tensor, 2-D and
  3-D layouts of up to 35 x 70).
* ``"staged"``: the core into host chunks copied into place, forced with
  ``INITLAB_DEVICE_BACKEND=staged``, with chunks cut to 37 elements so boxes split rows.

Every sampler (uniform, normal, every truncated-normal regime: inverse CDF, uniform / exponential
/ normal rejection, mirrored) x every dtype x whole tensors, windows that cut the super-blocks
everywhere the core's own window tests cut them, and layouts (C, transposed, strided, permuted).
The ahead-of-time compile for sm_80 / sm_90 runs in a subprocess (no interpreter there).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the device routes fill torch tensors (pip install 'initlab[test]')")

import initlab  # noqa: E402
from initlab.device import _layout, staged  # noqa: E402

HAS_TRITON = initlab.device.triton_available()
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'initlab[triton]')")
# (conftest.py sets TRITON_INTERPRET=1 before Triton is imported when there is no GPU)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DT_IDS = ["f32", "f64", "f16", "bf16"]

# (name, function, args): every sampler and truncated-normal regime the core has.
SAMPLERS = [
    ("uniform", initlab.uniform_, (-0.75, 1.25)),
    ("normal", initlab.normal_, (0.5, 2.0)),
    ("trunc_inverse", initlab.trunc_normal_, (0.1, 1.5, -2.5, 3.0)),          # float32 inverse CDF
    ("trunc_far_tail", initlab.trunc_normal_, (0.0, 1.0, 5.0, 6.0)),          # exponential rejection
    ("trunc_left_tail", initlab.trunc_normal_, (0.0, 1.0, -40.0, -39.0)),     # mirrored
    ("trunc_narrow", initlab.trunc_normal_, (0.0, 1.0, 0.3, 0.302)),          # uniform rejection, a > 0
    ("trunc_centre", initlab.trunc_normal_, (0.0, 1.0, -1.0, 1.2)),           # uniform rejection around 0
    ("trunc_wide", initlab.trunc_normal_, (0.0, 1.0, -3.0, 2.5)),             # normal rejection (float64)
    ("trunc_one_sided", initlab.trunc_normal_, (0.0, 1.0, 0.0, float("inf"))),
]
SAMPLER_IDS = [s[0] for s in SAMPLERS]


def _bits(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous()
    return (t.view(torch.int16) if t.element_size() == 2 else t).numpy().tobytes()


def _pair(monkeypatch, route, make, fill):
    """(core result, route result) of ``fill`` on two tensors from ``make``."""
    monkeypatch.delenv("INITLAB_DEVICE_BACKEND", raising=False)
    ref = make()
    fill(ref)
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", route)
    out = make()
    assert initlab.device_backend(out) == route
    fill(out)
    return ref, out


ROUTES = [pytest.param("triton", marks=needs_triton), "staged"]


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch):
    monkeypatch.setattr(staged, "CHUNK_ELEMENTS", 37)  # boxes that cut rows: exercised everywhere


# ---- routing -------------------------------------------------------------------------------------


def test_device_backend_names_the_route(monkeypatch):
    monkeypatch.delenv("INITLAB_DEVICE_BACKEND", raising=False)
    assert initlab.device_backend(np.empty(3, np.float32)) == "core"
    assert initlab.device_backend(torch.empty(3)) == "core"
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "staged")
    assert initlab.device_backend(torch.empty(3)) == "staged"
    assert initlab.device_backend(np.empty(3, np.float32)) == "core"  # NumPy arrays always take the core
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "Triton ")
    assert initlab.device_backend(torch.empty(3)) == "triton"
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "auto")
    assert initlab.device_backend(torch.empty(3)) == "core"


def test_unknown_backend_and_meta_are_errors(monkeypatch):
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "gpu")
    x = torch.zeros(4)
    with pytest.raises(ValueError, match=r"INITLAB_DEVICE_BACKEND='gpu'.*'triton', 'staged'"):
        initlab.normal_(x, seed=0)
    assert torch.equal(x, torch.zeros(4))
    monkeypatch.delenv("INITLAB_DEVICE_BACKEND")
    with pytest.raises(ValueError, match="meta device"):
        initlab.device_backend(torch.empty(3, device="meta"))
    with pytest.raises(ValueError, match="meta device"):
        initlab.normal_(torch.empty(3, device="meta"), seed=0)


@needs_triton
def test_triton_on_cpu_without_the_interpreter_is_refused_before_writing(monkeypatch):
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # read at each call by initlab's route check
    x = torch.full((5, 5), 3.0)
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        initlab.uniform_(x, seed=1)
    assert torch.equal(x, torch.full((5, 5), 3.0))


# ---- bit identity: whole tensors and layouts -------------------------------------------------------

LAYOUTS = {
    "c": lambda dt: torch.zeros(35, 70, dtype=dt),
    "transposed": lambda dt: torch.zeros(70, 35, dtype=dt).t(),
    "strided": lambda dt: torch.zeros(35, 140, dtype=dt)[:, ::2],
    "permuted3d": lambda dt: torch.zeros(5, 6, 7, dtype=dt).permute(2, 0, 1),
    "scalar": lambda dt: torch.zeros((), dtype=dt),
    "empty": lambda dt: torch.zeros(0, 7, dtype=dt),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("name,fn,args", SAMPLERS, ids=SAMPLER_IDS)
def test_route_equals_core_on_every_layout(monkeypatch, route, dt, name, fn, args):
    for lay, make in LAYOUTS.items():
        ref, out = _pair(monkeypatch, route, lambda: make(dt), lambda t: fn(t, *args, seed=1234567))
        assert _bits(out) == _bits(ref), (route, name, lay)
    if name == "uniform":  # a seed with high bits set, and a Generator's later stream
        ref, out = _pair(monkeypatch, route, lambda: torch.zeros(9, 31, dtype=dt),
                         lambda t: fn(t, *args, seed=2**64 - 1))
        assert _bits(out) == _bits(ref)

        def twice(t):  # the second stream of a fresh Generator
            g = initlab.Generator(5)
            fn(t, *args, seed=g)
            fn(t, *args, seed=g)

        ref, out = _pair(monkeypatch, route, lambda: torch.zeros(9, 31, dtype=dt), twice)
        assert _bits(out) == _bits(ref)


# ---- bit identity: windows that cut the super-blocks -------------------------------------------------

# starts inside the first and last parts of a super-block (80 float32 / 128 16-bit elements, 4 per
# normal block), lengths shorter than one super-block and spanning several, across the core's
# 1280-element chunk boundary (the subset of tests/test_mappings.py's table an interpreter affords).
STARTS = (0, 1, 63, 65, 79, 127, 129, 1281)
LENGTHS = (1, 17, 161, 1300)
# the rejection route draws per element (no super-blocks): a few windows check its row mapping
STARTS_EXACT = (0, 5, 1281)
LENGTHS_EXACT = (1, 300)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dt", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("name,fn,args", [SAMPLERS[0], SAMPLERS[1], SAMPLERS[2], SAMPLERS[3]],
                         ids=SAMPLER_IDS[:4])
def test_route_equals_core_on_windows(monkeypatch, route, dt, name, fn, args):
    exact = name == "trunc_far_tail"
    for start in STARTS_EXACT if exact else STARTS:
        for length in LENGTHS_EXACT if exact else LENGTHS:
            if start + length > 3000:
                continue
            # two rows of a (4, 3000) global tensor: the second row starts 3000 elements later
            ref, out = _pair(monkeypatch, route, lambda: torch.zeros(2, length, dtype=dt),
                             lambda t: fn(t, *args, seed=77, global_shape=(4, 3000), offset=(1, start)))
            assert _bits(out) == _bits(ref), (route, name, start, length)


@pytest.mark.parametrize("route", ROUTES)
def test_named_initializers_follow(monkeypatch, route):
    cases = [
        (lambda: torch.zeros(40, 24), lambda t: initlab.xavier_uniform_(t, seed=1)),
        (lambda: torch.zeros(40, 24, dtype=torch.bfloat16), lambda t: initlab.kaiming_normal_(t, seed=2)),
        (lambda: torch.zeros(16, 8, 3, 3, dtype=torch.float16), lambda t: initlab.lecun_normal_(t, seed=3)),
        (lambda: torch.zeros(30, 20, dtype=torch.float64),
         lambda t: initlab.variance_scaling_(t, 2.0, "fan_in", "truncated_normal", seed=4)),
        (lambda: torch.zeros(30, 20), lambda t: initlab.sparse_(t, 0.3, seed=5)),
        (lambda: torch.zeros(30, 20), lambda t: initlab.orthogonal_(t, seed=6)),
        (lambda: torch.zeros(20, 30, dtype=torch.bfloat16), lambda t: initlab.orthogonal_(t, seed=6)),
        (lambda: torch.zeros(8, 4, 3, 3), lambda t: initlab.delta_orthogonal_(t, seed=7)),
        (lambda: torch.zeros(8, 12), initlab.eye_),
        (lambda: torch.zeros(6, 3, 3, 3, dtype=torch.float16), lambda t: initlab.dirac_(t, 2)),
        (lambda: torch.zeros(8, 4, 3, 3), initlab.zero_init_),
        (lambda: torch.zeros(7, 9, dtype=torch.float16), lambda t: initlab.constant_(t, 1.0 / 3.0)),
        (lambda: torch.zeros(7, 9, dtype=torch.bfloat16), lambda t: initlab.uniform_(t, 0.25, 0.25)),
    ]
    for make, fill in cases:
        ref, out = _pair(monkeypatch, route, make, fill)
        assert _bits(out) == _bits(ref)


@pytest.mark.parametrize("route", ROUTES)
def test_parameter_on_a_route_keeps_autograd(monkeypatch, route):
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", route)
    lin = torch.nn.Linear(16, 8)
    v0 = lin.weight._version
    initlab.normal_(lin.weight, std=0.02, seed=3)
    assert lin.weight.requires_grad and lin.weight.grad_fn is None
    assert lin.weight._version > v0  # a stale backward() raises, as after torch's own in-place fill
    ref = torch.zeros(8, 16)
    monkeypatch.delenv("INITLAB_DEVICE_BACKEND")
    initlab.normal_(ref, std=0.02, seed=3)
    assert torch.equal(lin.weight.detach(), ref)


# ---- errors: nothing is written ----------------------------------------------------------------------

BAD = [
    (lambda t: initlab.uniform_(t, 1.0, 0.0, seed=0), ValueError, "a <= b"),
    (lambda t: initlab.normal_(t, 0.0, -1.0, seed=0), ValueError, "std >= 0"),
    (lambda t: initlab.normal_(t, 6e4, 1e4, seed=0), ValueError, "finite range"),
    (lambda t: initlab.trunc_normal_(t, 0.0, 1.0, 2.0, 1.0, seed=0), ValueError, "a < b"),
    (lambda t: initlab.normal_(t, seed=0, global_shape=(3, 3), offset=(1, 0)), ValueError, "runs past"),
    (lambda t: initlab.orthogonal_(t, float("inf"), seed=0), ValueError, "gain"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("bad,exc,msg", BAD, ids=["uniform", "std", "overflow", "trunc", "shard", "gain"])
def test_errors_leave_the_tensor_unchanged(monkeypatch, route, bad, exc, msg):
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", route)
    x = torch.arange(9, dtype=torch.float16).reshape(3, 3)
    before = _bits(x)
    with pytest.raises(exc, match=msg):
        bad(x)
    assert _bits(x) == before


@pytest.mark.parametrize("route", ROUTES)
def test_rejected_destinations(monkeypatch, route):
    monkeypatch.setenv("INITLAB_DEVICE_BACKEND", route)
    with pytest.raises(TypeError, match="unsupported dtype"):
        initlab.normal_(torch.zeros(3, dtype=torch.int32), seed=0)
    with pytest.raises(ValueError, match="overlap"):
        initlab.normal_(torch.zeros(3).expand(4, 3), seed=0)


# ---- the layout helpers --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (1, 1, 50), (4, 0, 3), ()])
@pytest.mark.parametrize("limit", [1, 5, 12, 1000])
def test_sub_blocks_cover_every_element_once(shape, limit):
    seen = np.zeros(shape, np.int64)
    for box in _layout.sub_blocks(shape, limit):
        part = seen[box]
        assert part.size <= max(limit, 1)
        seen[box] += 1
    assert np.all(seen == 1)


def test_row_groups_match_the_element_map():
    # a (3, 4, 5) window at (1, 2, 0) of a (6, 7, 5) global tensor, stored transposed
    t = torch.zeros(5, 4, 3).permute(2, 1, 0)
    gst = [35, 5, 1]
    shape, strides, gs = _layout.merge_dims(list(t.shape), list(t.stride()), gst)
    rows = list(_layout.row_groups(shape, strides, gs, gbase=1 * 35 + 2 * 5, max_rows=5))
    g = np.concatenate([r[0] for r in rows])
    m = np.concatenate([r[1] for r in rows])
    idx = np.indices(t.shape).reshape(3, -1)
    want_g = 45 + idx[0] * 35 + idx[1] * 5
    want_m = idx[0] * t.stride(0) + idx[1] * t.stride(1)
    assert np.array_equal(np.sort(g), np.sort(np.unique(want_g)))
    assert set(zip(g.tolist(), m.tolist())) == set(zip(want_g[idx[2] == 0].tolist(), want_m[idx[2] == 0].tolist()))


# ---- ahead-of-time compile for real GPUs (no GPU, no interpreter) -----------------------------------------

_AOT = textwrap.dedent("""
    import json, sys
    from initlab.device import aot
    out = {"bad": [], "n": 0, "cubin": 0}
    for arch in (80, 90):
        for name, code, meta in aot.variants():
            k = aot.compile_kernel(name, code, meta, arch)
            out["n"] += 1
            out["cubin"] += bool(k.asm.get("cubin"))
            bad = aot.forbidden_instructions(k.asm["ptx"])
            if bad or ".target sm_%d" % arch not in k.asm["ptx"]:
                out["bad"].append([arch, name, code, sorted(meta.items()), bad])
    fused = aot.compile_kernel("normal_f32", 0, {"B": 256}, 90, fp_fusion=True)
    out["fused_has_fma"] = "fma.rn" in fused.asm["ptx"]
    print(json.dumps(out))
""")


@needs_triton
def test_every_kernel_compiles_for_sm80_and_sm90_without_fma():
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "INITLAB_DEVICE_BACKEND")}
    r = subprocess.run([sys.executable, "-c", _AOT], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    res = json.loads(r.stdout.strip().splitlines()[-1])
    from initlab.device import aot

    assert res["n"] == 2 * len(list(aot.variants()))
    assert res["cubin"] == res["n"]  # ptxas ran: a real GPU binary for every variant
    assert res["bad"] == []
    assert res["fused_has_fma"]  # the check can fail: with fp fusion on, the PTX holds fma.rn
