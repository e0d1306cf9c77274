// Random fills of n-d destinations: the core's public sampling API.
//
// Element -> Philox mapping (frozen; see philox.hpp for the counter layout). With g the
// element's logical index (its C-order index in the global tensor):
//   float32 uniform: 24 bits per element, five elements per block, in lane-major super-blocks
//       of 16 blocks (80 elements): with s = floor(g / 80), r = g mod 80, element g takes the top
//       24 bits of word floor(r / 16) of block 16 s + (r mod 16) when r < 64, else the low bytes
//       of words 0, 1, 2 of block 16 s + r - 64 as (b0 << 16) | (b1 << 8) | b2.
//   float32 normal/trunc (and float16/bfloat16 trunc): one 32-bit word per element,
//       element g uses word (g mod 4) of block floor(g / 4).
//   float16/bfloat16 normal: one 32-bit word per Box-Muller pair, laid out like the 16-bit
//       uniform: element g = 128 s + 32 k + 2 j + h uses word k of block 16 s + j (pair
//       p = 64 s + 16 k + j; h = 0 takes r cos, h = 1 r sin); tail pairs also use word 0 of
//       block 2^62 + p (see normal16 below).
//   float16/bfloat16 uniform: 16 bits per element, eight elements per block, in lane-major
//       super-blocks of 16 blocks (128 elements): with s = floor(g / 128), r = g mod 128, element
//       g takes half (r mod 2) (the low 16 bits first) of word floor(r / 32) of block
//       16 s + (floor(r / 2) mod 16).
//   float64 outputs: one 64-bit word per element (low word first),
//       element g uses words 2(g mod 2), 2(g mod 2)+1 of block floor(g / 2).
//   per-element counters (trunc rejection): block 2^63 + 256 g + attempt (attempt < 256) of the
//       same (seed, stream); main streams never reach block 2^63 (g < 2^55 is required).
// uniform   : u = x * 2^-24 (float32, x the element's 24 bits), h * 2^-16 (float16/bfloat16, h the element's 16
//             bits) or (x >> 11) * 2^-53 (double); y = a + (b - a) u in float32 (float64 for
//             double), clamped to the largest value of the output dtype below b.
// normal16  : (float16/bfloat16) u1 = (m + 1/2) 2^-18 from the word's top 18 bits m, theta =
//             2 pi (a 2^10 + 2^9) 2^-24 from its low 14 bits a (the float32 sincos below); when
//             m < 512 (r > 3.53), u1 = (m + (2 (x >> 9) + 1) 2^-24) 2^-18 with x = word 0 of block
//             2^62 + p. Then r cos, r sin as for float32, y = mean + std z in float32, rounded.
// normal    : Box-Muller on the word pairs of a block: elements (2j, 2j+1) get r cos(theta),
//             r sin(theta) with r = sqrt(-2 log u1), theta = 2 pi u2, where u1 comes from word 2j
//             (float: (w >> 1) 2^-31 + 2^-32; double: ((x >> 11) + 0.5) 2^-53) and u2 from word
//             2j + 1 (float: its top 24 bits; double: its top 53 bits); y = mean + std z.
// trunc     : standardized bounds alpha < beta. float32/float16/bfloat16 where the float32 inverse
//             CDF's p-values resolve the interval (most intervals, e.g. [-2, 2] sigma): the
//             inverse CDF of one uniform per element, u = (2 (w >> 9) + 1) 2^-24, 1 - u formed
//             exactly from the complement bits. Everywhere else (far tails, narrow intervals) and
//             for every float64 interval: exact rejection (Robert 1995) from the element's own
//             counters; attempt a's block gives u1 (words 0, 1) and u2 (words 2, 3), each
//             ((53 bits) + 0.5) 2^-53. An interval with beta <= 0 is sampled as [-beta, -alpha]
//             and negated; then, with [a, b] the interval:
//               a >= 0, (b - a)(b + a) <= 2, or a < 0 < b with -a, b <= 3/2: z = a + (b - a) u1,
//                 accepted when u2 <= exp(t), t = (a - z)(a + z) / 2 (a >= 0) or -z^2 / 2;
//               a >= 0 otherwise: z = a - log(u1) / lam, lam = (a + sqrt(a^2 + 4)) / 2, accepted
//                 when z <= b and u2 <= exp(-(z - lam)^2 / 2);
//               a < 0 < b otherwise: Box-Muller r = sqrt(-2 log u1), theta = 2 pi (top 53 bits of
//                 words 2, 3) 2^-53; r cos(theta) if inside, else r sin(theta) if inside.
//             (256 rejections in a row, probability < 1e-40, keep the last proposal, clamped.)
//             y = mean + std x, in float32 from the double x for the float32 inverse, else in
//             double then rounded; clamped to the representable bounds.
// Low-precision values are sampled in float32 and rounded to nearest-even.
// History: issue 13 changed the float16/bfloat16 uniform mapping (it used the float32 one) and the
// float64 trunc / hard-regime mapping (it used a log-space inverse CDF of the element's word);
// then the float32 uniform mapping (it used the top 24 bits of one word per element, block-major)
// and the float16/bfloat16 uniform one (block-major: half g mod 2 of word (g / 2) mod 4 of block
// g / 8), both to lane-major super-blocks that vector paths store without transposing; and the
// float16/bfloat16 normal one (it rounded the float32 normal: one word per value).
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

// What fill() derives from a sampler for dtype `d`, after the same validation (same exceptions):
// the parameters a device kernel needs to reproduce the core's values exactly (the Python device
// routes, python/initlab/device/, read them instead of re-deriving them).
struct Prepared {
  double shift = 0, scale = 1, lo = 0, hi = 0;  // y = shift + scale x, clamped to [lo, hi]
  double alpha = 0, beta = 0;                   // trunc: standardized bounds
  double pa = 0, qb = 0, m = 0;                 // trunc inverse CDF: Phi(alpha), Phi(-beta), mass
  bool exact = false;                           // trunc: exact rejection instead of the inverse CDF
  double constant = 0;                          // every value is this one when has_constant
  bool has_constant = false;
  int mode = 0;                                 // exact rejection plan: 0 uniform, 1 exponential, 2 normal
  bool flip = false;
  double a = 0, b = 0, c = 0, lb = 0, lam = 0;
};
Prepared prepare_sampler(const Sampler& s, DType d);

// Contiguous helpers for other core modules: the values of global indices
// [offset, offset + n) of a normal fill with the given coordinates.
void fill_normal(float* out, std::int64_t n, RngCoord rc, std::uint64_t offset, float mean, float std, Exec ex);
void fill_normal(double* out, std::int64_t n, RngCoord rc, std::uint64_t offset, double mean, double std, Exec ex);

// Run-time CPU dispatch: which paths this build has and this CPU can run.
bool isa_supported(Isa isa);
Isa best_isa();

// Scalar reference value used by tests: log Phi(x), in double (it sets the truncated normal's
// parameters).
double log_ndtr(double x);

}  // namespace initlab
