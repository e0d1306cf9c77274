#pragma once
#include <stdexcept>
#include <string>

namespace initlab {
// A real run-time check (never an assert, which release builds drop). Maps to ValueError.
inline void require(bool cond, const std::string& msg) {
  if (!cond) throw std::invalid_argument(msg);
}
}  // namespace initlab
