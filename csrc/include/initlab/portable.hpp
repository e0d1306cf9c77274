// Compiler portability for the core's GCC-style code paths (GCC and Clang, incl. Apple clang).
// No Python, no pybind11. What differs between the two compilers, and how it is bridged:
//
// - CPU features: __builtin_cpu_supports exists in both, but Clang (up to at least 14, and the
//   Apple clang versions of its era) rejects some feature names GCC knows, "f16c" among them.
//   cpu_has_f16c() asks CPUID directly there (<cpuid.h>, which Clang ships on every x86 target).
// - Vector lane permutations: GCC's __builtin_shuffle(a, b, mask) takes the lane indices as a
//   vector; Clang has no __builtin_shuffle, only __builtin_shufflevector(a, b, i0, i1, ...) with
//   integer-constant indices (GCC accepts that one only from GCC 12, older than the manylinux
//   toolchains). Each permutation is therefore spelled for both where it is used
//   (kernels_simd.inl: INITLAB_SHUF_*), with the same indices: GCC compiles exactly the code it
//   always did, and Clang gets the same lanes.
// - "#pragma GCC unroll n" is understood by Clang as well (an alias of "#pragma unroll"), and the
//   GCC vector extensions (vector_size, element-wise operators, __builtin_convertvector, vector
//   comparisons and ?:) are common to both.
//
// Neither compiler may contract a*b+c into an FMA nor use fast-math: CMakeLists.txt passes
// -ffp-contract=off to both (Clang's default would be "on", i.e. contract within a statement).
#pragma once

#if defined(INITLAB_X86) && defined(__clang__)
#include <cpuid.h>
#endif

namespace initlab::detail {

#if defined(INITLAB_X86)
// Whether the CPU has the F16C conversions. Callers test it only together with AVX2, whose
// __builtin_cpu_supports check also requires the OS to save the YMM state F16C uses.
inline bool cpu_has_f16c() {
#if defined(__clang__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  return (ecx & bit_F16C) != 0;
#else
  return __builtin_cpu_supports("f16c");
#endif
}
#endif

}  // namespace initlab::detail
