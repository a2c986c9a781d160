// Reading raw calibration files and moesim-profile/1 files, writing profiles.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../common/raw_format.hpp"
#include "../common/yaml_writer.hpp"
#include "fit.hpp"
#include "models/profile.hpp"
#include "sim/diagnostics.hpp"

namespace moesim::calibrate {

// Bad input: names the file and the key path (e.g. "measurements[2].points[0]"). The CLI exits with 2.
class FitError : public std::runtime_error {
 public:
  FitError(const std::string& file, const std::string& key, const std::string& message)
      : std::runtime_error(key.empty() ? file + ": " + message : file + ": key '" + key + "': " + message) {}
  // Every diagnostic of a simulator-side decoder (file:line:col: key.path: rule (got value)), one per line.
  static FitError from(const moesim::Diagnostics& d) { return FitError(d.str()); }

 private:
  explicit FitError(const std::string& preformatted) : std::runtime_error(preformatted) {}
};

RawRun read_raw_file(const std::string& path);
RawRun parse_raw(const std::string& text, const std::string& file_label);

using Efficiency = models::Efficiency;

struct ProfileTable {
  std::string kernel;
  std::string dtype;
  long long n = 0;
  long long k = 0;
  std::string provenance;  // measured | derived
  std::vector<std::pair<double, double>> points;  // [tokens, seconds]
  bool has_fit = false;
  RooflineParams fit;
  bool has_holdout = false;
  double holdout_mape = 0;
};

// The moesim-profile/1 document (models/profiles/README.md). Quantities keep their text form ("4.8TB/s")
// so a profile copied from a datasheet is written back exactly as cited.
struct ProfileDoc {
  std::string id;
  std::string kind;  // measured | derived | datasheet
  std::string gpu_name;
  int sms = 0;
  std::string memory;
  std::string memory_bandwidth;
  std::vector<std::pair<std::string, std::string>> peak;  // dtype -> "989TFLOP/s"
  Efficiency gemm, attention, elementwise;
  std::string launch_overhead;
  // A cited figure as written: `value` in its text form ("10.5us", "20"); kind and source empty = the plain
  // scalar form (its provenance is the profile's). present = false: the key is absent (the simulator's
  // documented default applies).
  struct Figure {
    bool present = false;
    std::string value, kind, source;
  };
  Figure collective_launch;  // fixed time per collective call
  Figure comm_sms;           // SMs a communication kernel holds
  // Absent (has_overlap_interference false): the simulator derives it from sms and comm_sms.
  bool has_overlap_interference = false;
  double overlap_interference = 1.0;
  std::vector<std::pair<std::string, std::string>> gemm_shape;  // the gemm_shape mapping as written (file order)
  std::vector<std::string> sources;
  std::string confidence;
  std::vector<std::pair<std::string, std::string>> provenance;
  std::vector<ProfileTable> tables;

  // Peak of a dtype in FLOP/s (fp8_* use the fp8 peak); 0 when the profile has none.
  double peak_flops(const std::string& dtype) const;
  double bandwidth_bytes_per_s() const;
};

// Strict reader: unknown keys, missing required keys, bad units and out-of-range values are FitErrors.
ProfileDoc read_profile_file(const std::string& path);
ProfileDoc parse_profile(const std::string& text, const std::string& file_label);
YamlNode to_yaml_node(const ProfileDoc& p);
std::string to_yaml(const ProfileDoc& p);

// "4.8TB/s" -> 4.8e12 bytes/s; "989TFLOP/s" -> 9.89e14; "4us" -> 4e-6 s. Decimal prefixes (GB = 1e9),
// binary ones for bytes (GiB = 2^30). Throws std::invalid_argument naming what was expected.
double parse_bandwidth(const std::string& s);
double parse_flops(const std::string& s);
double parse_seconds(const std::string& s);
std::string format_seconds(double s);  // "4.21us"

}  // namespace moesim::calibrate
