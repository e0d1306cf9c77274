// Kernels compiled for the scalar instruction set (flags set per file in CMakeLists.txt).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "initlab/detmath.hpp"
#include "initlab/lowp.hpp"
#include "initlab/philox.hpp"
#include "kernels.hpp"
#include "truncnorm_reject.hpp"

#define INITLAB_VB 0

namespace initlab::detail::k_scalar {
#include "kernels_impl.inl"
using namespace scalar_ref;
const KernelTable table = {uniform_f32, normal_f32, trunc_f32, uniform_f64<philox_words>, normal_f64<philox_words>,
                           trunc_f64,
                           uniform16<false>, normal16<false>, gen16<trunc_f32, to_f16>,
                           uniform16<true>, normal16<true>, gen16<trunc_f32, to_bf16>};
}  // namespace initlab::detail::k_scalar
