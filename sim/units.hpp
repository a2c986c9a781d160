// Quantities with units. Scenario and profile files write quantities as strings with a unit
// ("900GB/s", "400Gbps", "2us", "4MiB", "989TFLOP/s"); bare numbers are rejected where a unit is required.
// Decimal prefixes are powers of 1000 (GB = 1e9), binary ones powers of 1024 (GiB = 2^30).
// Bit rates ("bps") are converted to bytes per second (divide by 8).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moesim {

// The dimension a quantity string must have.
enum class Dim { bytes, seconds, bandwidth, flop_rate };

std::string_view dim_name(Dim d);
// Example units accepted for a dimension, for error messages.
std::string_view dim_examples(Dim d);

// Parses "<number><unit>" (spaces allowed between) into SI base units: bytes, seconds, bytes/s, FLOP/s.
// Returns nullopt and sets *why (if given) when the text is not a valid quantity of that dimension.
std::optional<double> parse_quantity(std::string_view text, Dim dim, std::string* why = nullptr);

// Human-readable formatting with a sensible prefix ("370 GB/s", "12.5 us", "256 MiB").
std::string format_bytes(double bytes);
std::string format_seconds(double seconds);
std::string format_bandwidth(double bytes_per_s);

}  // namespace moesim
