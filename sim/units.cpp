#include "sim/units.hpp"

#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fmt/format.h>

namespace moesim {

namespace {

struct UnitDef {
  std::string_view name;
  double factor;  // multiply the number by this to get the SI base unit
};

// Units per dimension. Matching is exact (case-sensitive) so that "Mb" (bits) and "MB" (bytes) cannot be
// confused silently; the error message lists the accepted forms.
constexpr std::array bytes_units{
    UnitDef{"B", 1.0},         UnitDef{"KB", 1e3},          UnitDef{"kB", 1e3},
    UnitDef{"MB", 1e6},        UnitDef{"GB", 1e9},          UnitDef{"TB", 1e12},
    UnitDef{"KiB", 1024.0},    UnitDef{"MiB", 1048576.0},   UnitDef{"GiB", 1073741824.0},
    UnitDef{"TiB", 1099511627776.0},
};
constexpr std::array time_units{
    UnitDef{"s", 1.0}, UnitDef{"ms", 1e-3}, UnitDef{"us", 1e-6}, UnitDef{"µs", 1e-6}, UnitDef{"ns", 1e-9},
};
constexpr std::array bandwidth_units{
    UnitDef{"B/s", 1.0},        UnitDef{"KB/s", 1e3},         UnitDef{"kB/s", 1e3},
    UnitDef{"MB/s", 1e6},       UnitDef{"GB/s", 1e9},         UnitDef{"TB/s", 1e12},
    UnitDef{"KiB/s", 1024.0},   UnitDef{"MiB/s", 1048576.0},  UnitDef{"GiB/s", 1073741824.0},
    UnitDef{"TiB/s", 1099511627776.0},
    UnitDef{"bps", 1.0 / 8},    UnitDef{"Kbps", 1e3 / 8},     UnitDef{"kbps", 1e3 / 8},
    UnitDef{"Mbps", 1e6 / 8},   UnitDef{"Gbps", 1e9 / 8},     UnitDef{"Tbps", 1e12 / 8},
};
constexpr std::array flop_rate_units{
    UnitDef{"FLOP/s", 1.0},  UnitDef{"GFLOP/s", 1e9}, UnitDef{"TFLOP/s", 1e12}, UnitDef{"PFLOP/s", 1e15},
    UnitDef{"FLOPS", 1.0},   UnitDef{"GFLOPS", 1e9},  UnitDef{"TFLOPS", 1e12},  UnitDef{"PFLOPS", 1e15},
};

template <std::size_t N>
std::optional<double> find_unit(const std::array<UnitDef, N>& units, std::string_view u) {
  for (const auto& d : units)
    if (d.name == u) return d.factor;
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string_view dim_name(Dim d) {
  switch (d) {
    case Dim::bytes: return "a size";
    case Dim::seconds: return "a duration";
    case Dim::bandwidth: return "a bandwidth";
    case Dim::flop_rate: return "a compute rate";
  }
  return "?";
}

std::string_view dim_examples(Dim d) {
  switch (d) {
    case Dim::bytes: return "\"4MiB\", \"1GB\", \"512B\"";
    case Dim::seconds: return "\"2us\", \"1.5ms\", \"10ns\"";
    case Dim::bandwidth: return "\"900GB/s\", \"400Gbps\", \"25GiB/s\"";
    case Dim::flop_rate: return "\"989TFLOP/s\", \"312TFLOPS\"";
  }
  return "";
}

std::optional<double> parse_quantity(std::string_view text, Dim dim, std::string* why) {
  auto fail = [&](std::string msg) -> std::optional<double> {
    if (why) *why = std::move(msg);
    return std::nullopt;
  };
  std::string_view s = trim(text);
  if (s.empty()) return fail(fmt::format("expected {} with a unit, e.g. {}", dim_name(dim), dim_examples(dim)));
  // Split into the numeric prefix and the unit suffix.
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.' || s[i] == '-' ||
                          s[i] == '+' || ((s[i] == 'e' || s[i] == 'E') && i > 0 && i + 1 < s.size() &&
                                          (std::isdigit(static_cast<unsigned char>(s[i + 1])) ||
                                           s[i + 1] == '-' || s[i + 1] == '+'))))
    ++i;
  std::string number(s.substr(0, i));
  std::string_view unit = trim(s.substr(i));
  char* end = nullptr;
  double v = number.empty() ? 0.0 : std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size())
    return fail(fmt::format("expected {} with a unit, e.g. {}", dim_name(dim), dim_examples(dim)));
  if (unit.empty())
    return fail(fmt::format("a unit is required for {}, e.g. {}", dim_name(dim), dim_examples(dim)));
  std::optional<double> factor;
  switch (dim) {
    case Dim::bytes: factor = find_unit(bytes_units, unit); break;
    case Dim::seconds: factor = find_unit(time_units, unit); break;
    case Dim::bandwidth: factor = find_unit(bandwidth_units, unit); break;
    case Dim::flop_rate: factor = find_unit(flop_rate_units, unit); break;
  }
  if (!factor)
    return fail(fmt::format("unknown unit '{}' for {}; use e.g. {}", unit, dim_name(dim), dim_examples(dim)));
  if (!std::isfinite(v) || !std::isfinite(v * *factor)) return fail("the number is not finite");
  return v * *factor;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  return fmt::format("{:.4g} {}", b, units[u]);
}

std::string format_seconds(double s) {
  double a = std::fabs(s);
  if (a == 0.0) return "0 s";
  if (a < 1e-6) return fmt::format("{:.4g} ns", s * 1e9);
  if (a < 1e-3) return fmt::format("{:.4g} us", s * 1e6);
  if (a < 1.0) return fmt::format("{:.4g} ms", s * 1e3);
  return fmt::format("{:.4g} s", s);
}

std::string format_bandwidth(double bps) {
  double a = std::fabs(bps);
  if (a >= 1e12) return fmt::format("{:.4g} TB/s", bps / 1e12);
  if (a >= 1e9) return fmt::format("{:.4g} GB/s", bps / 1e9);
  if (a >= 1e6) return fmt::format("{:.4g} MB/s", bps / 1e6);
  return fmt::format("{:.4g} B/s", bps);
}

}  // namespace moesim
