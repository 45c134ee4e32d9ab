// Plain-text tables: aligned columns for the terminal, Markdown for reports, and CSV fields.
// Used by `rzoo compare` (trainers/compare_report), the evaluation tables (trainers/experiment)
// and `rzoo recommend --users-file` (apps).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace rzoo {

// Display width of UTF-8 text: its count of characters, not bytes ("±" and "†" take 2 and 3
// bytes but one column each).
size_t utf8_width(const std::string& s);
// s padded with spaces to `width` characters: on the right when `left` (left-aligned), else on the
// left; unchanged when already that wide.
std::string pad_utf8(const std::string& s, size_t width, bool left);
// A table (first row the header, followed by a rule) as aligned text, or as Markdown (first column
// left-aligned, the others right-aligned). Widths count UTF-8 characters. Rows may be shorter than
// the header.
std::string render_table(const std::vector<std::vector<std::string>>& rows, bool markdown);
// s as one CSV field (RFC 4180): quoted, with doubled quotes, only when it holds a comma, quote or
// line break.
std::string csv_field(const std::string& s);

}  // namespace rzoo
