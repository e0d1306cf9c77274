// Deterministic elementary functions for the samplers.
//
// Written with plain + - * / and bit manipulation only (no libm, no FMA: the project compiles
// with -ffp-contract=off), branch-free where it matters so the compiler can vectorize them.
// IEEE-754 makes each operation correctly rounded, so every instruction set (scalar, SSE2,
// AVX2, AVX-512) produces the same bits. Accuracy is a few ulp over the ranges the samplers
// use; tests compare them with libm.
#pragma once
#include <cstdint>
#include <cmath>
#include <cstring>

namespace initlab::detmath {

static inline std::uint32_t bits32(float x) { std::uint32_t b; std::memcpy(&b, &x, 4); return b; }
static inline float from_bits32(std::uint32_t b) { float x; std::memcpy(&x, &b, 4); return x; }
static inline std::uint64_t bits64(double x) { std::uint64_t b; std::memcpy(&b, &x, 8); return b; }
static inline double from_bits64(std::uint64_t b) { double x; std::memcpy(&x, &b, 8); return x; }

// Natural log for positive normal finite x: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716.
static inline float log_f32(float x) {
  const std::uint32_t b = bits32(x);
  std::int32_t e = static_cast<std::int32_t>((b >> 23) & 0xffu) - 127;
  float m = from_bits32((b & 0x7fffffu) | 0x3f800000u);
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e += big ? 1 : 0;
  const float s = (m - 1.0f) / (m + 1.0f);
  const float s2 = s * s;
  const float p = s2 * (0.333333333f + s2 * (0.2f + s2 * (0.142857143f + s2 * 0.111111111f)));
  const float ef = static_cast<float>(e);
  return ef * 0.693145752f + ((2.0f * s + 2.0f * s * p) + ef * 1.42860677e-06f);
}

// Near-minimax polynomials for the double-precision log and sincos (Chebyshev fits in 40-digit
// arithmetic, rounded to double; highest degree first, for Horner). Issue 13 replaced the Taylor
// series (11, 8 and 9 terms) with these (7, 6, 7): the same accuracy (tests: within 2 ulp) with
// fewer multiply-adds. The vector kernels use the same constants in the same order.
//   log: (atanh(s)/s - 1)/s^2 as a polynomial in s^2, 0 <= s^2 <= (3 - 2 sqrt 2)^2.
//   sin: (sin(x) - x)/x^3 and cos: (cos(x) - 1)/x^2 as polynomials in x^2, |x| <= pi/4.
constexpr double kLog64P[7] = {0.07308292712444311, 0.07665855309105386, 0.09091444727837474, 0.11111105565129939,
                               0.14285714313001635, 0.19999999999949722, 0.3333333333333335};
constexpr double kSin64P[6] = {1.5918115263265974e-10, -2.505113165023518e-08, 2.7557316101617874e-06,
                               -0.00019841269836756774, 0.008333333333330948, -0.16666666666666666};
constexpr double kCos64P[7] = {-1.1367988423294987e-11, 2.0875886564482672e-09, -2.755731556524682e-07,
                               2.4801587293690305e-05, -0.001388888888888077, 0.04166666666666664, -0.5};

static inline double log_f64(double x) {
  const std::uint64_t b = bits64(x);
  std::int64_t e = static_cast<std::int64_t>((b >> 52) & 0x7ffu) - 1023;
  double m = from_bits64((b & 0xfffffffffffffull) | 0x3ff0000000000000ull);
  const bool big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  e += big ? 1 : 0;
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double p = kLog64P[0];
  for (int i = 1; i < 7; ++i) p = kLog64P[i] + s2 * p;
  const double ed = static_cast<double>(e);
  // ln2 split so that e * LN2_HI is exact for |e| < 2^11.
  return ed * 6.93147180369123816490e-01 + ((2.0 * s + 2.0 * s * (s2 * p)) + ed * 1.90821492927058770002e-10);
}

// exp for double, |x| < 745; scalar use only (hard truncated-normal regimes).
static inline double exp_f64(double x) {
  if (x < -745.0) return 0.0;
  if (x > 709.0) x = 709.0;
  const double k = static_cast<double>(static_cast<std::int64_t>(x * 1.4426950408889634 + (x < 0 ? -0.5 : 0.5)));
  const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  const double inv[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0, 1.0 / 40320.0,
                        1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
  for (double c : inv) p = c + r * p;
  std::int64_t ki = static_cast<std::int64_t>(k);
  // 2^k in up to two steps so that subnormal results are formed correctly.
  double scale = 1.0;
  if (ki < -1000) { p *= from_bits64(static_cast<std::uint64_t>(1023 - 1000) << 52); ki += 1000; }
  scale = from_bits64(static_cast<std::uint64_t>(ki + 1023) << 52);
  return p * scale;
}

// sin(2*pi*u) and cos(2*pi*u) for u = k * 2^-24, k in [0, 2^24): the reduction works on the
// integer k, so it is exact; the polynomials run on |x| <= pi/4.
static inline void sincos_2pi_u24(std::uint32_t k, float& s_out, float& c_out) {
  const std::uint32_t q = (k + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  const std::int32_t t = static_cast<std::int32_t>(k) - static_cast<std::int32_t>(q << 22);
  const float x = static_cast<float>(t) * 3.74507028e-07f;  // 2*pi / 2^24
  const float x2 = x * x;
  const float s = x + x * x2 * (-0.166666667f + x2 * (8.33333333e-03f + x2 * (-1.98412698e-04f + x2 * 2.75573192e-06f)));
  const float c = 1.0f + x2 * (-0.5f + x2 * (4.16666667e-02f + x2 * (-1.38888889e-03f + x2 * (2.48015873e-05f + x2 * -2.75573192e-07f))));
  const std::uint32_t qq = q & 3u;
  const float sv = (qq & 1u) ? c : s;
  const float cv = (qq & 1u) ? s : c;
  s_out = (qq >= 2u) ? -sv : sv;
  c_out = (qq == 1u || qq == 2u) ? -cv : cv;
}

// Same for u = k * 2^-53, k in [0, 2^53).
static inline void sincos_2pi_u53(std::uint64_t k, double& s_out, double& c_out) {
  const std::uint64_t q = (k + (1ull << 50)) >> 51;
  const std::int64_t t = static_cast<std::int64_t>(k) - static_cast<std::int64_t>(q << 51);
  const double x = static_cast<double>(t) * 6.9757369960172639e-16;  // 2*pi / 2^53
  const double x2 = x * x;
  double s = kSin64P[0];
  for (int i = 1; i < 6; ++i) s = kSin64P[i] + x2 * s;
  s = x + x * x2 * s;
  double c = kCos64P[0];
  for (int i = 1; i < 7; ++i) c = kCos64P[i] + x2 * c;
  c = 1.0 + x2 * c;
  const std::uint64_t qq = q & 3u;
  const double sv = (qq & 1u) ? c : s;
  const double cv = (qq & 1u) ? s : c;
  s_out = (qq >= 2u) ? -sv : sv;
  c_out = (qq == 1u || qq == 2u) ? -cv : cv;
}

static inline float log_any(float x) { return log_f32(x); }
static inline double log_any(double x) { return log_f64(x); }
// sqrt is correctly rounded by IEEE-754 on every instruction set, so it is safe to use.
static inline float sqrt_any(float x) { return std::sqrt(x); }
static inline double sqrt_any(double x) { return std::sqrt(x); }

// Phi^{-1}(p) for 1e-8 <= p <= 1/2 (the float32 range: below ~1e-8 the approximation
// degrades, so callers route smaller p to exact rejection) from M. Giles, "Approximating the erfinv function" (GPU Computing
// Gems, 2011), single-precision coefficients. Written in terms of p so that
// w = -log(1 - y^2) = -log(4 p (1 - p)) keeps full relative precision in the tail.
template <class T>
static inline T ndtri_lower(T p) {
  const T w0 = -log_any(T(4) * p * (T(1) - p));
  T w = w0 - T(2.5);
  T a = T(2.81022636e-08);
  a = T(3.43273939e-07) + a * w;
  a = T(-3.5233877e-06) + a * w;
  a = T(-4.39150654e-06) + a * w;
  a = T(0.00021858087) + a * w;
  a = T(-0.00125372503) + a * w;
  a = T(-0.00417768164) + a * w;
  a = T(0.246640727) + a * w;
  a = T(1.50140941) + a * w;
  T v = sqrt_any(w0) - T(3);
  T b = T(-0.000200214257);
  b = T(0.000100950558) + b * v;
  b = T(0.00134934322) + b * v;
  b = T(-0.00367342844) + b * v;
  b = T(0.00573950773) + b * v;
  b = T(-0.0076224613) + b * v;
  b = T(0.00943887047) + b * v;
  b = T(1.00167406) + b * v;
  b = T(2.83297682) + b * v;
  const T r = (w0 < T(5)) ? a : b;
  return T(1.41421356237309505) * r * (T(2) * p - T(1));
}

}  // namespace initlab::detmath
