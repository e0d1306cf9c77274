// The fill driver: validates parameters, walks any n-d destination layout in logical order,
// splits the work into fixed tasks for the thread team and converts to the output dtype.
// Which value lands at an element depends only on its global index, never on the task split.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "initlab/distributions.hpp"
#include "initlab/errors.hpp"
#include "initlab/lowp.hpp"
#include "initlab/parallel.hpp"
#include "kernels.hpp"
#include "truncnorm_exact.hpp"
#include "truncnorm_reject.hpp"

namespace initlab {
namespace {

using detail::KParams;
using detail::kChunk;

constexpr std::int64_t kTask = std::int64_t{1} << 16;      // elements per parallel task
constexpr std::int64_t kSerialBelow = std::int64_t{1} << 15;  // small fills stay on one thread

const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
  }
  return "?";
}

std::string num(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// double -> float rounded to nearest as IEEE does, +-inf beyond the float range. A plain cast of
// an out-of-range double is undefined behaviour in C++ (UBSan's float-cast-overflow).
inline float f32_of(double v) {
  constexpr double kOverflow = 3.4028235677973366e38;  // FLT_MAX + half an ulp: rounds to inf
  if (v >= kOverflow) return HUGE_VALF;
  if (v <= -kOverflow) return -HUGE_VALF;
  return static_cast<float>(v);
}

// Representable neighbours in the output dtype, as doubles.
double to_dtype(DType d, double v) {
  switch (d) {
    case DType::f64: return v;
    case DType::f32: return static_cast<double>(f32_of(v));
    case DType::f16: return lowp::f16_to_f32(lowp::f16_from_f32(f32_of(v)));
    case DType::bf16: return lowp::bf16_to_f32(lowp::bf16_from_f32(f32_of(v)));
  }
  return v;
}

double step(DType d, double v, bool up) {
  const double inf = std::numeric_limits<double>::infinity();
  switch (d) {
    case DType::f64: return std::nextafter(v, up ? inf : -inf);
    case DType::f32: return static_cast<double>(std::nextafter(f32_of(v), up ? HUGE_VALF : -HUGE_VALF));
    case DType::f16:
    case DType::bf16: {
      const bool is16 = d == DType::f16;
      auto enc = [&](float f) { return is16 ? lowp::f16_from_f32(f) : lowp::bf16_from_f32(f); };
      auto dec = [&](std::uint16_t h) { return is16 ? lowp::f16_to_f32(h) : lowp::bf16_to_f32(h); };
      std::uint16_t h = enc(f32_of(v));
      if (v == 0.0) return up ? dec(1) : -static_cast<double>(dec(1));
      const bool neg = (h & 0x8000u) != 0;
      h = static_cast<std::uint16_t>((neg != up) ? h + 1 : h - 1);
      return dec(h);
    }
  }
  return v;
}

double max_finite(DType d) {
  switch (d) {
    case DType::f64: return std::numeric_limits<double>::max();
    case DType::f32: return static_cast<double>(std::numeric_limits<float>::max());
    case DType::f16: return 65504.0;
    case DType::bf16: return static_cast<double>(lowp::bf16_to_f32(0x7f7f));
  }
  return std::numeric_limits<double>::max();
}

double smallest_at_least(DType d, double a) {
  if (std::isinf(a)) return a;
  double r = to_dtype(d, a);
  if (r < a) r = step(d, r, true);
  return r;
}
double largest_at_most(DType d, double b) {
  if (std::isinf(b)) return b;
  double r = to_dtype(d, b);
  if (r > b) r = step(d, r, false);
  return r;
}

constexpr double kFar = 1e150;  // standardized bounds beyond this are "infinitely" far

// Validates the sampler for dtype `d`. `*constant` becomes finite when every sample is one value.
KParams prepare(const Sampler& s, DType d, double* constant) {
  *constant = std::numeric_limits<double>::quiet_NaN();
  KParams kp;
  const double inf = std::numeric_limits<double>::infinity();
  switch (s.dist) {
    case Dist::uniform: {
      const double a = s.p0, b = s.p1;
      INITLAB_REQUIRE(std::isfinite(a) && std::isfinite(b),
              "uniform_ expects finite bounds, got a=" + num(a) + ", b=" + num(b));
      INITLAB_REQUIRE(a <= b, "uniform_ expects a <= b (values in [a, b)), got a=" + num(a) + " > b=" + num(b));
      kp.shift = a;
      kp.scale = b - a;
      INITLAB_REQUIRE(std::isfinite(d == DType::f64 ? kp.scale : static_cast<double>(f32_of(kp.scale))),
              std::string("uniform_: b - a overflows the ") + (d == DType::f64 ? "float64" : "float32") +
                  " arithmetic (a=" + num(a) + ", b=" + num(b) + ")");
      if (a == b) {
        kp.lo = kp.hi = to_dtype(d, a);  // the degenerate interval: every value is a
        INITLAB_REQUIRE(std::isfinite(kp.lo), std::string("uniform_: a = b = ") + num(a) + " is beyond the finite range of " +
                                          dtype_name(d) + " (largest " + num(max_finite(d)) + ")");
      } else {
        kp.lo = smallest_at_least(d, a);
        const double hb = largest_at_most(d, b);
        kp.hi = (hb == b) ? step(d, hb, false) : hb;  // strictly below b
      }
      INITLAB_REQUIRE(kp.lo <= kp.hi, std::string("uniform_: no ") + dtype_name(d) + " value lies in [" + num(a) + ", " +
                                  num(b) + ")");
      break;
    }
    case Dist::normal: {
      INITLAB_REQUIRE(std::isfinite(s.p0), "normal_ expects a finite mean, got mean=" + num(s.p0));
      INITLAB_REQUIRE(std::isfinite(s.p1) && s.p1 >= 0.0, "normal_ expects std >= 0.0 and finite, got std=" + num(s.p1));
      kp.shift = s.p0;
      kp.scale = s.p1;
      // Low-precision outputs are computed in float32: the parameters must be finite there.
      INITLAB_REQUIRE(d == DType::f64 || (std::isfinite(f32_of(s.p0)) && std::isfinite(f32_of(s.p1))),
              "normal_: mean=" + num(s.p0) + " and std=" + num(s.p1) + " must be finite in float32 for a " +
                  dtype_name(d) + " destination");
      // Box-Muller's radius is at most sqrt(-2 log u1_min): 6.6604 for float32 words (u1 >= 2^-32),
      // 7.6310 for the 16-bit route's refined tail (u1 >= 2^-42), 8.6521 for float64 (u1 >= 2^-54),
      // so every sample is finite exactly when this holds.
      const double zmax = d == DType::f64 ? 8.653 : (d == DType::f32 ? 6.661 : 7.632);
      INITLAB_REQUIRE(std::fabs(s.p0) + zmax * s.p1 <= max_finite(d),
              "normal_: mean=" + num(s.p0) + ", std=" + num(s.p1) + " can give samples beyond the finite range of " +
                  dtype_name(d) + " (|mean| + " + num(zmax) + " std must be <= " + num(max_finite(d)) + ")");
      kp.lo = -inf;
      kp.hi = inf;
      break;
    }
    case Dist::trunc_normal: {
      const double mean = s.p0, sd = s.p1, a = s.lo, b = s.hi;
      INITLAB_REQUIRE(std::isfinite(mean), "trunc_normal_ expects a finite mean, got mean=" + num(mean));
      INITLAB_REQUIRE(std::isfinite(sd) && sd > 0.0, "trunc_normal_ expects std > 0.0 and finite, got std=" + num(sd));
      INITLAB_REQUIRE(!std::isnan(a) && !std::isnan(b), "trunc_normal_ expects bounds that are not NaN, got a=" + num(a) +
                                                    ", b=" + num(b));
      INITLAB_REQUIRE(a < b, "trunc_normal_ expects a < b, got a=" + num(a) + ", b=" + num(b));
      INITLAB_REQUIRE(d == DType::f64 || (std::isfinite(f32_of(mean)) && std::isfinite(f32_of(sd))),
              "trunc_normal_: mean=" + num(mean) + " and std=" + num(sd) + " must be finite in float32 for a " +
                  dtype_name(d) + " destination");
      // The samples must be finite in the output dtype: the interval is cut to its finite range,
      // so an infinite bound never lets a value round to +-inf (e.g. float16 with mean 1e5).
      const double top = max_finite(d);
      const double ae = std::max(a, -top), be = std::min(b, top);
      INITLAB_REQUIRE(ae < be, std::string("trunc_normal_: no finite ") + dtype_name(d) + " value lies in [" + num(a) + ", " +
                           num(b) + "]; the interval has no representable mass");
      kp.shift = mean;
      kp.scale = sd;
      kp.alpha = (ae - mean) / sd;
      kp.beta = (be - mean) / sd;
      INITLAB_REQUIRE(kp.alpha < kp.beta, "trunc_normal_: the interval [a, b] = [" + num(a) + ", " + num(b) +
                                      "] is empty after standardizing by std=" + num(sd));
      kp.lo = smallest_at_least(d, ae);
      kp.hi = largest_at_most(d, be);
      INITLAB_REQUIRE(kp.lo <= kp.hi, std::string("trunc_normal_: no ") + dtype_name(d) + " value lies in [" + num(a) +
                                  ", " + num(b) + "]; the interval has no representable mass");
      // Beyond kFar standard deviations log Phi would overflow (x^2). An interval entirely that
      // far on one side holds its mass within std / kFar of its near end: every sample is that
      // end. A bound that far with the other one near adds no mass: it is moved in to kFar.
      if (kp.alpha >= kFar) {
        *constant = kp.lo;
        break;
      }
      if (kp.beta <= -kFar) {
        *constant = kp.hi;
        break;
      }
      kp.alpha = std::max(kp.alpha, -kFar);
      kp.beta = std::min(kp.beta, kFar);
      // log Phi(alpha), log Phi(beta), log Phi(-alpha), log Phi(-beta)
      const double la = detail::log_ndtr_impl(kp.alpha), lb = detail::log_ndtr_impl(kp.beta);
      const double lca = detail::log_ndtr_impl(-kp.alpha), lcb = detail::log_ndtr_impl(-kp.beta);
      kp.pa = detmath::exp_f64(la);
      kp.qb = detmath::exp_f64(lcb);
      if (kp.beta <= 0.0) {
        kp.m = detmath::exp_f64(lb) - kp.pa;
      } else if (kp.alpha >= 0.0) {
        kp.m = detmath::exp_f64(lca) - kp.qb;
      } else {
        kp.m = 1.0 - kp.pa - kp.qb;
      }
      // float32/float16/bfloat16 take the float32 inverse CDF only where its p-values
      // p = Phi(alpha) + u m resolve the interval (a side is used when its tail probability is
      // below 1/2; the smallest p must be in the inverse's range, >= 1e-8); everything else, and
      // every float64 interval, is sampled by exact rejection (truncnorm_reject.hpp).
      auto ok_side = [&](double p_side) {
        if (p_side >= 0.5) return true;
        return std::min(0.5, p_side + kp.m) <= 16.0 * kp.m && p_side + 5.9604644775390625e-08 * kp.m >= 1e-8;
      };
      kp.exact = d == DType::f64 || !(kp.m >= 1e-30 && ok_side(kp.pa) && ok_side(kp.qb));
      break;
    }
    case Dist::constant:
      // As every sampler: a finite value that overflows the dtype (written as inf) is refused;
      // inf and NaN passed as such are written as they are (torch's constant_ accepts them).
      INITLAB_REQUIRE(!std::isfinite(s.p0) || std::isfinite(to_dtype(d, s.p0)),
              "constant_: val=" + num(s.p0) + " overflows " + dtype_name(d) + " (largest " + num(max_finite(d)) +
                  "; it would be written as inf); pass a value within the dtype's range, or inf explicitly");
      break;
  }
  return kp;
}

struct Walker {
  const Destination& dst;
  int nd;
  std::vector<std::int64_t> shape, strides, gstrides;
  std::int64_t total = 1;
  std::int64_t n_last = 1;

  explicit Walker(const Destination& d) : dst(d), nd(d.ndim) {
    INITLAB_REQUIRE(d.ndim >= 0 && d.ndim <= 64, "ndim must be in [0, 64], got " + std::to_string(d.ndim));
    if (nd == 0) {
      shape = {1};
      strides = {0};
      gstrides = {1};
      nd = 1;
    } else {
      shape.assign(d.shape, d.shape + nd);
      strides.assign(d.strides, d.strides + nd);
      gstrides.assign(d.gstrides, d.gstrides + nd);
    }
    for (std::int64_t s : shape) {
      INITLAB_REQUIRE(s >= 0, "negative dimension " + std::to_string(s));
      total *= s;
    }
    // Merge a dimension into the next one where both memory and global index run on contiguously
    // (a C-contiguous tensor becomes one long run instead of one run per row): fewer, longer runs,
    // the same element -> (memory, global index) map.
    if (total > 0) {
      for (int k = nd - 2; k >= 0; --k) {
        const std::size_t a = static_cast<std::size_t>(k), b = a + 1;
        if (strides[a] == strides[b] * shape[b] && gstrides[a] == gstrides[b] * shape[b]) {
          strides[a] = strides[b];
          gstrides[a] = gstrides[b];
          shape[a] *= shape[b];
          shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(b));
          strides.erase(strides.begin() + static_cast<std::ptrdiff_t>(b));
          gstrides.erase(gstrides.begin() + static_cast<std::ptrdiff_t>(b));
          --nd;
        }
      }
    }
    n_last = shape[static_cast<std::size_t>(nd - 1)];
  }

  // Position of logical element e of the block: memory offset (elements) and global index.
  void locate(std::int64_t e, std::int64_t& mem, std::uint64_t& g) const {
    std::int64_t row = e / n_last;
    const std::int64_t col = e % n_last;
    mem = col * strides[static_cast<std::size_t>(nd - 1)];
    g = dst.gbase + static_cast<std::uint64_t>(col) * static_cast<std::uint64_t>(gstrides[static_cast<std::size_t>(nd - 1)]);
    for (int k = nd - 2; k >= 0; --k) {
      const std::int64_t idx = row % shape[static_cast<std::size_t>(k)];
      row /= shape[static_cast<std::size_t>(k)];
      mem += idx * strides[static_cast<std::size_t>(k)];
      g += static_cast<std::uint64_t>(idx) * static_cast<std::uint64_t>(gstrides[static_cast<std::size_t>(k)]);
    }
  }

  // Calls run(g, mem, len, stride_last) for every contiguous-in-g run of the task's elements.
  template <class F>
  void for_runs(std::int64_t e0, std::int64_t e1, F&& run) const {
    std::int64_t e = e0;
    const std::int64_t sl = strides[static_cast<std::size_t>(nd - 1)];
    while (e < e1) {
      std::int64_t mem;
      std::uint64_t g;
      locate(e, mem, g);
      const std::int64_t col = e % n_last;
      const std::int64_t len = std::min(n_last - col, e1 - e);
      run(g, mem, len, sl);
      e += len;
    }
  }
};

std::size_t itemsize(DType d) { return (d == DType::f64) ? 8 : (d == DType::f32 ? 4 : 2); }

// Contiguous destinations at least this large have each task's pages faulted in by one
// prefault_write call just before the task writes them (fewer traps than one fault per page;
// only pages the task writes anyway, so a file-backed or larger-than-memory mapping is never
// populated ahead of its writes). Measured on the 0.95 B-parameter model's materialize (2
// threads, this VM): fill time 6.3 -> 5.1 s median, system time 1.5 -> 0.95 s. (Transparent
// huge pages for the same ranges were tried and rejected: 3x slower here, where fresh 2 MiB
// blocks come back from the host's free-page reporting.)
constexpr std::size_t kPrefaultBytes = std::size_t{8} << 20;

template <class F>
void run_tasks(const Walker& w, const Exec& ex, char* base, std::size_t isz, F&& body) {
  const std::int64_t n_tasks = (w.total + kTask - 1) / kTask;
  const int nt = w.total < kSerialBelow ? 1 : ex.n_threads;
  const bool contiguous = w.nd == 1 && w.strides[0] == 1;
  const bool prefault = contiguous && static_cast<std::size_t>(w.total) * isz >= kPrefaultBytes;
  parallel_for(n_tasks, nt, [&](std::int64_t t) {
    const std::int64_t e0 = t * kTask;
    const std::int64_t e1 = std::min(w.total, e0 + kTask);
    if (prefault) prefault_write(base + e0 * static_cast<std::int64_t>(isz), static_cast<std::size_t>(e1 - e0) * isz);
    w.for_runs(e0, e1, body);
  });
}

}  // namespace

void fill(const Destination& dst, const Sampler& s, RngCoord rc, Exec ex) {
  const Walker w(dst);
  double degenerate;
  const KParams kp = prepare(s, dst.dtype, &degenerate);
  if (w.total == 0) return;
  INITLAB_REQUIRE(dst.data != nullptr, "null destination pointer");
  char* base = static_cast<char*>(dst.data);
  const std::size_t isz = itemsize(dst.dtype);

  if (s.dist == Dist::constant || !std::isnan(degenerate)) {
    const double v = s.dist == Dist::constant ? s.p0 : degenerate;
    const float vf = f32_of(v);
    const std::uint16_t h = dst.dtype == DType::f16 ? lowp::f16_from_f32(vf) : lowp::bf16_from_f32(vf);
    run_tasks(w, ex, base, isz, [&](std::uint64_t, std::int64_t mem, std::int64_t len, std::int64_t sl) {
      char* p = base + mem * static_cast<std::int64_t>(isz);
      if (sl == 1) {  // contiguous run: a plain typed fill, which the compiler vectorizes
        switch (dst.dtype) {
          case DType::f64: std::fill_n(reinterpret_cast<double*>(p), len, v); break;
          case DType::f32: std::fill_n(reinterpret_cast<float*>(p), len, vf); break;
          default: std::fill_n(reinterpret_cast<std::uint16_t*>(p), len, h); break;
        }
        return;
      }
      for (std::int64_t i = 0; i < len; ++i) {
        char* q = p + i * sl * static_cast<std::int64_t>(isz);
        switch (dst.dtype) {
          case DType::f64: std::memcpy(q, &v, 8); break;
          case DType::f32: std::memcpy(q, &vf, 4); break;
          default: std::memcpy(q, &h, 2); break;
        }
      }
    });
    return;
  }

  // The truncated normal's rejection routes (float64, and the hard regimes) give element g the
  // counter blocks 2^63 + 256 g + attempt: distinct for every g < 2^55 (distributions.hpp).
  if (s.dist == Dist::trunc_normal && kp.exact) {
    std::uint64_t last = dst.gbase;
    for (int k = 0; k < w.nd; ++k)
      last += static_cast<std::uint64_t>(w.shape[static_cast<std::size_t>(k)] - 1) *
              static_cast<std::uint64_t>(w.gstrides[static_cast<std::size_t>(k)]);
    INITLAB_REQUIRE(last < (std::uint64_t{1} << 55),
            "trunc_normal_: global element indices must stay below 2^55 for this interval/dtype (got " +
                std::to_string(last) + ")");
  }

  const detail::KernelTable& kt = detail::kernels_for(ex.isa);
  detail::GenF32 g32 = s.dist == Dist::uniform ? kt.uniform_f32 : (s.dist == Dist::normal ? kt.normal_f32 : kt.trunc_f32);
  detail::GenF64 g64 = s.dist == Dist::uniform ? kt.uniform_f64 : (s.dist == Dist::normal ? kt.normal_f64 : kt.trunc_f64);
  const DType dt = dst.dtype;
  const std::uint64_t seed = rc.seed, stream = rc.stream;

  // Low-precision outputs: the kernel clamps to bounds that are representable in the output
  // format, and round-to-nearest-even is monotonic, so the rounded value stays in bounds.
  const bool bf = dt == DType::bf16;
  const detail::Gen16 g16 = s.dist == Dist::uniform ? (bf ? kt.uniform_bf16 : kt.uniform_f16)
                            : s.dist == Dist::normal ? (bf ? kt.normal_bf16 : kt.normal_f16)
                                                     : (bf ? kt.trunc_bf16 : kt.trunc_f16);

  // Contiguous runs are generated in place; strided ones through a chunk buffer, then scattered.
  auto emit = [&](auto gen, auto* tmp, char* p, std::int64_t sl, std::uint64_t gc, int n) {
    using T = std::remove_pointer_t<decltype(tmp)>;
    if (sl == 1) {
      gen(kp, seed, stream, gc, n, reinterpret_cast<T*>(p));
      return;
    }
    gen(kp, seed, stream, gc, n, tmp);
    for (int i = 0; i < n; ++i) std::memcpy(p + i * sl * static_cast<std::int64_t>(sizeof(T)), &tmp[i], sizeof(T));
  };

  run_tasks(w, ex, base, isz, [&](std::uint64_t g, std::int64_t mem, std::int64_t len, std::int64_t sl) {
    alignas(64) double td[kChunk];
    alignas(64) float tf[kChunk];
    alignas(64) std::uint16_t th[kChunk];
    // Chunks end at global multiples of kChunk: after the first, each starts on a block boundary
    // of every sampler, so no kernel recomputes a block its neighbour already drew.
    for (std::int64_t c = 0, n = 0; c < len; c += n) {
      const std::uint64_t gc = g + static_cast<std::uint64_t>(c);
      n = std::min<std::int64_t>(kChunk - static_cast<std::int64_t>(gc % kChunk), len - c);
      char* p = base + (mem + c * sl) * static_cast<std::int64_t>(isz);
      const int ni = static_cast<int>(n);
      if (dt == DType::f64) {
        emit(g64, td, p, sl, gc, ni);
      } else if (dt == DType::f32) {
        emit(g32, tf, p, sl, gc, ni);
      } else {
        emit(g16, th, p, sl, gc, ni);
      }
    }
  });
}

void fill_normal(float* out, std::int64_t n, RngCoord rc, std::uint64_t offset, float mean, float std, Exec ex) {
  const std::int64_t shape[1] = {n}, strides[1] = {1}, gstrides[1] = {1};
  Destination d{out, DType::f32, 1, shape, strides, gstrides, offset};
  fill(d, Sampler{Dist::normal, mean, std, 0, 0}, rc, ex);
}

void fill_normal(double* out, std::int64_t n, RngCoord rc, std::uint64_t offset, double mean, double std, Exec ex) {
  const std::int64_t shape[1] = {n}, strides[1] = {1}, gstrides[1] = {1};
  Destination d{out, DType::f64, 1, shape, strides, gstrides, offset};
  fill(d, Sampler{Dist::normal, mean, std, 0, 0}, rc, ex);
}

double log_ndtr(double x) { return detail::log_ndtr_impl(x); }

Prepared prepare_sampler(const Sampler& s, DType d) {
  double degenerate;
  const KParams kp = prepare(s, d, &degenerate);
  Prepared p;
  p.shift = kp.shift;
  p.scale = kp.scale;
  p.lo = kp.lo;
  p.hi = kp.hi;
  p.alpha = kp.alpha;
  p.beta = kp.beta;
  p.pa = kp.pa;
  p.qb = kp.qb;
  p.m = kp.m;
  p.exact = kp.exact;
  p.has_constant = s.dist == Dist::constant || !std::isnan(degenerate);
  p.constant = s.dist == Dist::constant ? s.p0 : (std::isnan(degenerate) ? 0.0 : degenerate);
  if (s.dist == Dist::trunc_normal && kp.exact && !p.has_constant) {
    const detail::tnr::Plan pl = detail::tnr::plan(kp.alpha, kp.beta);
    p.mode = pl.mode;
    p.flip = pl.flip;
    p.a = pl.a;
    p.b = pl.b;
    p.c = pl.c;
    p.lb = pl.lb;
    p.lam = pl.lam;
  }
  return p;
}

}  // namespace initlab
