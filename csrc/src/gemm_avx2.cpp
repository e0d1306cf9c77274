// GEMM for the AVX2+FMA path (compiled with -mavx2 -mfma): 16 x 6 (float) / 8 x 6 (double)
// micro-tile, 12 accumulator registers.
#if defined(INITLAB_X86)  // x86-only translation unit (see gemm.cpp for the dispatch)
#include <immintrin.h>

#define INITLAB_GEMM_NS g_avx2

namespace initlab {
namespace detail {
namespace g_avx2 {
template <class T>
struct VT;
template <>
struct VT<float> {
  using V = __m256;
  static constexpr int L = 8, MV = 2, NR = 6;
  static V zero() { return _mm256_setzero_ps(); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
};
template <>
struct VT<double> {
  using V = __m256d;
  static constexpr int L = 4, MV = 2, NR = 6;
  static V zero() { return _mm256_setzero_pd(); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
};
}  // namespace g_avx2
}  // namespace detail
}  // namespace initlab

#include "gemm_impl.inl"

namespace initlab {
namespace detail {
GemmOps<float> gemm_ops_avx2_f32() { return g_avx2::make_ops<float>(); }
GemmOps<double> gemm_ops_avx2_f64() { return g_avx2::make_ops<double>(); }
}  // namespace detail
}  // namespace initlab
#endif  // INITLAB_X86
