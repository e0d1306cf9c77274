// Memory hints for large destinations that are about to be written whole.
#pragma once

#include <cstddef>
#include <cstdint>

namespace initlab {

// Bytes from which a dense destination is worth backing by transparent huge pages.
constexpr std::size_t kHugePageAdviceBytes = std::size_t{32} << 20;

// Asks the kernel to back [data, data + bytes) with transparent huge pages (Linux
// madvise(MADV_HUGEPAGE) on the page-aligned interior) when the range is at least
// kHugePageAdviceBytes and the environment variable INITLAB_HUGEPAGES is not "0".
// Why: a first write into fresh memory (torch.empty, a model allocated by to_empty) costs a
// page fault per 4 KiB; with huge pages it is one per 2 MiB, and such fills run several times
// faster. NumPy gives its own large allocations the same advice. Values are never affected;
// a refusal by the kernel is ignored. Returns whether the advice was given.
bool advise_huge_pages(void* data, std::size_t bytes) noexcept;

// Extent in elements of a strided block (max offset - min offset + 1) equals its element count:
// the block covers one dense range of memory (C, Fortran or any permuted contiguous layout).
bool is_dense(int ndim, const std::int64_t* shape, const std::int64_t* strides) noexcept;

}  // namespace initlab
