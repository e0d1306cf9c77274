// Bindings for the one-pass statistics: read the (possibly read-only) input's memory in place,
// release the GIL, reduce, and return the raw per-slice figures as NumPy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "initlab/stats.hpp"

namespace py = pybind11;
using initlab_bind::dtype_itemsize;
using initlab_bind::isa_from_int;

namespace {

py::dict reduce_stats(py::array a, int dtype_code, std::vector<int> reduce, int n_threads, int isa) {
  if (dtype_code < 0 || dtype_code > 3) throw py::value_error("unknown dtype code " + std::to_string(dtype_code));
  const auto dt = static_cast<initlab::DType>(dtype_code);
  const auto isz = static_cast<py::ssize_t>(dtype_itemsize(dt));
  if (a.itemsize() != isz)
    throw py::type_error("input item size " + std::to_string(a.itemsize()) + " does not match the dtype code");
  if (static_cast<py::ssize_t>(reduce.size()) != a.ndim())
    throw py::value_error("reduce flags must have one entry per dimension");
  if (a.size() > 0 && reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(isz) != 0)
    throw py::value_error("input array is not aligned");
  std::vector<std::int64_t> shape, strides;
  std::vector<unsigned char> red;
  std::vector<py::ssize_t> out_shape;
  py::ssize_t n_slices = 1;
  for (py::ssize_t k = 0; k < a.ndim(); ++k) {
    if (a.strides(k) % isz != 0) throw py::value_error("input strides must be a multiple of the item size");
    shape.push_back(a.shape(k));
    strides.push_back(a.strides(k) / isz);
    red.push_back(reduce[static_cast<std::size_t>(k)] ? 1 : 0);
    if (!reduce[static_cast<std::size_t>(k)]) {
      out_shape.push_back(a.shape(k));
      n_slices *= a.shape(k);
    }
  }
  py::array_t<std::int64_t> finite(n_slices), zeros(n_slices);
  py::array_t<double> mean(n_slices), m2(n_slices), mn(n_slices), mx(n_slices);
  initlab::StatsInput in{a.data(), dt, static_cast<int>(a.ndim()), shape.data(), strides.data()};
  initlab::StatsOutput out{finite.mutable_data(), zeros.mutable_data(), mean.mutable_data(),
                           m2.mutable_data(),     mn.mutable_data(),    mx.mutable_data()};
  const initlab::Exec ex{n_threads < 1 ? 1 : n_threads, isa_from_int(isa)};
  // Safe without the GIL: the core reads raw memory and writes the freshly allocated outputs.
  initlab_bind::run_interruptible([&] { initlab::compute_stats(in, red.data(), out, ex); });
  py::dict d;
  d["finite"] = finite;
  d["zeros"] = zeros;
  d["mean"] = mean;
  d["m2"] = m2;
  d["min"] = mn;
  d["max"] = mx;
  return d;
}

std::uint64_t read_probe(py::array a, int n_threads) {
  if (!(a.flags() & py::array::c_style)) throw py::value_error("read_probe needs a C-contiguous array");
  const void* p = a.data();
  const auto n = static_cast<std::int64_t>(a.nbytes());
  py::gil_scoped_release release;  // raw reads only
  return initlab::read_probe(p, n, n_threads < 1 ? 1 : n_threads);
}

}  // namespace

void register_stats(py::module_& m) {
  m.def("reduce_stats", &reduce_stats, py::arg("a").noconvert(), py::arg("dtype"), py::arg("reduce"),
        py::arg("n_threads"), py::arg("isa"),
        R"pbdoc(One-pass statistics of `a` over the axes flagged in `reduce` (any strides, read in place).

Returns a dict of flat arrays (one entry per kept slice, C order): finite, zeros (int64) and
mean, m2, min, max (float64, over the finite elements; NaN where a slice has none).)pbdoc");
  m.def("read_probe", &read_probe, py::arg("a").noconvert(), py::arg("n_threads"),
        "Read every byte of a C-contiguous array on n_threads threads (a read-bandwidth probe); returns a checksum.");
}
