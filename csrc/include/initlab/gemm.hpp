// Cache-blocked, register-blocked matrix multiply: the level-3 engine of the Householder code.
//
// Determinism: every element of C is  C (op) sum_p A[i,p] B[p,j]  where the sum over p runs in
// fixed blocks of kGemmKC<T> terms, each block accumulated sequentially in p, and the blocks
// applied to C in increasing order. Threads only split C into disjoint column ranges, so the
// result is bit-identical for any thread count, any chunking and any memory layout of A, B, C.
// The AVX2 and AVX-512 paths use FMA (same order, same bits as each other); the generic path
// rounds the product first (a few ulps apart from the FMA paths).
#pragma once
#include <cstdint>
#include <new>

#include "initlab/distributions.hpp"

namespace initlab {

enum class GemmMode : int { set = 0, add = 1, sub = 2 };  // C = AB, C += AB, C -= AB

// The k-blocking is part of the numerical contract (same on every path), hence not per-ISA.
template <class T>
constexpr std::int64_t kGemmKC = 256;

namespace detail {

// Operations of one ISA path. "Packed A" is the whole m x k operand A laid out for the
// micro-kernel (k in blocks of kGemmKC; inside a block, row panels of mr rows, p-major);
// it can be packed once and reused by many products (one per column slab of C).
template <class T>
struct GemmOps {
  int mr = 1, nr = 1;
  // Elements of a packed m x k A (and of the B scratch buffer of gemm_pa for n columns).
  std::int64_t (*packed_a_size)(std::int64_t m, std::int64_t k) = nullptr;
  std::int64_t (*b_buffer_size)(std::int64_t n, std::int64_t k) = nullptr;
  // A[i,p] = a[i*rs + p*cs]
  void (*pack_a)(std::int64_t m, std::int64_t k, const T* a, std::int64_t rs, std::int64_t cs, T* ap) = nullptr;
  // Serial C (op)= Ap * B. B[p,j] = b[p*brs + j*bcs], C[i,j] = c[i*crs + j*ccs]; bbuf: b_buffer_size(n, k).
  void (*gemm_pa)(std::int64_t m, std::int64_t n, std::int64_t k, const T* ap, const T* b, std::int64_t brs,
                  std::int64_t bcs, T* c, std::int64_t crs, std::int64_t ccs, GemmMode mode, T* bbuf) = nullptr;
};

GemmOps<float> gemm_ops_f32(Isa isa);
GemmOps<double> gemm_ops_f64(Isa isa);
template <class T>
inline GemmOps<T> gemm_ops(Isa isa);
template <>
inline GemmOps<float> gemm_ops<float>(Isa isa) { return gemm_ops_f32(isa); }
template <>
inline GemmOps<double> gemm_ops<double>(Isa isa) { return gemm_ops_f64(isa); }

// 64-byte aligned scratch memory (packed panels are read with aligned-size vector loads).
template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::int64_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { release(); }
  void resize(std::int64_t n) {
    if (n <= cap_) return;
    release();
    p_ = static_cast<T*>(::operator new(static_cast<std::size_t>(n) * sizeof(T), std::align_val_t(64)));
    cap_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }

 private:
  void release() {
    if (p_) ::operator delete(p_, std::align_val_t(64));
    p_ = nullptr;
    cap_ = 0;
  }
  T* p_ = nullptr;
  std::int64_t cap_ = 0;
};

}  // namespace detail

// C (op)= A B with arbitrary element strides (A is m x k, B k x n, C m x n), on ex.n_threads
// threads. Used by the Householder code's callers and by the tests/benchmarks of the kernel.
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t ars, std::int64_t acs,
          const float* b, std::int64_t brs, std::int64_t bcs, float* c, std::int64_t crs, std::int64_t ccs,
          GemmMode mode, Exec ex);
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const double* a, std::int64_t ars, std::int64_t acs,
          const double* b, std::int64_t brs, std::int64_t bcs, double* c, std::int64_t crs, std::int64_t ccs,
          GemmMode mode, Exec ex);

}  // namespace initlab
