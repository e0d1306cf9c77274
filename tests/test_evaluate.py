"""initlab.evaluate: training on the digits tells a badly scaled init from good ones, reproducibly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("sklearn")

import initlab  # noqa: E402
from initlab.evaluation import DEFAULT_STEPS, Evaluation, parse_init  # noqa: E402

INITS = ["normal:std=0.001", "xavier_normal", "lsuv"]


@pytest.fixture(scope="module")
def ev():
    # The default budget (600 steps of batch 64), a 10-layer tanh MLP, two seeds.
    return initlab.evaluate("mlp", INITS, seeds=2, depth=10, activation="tanh", progress=False)


def test_badly_scaled_init_is_measurably_worse(ev):
    assert ev.config["steps"] == DEFAULT_STEPS and ev.config["model"] == "mlp 10x64 tanh"
    bad = ev["normal:std=0.001"]
    for good in (ev["xavier_normal"], ev["lsuv"]):
        # With sigma = 1e-3 the signal and the gradients of a 10-layer tanh net vanish
        # (x(64 sigma^2)^(1/2) = 0.008 per layer): it stays at chance (10 classes).
        assert good.accuracy_mean > bad.accuracy_mean + 0.5
        assert good.final_accuracy.min() > bad.final_accuracy.max() + 0.5
        assert good.accuracy_mean > 0.9
        assert all(s is not None for s in good.steps_to_threshold)
        # Early gradients of the first layer: ~1e-20 of a good init's.
        g_bad = np.asarray(bad.grad_norms)[:, :, 0].mean()
        g_good = np.asarray(good.grad_norms)[:, :, 0].mean()
        assert g_bad < 1e-10 * g_good
    assert bad.accuracy_mean < 0.2
    assert bad.steps_to_threshold == [None, None]


def test_result_shapes_and_metrics(ev):
    r = ev["lsuv"]
    n_points = len(r.steps)
    assert r.steps[0] == 0 and r.steps[-1] == DEFAULT_STEPS
    assert np.asarray(r.train_loss).shape == (2, n_points) == np.asarray(r.test_accuracy).shape
    assert np.asarray(r.grad_norms).shape == (2, 20, 11)  # 10 hidden + output layer
    assert r.layers[0] == "0" and len(r.layers) == 11
    # The loss starts near chance, log(10), and falls.
    assert np.asarray(r.train_loss)[:, 0] == pytest.approx(math.log(10), abs=0.6)
    assert np.all(np.asarray(r.train_loss)[:, -1] < 0.1)
    assert all(x >= 0 for x in r.roughness) and all(t > 0 for t in r.wall_time)
    assert 0 <= r.accuracy_std < 0.05


def test_table_and_str(ev):
    text = str(ev)
    assert "test acc % (mean ± sd)" in text and "steps to loss<=0.1" in text
    for spec in INITS:
        assert spec in ev.table()
    assert "not reached (0/2)" in ev.table()
    assert "numpy backend, sgd lr=0.01, 600 steps of batch 64, seeds [0, 1]" in text
    assert str(ev["normal:std=0.001"]).startswith("normal:std=0.001: test accuracy 10.")
    assert "reached in 0/2 runs" in str(ev["normal:std=0.001"]) and "reached in 2/2 runs" in str(ev["lsuv"])


def test_json_round_trip(ev):
    d = json.loads(json.dumps(ev.to_dict(), allow_nan=False))  # strict JSON: no NaN
    back = Evaluation.from_dict(d)
    assert back.to_dict() == ev.to_dict()
    assert back.table() == ev.table()
    assert back["xavier_normal"].accuracy_mean == ev["xavier_normal"].accuracy_mean


def test_plot_writes_a_png(ev, tmp_path):
    pytest.importorskip("matplotlib")
    p = tmp_path / "ev.png"
    fig = ev.plot(p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 3 and fig.axes[0].get_ylabel().startswith("cross-entropy")


def _numbers(e: Evaluation) -> dict:
    d = e.to_dict()
    for r in d["results"]:
        r.pop("wall_time")
    return d


def test_reproducible_for_a_seed_and_seeds_differ():
    kw = dict(seeds=[3], steps=40, depth=3, width=16, progress=False)
    a = initlab.evaluate("mlp", ["xavier_normal", "lsuv"], **kw)
    b = initlab.evaluate("mlp", ["xavier_normal", "lsuv"], **kw)
    assert _numbers(a) == _numbers(b)
    c = initlab.evaluate("mlp", ["xavier_normal"], **{**kw, "seeds": [4]})
    assert c["xavier_normal"].train_loss != a["xavier_normal"].train_loss


def test_adam_auto_and_epochs():
    e = initlab.evaluate("mlp", ["auto"], seeds=1, epochs=2, optimizer="adam", lr=0.01, depth=2, width=16,
                         activation="relu", progress=False)
    assert e.config["steps"] == math.ceil(2 * 1347 / 64) and e.config["lr"] == 0.01 and e.config["optimizer"] == "adam"
    loss = e["auto"].train_loss[0]
    assert loss[-1] < 0.5 * loss[0]


def test_auto_picks_the_rule_of_each_activation():
    from initlab import nn
    from initlab.evaluation import _init_nn

    x = np.zeros((4, 64))
    for act, std in (("relu", math.sqrt(2 / 256)), ("tanh", math.sqrt(2 / (256 + 256))), ("selu", math.sqrt(1 / 256))):
        net = nn.mlp(256, 256, 2, 10, activation=act, dtype=np.float64)
        _init_nn(net, "auto", 0, x)
        w = net[2].weight  # the second hidden layer: 256 -> 256
        assert w.std() == pytest.approx(std, rel=0.02), act
        assert np.all(net[0].bias == 0)


def test_validation_lists_every_offender_before_training():
    with pytest.raises(ValueError) as e:
        initlab.evaluate("mlp", ["nope", "xavier_normal", "zap:1"], seeds=0, optimizer="rmsprop", batch_size=0, progress=False)
    msg = str(e.value)
    for part in ("'nope'", "'zap:1'", "rmsprop", "batch_size", "seeds"):
        assert part in msg, part
    with pytest.raises(ValueError) as e:
        initlab.evaluate("mlp", ["normal:stdd=1", "orthogonal:gain=x", "xavier_normal"], steps=5, progress=False)
    assert "normal:stdd=1" in str(e.value) and "orthogonal:gain=x" in str(e.value) and "'xavier_normal'" not in str(e.value)
    with pytest.raises(ValueError, match="unknown model option"):
        initlab.evaluate("mlp", ["xavier_normal"], depthh=3)


def test_parse_init():
    assert parse_init("normal:std=0.01") == ("normal", {"std": 0.01})
    assert parse_init("kaiming_normal_:nonlinearity=tanh,mode=fan_out,a=0") == (
        "kaiming_normal", {"nonlinearity": "tanh", "mode": "fan_out", "a": 0})
    assert parse_init("lsuv:center=true") == ("lsuv", {"center": True})
    with pytest.raises(ValueError):
        parse_init("normal:std")


def test_no_progress_output_when_not_a_terminal(capfd):
    initlab.evaluate("mlp", ["xavier_normal"], seeds=1, steps=5, depth=1, width=8, progress=True)
    assert capfd.readouterr().err == ""


def test_missing_scikit_learn_gives_the_install_hint(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install initlab\[evaluate\]"):
        initlab.evaluate("mlp", ["xavier_normal"], steps=5, progress=False)


def test_user_arrays_and_torch_factory():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6))
    y = (x[:, 0] > 0).astype(np.int64)

    def make():
        return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))

    kw = dict(data=(x[:150], y[:150], x[150:], y[150:]), seeds=1, steps=60, batch_size=32, progress=False)
    a = initlab.evaluate(make, ["auto", "lsuv"], **kw)
    b = initlab.evaluate(make, ["lsuv"], **kw)
    assert a.config["backend"] == "torch" and a.config["n_classes"] == 2
    assert _numbers(a)["results"][1] == _numbers(b)["results"][0]
    assert a["auto"].final_accuracy[0] > 0.8
    assert np.asarray(a["lsuv"].grad_norms).shape == (1, 20, 2)


def test_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    from initlab import nn
    from initlab.nn.losses import softmax_cross_entropy
    from initlab.nn.optim import SGD, Adam

    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 5))
    y = rng.integers(0, 3, 8)
    for make_ours, make_theirs in ((lambda m: SGD(m, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
                                   (lambda m: Adam(m, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01))):
        net = nn.mlp(5, 4, 1, 3, activation="tanh", seed=0)
        tnet = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
        with torch.no_grad():
            for (_, p), tp in zip(net.named_parameters(), tnet.parameters()):
                tp.copy_(torch.from_numpy(p))
        opt, topt = make_ours(net), make_theirs(tnet.parameters())
        for _ in range(5):
            opt.zero_grad()
            loss, d = softmax_cross_entropy(net(x), y)
            net.backward(d)
            opt.step()
            topt.zero_grad()
            tl = torch.nn.functional.cross_entropy(tnet(torch.from_numpy(x)), torch.from_numpy(y))
            tl.backward()
            topt.step()
            assert loss == pytest.approx(float(tl.detach()), rel=1e-12)
        for (_, p), tp in zip(net.named_parameters(), tnet.parameters()):
            np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_default_init_is_seeded_per_run():
    # "default" keeps the constructor's init, which the seed fixes: seeds differ, runs repeat.
    kw = dict(steps=3, depth=2, width=8, progress=False)
    a = initlab.evaluate("mlp", ["default"], seeds=[0, 1], **kw)["default"]
    b = initlab.evaluate("mlp", ["default"], seeds=[0, 1], **kw)["default"]
    assert a.train_loss == b.train_loss and a.train_loss[0][0] != a.train_loss[1][0]


def test_auto_on_a_torch_model_follows_each_layers_activation():
    torch = pytest.importorskip("torch")
    from initlab.evaluation import _init_torch

    m = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.Tanh(),
                            torch.nn.Linear(256, 256), torch.nn.SELU(), torch.nn.Linear(256, 10))
    _init_torch(m, "auto", 0, None)
    stds = [float(l.weight.detach().std()) for l in m if isinstance(l, torch.nn.Linear)]
    # He, Xavier, LeCun, then Xavier for the output layer (no activation after it).
    want = [math.sqrt(2 / 256), math.sqrt(2 / 512), math.sqrt(1 / 256), math.sqrt(2 / 266)]
    assert stds == pytest.approx(want, rel=0.03)
    assert all(float(l.bias.detach().abs().max()) == 0 for l in m if isinstance(l, torch.nn.Linear))


def test_schemes_on_a_user_factory_are_reproducible():
    schemes = pytest.importorskip("initlab.schemes")
    if not hasattr(schemes, "rezero"):
        pytest.skip("initlab.schemes has no rezero")
    from initlab import nn

    def make():  # no seed: the constructor draws from initlab's default generator, which evaluate seeds
        return nn.residual_mlp(64, 16, 2, 10, norm=None)

    kw = dict(seeds=1, steps=10, progress=False)
    a = initlab.evaluate(make, ["rezero", "default"], **kw)
    b = initlab.evaluate(make, ["rezero", "default"], **kw)
    assert _numbers(a) == _numbers(b)
    assert a["rezero"].final_accuracy[0] > 0.2


def test_json_carries_the_table_summary():
    """Issue 19 item 16: to_dict/JSON lacked what the table prints (mean ± sd test accuracy, final
    test loss, steps to threshold per init); each result now has a "summary" with those numbers."""
    from initlab.evaluation import InitResult

    r = InitResult(init="xavier_normal", seeds=[0, 1, 2], steps=[0, 10, 20], train_loss=[[2.0, 0.5, 0.05]] * 3,
                   test_loss=[[2.0, 0.6, 0.2], [2.0, 0.7, 0.4], [2.0, 0.6, float("nan")]],
                   test_accuracy=[[0.1, 0.8, 0.9], [0.1, 0.7, 0.8], [0.1, 0.5, 0.7]],
                   steps_to_threshold=[20, None, 10], roughness=[0.1, 0.2, 0.3],
                   grad_norms=[[[1.0, 2.0], [3.0, 4.0]]] * 3, layers=["0", "1"], wall_time=[1.0, 2.0, 3.0],
                   diverged_at=[None, None, 20])
    ev = Evaluation([r], {"threshold": 0.1, "seeds": [0, 1, 2]})
    d = json.loads(json.dumps(ev.to_dict(), allow_nan=False))
    s = d["results"][0]["summary"]
    assert s["test_accuracy_mean"] == pytest.approx(0.8) and s["test_accuracy_sd"] == pytest.approx(0.1)
    assert s["final_test_loss_mean"] == pytest.approx(0.3)  # the finite ones, as the table
    assert s["steps_to_threshold_mean"] == 15 and s["threshold_reached"] == 2 and s["seeds"] == 3
    assert s["grad_norm_first_layer"] == 2.0 and s["grad_norm_last_layer"] == 3.0
    assert s["roughness_mean"] == pytest.approx(0.2) and s["diverged"] == 1
    row = ev.table().splitlines()[2]
    assert "80.0 ± 10.0" in row and "0.300" in row and "15 (2/3 seeds)" in row
    back = Evaluation.from_dict(d)
    assert back.to_dict() == ev.to_dict()
    one = InitResult(**{**r.__dict__, "seeds": [0], "test_accuracy": [[0.5]], "test_loss": [[1.0]],
                        "steps_to_threshold": [None], "wall_time": [1.0], "diverged_at": [None]})
    s1 = json.loads(json.dumps(Evaluation([one], {"threshold": 0.1}).to_dict(), allow_nan=False))["results"][0]["summary"]
    assert s1["test_accuracy_sd"] is None and s1["steps_to_threshold_mean"] is None  # NaN -> null, strict JSON
