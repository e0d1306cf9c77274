// Buffer checks shared by the binding files. The Python layer validates first with friendlier
// messages; these checks are the last line of defence before raw pointers reach the core.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "initlab/distributions.hpp"
#include "initlab/parallel.hpp"

namespace initlab_bind {

namespace py = pybind11;

inline std::size_t dtype_itemsize(initlab::DType d) {
  return d == initlab::DType::f64 ? 8 : (d == initlab::DType::f32 ? 4 : 2);
}

// Shape and element strides of a writable array whose item size matches `d`.
struct ArrayView {
  void* data = nullptr;
  std::vector<std::int64_t> shape, strides;
};

inline ArrayView writable_view(py::array& a, initlab::DType d) {
  if (!a.writeable()) throw py::value_error("destination array is read-only");
  const std::size_t isz = dtype_itemsize(d);
  if (static_cast<std::size_t>(a.itemsize()) != isz)
    throw py::type_error("destination item size " + std::to_string(a.itemsize()) + " does not match the dtype");
  if (reinterpret_cast<std::uintptr_t>(a.data()) % isz != 0) throw py::value_error("destination array is not aligned");
  ArrayView v;
  v.data = a.mutable_data();
  for (py::ssize_t k = 0; k < a.ndim(); ++k) {
    const auto st = a.strides(k);
    if (st % static_cast<py::ssize_t>(isz) != 0) throw py::value_error("destination strides are not a multiple of the item size");
    if (st == 0 && a.shape(k) > 1 && a.size() > 0) throw py::value_error("destination has overlapping elements (a zero stride)");
    v.shape.push_back(static_cast<std::int64_t>(a.shape(k)));
    v.strides.push_back(static_cast<std::int64_t>(st / static_cast<py::ssize_t>(isz)));
  }
  return v;
}

inline initlab::Isa isa_from_int(int i) {
  if (i < 0 || i > 3) throw py::value_error("unknown SIMD path code " + std::to_string(i));
  return static_cast<initlab::Isa>(i);
}

// Runs `f` without the GIL and with Ctrl-C honoured: between tasks the core asks (at most every
// 20 ms, on the calling thread) whether a signal arrived; a raised KeyboardInterrupt (or whatever
// the Python signal handler raises) stops the remaining tasks and propagates. What the finished
// tasks wrote stays written.
template <class F>
void run_interruptible(F&& f) {
  using clock = std::chrono::steady_clock;
  initlab::Cancel cancel;
  auto last = clock::now();
  cancel.poll = [&last]() {
    const auto now = clock::now();
    if (now - last < std::chrono::milliseconds(20)) return false;
    last = now;
    py::gil_scoped_acquire gil;
    return PyErr_CheckSignals() != 0;
  };
  bool interrupted = false;
  {
    initlab::CancelScope scope(&cancel);
    py::gil_scoped_release release;
    try {
      f();
    } catch (const initlab::Interrupted&) {
      interrupted = true;
    }
  }
  if (interrupted) {
    if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }
}

}  // namespace initlab_bind
