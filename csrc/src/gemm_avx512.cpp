// GEMM for the AVX-512 path (compiled with -mavx512f): 32 x 12 (float) / 16 x 12 (double)
// micro-tile, 24 accumulator registers of the 32.
#if defined(INITLAB_X86)  // x86-only translation unit (see gemm.cpp for the dispatch)
#include <immintrin.h>

#define INITLAB_GEMM_NS g_avx512

namespace initlab {
namespace detail {
namespace g_avx512 {
template <class T>
struct VT;
template <>
struct VT<float> {
  using V = __m512;
  static constexpr int L = 16, MV = 2, NR = 12;
  static V zero() { return _mm512_setzero_ps(); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V bcast(const float* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
};
template <>
struct VT<double> {
  using V = __m512d;
  static constexpr int L = 8, MV = 2, NR = 12;
  static V zero() { return _mm512_setzero_pd(); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  static V bcast(const double* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
};
}  // namespace g_avx512
}  // namespace detail
}  // namespace initlab

#include "gemm_impl.inl"

namespace initlab {
namespace detail {
GemmOps<float> gemm_ops_avx512_f32() { return g_avx512::make_ops<float>(); }
GemmOps<double> gemm_ops_avx512_f64() { return g_avx512::make_ops<double>(); }
}  // namespace detail
}  // namespace initlab
#endif  // INITLAB_X86
