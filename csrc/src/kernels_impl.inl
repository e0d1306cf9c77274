// The scalar reference kernels: one element at a time, the definition every SIMD path must
// reproduce bit for bit. Included by kernels_<isa>.cpp inside `namespace initlab::detail::k_<isa>`.
// The float64 kernels take the Philox word generator as a template parameter so vector
// translation units can plug in their vectorized generator.
// (No include guard: included once per ISA namespace.)
namespace scalar_ref {

using std::int64_t;
using std::uint32_t;
using std::uint64_t;

using WordsFn = void (*)(uint64_t seed, uint64_t stream, uint64_t block0, int nb, uint32_t* w);
// Word buffers: room for a chunk plus the vector generators' rounding up to whole groups.
constexpr int kWordBuf = 2 * kChunk + 4 * 64;

// Philox words of blocks [block0, block0 + nb) of (seed, stream), block-major: w[4j + k].
static void philox_words(uint64_t seed, uint64_t stream, uint64_t block0, int nb, uint32_t* w) {
  for (int j = 0; j < nb; ++j) {
    const philox4x32_ctr c = philox_block(seed, stream, block0 + static_cast<uint64_t>(j));
    w[4 * j + 0] = c[0];
    w[4 * j + 1] = c[1];
    w[4 * j + 2] = c[2];
    w[4 * j + 3] = c[3];
  }
}

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

// ---- float32 ---------------------------------------------------------------------------

static void uniform_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  philox_words(seed, stream, b0, nb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  const uint32_t* ws = w + skip;
  for (int i = 0; i < n; ++i) {
    const float u = static_cast<float>(static_cast<int32_t>(ws[i] >> 8)) * 5.9604644775390625e-08f;
    out[i] = clampf(shift + scale * u, lo, hi);
  }
}

// Ziggurat (ziggurat.hpp): element g's value from its own word, rare ones finished from its
// fallback counters.
static void normal_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  philox_words(seed, stream, b0, nb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const uint32_t* ws = w + skip;
  for (int i = 0; i < n; ++i) {
    const float z = zig::normal_f32(seed, stream, g0 + static_cast<uint64_t>(i), ws[i]);
    out[i] = shift + scale * z;
  }
}

static void trunc_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  philox_words(seed, stream, b0, nb, w);
  const uint32_t* ws = w + skip;
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  if (!kp.exact) {
    const float pa = static_cast<float>(kp.pa), qb = static_cast<float>(kp.qb), m = static_cast<float>(kp.m);
    const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
    for (int i = 0; i < n; ++i) {
      // u = (2k + 1) 2^-24 and 1 - u from the same 23 bits: both exact, never 0, u + v == 1.
      const float u = static_cast<float>(static_cast<int32_t>(((ws[i] >> 9) << 1) | 1u)) * 5.9604644775390625e-08f;
      const float v = static_cast<float>(static_cast<int32_t>((((~ws[i]) >> 9) << 1) | 1u)) * 5.9604644775390625e-08f;
      const float pl = pa + u * m;
      const float pr = qb + v * m;
      const bool left = pl <= 0.5f;
      const float p = left ? pl : pr;
      const float x0 = detmath::ndtri_lower<float>(p);
      const float x = left ? x0 : -x0;
      out[i] = clampf(shift + scale * x, lo, hi);
    }
  } else {
    for (int i = 0; i < n; ++i) {
      const double u = (static_cast<double>(ws[i]) + 0.5) * 2.3283064365386962890625e-10;
      const double v = (static_cast<double>(~ws[i]) + 0.5) * 2.3283064365386962890625e-10;
      const double x = trunc_exact(u, v, kp.alpha, kp.beta, kp.la, kp.lb, kp.lca, kp.lcb);
      out[i] = clampf(static_cast<float>(kp.shift + kp.scale * x), lo, hi);
    }
  }
}

// ---- float64 ---------------------------------------------------------------------------

static inline uint64_t word64(const uint32_t* w, int i) {
  return static_cast<uint64_t>(w[2 * i]) | (static_cast<uint64_t>(w[2 * i + 1]) << 32);
}

template <WordsFn W>
static void uniform_f64(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, double* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  W(seed, stream, b0, nb, w);
  for (int i = 0; i < n; ++i) {
    const double u = static_cast<double>(static_cast<int64_t>(word64(w, skip + i) >> 11)) * 1.1102230246251565404e-16;
    out[i] = clampd(kp.shift + kp.scale * u, kp.lo, kp.hi);
  }
}

template <WordsFn W>
static void normal_f64(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, double* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  W(seed, stream, b0, nb, w);
  for (int i = 0; i < n; ++i) {
    const double z = zig::normal_f64(seed, stream, g0 + static_cast<uint64_t>(i), word64(w, skip + i));
    out[i] = kp.shift + kp.scale * z;
  }
}

template <WordsFn W>
static void trunc_f64(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, double* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  W(seed, stream, b0, nb, w);
  for (int i = 0; i < n; ++i) {
    const uint64_t k = word64(w, skip + i) >> 11;
    const double u = (static_cast<double>(static_cast<int64_t>(k)) + 0.5) * 1.1102230246251565404e-16;
    const double v = (static_cast<double>(static_cast<int64_t>((~k) & ((1ull << 53) - 1))) + 0.5) * 1.1102230246251565404e-16;
    const double x = kp.exact ? trunc_exact(u, v, kp.alpha, kp.beta, kp.la, kp.lb, kp.lca, kp.lcb)
                              : trunc_fast64(u, v, kp.alpha, kp.beta, kp.pa, kp.qb, kp.m, kp.la, kp.lb, kp.lca, kp.lcb);
    out[i] = clampd(kp.shift + kp.scale * x, kp.lo, kp.hi);
  }
}

static void to_f16(const float* in, uint16_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = lowp::f16_from_f32(in[i]);
}
static void to_bf16(const float* in, uint16_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = lowp::bf16_from_f32(in[i]);
}

// float16 / bfloat16 uniform: 16 random bits per element, two elements per word. Element g uses
// half (g mod 2) (low half first) of word ((g >> 1) mod 4) of block floor(g / 8); u = h 2^-16.
template <bool BF16>
static void uniform16(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, uint16_t* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 3;
  const int skip = static_cast<int>(g0 & 7u);
  const int nb = (skip + n + 7) >> 3;
  philox_words(seed, stream, b0, nb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  for (int i = 0; i < n; ++i) {
    const int e = skip + i;
    const uint32_t h = (w[e >> 1] >> (16 * (e & 1))) & 0xffffu;
    const float u = static_cast<float>(static_cast<int32_t>(h)) * 1.52587890625e-05f;
    const float y = clampf(shift + scale * u, lo, hi);
    out[i] = BF16 ? lowp::bf16_from_f32(y) : lowp::f16_from_f32(y);
  }
}

// A low-precision output through the float32 kernel and a rounding pass (the scalar route).
template <GenF32 F, CvtF16 C>
static void gen16(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, uint16_t* out) {
  alignas(64) float t[kChunk];
  F(kp, seed, stream, g0, n, t);
  C(t, out, n);
}

}  // namespace scalar_ref
