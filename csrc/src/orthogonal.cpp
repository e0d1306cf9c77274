// Blocked Householder: Stewart's Haar generator, QR factorization, forming Q.
// See orthogonal.hpp for the mathematics and the frozen element -> counter mapping.
#include "initlab/orthogonal.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "initlab/errors.hpp"
#include "initlab/gemm.hpp"
#include "initlab/parallel.hpp"

namespace initlab {
namespace {

using i64 = std::int64_t;
using detail::AlignedBuffer;
using detail::GemmOps;

// Reflectors per block. Part of the numerical contract (it fixes the order of operations), so
// it depends on the dtype only, never on threads or the CPU path. <= kGemmKC (one k-block).
template <class T>
constexpr i64 kBlock = 128;
// Columns of C updated together by one thread: the slab stays in L2 between V^T C and C -= V W.
constexpr i64 kSlabTarget = 64;
// Below this many flops a parallel region costs more than it saves.
constexpr double kParallelFlops = 4e6;

static_assert(kBlock<float> <= kGemmKC<float> && kBlock<double> <= kGemmKC<double>, "one k-block per panel");

int threads_for(double flops, int n_threads) { return flops < kParallelFlops ? 1 : std::max(1, n_threads); }

// Split [0, n) into at most n_threads ranges of whole nr-wide panels; fn(j0, j1) on each.
void for_column_ranges(i64 n, i64 nr, int n_threads, const std::function<void(i64, i64)>& fn) {
  const i64 panels = (n + nr - 1) / nr;
  const i64 tasks = std::max<i64>(1, std::min<i64>(n_threads, panels));
  parallel_for(tasks, n_threads, [&](i64 t) {
    const i64 j0 = panels * t / tasks * nr, j1 = std::min(n, panels * (t + 1) / tasks * nr);
    if (j1 > j0) fn(j0, j1);
  });
}

// The block reflector I - V T V^T of nbb reflectors acting on mp rows, packed for the GEMM.
template <class T>
struct BlockReflector {
  i64 mp = 0, nbb = 0;
  AlignedBuffer<T> ap_vt, ap_v, ap_t;  // V^T (nbb x mp), V (mp x nbb), T or T^T (nbb x nbb)
};

// v: mp x nbb column-major (ld mp), unit lower trapezoidal. transpose_t: pack T^T instead of
// T (H^T = I - V T^T V^T applies the reflectors in reverse order, as QR needs).
template <class T>
void prepare(BlockReflector<T>& br, const T* v, i64 mp, i64 nbb, const T* tau, bool transpose_t,
             const GemmOps<T>& ops, Exec ex) {
  br.mp = mp;
  br.nbb = nbb;
  const int nt = threads_for(4.0 * mp * nbb * nbb, ex.n_threads);
  br.ap_vt.resize(ops.packed_a_size(nbb, mp));
  br.ap_v.resize(ops.packed_a_size(mp, nbb));
  // Packing V^T: one k-block per task (blocks are independent); V: ranges of row panels.
  const i64 kblocks = (mp + kGemmKC<T> - 1) / kGemmKC<T>;
  const i64 mpad_t = (nbb + ops.mr - 1) / ops.mr * ops.mr;
  parallel_for(kblocks, nt, [&](i64 b) {
    const i64 p0 = b * kGemmKC<T>, kc = std::min(kGemmKC<T>, mp - p0);
    ops.pack_a(nbb, kc, v + p0, mp, 1, br.ap_vt.data() + p0 * mpad_t);
  });
  const i64 rpanels = (mp + ops.mr - 1) / ops.mr;
  const i64 rtasks = std::max<i64>(1, std::min<i64>(nt, rpanels));
  parallel_for(rtasks, nt, [&](i64 t) {
    const i64 r0 = rpanels * t / rtasks * ops.mr, r1 = std::min(mp, rpanels * (t + 1) / rtasks * ops.mr);
    if (r1 > r0) ops.pack_a(r1 - r0, nbb, v + r0, 1, mp, br.ap_v.data() + r0 * nbb);
  });
  // G = V^T V (only its strict upper triangle is used), then T by the forward recurrence
  // T[0:i, i] = -tau_i T[0:i, 0:i] G[0:i, i] (LAPACK larft, forward, columnwise).
  std::vector<T> g(static_cast<size_t>(nbb * nbb));
  for_column_ranges(nbb, ops.nr, nt, [&](i64 j0, i64 j1) {
    AlignedBuffer<T> bb(ops.b_buffer_size(j1 - j0, mp));
    ops.gemm_pa(nbb, j1 - j0, mp, br.ap_vt.data(), v + j0 * mp, 1, mp, g.data() + j0 * nbb, 1, nbb,
                GemmMode::set, bb.data());
  });
  std::vector<T> t(static_cast<size_t>(nbb * nbb), T(0));
  for (i64 i = 0; i < nbb; ++i) {
    t[i + i * nbb] = tau[i];
    for (i64 r = 0; r < i; ++r) {
      double s = 0.0;
      for (i64 c = r; c < i; ++c) s += static_cast<double>(t[r + c * nbb]) * static_cast<double>(g[c + i * nbb]);
      t[r + i * nbb] = static_cast<T>(-static_cast<double>(tau[i]) * s);
    }
  }
  br.ap_t.resize(ops.packed_a_size(nbb, nbb));
  if (transpose_t) ops.pack_a(nbb, nbb, t.data(), nbb, 1, br.ap_t.data());
  else ops.pack_a(nbb, nbb, t.data(), 1, nbb, br.ap_t.data());
}

// C (mp x nc, column-major, ld ldc) <- (I - V T V^T) C, in column slabs. Per slab:
// W = V^T C; W2 = T W; C -= V W2. Each column's arithmetic is independent of the split.
template <class T>
void apply(const BlockReflector<T>& br, T* c, i64 ldc, i64 nc, const GemmOps<T>& ops, Exec ex) {
  if (nc <= 0) return;
  const i64 mp = br.mp, nbb = br.nbb;
  const int nt = threads_for(4.0 * mp * nbb * nc, ex.n_threads);
  const i64 slab = std::max<i64>(1, (kSlabTarget + ops.nr - 1) / ops.nr) * ops.nr;
  for_column_ranges(nc, ops.nr, nt, [&](i64 j0, i64 j1) {
    const i64 w = std::min(slab, j1 - j0);
    std::vector<T> wbuf(static_cast<size_t>(nbb * w)), w2(static_cast<size_t>(nbb * w));
    AlignedBuffer<T> bb(ops.b_buffer_size(w, std::max(mp, nbb)));
    for (i64 s0 = j0; s0 < j1; s0 += slab) {
      const i64 ws = std::min(slab, j1 - s0);
      T* cs = c + s0 * ldc;
      ops.gemm_pa(nbb, ws, mp, br.ap_vt.data(), cs, 1, ldc, wbuf.data(), 1, nbb, GemmMode::set, bb.data());
      ops.gemm_pa(nbb, ws, nbb, br.ap_t.data(), wbuf.data(), 1, nbb, w2.data(), 1, nbb, GemmMode::set, bb.data());
      ops.gemm_pa(mp, ws, nbb, br.ap_v.data(), w2.data(), 1, nbb, cs, 1, ldc, GemmMode::sub, bb.data());
    }
  });
}

// Fills the mp x nbb panel V (ld mp) of reflectors [k0, k0+nbb), their tau and sign d.
template <class T>
using PanelFn = std::function<void(i64 k0, i64 nbb, T* v, T* tau, T* d)>;

// Q (m x n, column-major, ld ldq) = H_0 ... H_{n-1} [I; 0] by backward accumulation; then
// column j *= d_j * gain when scale is set.
template <class T>
void form_q(T* q, i64 m, i64 n, i64 ldq, const PanelFn<T>& panel, bool scale, double gain, Exec ex) {
  const auto ops = detail::gemm_ops<T>(ex.isa);
  const int nt_init = threads_for(static_cast<double>(m) * n, ex.n_threads);
  parallel_for(n, nt_init, [&](i64 j) {
    T* col = q + j * ldq;
    std::fill(col, col + m, T(0));
    col[j] = T(1);
  });
  std::vector<T> d(static_cast<size_t>(n), T(1)), tau(static_cast<size_t>(kBlock<T>));
  AlignedBuffer<T> v(m * std::min(n, kBlock<T>));
  BlockReflector<T> br;
  const i64 nblocks = (n + kBlock<T> - 1) / kBlock<T>;
  for (i64 b = nblocks - 1; b >= 0; --b) {
    const i64 k0 = b * kBlock<T>, nbb = std::min(kBlock<T>, n - k0), mp = m - k0;
    panel(k0, nbb, v.data(), tau.data(), d.data() + k0);
    prepare<T>(br, v.data(), mp, nbb, tau.data(), false, ops, ex);
    // Columns < k0 are still identity columns, zero in rows >= k0: untouched by this block.
    apply<T>(br, q + k0 + k0 * ldq, ldq, n - k0, ops, ex);
  }
  if (scale) {
    parallel_for(n, nt_init, [&](i64 j) {
      const T s = d[static_cast<size_t>(j)] * static_cast<T>(gain);
      T* col = q + j * ldq;
      for (i64 i = 0; i < m; ++i) col[i] = col[i] * s;
    });
  }
}

template <class T>
void stewart_panel(i64 m, RngCoord rc, Exec ex, i64 k0, i64 nbb, T* v, T* tau, T* d) {
  const i64 mp = m - k0;
  const int nt = threads_for(20.0 * mp * nbb, ex.n_threads);
  parallel_for(nbb, nt, [&](i64 i) {
    const i64 k = k0 + i, len = m - k;
    T* col = v + i * mp;
    std::fill(col, col + i, T(0));
    T* x = col + i;
    fill_normal(x, len, rc, static_cast<std::uint64_t>(k) * static_cast<std::uint64_t>(m), T(0), T(1),
                Exec{1, ex.isa});
    double ss = 0.0;
    for (i64 r = 0; r < len; ++r) ss += static_cast<double>(x[r]) * static_cast<double>(x[r]);
    const double sigma = std::sqrt(ss), alpha = static_cast<double>(x[0]);
    if (sigma == 0.0) {  // probability zero; keep H = I
      tau[i] = T(0);
      d[i] = T(1);
      x[0] = T(1);
      return;
    }
    const double beta = alpha >= 0.0 ? -sigma : sigma;
    const double scal = 1.0 / (alpha - beta);
    tau[i] = static_cast<T>((beta - alpha) / beta);
    d[i] = beta > 0.0 ? T(1) : T(-1);
    x[0] = T(1);
    for (i64 r = 1; r < len; ++r) x[r] = static_cast<T>(static_cast<double>(x[r]) * scal);
  });
}

template <class T>
void orthogonal_t(T* q, i64 m, i64 n, i64 rs, i64 cs, RngCoord rc, double gain, Exec ex) {
  require(m >= 0 && n >= 0, "orthogonal: negative size");
  require(m >= n, "orthogonal: the core needs rows >= cols (transpose wide matrices)");
  require(std::isfinite(gain), "orthogonal: gain must be finite");
  if (m == 0 || n == 0) return;
  PanelFn<T> panel = [&](i64 k0, i64 nbb, T* v, T* tau, T* d) { stewart_panel<T>(m, rc, ex, k0, nbb, v, tau, d); };
  if (rs == 1 && cs >= m) {
    form_q<T>(q, m, n, cs, panel, true, gain, ex);
    return;
  }
  // Any other layout: compute column-major, then copy (same arithmetic, same bits).
  AlignedBuffer<T> tmp(m * n);
  form_q<T>(tmp.data(), m, n, m, panel, true, gain, ex);
  const T* src = tmp.data();
  const i64 tile = 64;
  const i64 tcols = (n + tile - 1) / tile;
  parallel_for(tcols, threads_for(static_cast<double>(m) * n, ex.n_threads), [&](i64 tj) {
    const i64 j0 = tj * tile, j1 = std::min(n, j0 + tile);
    for (i64 i0 = 0; i0 < m; i0 += tile) {
      const i64 i1 = std::min(m, i0 + tile);
      for (i64 i = i0; i < i1; ++i)
        for (i64 j = j0; j < j1; ++j) q[i * rs + j * cs] = src[i + j * m];
    }
  });
}

// LAPACK larfg on x[0:len]: x[0] <- beta, x[1:] <- v[1:], returns tau.
template <class T>
T larfg(i64 len, T* x) {
  double mx = 0.0;
  for (i64 r = 1; r < len; ++r) mx = std::max(mx, std::fabs(static_cast<double>(x[r])));
  if (mx == 0.0) return T(0);
  double ss = 0.0;  // scaled to avoid overflow/underflow
  for (i64 r = 1; r < len; ++r) {
    const double y = static_cast<double>(x[r]) / mx;
    ss += y * y;
  }
  const double xnorm = mx * std::sqrt(ss), alpha = static_cast<double>(x[0]);
  const double beta = -std::copysign(std::hypot(alpha, xnorm), alpha);
  const double scal = 1.0 / (alpha - beta);
  for (i64 r = 1; r < len; ++r) x[r] = static_cast<T>(static_cast<double>(x[r]) * scal);
  x[0] = static_cast<T>(beta);
  return static_cast<T>((beta - alpha) / beta);
}

template <class T>
void householder_qr_t(T* a, i64 m, i64 n, i64 lda, T* q, i64 ldq, Exec ex) {
  require(m >= 0 && n >= 0, "householder_qr: negative size");
  require(lda >= std::max<i64>(m, 1) && ldq >= std::max<i64>(m, 1), "householder_qr: bad leading dimension");
  const i64 k = std::min(m, n);
  if (k == 0) return;
  const auto ops = detail::gemm_ops<T>(ex.isa);
  std::vector<T> tau(static_cast<size_t>(k));
  AlignedBuffer<T> v(m * std::min(k, kBlock<T>));
  BlockReflector<T> br;
  for (i64 k0 = 0; k0 < k; k0 += kBlock<T>) {
    const i64 nbb = std::min(kBlock<T>, k - k0), mp = m - k0;
    // Panel: unblocked (level 2), reflectors applied to the rest of the panel only.
    for (i64 i = 0; i < nbb; ++i) {
      const i64 j = k0 + i;
      T* x = a + j + j * lda;
      const T tj = larfg<T>(m - j, x);
      tau[static_cast<size_t>(j)] = tj;
      if (tj == T(0)) continue;
      for (i64 c = j + 1; c < k0 + nbb; ++c) {
        T* y = a + j + c * lda;
        double s = static_cast<double>(y[0]);
        for (i64 r = 1; r < m - j; ++r) s += static_cast<double>(x[r]) * static_cast<double>(y[r]);
        const T f = static_cast<T>(s * static_cast<double>(tj));
        y[0] = y[0] - f;
        for (i64 r = 1; r < m - j; ++r) y[r] = y[r] - f * x[r];
      }
    }
    auto copy_panel = [&](i64 kb, i64 nb, T* vv) {
      const i64 mpp = m - kb;
      for (i64 i = 0; i < nb; ++i) {
        T* col = vv + i * mpp;
        const T* src = a + kb + (kb + i) * lda;
        for (i64 r = 0; r < mpp; ++r) col[r] = r < i ? T(0) : (r == i ? T(1) : src[r]);
      }
    };
    if (k0 + nbb < n) {  // trailing update: C <- H^T C = (I - V T^T V^T) C
      copy_panel(k0, nbb, v.data());
      prepare<T>(br, v.data(), mp, nbb, tau.data() + k0, true, ops, ex);
      apply<T>(br, a + k0 + (k0 + nbb) * lda, lda, n - k0 - nbb, ops, ex);
    }
  }
  PanelFn<T> panel = [&](i64 k0, i64 nbb, T* vv, T* t, T* d) {
    const i64 mpp = m - k0;
    for (i64 i = 0; i < nbb; ++i) {
      T* col = vv + i * mpp;
      const T* src = a + k0 + (k0 + i) * lda;
      for (i64 r = 0; r < mpp; ++r) col[r] = r < i ? T(0) : (r == i ? T(1) : src[r]);
      t[i] = tau[static_cast<size_t>(k0 + i)];
      d[i] = T(1);
    }
  };
  form_q<T>(q, m, k, ldq, panel, false, 1.0, ex);
}

}  // namespace

void orthogonal(float* q, i64 m, i64 n, i64 rs, i64 cs, RngCoord rc, double gain, Exec ex) {
  orthogonal_t<float>(q, m, n, rs, cs, rc, gain, ex);
}
void orthogonal(double* q, i64 m, i64 n, i64 rs, i64 cs, RngCoord rc, double gain, Exec ex) {
  orthogonal_t<double>(q, m, n, rs, cs, rc, gain, ex);
}
void householder_qr(float* a, i64 m, i64 n, i64 lda, float* q, i64 ldq, Exec ex) {
  householder_qr_t<float>(a, m, n, lda, q, ldq, ex);
}
void householder_qr(double* a, i64 m, i64 n, i64 lda, double* q, i64 ldq, Exec ex) {
  householder_qr_t<double>(a, m, n, lda, q, ldq, ex);
}

}  // namespace initlab
