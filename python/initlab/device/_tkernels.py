"""The Triton sampling kernels: the core's element -> counter mappings (distributions.hpp), one
kernel per sampler family, each a mirror of the scalar reference in csrc/src/kernels_impl.inl.

Every program handles one *tile* of one *row*: a row is a run of destination elements whose
global indices are consecutive (the last dimension after merging, as the core's Walker does), a
tile is a span of whole Philox blocks (or super-blocks) in global-index space aligned to the
sampler's layout. Each program draws its blocks once, computes every value of them, and stores
those whose global index falls in the row (the rest are masked off). So a value depends only on
(seed, stream, parameters, dtype, global index): any layout, any window, any split.

Parameters come from the core (``_core.prepare_sampler``: the same validation and the same
derived numbers as a CPU fill) in a small float64 tensor; Philox key and stream in an int64 one.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ._tmath import (bf16_bits, exp_f64, f16_bits, log_f32, log_f64, ndtri_lower_f32, philox, philox_block,
                     sincos_2pi_u24, sincos_2pi_u53)

# Output codes (the core's DType): float32, float64, float16, bfloat16.
F32 = tl.constexpr(0)
F64 = tl.constexpr(1)
F16 = tl.constexpr(2)
BF16 = tl.constexpr(3)

# Indices into the parameter tensor (see launch.py: PARAM_ORDER).
_SHIFT = tl.constexpr(0)
_SCALE = tl.constexpr(1)
_LO = tl.constexpr(2)
_HI = tl.constexpr(3)
_ALPHA = tl.constexpr(4)
_BETA = tl.constexpr(5)
_PA = tl.constexpr(6)
_QB = tl.constexpr(7)
_M = tl.constexpr(8)
_A = tl.constexpr(9)
_B = tl.constexpr(10)
_C = tl.constexpr(11)
_LB = tl.constexpr(12)
_LAM = tl.constexpr(13)


@triton.jit
def _row(rowg_ptr, rowm_ptr, tiles, SB: tl.constexpr, TILE: tl.constexpr):
    """This program's row (global index and memory offset of its first element) and the global
    index where its tile starts (aligned to the sampler's super-block of SB elements)."""
    pid = tl.program_id(0).to(tl.int64)
    row = pid // tiles
    t = pid - row * tiles
    g_row = tl.load(rowg_ptr + row)
    m_row = tl.load(rowm_ptr + row)
    base = (g_row // SB) * SB + t * TILE
    return g_row, m_row, base


@triton.jit
def _put(out_ptr, vals, g, g_row, m_row, n, stride):
    col = g - g_row
    mask = (col >= 0) & (col < n)
    tl.store(out_ptr + (m_row + col * stride), vals, mask=mask)


@triton.jit
def _keys(key_ptr):
    k0 = tl.load(key_ptr + 0).to(tl.uint32)
    k1 = tl.load(key_ptr + 1).to(tl.uint32)
    s0 = tl.load(key_ptr + 2).to(tl.uint32)
    s1 = tl.load(key_ptr + 3).to(tl.uint32)
    return k0, k1, s0, s1


@triton.jit
def _p32(prm_ptr, i: tl.constexpr):
    return tl.load(prm_ptr + i).to(tl.float32)


@triton.jit
def _clamp(v, lo, hi):
    return tl.where(v < lo, lo, tl.where(v > hi, hi, v))


@triton.jit
def _bits16(y, OUT: tl.constexpr):
    if OUT == BF16:
        return bf16_bits(y).to(tl.int16)
    else:
        return f16_bits(y).to(tl.int16)


@triton.jit
def _superblocks(rowg_ptr, rowm_ptr, key_ptr, tiles, SE: tl.constexpr, S: tl.constexpr):
    """This program's S lane-major super-blocks of 16 Philox blocks (SE elements each): the row,
    the super-block indices [S, 1], the block-in-super-block indices [1, 16], and the 4 words of
    every block ([S, 16] each)."""
    g_row, m_row, base = _row(rowg_ptr, rowm_ptr, tiles, SE, SE * S)
    k0, k1, s0, s1 = _keys(key_ptr)
    sb = base // SE + tl.arange(0, S).to(tl.int64)[:, None]
    j = tl.arange(0, 16).to(tl.int64)[None, :]
    w0, w1, w2, w3 = philox_block((sb * 16 + j).to(tl.uint64), k0, k1, s0, s1)
    return g_row, m_row, sb, j, w0, w1, w2, w3


@triton.jit
def _blocks(rowg_ptr, rowm_ptr, key_ptr, tiles, PER: tl.constexpr, B: tl.constexpr):
    """This program's B consecutive Philox blocks of PER elements each: the row, the block
    indices [B] and the 4 words of every block."""
    g_row, m_row, base = _row(rowg_ptr, rowm_ptr, tiles, PER, PER * B)
    k0, k1, s0, s1 = _keys(key_ptr)
    blk = base // PER + tl.arange(0, B).to(tl.int64)
    w0, w1, w2, w3 = philox_block(blk.to(tl.uint64), k0, k1, s0, s1)
    return g_row, m_row, blk, w0, w1, w2, w3


# ---- uniform -------------------------------------------------------------------------------
@triton.jit
def _u24(x, shift, scale, lo, hi):
    u = x.to(tl.int32).to(tl.float32) * 5.9604644775390625e-08
    return _clamp(shift + scale * u, lo, hi)


@triton.jit
def uniform_f32_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, S: tl.constexpr):
    """float32 uniform: 24 bits per value, lane-major super-blocks of 16 blocks (80 values)."""
    g_row, m_row, sb, j, w0, w1, w2, w3 = _superblocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 80, S)
    shift = _p32(prm_ptr, _SHIFT)
    scale = _p32(prm_ptr, _SCALE)
    lo = _p32(prm_ptr, _LO)
    hi = _p32(prm_ptr, _HI)
    g = sb * 80 + j
    _put(out_ptr, _u24(w0 >> 8, shift, scale, lo, hi), g, g_row, m_row, n, stride)
    _put(out_ptr, _u24(w1 >> 8, shift, scale, lo, hi), g + 16, g_row, m_row, n, stride)
    _put(out_ptr, _u24(w2 >> 8, shift, scale, lo, hi), g + 32, g_row, m_row, n, stride)
    _put(out_ptr, _u24(w3 >> 8, shift, scale, lo, hi), g + 48, g_row, m_row, n, stride)
    x4 = ((w0 & 0xFF) << 16) | ((w1 & 0xFF) << 8) | (w2 & 0xFF)
    _put(out_ptr, _u24(x4, shift, scale, lo, hi), g + 64, g_row, m_row, n, stride)


@triton.jit
def _u16_pair(w, gk, shift, scale, lo, hi, out_ptr, g_row, m_row, n, stride, OUT: tl.constexpr):
    ulo = (w & 0xFFFF).to(tl.int32).to(tl.float32) * 1.52587890625e-05
    uhi = (w >> 16).to(tl.int32).to(tl.float32) * 1.52587890625e-05
    ylo = _bits16(_clamp(shift + scale * ulo, lo, hi), OUT)
    yhi = _bits16(_clamp(shift + scale * uhi, lo, hi), OUT)
    _put(out_ptr, tl.join(ylo, yhi), tl.join(gk, gk + 1), g_row, m_row, n, stride)


@triton.jit
def uniform_16_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, S: tl.constexpr,
                      OUT: tl.constexpr):
    """float16/bfloat16 uniform: 16 bits per value, lane-major super-blocks of 16 blocks (128)."""
    g_row, m_row, sb, j, w0, w1, w2, w3 = _superblocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 128, S)
    shift = _p32(prm_ptr, _SHIFT)
    scale = _p32(prm_ptr, _SCALE)
    lo = _p32(prm_ptr, _LO)
    hi = _p32(prm_ptr, _HI)
    g = sb * 128 + 2 * j
    _u16_pair(w0, g, shift, scale, lo, hi, out_ptr, g_row, m_row, n, stride, OUT)
    _u16_pair(w1, g + 32, shift, scale, lo, hi, out_ptr, g_row, m_row, n, stride, OUT)
    _u16_pair(w2, g + 64, shift, scale, lo, hi, out_ptr, g_row, m_row, n, stride, OUT)
    _u16_pair(w3, g + 96, shift, scale, lo, hi, out_ptr, g_row, m_row, n, stride, OUT)


@triton.jit
def _u53(lo, hi):
    k = ((hi.to(tl.uint64) << 32) | lo.to(tl.uint64)) >> 11
    return k.to(tl.int64).to(tl.float64)


@triton.jit
def uniform_f64_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, B: tl.constexpr):
    """float64 uniform: one 64-bit word per value, two values per block."""
    g_row, m_row, blk, w0, w1, w2, w3 = _blocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 2, B)
    shift = tl.load(prm_ptr + _SHIFT)
    scale = tl.load(prm_ptr + _SCALE)
    lo = tl.load(prm_ptr + _LO)
    hi = tl.load(prm_ptr + _HI)
    e53 = tl.full([], 1.1102230246251565404e-16, tl.float64)
    y0 = _clamp(shift + scale * (_u53(w0, w1) * e53), lo, hi)
    y1 = _clamp(shift + scale * (_u53(w2, w3) * e53), lo, hi)
    _put(out_ptr, tl.join(y0, y1), tl.join(2 * blk, 2 * blk + 1), g_row, m_row, n, stride)


# ---- normal --------------------------------------------------------------------------------
@triton.jit
def _bm32(wa, wb):
    """Box-Muller on one word pair, float32: (r cos, r sin)."""
    u1 = (wa >> 1).to(tl.int32).to(tl.float32) * 4.656612873077392578125e-10 + 2.3283064365386962890625e-10
    r = tl.sqrt_rn(-2.0 * log_f32(u1))
    s, c = sincos_2pi_u24(wb >> 8)
    return r * c, r * s


@triton.jit
def _join4(a, b, c, d):
    """[N, 2, 2] holding a, b, c, d at [n, 0, 0], [n, 1, 0], [n, 0, 1], [n, 1, 1]: with offsets
    joined the same way, element 4 n + k lands at k."""
    return tl.join(tl.join(a, b), tl.join(c, d))


@triton.jit
def normal_f32_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, B: tl.constexpr):
    """float32 normal: Box-Muller on words (0, 1) and (2, 3) of each block."""
    g_row, m_row, blk, w0, w1, w2, w3 = _blocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 4, B)
    shift = _p32(prm_ptr, _SHIFT)
    scale = _p32(prm_ptr, _SCALE)
    z0, z1 = _bm32(w0, w1)
    z2, z3 = _bm32(w2, w3)
    vals = _join4(shift + scale * z0, shift + scale * z1, shift + scale * z2, shift + scale * z3)
    g = 4 * blk
    _put(out_ptr, vals, _join4(g, g + 1, g + 2, g + 3), g_row, m_row, n, stride)


@triton.jit
def normal_f64_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, B: tl.constexpr):
    """float64 normal: u1 from words (0, 1), the angle from words (2, 3) of each block."""
    g_row, m_row, blk, w0, w1, w2, w3 = _blocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 2, B)
    shift = tl.load(prm_ptr + _SHIFT)
    scale = tl.load(prm_ptr + _SCALE)
    u1 = (_u53(w0, w1) + 0.5) * tl.full([], 1.1102230246251565404e-16, tl.float64)
    r = tl.sqrt(tl.full([], -2.0, tl.float64) * log_f64(u1))  # sqrt.rn.f64
    k = ((w3.to(tl.uint64) << 32) | w2.to(tl.uint64)) >> 11
    s, c = sincos_2pi_u53(k)
    y0 = shift + scale * (r * c)
    y1 = shift + scale * (r * s)
    _put(out_ptr, tl.join(y0, y1), tl.join(2 * blk, 2 * blk + 1), g_row, m_row, n, stride)


@triton.jit
def _n16_pair(w, sb, k: tl.constexpr, j, k0, k1, s0, s1, shift, scale, out_ptr, g_row, m_row, n, stride,
              OUT: tl.constexpr):
    m = w >> 14
    need = m < 512
    f = tl.full(m.shape, 0.5, tl.float32)
    if tl.max(tl.max(need.to(tl.int32), axis=1), axis=0) > 0:  # the tail pairs (1 in 512) refine u1
        p = (sb * 64 + 16 * k + j).to(tl.uint64)
        lo = (p & 0xFFFFFFFF).to(tl.uint32)
        hi = (p >> 32).to(tl.uint32) | 0x40000000  # block 2^62 + p
        x, _x1, _x2, _x3 = philox(lo, hi, tl.zeros(lo.shape, tl.uint32) + s0, tl.zeros(lo.shape, tl.uint32) + s1,
                                  k0, k1)
        fx = (((x >> 9) << 1) | 1).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08
        f = tl.where(need, fx, f)
    u1 = (m.to(tl.int32).to(tl.float32) + f) * 3.814697265625e-06
    rad = tl.sqrt_rn(-2.0 * log_f32(u1))
    sn, cs = sincos_2pi_u24(((w & 0x3FFF) << 10) | 0x200)
    y0 = _bits16(shift + scale * (rad * cs), OUT)
    y1 = _bits16(shift + scale * (rad * sn), OUT)
    gk = sb * 128 + 32 * k + 2 * j
    _put(out_ptr, tl.join(y0, y1), tl.join(gk, gk + 1), g_row, m_row, n, stride)


@triton.jit
def normal_16_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, S: tl.constexpr,
                     OUT: tl.constexpr):
    """float16/bfloat16 normal: one word per Box-Muller pair, the 16-bit uniform's layout."""
    g_row, m_row, sb, j, w0, w1, w2, w3 = _superblocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 128, S)
    k0, k1, s0, s1 = _keys(key_ptr)  # (the tail pairs' own blocks)
    shift = _p32(prm_ptr, _SHIFT)
    scale = _p32(prm_ptr, _SCALE)
    _n16_pair(w0, sb, 0, j, k0, k1, s0, s1, shift, scale, out_ptr, g_row, m_row, n, stride, OUT)
    _n16_pair(w1, sb, 1, j, k0, k1, s0, s1, shift, scale, out_ptr, g_row, m_row, n, stride, OUT)
    _n16_pair(w2, sb, 2, j, k0, k1, s0, s1, shift, scale, out_ptr, g_row, m_row, n, stride, OUT)
    _n16_pair(w3, sb, 3, j, k0, k1, s0, s1, shift, scale, out_ptr, g_row, m_row, n, stride, OUT)


# ---- truncated normal ----------------------------------------------------------------------
@triton.jit
def _tinv(w, pa, qb, m, shift, scale, lo, hi, OUT: tl.constexpr):
    """The float32 inverse-CDF route for one word per value."""
    u = (((w >> 9) << 1) | 1).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08
    v = ((((w ^ 0xFFFFFFFF) >> 9) << 1) | 1).to(tl.int32).to(tl.float32) * 5.9604644775390625e-08
    pl = pa + u * m
    pr = qb + v * m
    left = pl <= 0.5
    p = tl.where(left, pl, pr)
    x0 = ndtri_lower_f32(p)
    x = tl.where(left, x0, -x0)
    y = _clamp(shift + scale * x, lo, hi)
    if OUT == F32:
        return y
    else:
        return _bits16(y, OUT)


@triton.jit
def trunc_inv_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, B: tl.constexpr,
                     OUT: tl.constexpr):
    """Truncated normal by the float32 inverse CDF (float32/float16/bfloat16, easy intervals)."""
    g_row, m_row, blk, w0, w1, w2, w3 = _blocks(rowg_ptr, rowm_ptr, key_ptr, tiles, 4, B)
    pa = _p32(prm_ptr, _PA)
    qb = _p32(prm_ptr, _QB)
    m = _p32(prm_ptr, _M)
    shift = _p32(prm_ptr, _SHIFT)
    scale = _p32(prm_ptr, _SCALE)
    lo = _p32(prm_ptr, _LO)
    hi = _p32(prm_ptr, _HI)
    vals = _join4(_tinv(w0, pa, qb, m, shift, scale, lo, hi, OUT), _tinv(w1, pa, qb, m, shift, scale, lo, hi, OUT),
                  _tinv(w2, pa, qb, m, shift, scale, lo, hi, OUT), _tinv(w3, pa, qb, m, shift, scale, lo, hi, OUT))
    g = 4 * blk
    _put(out_ptr, vals, _join4(g, g + 1, g + 2, g + 3), g_row, m_row, n, stride)


@triton.jit
def _accept(u2, t):
    return (u2 <= 1.0 + t) | (u2 <= exp_f64(t))


@triton.jit
def trunc_exact_kernel(out_ptr, prm_ptr, key_ptr, rowg_ptr, rowm_ptr, n, stride, tiles, T: tl.constexpr,
                       OUT: tl.constexpr, MODE: tl.constexpr, FLIP: tl.constexpr):
    """Truncated normal by exact rejection from each element's own counters (truncnorm_reject.hpp):
    attempt ``at`` of element g uses block 2^63 + 256 g + at of the fill's stream."""
    g_row, m_row, base = _row(rowg_ptr, rowm_ptr, tiles, 1, T)
    k0, k1, s0, s1 = _keys(key_ptr)
    g = base + tl.arange(0, T).to(tl.int64)
    a = tl.load(prm_ptr + _A)
    b = tl.load(prm_ptr + _B)
    c = tl.load(prm_ptr + _C)
    lb = tl.load(prm_ptr + _LB)
    lam = tl.load(prm_ptr + _LAM)
    e53 = tl.full([], 1.1102230246251565404e-16, tl.float64)
    z = tl.zeros([T], tl.float64) + a
    done = (g - g_row) >= n  # lanes outside the row take no part
    gb = g.to(tl.uint64) << 8
    at = tl.full([], 0, tl.int64)
    left = tl.sum((done == 0).to(tl.int32), axis=0)
    while left > 0:
        blk = gb + at.to(tl.uint64)
        lo = (blk & 0xFFFFFFFF).to(tl.uint32)
        hi = (blk >> 32).to(tl.uint32) | 0x80000000
        zero = tl.zeros([T], tl.uint32)
        w0, w1, w2, w3 = philox(lo, hi, zero + s0, zero + s1, k0, k1)
        u1 = (_u53(w0, w1) + 0.5) * e53
        u2 = (_u53(w2, w3) + 0.5) * e53
        if MODE == 0:  # uniform proposal on [a, b]
            zn = a + (b - a) * u1
            t = tl.where(c > 0.0, 0.5 * (a - zn) * (a + zn), -0.5 * zn * zn)
            ok = (u2 <= lb) | _accept(u2, t)
        elif MODE == 1:  # exponential proposal from a
            zn = a - log_f64(u1) / lam
            d = zn - lam
            ok = (zn <= b) & _accept(u2, -0.5 * d * d)
        else:  # Box-Muller around 0: r cos, then r sin
            r = tl.sqrt(-2.0 * log_f64(u1))  # sqrt.rn.f64
            sn, cs = sincos_2pi_u53(((w3.to(tl.uint64) << 32) | w2.to(tl.uint64)) >> 11)
            zc = r * cs
            zs = r * sn
            okc = (zc >= a) & (zc <= b)
            oks = (zs >= a) & (zs <= b)
            zn = tl.where(okc, zc, zs)
            ok = okc | oks
        z = tl.where(done, z, zn)
        done = done | ok
        at = at + 1
        left = tl.where(at < 256, tl.sum((done == 0).to(tl.int32), axis=0), 0)
    alpha = tl.load(prm_ptr + _ALPHA)
    beta = tl.load(prm_ptr + _BETA)
    if FLIP:
        x = -z
    else:
        x = z
    x = tl.where(x < alpha, alpha, tl.where(x > beta, beta, x))
    y = tl.load(prm_ptr + _SHIFT) + tl.load(prm_ptr + _SCALE) * x
    if OUT == F64:
        vals = _clamp(y, tl.load(prm_ptr + _LO), tl.load(prm_ptr + _HI))
    else:
        y32 = _clamp(y.to(tl.float32), _p32(prm_ptr, _LO), _p32(prm_ptr, _HI))
        if OUT == F32:
            vals = y32
        else:
            vals = _bits16(y32, OUT)
    _put(out_ptr, vals, g, g_row, m_row, n, stride)
