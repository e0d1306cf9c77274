// float32 -> float16 / bfloat16 rounding (round to nearest, ties to even) and back, written
// with integer operations so every instruction set gives the same bits.
#pragma once
#include <cstdint>
#include "initlab/detmath.hpp"

namespace initlab::lowp {

static inline std::uint16_t bf16_from_f32(float f) {
  const std::uint32_t b = detmath::bits32(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x40u);  // quiet NaN
  const std::uint32_t r = b + 0x7fffu + ((b >> 16) & 1u);
  return static_cast<std::uint16_t>(r >> 16);
}
static inline float bf16_to_f32(std::uint16_t h) { return detmath::from_bits32(static_cast<std::uint32_t>(h) << 16); }

static inline std::uint16_t f16_from_f32(float f) {
  const std::uint32_t b = detmath::bits32(f);
  const std::uint32_t sign = (b >> 16) & 0x8000u;
  const std::uint32_t a = b & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u); // rounds to inf
  if (a < 0x38800000u) {
    // Result is subnormal or zero: value = a_f * 2^24 units of 2^-24; round to integer RNE.
    if (a < 0x33000000u) return static_cast<std::uint16_t>(sign);  // < 2^-25: rounds to 0
    const std::uint32_t e = a >> 23;                 // biased f32 exponent, 102..112
    const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126u - e;            // so that the result is in units of 2^-24
    const std::uint32_t q = m >> shift;
    const std::uint32_t rem = m & ((1u << shift) - 1u);
    const std::uint32_t half = 1u << (shift - 1u);
    const std::uint32_t r = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | r);
  }
  // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits RNE.
  const std::uint32_t r = a - 0x38000000u;  // (127-15) << 23
  const std::uint32_t rounded = (r + 0x0fffu + ((r >> 13) & 1u)) >> 13;
  return static_cast<std::uint16_t>(sign | rounded);
}

static inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t e = (h >> 10) & 0x1fu;
  const std::uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) return detmath::from_bits32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    // subnormal: m * 2^-24, exact in float
    const float v = static_cast<float>(m) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  return detmath::from_bits32(sign | ((e + 112u) << 23) | (m << 13));
}

}  // namespace initlab::lowp
