#include "initlab/parallel.hpp"

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#if defined(INITLAB_HAVE_OPENMP)
#include <omp.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#include <cerrno>
#if !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define INITLAB_HAVE_ATFORK 1
#endif

namespace initlab {

namespace {

std::atomic<bool> g_pool_started{false};  // a multi-threaded region has run in this process
std::atomic<bool> g_serial{false};        // this process was forked after that: stay serial
thread_local Cancel* t_cancel = nullptr;

#if defined(INITLAB_HAVE_ATFORK)
void on_fork_child() {
  // The child has only the forking thread: the OpenMP pool's workers are gone, and the runtime
  // would wait for them forever. Async-signal-safe: two atomic stores.
  if (g_pool_started.load(std::memory_order_relaxed)) g_serial.store(true, std::memory_order_relaxed);
}
struct AtForkRegistration {
  AtForkRegistration() { pthread_atfork(nullptr, nullptr, &on_fork_child); }
} g_atfork_registration;
#endif

// Polls the installed Cancel (calling thread only); true once an interrupt was seen.
bool should_stop(Cancel* c, bool may_poll) {
  if (c == nullptr) return false;
  if (c->stop.load(std::memory_order_relaxed)) return true;
  if (may_poll && c->poll && c->poll()) {
    c->stop.store(true, std::memory_order_relaxed);
    return true;
  }
  return false;
}

}  // namespace

CancelScope::CancelScope(Cancel* c) : prev_(t_cancel) { t_cancel = c; }
CancelScope::~CancelScope() { t_cancel = prev_; }

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

#if defined(__linux__)
namespace {
// Whether this kernel knows MADV_POPULATE_WRITE: asked once, on a page of our own.
bool populate_supported() {
  static const bool ok = [] {
    const long pg = sysconf(_SC_PAGESIZE);
    const std::size_t sz = pg > 0 ? static_cast<std::size_t>(pg) : 4096;
    void* m = mmap(nullptr, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    const bool r = madvise(m, sz, MADV_POPULATE_WRITE) == 0;
    munmap(m, sz);
    return r;
  }();
  return ok;
}
}  // namespace
#endif

bool prefault_write(void* p, std::size_t bytes) {
#if defined(__linux__)
  static const std::size_t page = [] {
    const long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? static_cast<std::size_t>(pg) : std::size_t{4096};
  }();
  if (p == nullptr || bytes == 0 || !populate_supported()) return false;
  // madvise takes a page-aligned start; the pages the range touches are the ones the writes fault.
  const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t start = a & ~(static_cast<std::uintptr_t>(page) - 1);
  const std::size_t len = static_cast<std::size_t>(a - start) + bytes;
  const int saved = errno;  // a refusal is not the caller's error
  const bool ok = madvise(reinterpret_cast<void*>(start), len, MADV_POPULATE_WRITE) == 0;
  errno = saved;
  return ok;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

bool serial_after_fork() { return g_serial.load(std::memory_order_relaxed); }

void parallel_for(std::int64_t n_tasks, int n_threads, const std::function<void(std::int64_t)>& task) {
  if (n_tasks <= 0) return;
  Cancel* const cancel = t_cancel;
  if (should_stop(cancel, false)) throw Interrupted();
  // More threads than processors never helps and can exhaust a per-process thread limit.
  n_threads = std::min(n_threads, std::max(1, num_procs()));
  if (n_threads <= 1 || n_tasks == 1 || serial_after_fork()) {
    for (std::int64_t i = 0; i < n_tasks; ++i) {
      if (i > 0 && should_stop(cancel, true)) throw Interrupted();
      task(i);
    }
    return;
  }
#if defined(INITLAB_HAVE_OPENMP)
  std::exception_ptr err = nullptr;
  std::mutex err_mutex;
  const int nt = static_cast<int>(n_threads < n_tasks ? n_threads : n_tasks);
  g_pool_started.store(true, std::memory_order_relaxed);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (std::int64_t i = 0; i < n_tasks; ++i) {
    // Thread 0 is the caller: only it may poll (the poll may need the caller's interpreter).
    if (should_stop(cancel, omp_get_thread_num() == 0)) continue;
    try {
      task(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(err_mutex);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  if (should_stop(cancel, false)) throw Interrupted();
#else
  for (std::int64_t i = 0; i < n_tasks; ++i) {
    if (i > 0 && should_stop(cancel, true)) throw Interrupted();
    task(i);
  }
#endif
}

}  // namespace initlab
