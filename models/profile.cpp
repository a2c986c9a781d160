#include "models/profile.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

#include "sim/limits.hpp"

namespace moesim::models {

const char* profile_kind_name(ProfileKind k) {
  switch (k) {
    case ProfileKind::measured: return "measured";
    case ProfileKind::derived: return "derived";
    case ProfileKind::datasheet: return "datasheet";
  }
  return "?";
}

Provenance Profile::roofline_provenance() const {
  switch (kind) {
    case ProfileKind::measured: return Provenance::fitted;
    case ProfileKind::derived: return Provenance::derived;
    case ProfileKind::datasheet: return Provenance::datasheet;
  }
  return Provenance::datasheet;
}

namespace {

Efficiency decode_efficiency(const YamlView& v) {
  Efficiency e;
  if (!v.expect_map()) return e;
  v.check_keys({"compute", "memory"});
  e.compute = v.number("compute", Range::unit_interval_open_lo());
  e.memory = v.number("memory", Range::unit_interval_open_lo());
  return e;
}

ProfileTable decode_table(const YamlView& v) {
  ProfileTable t;
  if (!v.expect_map()) return t;
  v.check_keys({"kernel", "dtype", "n", "k", "provenance", "points", "fit", "holdout_mape"});
  t.kernel = v.choice("kernel", {"expert_gate_up", "expert_down", "grouped_gemm", "cast_fp8", "permute", "unpermute",
                                 "swiglu", "router_topk", "copy", "launch"});
  t.dtype = v.choice("dtype", {"bf16", "fp8_tensor", "fp8_block_1x128", "fp8_block_128x128", "fp4"});
  t.n = v.integer("n", Range::between(0, limits::kMaxTableDim));
  t.k = v.integer("k", Range::between(0, limits::kMaxTableDim));
  t.provenance = v.choice("provenance", {"measured", "derived"}) == "derived" ? Provenance::derived
                                                                             : Provenance::measured;
  if (v.require("points")) {
    for (const YamlView& p : v.at("points").items()) {
      std::vector<YamlView> xy = p.items();
      if (xy.size() != 2) {
        p.error("must be [tokens, seconds]", p.shown());
        continue;
      }
      const double x = xy[0].as_number(Range::positive());
      const double s = xy[1].as_number(Range::non_negative());
      if (!t.points.empty() && x <= t.points.back().first) {
        xy[0].error("tokens must be strictly increasing", xy[0].shown());
        continue;
      }
      t.points.emplace_back(x, s);
    }
    if (t.points.empty()) v.error_at("points", "must list at least one [tokens, seconds] point");
  }
  if (v.has("fit")) {
    YamlView f = v.at("fit");
    if (f.expect_map()) {
      f.check_keys({"alpha_s", "eta_compute", "eta_memory"});
      TableFit fit;
      fit.alpha_s = f.number("alpha_s", Range::non_negative());
      fit.eta_compute = f.number("eta_compute", Range::unit_interval_open_lo());
      fit.eta_memory = f.number("eta_memory", Range::unit_interval_open_lo());
      t.fit = fit;
    }
  }
  if (v.has("holdout_mape")) t.holdout_mape = v.number("holdout_mape", Range::non_negative());
  return t;
}

const std::vector<std::string> kFigureKinds = {"measured", "derived", "datasheet", "reference"};

// A cited figure: either a plain value (its provenance is then the profile's kind and its `sources`) or a
// mapping { value, kind, source }. `value_of` reads the value from a view (a quantity or an integer).
template <class ValueOf>
CitedFigure decode_figure(const YamlView& v, std::string_view key, const std::string& profile_kind, ValueOf value_of) {
  CitedFigure f;
  YamlView x = v.at(key);
  if (x.is_map()) {
    x.check_keys({"value", "kind", "source"});
    if (x.require("value")) f.value = value_of(x.at("value"));
    f.kind = x.choice("kind", kFigureKinds);
    f.source = x.str("source");
    if (f.source.empty() && x.has("source")) x.error_at("source", "must name where the figure comes from");
  } else {
    f.value = value_of(x);
    f.kind = profile_kind;
    f.source = "the profile's sources";
  }
  return f;
}

GemmShapeParams decode_gemm_shape(const YamlView& v, GemmShapeModel& model, std::string& source) {
  GemmShapeParams g;
  if (!v.expect_map()) return g;
  v.check_keys({"model", "tile_m", "tile_n", "tile_k", "k_overhead", "reference", "source"});
  model = v.choice_or("model", {"tiled", "flat"}, "tiled") == "flat" ? GemmShapeModel::flat : GemmShapeModel::tiled;
  g.tile_m = static_cast<int>(v.integer_or("tile_m", g.tile_m, Range::between(1, 1024)));
  g.tile_n = static_cast<int>(v.integer_or("tile_n", g.tile_n, Range::between(1, 1024)));
  g.tile_k = static_cast<int>(v.integer_or("tile_k", g.tile_k, Range::between(1, 1024)));
  g.k_overhead = v.number_or("k_overhead", -1.0, Range::between(0, 1e6));
  g.reference = v.integer_or("reference", g.reference, Range::between(1, limits::kMaxTableDim));
  source = v.str_or("source", "");
  const bool overrides = v.has("tile_m") || v.has("tile_n") || v.has("tile_k") || v.has("k_overhead") || v.has("reference");
  if (overrides && source.empty()) v.error_at("source", "must say where overridden shape-model figures come from");
  return g;
}

}  // namespace

Profile decode_profile(const YamlView& v) {
  Profile p;
  if (!v.expect_map()) return p;
  v.check_keys({"schema", "id", "kind", "gpu", "peak", "efficiency", "gemm_shape", "launch_overhead",
                "collective_launch", "comm_sms", "overlap_interference", "sources", "confidence", "provenance",
                "tables"});
  if (v.require("schema") && v.at("schema").as_str() != "moesim-profile/1")
    v.error_at("schema", "must be moesim-profile/1");
  p.id = v.str("id");
  const std::string kind = v.choice("kind", {"measured", "derived", "datasheet"});
  p.kind = kind == "measured" ? ProfileKind::measured : kind == "derived" ? ProfileKind::derived : ProfileKind::datasheet;
  if (v.require("gpu")) {
    YamlView g = v.at("gpu");
    if (g.expect_map()) {
      g.check_keys({"name", "sms", "memory", "memory_bandwidth"});
      p.gpu_name = g.str("name");
      p.sms = static_cast<int>(g.integer("sms", Range::between(1, limits::kMaxSms)));
      p.memory_bytes = g.quantity("memory", Dim::bytes);
      p.memory_bandwidth = g.quantity("memory_bandwidth", Dim::bandwidth);
    }
  }
  if (v.require("peak")) {
    YamlView pk = v.at("peak");
    if (pk.expect_map()) {
      pk.check_keys({"bf16", "fp8", "fp4"});
      p.peak_bf16 = pk.quantity("bf16", Dim::flop_rate);
      p.peak_fp8 = pk.quantity_or("fp8", Dim::flop_rate, 0.0);
      p.peak_fp4 = pk.quantity_or("fp4", Dim::flop_rate, 0.0);
    }
  }
  if (v.require("efficiency")) {
    YamlView e = v.at("efficiency");
    if (e.expect_map()) {
      e.check_keys({"gemm", "attention", "elementwise"});
      if (e.require("gemm")) p.gemm = decode_efficiency(e.at("gemm"));
      if (e.require("attention")) p.attention = decode_efficiency(e.at("attention"));
      if (e.require("elementwise")) p.elementwise = decode_efficiency(e.at("elementwise"));
    }
  }
  p.launch_overhead_s = v.quantity("launch_overhead", Dim::seconds, Range::non_negative());
  // Every profile read from a file costs GEMMs with the shape model unless it says gemm_shape.model: flat
  // (a measured profile's roofline stays flat: its efficiencies were fitted per table, see cost_model.hpp).
  p.gemm_model = GemmShapeModel::tiled;
  if (v.has("gemm_shape")) p.gemm_shape = decode_gemm_shape(v.at("gemm_shape"), p.gemm_model, p.gemm_shape_source);
  p.collective_launch = {kDefaultCollectiveLaunchS, "reference", kDefaultCollectiveLaunchSource};
  if (v.has("collective_launch"))
    p.collective_launch = decode_figure(v, "collective_launch", kind, [](const YamlView& x) {
      return x.as_quantity(Dim::seconds, Range::non_negative());
    });
  if (v.has("comm_sms"))
    p.comm_sms = decode_figure(v, "comm_sms", kind, [](const YamlView& x) {
      return static_cast<double>(x.as_integer(Range::between(0, limits::kMaxSms)));
    });
  if (v.has("comm_sms") && p.sms > 0 && p.comm_sms.value >= p.sms)
    v.error_at("comm_sms", fmt::format("must be below gpu.sms ({}): a communication kernel cannot hold every SM", p.sms));
  if (v.has("overlap_interference")) {
    p.overlap_interference = v.number("overlap_interference", Range::at_least(1.0));
    p.overlap_interference_kind = kind;
    p.overlap_interference_source = "the profile's sources";
  } else if (p.sms > 0 && p.comm_sms.value < p.sms) {
    // Compute overlapped with a communication kernel gets the SMs it leaves: sms - comm_sms of sms.
    p.overlap_interference = p.sms / (p.sms - p.comm_sms.value);
    p.overlap_interference_kind = "derived";
    p.overlap_interference_source =
        fmt::format("derived: {} SMs / ({} SMs - {:g} comm SMs)", p.sms, p.sms, p.comm_sms.value);
  }
  if (v.require("sources")) {
    for (const YamlView& s : v.at("sources").items()) p.sources.push_back(s.as_str());
    if (p.sources.empty()) v.error_at("sources", "must name at least one source");
  }
  p.confidence = v.choice("confidence", {"low", "medium", "high"});
  if (v.has("provenance")) {
    YamlView pv = v.at("provenance");
    if (pv.expect_map())
      for (const std::string& key : pv.keys()) p.provenance[key] = pv.at(key).as_str();
  }
  if (p.kind == ProfileKind::measured && p.provenance.empty())
    v.error_at("kind", "measured needs a provenance mapping (GPU, driver, CUDA, cuBLASLt, date, git sha)");
  if (p.kind == ProfileKind::derived && !p.provenance.count("derived_from"))
    v.error_at(v.has("provenance") ? "provenance" : "kind", "derived needs provenance.derived_from");
  if (v.has("tables"))
    for (const YamlView& t : v.at("tables").items()) p.tables.push_back(decode_table(t));
  return p;
}

std::vector<std::string> list_profiles(const std::string& data_dir) {
  return yaml_file_stems((std::filesystem::path(data_dir) / "models" / "profiles").string());
}

std::optional<Profile> resolve_profile(const YamlView& ref, const std::string& data_dir, const std::string& base_dir) {
  Diagnostics* diags = ref.diagnostics();
  const size_t before = ref.diagnostic_count();
  const std::string name = ref.as_str();
  if (name.empty()) {
    if (ref.diagnostic_count() == before) ref.error("must name a GPU profile (an id or a path), not be empty", ref.shown());
    return std::nullopt;
  }
  std::string path;
  const bool is_path = name.find('/') != std::string::npos || name.ends_with(".yaml");
  if (is_path) {
    path = name;
    if (!base_dir.empty() && std::filesystem::path(name).is_relative())
      path = (std::filesystem::path(base_dir) / name).string();
  } else {
    std::vector<std::string> ids = list_profiles(data_dir);
    if (std::find(ids.begin(), ids.end(), name) == ids.end()) {
      ref.error(unknown_name_rule("unknown GPU profile", "profiles", name, ids), ref.shown());
      return std::nullopt;
    }
    path = (std::filesystem::path(data_dir) / "models" / "profiles" / (name + ".yaml")).string();
  }
  YamlView f = YamlView::load_file(path, diags);
  if (ref.diagnostic_count() > before) return std::nullopt;
  Profile p = decode_profile(f);
  // A file found by id must carry that id, so reports name the profile that was actually used.
  if (!is_path && p.id != name) f.error_at("id", fmt::format("must equal the file name '{}'", name));
  if (ref.diagnostic_count() > before) return std::nullopt;
  return p;
}

Profile load_profile(const std::string& id_or_path, const std::string& data_dir) {
  Diagnostics diags;
  YamlView ref = YamlView::load_string("\"" + id_or_path + "\"", "<profile>", &diags);
  std::optional<Profile> p = resolve_profile(ref, data_dir);
  if (!p || !diags.empty()) throw InputError(diags);
  return *p;
}

}  // namespace moesim::models
