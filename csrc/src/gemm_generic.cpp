// GEMM for the scalar and SSE2 paths: plain C++ (product rounded, then added; no FMA), so it
// runs on any CPU. The 8 x 4 tile of independent accumulators lets the compiler vectorize
// across the tile without changing any element's summation order.
#define INITLAB_GEMM_NS g_generic

namespace initlab {
namespace detail {
namespace g_generic {
template <class T>
struct VT {
  using V = T;
  static constexpr int L = 1, MV = 8, NR = 4;
  static V zero() { return T(0); }
  static V loadu(const T* p) { return *p; }
  static V bcast(const T* p) { return *p; }
  static V fma(V a, V b, V c) { return c + a * b; }  // -ffp-contract=off: two roundings
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static void storeu(T* p, V v) { *p = v; }
};
}  // namespace g_generic
}  // namespace detail
}  // namespace initlab

#include "gemm_impl.inl"

namespace initlab {
namespace detail {
GemmOps<float> gemm_ops_generic_f32() { return g_generic::make_ops<float>(); }
GemmOps<double> gemm_ops_generic_f64() { return g_generic::make_ops<double>(); }
}  // namespace detail
}  // namespace initlab
