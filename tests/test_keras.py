"""initlab.keras: Keras 3 initializers with Keras semantics and the NumPy fill's numbers."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
if os.environ["KERAS_BACKEND"] == "jax":
    pytest.importorskip("jax")
keras = pytest.importorskip("keras")

import initlab  # noqa: E402
import initlab.keras as ik  # noqa: E402

# (initializer, shape, the in-memory NumPy fill it must equal)
SEED = 17
CASES = [
    (ik.RandomUniform(-0.3, 0.7, seed=SEED), (6, 5), lambda a: initlab.uniform_(a, -0.3, 0.7, seed=SEED)),
    (ik.RandomNormal(0.1, 0.2, seed=SEED), (4, 9), lambda a: initlab.normal_(a, 0.1, 0.2, seed=SEED)),
    (ik.TruncatedNormal(0.5, 0.1, seed=SEED), (30, 30), lambda a: initlab.trunc_normal_(a, 0.5, 0.1, 0.3, 0.7, seed=SEED)),
    (ik.VarianceScaling(0.5, "fan_out", "untruncated_normal", seed=SEED), (3, 3, 4, 8),
     lambda a: initlab.variance_scaling_(a, 0.5, "fan_out", "untruncated_normal", seed=SEED, layout="keras")),
    (ik.GlorotUniform(seed=SEED), (12, 7), lambda a: initlab.xavier_uniform_(a, seed=SEED, layout="keras")),
    (ik.GlorotNormal(seed=SEED), (12, 7),
     lambda a: initlab.variance_scaling_(a, 1.0, "fan_avg", "truncated_normal", seed=SEED, layout="keras")),
    (ik.HeUniform(seed=SEED), (5, 4, 6), lambda a: initlab.variance_scaling_(a, 2.0, "fan_in", "uniform", seed=SEED,
                                                                              layout="keras")),
    (ik.HeNormal(seed=SEED), (3, 3, 4, 5), lambda a: initlab.variance_scaling_(a, 2.0, seed=SEED, layout="keras")),
    (ik.LecunUniform(seed=SEED), (9, 2), lambda a: initlab.lecun_uniform_(a, seed=SEED, layout="keras")),
    (ik.LecunNormal(seed=SEED), (9, 2), lambda a: initlab.lecun_normal_(a, seed=SEED, layout="keras")),
    (ik.Orthogonal(1.5, seed=SEED), (2, 3, 8), lambda a: initlab.orthogonal_(a, 1.5, seed=SEED, layout="keras")),
]


# JAX without jax_enable_x64 has no float64 arrays; the NumPy-backend test covers float64.
DTYPES = ["float32", "bfloat16"] + ([] if os.environ["KERAS_BACKEND"] == "jax" else ["float64"])


@pytest.mark.parametrize("init,shape,ref", CASES, ids=[type(c[0]).__name__ for c in CASES])
@pytest.mark.parametrize("dtype", DTYPES)
def test_values_equal_the_numpy_fill(init, shape, ref, dtype):
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        npdt = ml_dtypes.bfloat16
    else:
        npdt = np.dtype(dtype)
    w = init(shape, dtype=dtype)
    assert keras.backend.standardize_dtype(w.dtype) == dtype and tuple(w.shape) == shape
    expect = ref(np.empty(shape, npdt))
    assert keras.ops.convert_to_numpy(w).tobytes() == expect.tobytes()
    # Stateless: the same numbers on every call.
    assert keras.ops.convert_to_numpy(init(shape, dtype=dtype)).tobytes() == expect.tobytes()


def test_keras_semantics_statistics():
    # He normal: post-truncation std sqrt(2 / fan_in), max |w| <= 2 sigma / 0.8796.
    w = keras.ops.convert_to_numpy(ik.HeNormal(seed=0)((400, 400)))
    sigma = math.sqrt(2 / 400)
    n = w.size
    assert abs(w.std() / sigma - 1) < 6 / math.sqrt(2 * n)
    assert np.abs(w).max() <= 2 * sigma / 0.87962566103423978 * (1 + 1e-6)
    # TruncatedNormal: absolute bounds mean +- 2 stddev, no correction (std 0.8796 stddev).
    t = keras.ops.convert_to_numpy(ik.TruncatedNormal(1.0, 0.5, seed=1)((300, 300)))
    assert t.min() >= 0.0 and t.max() <= 2.0
    assert abs(t.std() / (0.5 * 0.87962566103423978) - 1) < 6 / math.sqrt(2 * t.size)
    # Keras fans for rank 0 and 1: (1, 1) and (n, n).
    b = keras.ops.convert_to_numpy(ik.HeUniform(seed=2)((50,)))
    assert np.abs(b).max() <= math.sqrt(6 / 50) and np.abs(b).max() > 0.5 * math.sqrt(6 / 50)
    s = keras.ops.convert_to_numpy(ik.LecunUniform(seed=2)(()))
    assert s.shape == () and abs(float(s)) <= math.sqrt(3.0)
    with pytest.raises(ValueError, match="at least two-dimensional"):
        ik.Orthogonal(seed=0)((5,))


def test_config_round_trip_and_seed_semantics():
    for init, _, _ in CASES:
        cfg = init.get_config()
        again = type(init).from_config(cfg)
        assert again.get_config() == cfg
        assert keras.ops.convert_to_numpy(again((4, 6))).tobytes() == keras.ops.convert_to_numpy(init((4, 6))).tobytes()
        ser = keras.saving.serialize_keras_object(init)
        assert ser["registered_name"] == f"initlab>{type(init).__name__}"
        back = keras.saving.deserialize_keras_object(ser)
        assert type(back) is type(init) and back.get_config() == cfg
    assert ik.VarianceScaling(2.0, "fan_avg", "uniform", seed=4).get_config() == {
        "scale": 2.0, "mode": "fan_avg", "distribution": "uniform", "seed": 4, "input_axes": None, "output_axes": None}
    # seed=None: fixed at construction (same values each call), a fresh seed after from_config.
    u = ik.RandomNormal()
    assert u.get_config()["seed"] is None
    first = keras.ops.convert_to_numpy(u((8, 8)))
    assert keras.ops.convert_to_numpy(u((8, 8))).tobytes() == first.tobytes()
    assert keras.ops.convert_to_numpy(ik.RandomNormal.from_config(u.get_config())((8, 8))).tobytes() != first.tobytes()
    assert "HeNormal(seed=17)" in repr(CASES[7][0])


def test_errors():
    with pytest.raises(ValueError, match="seed"):
        ik.HeNormal(seed="abc")
    with pytest.raises(ValueError, match="seed"):
        ik.HeNormal(seed=-1)
    with pytest.raises(ValueError, match="fan_sideways"):
        ik.VarianceScaling(mode="fan_sideways")
    with pytest.raises(ValueError, match="scale"):
        ik.VarianceScaling(scale=-1.0)
    with pytest.raises(ValueError, match="int32"):
        ik.HeNormal(seed=0)((3, 3), dtype="int32")


def test_saved_model_round_trip(tmp_path):
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(4, kernel_initializer=ik.HeNormal(seed=5), bias_initializer=ik.RandomUniform(seed=6)),
        keras.layers.Dense(3, kernel_initializer=ik.Orthogonal(0.5, seed=7)),
    ])
    k0 = keras.ops.convert_to_numpy(model.layers[0].kernel)
    assert k0.tobytes() == initlab.variance_scaling_(np.empty((6, 4), np.float32), 2.0, seed=5, layout="keras").tobytes()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    d0, d1 = loaded.layers
    assert isinstance(d0.kernel_initializer, ik.HeNormal) and d0.kernel_initializer.seed == 5
    assert isinstance(d1.kernel_initializer, ik.Orthogonal) and d1.kernel_initializer.gain == 0.5
    assert keras.ops.convert_to_numpy(d0.kernel).tobytes() == k0.tobytes()
    # Rebuilding the architecture from the saved config gives the same initial weights.
    fresh = keras.Sequential.from_config(loaded.get_config())
    assert keras.ops.convert_to_numpy(fresh.layers[0].kernel).tobytes() == k0.tobytes()
    x = np.ones((2, 6), np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))


_NUMPY_BACKEND = r"""
import numpy as np, keras, initlab, initlab.keras as ik
assert keras.backend.backend() == "numpy"
w = ik.GlorotNormal(seed=3)((3, 3, 8, 16), "float64")
ref = initlab.variance_scaling_(np.empty((3, 3, 8, 16)), 1.0, "fan_avg", seed=3, layout="keras")
o = ik.Orthogonal(seed=3)((16, 8), "float64")
ref_o = initlab.orthogonal_(np.empty((16, 8)), seed=3, layout="keras")
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, kernel_initializer=ik.LecunUniform(seed=9))])
ref_m = initlab.lecun_uniform_(np.empty((4, 2), np.float32), seed=9, layout="keras")
print(type(w).__name__, np.asarray(w).tobytes() == ref.tobytes(), np.asarray(o).tobytes() == ref_o.tobytes(),
      np.asarray(m.layers[0].kernel).tobytes() == ref_m.tobytes())
"""


def test_numpy_backend_gives_the_same_numbers():
    env = dict(os.environ, KERAS_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", _NUMPY_BACKEND], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["ndarray", "True", "True", "True"]


def test_input_output_axes_give_keras_fans_and_round_trip():
    """Issue 19 item 12: VarianceScaling and the named classes take Keras's input_axes/output_axes
    (fans = product of those axes' sizes, only when both are given) and get_config keeps them."""
    shape = (32, 8, 16)  # a MultiHeadAttention query kernel: (model dim, heads, head dim)
    init = ik.LecunNormal(seed=3, input_axes=[0], output_axes=[1, 2])
    got = init.numpy(shape)
    s = math.sqrt(1.0 / 32) / initlab.init.TRUNC_STD_2SIGMA
    ref = initlab.trunc_normal_(np.empty(shape, np.float32), 0.0, s, -2 * s, 2 * s, seed=3)
    assert got.tobytes() == ref.tobytes()
    assert abs(float(got.std()) - 1 / math.sqrt(32)) < 0.02  # Keras: 0.177, not 0.063
    theirs = np.asarray(keras.initializers.LecunNormal(seed=3, input_axes=[0], output_axes=[1, 2])(shape))
    assert abs(float(theirs.std()) - float(got.std())) < 0.02
    # Only one list given: ignored, as Keras.
    one = ik.HeUniform(seed=1, input_axes=[0])
    assert one.numpy(shape).tobytes() == ik.HeUniform(seed=1).numpy(shape).tobytes()
    for cls in (ik.GlorotUniform, ik.GlorotNormal, ik.HeUniform, ik.HeNormal, ik.LecunUniform, ik.LecunNormal):
        a = cls(seed=5, input_axes=[0, 1], output_axes=[2])
        cfg = a.get_config()
        assert cfg["input_axes"] == [0, 1] and cfg["output_axes"] == [2]
        b = cls.from_config(cfg)
        assert b.numpy(shape).tobytes() == a.numpy(shape).tobytes()
        assert set(cfg) == set(getattr(keras.initializers, cls.__name__)().get_config())
    vs = ik.VarianceScaling(2.0, "fan_out", "uniform", seed=2, input_axes=[-1], output_axes=[0])
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(vs))
    assert back.get_config() == vs.get_config() and back.numpy(shape).tobytes() == vs.numpy(shape).tobytes()
    bound = math.sqrt(3 * 2.0 / 32)
    assert vs.numpy(shape).tobytes() == initlab.uniform_(np.empty(shape, np.float32), -bound, bound, seed=2).tobytes()
    with pytest.raises(ValueError, match="not axes"):
        ik.LecunNormal(seed=0, input_axes=[3], output_axes=[0]).numpy(shape)
    with pytest.raises(ValueError, match="input_axes"):
        ik.LecunNormal(input_axes=["a"])


def test_zero_d_array_parameters_are_accepted_as_keras_does():
    """Issue 19 item 13: 0-d array parameters (np.array(0.5), a 0-d backend tensor) work, as in Keras."""
    for v in (np.array(0.5), keras.ops.convert_to_tensor(0.5)):
        assert ik.RandomNormal(0.0, v, seed=1).numpy((3, 3)).tobytes() == ik.RandomNormal(0.0, 0.5, seed=1).numpy(
            (3, 3)).tobytes()
        assert ik.RandomUniform(-v, v, seed=1).numpy((3, 3)).tobytes() == ik.RandomUniform(-0.5, 0.5, seed=1).numpy(
            (3, 3)).tobytes()
        assert ik.TruncatedNormal(v, v, seed=1).numpy((3,)).shape == (3,)
        assert ik.VarianceScaling(v, seed=1).numpy((4, 4)).tobytes() == ik.VarianceScaling(0.5, seed=1).numpy(
            (4, 4)).tobytes()
        assert ik.Orthogonal(v, seed=1).numpy((4, 4)).tobytes() == ik.Orthogonal(0.5, seed=1).numpy((4, 4)).tobytes()
    keras.initializers.RandomNormal(0.0, np.array(0.5))((2,))  # Keras accepts it too
