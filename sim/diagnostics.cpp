#include "sim/diagnostics.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace moesim {

std::string escape_control(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += ch;
  }
  return out;
}

std::string Diagnostic::str() const {
  // One line per diagnostic, whatever the input held: control characters (a newline, a terminal escape) in a
  // file name, key or value are shown escaped, so a value cannot forge another diagnostic line.
  std::string s = fmt::format("{}:{}:{}: {}: {}", escape_control(file), line, column,
                              key_path.empty() ? "<root>" : escape_control(key_path), escape_control(rule));
  if (!got.empty()) s += fmt::format(" (got {})", escape_control(got));
  return s;
}

void Diagnostics::add(Diagnostic d) { items_.push_back(std::move(d)); }

std::string Diagnostics::str() const {
  std::vector<Diagnostic> sorted = items_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.file != b.file) return a.file < b.file;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  std::string out;
  for (const auto& d : sorted) out += d.str() + "\n";
  return out;
}

InputError::InputError(Diagnostics d) : std::runtime_error(d.str()), diags_(std::move(d)) {}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // Close enough: at most a third of the word's letters wrong (and at least 1 allowed, at most 3).
  std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
  return best_d <= limit ? best : std::string();
}

std::string unknown_name_rule(std::string_view what, std::string_view list_label, std::string_view name,
                              const std::vector<std::string>& known) {
  std::string rule = fmt::format("{}; {}:", what, list_label);
  for (std::size_t i = 0; i < known.size(); ++i) rule += (i ? ", " : " ") + known[i];
  const std::string hint = closest_match(name, known);
  if (!hint.empty()) rule += fmt::format("; did you mean '{}'?", hint);
  return rule;
}

}  // namespace moesim
