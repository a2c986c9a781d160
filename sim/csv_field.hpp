// One CSV field (RFC 4180), shared by the CSV report and the sweep's CSV (moesim_core: the sweep runner in
// moesim_sim does not link the reporters).
#pragma once

#include <string>

namespace moesim {

// Quotes a field containing a comma, quote or line break and doubles the quotes inside; others as they are.
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"') q += '"';
    q += ch;
  }
  return q + '"';
}

}  // namespace moesim
