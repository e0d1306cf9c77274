// Thread control for the core. The core never reads global thread settings: every parallel
// entry point receives an explicit thread count. Exceptions thrown by a task are captured and
// rethrown after the parallel region (an exception escaping OpenMP would abort Python).
#pragma once
#include <cstdint>
#include <functional>

namespace initlab {

bool openmp_enabled();
int max_threads();  // omp_get_max_threads() in the calling thread, 1 without OpenMP
int num_procs();

// Runs task(i) for i in [0, n_tasks) on at most n_threads threads (static schedule).
// Serial when n_threads <= 1 or n_tasks <= 1. The first exception thrown is rethrown.
void parallel_for(std::int64_t n_tasks, int n_threads, const std::function<void(std::int64_t)>& task);

}  // namespace initlab
