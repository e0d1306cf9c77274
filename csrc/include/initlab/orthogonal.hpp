// Haar-distributed (semi-)orthogonal matrices and Householder QR, blocked (compact WY,
// Schreiber & Van Loan 1989) with the level-3 work in initlab's GEMM (gemm.hpp).
//
// orthogonal(): Stewart (1980). The Householder vectors of the QR of an m x n Gaussian matrix
// are distributed as independent Gaussian vectors of lengths m, m-1, ..., m-n+1, so Q is formed
// from freshly drawn reflectors (about half the flops of QR + forming Q), then multiplied by
// the sign of R's diagonal (Mezzadri 2007) so that it is exactly Haar distributed; without
// the sign correction it would not be.
//
// Frozen mapping: reflector k (0-based, k < n) of an m x n draw uses the normal values of
// global indices [k*m, k*m + m - k) of the Philox stream (seed, stream) (fill_normal of
// distributions.hpp, mean 0, std 1). x = those values; alpha = x[0]; sigma = ||x||;
// beta = -sign(alpha) sigma (sign(0) = +1); H_k = I - tau v v^T with v = (1, x[1:]/(alpha-beta)),
// tau = (beta - alpha)/beta; Q = H_0 H_1 ... H_{n-1} [I_n; 0] diag(sign(beta_k)) * gain.
//
// Determinism: fixed block size (a function of the dtype only), fixed summation order in the
// GEMM, threads only split columns: bit-identical for any thread count and any strides of q.
#pragma once
#include <cstdint>

#include "initlab/distributions.hpp"

namespace initlab {

// Writes gain * Q (m x n, m >= n, orthonormal columns) to q[i*rs + j*cs]. Throws
// std::invalid_argument (nothing written) for m < n or negative sizes.
void orthogonal(float* q, std::int64_t m, std::int64_t n, std::int64_t rs, std::int64_t cs, RngCoord rc,
                double gain, Exec ex);
void orthogonal(double* q, std::int64_t m, std::int64_t n, std::int64_t rs, std::int64_t cs, RngCoord rc,
                double gain, Exec ex);

// Reduced Householder QR (LAPACK conventions: beta = -sign(alpha)||x||, tau = 0 when the part
// below the diagonal is already zero). a: m x n column-major with leading dimension lda >= m;
// on return its upper triangle holds R and the reflectors are below the diagonal.
// q: m x k column-major (ldq >= m, k = min(m, n)) receives Q.
void householder_qr(float* a, std::int64_t m, std::int64_t n, std::int64_t lda, float* q, std::int64_t ldq,
                    Exec ex);
void householder_qr(double* a, std::int64_t m, std::int64_t n, std::int64_t lda, double* q, std::int64_t ldq,
                    Exec ex);

}  // namespace initlab
