// Kernels compiled for the avx512 instruction set (flags set per file in CMakeLists.txt).
#include <cmath>
#include <cstdint>
#include "initlab/detmath.hpp"
#include "initlab/philox.hpp"
#include "kernels.hpp"
#include "truncnorm_exact.hpp"

namespace initlab::detail::k_avx512 {
#include "kernels_impl.inl"
}  // namespace initlab::detail::k_avx512
