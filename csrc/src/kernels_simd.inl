// Vector versions of the sampling kernels for the SSE2 / AVX2 / AVX-512 translation units.
// They mirror the scalar reference (kernels_impl.inl + detmath.hpp) operation for operation:
// the same constants, the same order of correctly rounded IEEE operations, no FMA. Tests
// compare every path with the scalar one bit for bit.
// Included inside `namespace initlab::detail::k_<isa>` with INITLAB_VB = vector bytes.
// (immintrin.h is included by the translation unit, outside any namespace.)

constexpr int VB = INITLAB_VB;
constexpr int L = VB / 4;  // 32-bit lanes = Philox blocks per group
typedef std::uint32_t vu32 __attribute__((vector_size(VB)));
typedef std::int32_t vi32 __attribute__((vector_size(VB)));
typedef float vf32 __attribute__((vector_size(VB)));
typedef std::uint64_t vu64 __attribute__((vector_size(VB)));
typedef std::int64_t vi64 __attribute__((vector_size(VB)));
typedef double vf64 __attribute__((vector_size(VB)));
constexpr int L64 = VB / 8;

#if INITLAB_VB == 64
typedef __m512i vreg;
static inline vu64 mul_even(vu32 a, vu32 m) { return (vu64)_mm512_mul_epu32((vreg)a, (vreg)m); }
static inline vf32 vsqrt(vf32 x) { return (vf32)_mm512_sqrt_ps((__m512)x); }
#elif INITLAB_VB == 32
typedef __m256i vreg;
static inline vu64 mul_even(vu32 a, vu32 m) { return (vu64)_mm256_mul_epu32((vreg)a, (vreg)m); }
static inline vf32 vsqrt(vf32 x) { return (vf32)_mm256_sqrt_ps((__m256)x); }
#else
typedef __m128i vreg;
static inline vu64 mul_even(vu32 a, vu32 m) { return (vu64)_mm_mul_epu32((vreg)a, (vreg)m); }
static inline vf32 vsqrt(vf32 x) { return (vf32)_mm_sqrt_ps((__m128)x); }
#endif

static inline bool any_lane(vi32 m) {
#if INITLAB_VB == 64
  return _mm512_test_epi32_mask((__m512i)m, (__m512i)m) != 0;
#elif INITLAB_VB == 32
  return _mm256_movemask_ps((__m256)m) != 0;
#else
  return _mm_movemask_ps((__m128)m) != 0;
#endif
}

static inline vu32 splat(std::uint32_t x) { return (vu32){} + x; }
// x - 0 keeps the sign of a -0.0 (0 + -0.0 would give +0.0 and lose a -0.0 bound).
static inline vf32 splatf(float x) { return x - (vf32){}; }

// Takes the even 32-bit lanes of `e` and the odd lanes of `o`.
static inline vu32 blend_odd(vu64 e, vu64 o) {
#if INITLAB_VB == 64
  return (vu32)_mm512_mask_blend_epi32(0xAAAA, (vreg)e, (vreg)o);
#elif INITLAB_VB == 32
  return (vu32)_mm256_blend_epi32((vreg)e, (vreg)o, 0xAA);
#else
  return (vu32)((e & 0xffffffffull) | (o & 0xffffffff00000000ull));  // SSE2 has no dword blend
#endif
}

// (hi, lo) of the 32x32 -> 64-bit products of every lane with M.
static inline void mulhilo(vu32 a, vu32 m, vu32& hi, vu32& lo) {
  const vu64 pe = mul_even(a, m);                      // lanes 0, 2, 4, ...
  const vu64 po = mul_even((vu32)((vu64)a >> 32), m);  // lanes 1, 3, 5, ...
#if INITLAB_VB >= 32
  lo = a * m;  // vpmulld: one instruction instead of a shift and a blend (~5% on AVX2)
#else
  lo = blend_odd(pe, po << 32);  // SSE2 has no 32-bit low multiply
#endif
  hi = blend_odd(pe >> 32, po);
}

// Philox4x32-10 of G*L consecutive blocks starting at `block`: word k of block block+g*L+l is
// c[k][g][l]. G groups are interleaved because one group's rounds are a dependency chain
// (multiply -> shift -> xor -> multiply) that leaves the vector units idle.
constexpr int G = 2;
struct Ctr4 {
  vu32 c[4][G];
};

// The ten round keys, broadcast once per kernel call instead of once per round and group.
struct RoundKeys {
  vu32 k0[10], k1[10];
  explicit RoundKeys(std::uint64_t seed) {
    std::uint32_t a = static_cast<std::uint32_t>(seed), b = static_cast<std::uint32_t>(seed >> 32);
    for (int r = 0; r < 10; ++r, a += PHILOX_W32_0, b += PHILOX_W32_1) {
      k0[r] = splat(a);
      k1[r] = splat(b);
    }
  }
};

static inline void philox_rounds(const RoundKeys& rk, Ctr4& s);
static inline void philox_groups(const RoundKeys& rk, std::uint64_t stream, std::uint64_t block, Ctr4& s) {
  vu32 lane;
  for (int l = 0; l < L; ++l) lane[l] = static_cast<std::uint32_t>(l);
  for (int g = 0; g < G; ++g) {
    const std::uint64_t b = block + static_cast<std::uint64_t>(g * L);
    const std::uint32_t blo = static_cast<std::uint32_t>(b), bhi = static_cast<std::uint32_t>(b >> 32);
    s.c[0][g] = splat(blo) + lane;
    s.c[1][g] = (vu32)((s.c[0][g] < blo) ? splat(bhi + 1u) : splat(bhi));  // carry when the low word wraps
    s.c[2][g] = splat(static_cast<std::uint32_t>(stream));
    s.c[3][g] = splat(static_cast<std::uint32_t>(stream >> 32));
  }
  philox_rounds(rk, s);
}

// Philox4x32-10 of G*L arbitrary counters (already in s), in place.
static inline void philox_rounds(const RoundKeys& rk, Ctr4& s) {
  const vu32 m0 = splat(PHILOX_M4x32_0), m1 = splat(PHILOX_M4x32_1);
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      vu32 hi0, lo0, hi1, lo1;
      mulhilo(s.c[0][g], m0, hi0, lo0);
      mulhilo(s.c[2][g], m1, hi1, lo1);
      s.c[0][g] = hi1 ^ s.c[1][g] ^ rk.k0[r];
      s.c[1][g] = lo1;
      s.c[2][g] = hi0 ^ s.c[3][g] ^ rk.k1[r];
      s.c[3][g] = lo0;
    }
  }
}

// Store four lane-vectors block-major: out[4l + k] = vk[l] (32-bit items).
template <class V>
static inline void store_interleaved(V v0, V v1, V v2, V v3, void* out) {
#if INITLAB_VB == 16
  const __m128i a = (__m128i)v0, b = (__m128i)v1, c = (__m128i)v2, d = (__m128i)v3;
  const __m128i t0 = _mm_unpacklo_epi32(a, b), t1 = _mm_unpackhi_epi32(a, b);
  const __m128i t2 = _mm_unpacklo_epi32(c, d), t3 = _mm_unpackhi_epi32(c, d);
  __m128i* o = static_cast<__m128i*>(out);
  _mm_storeu_si128(o + 0, _mm_unpacklo_epi64(t0, t2));
  _mm_storeu_si128(o + 1, _mm_unpackhi_epi64(t0, t2));
  _mm_storeu_si128(o + 2, _mm_unpacklo_epi64(t1, t3));
  _mm_storeu_si128(o + 3, _mm_unpackhi_epi64(t1, t3));
#elif INITLAB_VB == 32
  const __m256i a = (__m256i)v0, b = (__m256i)v1, c = (__m256i)v2, d = (__m256i)v3;
  const __m256i t0 = _mm256_unpacklo_epi32(a, b), t1 = _mm256_unpackhi_epi32(a, b);
  const __m256i t2 = _mm256_unpacklo_epi32(c, d), t3 = _mm256_unpackhi_epi32(c, d);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
  __m256i* o = static_cast<__m256i*>(out);
  _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(u0, u1, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
#else
  const __m512i a = (__m512i)v0, b = (__m512i)v1, c = (__m512i)v2, d = (__m512i)v3;
  const __m512i t0 = _mm512_unpacklo_epi32(a, b), t1 = _mm512_unpackhi_epi32(a, b);
  const __m512i t2 = _mm512_unpacklo_epi32(c, d), t3 = _mm512_unpackhi_epi32(c, d);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
  // u0 holds blocks 0|4|8|12 (one per 128-bit lane), u1 1|5|9|13, u2 2|6|10|14, u3 3|7|11|15.
  const __m512i x0 = _mm512_shuffle_i32x4(u0, u1, 0x88), x1 = _mm512_shuffle_i32x4(u2, u3, 0x88);  // 0 8 1 9 | 2 10 3 11
  const __m512i x2 = _mm512_shuffle_i32x4(u0, u1, 0xdd), x3 = _mm512_shuffle_i32x4(u2, u3, 0xdd);  // 4 12 5 13 | 6 14 7 15
  __m512i* o = static_cast<__m512i*>(out);
  _mm512_storeu_si512(o + 0, _mm512_shuffle_i32x4(x0, x1, 0x88));  // 0 1 2 3
  _mm512_storeu_si512(o + 1, _mm512_shuffle_i32x4(x2, x3, 0x88));  // 4 5 6 7
  _mm512_storeu_si512(o + 2, _mm512_shuffle_i32x4(x0, x1, 0xdd));  // 8 9 10 11
  _mm512_storeu_si512(o + 3, _mm512_shuffle_i32x4(x2, x3, 0xdd));  // 12 13 14 15
#endif
}

// ---- vector mirrors of detmath.hpp, in lockstep ------------------------------------------------
// K independent vectors are advanced one operation at a time: the polynomial chains are long
// (log, then a 9-term Horner) and, written vector by vector, the out-of-order window cannot
// overlap enough of them (measured: trunc 0.30 -> 0.52, normal 0.58 -> 0.76 Gs/s per AVX2 core).
// Same operations per lane as the scalar reference, so the same bits.
#define INITLAB_K for (int k = 0; k < K; ++k)

template <int K>
static inline void vlog_k(const vf32* x, vf32* out) {
  vf32 m[K], ef[K], s[K], s2[K], p[K];
#pragma GCC unroll 8
  INITLAB_K {
    const vu32 b = (vu32)x[k];
    vi32 e = (vi32)((b >> 23) & 0xffu) - 127;
    m[k] = (vf32)((b & 0x7fffffu) | 0x3f800000u);
    const vi32 big = m[k] > 1.41421356f;
    m[k] = big ? m[k] * 0.5f : m[k];
    e -= big;
    ef[k] = __builtin_convertvector(e, vf32);
  }
#pragma GCC unroll 8
  INITLAB_K s[k] = (m[k] - 1.0f) / (m[k] + 1.0f);
#pragma GCC unroll 8
  INITLAB_K s2[k] = s[k] * s[k];
#pragma GCC unroll 8
  INITLAB_K p[k] = s2[k] * (0.333333333f + s2[k] * (0.2f + s2[k] * (0.142857143f + s2[k] * 0.111111111f)));
#pragma GCC unroll 8
  INITLAB_K out[k] = ef[k] * 0.693145752f + ((2.0f * s[k] + 2.0f * s[k] * p[k]) + ef[k] * 1.42860677e-06f);
}

template <int K>
static inline void vsincos_2pi_u24_k(const vu32* k24, vf32* s_out, vf32* c_out) {
  vu32 q[K];
  vf32 x[K], x2[K], sn[K], cs[K];
#pragma GCC unroll 8
  INITLAB_K {
    q[k] = (k24[k] + (1u << 21)) >> 22;
    const vi32 t = (vi32)k24[k] - (vi32)(q[k] << 22);
    x[k] = __builtin_convertvector(t, vf32) * 3.74507028e-07f;
    x2[k] = x[k] * x[k];
  }
#pragma GCC unroll 8
  INITLAB_K sn[k] = x[k] + x[k] * x2[k] * (-0.166666667f + x2[k] * (8.33333333e-03f + x2[k] * (-1.98412698e-04f + x2[k] * 2.75573192e-06f)));
#pragma GCC unroll 8
  INITLAB_K cs[k] = 1.0f + x2[k] * (-0.5f + x2[k] * (4.16666667e-02f + x2[k] * (-1.38888889e-03f + x2[k] * (2.48015873e-05f + x2[k] * -2.75573192e-07f))));
#pragma GCC unroll 8
  INITLAB_K {
    const vu32 qq = q[k] & 3u;
    const vi32 odd = (qq & 1u) != 0u;
    const vf32 sv = odd ? cs[k] : sn[k];
    const vf32 cv = odd ? sn[k] : cs[k];
    s_out[k] = (qq >= 2u) ? -sv : sv;
    c_out[k] = ((qq == 1u) | (qq == 2u)) ? -cv : cv;
  }
}

template <int K>
static inline void vndtri_lower_k(const vf32* p, vf32* out) {
  vf32 q[K], w0[K], w[K], a[K];
#pragma GCC unroll 8
  INITLAB_K q[k] = 4.0f * p[k] * (1.0f - p[k]);
  vlog_k<K>(q, w0);
  bool tail = false;
#pragma GCC unroll 8
  INITLAB_K {
    w0[k] = -w0[k];
    w[k] = w0[k] - 2.5f;
    a[k] = splatf(2.81022636e-08f);
    tail |= any_lane(w0[k] >= 5.0f);
  }
  static const float ca[8] = {3.43273939e-07f, -3.5233877e-06f, -4.39150654e-06f, 0.00021858087f,
                              -0.00125372503f, -0.00417768164f, 0.246640727f, 1.50140941f};
#pragma GCC unroll 8
  for (int c = 0; c < 8; ++c) {
#pragma GCC unroll 8
    INITLAB_K a[k] = ca[c] + a[k] * w[k];
  }
  if (tail) {  // only when some lane is beyond |x| ~ 2.5 (never for +-2 sigma bounds)
    static const float cb[8] = {0.000100950558f, 0.00134934322f, -0.00367342844f, 0.00573950773f,
                                -0.0076224613f, 0.00943887047f, 1.00167406f, 2.83297682f};
    vf32 v[K], b[K];
#pragma GCC unroll 8
    INITLAB_K {
      v[k] = vsqrt(w0[k]) - 3.0f;
      b[k] = splatf(-0.000200214257f);
    }
#pragma GCC unroll 8
    for (int c = 0; c < 8; ++c) {
#pragma GCC unroll 8
      INITLAB_K b[k] = cb[c] + b[k] * v[k];
    }
#pragma GCC unroll 8
    INITLAB_K a[k] = (w0[k] < 5.0f) ? a[k] : b[k];
  }
#pragma GCC unroll 8
  INITLAB_K out[k] = static_cast<float>(1.41421356237309505) * a[k] * (2.0f * p[k] - 1.0f);
}

static inline vf32 vclamp(vf32 v, float lo, float hi) {
  v = (v < lo) ? splatf(lo) : v;
  return (v > hi) ? splatf(hi) : v;
}

// ---- output sinks: how a step's four lane-vectors reach memory, block-major -------------------

struct SinkF32 {
  using T = float;
  static void store(vf32 z0, vf32 z1, vf32 z2, vf32 z3, float* dst) { store_interleaved(z0, z1, z2, z3, dst); }
  static void from_f32(const float* in, float* out, int n) { std::memcpy(out, in, static_cast<std::size_t>(n) * 4); }
};

static inline vu32 bf16_round_finite(vf32 z);

// float16 / bfloat16: rounded in registers, then the 16-bit lanes interleaved and stored.
template <bool BF16>
struct Sink16 {
  using T = std::uint16_t;
  // Off the hot path (the hard truncation regimes, SSE2): the scalar rounding.
  static void from_f32(const float* in, std::uint16_t* out, int n) {
    BF16 ? scalar_ref::to_bf16(in, out, n) : scalar_ref::to_f16(in, out, n);
  }
#if INITLAB_VB == 32
  static __m128i narrow(vf32 z) {
    if (BF16) {
      const __m256i p = _mm256_packus_epi32((__m256i)bf16_round_finite(z), _mm256_setzero_si256());
      return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));  // 8 x u16 in lane order
    }
    return _mm256_cvtps_ph((__m256)z, _MM_FROUND_TO_NEAREST_INT);
  }
  static void store(vf32 z0, vf32 z1, vf32 z2, vf32 z3, std::uint16_t* dst) {
    const __m128i h0 = narrow(z0), h1 = narrow(z1), h2 = narrow(z2), h3 = narrow(z3);
    const __m128i t0 = _mm_unpacklo_epi16(h0, h1), t1 = _mm_unpackhi_epi16(h0, h1);
    const __m128i t2 = _mm_unpacklo_epi16(h2, h3), t3 = _mm_unpackhi_epi16(h2, h3);
    __m128i* o = reinterpret_cast<__m128i*>(dst);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi32(t0, t2));  // blocks 0, 1
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi32(t0, t2));  // blocks 2, 3
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi32(t1, t3));  // blocks 4, 5
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi32(t1, t3));  // blocks 6, 7
  }
#elif INITLAB_VB == 64
  static __m256i narrow(vf32 z) {
    if (BF16) return _mm512_cvtepi32_epi16((__m512i)bf16_round_finite(z));
    return _mm512_cvtps_ph((__m512)z, _MM_FROUND_TO_NEAREST_INT);
  }
  static void store(vf32 z0, vf32 z1, vf32 z2, vf32 z3, std::uint16_t* dst) {
    const __m256i h0 = narrow(z0), h1 = narrow(z1), h2 = narrow(z2), h3 = narrow(z3);
    const __m256i t0 = _mm256_unpacklo_epi16(h0, h1), t1 = _mm256_unpackhi_epi16(h0, h1);
    const __m256i t2 = _mm256_unpacklo_epi16(h2, h3), t3 = _mm256_unpackhi_epi16(h2, h3);
    const __m256i o0 = _mm256_unpacklo_epi32(t0, t2), o1 = _mm256_unpackhi_epi32(t0, t2);  // 0,1|8,9  2,3|10,11
    const __m256i o2 = _mm256_unpacklo_epi32(t1, t3), o3 = _mm256_unpackhi_epi32(t1, t3);  // 4,5|12,13  6,7|14,15
    __m256i* o = reinterpret_cast<__m256i*>(dst);
    _mm256_storeu_si256(o + 0, _mm256_permute2x128_si256(o0, o1, 0x20));
    _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(o2, o3, 0x20));
    _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(o0, o1, 0x31));
    _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(o2, o3, 0x31));
  }
#else
  static void store(vf32 z0, vf32 z1, vf32 z2, vf32 z3, std::uint16_t* dst) {  // SSE2: no F16C
    alignas(64) float t[4 * L];
    store_interleaved(z0, z1, z2, z3, t);
    from_f32(t, dst, 4 * L);
  }
#endif
};

// ---- kernels ----------------------------------------------------------------------------------
// Each step draws G groups of L blocks, hands all G*4 word vectors to `body` (which transforms
// them in lockstep) and stores the results block-major through the sink: straight into `out` for
// groups wholly inside the window (when it starts on a block boundary), through `buf` otherwise.
template <class Sink, class Body>
static inline void run_groups_all(std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                                  typename Sink::T* out, Body body) {
  alignas(64) typename Sink::T buf[kChunk + 4 * 2 * 16 + 8];
  const std::uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  int direct_end = 0;
  const RoundKeys rk(seed);
  for (int j = 0; j < nb; j += G * L) {
    Ctr4 s;
    philox_groups(rk, stream, b0 + static_cast<std::uint64_t>(j), s);
    vu32 wv[G * 4];
    vf32 z[G * 4];
    for (int g = 0; g < G; ++g)
      for (int q = 0; q < 4; ++q) wv[4 * g + q] = s.c[q][g];
    body(wv, z);
    for (int g = 0; g < G; ++g) {
      const int e0 = 4 * (j + g * L);
      if (skip == 0 && e0 + 4 * L <= n) {
        Sink::store(z[4 * g], z[4 * g + 1], z[4 * g + 2], z[4 * g + 3], out + e0);
        direct_end = e0 + 4 * L;
      } else {
        Sink::store(z[4 * g], z[4 * g + 1], z[4 * g + 2], z[4 * g + 3], buf + e0);
      }
    }
  }
  if (direct_end < n)
    std::memcpy(out + direct_end, buf + skip + direct_end, static_cast<std::size_t>(n - direct_end) * sizeof(typename Sink::T));
}

// ---- super-block windows (the uniform samplers and 16-bit normal) -------------------------------
// A window of n elements starting `skip` elements into super-block 0 (of SE elements each): the
// super-blocks [first_full, end_full) lie wholly inside it and are stored straight into `out`;
// the partial ones at either end are drawn into `buf` (indexed from super-block 0's start) and
// copied out here.
struct SuperBlockWindow {
  int skip, n, se, first_full, end_full;
  SuperBlockWindow(int skip_, int n_, int se_)
      : skip(skip_), n(n_), se(se_), first_full(skip_ == 0 ? 0 : 1), end_full((skip_ + n_) / se_) {}
  bool whole(int sb) const { return sb >= first_full && sb < end_full; }
  template <class T>
  T* dst(int sb, int e0, T* out, T* buf) const { return whole(sb) ? out + (e0 - skip) : buf + e0; }
  template <class T>
  void finish(T* out, const T* buf) const {
    if (first_full >= end_full) {
      std::memcpy(out, buf + skip, static_cast<std::size_t>(n) * sizeof(T));
      return;
    }
    if (skip) std::memcpy(out, buf + skip, static_cast<std::size_t>(se - skip) * sizeof(T));
    const int te = se * end_full;
    if (te < skip + n) std::memcpy(out + (te - skip), buf + te, static_cast<std::size_t>(skip + n - te) * sizeof(T));
  }
};

// float32 uniform, five elements per block in lane-major super-blocks (scalar_ref::uniform_f32):
// each group of L blocks lies inside one super-block, and its five vectors (the top 24 bits of
// words 0..3, then the low bytes of words 0..2) are stored as they are, L elements apart.
static void uniform_f32_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                          float* out) {
  using scalar_ref::kUniSB;
  using scalar_ref::kUniSE;
  static_assert(kUniSB % L == 0, "a group of blocks never straddles super-blocks");
  constexpr int kSteps = (G * L + kUniSB - 1) / kUniSB;  // super-blocks per step (rounding up)
  alignas(64) float buf[kUniSE * ((kChunk + kUniSE - 1) / kUniSE + 1 + kSteps)];
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  const std::uint64_t s0 = g0 / kUniSE;
  const int skip = static_cast<int>(g0 - kUniSE * s0);
  const int nb = kUniSB * ((skip + n + kUniSE - 1) / kUniSE);
  const SuperBlockWindow win(skip, n, kUniSE);
  const RoundKeys rk(seed);
  for (int j = 0; j < nb; j += G * L) {
    Ctr4 s;
    philox_groups(rk, stream, kUniSB * s0 + static_cast<std::uint64_t>(j), s);
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const int bb = j + g * L;
      const int sb = bb / kUniSB;
      const int e0 = kUniSE * sb + bb % kUniSB;
      float* dst = win.dst(sb, e0, out, buf);
      vu32 x[5];
      x[0] = s.c[0][g] >> 8;
      x[1] = s.c[1][g] >> 8;
      x[2] = s.c[2][g] >> 8;
      x[3] = s.c[3][g] >> 8;
      x[4] = ((s.c[0][g] & 0xffu) << 16) | ((s.c[1][g] & 0xffu) << 8) | (s.c[2][g] & 0xffu);
#pragma GCC unroll 5
      for (int k = 0; k < 5; ++k) {
        const vf32 u = __builtin_convertvector((vi32)x[k], vf32) * 5.9604644775390625e-08f;
        const vf32 z = vclamp(shift + scale * u, lo, hi);
        std::memcpy(dst + (k < 4 ? kUniSB * k : 64), &z, sizeof(z));
      }
    }
  }
  win.finish(out, buf);
}

template <class Sink>
static void normal_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                     typename Sink::T* out) {
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  constexpr int K = G * 2;  // Box-Muller pairs per step: (w0, w1) and (w2, w3) of every group
  run_groups_all<Sink>(seed, stream, g0, n, out, [&](const vu32* w, vf32* z) {
    vf32 u1[K], lg[K], sn[K], cs[K];
    vu32 ang[K];
#pragma GCC unroll 8
    INITLAB_K {
      const vu32 wr = w[2 * k], wa = w[2 * k + 1];
      u1[k] = __builtin_convertvector((vi32)(wr >> 1), vf32) * 4.656612873077392578125e-10f + 2.3283064365386962890625e-10f;
      ang[k] = wa >> 8;
    }
    vlog_k<K>(u1, lg);
    vsincos_2pi_u24_k<K>(ang, sn, cs);
#pragma GCC unroll 8
    INITLAB_K {
      const vf32 r = vsqrt(-2.0f * lg[k]);
      z[2 * k] = shift + scale * (r * cs[k]);
      z[2 * k + 1] = shift + scale * (r * sn[k]);
    }
  });
}

// 16-bit outputs in lane-major super-blocks (scalar_ref::uniform16, normal16): each group of L
// blocks lies inside one super-block, and word k's L words become 2 L contiguous outputs (each
// word's low-half value, then its high-half value, or a pair's cos, then its sin).
// store16_pair rounds yl[l] and yh[l] and stores them at dst[2 l] and dst[2 l + 1].
template <bool BF16>
static inline void store16_pair(vf32 yl, vf32 yh, std::uint16_t* dst) {
#if INITLAB_VB == 32
  if (BF16) {
    const vu32 r = bf16_round_finite(yl) | (bf16_round_finite(yh) << 16);
    std::memcpy(dst, &r, sizeof(r));
  } else {
    const __m128i a = _mm256_cvtps_ph((__m256)yl, _MM_FROUND_TO_NEAREST_INT);
    const __m128i b = _mm256_cvtps_ph((__m256)yh, _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a, b));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst) + 1, _mm_unpackhi_epi16(a, b));
  }
#elif INITLAB_VB == 64
  vu32 r;
  if (BF16) {
    r = bf16_round_finite(yl) | (bf16_round_finite(yh) << 16);
  } else {
    r = (vu32)_mm512_cvtepu16_epi32(_mm512_cvtps_ph((__m512)yl, _MM_FROUND_TO_NEAREST_INT)) |
        ((vu32)_mm512_cvtepu16_epi32(_mm512_cvtps_ph((__m512)yh, _MM_FROUND_TO_NEAREST_INT)) << 16);
  }
  std::memcpy(dst, &r, sizeof(r));
#else
  for (int l = 0; l < L; ++l) {
    dst[2 * l] = BF16 ? lowp::bf16_from_f32(yl[l]) : lowp::f16_from_f32(yl[l]);
    dst[2 * l + 1] = BF16 ? lowp::bf16_from_f32(yh[l]) : lowp::f16_from_f32(yh[l]);
  }
#endif
}

template <bool BF16>
static void uniform16_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                        std::uint16_t* out) {
  using scalar_ref::kU16SE;
  using scalar_ref::kUniSB;
  static_assert(kUniSB % L == 0, "a group of blocks never straddles super-blocks");
  constexpr int kSteps = (G * L + kUniSB - 1) / kUniSB;  // super-blocks per step (rounding up)
  alignas(64) std::uint16_t buf[kU16SE * ((kChunk + kU16SE - 1) / kU16SE + 1 + kSteps)];
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  const std::uint64_t s0 = g0 / kU16SE;
  const int skip = static_cast<int>(g0 - kU16SE * s0);
  const int nb = kUniSB * ((skip + n + kU16SE - 1) / kU16SE);
  const SuperBlockWindow win(skip, n, kU16SE);
  const RoundKeys rk(seed);
  for (int j = 0; j < nb; j += G * L) {
    Ctr4 s;
    philox_groups(rk, stream, kUniSB * s0 + static_cast<std::uint64_t>(j), s);
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const int bb = j + g * L;
      const int sb = bb / kUniSB;
      const int e0 = kU16SE * sb + 2 * (bb % kUniSB);
      std::uint16_t* dst = win.dst(sb, e0, out, buf);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) {
        const vu32 wk = s.c[k][g];
        const vf32 ul = __builtin_convertvector((vi32)(wk & 0xffffu), vf32) * 1.52587890625e-05f;
        const vf32 uh = __builtin_convertvector((vi32)(wk >> 16), vf32) * 1.52587890625e-05f;
        store16_pair<BF16>(vclamp(shift + scale * ul, lo, hi), vclamp(shift + scale * uh, lo, hi), dst + 32 * k);
      }
    }
  }
  win.finish(out, buf);
}

// float16 / bfloat16 normal (scalar_ref::normal16): one word per Box-Muller pair in the 16-bit
// uniform's super-blocks; the rare tail pairs (m < 512) get their refining word lane by lane.
template <bool BF16>
static void normal16_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                       std::uint16_t* out) {
  using scalar_ref::kU16SE;
  using scalar_ref::kUniSB;
  static_assert(kUniSB % L == 0, "a group of blocks never straddles super-blocks");
  constexpr int kSteps = (G * L + kUniSB - 1) / kUniSB;
  alignas(64) std::uint16_t buf[kU16SE * ((kChunk + kU16SE - 1) / kU16SE + 1 + kSteps)];
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const std::uint64_t s0 = g0 / kU16SE;
  const int skip = static_cast<int>(g0 - kU16SE * s0);
  const int nb = kUniSB * ((skip + n + kU16SE - 1) / kU16SE);
  const SuperBlockWindow win(skip, n, kU16SE);
  const RoundKeys rk(seed);
  constexpr int K = 4 * G;  // word vectors per step: k = 4 g + word
  for (int j = 0; j < nb; j += G * L) {
    Ctr4 s;
    philox_groups(rk, stream, kUniSB * s0 + static_cast<std::uint64_t>(j), s);
    vf32 u1[K], lg[K], sn[K], cs[K];
    vu32 ang[K];
#pragma GCC unroll 8
    INITLAB_K {
      const int g = k / 4, q = k % 4;
      const vu32 wd = s.c[q][g];
      const vu32 m = wd >> 14;
      vf32 f = splatf(0.5f);
      const vi32 tail = (vi32)(m < 512u);
      if (__builtin_expect(any_lane(tail), 0)) {
        const int bb = j + g * L;
        const std::uint64_t pair0 = 64 * (s0 + static_cast<std::uint64_t>(bb / kUniSB)) +
                                    static_cast<std::uint64_t>(16 * q + bb % kUniSB);
        for (int l = 0; l < L; ++l) {
          if (!tail[l]) continue;
          const std::uint32_t x = philox_block(seed, stream, scalar_ref::kNormal16Fallback + pair0 + l)[0];
          f[l] = static_cast<float>(static_cast<std::int32_t>(((x >> 9) << 1) | 1u)) * 5.9604644775390625e-08f;
        }
      }
      u1[k] = (__builtin_convertvector((vi32)m, vf32) + f) * 3.814697265625e-06f;
      ang[k] = ((wd & 0x3fffu) << 10) | 0x200u;
    }
    vlog_k<K>(u1, lg);
    vsincos_2pi_u24_k<K>(ang, sn, cs);
#pragma GCC unroll 8
    INITLAB_K {
      const int g = k / 4, q = k % 4;
      const int bb = j + g * L;
      const int sb = bb / kUniSB;
      const int e0 = kU16SE * sb + 2 * (bb % kUniSB);
      std::uint16_t* dst = win.dst(sb, e0, out, buf);
      const vf32 r = vsqrt(-2.0f * lg[k]);
      store16_pair<BF16>(shift + scale * (r * cs[k]), shift + scale * (r * sn[k]), dst + 32 * q);
    }
  }
  win.finish(out, buf);
}

template <class Emit>
static void trunc_reject_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, Emit emit);

template <class Sink>
static void trunc_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n,
                    typename Sink::T* out) {
  if (kp.exact) {  // the hard regimes: exact rejection, attempt 0 in vectors (trunc_reject_k)
    alignas(64) float t[kChunk];
    const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
    trunc_reject_k(kp, seed, stream, g0, n, [&](int i, double x) {
      t[i] = scalar_ref::clampf(static_cast<float>(kp.shift + kp.scale * x), lo, hi);
    });
    Sink::from_f32(t, out, n);
    return;
  }
  const float pa = static_cast<float>(kp.pa), qb = static_cast<float>(kp.qb), m = static_cast<float>(kp.m);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  constexpr int K = G * 4;
  run_groups_all<Sink>(seed, stream, g0, n, out, [&](const vu32* w, vf32* z) {
    vf32 p[K], x0[K];
    vi32 left[K];
#pragma GCC unroll 8
    INITLAB_K {
      const vf32 u = __builtin_convertvector((vi32)(((w[k] >> 9) << 1) | 1u), vf32) * 5.9604644775390625e-08f;
      const vf32 v = __builtin_convertvector((vi32)((((~w[k]) >> 9) << 1) | 1u), vf32) * 5.9604644775390625e-08f;
      const vf32 pl = pa + u * m;
      const vf32 pr = qb + v * m;
      left[k] = pl <= 0.5f;
      p[k] = left[k] ? pl : pr;
    }
    vndtri_lower_k<K>(p, x0);
#pragma GCC unroll 8
    INITLAB_K {
      const vf32 x = left[k] ? x0[k] : -x0[k];
      z[k] = vclamp(shift + scale * x, lo, hi);
    }
  });
}

// ---- float64 ------------------------------------------------------------------------------
// Words come from the vector generator into a buffer; element i's 64-bit word is then simply
// the little-endian uint64 at w + 2 i. Integer -> double conversions use exact bit tricks
// (AVX2 has no 64-bit integer conversion), so they equal the scalar static_casts.

static void words(std::uint64_t seed, std::uint64_t stream, std::uint64_t b0, int nb, std::uint32_t* w) {
  const RoundKeys rk(seed);
  for (int j = 0; j < nb; j += G * L) {
    Ctr4 s;
    philox_groups(rk, stream, b0 + static_cast<std::uint64_t>(j), s);
    for (int g = 0; g < G; ++g) store_interleaved(s.c[0][g], s.c[1][g], s.c[2][g], s.c[3][g], w + 4 * (j + g * L));
  }
}

static inline vf64 splatd(double x) { return x - (vf64){}; }

// Exact double of 0 <= k < 2^53.
static inline vf64 u53_to_double(vu64 k) {
  const vf64 hi = (vf64)((k >> 1) | 0x4330000000000000ull) - 4503599627370496.0;  // 2^52 + (k >> 1), exact
  const vf64 lo = (vf64)((k & 1ull) | 0x4330000000000000ull) - 4503599627370496.0;
  return hi * 2.0 + lo;  // an integer below 2^53: exact
}
// Exact double of |t| < 2^51.
static inline vf64 i51_to_double(vi64 t) {
  return (vf64)((vu64)(t + (vi64){} + 0x4338000000000000ll)) - 6755399441055744.0;  // 1.5 * 2^52
}

static inline vf64 vsqrt64(vf64 x) {
#if INITLAB_VB == 64
  return (vf64)_mm512_sqrt_pd((__m512d)x);
#elif INITLAB_VB == 32
  return (vf64)_mm256_sqrt_pd((__m256d)x);
#else
  return (vf64)_mm_sqrt_pd((__m128d)x);
#endif
}

static inline vf64 vclampd(vf64 v, double lo, double hi) {
  v = (v < lo) ? splatd(lo) : v;
  return (v > hi) ? splatd(hi) : v;
}

static void uniform_f64(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, double* out) {
  alignas(64) std::uint32_t w[scalar_ref::kWordBuf];
  const std::uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  words(seed, stream, b0, nb, w);
  const std::uint32_t* ws = w + 2 * skip;
  int i = 0;
  for (; i + L64 <= n; i += L64) {
    vu64 x;
    std::memcpy(&x, ws + 2 * i, sizeof(x));
    const vf64 u = u53_to_double(x >> 11) * 1.1102230246251565404e-16;
    const vf64 y = vclampd(kp.shift + kp.scale * u, kp.lo, kp.hi);
    std::memcpy(out + i, &y, sizeof(y));
  }
  for (; i < n; ++i) {
    const double u = static_cast<double>(static_cast<std::int64_t>(scalar_ref::word64(ws, i) >> 11)) * 1.1102230246251565404e-16;
    out[i] = scalar_ref::clampd(kp.shift + kp.scale * u, kp.lo, kp.hi);
  }
}

// Word pairs (x1, x2) of L64 blocks from the block-major word buffer: the even and odd 64-bit
// words of two consecutive vectors; results go back interleaved (z[2b] = cos, z[2b+1] = sin).
// INITLAB_SHUF_*(a, b): lane i of the result is lane idx[i] of the concatenation (a, b). GCC
// takes the indices as a mask vector (__builtin_shuffle), Clang as constants
// (__builtin_shufflevector); the same indices are written for both (initlab/portable.hpp).
#if !defined(__clang__)
#if INITLAB_VB == 64
static const vu64 kEven = {0, 2, 4, 6, 8, 10, 12, 14}, kOdd = {1, 3, 5, 7, 9, 11, 13, 15};
static const vu64 kInterLo = {0, 8, 1, 9, 2, 10, 3, 11}, kInterHi = {4, 12, 5, 13, 6, 14, 7, 15};
#elif INITLAB_VB == 32
static const vu64 kEven = {0, 2, 4, 6}, kOdd = {1, 3, 5, 7}, kInterLo = {0, 4, 1, 5}, kInterHi = {2, 6, 3, 7};
#else
static const vu64 kEven = {0, 2}, kOdd = {1, 3}, kInterLo = {0, 2}, kInterHi = {1, 3};
#endif
#define INITLAB_SHUF_EVEN(a, b) __builtin_shuffle(a, b, kEven)
#define INITLAB_SHUF_ODD(a, b) __builtin_shuffle(a, b, kOdd)
#define INITLAB_SHUF_INTER_LO(a, b) __builtin_shuffle(a, b, kInterLo)
#define INITLAB_SHUF_INTER_HI(a, b) __builtin_shuffle(a, b, kInterHi)
#elif INITLAB_VB == 64
#define INITLAB_SHUF_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define INITLAB_SHUF_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#define INITLAB_SHUF_INTER_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define INITLAB_SHUF_INTER_HI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#elif INITLAB_VB == 32
#define INITLAB_SHUF_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#define INITLAB_SHUF_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7)
#define INITLAB_SHUF_INTER_LO(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5)
#define INITLAB_SHUF_INTER_HI(a, b) __builtin_shufflevector(a, b, 2, 6, 3, 7)
#else
#define INITLAB_SHUF_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2)
#define INITLAB_SHUF_ODD(a, b) __builtin_shufflevector(a, b, 1, 3)
#define INITLAB_SHUF_INTER_LO(a, b) __builtin_shufflevector(a, b, 0, 2)
#define INITLAB_SHUF_INTER_HI(a, b) __builtin_shufflevector(a, b, 1, 3)
#endif

// vlog64 and vsincos_2pi_u53 for K vectors advanced one operation at a time (the same
// operations per lane, so the same bits): their Horner chains overlap instead of waiting.
template <int K>
static inline void vlog64_k(const vf64* x, vf64* out) {
  vf64 m[K], s[K], s2[K], p[K], ed[K];
#pragma GCC unroll 8
  INITLAB_K {
    const vu64 b = (vu64)x[k];
    vi64 e = (vi64)((b >> 52) & 0x7ffull) - 1023;
    m[k] = (vf64)((b & 0xfffffffffffffull) | 0x3ff0000000000000ull);
    const vi64 big = m[k] > 1.4142135623730951;
    m[k] = big ? m[k] * 0.5 : m[k];
    e -= big;
    ed[k] = i51_to_double(e);
  }
#pragma GCC unroll 8
  INITLAB_K s[k] = (m[k] - 1.0) / (m[k] + 1.0);
#pragma GCC unroll 8
  INITLAB_K {
    s2[k] = s[k] * s[k];
    p[k] = splatd(detmath::kLog64P[0]);
  }
#pragma GCC unroll 6
  for (int t = 1; t < 7; ++t) {
#pragma GCC unroll 8
    INITLAB_K p[k] = detmath::kLog64P[t] + s2[k] * p[k];
  }
#pragma GCC unroll 8
  INITLAB_K out[k] = ed[k] * 6.93147180369123816490e-01 + ((2.0 * s[k] + 2.0 * s[k] * (s2[k] * p[k])) + ed[k] * 1.90821492927058770002e-10);
}

template <int K>
static inline void vsincos_2pi_u53_k(const vu64* kk, vf64* s_out, vf64* c_out) {
  vu64 q[K];
  vf64 x[K], x2[K], sp[K], cp[K];
#pragma GCC unroll 8
  INITLAB_K {
    q[k] = (kk[k] + (1ull << 50)) >> 51;
    const vi64 t = (vi64)kk[k] - (vi64)(q[k] << 51);
    x[k] = i51_to_double(t) * 6.9757369960172639e-16;
    x2[k] = x[k] * x[k];
    sp[k] = splatd(detmath::kSin64P[0]);
    cp[k] = splatd(detmath::kCos64P[0]);
  }
#pragma GCC unroll 6
  for (int t = 1; t < 7; ++t) {
#pragma GCC unroll 8
    INITLAB_K {
      if (t < 6) sp[k] = detmath::kSin64P[t] + x2[k] * sp[k];
      cp[k] = detmath::kCos64P[t] + x2[k] * cp[k];
    }
  }
#pragma GCC unroll 8
  INITLAB_K {
    const vf64 sn = x[k] + x[k] * x2[k] * sp[k];
    const vf64 cn = 1.0 + x2[k] * cp[k];
    const vu64 qq = q[k] & 3ull;
    const vi64 odd = (qq & 1ull) != 0ull;
    const vf64 sv = odd ? cn : sn;
    const vf64 cv = odd ? sn : cn;
    s_out[k] = (qq >= 2ull) ? -sv : sv;
    c_out[k] = ((qq == 1ull) | (qq == 2ull)) ? -cv : cv;
  }
}

static void normal_f64(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, double* out) {
  alignas(64) std::uint32_t w[scalar_ref::kWordBuf];
  alignas(64) double z[kChunk + 8 * 2 * 8 + 8];  // whole steps of K * L64 blocks
  const std::uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  words(seed, stream, b0, nb, w);
  const double shift = kp.shift, scale = kp.scale;
  // Block j holds the pair (u1, angle) as 64-bit words 2j and 2j+1; K vectors of L64 blocks
  // per step, advanced together so their polynomial chains overlap.
  constexpr int K = 8;
  for (int j = 0; j < nb; j += K * L64) {
    vf64 u1[K], lg[K], sn[K], cs[K];
    vu64 ang[K];
#pragma GCC unroll 8
    INITLAB_K {
      vu64 a, b;
      std::memcpy(&a, w + 4 * (j + k * L64), sizeof(a));
      std::memcpy(&b, w + 4 * (j + k * L64) + 2 * L64, sizeof(b));
      const vu64 x1 = INITLAB_SHUF_EVEN(a, b);
      ang[k] = INITLAB_SHUF_ODD(a, b) >> 11;
      u1[k] = (u53_to_double(x1 >> 11) + 0.5) * 1.1102230246251565404e-16;
    }
    vlog64_k<K>(u1, lg);
    vsincos_2pi_u53_k<K>(ang, sn, cs);
#pragma GCC unroll 8
    INITLAB_K {
      const vf64 r = vsqrt64(-2.0 * lg[k]);
      const vf64 za = shift + scale * (r * cs[k]), zb = shift + scale * (r * sn[k]);
      const vf64 lo = INITLAB_SHUF_INTER_LO(za, zb), hi = INITLAB_SHUF_INTER_HI(za, zb);
      std::memcpy(z + 2 * (j + k * L64), &lo, sizeof(lo));
      std::memcpy(z + 2 * (j + k * L64) + L64, &hi, sizeof(hi));
    }
  }
  std::memcpy(out, z + skip, static_cast<std::size_t>(n) * sizeof(double));
}

// float64 trunc_normal_: attempt 0 of every element's rejection (truncnorm_reject.hpp) in
// vectors, with the scalar code's operations lane for lane; lanes it does not settle (rejected,
// or accepted only by an exp the squeeze cannot decide) are finished by the scalar sampler,
// which repeats attempt 0 identically and goes on.
// INITLAB_SHUF_WIDE(a, b, hi): the 32-bit lanes of the low (hi = 0) or high (hi = 1) halves of
// a and b interleaved, i.e. 64-bit words (b_l << 32) | a_l; hi must fold to a constant.
#if !defined(__clang__)
#if INITLAB_VB == 64
static const vu32 kWideLo = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
static const vu32 kWideHi = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
#elif INITLAB_VB == 32
static const vu32 kWideLo = {0, 8, 1, 9, 2, 10, 3, 11}, kWideHi = {4, 12, 5, 13, 6, 14, 7, 15};
#else
static const vu32 kWideLo = {0, 4, 1, 5}, kWideHi = {2, 6, 3, 7};
#endif
#define INITLAB_SHUF_WIDE(a, b, hi) __builtin_shuffle(a, b, (hi) ? kWideHi : kWideLo)
#else
#if INITLAB_VB == 64
#define INITLAB_SHUF_WIDE_LO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define INITLAB_SHUF_WIDE_HI(a, b) __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#elif INITLAB_VB == 32
#define INITLAB_SHUF_WIDE_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define INITLAB_SHUF_WIDE_HI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#else
#define INITLAB_SHUF_WIDE_LO(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5)
#define INITLAB_SHUF_WIDE_HI(a, b) __builtin_shufflevector(a, b, 2, 6, 3, 7)
#endif
#define INITLAB_SHUF_WIDE(a, b, hi) ((hi) ? INITLAB_SHUF_WIDE_HI(a, b) : INITLAB_SHUF_WIDE_LO(a, b))
#endif

// emit(i, x) receives element g0 + i's standardized value x in [alpha, beta].
template <class Emit>
static void trunc_reject_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, Emit emit) {
  const tnr::Plan pl = tnr::plan(kp.alpha, kp.beta);
  const RoundKeys rk(seed);
  constexpr int E = G * L;         // elements per step: one Philox block each
  constexpr int K = 2 * G;         // vectors of L64 doubles per step
  vu32 lane;
  for (int l = 0; l < L; ++l) lane[l] = static_cast<std::uint32_t>(l);
  const vf64 va = splatd(pl.a), vb = splatd(pl.b), vlb = splatd(pl.lb), vlam = splatd(pl.lam);
  const vf64 vba = splatd(pl.b - pl.a);
  for (int i0 = 0; i0 < n; i0 += E) {
    Ctr4 s;
    for (int g = 0; g < G; ++g) {
      // block 2^63 + 256 (g0 + i0 + g L + l): low word (e << 8), high word 2^31 | (e >> 24)
      const std::uint64_t e0 = g0 + static_cast<std::uint64_t>(i0 + g * L);
      const vu32 lo = splat(static_cast<std::uint32_t>(e0)) + lane;  // low 32 bits of e, may wrap
      const vu32 hi = (vu32)((lo < static_cast<std::uint32_t>(e0)) ? splat(static_cast<std::uint32_t>((e0 >> 32) + 1))
                                                                    : splat(static_cast<std::uint32_t>(e0 >> 32)));
      s.c[0][g] = lo << 8;
      s.c[1][g] = ((hi << 8) | (lo >> 24)) | 0x80000000u;
      s.c[2][g] = splat(static_cast<std::uint32_t>(stream));
      s.c[3][g] = splat(static_cast<std::uint32_t>(stream >> 32));
    }
    philox_rounds(rk, s);
    vf64 u1[K], u2[K], z[K];
    vu64 ang[K];
    vi64 ok[K];
#pragma GCC unroll 8
    INITLAB_K {
      const int g = k >> 1;
      const vu64 x1 = (vu64)INITLAB_SHUF_WIDE(s.c[0][g], s.c[1][g], k & 1);
      const vu64 x2 = (vu64)INITLAB_SHUF_WIDE(s.c[2][g], s.c[3][g], k & 1);
      u1[k] = (u53_to_double(x1 >> 11) + 0.5) * 1.1102230246251565404e-16;
      u2[k] = (u53_to_double(x2 >> 11) + 0.5) * 1.1102230246251565404e-16;
      ang[k] = x2 >> 11;
    }
    if (pl.mode == 0) {
#pragma GCC unroll 8
      INITLAB_K {
        z[k] = va + vba * u1[k];
        const vf64 t = pl.c > 0.0 ? 0.5 * (va - z[k]) * (va + z[k]) : -0.5 * z[k] * z[k];
        ok[k] = (u2[k] <= vlb) | (u2[k] <= 1.0 + t);
      }
    } else if (pl.mode == 1) {
      vf64 lg[K];
      vlog64_k<K>(u1, lg);
#pragma GCC unroll 8
      INITLAB_K {
        z[k] = va - lg[k] / vlam;
        const vf64 d = z[k] - vlam, t = -0.5 * d * d;
        ok[k] = (z[k] <= vb) & (u2[k] <= 1.0 + t);
      }
    } else {
      vf64 lg[K], sn[K], cs[K];
      vlog64_k<K>(u1, lg);
      vsincos_2pi_u53_k<K>(ang, sn, cs);
#pragma GCC unroll 8
      INITLAB_K {
        const vf64 r = vsqrt64(-2.0 * lg[k]);
        const vf64 za = r * cs[k], zb = r * sn[k];
        const vi64 oka = (za >= va) & (za <= vb), okb = (zb >= va) & (zb <= vb);
        z[k] = oka ? za : zb;
        ok[k] = oka | okb;
      }
    }
    const int m = n - i0 < E ? n - i0 : E;
    for (int i = 0; i < m; ++i) {
      const int k = i / L64, l = i % L64;
      const std::uint64_t e = g0 + static_cast<std::uint64_t>(i0 + i);
      double zz = z[k][l];
      if (!ok[k][l]) zz = tnr::sample(pl, seed, stream, e);
      else {
        zz = pl.flip ? -zz : zz;
        zz = zz < pl.alpha ? pl.alpha : (zz > pl.beta ? pl.beta : zz);
      }
      emit(i0 + i, zz);
    }
  }
}

static void trunc_f64_k(const KParams& kp, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, double* out) {
  trunc_reject_k(kp, seed, stream, g0, n,
                 [&](int i, double x) { out[i] = scalar_ref::clampd(kp.shift + kp.scale * x, kp.lo, kp.hi); });
}

// bfloat16: the same integer rounding as lowp::bf16_from_f32, lane by lane.
// The samplers never produce NaN (parameters are finite, values clamped or at worst +-inf), and
// for every non-NaN input this is exactly lowp::bf16_from_f32, without its NaN branch.
static inline vu32 bf16_round_finite(vf32 z) {
  const vu32 b = (vu32)z;
  return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}
