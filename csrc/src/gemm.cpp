// Run-time choice of the GEMM path, and the stand-alone multi-threaded gemm().
#include "initlab/gemm.hpp"

#include <algorithm>
#include <vector>

#include "initlab/errors.hpp"
#include "initlab/parallel.hpp"

namespace initlab {
namespace detail {

GemmOps<float> gemm_ops_generic_f32();
GemmOps<double> gemm_ops_generic_f64();
#if defined(INITLAB_X86)
GemmOps<float> gemm_ops_avx2_f32();
GemmOps<double> gemm_ops_avx2_f64();
GemmOps<float> gemm_ops_avx512_f32();
GemmOps<double> gemm_ops_avx512_f64();
#endif

namespace {
// The AVX2 GEMM also needs FMA, which isa_supported(avx2) does not check.
bool fma_ok() {
#if defined(INITLAB_X86)
  return __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
}  // namespace

GemmOps<float> gemm_ops_f32(Isa isa) {
#if defined(INITLAB_X86)
  if (isa == Isa::avx512 && isa_supported(Isa::avx512) && fma_ok()) return gemm_ops_avx512_f32();
  if ((isa == Isa::avx512 || isa == Isa::avx2) && isa_supported(Isa::avx2) && fma_ok()) return gemm_ops_avx2_f32();
#endif
  (void)isa;
  return gemm_ops_generic_f32();
}

GemmOps<double> gemm_ops_f64(Isa isa) {
#if defined(INITLAB_X86)
  if (isa == Isa::avx512 && isa_supported(Isa::avx512) && fma_ok()) return gemm_ops_avx512_f64();
  if ((isa == Isa::avx512 || isa == Isa::avx2) && isa_supported(Isa::avx2) && fma_ok()) return gemm_ops_avx2_f64();
#endif
  (void)isa;
  return gemm_ops_generic_f64();
}

}  // namespace detail

namespace {

using i64 = std::int64_t;

template <class T>
void gemm_t(i64 m, i64 n, i64 k, const T* a, i64 ars, i64 acs, const T* b, i64 brs, i64 bcs, T* c, i64 crs,
            i64 ccs, GemmMode mode, Exec ex) {
  require(m >= 0 && n >= 0 && k >= 0, "gemm: negative dimension");
  if (m == 0 || n == 0) return;
  // The micro-kernel writes columns of C fastest; for a row-major C compute C^T = B^T A^T
  // instead. Each element still sums the same products in the same order: same bits.
  if (crs != 1 && ccs == 1) {
    std::swap(m, n);
    std::swap(a, b);
    const i64 nars = bcs, nacs = brs, nbrs = acs, nbcs = ars;
    ars = nars, acs = nacs, brs = nbrs, bcs = nbcs;
    std::swap(crs, ccs);
  }
  const auto ops = detail::gemm_ops<T>(ex.isa);
  detail::AlignedBuffer<T> ap(ops.packed_a_size(m, k));
  ops.pack_a(m, k, a, ars, acs, ap.data());
  // Threads take disjoint column ranges of C (whole micro-panels): the split never changes
  // any element's arithmetic.
  const i64 panels = (n + ops.nr - 1) / ops.nr;
  const i64 tasks = std::max<i64>(1, std::min<i64>(ex.n_threads, panels));
  parallel_for(tasks, ex.n_threads, [&](i64 t) {
    const i64 p0 = panels * t / tasks, p1 = panels * (t + 1) / tasks;
    const i64 j0 = p0 * ops.nr, j1 = std::min(n, p1 * ops.nr);
    if (j1 <= j0) return;
    detail::AlignedBuffer<T> bb(ops.b_buffer_size(j1 - j0, k));
    ops.gemm_pa(m, j1 - j0, k, ap.data(), b + j0 * bcs, brs, bcs, c + j0 * ccs, crs, ccs, mode, bb.data());
  });
}

}  // namespace

void gemm(i64 m, i64 n, i64 k, const float* a, i64 ars, i64 acs, const float* b, i64 brs, i64 bcs, float* c,
          i64 crs, i64 ccs, GemmMode mode, Exec ex) {
  gemm_t<float>(m, n, k, a, ars, acs, b, brs, bcs, c, crs, ccs, mode, ex);
}
void gemm(i64 m, i64 n, i64 k, const double* a, i64 ars, i64 acs, const double* b, i64 brs, i64 bcs, double* c,
          i64 crs, i64 ccs, GemmMode mode, Exec ex) {
  gemm_t<double>(m, n, k, a, ars, acs, b, brs, bcs, c, crs, ccs, mode, ex);
}

}  // namespace initlab
