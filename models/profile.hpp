// GPU cost profiles (`moesim-profile/1`, format in models/profiles/README.md).
//
// Quantities are stored in SI base units: bytes, bytes/s, FLOP/s, seconds. A missing optional peak is 0.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "models/gemm_efficiency.hpp"
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

// One figure with where it comes from: kind measured (moesim-calibrate), derived (computed from other cited
// figures), datasheet (a vendor datasheet) or reference (a cited public figure: nccl-tests output, a
// library's documented default).
struct CitedFigure {
  double value = 0;
  std::string kind;
  std::string source;
};

// How roofline GEMMs of a datasheet / derived profile are costed (`gemm_shape.model`):
//  tiled: models/gemm_efficiency.hpp (tile / wave quantisation, split-K, per-tile K overhead), the default
//         of every profile read from YAML;
//  flat:  one efficiency for every shape, flops / (e_c * peak) (the model before issue 13). It is also what
//         a Profile built in code gets unless it says otherwise (unit tests that work the flat roofline).
enum class GemmShapeModel { tiled, flat };

// Defaults of the collective figures when a profile does not give them, each from a cited public figure.
// collective_launch: nccl-tests alltoall_perf with 128 B to 4 KiB per GPU on one 8-GPU H20 HGX node (NVLink4
// through NVSwitch, the fabric of H100 / H200 boxes) takes 10.3 to 11.1 us; 128 B: 10.59 us out of place,
// 10.32 us in place (github.com/deepseek-ai/DeepEP/issues/303).
inline constexpr double kDefaultCollectiveLaunchS = 10.5e-6;
inline constexpr const char* kDefaultCollectiveLaunchSource =
    "default: nccl-tests alltoall_perf, 128 B per GPU on 8x H20 (NVLink4/NVSwitch): 10.32-10.59 us "
    "(github.com/deepseek-ai/DeepEP/issues/303)";
// comm_sms: DeepEP's dispatch/combine kernels run on Buffer.num_sms = 20 SMs by default (deep_ep/buffer.py;
// Megatron-LM's moe_deepep_num_sms default is 20 as well).
inline constexpr int kDefaultCommSms = 20;
inline constexpr const char* kDefaultCommSmsSource =
    "default: DeepEP Buffer.num_sms = 20 (deep_ep/buffer.py; Megatron-LM moe_deepep_num_sms = 20)";

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
  // Compute slow-down while a communication kernel runs beside it (>= 1). When the profile does not give it,
  // derived: sms / (sms - comm_sms) (the comm kernel holds comm_sms of the SMs).
  double overlap_interference = 1.0;
  std::string overlap_interference_kind = "datasheet";  // measured | derived | datasheet | reference
  std::string overlap_interference_source;
  // Fixed time every collective call pays (launch + setup, NCCL-like), per call and so per chunk of a chunked
  // all-to-all; on top of the bytes / bandwidth and route latency the network model charges. Seconds.
  CitedFigure collective_launch{0.0, "datasheet", ""};
  // SMs a communication kernel (NCCL / DeepEP) occupies while it runs.
  CitedFigure comm_sms{static_cast<double>(kDefaultCommSms), "reference", kDefaultCommSmsSource};
  GemmShapeModel gemm_model = GemmShapeModel::flat;
  GemmShapeParams gemm_shape;
  std::string gemm_shape_source;  // where the overrides come from ("" = the documented defaults)
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
