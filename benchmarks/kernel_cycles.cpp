// Per-value cost of each sampler's kernel: CPU time (CLOCK_THREAD_CPUTIME_ID, so time the VM
// spends on other tenants does not count) of initlab::fill on an L2-resident destination
// (2^18 elements), one thread, best of five (each ~20 ms of calls); cycles at the
// guest's nominal 2.445 GHz (this VM exposes no cycle counters to perf stat).
// Build against the core library of a build tree and run with the ISA code (0 scalar, 1 SSE2,
// 2 AVX2, 3 AVX-512) and an optional case filter:
//   g++ -O2 -std=c++17 -fopenmp -Icsrc/include benchmarks/kernel_cycles.cpp build/libinitlab_core.a -o /tmp/kc
//   /tmp/kc 2 [normal]
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cstring>
#include <algorithm>
#include <vector>
#include "initlab/distributions.hpp"
using namespace initlab;
static double cpu_ns() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IONBF, 0);
  Isa isa = argc > 1 ? (Isa)atoi(argv[1]) : Isa::avx2;
  const char* only = argc > 2 ? argv[2] : "";
  const std::int64_t n = 1 << 18;
  std::vector<double> buf(n);
  struct Case { const char* name; Sampler s; int reps; };
  Case cases[] = {{"uniform", {Dist::uniform, -1, 1, 0, 0}, 40},
                  {"normal", {Dist::normal, 0, 0.02, 0, 0}, 40},
                  {"trunc[-2,2]", {Dist::trunc_normal, 0, 1, -2, 2}, 20},
                  {"trunc[-1,1]", {Dist::trunc_normal, 0, 1, -1, 1}, 20},
                  {"trunc[5,6]", {Dist::trunc_normal, 0, 1, 5, 6}, 1},
                  {"trunc[.3,.302]", {Dist::trunc_normal, 0, 1, 0.3, 0.302}, 1}};
  DType dts[] = {DType::f32, DType::f16, DType::bf16, DType::f64};
  const char* dn[] = {"f32", "f64", "f16", "bf16"};
  for (auto& c : cases) {
    if (*only && !strstr(c.name, only)) continue;
    printf("%-16s", c.name);
    for (DType d : dts) {
      std::int64_t shape[1] = {n}, st[1] = {1}, gs[1] = {1};
      Destination dst{buf.data(), d, 1, shape, st, gs, 0};
      // enough calls for ~20 ms per measurement (one call of the slow routes is already longer)
      double t1 = cpu_ns();
      fill(dst, c.s, RngCoord{1, 2}, Exec{1, isa});
      t1 = cpu_ns() - t1;
      const int reps = t1 > 2e7 ? 1 : std::min(40, static_cast<int>(2e7 / (t1 + 1.0)) + 1);
      double best = 1e30;
      for (int r = 0; r < 5; ++r) {
        double t0 = cpu_ns();
        for (int k = 0; k < reps; ++k) fill(dst, c.s, RngCoord{1, 2}, Exec{1, isa});
        double ns = (cpu_ns() - t0) / (reps * (double)n);
        if (ns < best) best = ns;
      }
      printf("  %s %8.3f ns %7.2f cyc", dn[(int)d], best, best * 2.445);
    }
    printf("\n");
  }
}
