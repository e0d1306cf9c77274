#pragma once
#include <stdexcept>
#include <string>

namespace initlab {
// A real run-time check (never an assert, which release builds drop). Maps to ValueError.
inline void require(bool cond, const std::string& msg) {
  if (!cond) throw std::invalid_argument(msg);
}
}  // namespace initlab

// The same check, with the message built only when it fails: formatting the numbers of a message
// costs microseconds, which every call on a hot path (fill, stats) would otherwise pay.
#define INITLAB_REQUIRE(cond, msg)                                 \
  do {                                                             \
    if (!(cond)) throw std::invalid_argument(msg);                 \
  } while (0)
