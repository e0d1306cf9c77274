// Private: the ziggurat normal (Marsaglia & Tsang, "The ziggurat method for generating random
// variables", J. Stat. Softw. 5(8), 2000) as a pure function of the element's index.
//
// Fast path (~98.8% of elements): one Philox word (float32 family) or 64-bit word (float64) of
// the element's own block: layer i = bits 0-7, sign = bit 8, position j = the top 23 (float32)
// or 53 (float64) bits; x = j 2^-P X[i]; accepted when x < X[i+1]. The rest (the wedges, the
// base strip's tail) is finished by `slow_*` with words drawn from the element's own fallback
// counters: block 2^63 + 64 g + 32 purpose + attempt of the same (seed, stream) — disjoint from
// every block a main stream uses (those are < 2^63) for g < 2^57 — so each value stays a pure
// function of (seed, stream, g) whatever the thread split, layout or SIMD path. Scalar double
// arithmetic with detmath's log/exp only (no libm); every instruction set calls this same code.
#pragma once
#include <cstdint>

#include "initlab/detmath.hpp"
#include "initlab/philox.hpp"
#include "ziggurat_tables.hpp"

namespace initlab::detail::zig {

constexpr int kAttempts = 32;  // per element; P(needing more) < 1e-40, then the last candidate is kept

static inline philox4x32_ctr fallback_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t g, unsigned purpose,
                                     unsigned attempt) {
  const std::uint64_t b = (std::uint64_t{1} << 63) + (g << 6) + (static_cast<std::uint64_t>(purpose) << 5) + attempt;
  return philox_block(seed, stream, b);
}

// (k + 1/2) 2^-53 in (0, 1) from 53 bits of the word pair (lo, hi).
static inline double u53(std::uint32_t lo, std::uint32_t hi) {
  const std::uint64_t k = ((static_cast<std::uint64_t>(hi) << 32) | lo) >> 11;
  return (static_cast<double>(static_cast<std::int64_t>(k)) + 0.5) * 1.1102230246251565404e-16;
}

// (static: each per-ISA translation unit keeps its own copy; an inline function's single
// definition could otherwise be taken from a unit compiled for a wider instruction set.)

// Finishes an element whose fast test failed: layer i, position x (>= 0, already formed by the
// fast path in its precision), sign s. `P` = 23 (float32 family) or 53 (float64): how a restart's
// word forms its position. Returns the signed standard-normal value in double; the float32 path
// rounds it to float (a wedge or restart value is already a float there).
template <bool F64>
static inline double slow(std::uint64_t seed, std::uint64_t stream, std::uint64_t g, unsigned i, double x, bool s) {
  using detmath::exp_f64;
  using detmath::log_f64;
  for (unsigned a = 0; a < static_cast<unsigned>(kAttempts); ++a) {
    const philox4x32_ctr c = fallback_block(seed, stream, g, 0, a);
    if (i == 0) {
      // The base strip's tail beyond r (Marsaglia 1964): t = -log(u1) / r, accept when
      // -2 log(u2) > t^2; conditioned on the tail, so a rejection draws the tail again.
      const double t = -log_f64(u53(c[0], c[1])) / kR;
      const double e = -log_f64(u53(c[2], c[3]));
      if (e + e > t * t) {
        const double z = kR + t;
        return s ? -z : z;
      }
      continue;
    }
    // Wedge of layer i: y uniform in [F[i], F[i+1]), accept under the curve.
    const double y = kF[i] + u53(c[0], c[1]) * (kF[i + 1] - kF[i]);
    if (y < exp_f64(-0.5 * x * x)) return s ? -x : x;
    // Rejected: a fresh candidate from word 2 (float32 family) or words 2-3 (float64).
    if (F64) {
      const std::uint64_t w = (static_cast<std::uint64_t>(c[3]) << 32) | c[2];
      i = static_cast<unsigned>(w & 0xffu);
      s = ((w >> 8) & 1u) != 0;
      x = static_cast<double>(static_cast<std::int64_t>(w >> 11)) * 1.1102230246251565404e-16 * kX64[i];
      if (x < kX64[i + 1]) return s ? -x : x;
    } else {
      const std::uint32_t w = c[2];
      i = w & 0xffu;
      s = ((w >> 8) & 1u) != 0;
      const float xf = static_cast<float>(static_cast<std::int32_t>(w >> 9)) * 1.1920928955078125e-07f * kX32[i];
      x = static_cast<double>(xf);
      if (xf < kX32[i + 1]) return s ? -x : x;
    }
  }
  return s ? -x : x;
}

// The whole float32-family sampler for element g with main word w (scalar reference).
static inline float normal_f32(std::uint64_t seed, std::uint64_t stream, std::uint64_t g, std::uint32_t w) {
  const unsigned i = w & 0xffu;
  const float x = static_cast<float>(static_cast<std::int32_t>(w >> 9)) * 1.1920928955078125e-07f * kX32[i];
  const bool s = ((w >> 8) & 1u) != 0;
  if (x < kX32[i + 1]) return s ? -x : x;
  return static_cast<float>(slow<false>(seed, stream, g, i, static_cast<double>(x), s));
}

static inline double normal_f64(std::uint64_t seed, std::uint64_t stream, std::uint64_t g, std::uint64_t w) {
  const unsigned i = static_cast<unsigned>(w & 0xffu);
  const double x = static_cast<double>(static_cast<std::int64_t>(w >> 11)) * 1.1102230246251565404e-16 * kX64[i];
  const bool s = ((w >> 8) & 1u) != 0;
  if (x < kX64[i + 1]) return s ? -x : x;
  return slow<true>(seed, stream, g, i, x, s);
}

}  // namespace initlab::detail::zig
