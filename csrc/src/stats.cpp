// One-pass statistics (see stats.hpp for the determinism and non-finite rules).
//
// Per block: a fast path accumulates, in 8 float64 lanes, the shifted sums S1 = sum(x - c),
// S2 = sum((x - c)^2) (c = the block's first element, which removes the catastrophic
// cancellation of sum(x^2) - n mean^2 for data far from 0), min, max and the zero count. Lane
// j takes the elements j, j+8, ... of each contiguous piece, so the arithmetic is the same
// on every instruction set. Non-finite values make S2 non-finite; only then is the block
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

constexpr int kLanes = 8;
constexpr std::int64_t kGather = 1024;      // staging buffer for strided / 16-bit pieces
constexpr std::int64_t kDirectMin = 256;    // shorter contiguous pieces are staged too

// Lane accumulators of one block, kept in memory between kernel calls.
struct alignas(64) Acc {
  double s1[kLanes], s2[kLanes], mn[kLanes], mx[kLanes];
  std::int64_t z[kLanes];
  double shift;
};

void acc_init(Acc& a, double shift) {
  for (int j = 0; j < kLanes; ++j) {
    a.s1[j] = 0.0; a.s2[j] = 0.0; a.z[j] = 0;
    a.mn[j] = std::numeric_limits<double>::infinity();
    a.mx[j] = -std::numeric_limits<double>::infinity();
  }
  a.shift = shift;
}

// The scalar tail: element k of a piece goes to lane k % 8, with the lanes' own operations.
template <class T>
inline void tail(const T* p, std::int64_t i, std::int64_t n, Acc& a) {
  for (int j = 0; i < n; ++i, ++j) {
    const double x = static_cast<double>(p[i]);
    const double d = x - a.shift;
    a.s1[j] += d;
    a.s2[j] += d * d;
    a.mn[j] = x < a.mn[j] ? x : a.mn[j];
    a.mx[j] = x > a.mx[j] ? x : a.mx[j];
    a.z[j] += (x == 0.0) ? 1 : 0;
  }
}

#if defined(__GNUC__)
// GCC/Clang vector extensions: the 8 lanes are held as 8/W native vectors of W doubles (W = 2
// for SSE2, 4 for AVX2/AVX-512), lane j in vector j / W. Every lane runs the same IEEE
// operations whatever W is, so all paths give the same bits. The helpers are always inlined,
// so the vector ABI warning (-Wpsabi) does not concern us.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double v2d __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));
typedef float v2f __attribute__((vector_size(8)));
typedef float v4f __attribute__((vector_size(16)));

template <class V> struct VecOf;
template <> struct VecOf<v2d> { typedef v2f F; static constexpr int W = 2; };
template <> struct VecOf<v4d> { typedef v4f F; static constexpr int W = 4; };

template <class V, class T>
inline __attribute__((always_inline)) V loadv(const T* p) {
  if constexpr (std::is_same<T, float>::value) {
    typename VecOf<V>::F f;
    std::memcpy(&f, p, sizeof f);
    return __builtin_convertvector(f, V);
  } else {
    V d;
    std::memcpy(&d, p, sizeof d);
    return d;
  }
}

template <class V, class T>
inline __attribute__((always_inline)) void kernel_impl(const T* p, std::int64_t n, Acc& a) {
  constexpr int W = VecOf<V>::W, K = kLanes / W;
  typedef decltype(V{} == V{}) M;  // the comparison mask: int64 lanes, -1 where true
  V s1[K], s2[K], mn[K], mx[K];
  M z[K];
  for (int k = 0; k < K; ++k) {
    std::memcpy(&s1[k], a.s1 + k * W, sizeof(V));
    std::memcpy(&s2[k], a.s2 + k * W, sizeof(V));
    std::memcpy(&mn[k], a.mn + k * W, sizeof(V));
    std::memcpy(&mx[k], a.mx + k * W, sizeof(V));
    std::memcpy(&z[k], a.z + k * W, sizeof(M));
  }
  const V c = V{} + a.shift;
  const V zero = V{};
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < K; ++k) {
      const V x = loadv<V>(p + i + k * W);
      const V d = x - c;
      s1[k] += d;
      s2[k] += d * d;
      mn[k] = x < mn[k] ? x : mn[k];
      mx[k] = x > mx[k] ? x : mx[k];
      z[k] -= (x == zero);
    }
  }
  for (int k = 0; k < K; ++k) {
    std::memcpy(a.s1 + k * W, &s1[k], sizeof(V));
    std::memcpy(a.s2 + k * W, &s2[k], sizeof(V));
    std::memcpy(a.mn + k * W, &mn[k], sizeof(V));
    std::memcpy(a.mx + k * W, &mx[k], sizeof(V));
    std::memcpy(a.z + k * W, &z[k], sizeof(M));
  }
  tail(p, i, n, a);
}
#else
template <class T>
inline void kernel_impl(const T* p, std::int64_t n, Acc& a) {
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) tail(p + i, 0, kLanes, a);
  tail(p, i, n, a);
}
#endif

#if defined(__GNUC__)
#define INITLAB_KERNEL(V, p, n, a) kernel_impl<V>(p, n, a)
#else
#define INITLAB_KERNEL(V, p, n, a) kernel_impl(p, n, a)
#endif
void kernel_f32_base(const float* p, std::int64_t n, Acc& a) { INITLAB_KERNEL(v2d, p, n, a); }
void kernel_f64_base(const double* p, std::int64_t n, Acc& a) { INITLAB_KERNEL(v2d, p, n, a); }
#if defined(__GNUC__) && defined(__x86_64__)
#define INITLAB_STATS_MULTI 1
// float32 on AVX2, written with intrinsics because GCC 12 splits the generic 4-wide
// float -> double conversion in two. Same lanes (0-3 in `lo`, 4-7 in `hi`) and the same
// double operations as kernel_impl, so the same bits; min, max and the zero test run on the
// floats themselves (exact: widening to double is exact and monotone).
__attribute__((target("avx2"))) void kernel_f32_avx2(const float* p, std::int64_t n, Acc& a) {
  __m256d s1lo = _mm256_loadu_pd(a.s1), s1hi = _mm256_loadu_pd(a.s1 + 4);
  __m256d s2lo = _mm256_loadu_pd(a.s2), s2hi = _mm256_loadu_pd(a.s2 + 4);
  __m256 mn = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(a.mn + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(a.mn)));
  __m256 mx = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_loadu_pd(a.mx + 4)), _mm256_cvtpd_ps(_mm256_loadu_pd(a.mx)));
  __m256i z = _mm256_setzero_si256();  // int32 lanes: at most n / 8 <= kStatsBlock / 8 per call
  const __m256d c = _mm256_set1_pd(a.shift);
  const __m256 zero = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 x = _mm256_loadu_ps(p + i);
    const __m256d dlo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)), c);
    const __m256d dhi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), c);
    s1lo = _mm256_add_pd(s1lo, dlo);
    s1hi = _mm256_add_pd(s1hi, dhi);
    s2lo = _mm256_add_pd(s2lo, _mm256_mul_pd(dlo, dlo));
    s2hi = _mm256_add_pd(s2hi, _mm256_mul_pd(dhi, dhi));
    mn = _mm256_min_ps(x, mn);  // (x < mn) ? x : mn, as the generic kernel
    mx = _mm256_max_ps(x, mx);
    z = _mm256_sub_epi32(z, _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ)));
  }
  _mm256_storeu_pd(a.s1, s1lo);
  _mm256_storeu_pd(a.s1 + 4, s1hi);
  _mm256_storeu_pd(a.s2, s2lo);
  _mm256_storeu_pd(a.s2 + 4, s2hi);
  _mm256_storeu_pd(a.mn, _mm256_cvtps_pd(_mm256_castps256_ps128(mn)));
  _mm256_storeu_pd(a.mn + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(mn, 1)));
  _mm256_storeu_pd(a.mx, _mm256_cvtps_pd(_mm256_castps256_ps128(mx)));
  _mm256_storeu_pd(a.mx + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(mx, 1)));
  alignas(32) std::int32_t zl[kLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(zl), z);
  for (int j = 0; j < kLanes; ++j) a.z[j] += zl[j];
  tail(p, i, n, a);
}
__attribute__((target("avx2"))) void kernel_f64_avx2(const double* p, std::int64_t n, Acc& a) { kernel_impl<v4d>(p, n, a); }
// GCC 12's avx512fintrin.h converts through a deliberately uninitialized register
// (_mm256_undefined_ps), which -Wuninitialized reports at every use: not our code.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// AVX-512: the 8 lanes are one register of 8 doubles (lane j in element j), the same double
// operations as kernel_impl, so the same bits; float32 is widened 8 at a time in one instruction.
__attribute__((target("avx512f"))) void kernel_f32_avx512(const float* p, std::int64_t n, Acc& a) {
  __m512d s1 = _mm512_loadu_pd(a.s1), s2 = _mm512_loadu_pd(a.s2);
  __m256 mn = _mm512_cvtpd_ps(_mm512_loadu_pd(a.mn)), mx = _mm512_cvtpd_ps(_mm512_loadu_pd(a.mx));
  __m256i z = _mm256_setzero_si256();  // int32 lanes: at most n / 8 <= kStatsBlock / 8 per call
  const __m512d c = _mm512_set1_pd(a.shift);
  const __m256 zero = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256 x = _mm256_loadu_ps(p + i);
    const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(x), c);
    s1 = _mm512_add_pd(s1, d);
    s2 = _mm512_add_pd(s2, _mm512_mul_pd(d, d));
    mn = _mm256_min_ps(x, mn);  // (x < mn) ? x : mn, as the generic kernel
    mx = _mm256_max_ps(x, mx);
    z = _mm256_sub_epi32(z, _mm256_castps_si256(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ)));
  }
  _mm512_storeu_pd(a.s1, s1);
  _mm512_storeu_pd(a.s2, s2);
  _mm512_storeu_pd(a.mn, _mm512_cvtps_pd(mn));
  _mm512_storeu_pd(a.mx, _mm512_cvtps_pd(mx));
  alignas(32) std::int32_t zl[kLanes];
  _mm256_store_si256(reinterpret_cast<__m256i*>(zl), z);
  for (int j = 0; j < kLanes; ++j) a.z[j] += zl[j];
  tail(p, i, n, a);
}
__attribute__((target("avx512f"))) void kernel_f64_avx512(const double* p, std::int64_t n, Acc& a) {
  __m512d s1 = _mm512_loadu_pd(a.s1), s2 = _mm512_loadu_pd(a.s2);
  __m512d mn = _mm512_loadu_pd(a.mn), mx = _mm512_loadu_pd(a.mx);
  __m512i z = _mm512_loadu_si512(a.z);
  const __m512d c = _mm512_set1_pd(a.shift);
  const __m512d zero = _mm512_setzero_pd();
  const __m512i one = _mm512_set1_epi64(1);
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m512d x = _mm512_loadu_pd(p + i);
    const __m512d d = _mm512_sub_pd(x, c);
    s1 = _mm512_add_pd(s1, d);
    s2 = _mm512_add_pd(s2, _mm512_mul_pd(d, d));
    mn = _mm512_min_pd(x, mn);  // (x < mn) ? x : mn
    mx = _mm512_max_pd(x, mx);
    z = _mm512_mask_add_epi64(z, _mm512_cmp_pd_mask(x, zero, _CMP_EQ_OQ), z, one);
  }
  _mm512_storeu_pd(a.s1, s1);
  _mm512_storeu_pd(a.s2, s2);
  _mm512_storeu_pd(a.mn, mn);
  _mm512_storeu_pd(a.mx, mx);
  _mm512_storeu_si512(a.z, z);
  tail(p, i, n, a);
}
#endif

struct Kernels {
  void (*f32)(const float*, std::int64_t, Acc&);
  void (*f64)(const double*, std::int64_t, Acc&);
};

Kernels kernels_for(Isa isa) {
  if (!isa_supported(isa)) isa = Isa::scalar;
#if defined(INITLAB_STATS_MULTI)
  if (isa == Isa::avx512) return {kernel_f32_avx512, kernel_f64_avx512};
  if (isa == Isa::avx2) return {kernel_f32_avx2, kernel_f64_avx2};
#endif
  return {kernel_f32_base, kernel_f64_base};
}

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

// Lanes combined in a fixed order; the block's Moments (the exact path for non-finite values).
Moments finish(const Plan& P, const Acc& a, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  double s1 = 0.0, s2 = 0.0, mn = a.mn[0], mx = a.mx[0];
  std::int64_t z = 0;
  for (int j = 0; j < kLanes; ++j) {
    s1 += a.s1[j];
    s2 += a.s2[j];
    mn = a.mn[j] < mn ? a.mn[j] : mn;
    mx = a.mx[j] > mx ? a.mx[j] : mx;
    z += a.z[j];
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

Moments block_fast(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  alignas(64) float fbuf[kGather];
  alignas(64) double dbuf[kGather];
  Acc a;
  std::int64_t first_off = 0;
  for_each_segment(P, base, l0, l0 + 1, [&](std::int64_t off, std::int64_t, std::int64_t) { first_off = off; });
  acc_init(a, read_as_double(P.data, first_off, P.dtype));
  std::int64_t fill = 0;
  const bool is64 = P.dtype == DType::f64;
  auto flush = [&]() {
    if (fill == 0) return;
    if (is64) P.k.f64(dbuf, fill, a);
    else P.k.f32(fbuf, fill, a);
    fill = 0;
  };
  // Element l of the block always lands in lane (l - l0) % 8, in logical order within its lane:
  // every kernel call but the last starts on lane 0 with a multiple of 8 elements, whatever the
  // pieces look like in memory. So the bits do not depend on the layout (C, Fortran, strided).
  for_each_segment(P, base, l0, l1, [&](std::int64_t off, std::int64_t st, std::int64_t len) {
    const bool native = P.dtype == DType::f32 || is64;
    std::int64_t i = 0;
    if (native && st == 1 && len >= kDirectMin) {
      for (; fill % kLanes != 0; ++i, ++fill) {  // top the staged elements up to whole lanes
        if (is64) dbuf[fill] = static_cast<const double*>(P.data)[off + i];
        else fbuf[fill] = static_cast<const float*>(P.data)[off + i];
      }
      flush();
      const std::int64_t direct = (len - i) / kLanes * kLanes;
      if (is64) P.k.f64(static_cast<const double*>(P.data) + off + i, direct, a);
      else P.k.f32(static_cast<const float*>(P.data) + off + i, direct, a);
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
  return finish(P, a, base, l0, l1);
}

// The Moments of a block whose values, in logical order, were staged contiguously in `v`
// (float for float32/float16/bfloat16, double for float64): exactly block_fast's arithmetic
// (one kernel call over the block: whole groups of 8 to the lanes, the rest to the tail).
template <class T>
Moments block_staged(const Plan& P, const T* v, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  Acc a;
  acc_init(a, static_cast<double>(v[0]));
  if constexpr (std::is_same<T, double>::value) P.k.f64(v, l1 - l0, a);
  else P.k.f32(v, l1 - l0, a);
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
template <class T>
void stage_slices(const Plan& P, const std::int64_t* bases, std::int64_t units, T* v) {
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
  with_reader<T>(P, [&](auto rd) {
  for (std::int64_t qt = q0; qt <= q1; qt += kTileQ) {
    const std::int64_t qe = std::min(q1 + 1, qt + kTileQ);
    for (std::int64_t jt = 0; jt < n1; jt += kTileJ) {
      const std::int64_t je = std::min(n1, jt + kTileJ);
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
    }
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

// reduce_range of a task, through the staging buffer.
template <class T>
Moments reduce_range_staged(const Plan& P, std::int64_t base, std::int64_t l0, std::int64_t l1) {
  thread_local std::vector<std::int64_t> rb;
  T* v = stage_buffer<T>(l1 - l0);
  stage_range<T>(P, base, l0, l1, v, rb);
  Moments acc;
  for (std::int64_t b = l0; b < l1; b += kStatsBlock) {
    const std::int64_t e = std::min(l1, b + kStatsBlock);
    acc = merge(acc, block_staged<T>(P, v + (b - l0), base, b, e));
  }
  return acc;
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
    const std::int64_t spt = std::max<std::int64_t>(1, per_task / P.m);
    const std::int64_t n_tasks = (P.n_slices + spt - 1) / spt;
    const bool staged = stage_slices_ok(P, spt);
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
  parallel_for(P.n_slices * groups, nt, [&](std::int64_t t) {
    const std::int64_t s = t / groups, g = t % groups;
    const std::int64_t base = slice_base(P, s), l0 = g * per_task, l1 = std::min(P.m, (g + 1) * per_task);
    part[static_cast<std::size_t>(t)] = !staged ? reduce_range(P, base, l0, l1)
                                        : is64  ? reduce_range_staged<double>(P, base, l0, l1)
                                                : reduce_range_staged<float>(P, base, l0, l1);
  });
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
