// GEMM packing, micro-kernel and loop nest, shared by the per-ISA translation units
// (gemm_generic.cpp, gemm_avx2.cpp, gemm_avx512.cpp). The including file defines the namespace
// name INITLAB_GEMM_NS and a traits template VT<T> with: vector type V, lanes L, vectors per
// micro-tile column MV, micro-tile columns NR, and zero/loadu/bcast/fma/add/sub/storeu.
// Loop order follows Goto/BLIS: jc (NC) -> pc (KC) -> ic (MC) -> jr (NR) -> ir (MR) -> p.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "initlab/gemm.hpp"

namespace initlab {
namespace detail {
namespace INITLAB_GEMM_NS {

using i64 = std::int64_t;

template <class T>
constexpr int MR = VT<T>::L * VT<T>::MV;
template <class T>
constexpr int NR = VT<T>::NR;
// A block of MC x KC stays in L2, a KC x NR micro-panel of B in L1.
template <class T>
constexpr i64 MC = (sizeof(T) == 4 ? 256 : 128);
template <class T>
constexpr i64 NC = 2048;

inline i64 round_up(i64 x, i64 m) { return (x + m - 1) / m * m; }

template <class T>
i64 packed_a_size(i64 m, i64 k) {
  return round_up(std::max<i64>(m, 1), MR<T>) * std::max<i64>(k, 1);
}

template <class T>
i64 b_buffer_size(i64 n, i64 k) {
  return round_up(std::max<i64>(std::min(n, NC<T>), 1), NR<T>) * std::min<i64>(std::max<i64>(k, 1), kGemmKC<T>);
}

template <class T>
void pack_a(i64 m, i64 k, const T* a, i64 rs, i64 cs, T* ap) {
  constexpr int mr_ = MR<T>;
  const i64 mpad = round_up(m, mr_);
  for (i64 pc = 0; pc < k; pc += kGemmKC<T>) {
    const i64 kc = std::min(kGemmKC<T>, k - pc);
    T* blk = ap + pc * mpad;
    for (i64 ir = 0; ir < m; ir += mr_) {
      T* pan = blk + ir * kc;
      const i64 mr = std::min<i64>(mr_, m - ir);
      if (rs == 1) {
        for (i64 p = 0; p < kc; ++p) {
          const T* src = a + ir + (pc + p) * cs;
          T* dst = pan + p * mr_;
          for (i64 i = 0; i < mr; ++i) dst[i] = src[i];
          for (i64 i = mr; i < mr_; ++i) dst[i] = T(0);
        }
      } else {
        for (i64 i = 0; i < mr; ++i) {
          const T* src = a + (ir + i) * rs + pc * cs;
          for (i64 p = 0; p < kc; ++p) pan[p * mr_ + i] = src[p * cs];
        }
        for (i64 i = mr; i < mr_; ++i)
          for (i64 p = 0; p < kc; ++p) pan[p * mr_ + i] = T(0);
      }
    }
  }
}

template <class T>
void pack_b(i64 kc, i64 nc, const T* b, i64 rs, i64 cs, T* bp) {
  constexpr int nr_ = NR<T>;
  for (i64 jr = 0; jr < nc; jr += nr_) {
    T* pan = bp + jr * kc;
    const i64 nr = std::min<i64>(nr_, nc - jr);
    if (cs == 1) {
      for (i64 p = 0; p < kc; ++p) {
        const T* src = b + p * rs + jr;
        T* dst = pan + p * nr_;
        for (i64 j = 0; j < nr; ++j) dst[j] = src[j];
        for (i64 j = nr; j < nr_; ++j) dst[j] = T(0);
      }
    } else {
      for (i64 j = 0; j < nr; ++j) {
        const T* src = b + (jr + j) * cs;
        for (i64 p = 0; p < kc; ++p) pan[p * nr_ + j] = src[p * rs];
      }
      for (i64 j = nr; j < nr_; ++j)
        for (i64 p = 0; p < kc; ++p) pan[p * nr_ + j] = T(0);
    }
  }
}

// One MR x NR tile: acc = sum_p a_p b_p^T (sequential in p), then C (op)= acc.
template <class T>
inline void micro(i64 kc, const T* __restrict a, const T* __restrict b, T* c, i64 rs, i64 cs, i64 mr, i64 nr,
                  GemmMode mode) {
  using X = VT<T>;
  using V = typename X::V;
  constexpr int L = X::L, MV = X::MV, nr_ = X::NR, mr_ = L * MV;
  V acc[MV][nr_];
#pragma GCC unroll 16
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 16
    for (int j = 0; j < nr_; ++j) acc[v][j] = X::zero();
  for (i64 p = 0; p < kc; ++p) {
    V av[MV];
#pragma GCC unroll 16
    for (int v = 0; v < MV; ++v) av[v] = X::loadu(a + p * mr_ + v * L);
#pragma GCC unroll 16
    for (int j = 0; j < nr_; ++j) {
      const V bj = X::bcast(b + p * nr_ + j);
#pragma GCC unroll 16
      for (int v = 0; v < MV; ++v) acc[v][j] = X::fma(av[v], bj, acc[v][j]);
    }
  }
  // Spill the accumulators once, with constant indices only (a variable index would make the
  // compiler keep them in memory inside the k loop).
  alignas(64) T tile[mr_ * nr_];
#pragma GCC unroll 16
  for (int j = 0; j < nr_; ++j)
#pragma GCC unroll 16
    for (int v = 0; v < MV; ++v) X::storeu(tile + j * mr_ + v * L, acc[v][j]);
  if (rs == 1 && mr == mr_ && nr == nr_) {
    for (int j = 0; j < nr_; ++j) {
      for (int v = 0; v < MV; ++v) {
        T* cp = c + j * cs + v * L;
        const V t = X::loadu(tile + j * mr_ + v * L);
        if (mode == GemmMode::set) X::storeu(cp, t);
        else if (mode == GemmMode::add) X::storeu(cp, X::add(X::loadu(cp), t));
        else X::storeu(cp, X::sub(X::loadu(cp), t));
      }
    }
    return;
  }
  for (i64 j = 0; j < nr; ++j) {
    for (i64 i = 0; i < mr; ++i) {
      T& ce = c[i * rs + j * cs];
      const T t = tile[j * mr_ + i];
      if (mode == GemmMode::set) ce = t;
      else if (mode == GemmMode::add) ce = ce + t;
      else ce = ce - t;
    }
  }
}

template <class T>
void gemm_pa(i64 m, i64 n, i64 k, const T* ap, const T* b, i64 brs, i64 bcs, T* c, i64 crs, i64 ccs,
             GemmMode mode, T* bbuf) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (mode == GemmMode::set)
      for (i64 j = 0; j < n; ++j)
        for (i64 i = 0; i < m; ++i) c[i * crs + j * ccs] = T(0);
    return;
  }
  constexpr int mr_ = MR<T>, nr_ = NR<T>;
  const i64 mpad = round_up(m, mr_);
  for (i64 jc = 0; jc < n; jc += NC<T>) {
    const i64 nc = std::min(NC<T>, n - jc);
    for (i64 pc = 0; pc < k; pc += kGemmKC<T>) {
      const i64 kc = std::min(kGemmKC<T>, k - pc);
      pack_b<T>(kc, nc, b + pc * brs + jc * bcs, brs, bcs, bbuf);
      // Later k-blocks are added to what the earlier ones wrote: a fixed order.
      const GemmMode md = (pc == 0 || mode != GemmMode::set) ? mode : GemmMode::add;
      const T* ablk = ap + pc * mpad;
      for (i64 ic = 0; ic < m; ic += MC<T>) {
        const i64 mc = std::min(MC<T>, m - ic);
        for (i64 jr = 0; jr < nc; jr += nr_) {
          const i64 nr = std::min<i64>(nr_, nc - jr);
          const T* bpan = bbuf + jr * kc;
          for (i64 ir = ic; ir < ic + mc; ir += mr_) {
            micro<T>(kc, ablk + ir * kc, bpan, c + ir * crs + (jc + jr) * ccs, crs, ccs,
                     std::min<i64>(mr_, m - ir), nr, md);
          }
        }
      }
    }
  }
}

template <class T>
GemmOps<T> make_ops() {
  GemmOps<T> o;
  o.mr = MR<T>;
  o.nr = NR<T>;
  o.packed_a_size = &packed_a_size<T>;
  o.b_buffer_size = &b_buffer_size<T>;
  o.pack_a = &pack_a<T>;
  o.gemm_pa = &gemm_pa<T>;
  return o;
}

}  // namespace INITLAB_GEMM_NS
}  // namespace detail
}  // namespace initlab
