// JSON report, schema "moesim-result/1". ordered_json keeps keys in the order written here (struct order),
// std::map fields come out sorted, and nlohmann prints doubles shortest-round-trip: identical input gives
// identical bytes.
#include <nlohmann/json.hpp>
#include <array>
#include <cmath>
#include <type_traits>
#include <stdexcept>
#include <string>

#include "reports/reports.hpp"

namespace moesim::reports {
namespace {

using Json = nlohmann::ordered_json;

// Where variant `index`'s rows go in the dumped document: a string no name can hold (it starts with a control
// character, which the dump escapes).
std::string rows_marker(std::size_t index) { return "\x01moesim-rows-" + std::to_string(index); }

// A value as the pretty-printed document writes it: a double through the serializer's own shortest
// round-trip formatter (nlohmann::detail::to_chars, as serializer::dump_float calls it), null when not finite;
// an integer in decimal; anything else through the serializer. Building a Json value and a serializer per
// number cost 4 us a row.
template <class T>
void append_value(std::string& out, const T& x) {
  if constexpr (std::is_same_v<T, double>) {
    if (!std::isfinite(x)) {
      out += "null";
      return;
    }
    std::array<char, 64> buf{};
    const char* end = nlohmann::detail::to_chars(buf.data(), buf.data() + buf.size(), x);
    out.append(buf.data(), static_cast<std::size_t>(end - buf.data()));
  } else if constexpr (std::is_integral_v<T>) {
    out += std::to_string(x);
  } else {
    out += Json(x).dump(-1, ' ', false, Json::error_handler_t::replace);
  }
}

// The rows array of a variant, as Json::dump(2) writes it at the depth of variants[i].rows, without building
// a JSON tree of 10 keys per row (24,576 rows in a 64-step run of 8 ranks: 0.2 s). Same keys, same order, same
// number format: tests/golden compares the bytes.
std::string rows_text(const VariantResult& v) {
  if (v.rows.empty()) return "[]";
  std::string out = "[\n";
  out.reserve(v.rows.size() * 330);
  bool first = true;
  for (const auto& r : v.rows) {
    if (!first) out += ",\n";
    first = false;
    out += "        {\n";
    auto field = [&out](const char* key, const auto& x, bool last = false) {
      out += "          \"";
      out += key;
      out += "\": ";
      append_value(out, x);
      out += last ? "\n" : ",\n";
    };
    if (v.steps > 1) field("step", r.step);
    field("layer", r.layer);
    field("rank", r.rank);
    field("tokens_received", r.tokens_received);
    field("compute_s", r.compute_s);
    field("comm_s", r.comm_s);
    field("start_s", r.start_s);
    const bool prec = !r.precision.empty(), vis = r.vision_share >= 0;
    field("end_s", r.end_s, !prec && !vis);
    if (prec) field("precision", r.precision, !vis);
    if (vis) field("vision_share", r.vision_share, true);
    out += "        }";
  }
  out += "\n      ]";
  return out;
}

// An object from (key, value) pairs, in their order; {} rather than null when empty. Only the simgrid settings
// (a vector of pairs) need it: std::map fields convert to an object with sorted keys, {} when empty.
template <class Pairs>
Json pairs_json(const Pairs& m) {
  Json j = Json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

Json context_json(const RunContext& c) {
  Json profiles = Json::array();
  for (const auto& p : c.profiles) {
    auto cited = [](const RunContext::ProfileInfo::Cited& f) { return Json{{"kind", f.kind}, {"source", f.source}}; };
    Json gemm = {{"model", p.gemm_model}};
    if (p.gemm_model == "tiled") {
      gemm["tile_m"] = p.gemm_tile_m;
      gemm["tile_n"] = p.gemm_tile_n;
      gemm["tile_k"] = p.gemm_tile_k;
      gemm["k_overhead"] = p.gemm_k_overhead >= 0 ? Json(p.gemm_k_overhead) : Json("derived");
      gemm["k_overhead_bf16"] = p.gemm_k_overhead_bf16;
      gemm["reference"] = p.gemm_reference;
      gemm["source"] = p.gemm_shape_source.empty() ? "defaults (models/gemm_efficiency.hpp)" : p.gemm_shape_source;
    }
    profiles.push_back({{"id", p.id},
                        {"kind", p.kind},
                        {"gpu", p.gpu},
                        {"confidence", p.confidence},
                        {"overlap_interference", p.overlap_interference},
                        {"overlap_interference_provenance", cited(p.overlap_interference_from)},
                        {"collective_launch_s", p.collective_launch_s},
                        {"collective_launch_provenance", cited(p.collective_launch_from)},
                        {"comm_sms", static_cast<int64_t>(p.comm_sms)},
                        {"comm_sms_provenance", cited(p.comm_sms_from)},
                        {"gemm_shape", gemm},
                        {"sources", p.sources}});
  }
  Json out = {{"moesim_version", c.moesim_version},
          {"git_sha", c.git_sha},
          {"scenario_file", c.scenario_file},
          {"scenario_sha256", c.scenario_sha256},
          {"scenario_name", c.scenario_name},
          {"seed", c.seed},
          {"simgrid_version", c.simgrid_version},
          {"simgrid_settings", pairs_json(c.simgrid_settings)},
          {"fidelity", c.fidelity},
          {"fidelity_requested", c.fidelity_requested},
          {"model", c.model},
          {"cluster", c.cluster},
          {"gpus", c.gpus},
          {"ep_ranks", c.ep_ranks},
          {"mode", c.mode},
          {"tokens_per_rank", c.tokens_per_rank},
          {"profiles", profiles},
          {"approximations", c.approximations}};
  if (c.etp > 1) out["etp"] = c.etp;  // only with expert tensor parallelism: other outputs stay as they were
  if (c.dp > 1) {  // only with data-parallel replicas
    out["dp"] = c.dp;
    out["dp_simulated"] = c.dp_simulated;
    if (!c.dp_all_reason.empty()) out["dp_all_reason"] = c.dp_all_reason;
  }
  return out;
}

Json variant_json(const VariantResult& v, std::size_t index, bool include_events, bool include_wall) {
  Json j = {{"name", v.name}, {"schedule", v.schedule}, {"options", v.options}};
  if (!v.routing_sampler.empty()) j["routing_sampler"] = v.routing_sampler;
  // Only the points of a sweep carry the tag, so other reports keep their bytes.
  if (!v.sweep.empty()) j["sweep"] = {{"of", v.sweep.of}, {"key", v.sweep.key}, {"value", v.sweep.value}};
  j["step_time_s"] = v.step_time_s;
  j["per_layer_mean_s"] = v.per_layer_mean_s;
  j["compute_s"] = v.compute_s;
  j["comm_s"] = v.comm_s;
  j["exposed_comm_s"] = v.exposed_comm_s;
  j["overlap_ratio"] = v.overlap_ratio;
  j["load_imbalance"] = v.load_imbalance;
  j["load_imbalance_max"] = v.load_imbalance_max;
  j["dropped_tokens"] = v.dropped_tokens;
  j["speedup_vs_baseline"] = v.speedup_vs_baseline;
  j["time_by_class_s"] = v.time_by_class_s;
  j["ops_by_provenance"] = v.ops_by_provenance;
  j["extra"] = v.extra;
  j["ops"] = v.ops;
  j["simgrid_activities"] = v.simgrid_activities;
  if (include_wall) j["wall_s"] = v.wall_s;
  // Multi-step and MoE-metric fields appear only when the run has them, so single-step reports of the
  // existing schedules keep their bytes.
  if (v.steps > 1) {
    j["steps"] = v.steps;
    j["step_times_s"] = v.step_times_s;
  }
  if (!v.step_stats.empty()) {
    Json stats = Json::object();
    for (const auto& [name, d] : v.step_stats)
      stats[name] = {{"mean", d.mean}, {"p50", d.p50}, {"p99", d.p99}, {"max", d.max}, {"count", d.count}};
    j["step_stats"] = std::move(stats);
  }
  if (!v.map_layers.empty())
    j["precision_map"] = {{"layers", v.map_layers}, {"lowp_share", v.lowp_share}};
  // Only schedules that read per-token scores (dualsparse) have it, so other reports keep their bytes.
  if (const GateScoreStats& g = v.gate_scores; g.bins > 0) {
    Json gs = {{"scores", g.scores},
               {"norm_topk_prob", g.norm_topk_prob},
               {"bins", g.bins},
               {"bin_width", 1.0 / g.bins},
               {"pairs", g.pairs},
               {"mean", g.mean},
               {"p50", g.p50}};
    if (g.topk_mass_mean >= 0) gs["topk_mass_mean"] = g.topk_mass_mean;
    Json layers = Json::array();
    for (const auto& l : g.layers)
      layers.push_back(
          {{"layer", l.layer}, {"pairs", l.pairs}, {"mean", l.mean}, {"p50", l.p50}, {"counts", l.counts}});
    gs["layers"] = std::move(layers);
    j["gate_scores"] = std::move(gs);
  }
  // The rows are written by rows_text() into the dumped document (a multi-step run has one per step, layer
  // and rank); here a placeholder marks where.
  j["rows"] = rows_marker(index);
  if (include_events) {
    Json events = Json::array();
    for (const auto& e : v.events)
      events.push_back({{"rank", e.rank},
                        {"stream", e.stream},
                        {"name", e.name},
                        {"class", e.cls},
                        {"layer", e.layer},
                        {"chunk", e.chunk},
                        {"phase", e.phase},
                        {"start_s", e.start_s},
                        {"end_s", e.end_s}});
    j["events"] = std::move(events);
  }
  return j;
}

}  // namespace

std::string json_report(const RunResult& r, bool include_events, bool include_wall) {
  Json j = Json::object();
  j["schema"] = RunResult::kSchema;
  j["context"] = context_json(r.context);
  j["baseline"] = r.baseline;
  if (!r.baseline.empty()) j["speedup_scope"] = r.speedup_scope;
  Json variants = Json::array();
  for (std::size_t i = 0; i < r.variants.size(); ++i)
    variants.push_back(variant_json(r.variants[i], i, include_events, include_wall));
  j["variants"] = std::move(variants);
  // A summary of the sweeps (which variants are the points of which sweep, in order), only when there are any.
  if (const std::vector<Sweep> sw = sweeps_of(r); !sw.empty()) {
    Json all = Json::array();
    for (const Sweep& s : sw) {
      Json points = Json::array();
      for (const VariantResult* v : s.points) points.push_back({{"value", v->sweep.value}, {"variant", v->name}});
      all.push_back({{"of", s.of}, {"key", s.key}, {"points", std::move(points)}});
    }
    j["sweeps"] = std::move(all);
  }
  // Non-finite doubles become null; invalid UTF-8 in names is replaced rather than throwing mid-report.
  std::string text = j.dump(2, ' ', false, Json::error_handler_t::replace) + '\n';
  std::string out;
  std::size_t from = 0;
  for (std::size_t i = 0; i < r.variants.size(); ++i) {
    std::string marker;
    append_value(marker, rows_marker(i));
    const std::size_t at = text.find(marker, from);
    if (at == std::string::npos) throw std::logic_error("json_report: rows marker missing");
    out.append(text, from, at - from);
    out += rows_text(r.variants[i]);
    from = at + marker.size();
  }
  out.append(text, from, std::string::npos);
  return out;
}

}  // namespace moesim::reports
