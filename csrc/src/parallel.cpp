#include "initlab/parallel.hpp"

#include <exception>
#include <mutex>
#include <thread>
#if defined(INITLAB_HAVE_OPENMP)
#include <omp.h>
#endif

namespace initlab {

bool openmp_enabled() {
#if defined(INITLAB_HAVE_OPENMP)
  return true;
#else
  return false;
#endif
}

int max_threads() {
#if defined(INITLAB_HAVE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int num_procs() {
#if defined(INITLAB_HAVE_OPENMP)
  return omp_get_num_procs();
#else
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
#endif
}

void parallel_for(std::int64_t n_tasks, int n_threads, const std::function<void(std::int64_t)>& task) {
  if (n_tasks <= 0) return;
  if (n_threads <= 1 || n_tasks == 1) {
    for (std::int64_t i = 0; i < n_tasks; ++i) task(i);
    return;
  }
#if defined(INITLAB_HAVE_OPENMP)
  std::exception_ptr err = nullptr;
  std::mutex err_mutex;
  const int nt = static_cast<int>(n_threads < n_tasks ? n_threads : n_tasks);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::int64_t i = 0; i < n_tasks; ++i) {
    try {
      task(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(err_mutex);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
#else
  for (std::int64_t i = 0; i < n_tasks; ++i) task(i);
#endif
}

}  // namespace initlab
