#include "core/json.h"

#include <cmath>

#include "core/error.h"

namespace rzoo {

Json json_number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json json_rounded(double v, int decimals) {
  if (!std::isfinite(v)) return Json(nullptr);
  const double scale = std::pow(10.0, decimals);
  return Json(std::round(v * scale) / scale);
}

std::string json_dump(const Json& j, int indent) { return j.dump(indent, ' ', false, Json::error_handler_t::replace); }

Json json_parse(const std::string& text, const std::string& path) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    // e.byte is 1-based, one past the offending character; report line and column from it.
    size_t line = 1, col = 1;
    const size_t end = std::min<size_t>(e.byte == 0 ? 0 : e.byte - 1, text.size());
    for (size_t i = 0; i < end; ++i) {
      if (text[i] == '\n') ++line, col = 1;
      else ++col;
    }
    const std::string what = e.what();
    const auto colon = what.rfind(": ");
    fail("{}:{}:{}: not valid JSON: {}", path, line, col, colon == std::string::npos ? what : what.substr(colon + 2));
  } catch (const Json::exception& e) {
    // Well-formed but not representable, e.g. a number beyond double's range (found by fuzzing:
    // "999e99666" raised json.exception.out_of_range.406 past the reader's error handling).
    const std::string what = e.what();
    const auto bracket = what.find("] ");
    fail("{}: not valid JSON: {}", path, bracket == std::string::npos ? what : what.substr(bracket + 2));
  }
}

}  // namespace rzoo
