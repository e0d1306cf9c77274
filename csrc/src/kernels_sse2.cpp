// Kernels compiled for the sse2 instruction set (flags set per file in CMakeLists.txt).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <immintrin.h>

#include "initlab/detmath.hpp"
#include "initlab/lowp.hpp"
#include "initlab/philox.hpp"
#include "kernels.hpp"
#include "truncnorm_reject.hpp"

#define INITLAB_VB 16

namespace initlab::detail::k_sse2 {
#include "kernels_impl.inl"
#include "kernels_simd.inl"
const KernelTable table = {uniform_f32_k,            normal_k<SinkF32>,       trunc_k<SinkF32>,
                           uniform_f64,              normal_f64,              trunc_f64_k,
                           uniform16_k<false>, normal16_k<false>,       trunc_k<Sink16<false>>,
                           uniform16_k<true>,  normal16_k<true>,        trunc_k<Sink16<true>>};
}  // namespace initlab::detail::k_sse2
