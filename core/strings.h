// Small text helpers for messages and logs, shared by every layer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rzoo {

// "a, b, c" (an empty element adds no separator before the next).
inline std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// "[1, 2, 3]".
inline std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

}  // namespace rzoo
