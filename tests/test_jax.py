"""initlab.jax: traceable (key, shape, dtype) initializers with JAX semantics and initlab's numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import initlab  # noqa: E402
import initlab.jax as ij  # noqa: E402

SEED = 23


def _np(a):
    return np.asarray(jax.device_get(a))


# (factory result, shape, the NumPy fill it must equal given a seed argument s)
def _cases(seed=None):
    return [
        (ij.uniform(0.3, seed=seed), (5, 4), lambda a, s: initlab.uniform_(a, 0.0, 0.3, seed=s)),
        (ij.normal(0.2, seed=seed), (7, 3), lambda a, s: initlab.normal_(a, 0.0, 0.2, seed=s)),
        (ij.truncated_normal(0.5, lower=-1.0, upper=3.0, seed=seed), (9, 9),
         lambda a, s: initlab.trunc_normal_(a, 0.0, 0.5, -0.5, 1.5, seed=s)),
        (ij.variance_scaling(0.7, "fan_out", "normal", in_axis=0, out_axis=(1, 2), seed=seed), (6, 5, 4),
         lambda a, s: initlab.variance_scaling_(a, 0.7, "fan_out", "untruncated_normal", seed=s, layout=(0, (1, 2)))),
        (ij.glorot_uniform(seed=seed), (3, 3, 4, 8), lambda a, s: initlab.xavier_uniform_(a, seed=s, layout="jax")),
        (ij.glorot_normal(seed=seed), (10, 6),
         lambda a, s: initlab.variance_scaling_(a, 1.0, "fan_avg", seed=s, layout="jax")),
        (ij.he_uniform(seed=seed), (8, 16),
         lambda a, s: initlab.variance_scaling_(a, 2.0, "fan_in", "uniform", seed=s, layout="jax")),
        (ij.he_normal(seed=seed), (8, 16), lambda a, s: initlab.variance_scaling_(a, 2.0, seed=s, layout="jax")),
        (ij.lecun_uniform(seed=seed), (12, 5), lambda a, s: initlab.lecun_uniform_(a, seed=s, layout="jax")),
        (ij.lecun_normal(seed=seed), (12, 5), lambda a, s: initlab.lecun_normal_(a, seed=s, layout="jax")),
        (ij.orthogonal(2.0, seed=seed), (4, 2, 6), lambda a, s: initlab.orthogonal_(a, 2.0, seed=s, layout="jax")),
    ]


@pytest.mark.parametrize("case", range(11))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_int_seed_gives_the_numpy_fill(case, dtype):
    init, shape, ref = _cases(SEED)[case]
    key = jax.random.key(999)  # ignored when seed= is given
    w = init(key, shape, dtype)
    assert w.shape == shape and w.dtype == dtype
    expect = ref(np.empty(shape, np.dtype(dtype)), SEED)
    assert _np(w).tobytes() == expect.tobytes()
    # Under jit too: the callback runs on the host with the same numbers.
    assert _np(jax.jit(lambda k: init(k, shape, dtype))(key)).tobytes() == expect.tobytes()


@pytest.mark.parametrize("case", range(11))
def test_key_maps_to_seed_and_stream(case):
    init, shape, ref = _cases()[case]
    key = jax.random.fold_in(jax.random.key(7), case)
    seed, stream = ij.key_to_seed(jax.random.key_data(key))
    expect = ref(np.empty(shape, np.float32), initlab.Generator(seed, stream=stream))
    assert _np(init(key, shape)).tobytes() == expect.tobytes()
    assert _np(jax.jit(init, static_argnames="shape")(key, shape=shape)).tobytes() == expect.tobytes()


def test_key_mapping_is_documented_and_deterministic():
    # jax.random.key(s) for s < 2**32 has data (0, s): initlab seed s, stream 0.
    assert ij.key_to_seed(jax.random.key_data(jax.random.key(5))) == (5, 0)
    assert ij.key_to_seed(np.array([1, 2], np.uint32)) == (2**32 + 2, 0)
    assert ij.key_to_seed(np.array([1, 2, 3, 4], np.uint32)) == (2**32 + 2, 3 * 2**32 + 4)
    w = ij.normal(1.0)(jax.random.key(5), (4, 4))
    assert _np(w).tobytes() == initlab.normal_(np.empty((4, 4), np.float32), seed=5).tobytes()
    # Raw uint32 keys (jax.random.PRNGKey) work the same way.
    assert _np(ij.normal(1.0)(jax.random.PRNGKey(5), (4, 4))).tobytes() == _np(w).tobytes()
    k1, k2 = jax.random.split(jax.random.key(0))
    assert _np(ij.he_normal()(k1, (8, 8))).tobytes() != _np(ij.he_normal()(k2, (8, 8))).tobytes()
    with pytest.raises(ValueError, match="2 .* or 4"):
        ij.key_to_seed(np.zeros(3, np.uint32))


def test_traceable_eval_shape_and_vmap():
    init = ij.he_normal()
    key = jax.random.key(3)
    s = jax.eval_shape(lambda k: init(k, (3, 5), jnp.bfloat16), key)
    assert s.shape == (3, 5) and s.dtype == jnp.bfloat16
    keys = jax.random.split(key, 4)
    stacked = jax.vmap(lambda k: init(k, (2, 3)))(keys)
    for i in range(4):
        assert _np(stacked[i]).tobytes() == _np(init(keys[i], (2, 3))).tobytes()


def test_jax_semantics():
    # he_normal: truncated at +-2 sigma with the corrected std; uniform(scale) in [0, scale).
    w = _np(ij.he_normal(seed=0)(None, (300, 300)))
    sigma = math.sqrt(2 / 300)
    assert abs(w.std() / sigma - 1) < 6 / math.sqrt(2 * w.size)
    assert np.abs(w).max() <= 2 * sigma / 0.87962566103423978 * (1 + 1e-6)
    u = _np(ij.uniform(0.5, seed=1)(None, (100, 100)))
    assert u.min() >= 0 and u.max() < 0.5
    # batch_axis is left out of the fans: each of the 4 (16, 32) matrices has fan_in 16.
    b = _np(ij.variance_scaling(1.0, "fan_in", "uniform", batch_axis=(0,), seed=2)(None, (4, 16, 32)))
    assert np.abs(b).max() <= math.sqrt(3 / 16) and np.abs(b).max() > 0.95 * math.sqrt(3 / 16)
    # orthogonal with column_axis=0: the columns are axis 0, the rows the other axes flattened.
    o = _np(ij.orthogonal(column_axis=0, seed=3)(None, (4, 3, 5)))
    m = np.moveaxis(o, 0, -1).reshape(15, 4)
    np.testing.assert_allclose(m.T @ m, np.eye(4), atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match="in_axis"):
        ij.he_normal(seed=0)(None, (5,))
    with pytest.raises(ValueError, match="2D"):
        ij.orthogonal(seed=0)(None, (5,))
    with pytest.raises(ValueError, match="mode"):
        ij.variance_scaling(1.0, "fan_sideways", "uniform")
    with pytest.raises(ValueError, match="distribution"):
        ij.variance_scaling(1.0, "fan_in", "gaussian")
    with pytest.raises(ValueError, match="std"):
        ij.normal(-1.0)
    with pytest.raises(ValueError, match="int32"):
        ij.normal(seed=0)(None, (2, 2), jnp.int32)
    with pytest.raises(ValueError, match="seed"):
        ij.normal(seed=-3)


def test_flax_linen_dense_init_and_apply_under_jit():
    nn = pytest.importorskip("flax.linen")

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(16, kernel_init=ij.he_normal())(x)
            x = nn.relu(x)
            return nn.Dense(3, kernel_init=ij.lecun_normal(seed=SEED), bias_init=ij.normal(0.1, seed=1))(x)

    model = MLP()
    x = jnp.ones((2, 8))
    key = jax.random.key(0)
    abstract = jax.eval_shape(model.init, key, x)
    assert abstract["params"]["Dense_0"]["kernel"].shape == (8, 16)
    params = jax.jit(model.init)(key, x)
    again = model.init(key, x)
    k1 = _np(params["params"]["Dense_1"]["kernel"])
    assert k1.tobytes() == initlab.lecun_normal_(np.empty((16, 3), np.float32), seed=SEED, layout="jax").tobytes()
    assert _np(params["params"]["Dense_0"]["kernel"]).tobytes() == _np(again["params"]["Dense_0"]["kernel"]).tobytes()
    y = jax.jit(model.apply)(params, x)
    assert y.shape == (2, 3) and bool(jnp.isfinite(y).all())


def test_flax_nnx_linear():
    nnx = pytest.importorskip("flax.nnx")
    lin = nnx.Linear(6, 4, kernel_init=ij.glorot_uniform(seed=SEED), rngs=nnx.Rngs(0))
    ref = initlab.xavier_uniform_(np.empty((6, 4), np.float32), seed=SEED, layout="jax")
    assert _np(lin.kernel[...]).tobytes() == ref.tobytes()
    abstract = nnx.eval_shape(lambda: nnx.Linear(6, 4, kernel_init=ij.he_normal(), rngs=nnx.Rngs(0)))
    assert abstract.kernel.shape == (6, 4)
    y = nnx.jit(lambda m, x: m(x))(lin, jnp.ones((3, 6)))
    assert y.shape == (3, 4)


def test_zero_d_array_parameters_are_accepted_as_jax_does():
    """Issue 19 item 13: a 0-d array parameter (``jnp.array(1.0)``, what JAX's own tests pass) is
    accepted and gives the numbers of the plain float."""
    key = jax.random.key(3)
    for make in (lambda v: ij.normal(v), lambda v: ij.uniform(v), lambda v: ij.truncated_normal(v),
                 lambda v: ij.variance_scaling(v, "fan_in", "truncated_normal"), lambda v: ij.orthogonal(v)):
        want = np.asarray(make(0.5)(key, (4, 3), jnp.float32))
        for v in (jnp.array(0.5), np.array(0.5), np.float32(0.5)):
            assert np.array_equal(np.asarray(make(v)(key, (4, 3), jnp.float32)), want)
    assert jax.nn.initializers.normal(jnp.array(1.0))(key, (2,)).shape == (2,)  # JAX accepts it too


def test_bad_key_and_infinite_orthogonal_scale_are_value_errors():
    """Issue 19 item 19: a key with the wrong number of words and orthogonal(scale=inf) raise
    ValueError at call/construction time, not an error from inside the host callback."""
    init = ij.normal(1.0)
    with pytest.raises(ValueError, match="words"):
        init(jnp.zeros(3, jnp.uint32), (2, 2))
    with pytest.raises(ValueError, match="words"):
        init(jnp.zeros((2, 2), jnp.uint32), (2, 2))  # a batch of keys: vmap instead
    with pytest.raises(ValueError, match="finite"):
        ij.orthogonal(float("inf"))
    with pytest.raises(ValueError, match="finite"):
        ij.orthogonal(float("nan"))
