// Private: the per-instruction-set sampling kernels and their parameters.
// Each kernel fills `n` (<= kChunk) consecutive logical elements starting at global index g0
// into a contiguous buffer. The same source (kernels_impl.inl) is compiled once per
// instruction set; IEEE-754 rounding and -ffp-contract=off make all of them bit-identical.
#pragma once
#include <cstdint>
#include "initlab/distributions.hpp"

namespace initlab::detail {

// 1280 = 16 super-blocks of the float32 uniform (80 elements) and a whole number of every vector
// kernel's steps (at most 256 elements, AVX-512 16-bit uniform): fill() cuts chunks at global
// multiples of kChunk, so no kernel draws blocks past its chunk only to throw them away.
constexpr int kChunk = 1280;

struct KParams {
  // y = shift + scale * x, then clamped to [lo, hi] (in the kernel's precision; normal: +-inf).
  double shift = 0, scale = 1, lo = 0, hi = 0;
  // Truncated normal (standardized bounds alpha < beta).
  double alpha = 0, beta = 0;
  double pa = 0, qb = 0, m = 0;          // Phi(alpha), Phi(-beta), Phi(beta) - Phi(alpha)
  bool exact = false;  // the hard regimes: exact rejection (truncnorm_reject.hpp), not the inverse CDF
};

using GenF32 = void (*)(const KParams&, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, float* out);
using GenF64 = void (*)(const KParams&, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, double* out);

// float32 -> float16 / bfloat16, round to nearest even (identical bits on every path).
using CvtF16 = void (*)(const float* in, std::uint16_t* out, int n);

// float16 / bfloat16 outputs: the float32 sampler's values rounded to nearest-even, written
// directly (the AVX2/AVX-512 paths convert in registers, before the block-major store).
using Gen16 = void (*)(const KParams&, std::uint64_t seed, std::uint64_t stream, std::uint64_t g0, int n, std::uint16_t* out);

struct KernelTable {
  GenF32 uniform_f32, normal_f32, trunc_f32;
  GenF64 uniform_f64, normal_f64, trunc_f64;
  Gen16 uniform_f16, normal_f16, trunc_f16;
  Gen16 uniform_bf16, normal_bf16, trunc_bf16;
};

const KernelTable& kernels_for(Isa isa);

namespace k_scalar { extern const KernelTable table; }
namespace k_sse2 { extern const KernelTable table; }
namespace k_avx2 { extern const KernelTable table; }
namespace k_avx512 { extern const KernelTable table; }

}  // namespace initlab::detail
