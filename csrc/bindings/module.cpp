// Wiring only: each area registers its own functions.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void register_random(py::module_& m);
void register_linalg(py::module_& m);
void register_stats(py::module_& m);

PYBIND11_MODULE(_core, m, py::mod_gil_not_used()) {
  m.doc() = "initlab's compiled core (private; use the initlab package)";
  register_random(m);
  register_linalg(m);
  register_stats(m);
}
