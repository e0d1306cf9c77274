// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011). Counter-based: the output is a pure function of (counter, key), so any element
// of a fill can be computed independently of every other one.
//
// initlab's counter layout (frozen; golden-value tests guard it):
//   key     = (seed_lo, seed_hi)            the 64-bit seed
//   counter = (block_lo, block_hi, stream_lo, stream_hi)
// A sampler maps its logical element index to a block and to words inside that block; see
// distributions.hpp for each sampler's mapping.
#pragma once
#include <array>
#include <cstdint>

namespace initlab {

constexpr std::uint32_t PHILOX_M4x32_0 = 0xD2511F53u;
constexpr std::uint32_t PHILOX_M4x32_1 = 0xCD9E8D57u;
constexpr std::uint32_t PHILOX_W32_0 = 0x9E3779B9u;
constexpr std::uint32_t PHILOX_W32_1 = 0xBB67AE85u;

using philox4x32_ctr = std::array<std::uint32_t, 4>;
using philox4x32_key = std::array<std::uint32_t, 2>;

static inline void philox_round(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2, std::uint32_t& c3,
                         std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(PHILOX_M4x32_0) * c0;
  const std::uint64_t p1 = static_cast<std::uint64_t>(PHILOX_M4x32_1) * c2;
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  c0 = hi1 ^ c1 ^ k0;
  c1 = lo1;
  c2 = hi0 ^ c3 ^ k1;
  c3 = lo0;
}

// The plain reference: ten rounds with the key bumped between rounds.
static inline philox4x32_ctr philox4x32_10(philox4x32_ctr ctr, philox4x32_key key) {
  std::uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  std::uint32_t k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; ++r) {
    if (r > 0) { k0 += PHILOX_W32_0; k1 += PHILOX_W32_1; }
    philox_round(c0, c1, c2, c3, k0, k1);
  }
  return {c0, c1, c2, c3};
}

// Convenience: the four words of block `block` of stream `stream` under a 64-bit seed.
static inline philox4x32_ctr philox_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  return philox4x32_10({static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                        static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)},
                       {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
}

}  // namespace initlab
