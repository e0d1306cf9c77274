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

// float32 uniform: 24 random bits per element, five elements per Philox block (issue 13; it was one
// word per element). Blocks come in super-blocks of 16 (80 elements), read lane-major so vector
// paths store without transposing: element 80 s + 16 k + j (k < 4, j < 16) takes the top 24 bits
// of word k of block 16 s + j; element 80 s + 64 + j takes the low bytes of words 0, 1, 2 of block
// 16 s + j as (b0 << 16) | (b1 << 8) | b2.
constexpr int kUniSB = 16;  // blocks per super-block
constexpr int kUniSE = 80;  // elements per super-block

// The 24 bits of element r (< 80) of a super-block whose 64 words `w` are block-major.
static inline uint32_t uniform24(const uint32_t* w, int r) {
  if (r < 64) return w[4 * (r & 15) + (r >> 4)] >> 8;
  const uint32_t* b = w + 4 * (r - 64);
  return ((b[0] & 0xffu) << 16) | ((b[1] & 0xffu) << 8) | (b[2] & 0xffu);
}

static void uniform_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t s0 = g0 / kUniSE;
  const int skip = static_cast<int>(g0 - kUniSE * s0);
  const int nsb = (skip + n + kUniSE - 1) / kUniSE;
  philox_words(seed, stream, kUniSB * s0, kUniSB * nsb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  for (int i = 0; i < n; ++i) {
    const int e = skip + i;
    const uint32_t x = uniform24(w + 4 * kUniSB * (e / kUniSE), e % kUniSE);
    const float u = static_cast<float>(static_cast<int32_t>(x)) * 5.9604644775390625e-08f;
    out[i] = clampf(shift + scale * u, lo, hi);
  }
}

static void normal_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  alignas(64) uint32_t w[kWordBuf];
  alignas(64) float z[kChunk + 8];
  const uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  philox_words(seed, stream, b0, nb, w);
  const int npairs = 2 * nb;
  for (int j = 0; j < npairs; ++j) {
    // u1 in (0, 1]: 31 random bits plus half an ulp, never 0 (log follows).
    const float u1 = static_cast<float>(static_cast<int32_t>(w[2 * j] >> 1)) * 4.656612873077392578125e-10f +
                     2.3283064365386962890625e-10f;
    const float r = std::sqrt(-2.0f * detmath::log_f32(u1));
    float s, c;
    detmath::sincos_2pi_u24(w[2 * j + 1] >> 8, s, c);
    z[2 * j] = r * c;
    z[2 * j + 1] = r * s;
  }
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float* zs = z + skip;
  for (int i = 0; i < n; ++i) out[i] = shift + scale * zs[i];
}

static void trunc_f32(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, float* out) {
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  if (kp.exact) {  // the hard regimes: exact rejection from each element's own counters
    const tnr::Plan pl = tnr::plan(kp.alpha, kp.beta);
    for (int i = 0; i < n; ++i) {
      const double x = tnr::sample(pl, seed, stream, g0 + static_cast<uint64_t>(i));
      out[i] = clampf(static_cast<float>(kp.shift + kp.scale * x), lo, hi);
    }
    return;
  }
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t b0 = g0 >> 2;
  const int skip = static_cast<int>(g0 & 3u);
  const int nb = (skip + n + 3) >> 2;
  philox_words(seed, stream, b0, nb, w);
  const uint32_t* ws = w + skip;
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
  alignas(64) double z[kChunk + 8];
  const uint64_t b0 = g0 >> 1;
  const int skip = static_cast<int>(g0 & 1u);
  const int nb = (skip + n + 1) >> 1;
  W(seed, stream, b0, nb, w);
  for (int j = 0; j < nb; ++j) {
    const double u1 = (static_cast<double>(static_cast<int64_t>(word64(w, 2 * j) >> 11)) + 0.5) * 1.1102230246251565404e-16;
    const double r = std::sqrt(-2.0 * detmath::log_f64(u1));
    double s, c;
    detmath::sincos_2pi_u53(word64(w, 2 * j + 1) >> 11, s, c);
    z[2 * j] = r * c;
    z[2 * j + 1] = r * s;
  }
  const double* zs = z + skip;
  for (int i = 0; i < n; ++i) out[i] = kp.shift + kp.scale * zs[i];
}

// float64: every regime by exact rejection (truncnorm_reject.hpp) from each element's own
// counters; cheaper than the double-precision inverse (a series and a Halley step per value).
static void trunc_f64(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, double* out) {
  const tnr::Plan pl = tnr::plan(kp.alpha, kp.beta);
  for (int i = 0; i < n; ++i) {
    const double x = tnr::sample(pl, seed, stream, g0 + static_cast<uint64_t>(i));
    out[i] = clampd(kp.shift + kp.scale * x, kp.lo, kp.hi);
  }
}

static void to_f16(const float* in, uint16_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = lowp::f16_from_f32(in[i]);
}
static void to_bf16(const float* in, uint16_t* out, int n) {
  for (int i = 0; i < n; ++i) out[i] = lowp::bf16_from_f32(in[i]);
}

// float16 / bfloat16 uniform: 16 random bits per element, eight elements per block, in lane-major
// super-blocks of 16 blocks (128 elements), so vector paths store without transposing: element
// 128 s + 32 k + 2 j + h (k < 4, j < 16, h < 2) takes half h (0 = the low 16 bits) of word k of
// block 16 s + j; u = h 2^-16. (The two halves of a word stay neighbours, as in memory.)
constexpr int kU16SE = 128;  // elements per super-block (16 blocks)

static inline uint32_t uniform16_bits(const uint32_t* w, int r) {  // w: the super-block's 64 words
  return (w[4 * ((r >> 1) & 15) + (r >> 5)] >> (16 * (r & 1))) & 0xffffu;
}

template <bool BF16>
static void uniform16(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, uint16_t* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t s0 = g0 / kU16SE;
  const int skip = static_cast<int>(g0 - kU16SE * s0);
  const int nsb = (skip + n + kU16SE - 1) / kU16SE;
  philox_words(seed, stream, kUniSB * s0, kUniSB * nsb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  const float lo = static_cast<float>(kp.lo), hi = static_cast<float>(kp.hi);
  for (int i = 0; i < n; ++i) {
    const int e = skip + i;
    const uint32_t h = uniform16_bits(w + 4 * kUniSB * (e / kU16SE), e % kU16SE);
    const float u = static_cast<float>(static_cast<int32_t>(h)) * 1.52587890625e-05f;
    const float y = clampf(shift + scale * u, lo, hi);
    out[i] = BF16 ? lowp::bf16_from_f32(y) : lowp::f16_from_f32(y);
  }
}

// float16 / bfloat16 normal: one 32-bit word per Box-Muller pair, in the 16-bit uniform's
// lane-major super-blocks: element 128 s + 32 k + 2 j + h (h = 0: r cos, 1: r sin) uses word k of
// block 16 s + j, pair p = 64 s + 16 k + j. The word's top 18 bits give u1 = (m + 1/2) 2^-18 and
// its low 14 bits the angle (a + 1/2) 2^-14 turns. Pairs with m < 512 (probability 2^-9: the tail
// r > 3.53) refine u1 with a word of their own, block 2^62 + p of the same stream:
// u1 = (m + (2 (x >> 9) + 1) 2^-24) 2^-18, so the tail reaches 7.6 sigma with a resolution far
// below the 16-bit spacing. Half the random bits of the float32 route, which no 16-bit output
// can tell apart (14 angle bits: 4e-4 rad, below float16's relative spacing).
constexpr std::uint64_t kNormal16Fallback = std::uint64_t{1} << 62;

static inline float normal16_u1(uint64_t seed, uint64_t stream, uint32_t w, uint64_t pair) {
  const uint32_t m = w >> 14;
  float f = 0.5f;
  if (m < 512u) {
    const uint32_t x = philox_block(seed, stream, kNormal16Fallback + pair)[0];
    f = static_cast<float>(static_cast<int32_t>(((x >> 9) << 1) | 1u)) * 5.9604644775390625e-08f;
  }
  return (static_cast<float>(static_cast<int32_t>(m)) + f) * 3.814697265625e-06f;  // 2^-18
}

template <bool BF16>
static void normal16(const KParams& kp, uint64_t seed, uint64_t stream, uint64_t g0, int n, uint16_t* out) {
  alignas(64) uint32_t w[kWordBuf];
  const uint64_t s0 = g0 / kU16SE;
  const int skip = static_cast<int>(g0 - kU16SE * s0);
  const int nsb = (skip + n + kU16SE - 1) / kU16SE;
  philox_words(seed, stream, kUniSB * s0, kUniSB * nsb, w);
  const float shift = static_cast<float>(kp.shift), scale = static_cast<float>(kp.scale);
  float z[2] = {0.0f, 0.0f};
  int last = -1;  // the pair whose two values are in z
  for (int i = 0; i < n; ++i) {
    const int e = skip + i, sb = e / kU16SE, r = e % kU16SE;
    const int k = r >> 5, j = (r >> 1) & 15;
    if (e >> 1 != last) {
      last = e >> 1;
      const uint32_t wd = w[4 * kUniSB * sb + 4 * j + k];
      const uint64_t pair = 64 * (s0 + static_cast<uint64_t>(sb)) + static_cast<uint64_t>(16 * k + j);
      const float rad = std::sqrt(-2.0f * detmath::log_f32(normal16_u1(seed, stream, wd, pair)));
      float sn, cs;
      detmath::sincos_2pi_u24(((wd & 0x3fffu) << 10) | 0x200u, sn, cs);
      z[0] = rad * cs;
      z[1] = rad * sn;
    }
    const float y = shift + scale * z[e & 1];
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
