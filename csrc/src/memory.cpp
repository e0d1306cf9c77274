// Memory hints (see memory.hpp).
#include "initlab/memory.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace initlab {

bool advise_huge_pages(void* data, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (data == nullptr || bytes < kHugePageAdviceBytes) return false;
  const char* env = std::getenv("INITLAB_HUGEPAGES");
  if (env != nullptr && std::strcmp(env, "0") == 0) return false;
  const long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return false;
  const auto p = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t mask = static_cast<std::uintptr_t>(page) - 1;
  const std::uintptr_t start = (p + mask) & ~mask;
  const std::uintptr_t end = (p + bytes) & ~mask;
  if (end <= start) return false;
  return madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0;
#else
  (void)data;
  (void)bytes;
  return false;
#endif
}

bool is_dense(int ndim, const std::int64_t* shape, const std::int64_t* strides) noexcept {
  std::int64_t count = 1, lo = 0, hi = 0;
  for (int k = 0; k < ndim; ++k) {
    if (shape[k] == 0) return false;
    count *= shape[k];
    const std::int64_t reach = (shape[k] - 1) * strides[k];
    if (reach >= 0) hi += reach; else lo += reach;
  }
  return hi - lo + 1 == count;
}

}  // namespace initlab
