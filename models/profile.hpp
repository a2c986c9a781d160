// GPU cost profiles (`moesim-profile/1`, format in models/profiles/README.md).
//
// Quantities are stored in SI base units: bytes, bytes/s, FLOP/s, seconds. A missing optional peak is 0.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sim/op_graph.hpp"
#include "sim/yaml_view.hpp"

namespace moesim::models {

enum class ProfileKind { measured, derived, datasheet };
const char* profile_kind_name(ProfileKind k);

// Fraction of peak a kernel class reaches, 0 < e <= 1.
struct Efficiency {
  double compute = 1.0;
  double memory = 1.0;
};

// Roofline fit of one table: alpha_s + max(flops / (eta_compute * peak), bytes / (eta_memory * bw)).
struct TableFit {
  double alpha_s = 0.0;
  double eta_compute = 1.0;
  double eta_memory = 1.0;
};

struct ProfileTable {
  std::string kernel;  // expert_gate_up | expert_down | grouped_gemm | cast_fp8 | permute | unpermute | swiglu |
                       // router_topk | copy | launch
  std::string dtype;   // bf16 | fp8_tensor | fp8_block_1x128 | fp8_block_128x128 | fp4
  int64_t n = 0;
  int64_t k = 0;
  Provenance provenance = Provenance::measured;  // measured | derived
  std::vector<std::pair<double, double>> points;  // (tokens, seconds), tokens strictly increasing
  std::optional<TableFit> fit;
  std::optional<double> holdout_mape;
};

struct Profile {
  std::string id;
  ProfileKind kind = ProfileKind::datasheet;
  std::string gpu_name;
  int sms = 0;
  double memory_bytes = 0;
  double memory_bandwidth = 0;  // bytes/s
  double peak_bf16 = 0;         // FLOP/s
  double peak_fp8 = 0;          // FLOP/s, 0 = not supported
  double peak_fp4 = 0;          // FLOP/s, 0 = not supported
  Efficiency gemm, attention, elementwise;
  double launch_overhead_s = 0;
  double overlap_interference = 1.0;
  std::vector<std::string> sources;
  std::string confidence;  // low | medium | high
  std::map<std::string, std::string> provenance;
  std::vector<ProfileTable> tables;

  // The provenance of a roofline cost from this profile: datasheet -> datasheet, derived -> derived,
  // measured -> fitted (its efficiencies were fitted to measurements).
  Provenance roofline_provenance() const;
};

// Decodes a profile document; problems become diagnostics in v's sink.
Profile decode_profile(const YamlView& v);
// Ids of the profiles under <data_dir>/models/profiles (file stems), sorted.
std::vector<std::string> list_profiles(const std::string& data_dir);
// Resolves the scenario value `ref` (an id, or a path ending in .yaml / containing '/'), loading the file with
// ref's diagnostics sink. An unknown id is reported at ref with did-you-mean. nullopt when anything failed.
// A relative path resolves against base_dir (the scenario's directory) when one is given.
std::optional<Profile> resolve_profile(const YamlView& ref, const std::string& data_dir,
                                       const std::string& base_dir = "");
// Same from a plain string; throws InputError.
Profile load_profile(const std::string& id_or_path, const std::string& data_dir);

}  // namespace moesim::models
