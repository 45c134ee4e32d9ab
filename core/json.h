// JSON through nlohmann/json (Debian's nlohmann-json3-dev): rzoo writes its result files
// (metrics.json, eval.json, compare.json, `data stats --json`) and reads JSON side files (S3-Rec's
// item2attributes.json) with it. Objects keep their keys in insertion order, so the files read
// in the order rzoo wrote them.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

namespace rzoo {

using Json = nlohmann::ordered_json;

// A number, or null when it is not finite (a metric with no user to evaluate is NaN).
Json json_number(double v);
// v rounded to `decimals` decimal places (for timings: 1.234567 s, not 1.2345671234), null
// when not finite.
Json json_rounded(double v, int decimals);
// `j` as text: `indent` spaces per level (-1: one line); invalid UTF-8 is replaced, never thrown.
std::string json_dump(const Json& j, int indent = 2);
// Parses `text` read from `path`; a syntax error is an rzoo::Error "path:line:column: ...".
Json json_parse(const std::string& text, const std::string& path);

}  // namespace rzoo
