"""Triton mirrors of the core's deterministic arithmetic (csrc/include/initlab/philox.hpp,
detmath.hpp, lowp.hpp, csrc/src/truncnorm_reject.hpp): Philox4x32-10, log, exp, sincos, the
inverse normal CDF and the float16/bfloat16 rounding, operation for operation.

Rules that make the bits equal to the C++ core's on every device:
* only ``+ - *`` and IEEE division/square root (``tl.div_rn``, ``tl.sqrt_rn``; plain ``/`` and
  ``tl.sqrt`` are approximate on NVIDIA GPUs), no fused multiply-add (kernels are compiled with
  ``enable_fp_fusion=False``; the ahead-of-time test checks the PTX for ``fma``);
* the same constants, rounded as the C++ compiler rounds them (``_consts``), the same evaluation
  order (C++ evaluates ``a * b * c`` as ``(a * b) * c``);
* the float16/bfloat16 rounding with integer operations (the core's ``lowp``), not a
  conversion instruction whose NaN/subnormal handling might differ.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._consts import f32_literal as _f, f32_of_double as _d

# ---- Philox4x32-10 -------------------------------------------------------------------------
_M0 = tl.constexpr(0xD2511F53)
_M1 = tl.constexpr(0xCD9E8D57)
_W0 = tl.constexpr(0x9E3779B9)
_W1 = tl.constexpr(0xBB67AE85)


@triton.jit
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counters (c0, c1, c2, c3) under key (k0, k1); all uint32."""
    m0 = tl.full(c0.shape, _M0, tl.uint32)
    m1 = tl.full(c0.shape, _M1, tl.uint32)
    w0 = tl.full([], _W0, tl.uint32)
    w1 = tl.full([], _W1, tl.uint32)
    for r in tl.static_range(10):
        if r > 0:
            k0 = k0 + w0
            k1 = k1 + w1
        hi0 = tl.umulhi(m0, c0)
        lo0 = m0 * c0
        hi1 = tl.umulhi(m1, c2)
        lo1 = m1 * c2
        n0 = hi1 ^ c1 ^ k0
        n2 = hi0 ^ c3 ^ k1
        c0 = n0
        c1 = lo1
        c2 = n2
        c3 = lo0
    return c0, c1, c2, c3


@triton.jit
def philox_block(block, k0, k1, s0, s1):
    """The four words of block ``block`` (uint64 tensor) of stream (s0, s1) under key (k0, k1)."""
    lo = (block & 0xFFFFFFFF).to(tl.uint32)
    hi = (block >> 32).to(tl.uint32)
    z = tl.zeros(lo.shape, tl.uint32)
    return philox(lo, hi, z + s0, z + s1, k0, k1)


# ---- float32 log and sincos ----------------------------------------------------------------
_SQRT2_F = tl.constexpr(_f("1.41421356"))
_LOG_C3 = tl.constexpr(_f("0.333333333"))
_LOG_C5 = tl.constexpr(_f("0.2"))
_LOG_C7 = tl.constexpr(_f("0.142857143"))
_LOG_C9 = tl.constexpr(_f("0.111111111"))
_LN2_HI_F = tl.constexpr(_f("0.693145752"))
_LN2_LO_F = tl.constexpr(_f("1.42860677e-06"))


@triton.jit
def log_f32(x):
    """detmath::log_f32: natural log of a positive normal float32."""
    b = x.to(tl.uint32, bitcast=True)
    e = ((b >> 23) & 0xFF).to(tl.int32) - 127
    m = ((b & 0x7FFFFF) | 0x3F800000).to(tl.float32, bitcast=True)
    big = m > _SQRT2_F
    m = tl.where(big, m * 0.5, m)
    e = e + big.to(tl.int32)
    s = tl.div_rn(m - 1.0, m + 1.0)
    s2 = s * s
    p = s2 * (_LOG_C3 + s2 * (_LOG_C5 + s2 * (_LOG_C7 + s2 * _LOG_C9)))
    ef = e.to(tl.float32)
    return ef * _LN2_HI_F + ((2.0 * s + 2.0 * s * p) + ef * _LN2_LO_F)


_TWO_PI_24 = tl.constexpr(_f("3.74507028e-07"))
_S3 = tl.constexpr(_f("-0.166666667"))
_S5 = tl.constexpr(_f("8.33333333e-03"))
_S7 = tl.constexpr(_f("-1.98412698e-04"))
_S9 = tl.constexpr(_f("2.75573192e-06"))
_C2 = tl.constexpr(-0.5)
_C4 = tl.constexpr(_f("4.16666667e-02"))
_C6 = tl.constexpr(_f("-1.38888889e-03"))
_C8 = tl.constexpr(_f("2.48015873e-05"))
_C10 = tl.constexpr(_f("-2.75573192e-07"))


@triton.jit
def sincos_2pi_u24(k):
    """detmath::sincos_2pi_u24: (sin, cos) of 2 pi k 2^-24 for uint32 k < 2^24."""
    q = (k + (1 << 21)) >> 22
    t = k.to(tl.int32) - (q << 22).to(tl.int32)
    x = t.to(tl.float32) * _TWO_PI_24
    x2 = x * x
    s = x + x * x2 * (_S3 + x2 * (_S5 + x2 * (_S7 + x2 * _S9)))
    c = 1.0 + x2 * (_C2 + x2 * (_C4 + x2 * (_C6 + x2 * (_C8 + x2 * _C10))))
    qq = q & 3
    odd = (qq & 1) != 0
    sv = tl.where(odd, c, s)
    cv = tl.where(odd, s, c)
    s_out = tl.where(qq >= 2, -sv, sv)
    c_out = tl.where((qq == 1) | (qq == 2), -cv, cv)
    return s_out, c_out


# ---- float64 log, exp, sincos --------------------------------------------------------------
# detmath.hpp: kLog64P, kSin64P, kCos64P (highest degree first).
_L0 = tl.constexpr(0.07308292712444311)
_L1 = tl.constexpr(0.07665855309105386)
_L2 = tl.constexpr(0.09091444727837474)
_L3 = tl.constexpr(0.11111105565129939)
_L4 = tl.constexpr(0.14285714313001635)
_L5 = tl.constexpr(0.19999999999949722)
_L6 = tl.constexpr(0.3333333333333335)
_LN2_HI = tl.constexpr(6.93147180369123816490e-01)
_LN2_LO = tl.constexpr(1.90821492927058770002e-10)
_SQRT2_D = tl.constexpr(1.4142135623730951)


@triton.jit
def _c64(v: tl.constexpr):
    return tl.full([], v, tl.float64)


@triton.jit
def log_f64(x):
    """detmath::log_f64: natural log of a positive normal float64."""
    b = x.to(tl.uint64, bitcast=True)
    e = ((b >> 52) & 0x7FF).to(tl.int64) - 1023
    m = ((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).to(tl.float64, bitcast=True)
    big = m > _c64(_SQRT2_D)
    m = tl.where(big, m * _c64(0.5), m)
    e = e + big.to(tl.int64)
    one = _c64(1.0)
    s = (m - one) / (m + one)  # float64 division is IEEE (div.rn.f64) on every target
    s2 = s * s
    p = _c64(_L0)
    p = _c64(_L1) + s2 * p
    p = _c64(_L2) + s2 * p
    p = _c64(_L3) + s2 * p
    p = _c64(_L4) + s2 * p
    p = _c64(_L5) + s2 * p
    p = _c64(_L6) + s2 * p
    ed = e.to(tl.float64)
    two = _c64(2.0)
    return ed * _c64(_LN2_HI) + ((two * s + two * s * (s2 * p)) + ed * _c64(_LN2_LO))


# 1/13!, then 1/12! ... 1/2!, 1, 1 (detmath::exp_f64's Horner coefficients, each a correctly
# rounded double quotient as the C++ compiler folds them).
_E13 = tl.constexpr(1.0 / 6227020800.0)
_E12 = tl.constexpr(1.0 / 479001600.0)
_E11 = tl.constexpr(1.0 / 39916800.0)
_E10 = tl.constexpr(1.0 / 3628800.0)
_E9 = tl.constexpr(1.0 / 362880.0)
_E8 = tl.constexpr(1.0 / 40320.0)
_E7 = tl.constexpr(1.0 / 5040.0)
_E6 = tl.constexpr(1.0 / 720.0)
_E5 = tl.constexpr(1.0 / 120.0)
_E4 = tl.constexpr(1.0 / 24.0)
_E3 = tl.constexpr(1.0 / 6.0)
_LOG2E = tl.constexpr(1.4426950408889634)
_TWO_M1000 = tl.constexpr(2.0 ** -1000)


@triton.jit
def exp_f64(x):
    """detmath::exp_f64 (0 below -745, argument capped at 709), vectorized with selects."""
    low = x < _c64(-745.0)
    xc = tl.where(low, _c64(0.0), x)
    xc = tl.where(xc > _c64(709.0), _c64(709.0), xc)
    half = tl.where(xc < _c64(0.0), _c64(-0.5), _c64(0.5))
    k = (xc * _c64(_LOG2E) + half).to(tl.int64).to(tl.float64)
    r = (xc - k * _c64(_LN2_HI)) - k * _c64(_LN2_LO)
    p = _c64(_E13)
    p = _c64(_E12) + r * p
    p = _c64(_E11) + r * p
    p = _c64(_E10) + r * p
    p = _c64(_E9) + r * p
    p = _c64(_E8) + r * p
    p = _c64(_E7) + r * p
    p = _c64(_E6) + r * p
    p = _c64(_E5) + r * p
    p = _c64(_E4) + r * p
    p = _c64(_E3) + r * p
    p = _c64(0.5) + r * p
    p = _c64(1.0) + r * p
    p = _c64(1.0) + r * p
    ki = k.to(tl.int64)
    tiny = ki < -1000
    p = tl.where(tiny, p * _c64(_TWO_M1000), p)
    ki = tl.where(tiny, ki + 1000, ki)
    scale = ((ki + 1023) << 52).to(tl.float64, bitcast=True)
    return tl.where(low, _c64(0.0), p * scale)


_SN0 = tl.constexpr(1.5918115263265974e-10)
_SN1 = tl.constexpr(-2.505113165023518e-08)
_SN2 = tl.constexpr(2.7557316101617874e-06)
_SN3 = tl.constexpr(-0.00019841269836756774)
_SN4 = tl.constexpr(0.008333333333330948)
_SN5 = tl.constexpr(-0.16666666666666666)
_CS0 = tl.constexpr(-1.1367988423294987e-11)
_CS1 = tl.constexpr(2.0875886564482672e-09)
_CS2 = tl.constexpr(-2.755731556524682e-07)
_CS3 = tl.constexpr(2.4801587293690305e-05)
_CS4 = tl.constexpr(-0.001388888888888077)
_CS5 = tl.constexpr(0.04166666666666664)
_CS6 = tl.constexpr(-0.5)
_TWO_PI_53 = tl.constexpr(6.9757369960172639e-16)


@triton.jit
def sincos_2pi_u53(k):
    """detmath::sincos_2pi_u53: (sin, cos) of 2 pi k 2^-53 for uint64 k < 2^53."""
    q = (k + (1 << 50)) >> 51
    t = k.to(tl.int64) - (q << 51).to(tl.int64)
    x = t.to(tl.float64) * _c64(_TWO_PI_53)
    x2 = x * x
    s = _c64(_SN0)
    s = _c64(_SN1) + x2 * s
    s = _c64(_SN2) + x2 * s
    s = _c64(_SN3) + x2 * s
    s = _c64(_SN4) + x2 * s
    s = _c64(_SN5) + x2 * s
    s = x + x * x2 * s
    c = _c64(_CS0)
    c = _c64(_CS1) + x2 * c
    c = _c64(_CS2) + x2 * c
    c = _c64(_CS3) + x2 * c
    c = _c64(_CS4) + x2 * c
    c = _c64(_CS5) + x2 * c
    c = _c64(_CS6) + x2 * c
    c = _c64(1.0) + x2 * c
    qq = q & 3
    odd = (qq & 1) != 0
    sv = tl.where(odd, c, s)
    cv = tl.where(odd, s, c)
    s_out = tl.where(qq >= 2, -sv, sv)
    c_out = tl.where((qq == 1) | (qq == 2), -cv, cv)
    return s_out, c_out


# ---- the float32 inverse normal CDF (detmath::ndtri_lower<float>) ---------------------------
_A0 = tl.constexpr(_d(2.81022636e-08))
_A1 = tl.constexpr(_d(3.43273939e-07))
_A2 = tl.constexpr(_d(-3.5233877e-06))
_A3 = tl.constexpr(_d(-4.39150654e-06))
_A4 = tl.constexpr(_d(0.00021858087))
_A5 = tl.constexpr(_d(-0.00125372503))
_A6 = tl.constexpr(_d(-0.00417768164))
_A7 = tl.constexpr(_d(0.246640727))
_A8 = tl.constexpr(_d(1.50140941))
_B0 = tl.constexpr(_d(-0.000200214257))
_B1 = tl.constexpr(_d(0.000100950558))
_B2 = tl.constexpr(_d(0.00134934322))
_B3 = tl.constexpr(_d(-0.00367342844))
_B4 = tl.constexpr(_d(0.00573950773))
_B5 = tl.constexpr(_d(-0.0076224613))
_B6 = tl.constexpr(_d(0.00943887047))
_B7 = tl.constexpr(_d(1.00167406))
_B8 = tl.constexpr(_d(2.83297682))
_SQRT2_ND = tl.constexpr(_d(1.41421356237309505))


@triton.jit
def ndtri_lower_f32(p):
    """Phi^{-1}(p) for 1e-8 <= p <= 1/2, float32 (Giles 2011, the core's evaluation order)."""
    w0 = -log_f32(4.0 * p * (1.0 - p))
    w = w0 - 2.5
    a = tl.full(w.shape, _A0, tl.float32)
    a = _A1 + a * w
    a = _A2 + a * w
    a = _A3 + a * w
    a = _A4 + a * w
    a = _A5 + a * w
    a = _A6 + a * w
    a = _A7 + a * w
    a = _A8 + a * w
    v = tl.sqrt_rn(w0) - 3.0
    b = tl.full(v.shape, _B0, tl.float32)
    b = _B1 + b * v
    b = _B2 + b * v
    b = _B3 + b * v
    b = _B4 + b * v
    b = _B5 + b * v
    b = _B6 + b * v
    b = _B7 + b * v
    b = _B8 + b * v
    r = tl.where(w0 < 5.0, a, b)
    return _SQRT2_ND * r * (2.0 * p - 1.0)


# ---- float32 -> float16 / bfloat16 bits (lowp.hpp) -----------------------------------------
@triton.jit
def bf16_bits(f):
    """lowp::bf16_from_f32: round to nearest even, NaN kept quiet; uint32 holding 16 bits."""
    b = f.to(tl.uint32, bitcast=True)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return tl.where(nan, (b >> 16) | 0x40, r)


@triton.jit
def f16_bits(f):
    """lowp::f16_from_f32: round to nearest even (subnormals included); uint32 holding 16 bits."""
    b = f.to(tl.uint32, bitcast=True)
    sign = (b >> 16) & 0x8000
    a = b & 0x7FFFFFFF
    # normal results
    r = a - 0x38000000
    rounded = (r + 0x0FFF + ((r >> 13) & 1)) >> 13
    # subnormal results: shift in 14..24 where used (clamped elsewhere so every shift is defined)
    e = a >> 23
    sub = (a < 0x38800000) & (a >= 0x33000000)
    sh = tl.where(sub, 126 - e, 1)
    mm = (a & 0x7FFFFF) | 0x800000
    q = mm >> sh
    rem = mm & ((1 << sh) - 1)
    half = 1 << (sh - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) != 0))
    rs = q + up.to(tl.uint32)
    res = tl.where(a < 0x38800000, tl.where(a < 0x33000000, 0, rs), rounded)
    res = tl.where(a >= 0x477FF000, 0x7C00, res)
    res = tl.where(a > 0x7F800000, 0x7E00, res)
    return sign | res
