// CSV report: one row per (variant, layer, rank); units in the header names (seconds, token-expert pairs).
#include <fmt/format.h>

#include "reports/reports.hpp"

namespace moesim::reports {
namespace {

// RFC 4180: quote a field containing a comma, quote or line break; double the quotes inside.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"') q += '"';
    q += ch;
  }
  return q + '"';
}

}  // namespace

std::string csv_report(const RunResult& r) {
  std::string out = "variant,schedule,layer,rank,tokens_received,compute_s,comm_s,start_s,end_s\n";
  for (const auto& v : r.variants) {
    const std::string prefix = csv_field(v.name) + ',' + csv_field(v.schedule);
    for (const auto& row : v.rows)
      out += fmt::format("{},{},{},{},{:.9g},{:.9g},{:.9g},{:.9g}\n", prefix, row.layer, row.rank,
                         row.tokens_received, row.compute_s, row.comm_s, row.start_s, row.end_s);
  }
  return out;
}

}  // namespace moesim::reports
