"""initlab.lsuv on framework-neutral models (weight arrays + a forward function) and the report."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import initlab
from initlab import LSUVReport


def _relu(z):
    return np.maximum(z, 0.0)


def _mlp(depth, width, std, rng, bias=True, dtype=np.float64):
    ws = [(rng.standard_normal((width, width)) * std).astype(dtype) for _ in range(depth)]
    bs = [np.zeros(width, dtype) for _ in range(depth)] if bias else None
    return ws, bs


def _forward(ws, bs):
    def f(x):
        outs, h = [], x
        for i, w in enumerate(ws):
            z = h @ w.T + (bs[i] if bs is not None and bs[i] is not None else 0.0)
            outs.append(z)
            h = _relu(z)
        return outs

    return f


@pytest.mark.parametrize("orthogonal", [True, False])
def test_deep_relu_mlp_reaches_unit_variance(orthogonal):
    rng = np.random.default_rng(0)
    ws, bs = _mlp(30, 32, 0.01, rng)
    x = rng.standard_normal((256, 32))
    f = _forward(ws, bs)
    assert np.var(f(x)[-1]) < 1e-20  # vanished signal
    rep = initlab.lsuv(ws, x, forward=f, biases=bs, orthogonal=orthogonal, seed=1)
    assert isinstance(rep, LSUVReport) and rep.converged and len(rep) == 30
    for i, out in enumerate(f(x)):
        assert abs(np.var(out) - 1.0) < rep.tol, i
    if not orthogonal:
        assert all(r.iterations >= 1 for r in rep.layers)  # first layer included


def _reference(ws, bs, forward, x, tol, max_iter):
    """Algorithm 1 as the paper states it, independent of initlab."""
    scales = []
    for i in range(len(ws)):
        total = 1.0
        for _ in range(max_iter):
            v = float(np.var(forward(x)[i]))
            if abs(v - 1.0) < tol:
                break
            ws[i] /= math.sqrt(v)
            total /= math.sqrt(v)
        scales.append(total)
    return scales


def _conv2d(x, w, b):
    """Valid 2-D cross-correlation, NCHW x OIHW, written with sliding windows."""
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N C H' W' kh kw
    return np.einsum("nchwij,ocij->nohw", win, w) + b[None, :, None, None]


def _cnn_forward(ws, bs):
    def f(x):
        z1 = _conv2d(x, ws[0], bs[0])
        z2 = _conv2d(_relu(z1), ws[1], bs[1])
        z3 = _relu(z2).reshape(len(x), -1) @ ws[2].T + bs[2]
        return [z1, z2, z3]

    return f


def _mlp_case(rng):
    ws = [rng.standard_normal((16, 10)) * 0.3, rng.standard_normal((12, 16)) * 0.3, rng.standard_normal((4, 12))]
    bs = [rng.standard_normal(16) * 0.5, rng.standard_normal(12) * 0.5, rng.standard_normal(4) * 0.5]
    return ws, bs, _forward, rng.standard_normal((64, 10)) * 2


def _cnn_case(rng):
    ws = [rng.standard_normal((4, 2, 3, 3)) * 0.2, rng.standard_normal((6, 4, 3, 3)) * 0.2,
          rng.standard_normal((3, 6 * 4 * 4))]
    bs = [rng.standard_normal(4) * 0.5, rng.standard_normal(6) * 0.5, rng.standard_normal(3) * 0.5]
    return ws, bs, _cnn_forward, rng.standard_normal((16, 2, 8, 8))


@pytest.mark.parametrize("case", [_mlp_case, _cnn_case])
def test_matches_straightforward_algorithm_1(case):
    ws, bs, make_forward, x = case(np.random.default_rng(3))
    ref_ws = [w.copy() for w in ws]
    ref_bs = [b.copy() for b in bs]
    rep = initlab.lsuv(ws, x, forward=make_forward(ws, bs), biases=bs, tol=0.01, orthogonal=False, bias_axis=1
                       if case is _cnn_case else -1)
    scales = _reference(ref_ws, ref_bs, make_forward(ref_ws, ref_bs), x, tol=0.01, max_iter=10)
    assert any(r.iterations > 1 for r in rep.layers)  # biases make it take several steps
    np.testing.assert_allclose([r.scale for r in rep.layers], scales, rtol=1e-10)
    for a, b in zip(ws, ref_ws):
        np.testing.assert_allclose(a, b, rtol=1e-10)


def test_zero_input_clear_error_weights_untouched():
    rng = np.random.default_rng(1)
    ws, bs = _mlp(3, 8, 0.5, rng)
    bs = [rng.standard_normal(8) for _ in range(3)]  # the bias alone gives a non-zero variance
    before = [w.copy() for w in ws], [b.copy() for b in bs]
    with pytest.raises(ValueError, match=r"layer 0 \(array.*does not depend on its weights"):
        initlab.lsuv(ws, np.zeros((16, 8)), forward=_forward(ws, bs), biases=bs, seed=0)
    for a, b in zip(ws + bs, before[0] + before[1]):
        np.testing.assert_array_equal(a, b)  # orthonormal pre-init undone as well


def test_constant_output_error():
    ws = [np.ones((4, 4))]
    with pytest.raises(ValueError, match="is constant"):
        initlab.lsuv(ws, np.ones((8, 4)), forward=lambda x: [x @ ws[0].T], orthogonal=False)
    np.testing.assert_array_equal(ws[0], np.ones((4, 4)))


def test_nonfinite_output_error():
    ws = [np.eye(4)]
    x = np.ones((8, 4))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        initlab.lsuv(ws, x, forward=lambda b: [b @ ws[0].T], orthogonal=False)


def test_no_bias_layers_and_center():
    rng = np.random.default_rng(2)
    ws, _ = _mlp(3, 8, 0.5, rng)
    f = _forward(ws, None)
    x = rng.standard_normal((64, 8)) + 1.0
    w0 = [w.copy() for w in ws]
    with pytest.raises(ValueError, match=r"center=True.*layer 0 \(array"):
        initlab.lsuv(ws, x, forward=f, center=True)
    for a, b in zip(ws, w0):
        np.testing.assert_array_equal(a, b)
    assert initlab.lsuv(ws, x, forward=f, seed=0).converged
    # with biases, center=True gives mean 0 and the target variance
    bs = [np.zeros(8) for _ in range(3)]
    f = _forward(ws, bs)
    rep = initlab.lsuv(ws, x, forward=f, biases=bs, center=True, tol=0.01, target_var=2.0, seed=0)
    for out in f(x):
        assert abs(out.mean()) < 0.01 * math.sqrt(2) and abs(out.var() - 2.0) < 0.01
    assert rep.center


def test_non_convergence_warns():
    ws, bs = [np.eye(4)], [np.array([0.0, 3.0, -3.0, 6.0])]
    f = _forward(ws, bs)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        rep = initlab.lsuv(ws, np.random.default_rng(0).standard_normal((32, 4)), forward=f, biases=bs,
                           max_iter=4, orthogonal=False)
    assert not rep.converged and rep[0].iterations == 4
    assert np.isfinite(ws[0]).all()


def test_fresh_batch_per_forward_pass():
    rng = np.random.default_rng(4)
    ws, bs = _mlp(2, 6, 0.5, rng)
    seen = []
    inner = _forward(ws, bs)

    def f(x):
        seen.append(id(x))
        return inner(x)

    batches = [rng.standard_normal((32, 6)) for _ in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rep = initlab.lsuv(ws, batches, forward=f, biases=bs, tol=1e-4, seed=0)
    assert rep.forward_passes == len(seen) > 4
    assert seen[:4] == [id(b) for b in batches] and seen[4] == id(batches[0])  # cycled


def test_report_table_and_dict():
    rng = np.random.default_rng(5)
    ws, bs = _mlp(3, 8, 0.1, rng)
    rep = initlab.lsuv(ws, rng.standard_normal((32, 8)), forward=_forward(ws, bs), biases=bs, seed=0)
    d = rep.to_dict()
    json.dumps(d)
    assert d["converged"] and len(d["layers"]) == 3
    assert set(d["layers"][0]) >= {"name", "weight_shape", "iterations", "var_before", "var_after", "scale",
                                   "converged"}
    t = rep.table()
    assert "var before" in t and len(t.splitlines()) == 3 + 3
    for r in rep.layers:
        assert r.weight_shape == (8, 8) and r.scale > 0 and abs(r.var_after - 1) < 0.1


def test_seeded_pre_init_reproducible_and_low_precision():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 8))
    runs = []
    for _ in range(2):
        ws = [np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32)]
        initlab.lsuv(ws, x, forward=_forward(ws, None), seed=42)
        runs.append(ws)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    ws16 = [np.zeros((8, 8), np.float16)]
    rep = initlab.lsuv(ws16, x.astype(np.float16), forward=lambda b: [b @ ws16[0].T], seed=0)
    assert rep.converged and ws16[0].dtype == np.float16


def test_argument_validation():
    ws = [np.eye(3)]
    f = lambda b: [b @ ws[0].T]  # noqa: E731
    x = np.ones((4, 3))
    with pytest.raises(TypeError, match="forward"):
        initlab.lsuv(ws, x)
    with pytest.raises(ValueError, match="tol"):
        initlab.lsuv(ws, x, forward=f, tol=-1)
    with pytest.raises(ValueError, match="2 outputs|sequence of 1"):
        initlab.lsuv(ws, x, forward=lambda b: [b, b])
    with pytest.raises(ValueError, match="biases"):
        initlab.lsuv(ws, x, forward=f, biases=[None, None])
    with pytest.raises(TypeError, match="expects"):
        initlab.lsuv(object(), x)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        initlab.lsuv([np.ones(3)], x, forward=lambda b: [b * 2])
    np.testing.assert_array_equal(ws[0], np.eye(3))


# ---- initlab.nn models -----------------------------------------------------------------------


def _nn_outputs(model, x, types=None):
    from initlab import nn

    types = types or (nn.Linear, nn.Conv2d)
    outs = []
    removers = [m.register_forward_hook(lambda mod, i, o, q=q: outs.append((q, o.copy())))
                for q, m in model.named_modules() if isinstance(m, types)]
    flags = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        model(x)
    finally:
        for r in removers:
            r()
        for m, t in flags:
            m.training = t
    return outs


def test_nn_deep_relu_mlp():
    from initlab import nn

    model = nn.mlp(32, 32, depth=30, seed=0)
    for _, m in model.named_modules():
        if isinstance(m, nn.Linear):
            initlab.normal_(m.weight, 0.0, 0.01, seed=1)
            m.bias[...] = 0.0
    x = np.random.default_rng(0).standard_normal((256, 32))
    assert np.var(_nn_outputs(model, x)[-1][1]) < 1e-20
    rep = initlab.lsuv(model, x, seed=0)
    assert rep.converged and len(rep) == 30
    assert rep[0].name == "0 (Linear)" and rep[1].name == "2 (Linear)"
    for q, out in _nn_outputs(model, x):
        assert abs(np.var(out) - 1) < rep.tol, q


def test_nn_execution_order_and_errors():
    from initlab import nn

    class Rev(nn.Module):
        def __init__(self):
            super().__init__()
            self._children["late"] = nn.Linear(8, 8, seed=0)
            self._children["early"] = nn.Linear(4, 8, seed=1)

        def _forward(self, x):
            return self._children["late"](np.maximum(self._children["early"](x), 0))

    model = Rev()
    x = np.random.default_rng(1).standard_normal((64, 4)) * 4
    rep = initlab.lsuv(model, x, seed=0)
    assert [r.name for r in rep.layers] == ["early (Linear)", "late (Linear)"]
    before = [p.copy() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"layer early \(Linear\) does not depend on its weights"):
        initlab.lsuv(model, np.zeros((8, 4)), seed=0)
    for a, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(a, b)
    nb = nn.Sequential(nn.Linear(4, 4, bias=False, seed=0))
    with pytest.raises(ValueError, match=r"layer 0 \(Linear\) has no bias"):
        initlab.lsuv(nb, x, center=True)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nn_batchnorm_modes_and_state_restored(mode):
    from initlab import nn

    model = nn.resnet(3, 8, n_blocks=1, n_classes=4, seed=0)
    for _, m in model.named_modules():
        if isinstance(m, nn.BatchNorm):
            m.running_var = m.running_var * 3.0
    model.train()
    model[1].eval()
    flags = [m.training for _, m in model.named_modules()]
    running = [(m.running_mean.copy(), m.running_var.copy()) for _, m in model.named_modules()
               if isinstance(m, nn.BatchNorm)]
    x = np.random.default_rng(2).standard_normal((16, 3, 6, 6))
    rep = initlab.lsuv(model, x, batchnorm=mode, seed=0)
    assert rep.converged and len(rep) == 4
    assert [m.training for _, m in model.named_modules()] == flags
    got = [(m.running_mean, m.running_var) for _, m in model.named_modules() if isinstance(m, nn.BatchNorm)]
    for (a, b), (c, d) in zip(got, running):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    model.eval()
    if mode == "train":
        for _, m in model.named_modules():
            if isinstance(m, nn.BatchNorm):
                m.training = True
    outs = []
    rm = [m.register_forward_hook(lambda mod, i, o: outs.append(np.var(o)))
          for _, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model(x)
    for r in rm:
        r()
    assert all(abs(v - 1) < 0.1 for v in outs), outs


def test_nn_pre_init_stream_is_the_parameter_name():
    from initlab import nn
    from initlab.lsuv import named_seeds

    model = nn.mlp(8, 8, depth=2, seed=0)
    x = np.random.default_rng(3).standard_normal((64, 8))
    rep = initlab.lsuv(model, x, seed=5)
    ref = np.empty((8, 8))
    initlab.orthogonal_(ref, seed=named_seeds(5)("2.weight"))  # the second Linear, qualified name "2"
    np.testing.assert_allclose(model[2].weight, ref * rep[1].scale, rtol=1e-12)


def test_orthogonal_pre_init_zeroes_biases_nn_and_arrays():
    # Algorithm 1 (and lsuv 0.3.0, anyinit): orthonormal weights, zero biases; one rule for every front end.
    from initlab import nn

    net = nn.mlp(6, 12, depth=3, seed=0)
    for _, m in net.named_modules():
        if isinstance(m, nn.Linear):
            m.bias[...] = 0.5
    x = np.random.default_rng(1).standard_normal((64, 6))
    rep = initlab.lsuv(net, x, seed=0)
    assert rep.converged
    biases = [m.bias for _, m in net.named_modules() if isinstance(m, nn.Linear)]
    assert len(biases) == 3 and all(not b.any() for b in biases)
    # orthogonal=False: biases stay as they were (only weights are rescaled)
    rng = np.random.default_rng(2)
    ws, bs = _mlp(2, 6, 0.5, rng)
    bs = [np.full(6, 0.25), np.full(6, -0.25)]
    initlab.lsuv(ws, rng.standard_normal((32, 6)), forward=_forward(ws, bs), biases=bs, orthogonal=False)
    assert all((b == v).all() for b, v in zip(bs, (0.25, -0.25)))
    initlab.lsuv(ws, rng.standard_normal((32, 6)), forward=_forward(ws, bs), biases=bs, seed=0)
    assert all(not b.any() for b in bs)


def test_pool_batches_numpy_front_end():
    rng = np.random.default_rng(3)
    ws, bs = _mlp(2, 8, 0.3, rng)
    batches = [rng.standard_normal((n, 8)) for n in (5, 17, 40)]
    ws2, bs2 = [w.copy() for w in ws], [b.copy() for b in bs]
    ra = initlab.lsuv(ws, batches, forward=_forward(ws, bs), biases=bs, seed=1, tol=1e-3)
    rb = initlab.lsuv(ws2, np.concatenate(batches), forward=_forward(ws2, bs2), biases=bs2, seed=1, tol=1e-3)
    assert ra.pool_batches == 3 and rb.pool_batches == 1
    for a, b in zip(ra.layers, rb.layers):
        assert a.var_before == pytest.approx(b.var_before, rel=1e-12) and a.iterations == b.iterations
    for a, b in zip(ws, ws2):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    assert "3 batches per measurement" in str(ra)
    json.dumps(ra.to_dict())
    with pytest.raises(ValueError, match="pool_batches must be a positive int"):
        initlab.lsuv(ws, batches, forward=_forward(ws, bs), biases=bs, pool_batches=1.5)
    with pytest.raises(ValueError, match="empty list of batches"):
        initlab.lsuv(ws, [], forward=_forward(ws, bs), biases=bs)
