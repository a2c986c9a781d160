// A hand-built RunResult with events shaped like a real MoE layer (shared by the chart, trace and browser tests),
// and small checkers: an XML well-formedness walk of the SVG and a trace-event format validator.
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/result.hpp"

namespace moesim::testing {

// 4 ranks, layers 0 (dense) and 1, 2 (MoE); step 0 and 1. Per (step, layer 1, fwd) and rank: attention
// (compute), dispatch (comm, one all-to-all), expert (compute), combine (comm). Rank 0's expert waits for an
// expert_all_gather that waits for its dispatch (an indirect feed); the others wait for the dispatch directly.
// Dispatch destinations (sends_to, bytes 100 B per destination): rank 0 -> {1, 2}, rank 1 -> {0}, rank 2 -> {},
// rank 3 -> {0, 1, 2}. A backward dispatch + expert and step 1's layer 1 exist too (left out of the timeline).
inline VariantResult fixture_variant(const std::string& name, double scale) {
  VariantResult v;
  v.name = name;
  v.schedule = "topk";
  v.step_time_s = 4e-3 * scale;
  v.compute_s = 2e-3 * scale;
  v.exposed_comm_s = 1e-3 * scale;
  v.time_by_class_s = {{"attention", 1e-3 * scale}, {"dispatch", 5e-4 * scale}, {"expert", 1.5e-3 * scale},
                       {"combine", 5e-4 * scale}, {"cast", 0.0}};
  for (int step = 0; step < 2; ++step)
    for (int layer = 0; layer < 3; ++layer)
      for (int rank = 0; rank < 4; ++rank) {
        LayerRankRow row;
        row.step = step;
        row.layer = layer;
        row.rank = rank;
        row.tokens_received = layer == 0 ? 0 : 100 * (rank + 1) + 10 * step;  // dense layer 0 receives none
        v.rows.push_back(row);
      }
  const std::vector<std::vector<int>> sends = {{1, 2}, {0}, {}, {0, 1, 2}};
  auto add = [&](int rank, int stream, const std::string& cls, int layer, const std::string& phase, int step,
                 double start, double end, std::vector<uint32_t> deps, int collective = -1) {
    TraceEvent e;
    e.rank = rank;
    e.stream = stream;
    e.name = e.cls = cls;
    e.layer = layer;
    e.phase = phase;
    e.step = step;
    e.start_s = start * scale;
    e.end_s = end * scale;
    e.deps = std::move(deps);
    e.collective = collective;
    v.events.push_back(std::move(e));
    return static_cast<uint32_t>(v.events.size() - 1);
  };
  auto layer_ops = [&](int step, const std::string& phase, double t, int coll) {
    std::vector<uint32_t> disp(4);
    for (int r = 0; r < 4; ++r) {
      const uint32_t a = add(r, 0, "attention", 1, phase, step, t, t + 1e-4 * (r + 1), {});
      disp[static_cast<std::size_t>(r)] = add(r, 1, "dispatch", 1, phase, step, t + 4e-4, t + 6e-4, {a}, coll);
    }
    for (int r = 0; r < 4; ++r) {
      TraceEvent& d = v.events[disp[static_cast<std::size_t>(r)]];
      d.sends_to = sends[static_cast<std::size_t>(r)];
      d.bytes_sent = 100.0 * static_cast<double>(d.sends_to.size());
    }
    for (int r = 0; r < 4; ++r)  // received: the senders that list r
      for (int i = 0; i < 4; ++i)
        if (std::count(sends[static_cast<std::size_t>(i)].begin(), sends[static_cast<std::size_t>(i)].end(), r))
          v.events[disp[static_cast<std::size_t>(r)]].bytes_received += 100.0;
    for (int r = 0; r < 4; ++r) {
      uint32_t feed = disp[static_cast<std::size_t>(r)];
      if (r == 0) feed = add(0, 1, "expert_all_gather", 1, phase, step, t + 6e-4, t + 7e-4, {feed}, coll + 1);
      const uint32_t x = add(r, 0, "expert", 1, phase, step, t + 7e-4, t + 9e-4, {feed});
      add(r, 1, "combine", 1, phase, step, t + 9e-4, t + 1.1e-3, {x}, coll + 2);
    }
  };
  add(0, 0, "attention", 0, "fwd", 0, 0.0, 1e-4, {});  // dense layer 0, rank 0 only
  layer_ops(0, "fwd", 1e-3, 0);
  layer_ops(0, "bwd", 3e-3, 3);
  layer_ops(1, "fwd", 5e-3, 6);
  return v;
}

inline RunResult fixture_result() {
  RunResult r;
  r.context.scenario_name = "fixture <&>";
  r.variants.push_back(fixture_variant("base", 1.0));
  r.variants.push_back(fixture_variant("slow & \"quoted\"", 1.5));
  r.variants[1].time_by_class_s["combine"] = 0;  // no combine segment for this variant
  return r;
}

// Events of (step 0, layer, fwd) of a variant.
inline std::size_t fwd_ops_of_layer(const VariantResult& v, int layer) {
  return static_cast<std::size_t>(std::count_if(v.events.begin(), v.events.end(), [&](const TraceEvent& e) {
    return e.step == 0 && e.layer == layer && e.phase == "fwd";
  }));
}

inline std::size_t occurrences(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

// Walks the tags of `html` from the first "<svg" to the end of each SVG and checks they nest (XML rules: every
// element closed, in order; attribute values quoted). Returns "" when well-formed, else what is wrong.
inline std::string svg_problems(const std::string& html) {
  std::size_t svgs = 0;
  for (std::size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p)) {
    ++svgs;
    std::vector<std::string> stack;
    do {
      const std::size_t close = html.find('>', p);
      if (close == std::string::npos) return "unterminated tag";
      const std::string tag = html.substr(p + 1, close - p - 1);
      if (tag.empty()) return "empty tag";
      if (std::count(tag.begin(), tag.end(), '"') % 2 != 0) return "odd quotes in <" + tag + ">";
      if (tag[0] == '/') {
        if (stack.empty() || stack.back() != tag.substr(1)) return "misnested </" + tag.substr(1) + ">";
        stack.pop_back();
      } else if (tag.back() != '/') {
        stack.push_back(tag.substr(0, tag.find_first_of(" \n")));
      }
      p = stack.empty() ? close : html.find('<', close);
      if (p == std::string::npos) return "unclosed <" + stack.back() + ">";
    } while (!stack.empty());
  }
  return svgs > 0 ? "" : "no svg";
}

// Checks a Chrome trace-event JSON document against the format's rules; returns the problems found ("" when
// none). Every event has name, ph, ts, pid, tid; "X" has dur >= 0; each flow id has exactly one "s" and one "f",
// the "f" no earlier than the "s", and each end lies inside an "X" slice of its (pid, tid) (what it binds to);
// "C" events have an args object of numbers.
inline std::string trace_problems(const nlohmann::json& j, std::size_t* flows = nullptr,
                                  std::size_t* counters = nullptr) {
  if (!j.contains("traceEvents") || !j["traceEvents"].is_array()) return "no traceEvents array";
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> slices;
  struct End {
    int s = 0, f = 0;
    double s_ts = 0, f_ts = 0;
  };
  std::map<int64_t, End> ends;
  std::string why;
  std::size_t c = 0;
  for (const auto& e : j["traceEvents"]) {
    for (const char* k : {"name", "ph", "ts", "pid", "tid"})
      if (!e.contains(k)) return std::string("event without ") + k + ": " + e.dump();
    if (!e["ts"].is_number()) return "ts not a number: " + e.dump();
    const std::string ph = e["ph"];
    const double ts = e["ts"];
    if (ph == "X") {
      if (!e.contains("dur") || !e["dur"].is_number() || e["dur"].get<double>() < 0) return "bad dur: " + e.dump();
      slices[{e["pid"], e["tid"]}].emplace_back(ts, ts + e["dur"].get<double>());
    } else if (ph == "s" || ph == "f") {
      if (!e.contains("id")) return "flow without id: " + e.dump();
      End& en = ends[e["id"].get<int64_t>()];
      (ph == "s" ? en.s : en.f) += 1;
      (ph == "s" ? en.s_ts : en.f_ts) = ts;
    } else if (ph == "C") {
      ++c;
      if (!e.contains("args") || !e["args"].is_object() || e["args"].empty()) return "counter without args";
      for (const auto& [k, val] : e["args"].items())
        if (!val.is_number()) return "counter arg " + k + " not a number";
    } else if (ph != "M") {
      return "unexpected ph " + ph;
    }
  }
  auto inside = [&](const nlohmann::json& e) {
    const double ts = e["ts"];
    for (const auto& [a, b] : slices[{e["pid"], e["tid"]}])
      if (a <= ts && ts <= b) return true;
    return false;
  };
  for (const auto& e : j["traceEvents"])
    if ((e["ph"] == "s" || e["ph"] == "f") && !inside(e)) return "flow end outside any slice: " + e.dump();
  for (const auto& [id, en] : ends) {
    if (en.s != 1 || en.f != 1) return "flow id " + std::to_string(id) + " not one s and one f";
    if (en.f_ts < en.s_ts) return "flow id " + std::to_string(id) + " runs backwards";
  }
  if (flows) *flows = ends.size();
  if (counters) *counters = c;
  return why;
}

}  // namespace moesim::testing
