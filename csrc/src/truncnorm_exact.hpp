// Private: the double-precision normal CDF in log space, for the truncated normal's parameters
// (fill.cpp: Phi at the bounds, and which route an interval takes). Scalar; libm-free.
#pragma once
#include <algorithm>
#include <cmath>
#include "initlab/detmath.hpp"

namespace initlab::detail {

constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))

// log Phi(x), accurate in relative terms for every x (no underflow for x << 0).
static inline double log_ndtr_impl(double x) {
  using detmath::exp_f64;
  using detmath::log_f64;
  if (x != x) return x;
  if (x == -HUGE_VAL) return -HUGE_VAL;
  if (x == HUGE_VAL) return 0.0;
  if (x > 2.0) {
    // log(1 - q) with q = Phi(-x) <= 0.023 by the series -sum q^k / k: no cancellation.
    const double q = exp_f64(log_ndtr_impl(-x));
    double term = q, sum = 0.0;
    for (int k = 1; k < 40 && term > 1e-18 * q; ++k) {
      sum += term / static_cast<double>(k);
      term *= q;
    }
    return -sum;
  }
  if (x >= -2.0) {
    // Phi(x) = 1/2 + phi(x) * sum_k x^(2k+1) / (2k+1)!!
    const double x2 = x * x;
    double term = x, sum = x;
    for (int k = 1; k < 200; ++k) {
      term *= x2 / static_cast<double>(2 * k + 1);
      sum += term;
      if (std::fabs(term) <= 1e-18 * std::fabs(sum)) break;
    }
    return log_f64(0.5 + exp_f64(-0.5 * x2 - kLogSqrt2Pi) * sum);
  }
  // x < -2: Phi(x) = phi(x) R(t), t = -x, Mills ratio R(t) = 1/(t + 1/(t + 2/(t + ...))) (Lentz).
  const double t = -x;
  const double tiny = 1e-300;
  double f = t, c = t, d = 0.0;
  for (int n = 1; n < 5000; ++n) {
    const double a = static_cast<double>(n);
    d = t + a * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = t + a / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    const double delta = c * d;
    f *= delta;
    if (std::fabs(delta - 1.0) < 1e-16) break;
  }
  return -0.5 * x * x - kLogSqrt2Pi - log_f64(f);
}

}  // namespace initlab::detail
