// Kernels compiled for the sse2 instruction set (flags set per file in CMakeLists.txt).
#include <cmath>
#include <cstdint>
#include "initlab/detmath.hpp"
#include "initlab/philox.hpp"
#include "kernels.hpp"
#include "truncnorm_exact.hpp"

namespace initlab::detail::k_sse2 {
#include "kernels_impl.inl"
}  // namespace initlab::detail::k_sse2
