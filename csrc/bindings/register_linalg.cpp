// Bindings for the Householder code (orthogonal, householder_qr) and the GEMM kernel:
// validate the buffers, release the GIL, call the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "buffer.hpp"
#include "initlab/distributions.hpp"
#include "initlab/gemm.hpp"
#include "initlab/orthogonal.hpp"

namespace py = pybind11;
using initlab_bind::isa_from_int;

namespace {

using i64 = std::int64_t;

initlab::Exec make_exec(int n_threads, int isa) { return initlab::Exec{n_threads < 1 ? 1 : n_threads, isa_from_int(isa)}; }

// Element strides of a writable 2-D float32/float64 array; returns the dtype code.
int float_2d(py::array& a, i64& rs, i64& cs, bool need_writable) {
  if (a.ndim() != 2) throw py::value_error("expected a 2-D array, got " + std::to_string(a.ndim()) + "-D");
  if (need_writable && !a.writeable()) throw py::value_error("destination array is read-only");
  int code;
  if (py::isinstance<py::array_t<float>>(a)) code = 0;
  else if (py::isinstance<py::array_t<double>>(a)) code = 1;
  else throw py::type_error("expected a float32 or float64 array");
  const i64 isz = code == 0 ? 4 : 8;
  if (a.strides(0) % isz || a.strides(1) % isz) throw py::value_error("strides are not a multiple of the item size");
  if (reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(isz)) throw py::value_error("array is not aligned");
  rs = a.strides(0) / isz;
  cs = a.strides(1) / isz;
  return code;
}

// out: the 2-D logical matrix (rows x cols). transpose: Q is out^T (wide matrices).
void orthogonal_array(py::array out, bool transpose, double gain, std::uint64_t seed, std::uint64_t stream,
                      int n_threads, int isa) {
  i64 rs, cs;
  const int code = float_2d(out, rs, cs, true);
  i64 m = out.shape(0), n = out.shape(1);
  if (transpose) std::swap(m, n), std::swap(rs, cs);
  if (m < n) throw py::value_error("internal: orthogonal needs rows >= cols after the transpose");
  for (int k = 0; k < 2; ++k)
    if (out.strides(k) == 0 && out.shape(k) > 1) throw py::value_error("destination has overlapping elements");
  const auto ex = make_exec(n_threads, isa);
  void* p = out.mutable_data();
  initlab_bind::run_interruptible([&] {
    if (code == 0) initlab::orthogonal(static_cast<float*>(p), m, n, rs, cs, {seed, stream}, gain, ex);
    else initlab::orthogonal(static_cast<double*>(p), m, n, rs, cs, {seed, stream}, gain, ex);
  });
}

// a: Fortran-ordered m x n working copy (overwritten by R and the reflectors);
// q: Fortran-ordered m x min(m, n), receives Q.
void householder_qr_arrays(py::array a, py::array q, int n_threads, int isa) {
  i64 ars, acs, qrs, qcs;
  const int ca = float_2d(a, ars, acs, true), cq = float_2d(q, qrs, qcs, true);
  const i64 m = a.shape(0), n = a.shape(1), k = std::min(m, n);
  if (ca != cq) throw py::type_error("a and q must have the same dtype");
  if (q.shape(0) != m || q.shape(1) != k) throw py::value_error("q must have shape (m, min(m, n))");
  if ((m > 1 && ars != 1) || (k > 1 && qrs != 1)) throw py::value_error("a and q must be Fortran-ordered");
  const i64 lda = std::max<i64>({m, 1, n > 1 ? acs : 1}), ldq = std::max<i64>({m, 1, k > 1 ? qcs : 1});
  const auto ex = make_exec(n_threads, isa);
  void* pa = a.mutable_data();
  void* pq = q.mutable_data();
  initlab_bind::run_interruptible([&] {
    if (ca == 0) initlab::householder_qr(static_cast<float*>(pa), m, n, lda, static_cast<float*>(pq), ldq, ex);
    else initlab::householder_qr(static_cast<double*>(pa), m, n, lda, static_cast<double*>(pq), ldq, ex);
  });
}

// c (op)= a @ b with any strides (mode 0: set, 1: add, 2: subtract). For tests and benchmarks.
void gemm_arrays(py::array a, py::array b, py::array c, int mode, int n_threads, int isa) {
  i64 ars, acs, brs, bcs, crs, ccs;
  const int ca = float_2d(a, ars, acs, false), cb = float_2d(b, brs, bcs, false), cc = float_2d(c, crs, ccs, true);
  if (ca != cb || ca != cc) throw py::type_error("a, b and c must have the same dtype");
  const i64 m = a.shape(0), k = a.shape(1), n = b.shape(1);
  if (b.shape(0) != k || c.shape(0) != m || c.shape(1) != n) throw py::value_error("shapes do not match for c = a @ b");
  if (mode < 0 || mode > 2) throw py::value_error("mode must be 0 (set), 1 (add) or 2 (subtract)");
  const auto ex = make_exec(n_threads, isa);
  const void* pa = a.data();
  const void* pb = b.data();
  void* pc = c.mutable_data();
  py::gil_scoped_release release;
  const auto md = static_cast<initlab::GemmMode>(mode);
  if (ca == 0)
    initlab::gemm(m, n, k, static_cast<const float*>(pa), ars, acs, static_cast<const float*>(pb), brs, bcs,
                  static_cast<float*>(pc), crs, ccs, md, ex);
  else
    initlab::gemm(m, n, k, static_cast<const double*>(pa), ars, acs, static_cast<const double*>(pb), brs, bcs,
                  static_cast<double*>(pc), crs, ccs, md, ex);
}

}  // namespace

void register_linalg(py::module_& m) {
  m.def("orthogonal", &orthogonal_array, py::arg("out").noconvert(), py::arg("transpose"), py::arg("gain"),
        py::arg("seed"), py::arg("stream"), py::arg("n_threads"), py::arg("isa"),
        "Write gain * a Haar (semi-)orthogonal matrix into the 2-D float32/float64 `out` (Q = out, or out^T "
        "when transpose); bits independent of threads and strides.");
  m.def("householder_qr", &householder_qr_arrays, py::arg("a").noconvert(), py::arg("q").noconvert(),
        py::arg("n_threads"), py::arg("isa"),
        "Blocked Householder QR of the Fortran-ordered `a` in place (R above, reflectors below); Q into `q`.");
  m.def("gemm", &gemm_arrays, py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("c").noconvert(),
        py::arg("mode"), py::arg("n_threads"), py::arg("isa"),
        "c (op)= a @ b with initlab's deterministic GEMM kernel (mode 0 set, 1 add, 2 subtract).");
}
