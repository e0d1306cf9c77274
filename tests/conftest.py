"""Shared helpers and fixtures for initlab's test suite.

The helpers here are plain functions (imported by the test modules as ``from conftest import ...``)
that rebuild sampler outputs from the documented element -> Philox mapping, so tests can check the
library against an independent reconstruction.
"""

from __future__ import annotations

import os

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


# Without a GPU, the device routes' Triton kernels are tested in Triton's interpreter on CPU
# tensors (tests/test_device_routes.py). Triton reads TRITON_INTERPRET when it is first imported,
# so it is set here, before any test module can import it.
if "TRITON_INTERPRET" not in os.environ and not _cuda_available():
    os.environ["TRITON_INTERPRET"] = "1"

import initlab  # noqa: E402
from initlab import _core  # noqa: E402

try:  # optional: bfloat16 arrays
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    ml_dtypes = None
    BF16 = None



class OptionalModule:
    """An optional dependency imported on first use: a test that touches it is skipped (not
    failed) when the package is missing, and the rest of its file still runs.

    ``stats = OptionalModule("scipy.stats")`` then ``stats.norm(...)`` inside a test.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("_") or attr == "pytestmark":  # pytest's collection probes, not a use
            raise AttributeError(attr)
        mod = pytest.importorskip(self._name, reason=f"optional test dependency {self._name!r} is not installed "
                                                     "(pip install 'initlab[test]')")
        return getattr(mod, attr)


def requires(name: str):
    """``pytest.mark.skipif`` for a missing optional package (for parametrized cases and classes)."""
    import importlib.util

    try:
        missing = importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        missing = True
    return pytest.mark.skipif(missing, reason=f"optional test dependency {name!r} is not installed")


FLOAT_DTYPES = [np.float32, np.float64, np.float16] + ([BF16] if BF16 is not None else [])
FLOAT_DTYPE_IDS = ["f32", "f64", "f16", "bf16"][: len(FLOAT_DTYPES)]


def pytest_report_header(config):
    return [
        f"initlab {initlab.__version__}: OpenMP {'on' if initlab.openmp_enabled() else 'OFF'}, "
        f"threads {initlab.get_num_threads()}, SIMD paths {initlab.available_simd_paths()} "
        f"(auto = {initlab.simd_path()})"
    ]


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts and ends with the SIMD path on "auto" and the default thread count."""
    threads = initlab.get_num_threads()
    yield
    initlab.set_simd_path("auto")
    initlab.set_num_threads(threads)


# ---- Philox reconstruction ----------------------------------------------------------------------

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK32 = 0xFFFFFFFF


def philox_py(ctr, key):
    """A pure-Python Philox4x32-10 (independent of the core), for cross-checks."""
    c0, c1, c2, c3 = (int(x) & MASK32 for x in ctr)
    k0, k1 = (int(x) & MASK32 for x in key)
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
        p0, p1 = M0 * c0, M1 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
    return [c0, c1, c2, c3]


def philox_block(seed: int, stream: int, block: int):
    """The four words of block ``block`` of (seed, stream), through the core's Philox."""
    ctr = [block & MASK32, (block >> 32) & MASK32, stream & MASK32, (stream >> 32) & MASK32]
    return [int(w) for w in _core.philox4x32_10(ctr, [seed & MASK32, (seed >> 32) & MASK32])]


def words32(seed: int, stream: int, g: int) -> int:
    """The 32-bit word used by float32/16/bf16 element g: word g % 4 of block g // 4."""
    return philox_block(seed, stream, g // 4)[g % 4]


def uniform24_f32(seed: int, stream: int, g: int) -> int:
    """The 24 random bits of float32 uniform element g: five elements per block, in lane-major
    super-blocks of 16 blocks (80 elements). Element 80 s + 16 k + j (k < 4) takes the top 24
    bits of word k of block 16 s + j; element 80 s + 64 + j the low bytes of words 0, 1, 2."""
    s, r = divmod(g, 80)
    if r < 64:
        return philox_block(seed, stream, 16 * s + r % 16)[r // 16] >> 8
    w = philox_block(seed, stream, 16 * s + r - 64)
    return ((w[0] & 0xFF) << 16) | ((w[1] & 0xFF) << 8) | (w[2] & 0xFF)


def uniform_f32_ref(seed: int, stream: int, indices) -> np.ndarray:
    """U[0, 1) float32 values of global indices: u = x * 2^-24, x = uniform24_f32(...)."""
    return np.array([uniform24_f32(seed, stream, int(g)) * 2.0**-24 for g in indices], dtype=np.float32)


def uniform16_ref(seed: int, stream: int, indices) -> np.ndarray:
    """U[0, 1) float32 values of float16/bfloat16 outputs: lane-major super-blocks of 16 blocks
    (128 elements); element 128 s + 32 k + 2 j + h takes half h (low half first) of word k of
    block 16 s + j; u = h * 2^-16."""
    out = []
    for g in indices:
        s, r = divmod(int(g), 128)
        w = philox_block(seed, stream, 16 * s + (r // 2) % 16)[r // 32]
        out.append(((w >> (16 * (r % 2))) & 0xFFFF) * 2.0**-16)
    return np.array(out, dtype=np.float32)


def normal16_ref(seed: int, stream: int, indices, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """float32 values (before rounding) of float16/bfloat16 normal_ outputs, rebuilt from Philox
    words and the core's own float32 log/sincos: one word per Box-Muller pair in the 16-bit
    uniform's super-blocks (element 128 s + 32 k + 2 j + h, pair p = 64 s + 16 k + j, word k of
    block 16 s + j); u1 = (m + 1/2) 2^-18 from the top 18 bits m, refined with word 0 of block
    2^62 + p when m < 512; angle from the low 14 bits; h = 0 takes r cos, h = 1 r sin."""
    f32 = np.float32
    out = []
    for g in indices:
        s, r = divmod(int(g), 128)
        k, j, h = r // 32, (r // 2) % 16, r % 2
        w = philox_block(seed, stream, 16 * s + j)[k]
        m = w >> 14
        f = f32(0.5)
        if m < 512:
            x = philox_block(seed, stream, 2**62 + 64 * s + 16 * k + j)[0]
            f = f32(((x >> 9) << 1) | 1) * f32(2.0**-24)
        u1 = (f32(m) + f) * f32(2.0**-18)
        lg = f32(_core.eval_detmath("log_f32", np.array([float(u1)]))[0])
        rad = np.sqrt(f32(-2.0) * lg, dtype=f32)
        a = float(((w & 0x3FFF) << 10) | 0x200)
        trig = f32(_core.eval_detmath("sin2pi_u24" if h else "cos2pi_u24", np.array([a]))[0])
        out.append(f32(mean) + f32(std) * (rad * trig))
    return np.array(out, dtype=f32)


def uniform_f64_ref(seed: int, stream: int, indices) -> np.ndarray:
    """U[0, 1) float64 values: element g uses words 2(g%2), 2(g%2)+1 of block g//2 (low word first)."""
    out = []
    for g in indices:
        w = philox_block(seed, stream, int(g) // 2)
        j = 2 * (int(g) % 2)
        x = w[j] | (w[j + 1] << 32)
        out.append((x >> 11) * 2.0**-53)
    return np.array(out, dtype=np.float64)


def as_f64(a) -> np.ndarray:
    """Values of a float array of any supported dtype as float64 (exact)."""
    a = np.asarray(a)
    if BF16 is not None and a.dtype == BF16:
        return a.astype(np.float32).astype(np.float64)
    return a.astype(np.float64)


def bits(a) -> np.ndarray:
    """The raw bits of an array (unsigned integers of the same width), C order."""
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]).copy()


# ---- statistics ---------------------------------------------------------------------------------

KS_ACCEPT = 1e-3  # a correct sampler with a fixed seed must not be rejected at this level
KS_REJECT = 1e-6  # the same statistic must reject a 5%-wrong scale at least this strongly


def ks_pvalue(sorted_x, cdf):
    """Two-sided one-sample KS p-value of an already sorted sample (asymptotic distribution)."""
    stats = pytest.importorskip("scipy.stats")

    n = sorted_x.size
    f = cdf(sorted_x)
    i = np.arange(1, n + 1, dtype=np.float64)
    d = max(np.max(i / n - f), np.max(f - (i - 1) / n))
    return float(stats.kstwobign.sf(d * np.sqrt(n)))


def assert_ks(sample, dist, wrong=()):
    """KS test of ``sample`` against the frozen scipy distribution ``dist``; every distribution in
    ``wrong`` (the target with a 5%-wrong scale) must be rejected by the same sample, which shows
    the sample size and threshold are strong enough to catch a wrong variance."""
    x = np.sort(as_f64(np.ravel(sample)))
    p = ks_pvalue(x, dist.cdf)
    assert p > KS_ACCEPT, f"KS rejects the target distribution: p = {p:.3g}"
    for w in wrong:
        pw = ks_pvalue(x, w.cdf)
        assert pw < KS_REJECT, f"KS cannot tell a 5%-wrong scale apart: p = {pw:.3g}"


def scaled(make, scale):
    """[make(scale * 0.95), make(scale * 1.05)]: the two 5%-wrong alternatives."""
    return [make(scale * 0.95), make(scale * 1.05)]
