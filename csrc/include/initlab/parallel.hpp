// Thread control for the core. The core never reads global thread settings: every parallel
// entry point receives an explicit thread count. Exceptions thrown by a task are captured and
// rethrown after the parallel region (an exception escaping OpenMP would abort Python).
//
// Fork safety: the OpenMP runtime's thread pool does not survive fork(). A child process forked
// after the core has run a multi-threaded region runs every later parallel_for serially (same
// results: nothing depends on the thread count), instead of hanging in the dead pool.
//
// Interrupts: a caller may install a CancelScope on its thread; parallel_for then polls it
// between tasks (on the calling thread only), skips the remaining tasks once it reports an
// interrupt, and throws Interrupted after the region. What was already written stays written.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>

namespace initlab {

bool openmp_enabled();
int max_threads();  // omp_get_max_threads() in the calling thread, 1 without OpenMP
int num_procs();

// True in a process forked after a multi-threaded region ran (parallel_for is then serial).
bool serial_after_fork();

// A cooperative cancellation request. `poll` is called only on the thread that installed it.
struct Cancel {
  std::function<bool()> poll;
  std::atomic<bool> stop{false};
};

// Faults in the pages of [p, p + bytes) for writing, ahead of writes that cover them: one
// madvise(MADV_POPULATE_WRITE) system call (Linux >= 5.14) instead of one page fault per 4 KiB
// page taken by the writing loop. No byte changes (the pages are only made present and
// writable, as the first write would make them). Returns false, doing nothing, where it is not
// supported (other systems, older kernels) or the mapping refuses it: the caller's writes then
// fault as usual. Only call it for memory the caller is about to write anyway.
bool prefault_write(void* p, std::size_t bytes);

// Installs `c` for parallel_for calls made by the current thread, for the scope's lifetime.
class CancelScope {
 public:
  explicit CancelScope(Cancel* c);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  Cancel* prev_;
};

// Thrown by parallel_for when the installed Cancel reported an interrupt.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

// Runs task(i) for i in [0, n_tasks) on at most n_threads threads (static schedule), never more
// threads than processors. Serial when n_threads <= 1 or n_tasks <= 1 or after a fork. The
// first exception thrown is rethrown.
void parallel_for(std::int64_t n_tasks, int n_threads, const std::function<void(std::int64_t)>& task);

}  // namespace initlab
