// Random fills of n-d destinations: the core's public sampling API.
//
// Element -> Philox mapping (frozen; see philox.hpp for the counter layout). With g the
// element's logical index (its C-order index in the global tensor):
//   float32 / float16 / bfloat16 outputs: one 32-bit word per element,
//       element g uses word (g mod 4) of block floor(g / 4).
//   float64 outputs: one 64-bit word per element (low word first),
//       element g uses words 2(g mod 2), 2(g mod 2)+1 of block floor(g / 2).
// uniform   : u = (w >> 8) * 2^-24 (float) or (x >> 11) * 2^-53 (double); y = a + (b - a) u,
//             clamped to the largest representable value below b.
// normal    : Box-Muller on the word pairs of a block: elements (2j, 2j+1) get r cos(theta),
//             r sin(theta) with r = sqrt(-2 log u1), theta = 2 pi u2, where u1 comes from word 2j
//             (float: (w >> 1) 2^-31 + 2^-32; double: ((x >> 11) + 0.5) 2^-53) and u2 from word
//             2j + 1 (float: its top 24 bits; double: its top 53 bits); y = mean + std z.
// trunc     : inverse CDF of one uniform per element, 1 - u formed exactly from the complement
//             bits. Low-precision outputs use the float32 inverse, u = (2 (w >> 9) + 1) 2^-24, where
//             its p-values resolve the interval, else the double-precision log-space inverse with
//             u = (w + 0.5) 2^-32; float64 outputs always use the latter with u = ((x >> 11) + 0.5) 2^-53.
// Low-precision values are sampled in float32 and rounded to nearest-even.
#pragma once
#include <cstdint>

namespace initlab {

enum class DType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3 };
enum class Isa : int { scalar = 0, sse2 = 1, avx2 = 2, avx512 = 3 };

struct Exec {
  int n_threads = 1;
  Isa isa = Isa::scalar;
};

struct RngCoord {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
};

// An n-d block of a C-ordered global tensor, stored with arbitrary (signed) strides.
struct Destination {
  void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  const std::int64_t* shape = nullptr;     // block shape
  const std::int64_t* strides = nullptr;   // destination strides, in elements
  const std::int64_t* gstrides = nullptr;  // C-order strides of the global tensor, in elements
  std::uint64_t gbase = 0;                 // global index of the block's first element
};

enum class Dist : int { uniform = 0, normal = 1, trunc_normal = 2, constant = 3 };

struct Sampler {
  Dist dist = Dist::uniform;
  double p0 = 0.0;  // uniform: low a;  normal/trunc: mean; constant: value
  double p1 = 1.0;  // uniform: high b; normal/trunc: std
  double lo = 0.0;  // trunc: lower bound (absolute), may be -inf
  double hi = 0.0;  // trunc: upper bound (absolute), may be +inf
};

// Validates everything, then fills. Throws std::invalid_argument (before writing anything)
// for bad parameters, an empty truncation interval or one with no representable value.
void fill(const Destination& dst, const Sampler& s, RngCoord rc, Exec ex);

// Contiguous helpers for other core modules: the values of global indices
// [offset, offset + n) of a normal fill with the given coordinates.
void fill_normal(float* out, std::int64_t n, RngCoord rc, std::uint64_t offset, float mean, float std, Exec ex);
void fill_normal(double* out, std::int64_t n, RngCoord rc, std::uint64_t offset, double mean, double std, Exec ex);

// Run-time CPU dispatch: which paths this build has and this CPU can run.
bool isa_supported(Isa isa);
Isa best_isa();

// Scalar reference values used by tests: log Phi(x) and Phi^{-1} from log p, in double.
double log_ndtr(double x);
double ndtri_from_log(double log_p);

}  // namespace initlab
