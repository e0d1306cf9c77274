// One-pass summary statistics of an n-d array, accumulated in float64.
//
// Determinism: the reduced elements of each slice are numbered in logical (C) order, whatever
// the memory layout (C, Fortran, strided, negative strides), cut into fixed blocks of kStatsBlock elements,
// and the blocks' partial results are merged in block order with Chan et al.'s pairwise update.
// Neither the block boundaries nor the merge order depend on the thread count, so every figure
// is bit-identical for any number of threads (and for every SIMD path: each lane runs the same
// IEEE operations, -ffp-contract=off).
//
// Non-finite rule: NaN and +-inf are counted (count - finite) and excluded from the moments,
// min and max; zeros are counted among all elements. A slice with no finite element has
// mean = m2 = min = max = NaN.
#pragma once
#include <cstdint>

#include "initlab/distributions.hpp"  // DType, Exec

namespace initlab {

constexpr std::int64_t kStatsBlock = 32768;    // elements per block (fixed: part of determinism)
constexpr std::int64_t kStatsGroup = 4;        // blocks per parallel task

// A read-only n-d array with arbitrary signed strides (in elements). bfloat16/float16 are
// passed as their 16-bit patterns.
struct StatsInput {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  const std::int64_t* shape = nullptr;
  const std::int64_t* strides = nullptr;
};

// Per-slice results, arrays of n_slices entries in C order over the kept axes.
struct StatsOutput {
  std::int64_t* finite = nullptr;  // number of finite elements
  std::int64_t* zeros = nullptr;   // number of elements equal to 0 (+0 or -0)
  double* mean = nullptr;          // mean of the finite elements
  double* m2 = nullptr;            // sum of squared deviations of the finite elements
  double* min = nullptr;
  double* max = nullptr;
};

// Partial result of a set of elements; `merge` is Chan et al. (1979)'s pairwise update.
struct Moments {
  std::int64_t n = 0;  // finite elements
  std::int64_t zeros = 0;
  std::int64_t nonfinite = 0;
  double mean = 0.0;
  double m2 = 0.0;
  double min = 0.0;
  double max = 0.0;
};
Moments merge(const Moments& a, const Moments& b);

// Reduces `in` over the axes k with reduce[k] != 0 (the others are kept, NumPy's `axis`
// meaning). Validates everything before reading; throws std::invalid_argument on bad input.
void compute_stats(const StatsInput& in, const unsigned char* reduce, const StatsOutput& out, Exec ex);

// Reads n_bytes of memory on n_threads threads as fast as it can (a read-bandwidth probe for
// benchmarks); returns a checksum so the reads cannot be optimized away.
std::uint64_t read_probe(const void* data, std::int64_t n_bytes, int n_threads);

}  // namespace initlab
