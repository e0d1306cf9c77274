// Build: g++ -O2 -std=c++17 -fopenmp -Icsrc/include benchmarks/fill_wallclock.cpp build/libinitlab_core.a -o /tmp/fw
// Run:   /tmp/fw SIDE THREADS ROUNDS [nof64]   (AVX2 path; see the comment below)
// Wall-clock fills of a prefaulted n x n buffer with T threads, interleaved with std::fill on the
// same buffer (write bandwidth) in the same process; medians of R rounds.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "initlab/distributions.hpp"
using namespace initlab;
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IONBF, 0);
  const std::int64_t side = atoll(argv[1]);
  const int threads = atoi(argv[2]);
  const int R = atoi(argv[3]);
  const std::int64_t n = side * side;
  std::vector<double> buf(n);  // room for float64
  struct Case { const char* name; Sampler s; };
  Case cases[] = {{"uniform", {Dist::uniform, -1, 1, 0, 0}}, {"normal", {Dist::normal, 0, 0.02, 0, 0}},
                  {"trunc[-2,2]", {Dist::trunc_normal, 0, 1, -2, 2}}};
  DType dts[] = {DType::f32, DType::f16, DType::bf16, DType::f64};
  const char* dn[] = {"f32", "f64", "f16", "bf16"};
  const bool nof64 = argc > 4 && !strcmp(argv[4], "nof64");
  for (DType d : dts) {
    if (nof64 && d == DType::f64) continue;
    const std::size_t isz = d == DType::f64 ? 8 : (d == DType::f32 ? 4 : 2);
    std::int64_t shape[1] = {n}, st[1] = {1}, gs[1] = {1};
    Destination dst{buf.data(), d, 1, shape, st, gs, 0};
    std::vector<std::vector<double>> t(4);
    for (int r = 0; r < R; ++r) {
      double t0 = now();
      if (isz == 8) std::fill(buf.data(), buf.data() + n, 0.5);
      else if (isz == 4) std::fill((float*)buf.data(), (float*)buf.data() + n, 0.5f);
      else std::fill((std::uint16_t*)buf.data(), (std::uint16_t*)buf.data() + n, (std::uint16_t)0x3c00);
      t[0].push_back(now() - t0);
      for (int c = 0; c < 3; ++c) {
        t0 = now();
        fill(dst, cases[c].s, RngCoord{1, 2}, Exec{threads, Isa::avx2});
        t[c + 1].push_back(now() - t0);
      }
    }
    double med[4];
    for (int c = 0; c < 4; ++c) { std::sort(t[c].begin(), t[c].end()); med[c] = t[c][R / 2]; }
    printf("%-4s %lld^2 t=%d  fill %.2f Gv/s |", dn[(int)d], (long long)side, threads, n / med[0] / 1e9);
    for (int c = 0; c < 3; ++c) printf(" %s %.3f Gv/s (%.2f of fill) |", cases[c].name, n / med[c + 1] / 1e9, med[0] / med[c + 1]);
    printf("\n");
  }
}
