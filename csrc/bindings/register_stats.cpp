// Placeholder until the statistics bindings land (issue: variance analysis).
#include <pybind11/pybind11.h>
namespace py = pybind11;
void register_stats(py::module_&) {}
