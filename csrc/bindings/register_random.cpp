// Bindings for Philox and the random fills: validate the buffer, release the GIL, call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "initlab/detmath.hpp"
#include "initlab/distributions.hpp"
#include "initlab/parallel.hpp"
#include "initlab/philox.hpp"

namespace py = pybind11;
using initlab_bind::isa_from_int;
using initlab_bind::writable_view;

namespace {

void fill_array(py::array arr, int dtype_code, int dist_code, double p0, double p1, double lo, double hi,
                std::uint64_t seed, std::uint64_t stream, std::vector<std::int64_t> gstrides, std::uint64_t gbase,
                int n_threads, int isa) {
  if (dtype_code < 0 || dtype_code > 3) throw py::value_error("unknown dtype code");
  if (dist_code < 0 || dist_code > 3) throw py::value_error("unknown distribution code");
  const auto dt = static_cast<initlab::DType>(dtype_code);
  initlab_bind::ArrayView v = writable_view(arr, dt);
  if (gstrides.size() != v.shape.size()) throw py::value_error("global strides must have one entry per dimension");
  initlab::Destination d{v.data, dt, static_cast<int>(v.shape.size()), v.shape.data(), v.strides.data(),
                         gstrides.data(), gbase};
  initlab::Sampler s{static_cast<initlab::Dist>(dist_code), p0, p1, lo, hi};
  initlab::Exec ex{n_threads < 1 ? 1 : n_threads, isa_from_int(isa)};
  // Safe without the GIL: the core touches only the raw buffer and plain values.
  initlab_bind::run_interruptible([&] { initlab::fill(d, s, {seed, stream}, ex); });
}

py::array_t<double> eval_detmath(const std::string& name, py::array_t<double, py::array::c_style | py::array::forcecast> x) {
  auto out = py::array_t<double>(x.size());
  const double* in = x.data();
  double* o = out.mutable_data();
  namespace dm = initlab::detmath;
  for (py::ssize_t i = 0; i < x.size(); ++i) {
    const double v = in[i];
    if (name == "log_f32") o[i] = dm::log_f32(static_cast<float>(v));
    else if (name == "log_f64") o[i] = dm::log_f64(v);
    else if (name == "exp_f64") o[i] = dm::exp_f64(v);
    else if (name == "ndtri_lower_f32") o[i] = dm::ndtri_lower<float>(static_cast<float>(v));
    else if (name == "ndtri_lower_f64") o[i] = dm::ndtri_lower<double>(v);
    else if (name == "log_ndtr") o[i] = initlab::log_ndtr(v);
    else if (name == "sin2pi_u24" || name == "cos2pi_u24") {
      float s, c;
      dm::sincos_2pi_u24(static_cast<std::uint32_t>(v), s, c);
      o[i] = name[0] == 's' ? s : c;
    } else if (name == "sin2pi_u53" || name == "cos2pi_u53") {
      double s, c;
      dm::sincos_2pi_u53(static_cast<std::uint64_t>(v), s, c);
      o[i] = name[0] == 's' ? s : c;
    } else {
      throw py::value_error("unknown function " + name);
    }
  }
  return out;
}

}  // namespace

void register_random(py::module_& m) {
  m.def("philox4x32_10",
        [](std::array<std::uint32_t, 4> ctr, std::array<std::uint32_t, 2> key) { return initlab::philox4x32_10(ctr, key); },
        py::arg("ctr"), py::arg("key"), "Philox4x32-10 of one counter under one key (4 words).");
  m.def("fill", &fill_array, py::arg("out").noconvert(), py::arg("dtype"), py::arg("dist"), py::arg("p0"),
        py::arg("p1"), py::arg("lo"), py::arg("hi"), py::arg("seed"), py::arg("stream"), py::arg("gstrides"),
        py::arg("gbase"), py::arg("n_threads"), py::arg("isa"),
        "Fill `out` in place (any strides); element values depend only on their global index.");
  m.def(
      "prepare_sampler",
      [](int dtype_code, int dist_code, double p0, double p1, double lo, double hi) {
        if (dtype_code < 0 || dtype_code > 3) throw py::value_error("unknown dtype code");
        if (dist_code < 0 || dist_code > 3) throw py::value_error("unknown distribution code");
        const initlab::Prepared p = initlab::prepare_sampler(
            initlab::Sampler{static_cast<initlab::Dist>(dist_code), p0, p1, lo, hi}, static_cast<initlab::DType>(dtype_code));
        py::dict d;
        d["shift"] = p.shift; d["scale"] = p.scale; d["lo"] = p.lo; d["hi"] = p.hi;
        d["alpha"] = p.alpha; d["beta"] = p.beta; d["pa"] = p.pa; d["qb"] = p.qb; d["m"] = p.m;
        d["exact"] = p.exact; d["has_constant"] = p.has_constant; d["constant"] = p.constant;
        d["mode"] = p.mode; d["flip"] = p.flip; d["a"] = p.a; d["b"] = p.b; d["c"] = p.c; d["lb"] = p.lb;
        d["lam"] = p.lam;
        return d;
      },
      py::arg("dtype"), py::arg("dist"), py::arg("p0"), py::arg("p1"), py::arg("lo"), py::arg("hi"),
      "Validate a sampler for a dtype as fill() does and return the parameters it derives (for device kernels).");
  m.def("serial_after_fork", &initlab::serial_after_fork,
        "Whether this process was forked after a multi-threaded region (every call is then serial).");
  m.def("openmp_enabled", &initlab::openmp_enabled, "Whether the core was built with OpenMP.");
  m.def("max_threads", &initlab::max_threads, "omp_get_max_threads() in the calling thread (1 without OpenMP).");
  m.def("num_procs", &initlab::num_procs, "Processors available to OpenMP.");
  m.def(
      "prefault_write",
      [](py::array arr) {
        if (!arr.writeable()) throw py::value_error("prefault_write needs a writable array");
        if (!(arr.flags() & py::array::c_style)) throw py::value_error("prefault_write needs a C-contiguous array");
        void* p = arr.mutable_data();
        const std::size_t n = static_cast<std::size_t>(arr.nbytes());
        py::gil_scoped_release release;
        return initlab::prefault_write(p, n);
      },
      py::arg("array"),
      "Fault in a contiguous array's pages for writing (madvise MADV_POPULATE_WRITE); no byte changes. "
      "False where unsupported. What large contiguous fills do per task before writing (for tests).");
  m.def("isa_supported", [](int i) { return initlab::isa_supported(isa_from_int(i)); }, py::arg("isa"),
        "Whether this build and CPU can run SIMD path `isa` (0 scalar, 1 sse2, 2 avx2, 3 avx512).");
  m.def("best_isa", []() { return static_cast<int>(initlab::best_isa()); }, "The fastest SIMD path this CPU runs.");
  m.def("eval_detmath", &eval_detmath, py::arg("name"), py::arg("x"),
        "Evaluate one of the core's deterministic math functions elementwise (for tests).");
}
