// One-pass statistics (see stats.hpp for the determinism and non-finite rules).
//
// Per block: a fast path accumulates, in 16 float64 lanes, the sums S1 = sum(x - c),
// S2 = sum((x - c)^2) (S2 by a fused multiply-add, one rounding), min, max and the zero count,
// first with c = 0; when that pass shows catastrophic cancellation (data far from 0 compared
// with its spread), the block is summed again with c = its mean from the first pass
// (needs_shift). Lane j takes the elements j, j+16, ... of the block
// in logical order, so the arithmetic is the same on every instruction set (16 lanes: enough
// independent additions to keep a core's floating-point pipes busy). Non-finite values make S2 non-finite; only then is the block
// recomputed by a scalar path that skips and counts them. Blocks are merged in order (Chan).
#include "initlab/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "initlab/errors.hpp"
#include "initlab/lowp.hpp"
#include "initlab/parallel.hpp"

namespace initlab {

Moments merge(const Moments& a, const Moments& b) {
  Moments r;
  r.zeros = a.zeros + b.zeros;
  r.nonfinite = a.nonfinite + b.nonfinite;
  if (b.n == 0) {
    r.n = a.n; r.mean = a.mean; r.m2 = a.m2; r.min = a.min; r.max = a.max;
    return r;
  }
  if (a.n == 0) {
    r.n = b.n; r.mean = b.mean; r.m2 = b.m2; r.min = b.min; r.max = b.max;
    return r;
  }
  r.n = a.n + b.n;
  const double na = static_cast<double>(a.n), nb = static_cast<double>(b.n), n = static_cast<double>(r.n);
  const double delta = b.mean - a.mean;
  if (std::isfinite(delta)) {
    r.mean = a.mean + delta * (nb / n);
    r.m2 = a.m2 + b.m2 + delta * delta * (na * nb / n);
  } else {
    // Finite means whose difference overflows (data spanning +-1e308): the weighted average
    // cannot overflow, and the spread is beyond float64.
    r.mean = a.mean * (na / n) + b.mean * (nb / n);
    r.m2 = std::numeric_limits<double>::infinity();
  }
  r.min = b.min < a.min ? b.min : a.min;
  r.max = b.max > a.max ? b.max : a.max;
  return r;
}

namespace {

constexpr int kLanes = 16;
constexpr std::int64_t kGather = 1024;      // staging buffer for strided / 16-bit pieces
constexpr std::int64_t kDirectMin = 256;    // shorter contiguous pieces are staged too

// Lane accumulators of one block, kept in memory between kernel calls. The zero count is one
// integer (an integer sum does not depend on its order).
struct alignas(64) Acc {
  double s1[kLanes], s2[kLanes], mn[kLanes], mx[kLanes];
  std::int64_t z;
  double shift;
};

void acc_init(Acc& a, double shift) {
  for (int j = 0; j < kLanes; ++j) {
    a.s1[j] = 0.0; a.s2[j] = 0.0;
    a.mn[j] = std::numeric_limits<double>::infinity();
    a.mx[j] = -std::numeric_limits<double>::infinity();
  }
  a.z = 0;
  a.shift = shift;
}

// The reference arithmetic of one element in lane j: d = x - shift; s1 += d; s2 = fma(d, d, s2)
// (one rounding: the same bits as the fused instruction of the vector paths); min and max by
// (x < mn) ? x : mn, (x > mx) ? x : mx. Element k of a piece goes to lane k % 16.
template <class T>
inline void tail(const T* p, std::int64_t i, std::int64_t n, Acc& a) {
  for (int j = 0; i < n; ++i, ++j) {
    const double x = static_cast<double>(p[i]);
    const double d = x - a.shift;
    a.s1[j] += d;
    a.s2[j] = std::fma(d, d, a.s2[j]);
    a.mn[j] = x < a.mn[j] ? x : a.mn[j];
    a.mx[j] = x > a.mx[j] ? x : a.mx[j];
    a.z += (x == 0.0) ? 1 : 0;
  }
}

// The portable path: whole groups of 16 through the reference arithmetic.
template <class T>
void kernel_base(const T* p, std::int64_t n, Acc& a) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) tail(p + i, 0, kLanes, a);
  tail(p, i, n, a);
}
void kernel_f32_base(const float* p, std::int64_t n, Acc& a) { kernel_base(p, n, a); }
void kernel_f64_base(const double* p, std::int64_t n, Acc& a) { kernel_base(p, n, a); }

#if defined(__GNUC__) && defined(__x86_64__)
#define INITLAB_STATS_MULTI 1
// GCC 12's avx512fintrin.h converts through a deliberately uninitialized register
// (_mm256_undefined_ps), which -Wuninitialized reports at every use: not our code.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// AVX2 + FMA: the 16 lanes are four vectors of 4 doubles (lane j in vector j / 4), each running
// tail()'s operations, so the bits are the reference's. 16-bit inputs are widened exactly in
// registers (bfloat16: the bits shifted up by 16; float16: F16C's conversion). min, max and the
// zero test run on the floats themselves (widening to double is exact and monotone).
struct LoadF32x8 {
  typedef float T;
  static __attribute__((target("avx2,f16c"), always_inline)) inline __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct LoadBf16x8 {
  typedef std::uint16_t T;
  static __attribute__((target("avx2,f16c"), always_inline)) inline __m256 load(const std::uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
};
struct LoadF16x8 {
  typedef std::uint16_t T;
  static __attribute__((target("avx2,f16c"), always_inline)) inline __m256 load(const std::uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

// 16-bit inputs reach the direct kernels in whole groups of 16 only (block_fast stages the rest
// as floats), so those kernels have no tail.
template <class T>
inline void tail_if_native(const T* p, std::int64_t i, std::int64_t n, Acc& a) {
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) tail(p, i, n, a);
  else (void)p, (void)i, (void)n, (void)a;
}

template <class L, bool Shift>
__attribute__((target("avx2,fma,f16c,popcnt"))) void kernel_avx2_impl(const typename L::T* p, std::int64_t n, Acc& a) {
  __m256d s1[4], s2[4];
  __m256 mn[2], mx[2];
  for (int k = 0; k < 4; ++k) {
    s1[k] = _mm256_loadu_pd(a.s1 + 4 * k);
    s2[k] = _mm256_loadu_pd(a.s2 + 4 * k);
  }
  for (int h = 0; h < 2; ++h) {
    mn[h] = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(a.mn + 8 * h + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(a.mn + 8 * h)));
    mx[h] = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(a.mx + 8 * h + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(a.mx + 8 * h)));
  }
  std::int64_t z = 0;
  const __m256d c = _mm256_set1_pd(a.shift);
  const __m256 zero = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int h = 0; h < 2; ++h) {
      const __m256 x = L::load(p + i + 8 * h);
      __m256d dlo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), dhi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
      if constexpr (Shift) {
        dlo = _mm256_sub_pd(dlo, c);
        dhi = _mm256_sub_pd(dhi, c);
      }
      s1[2 * h] = _mm256_add_pd(s1[2 * h], dlo);
      s1[2 * h + 1] = _mm256_add_pd(s1[2 * h + 1], dhi);
      s2[2 * h] = _mm256_fmadd_pd(dlo, dlo, s2[2 * h]);
      s2[2 * h + 1] = _mm256_fmadd_pd(dhi, dhi, s2[2 * h + 1]);
      mn[h] = _mm256_min_ps(x, mn[h]);  // (x < mn) ? x : mn, as tail()
      mx[h] = _mm256_max_ps(x, mx[h]);
      z += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ))));
    }
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_pd(a.s1 + 4 * k, s1[k]);
    _mm256_storeu_pd(a.s2 + 4 * k, s2[k]);
  }
  for (int h = 0; h < 2; ++h) {
    _mm256_storeu_pd(a.mn + 8 * h, _mm256_cvtps_pd(_mm256_castps256_ps128(mn[h])));
    _mm256_storeu_pd(a.mn + 8 * h + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(mn[h], 1)));
    _mm256_storeu_pd(a.mx + 8 * h, _mm256_cvtps_pd(_mm256_castps256_ps128(mx[h])));
    _mm256_storeu_pd(a.mx + 8 * h + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(mx[h], 1)));
  }
  a.z += z;
  tail_if_native(p, i, n, a);
}

template <bool Shift>
__attribute__((target("avx2,fma,popcnt"))) void kernel_f64_avx2_impl(const double* p, std::int64_t n, Acc& a) {
  __m256d s1[4], s2[4], mn[4], mx[4];
  for (int k = 0; k < 4; ++k) {
    s1[k] = _mm256_loadu_pd(a.s1 + 4 * k);
    s2[k] = _mm256_loadu_pd(a.s2 + 4 * k);
    mn[k] = _mm256_loadu_pd(a.mn + 4 * k);
    mx[k] = _mm256_loadu_pd(a.mx + 4 * k);
  }
  std::int64_t z = 0;
  const __m256d c = _mm256_set1_pd(a.shift), zero = _mm256_setzero_pd();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < 4; ++k) {
      const __m256d x = _mm256_loadu_pd(p + i + 4 * k);
      const __m256d d = Shift ? _mm256_sub_pd(x, c) : x;
      s1[k] = _mm256_add_pd(s1[k], d);
      s2[k] = _mm256_fmadd_pd(d, d, s2[k]);
      mn[k] = _mm256_min_pd(x, mn[k]);
      mx[k] = _mm256_max_pd(x, mx[k]);
      z += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(x, zero, _CMP_EQ_OQ))));
    }
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_pd(a.s1 + 4 * k, s1[k]);
    _mm256_storeu_pd(a.s2 + 4 * k, s2[k]);
    _mm256_storeu_pd(a.mn + 4 * k, mn[k]);
    _mm256_storeu_pd(a.mx + 4 * k, mx[k]);
  }
  a.z += z;
  tail(p, i, n, a);
}

// AVX-512: the 16 lanes are two registers of 8 doubles (lanes 0-7, 8-15) and one of 16 floats
// for min and max; 16 inputs per step, widened in one instruction per 8.
struct LoadF32x16 {
  typedef float T;
  static __attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512 load(const float* p) { return _mm512_loadu_ps(p); }
};
struct LoadBf16x16 {
  typedef std::uint16_t T;
  static __attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512 load(const std::uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
};
struct LoadF16x16 {
  typedef std::uint16_t T;
  static __attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512 load(const std::uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};

template <class L, bool Shift>
__attribute__((target("avx512f,avx512dq,avx512bw,popcnt"))) void kernel_avx512_impl(const typename L::T* p, std::int64_t n, Acc& a) {
  __m512d s1a = _mm512_loadu_pd(a.s1), s1b = _mm512_loadu_pd(a.s1 + 8);
  __m512d s2a = _mm512_loadu_pd(a.s2), s2b = _mm512_loadu_pd(a.s2 + 8);
  __m512 mn = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_loadu_pd(a.mn))), _mm512_cvtpd_ps(_mm512_loadu_pd(a.mn + 8)), 1);
  __m512 mx = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(_mm512_loadu_pd(a.mx))), _mm512_cvtpd_ps(_mm512_loadu_pd(a.mx + 8)), 1);
  std::int64_t z = 0;
  const __m512d c = _mm512_set1_pd(a.shift);
  const __m512 zero = _mm512_setzero_ps();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m512 x = L::load(p + i);
    __m512d da = _mm512_cvtps_pd(_mm512_castps512_ps256(x)), db = _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1));
    if constexpr (Shift) {
      da = _mm512_sub_pd(da, c);
      db = _mm512_sub_pd(db, c);
    }
    s1a = _mm512_add_pd(s1a, da);
    s1b = _mm512_add_pd(s1b, db);
    s2a = _mm512_fmadd_pd(da, da, s2a);
    s2b = _mm512_fmadd_pd(db, db, s2b);
    mn = _mm512_min_ps(x, mn);  // (x < mn) ? x : mn, as tail()
    mx = _mm512_max_ps(x, mx);
    z += __builtin_popcount(static_cast<unsigned>(_mm512_cmp_ps_mask(x, zero, _CMP_EQ_OQ)));
  }
  _mm512_storeu_pd(a.s1, s1a);
  _mm512_storeu_pd(a.s1 + 8, s1b);
  _mm512_storeu_pd(a.s2, s2a);
  _mm512_storeu_pd(a.s2 + 8, s2b);
  _mm512_storeu_pd(a.mn, _mm512_cvtps_pd(_mm512_castps512_ps256(mn)));
  _mm512_storeu_pd(a.mn + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(mn, 1)));
  _mm512_storeu_pd(a.mx, _mm512_cvtps_pd(_mm512_castps512_ps256(mx)));
  _mm512_storeu_pd(a.mx + 8, _mm512_cvtps_pd(_mm512_extractf32x8_ps(mx, 1)));
  a.z += z;
  tail_if_native(p, i, n, a);
}

template <bool Shift>
__attribute__((target("avx512f,avx512dq,popcnt"))) void kernel_f64_avx512_impl(const double* p, std::int64_t n, Acc& a) {
  __m512d s1a = _mm512_loadu_pd(a.s1), s1b = _mm512_loadu_pd(a.s1 + 8);
  __m512d s2a = _mm512_loadu_pd(a.s2), s2b = _mm512_loadu_pd(a.s2 + 8);
  __m512d mna = _mm512_loadu_pd(a.mn), mnb = _mm512_loadu_pd(a.mn + 8);
  __m512d mxa = _mm512_loadu_pd(a.mx), mxb = _mm512_loadu_pd(a.mx + 8);
  std::int64_t z = 0;
  const __m512d c = _mm512_set1_pd(a.shift), zero = _mm512_setzero_pd();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m512d xa = _mm512_loadu_pd(p + i), xb = _mm512_loadu_pd(p + i + 8);
    const __m512d da = Shift ? _mm512_sub_pd(xa, c) : xa, db = Shift ? _mm512_sub_pd(xb, c) : xb;
    s1a = _mm512_add_pd(s1a, da);
    s1b = _mm512_add_pd(s1b, db);
    s2a = _mm512_fmadd_pd(da, da, s2a);
    s2b = _mm512_fmadd_pd(db, db, s2b);
    mna = _mm512_min_pd(xa, mna);
    mnb = _mm512_min_pd(xb, mnb);
    mxa = _mm512_max_pd(xa, mxa);
    mxb = _mm512_max_pd(xb, mxb);
    z += __builtin_popcount(static_cast<unsigned>(_mm512_cmp_pd_mask(xa, zero, _CMP_EQ_OQ))) +
         __builtin_popcount(static_cast<unsigned>(_mm512_cmp_pd_mask(xb, zero, _CMP_EQ_OQ)));
  }
  _mm512_storeu_pd(a.s1, s1a);
  _mm512_storeu_pd(a.s1 + 8, s1b);
  _mm512_storeu_pd(a.s2, s2a);
  _mm512_storeu_pd(a.s2 + 8, s2b);
  _mm512_storeu_pd(a.mn, mna);
  _mm512_storeu_pd(a.mn + 8, mnb);
  _mm512_storeu_pd(a.mx, mxa);
  _mm512_storeu_pd(a.mx + 8, mxb);
  a.z += z;
  tail(p, i, n, a);
}

// Each vector kernel in two loops: with the shift, and without it for a block's first pass,
// whose shift is 0 (x - 0 == x for every x, so both give the bits of tail()).
template <class L>
void kernel_avx2(const typename L::T* p, std::int64_t n, Acc& a) {
  if (a.shift == 0.0) kernel_avx2_impl<L, false>(p, n, a);
  else kernel_avx2_impl<L, true>(p, n, a);
}
void kernel_f64_avx2(const double* p, std::int64_t n, Acc& a) {
  if (a.shift == 0.0) kernel_f64_avx2_impl<false>(p, n, a);
  else kernel_f64_avx2_impl<true>(p, n, a);
}
template <class L>
void kernel_avx512(const typename L::T* p, std::int64_t n, Acc& a) {
  if (a.shift == 0.0) kernel_avx512_impl<L, false>(p, n, a);
  else kernel_avx512_impl<L, true>(p, n, a);
}
void kernel_f64_avx512(const double* p, std::int64_t n, Acc& a) {
  if (a.shift == 0.0) kernel_f64_avx512_impl<false>(p, n, a);
  else kernel_f64_avx512_impl<true>(p, n, a);
}

// Tile transposes for the staged walk (see stage_range): 16 source vectors, each 16 neighbours in
// memory (rows q..q+15 of one column j of the logical order), become 16 runs of one logical row
// (columns j..j+15). Pure data movement: the staged values, hence the bits, are those of the
// element-by-element copy. `src` is the first element, `col` the column stride in elements;
// `dst` receives row i at dst + i * pitch.
template <class L>
__attribute__((target("avx512f,avx512dq,avx512bw"))) void tile16_avx512(const void* src, std::int64_t col, float* dst, std::int64_t pitch) {
  const typename L::T* p = static_cast<const typename L::T*>(src);
  __m512 r[16], t[16], u[16];
  for (int k = 0; k < 16; ++k) r[k] = L::load(p + k * col);
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int k = 0; k < 4; ++k) {  // u[4k + c], 128-bit lane L: column 4L + c of rows 4k..4k+3
    const __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
    const __m512d c2 = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
    u[4 * k + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c2));
    u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c2));
    u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; ++c) {  // row 4L + c: lane L of u[c], u[4 + c], u[8 + c], u[12 + c]
    const __m512 x = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), y = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
    const __m512 z = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE), w = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    _mm512_storeu_ps(dst + (0 + c) * pitch, _mm512_shuffle_f32x4(x, y, 0x88));
    _mm512_storeu_ps(dst + (4 + c) * pitch, _mm512_shuffle_f32x4(x, y, 0xDD));
    _mm512_storeu_ps(dst + (8 + c) * pitch, _mm512_shuffle_f32x4(z, w, 0x88));
    _mm512_storeu_ps(dst + (12 + c) * pitch, _mm512_shuffle_f32x4(z, w, 0xDD));
  }
}
// The same for float64 with tiles of 8 x 8.
__attribute__((target("avx512f,avx512dq"))) void tile8_f64_avx512(const void* src, std::int64_t col, double* dst, std::int64_t pitch) {
  const double* p = static_cast<const double*>(src);
  __m512d r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm512_loadu_pd(p + k * col);
  for (int k = 0; k < 4; ++k) {  // t[2k + c], 128-bit lane L: column 2L + c of rows 2k, 2k+1
    t[2 * k] = _mm512_unpacklo_pd(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_pd(r[2 * k], r[2 * k + 1]);
  }
  for (int c = 0; c < 2; ++c) {  // row 2L + c: lane L of t[c], t[2 + c], t[4 + c], t[6 + c]
    const __m512d x = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x44), y = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x44);
    const __m512d z = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xEE), w = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xEE);
    _mm512_storeu_pd(dst + (0 + c) * pitch, _mm512_shuffle_f64x2(x, y, 0x88));
    _mm512_storeu_pd(dst + (2 + c) * pitch, _mm512_shuffle_f64x2(x, y, 0xDD));
    _mm512_storeu_pd(dst + (4 + c) * pitch, _mm512_shuffle_f64x2(z, w, 0x88));
    _mm512_storeu_pd(dst + (6 + c) * pitch, _mm512_shuffle_f64x2(z, w, 0xDD));
  }
}

// AVX2: 8 x 8 tiles of values widened to float, 4 x 4 of doubles (the same contract as above).
template <class L>
__attribute__((target("avx2,f16c"))) void tile8_avx2(const void* src, std::int64_t col, float* dst, std::int64_t pitch) {
  const typename L::T* p = static_cast<const typename L::T*>(src);
  __m256 r[8], t[8], u[8];
  for (int k = 0; k < 8; ++k) r[k] = L::load(p + k * col);
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // u[4h + c], 128-bit lane L: column 4L + c of rows 4h..4h+3
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * pitch, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    _mm256_storeu_ps(dst + (4 + c) * pitch, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}
__attribute__((target("avx2"))) void tile4_f64_avx2(const void* src, std::int64_t col, double* dst, std::int64_t pitch) {
  const double* p = static_cast<const double*>(src);
  __m256d r[4];
  for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_pd(p + k * col);
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + pitch, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * pitch, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * pitch, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#endif

// The kernels of one instruction set. bf16 / f16 read 16-bit inputs directly (whole groups of
// 16 only); null where the path has none (the portable one stages them as floats).
// tile_* transpose staging tiles (tile_w x tile_w values widened to float, half that for doubles),
// per input dtype; null where the path has none (element-by-element staging).
struct Kernels {
  void (*f32)(const float*, std::int64_t, Acc&);
  void (*f64)(const double*, std::int64_t, Acc&);
  void (*bf16)(const std::uint16_t*, std::int64_t, Acc&);
  void (*f16)(const std::uint16_t*, std::int64_t, Acc&);
  void (*tile_f32)(const void*, std::int64_t, float*, std::int64_t);
  void (*tile_bf16)(const void*, std::int64_t, float*, std::int64_t);
  void (*tile_f16)(const void*, std::int64_t, float*, std::int64_t);
  void (*tile_f64)(const void*, std::int64_t, double*, std::int64_t);
  int tile_w;
};

Kernels kernels_for(Isa isa) {
  if (!isa_supported(isa)) isa = Isa::scalar;
#if defined(INITLAB_STATS_MULTI)
  if (isa == Isa::avx512)
    return {kernel_avx512<LoadF32x16>, kernel_f64_avx512, kernel_avx512<LoadBf16x16>, kernel_avx512<LoadF16x16>,
            tile16_avx512<LoadF32x16>, tile16_avx512<LoadBf16x16>, tile16_avx512<LoadF16x16>, tile8_f64_avx512, 16};
  if (isa == Isa::avx2)
    return {kernel_avx2<LoadF32x8>, kernel_f64_avx2, kernel_avx2<LoadBf16x8>, kernel_avx2<LoadF16x8>,
            tile8_avx2<LoadF32x8>, tile8_avx2<LoadBf16x8>, tile8_avx2<LoadF16x8>, tile4_f64_avx2, 8};
#endif
  return {kernel_f32_base, kernel_f64_base, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0};
}

// Bytes per element.
inline std::int64_t item_bytes(DType dt) { return dt == DType::f64 ? 8 : (dt == DType::f32 ? 4 : 2); }

// Element reader for every dtype (16-bit types are widened exactly to float).
inline double read_as_double(const void* base, std::int64_t off, DType dt) {
  switch (dt) {
    case DType::f32: return static_cast<const float*>(base)[off];
    case DType::f64: return static_cast<const double*>(base)[off];
    case DType::f16: return lowp::f16_to_f32(static_cast<const std::uint16_t*>(base)[off]);
    default: return lowp::bf16_to_f32(static_cast<const std::uint16_t*>(base)[off]);
  }
}

struct Dim {
  std::int64_t n, stride;
};

// The reduced axes of one slice in logical order (C order of the input), unit axes dropped,
// axes contiguous in that order merged.
struct Plan {
  const void* data;
  DType dtype;
  std::vector<Dim> kept;     // logical order (C order of the output)
  std::vector<Dim> reduced;  // logical order
  std::int64_t m = 1;            // reduced elements per slice
  std::int64_t n_slices = 1;
  Kernels k;
};

// Calls seg(offset, stride, len) for the contiguous runs of the logical reduced index
// range [l0, l1) of the slice starting at `base` (element offset).
template <class F>
void for_each_segment(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1, F&& seg) {
  const int r = static_cast<int>(P.reduced.size());
  if (r == 0) {
    if (l0 < l1) seg(base, std::int64_t{1}, std::int64_t{1});
    return;
  }
  std::int64_t idx[64];
  std::int64_t rem = l0;
  for (int k = r - 1; k >= 0; --k) {
    idx[k] = rem % P.reduced[k].n;
    rem /= P.reduced[k].n;
  }
  const Dim inner = P.reduced[r - 1];
  std::int64_t l = l0;
  while (l < l1) {
    std::int64_t off = base;
    for (int k = 0; k < r; ++k) off += idx[k] * P.reduced[k].stride;
    const std::int64_t len = std::min(inner.n - idx[r - 1], l1 - l);
    seg(off, inner.stride, len);
    l += len;
    idx[r - 1] += len;
    for (int k = r - 1; k > 0 && idx[k] == P.reduced[k].n; --k) {
      idx[k] = 0;
      ++idx[k - 1];
    }
  }
}

// Sum of squared deviations from the shifted sums; an overflowing S2 means a variance beyond
// float64 (inf), never a NaN turned into 0 by a clamp.
inline double centered(double s1, double s2, double n) {
  if (std::isinf(s2)) return s2;
  const double m2 = s2 - s1 * (s1 / n);
  return m2 < 0.0 ? 0.0 : m2;
}

// Scalar path for a block holding non-finite values (or overflowing): skip and count them.
// Finite data whose sums overflow (values near +-1e308) is summed again scaled by 2^-600 (exact
// for every value above 2^-422; smaller ones cannot matter next to the ones that overflowed), so
// the mean stays finite; m2 is then inf only when it truly exceeds float64.
Moments block_exact(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  const double kDown = 0x1p-600, kUp = 0x1p600;
  for (int pass = 0; pass < 2; ++pass) {
    const double sc = pass == 0 ? 1.0 : kDown;
    Moments m;
    bool have_shift = false;
    double c = 0.0, s1 = 0.0, s2 = 0.0;
    double mn = std::numeric_limits<double>::infinity(), mx = -mn;
    for_each_segment(P, base, l0, l1, [&](std::int64_t off, std::int64_t st, std::int64_t len) {
      for (std::int64_t i = 0; i < len; ++i) {
        const double x = read_as_double(P.data, off + i * st, P.dtype);
        if (x == 0.0) ++m.zeros;
        if (!std::isfinite(x)) {
          ++m.nonfinite;
          continue;
        }
        if (!have_shift) {
          c = x * sc;
          have_shift = true;
        }
        const double d = x * sc - c;
        s1 += d;
        s2 += d * d;
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
        ++m.n;
      }
    });
    if (m.n > 0) {
      if (pass == 0 && !(std::isfinite(s1) && std::isfinite(s2))) continue;
      const double n = static_cast<double>(m.n);
      m.mean = (c + s1 / n) / sc;
      m.m2 = pass == 0 ? centered(s1, s2, n) : centered(s1, s2, n) * kUp * kUp;
      m.min = mn;
      m.max = mx;
    }
    return m;
  }
  return Moments{};  // not reached
}

// The lanes' shifted sums, combined in lane order.
inline void lane_sums(const Acc& a, double& s1, double& s2) {
  s1 = 0.0;
  s2 = 0.0;
  for (int j = 0; j < kLanes; ++j) {
    s1 += a.s1[j];
    s2 += a.s2[j];
  }
}

// Lanes combined in a fixed order; the block's Moments (the exact path for non-finite values).
Moments finish(const Plan& P, const Acc& a, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  double s1, s2, mn = a.mn[0], mx = a.mx[0];
  const std::int64_t z = a.z;
  lane_sums(a, s1, s2);
  for (int j = 0; j < kLanes; ++j) {
    mn = a.mn[j] < mn ? a.mn[j] : mn;
    mx = a.mx[j] > mx ? a.mx[j] : mx;
  }
  if (!std::isfinite(s2) || !std::isfinite(s1)) return block_exact(P, base, l0, l1);
  Moments m;
  m.n = l1 - l0;
  m.zeros = z;
  const double n = static_cast<double>(m.n);
  m.mean = a.shift + s1 / n;
  m.m2 = centered(s1, s2, n);
  m.min = mn;
  m.max = mx;
  return m;
}

// Whether a block's first pass (shift 0) lost too many bits to cancellation: data far from 0
// compared with its spread (|mean| above ~4 standard deviations) makes sum(x^2) - n mean^2
// cancel, so the block is summed again shifted by the first pass's mean (`c`), which keeps the
// shifted sums' error at the size of the spread. The test reads only the block's own sums, so
// the choice, and the bits, do not depend on layout or thread count. Non-finite sums go to the
// exact path instead (finish).
bool needs_shift(const Acc& a, std::int64_t count, double& c) {
  double s1, s2;
  lane_sums(a, s1, s2);
  if (!std::isfinite(s1) || !std::isfinite(s2)) return false;
  const double n = static_cast<double>(count);
  c = s1 / n;
  return c != 0.0 && centered(s1, s2, n) < s2 * 0x1p-4;
}

// One pass over the block [l0, l1) of the slice at `base` with the given shift, into `a`.
void block_pass(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1, double shift, Acc& a) {
  alignas(64) float fbuf[kGather];
  alignas(64) double dbuf[kGather];
  acc_init(a, shift);
  std::int64_t fill = 0;
  const bool is64 = P.dtype == DType::f64;
  auto flush = [&]() {
    if (fill == 0) return;
    if (is64) P.k.f64(dbuf, fill, a);
    else P.k.f32(fbuf, fill, a);
    fill = 0;
  };
  // Element l of the block always lands in lane (l - l0) % 16, in logical order within its lane:
  // every kernel call but the last starts on lane 0 with a multiple of 16 elements, whatever the
  // pieces look like in memory. So the bits do not depend on the layout (C, Fortran, strided).
  for_each_segment(P, base, l0, l1, [&](std::int64_t off, std::int64_t st, std::int64_t len) {
    const bool direct_ok = P.dtype == DType::f32 || is64 || (P.dtype == DType::bf16 ? P.k.bf16 : P.k.f16) != nullptr;
    std::int64_t i = 0;
    if (direct_ok && st == 1 && len >= kDirectMin) {
      for (; fill % kLanes != 0; ++i, ++fill) {  // top the staged elements up to whole lanes
        if (is64) dbuf[fill] = static_cast<const double*>(P.data)[off + i];
        else fbuf[fill] = static_cast<float>(read_as_double(P.data, off + i, P.dtype));
      }
      flush();
      const std::int64_t direct = (len - i) / kLanes * kLanes;
      switch (P.dtype) {
        case DType::f64: P.k.f64(static_cast<const double*>(P.data) + off + i, direct, a); break;
        case DType::f32: P.k.f32(static_cast<const float*>(P.data) + off + i, direct, a); break;
        case DType::bf16: P.k.bf16(static_cast<const std::uint16_t*>(P.data) + off + i, direct, a); break;
        default: P.k.f16(static_cast<const std::uint16_t*>(P.data) + off + i, direct, a); break;
      }
      i += direct;
    }
    for (; i < len;) {
      const std::int64_t take = std::min(len - i, kGather - fill);
      if (is64) {
        const double* src = static_cast<const double*>(P.data) + off + i * st;
        for (std::int64_t t = 0; t < take; ++t) dbuf[fill + t] = src[t * st];
      } else {
        const std::int64_t o0 = off + i * st;
        float* dst = fbuf + fill;
        switch (P.dtype) {  // the dtype switch outside the element loop (the 16-bit ones vectorize)
          case DType::f32: {
            const float* src = static_cast<const float*>(P.data) + o0;
            for (std::int64_t t = 0; t < take; ++t) dst[t] = src[t * st];
            break;
          }
          case DType::bf16: {
            const std::uint16_t* src = static_cast<const std::uint16_t*>(P.data) + o0;
            for (std::int64_t t = 0; t < take; ++t) dst[t] = lowp::bf16_to_f32(src[t * st]);
            break;
          }
          default: {
            const std::uint16_t* src = static_cast<const std::uint16_t*>(P.data) + o0;
            for (std::int64_t t = 0; t < take; ++t) dst[t] = lowp::f16_to_f32(src[t * st]);
            break;
          }
        }
      }
      fill += take;
      i += take;
      if (fill == kGather) flush();
    }
  });
  flush();
}

Moments block_fast(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  Acc a;
  double c = 0.0;
  block_pass(P, base, l0, l1, 0.0, a);
  if (needs_shift(a, l1 - l0, c)) block_pass(P, base, l0, l1, c, a);
  return finish(P, a, base, l0, l1);
}

// The Moments of a block whose values, in logical order, were staged contiguously in `v`
// (float for float32/float16/bfloat16, double for float64): exactly block_fast's arithmetic
// (one kernel call per pass over the block: whole groups of 16 to the lanes, the rest to the tail).
template <class T>
Moments block_staged(const Plan& P, const T* v, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  auto pass = [&](double shift, Acc& a) {
    acc_init(a, shift);
    if constexpr (std::is_same<T, double>::value) P.k.f64(v, l1 - l0, a);
    else P.k.f32(v, l1 - l0, a);
  };
  Acc a;
  double c = 0.0;
  pass(0.0, a);
  if (needs_shift(a, l1 - l0, c)) pass(c, a);
  return finish(P, a, base, l0, l1);
}


// ---- Transposed staging ---------------------------------------------------------------------
// When the innermost logical axis is strided in memory (a Fortran or transposed array reduced
// whole, per-row statistics of a column-major array, per-column statistics of a row-major one),
// reading elements in logical order touches one element per cache line. Instead, a task first
// copies its elements into a contiguous buffer in logical order, walking memory in its own
// order: for each position along the strided axis, a run of neighbours that are adjacent in
// memory (the rows of a Fortran array, the slices of a per-column reduction). The blocks are
// then reduced from the buffer with exactly the arithmetic of block_fast (same blocks, lanes,
// merge order), so the bits do not change, only the memory traffic.
// Calls f(reader): reader(off) is the element at `off` as T, the dtype switch taken once.
template <class T, class F>
inline void with_reader(const Plan& P, F&& f) {
  if constexpr (std::is_same<T, double>::value) {
    const double* d = static_cast<const double*>(P.data);
    f([d](std::int64_t off) { return d[off]; });
  } else {
    const void* base = P.data;
    switch (P.dtype) {
      case DType::f32: {
        const float* d = static_cast<const float*>(base);
        f([d](std::int64_t off) { return d[off]; });
        break;
      }
      case DType::f16: {
        const std::uint16_t* h = static_cast<const std::uint16_t*>(base);
        f([h](std::int64_t off) { return lowp::f16_to_f32(h[off]); });
        break;
      }
      default: {
        const std::uint16_t* h = static_cast<const std::uint16_t*>(base);
        f([h](std::int64_t off) { return lowp::bf16_to_f32(h[off]); });
        break;
      }
    }
  }
}

// Whole slices staged together (the small-slice branch): `bases` are the slices' offsets; every
// slice's m elements land in v[u * m, (u + 1) * m) in logical order.
// The tile width of this path for T (0: no vector transpose), and the transpose itself.
template <class T>
std::int64_t tile_width(const Plan& P, void (*&fast)(const void*, std::int64_t, T*, std::int64_t)) {
  if constexpr (std::is_same<T, double>::value) fast = P.k.tile_f64;
  else fast = P.dtype == DType::f32 ? P.k.tile_f32 : P.dtype == DType::bf16 ? P.k.tile_bf16 : P.k.tile_f16;
  if (fast == nullptr) return 0;
  return std::is_same<T, double>::value ? P.k.tile_w / 2 : P.k.tile_w;
}

// stage_slices through the vector transposes when the slices are W-aligned runs of memory
// neighbours (per-column statistics of a row-major array) and one strided axis is reduced:
// W x W tiles, each memory row of the task visited once per tile row with all its units'
// contiguous bytes. False (nothing written) where that does not apply.
template <class T>
bool stage_slices_tiled(const Plan& P, const std::int64_t* bases, std::int64_t units, T* v) {
  void (*fast)(const void*, std::int64_t, T*, std::int64_t) = nullptr;
  const std::int64_t W = tile_width<T>(P, fast);
  if (W == 0 || P.reduced.size() != 1 || units % W != 0) return false;
  for (std::int64_t u = 1; u < units; ++u)
    if (bases[u] != bases[0] + u) return false;
  const std::int64_t st = P.reduced[0].stride, m = P.m, item = item_bytes(P.dtype);
  const char* base = static_cast<const char*>(P.data) + bases[0] * item;
  const std::int64_t ev = m / W * W;
  for (std::int64_t e0 = 0; e0 < ev; e0 += W)
    for (std::int64_t u0 = 0; u0 < units; u0 += W) fast(base + (u0 + e0 * st) * item, st, v + u0 * m + e0, m);
  with_reader<T>(P, [&](auto rd) {  // the last m - ev elements of every slice
    for (std::int64_t u = 0; u < units; ++u)
      for (std::int64_t e = ev; e < m; ++e) v[u * m + e] = rd(bases[u] + e * st);
  });
  return true;
}

template <class T>
void stage_slices(const Plan& P, const std::int64_t* bases, std::int64_t units, T* v) {
  if (stage_slices_tiled(P, bases, units, v)) return;
  // Through a tile of kTileE elements x all units with a row pitch that is not a power of two,
  // so neither the reads (one contiguous run across the units per element) nor the writes (one
  // run of kTileE per unit) make every access of a tile hit the same cache set.
  constexpr std::int64_t kTileE = std::is_same<T, double>::value ? 16 : 32, kPitch = kTileE + 1;
  thread_local std::vector<T> tile_buf;
  tile_buf.resize(static_cast<std::size_t>(units * kPitch));
  T* tile = tile_buf.data();
  with_reader<T>(P, [&](auto rd) {
    std::int64_t e = 0, e0 = 0;  // e: next element; e0: the first element in the tile
    auto flush = [&]() {
      for (std::int64_t u = 0; u < units; ++u)
        std::memcpy(v + u * P.m + e0, tile + u * kPitch, sizeof(T) * static_cast<std::size_t>(e - e0));
      e0 = e;
    };
    for_each_segment(P, 0, 0, P.m, [&](std::int64_t off, std::int64_t st, std::int64_t len) {
      for (std::int64_t i = 0; i < len; ++i, ++e) {
        if (e - e0 == kTileE) flush();
        const std::int64_t o = off + i * st;
        T* col = tile + (e - e0);
        for (std::int64_t u = 0; u < units; ++u) col[u * kPitch] = rd(bases[u] + o);
      }
    });
    flush();
  });
}

// The logical range [l0, l1) of the slice at `base`, staged into v[0, l1 - l0): rows of the
// innermost axis (extent n1, stride s1) are walked column by column, so consecutive rows (adjacent
// in memory through the second-innermost axis) are read together.
template <class T>
void stage_range(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1, T* v, std::vector<std::int64_t>& rb) {
  const int r = static_cast<int>(P.reduced.size());
  const std::int64_t n1 = P.reduced[static_cast<std::size_t>(r - 1)].n, s1 = P.reduced[static_cast<std::size_t>(r - 1)].stride;
  const std::int64_t q0 = l0 / n1, q1 = (l1 - 1) / n1;  // first and last row
  rb.resize(static_cast<std::size_t>(q1 - q0 + 1));
  for (std::int64_t q = q0; q <= q1; ++q) {  // each row's memory offset
    std::int64_t rem = q, off = base;
    for (int k = r - 2; k >= 0; --k) {
      off += (rem % P.reduced[static_cast<std::size_t>(k)].n) * P.reduced[static_cast<std::size_t>(k)].stride;
      rem /= P.reduced[static_cast<std::size_t>(k)].n;
    }
    rb[static_cast<std::size_t>(q - q0)] = off;
  }
  const std::int64_t j_first = l0 - q0 * n1, j_last = l1 - 1 - q1 * n1;  // partial first and last rows
  // Tiles of kTileJ columns x kTileQ rows go through a small buffer whose row pitch is not a power
  // of two: the source columns and the staged rows are often 2^k bytes apart, and copying one
  // straight into the other would make every access of a tile hit the same cache set.
  constexpr std::int64_t kTileJ = 32, kTileQ = 16, kPitch = kTileJ + 1;
  T tile[kTileQ * kPitch];
  // The vector transpose (W x W tiles) where the path has one for this dtype; rows per tile: its
  // width, or kTileQ where there is none (W <= kTileQ).
  void (*fast)(const void*, std::int64_t, T*, std::int64_t) = nullptr;
  const std::int64_t tw = tile_width<T>(P, fast);
  const std::int64_t W = tw > 0 ? tw : kTileQ;
  const std::int64_t item = item_bytes(P.dtype);
  with_reader<T>(P, [&](auto rd) {
  // Rows [qt, qe), columns [jt, je) element by element, through the tile buffer.
  auto slow = [&](std::int64_t qt, std::int64_t qe, std::int64_t jt, std::int64_t je) {
    for (std::int64_t j = jt; j < je; ++j) {
      const std::int64_t o = j * s1;
      for (std::int64_t q = qt; q < qe; ++q)
        tile[(q - qt) * kPitch + (j - jt)] = rd(rb[static_cast<std::size_t>(q - q0)] + o);
    }
    for (std::int64_t q = qt; q < qe; ++q) {
      const std::int64_t ja = (q == q0) ? std::max(jt, j_first) : jt;
      const std::int64_t jb = (q == q1) ? std::min(je, j_last + 1) : je;
      if (ja < jb) std::memcpy(v + (q * n1 + ja - l0), tile + (q - qt) * kPitch + (ja - jt), sizeof(T) * static_cast<std::size_t>(jb - ja));
    }
  };
  // Row tiles of W whole rows, neighbours in memory (unit stride), go through the transpose; the
  // column loop is outside the row-tile loop so that each source column is read as one run over
  // all of the task's rows (a few hundred contiguous bytes), not one cache line per pass.
  auto vec_ok = [&](std::int64_t qt) {
    const std::int64_t qe = std::min(q1 + 1, qt + W);
    bool ok = fast != nullptr && qe - qt == W && (qt > q0 || j_first == 0) && (qe - 1 < q1 || j_last == n1 - 1);
    for (std::int64_t k = 1; ok && k < W; ++k) ok = rb[static_cast<std::size_t>(qt - q0 + k)] == rb[static_cast<std::size_t>(qt - q0)] + k;
    return ok;
  };
  thread_local std::vector<std::int64_t> vq;
  vq.clear();
  for (std::int64_t qt = q0; qt <= q1; qt += W)
    if (vec_ok(qt)) vq.push_back(qt);
  const std::int64_t jv = vq.empty() ? 0 : n1 / W * W;  // columns [0, jv) of the vq tiles go through the transpose
  for (std::int64_t jt = 0; jt < jv; jt += W) {
    for (std::int64_t qt : vq) {
      const char* src = static_cast<const char*>(P.data) + (rb[static_cast<std::size_t>(qt - q0)] + jt * s1) * item;
      fast(src, s1, v + (qt * n1 + jt - l0), n1);
    }
  }
  std::size_t next = 0;
  for (std::int64_t qt = q0; qt <= q1; qt += W) {
    const std::int64_t qe = std::min(q1 + 1, qt + W);
    const bool done = next < vq.size() && vq[next] == qt;
    if (done) ++next;
    for (std::int64_t jt = done ? jv : 0; jt < n1; jt += kTileJ) slow(qt, qe, jt, std::min(n1, jt + kTileJ));
  }
  });
}

// Whether a task of this plan should stage its elements (see above) rather than read them in
// logical order: the innermost reduced axis is strided and a closer axis gives memory neighbours.
bool stage_rows(const Plan& P, std::int64_t per_task) {
  const int r = static_cast<int>(P.reduced.size());
  if (r < 2) return false;
  const std::int64_t s1 = std::llabs(P.reduced[static_cast<std::size_t>(r - 1)].stride);
  const std::int64_t s0 = std::llabs(P.reduced[static_cast<std::size_t>(r - 2)].stride);
  return s1 > 1 && s0 < s1 && P.reduced[static_cast<std::size_t>(r - 1)].n * 2 <= per_task;
}
bool stage_slices_ok(const Plan& P, std::int64_t spt) {
  if (P.kept.empty() || P.reduced.empty() || spt < 2) return false;
  const std::int64_t sk = std::llabs(P.kept.back().stride), s1 = std::llabs(P.reduced.back().stride);
  return s1 > 1 && sk < s1;
}

template <class T>
T* stage_buffer(std::int64_t n) {
  thread_local std::vector<T> buf;
  if (static_cast<std::int64_t>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

// reduce_range of consecutive groups [l0, l1) of a slice (l0 on a group boundary), through the
// staging buffer: group k's Moments (its blocks merged in order, as reduce_range) go to out[k].
template <class T>
void reduce_groups_staged(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1, Moments* out) {
  thread_local std::vector<std::int64_t> rb;
  T* v = stage_buffer<T>(l1 - l0);
  stage_range<T>(P, base, l0, l1, v, rb);
  const std::int64_t per_group = kStatsBlock * kStatsGroup;
  for (std::int64_t g0 = l0; g0 < l1; g0 += per_group) {
    Moments acc;
    for (std::int64_t b = g0; b < std::min(l1, g0 + per_group); b += kStatsBlock) {
      const std::int64_t e = std::min(l1, b + kStatsBlock);
      acc = merge(acc, block_staged<T>(P, v + (b - l0), base, b, e));
    }
    *out++ = acc;
  }
}
template <class T>
Moments reduce_range_staged(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  Moments m;
  reduce_groups_staged<T>(P, base, l0, l1, &m);  // one group
  return m;
}

// Blocks [l0, l1) of one slice (l0 on a block boundary), merged in order.
Moments reduce_range(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  Moments acc;
  for (std::int64_t b = l0; b < l1; b += kStatsBlock) acc = merge(acc, block_fast(P, base, b, std::min(l1, b + kStatsBlock)));
  return acc;
}

std::int64_t slice_base(const Plan& P, std::int64_t s) {
  std::int64_t off = 0;
  for (int k = static_cast<int>(P.kept.size()) - 1; k >= 0; --k) {
    off += (s % P.kept[k].n) * P.kept[k].stride;
    s /= P.kept[k].n;
  }
  return off;
}

void write_out(const StatsOutput& out, std::int64_t s, const Moments& m) {
  out.finite[s] = m.n;
  out.zeros[s] = m.zeros;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  out.mean[s] = m.n ? m.mean : nan;
  out.m2[s] = m.n ? m.m2 : nan;
  out.min[s] = m.n ? m.min : nan;
  out.max[s] = m.n ? m.max : nan;
}

}  // namespace

void compute_stats(const StatsInput& in, const unsigned char* reduce, const StatsOutput& out, Exec ex) {
  INITLAB_REQUIRE(in.ndim >= 0 && in.ndim <= 64, "stats: number of dimensions must be in [0, 64], got " + std::to_string(in.ndim));
  const int dt = static_cast<int>(in.dtype);
  INITLAB_REQUIRE(dt >= 0 && dt <= 3, "stats: unknown dtype code " + std::to_string(dt));
  INITLAB_REQUIRE(out.finite && out.zeros && out.mean && out.m2 && out.min && out.max, "stats: output arrays missing");
  Plan P;
  P.data = in.data;
  P.dtype = in.dtype;
  bool empty = false;
  for (int k = 0; k < in.ndim; ++k) {
    INITLAB_REQUIRE(in.shape[k] >= 0, "stats: negative dimension " + std::to_string(in.shape[k]));
    const Dim d{in.shape[k], in.strides[k]};
    if (reduce[k]) {
      if (d.n == 0) empty = true;
      P.m *= d.n;
      if (d.n == 1) continue;
      P.reduced.push_back(d);
    } else {
      P.kept.push_back(d);
      P.n_slices *= d.n;
    }
  }
  if (P.n_slices == 0) return;
  if (empty || P.m == 0) {
    for (std::int64_t s = 0; s < P.n_slices; ++s) write_out(out, s, Moments{});
    return;
  }
  INITLAB_REQUIRE(in.data != nullptr, "stats: null data pointer");
  // Logical (C) order, never memory order: the summation order, hence the bits, must not
  // depend on the layout. Axes that are contiguous in that order are merged.
  std::vector<Dim> merged;
  for (const Dim& d : P.reduced) {
    if (!merged.empty() && merged.back().stride == d.stride * d.n) {
      merged.back().n *= d.n;
      merged.back().stride = d.stride;
    } else {
      merged.push_back(d);
    }
  }
  P.reduced = merged;
  P.k = kernels_for(ex.isa);

  const std::int64_t per_task = kStatsBlock * kStatsGroup;
  const std::int64_t groups = (P.m + per_task - 1) / per_task;
  const int nt = ex.n_threads < 1 ? 1 : ex.n_threads;
  if (groups == 1) {
    // Small slices: a task takes whole slices, each reduced block by block.
    std::int64_t spt = std::max<std::int64_t>(1, per_task / P.m);
    const bool staged = stage_slices_ok(P, spt);
    if (staged) {
      // Enough slices per task for each memory row to be read 256 bytes at a time (64 float32
      // columns), a multiple of 16 for the tile transposes; which task reduces a slice does not
      // change its bits (every slice is reduced whole by one task).
      spt = std::max<std::int64_t>(spt, 256 / item_bytes(P.dtype));
      spt = (spt + 15) / 16 * 16;
    }
    const std::int64_t n_tasks = (P.n_slices + spt - 1) / spt;
    const bool rows = !staged && stage_rows(P, per_task);
    const bool is64 = P.dtype == DType::f64;
    parallel_for(n_tasks, nt, [&](std::int64_t t) {
      const std::int64_t s0 = t * spt, s1 = std::min(P.n_slices, (t + 1) * spt);
      if (!staged) {
        for (std::int64_t s = s0; s < s1; ++s) {
          const std::int64_t base = slice_base(P, s);
          write_out(out, s, !rows ? reduce_range(P, base, 0, P.m)
                            : is64 ? reduce_range_staged<double>(P, base, 0, P.m)
                                   : reduce_range_staged<float>(P, base, 0, P.m));
        }
        return;
      }
      thread_local std::vector<std::int64_t> bases;
      bases.resize(static_cast<std::size_t>(s1 - s0));
      for (std::int64_t s = s0; s < s1; ++s) bases[static_cast<std::size_t>(s - s0)] = slice_base(P, s);
      auto run = [&](auto* v) {
        stage_slices(P, bases.data(), s1 - s0, v);
        for (std::int64_t s = s0; s < s1; ++s) {
          Moments acc;
          const auto* vs = v + (s - s0) * P.m;
          for (std::int64_t b = 0; b < P.m; b += kStatsBlock)
            acc = merge(acc, block_staged(P, vs + b, bases[static_cast<std::size_t>(s - s0)], b,
                                          std::min(P.m, b + kStatsBlock)));
          write_out(out, s, acc);
        }
      };
      if (is64) run(stage_buffer<double>((s1 - s0) * P.m));
      else run(stage_buffer<float>((s1 - s0) * P.m));
    });
    return;
  }
  // Large slices: tasks are (slice, group of blocks); groups merged in order afterwards.
  std::vector<Moments> part(static_cast<std::size_t>(P.n_slices * groups));
  const bool staged = stage_rows(P, per_task);
  const bool is64 = P.dtype == DType::f64;
  if (staged) {
    // A staging task takes enough groups for its rows to span 256 contiguous bytes of each source
    // column (64 float32 rows, 128 16-bit ones): a strided walk reads memory at a fraction of
    // its bandwidth when each visit takes a single cache line (4.7 GB/s for 64 bytes against
    // 14 GB/s for 256 here, one thread).
    // The groups' Moments are the same whichever task computes them.
    const std::int64_t n1 = P.reduced.back().n, item = item_bytes(P.dtype);
    const std::int64_t gpt = std::max<std::int64_t>(1, std::min<std::int64_t>(32, (256 / item) * n1 / per_task));
    const std::int64_t tasks_per_slice = (groups + gpt - 1) / gpt;
    parallel_for(P.n_slices * tasks_per_slice, nt, [&](std::int64_t t) {
      const std::int64_t s = t / tasks_per_slice, g0 = (t % tasks_per_slice) * gpt, g1 = std::min(groups, g0 + gpt);
      const std::int64_t base = slice_base(P, s), l0 = g0 * per_task, l1 = std::min(P.m, g1 * per_task);
      Moments* out = part.data() + s * groups + g0;
      if (is64) reduce_groups_staged<double>(P, base, l0, l1, out);
      else reduce_groups_staged<float>(P, base, l0, l1, out);
    });
  } else {
    parallel_for(P.n_slices * groups, nt, [&](std::int64_t t) {
      const std::int64_t s = t / groups, g = t % groups;
      const std::int64_t base = slice_base(P, s), l0 = g * per_task, l1 = std::min(P.m, (g + 1) * per_task);
      part[static_cast<std::size_t>(t)] = reduce_range(P, base, l0, l1);
    });
  }
  for (std::int64_t s = 0; s < P.n_slices; ++s) {
    Moments acc;
    for (std::int64_t g = 0; g < groups; ++g) acc = merge(acc, part[static_cast<std::size_t>(s * groups + g)]);
    write_out(out, s, acc);
  }
}

std::uint64_t read_probe(const void* data, std::int64_t n_bytes, int n_threads) {
  INITLAB_REQUIRE(n_bytes >= 0, "read_probe: negative size");
  const std::int64_t words = n_bytes / 8;
  const std::int64_t chunk = 1 << 17;  // 1 MiB of words per task
  const std::int64_t n_tasks = (words + chunk - 1) / chunk;
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(n_tasks), 0);
  const auto* w = static_cast<const std::uint64_t*>(data);
  parallel_for(n_tasks, n_threads, [&](std::int64_t t) {
    const std::int64_t e = std::min(words, (t + 1) * chunk);
    std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    std::int64_t i = t * chunk;
    for (; i + 4 <= e; i += 4) {
      s0 += w[i]; s1 += w[i + 1]; s2 += w[i + 2]; s3 += w[i + 3];
    }
    for (; i < e; ++i) s0 += w[i];
    sums[static_cast<std::size_t>(t)] = s0 + s1 + s2 + s3;
  });
  std::uint64_t total = 0;
  for (std::uint64_t s : sums) total += s;
  return total;
}

}  // namespace initlab
