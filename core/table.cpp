#include "core/table.h"

#include <algorithm>

namespace rzoo {

size_t utf8_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;  // continuation bytes are 10xxxxxx
  return n;
}

std::string pad_utf8(const std::string& s, size_t width, bool left) {
  const size_t n = utf8_width(s);
  if (n >= width) return s;
  return left ? s + std::string(width - n, ' ') : std::string(width - n, ' ') + s;
}

std::string render_table(const std::vector<std::vector<std::string>>& rows, bool markdown) {
  if (rows.empty()) return "";
  std::vector<size_t> w(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], utf8_width(r[c]));
  std::string out;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = markdown ? "|" : "";
    for (size_t c = 0; c < rows[i].size() && c < w.size(); ++c)
      line += (markdown ? " " : (c ? "  " : "")) + pad_utf8(rows[i][c], w[c], c == 0) + (markdown ? " |" : "");
    out += line + "\n";
    if (i > 0) continue;
    std::string rule = markdown ? "|" : "";
    for (size_t c = 0; c < w.size(); ++c) {
      // Markdown: a colon right-aligns the column; GitHub needs at least one dash beside it.
      if (!markdown) rule += (c ? "  " : "") + std::string(w[c], '-');
      else if (c == 0) rule += " " + std::string(w[c], '-') + " |";
      else rule += " " + std::string(std::max<size_t>(w[c], 2) - 1, '-') + ": |";
    }
    out += rule + "\n";
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace rzoo
