// Placeholder until the orthogonal/linalg bindings land (issue: Householder orthogonal).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_linalg(py::module_&) {}
