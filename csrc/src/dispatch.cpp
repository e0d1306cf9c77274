// Run-time choice of the kernel instruction set. The caller (the bindings) passes the path
// explicitly in Exec; this file only says what the CPU can run.
#include <initializer_list>

#include "initlab/distributions.hpp"
#include "initlab/portable.hpp"
#include "kernels.hpp"

namespace initlab {

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return true;
#if defined(INITLAB_X86)
    case Isa::sse2:
      return true;  // baseline of x86-64
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("fma") &&
             detail::cpu_has_f16c();
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#endif
    default:
      return false;
  }
}

Isa best_isa() {
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::sse2}) {
    if (isa_supported(isa)) return isa;
  }
  return Isa::scalar;
}

namespace detail {
const KernelTable& kernels_for(Isa isa) {
  if (!isa_supported(isa)) isa = Isa::scalar;
  switch (isa) {
#if defined(INITLAB_X86)
    case Isa::sse2: return k_sse2::table;
    case Isa::avx2: return k_avx2::table;
    case Isa::avx512: return k_avx512::table;
#endif
    default: return k_scalar::table;
  }
}
}  // namespace detail

}  // namespace initlab
