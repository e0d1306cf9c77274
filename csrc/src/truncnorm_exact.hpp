// Private: double-precision normal CDF in log space and its inverse, for the truncated normal's
// hard regimes (far tails, narrow intervals) and float64 outputs. Scalar; libm-free.
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

// x <= 0 with log Phi(x) = log_p (log_p <= log 1/2): Newton on the concave log Phi.
static inline double ndtri_from_log_impl(double log_p) {
  using detmath::exp_f64;
  using detmath::log_f64;
  double x;
  if (log_p > -18.0) {  // p > 1.5e-8: inside the rational approximation's range
    x = detmath::ndtri_lower<double>(exp_f64(log_p));
  } else {
    x = -std::sqrt(-2.0 * log_p - log_f64(-4.0 * 3.14159265358979323846 * log_p));
  }
  for (int it = 0; it < 60; ++it) {
    const double lp = log_ndtr_impl(x);
    // d/dx log Phi(x) = phi(x) / Phi(x)
    const double slope = exp_f64(-0.5 * x * x - kLogSqrt2Pi - lp);
    const double dx = (lp - log_p) / slope;
    x -= dx;
    // Relative precision for |x| >= 1; near 0 the p-value's own rounding (~1e-16) is the floor,
    // and asking for more only spins to the iteration cap.
    if (std::fabs(dx) <= 1e-15 * std::max(std::fabs(x), 1.0)) break;
  }
  return x;
}

// log(exp(a) + exp(b)) style helper: log(u + (1-u) e^d) for d <= 0, u in (0, 1).
static inline double log_mix(double u, double one_minus_u, double d) {
  return detmath::log_f64(u + one_minus_u * detmath::exp_f64(d));
}

// One standardized truncated-normal deviate in [alpha, beta] from u in (0,1), 1-u given exactly.
static inline double trunc_exact(double u, double one_minus_u, double alpha, double beta, double la, double lb,
                          double lca, double lcb) {
  constexpr double kLogHalf = -0.69314718055994530942;
  // Left form: log Phi(x) = log(u Phi(beta) + (1-u) Phi(alpha)).
  const double left = lb + log_mix(u, one_minus_u, la - lb);
  double x;
  if (left <= kLogHalf) {
    x = ndtri_from_log_impl(left);
  } else {
    // Right form: log Phi(-x) = log((1-u) Phi(-alpha) + u Phi(-beta)).
    const double right = lca + log_mix(one_minus_u, u, lcb - lca);
    x = -ndtri_from_log_impl(right);
  }
  return x < alpha ? alpha : (x > beta ? beta : x);
}


// Phi(x) for -2.5 <= x <= 0, to ~1e-15 relative: 1/2 + phi(x) sum_k x^(2k+1) / (2k+1)!!, with a
// fixed number of terms (the 48th is below 1e-19 of the sum at |x| = 2.5).
static inline double ndtr_series(double x) {
  const double x2 = x * x;
  double term = x, sum = x;
  for (int k = 1; k < 48; ++k) {
    term *= x2 / static_cast<double>(2 * k + 1);
    sum += term;
  }
  return 0.5 + detmath::exp_f64(-0.5 * x2 - kLogSqrt2Pi) * sum;
}

// The fast float64 route for the central regime (used when the p-values resolve the interval):
// Giles' approximation as a start (~1e-7), then one Halley step on Phi(x) - p, which cubes the
// error. p-values below Phi(-2.5) (where the series loses digits) take the log-space route.
static inline double trunc_fast64(double u, double v, double alpha, double beta, double pa, double qb, double m, double la,
                           double lb, double lca, double lcb) {
  constexpr double kPMin = 6.2096653257761331e-03;  // Phi(-2.5)
  const double pl = pa + u * m;
  const double pr = qb + v * m;
  const bool left = pl <= 0.5;
  const double p = left ? pl : pr;
  if (p < kPMin) return trunc_exact(u, v, alpha, beta, la, lb, lca, lcb);
  const double x0 = detmath::ndtri_lower<double>(p);
  const double t = (ndtr_series(x0) - p) / detmath::exp_f64(-0.5 * x0 * x0 - kLogSqrt2Pi);
  const double x1 = x0 - t / (1.0 + 0.5 * x0 * t);
  const double x = left ? x1 : -x1;
  return x < alpha ? alpha : (x > beta ? beta : x);
}

}  // namespace initlab::detail
