// Chrome trace-event JSON (JSON object format) for ui.perfetto.dev / chrome://tracing: one process per
// variant, one thread per (rank, stream). Times are microseconds, rounded to whole nanoseconds so that
// hand-written checks (1.5e-3 s -> 1500 us) hold exactly and events of one thread do not drift into overlap.
#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "reports/reports.hpp"

namespace moesim::reports {
namespace {

using Json = nlohmann::ordered_json;

double ns_of(double seconds) { return std::round(seconds * 1e9); }

std::string thread_name(int rank, int stream) {
  if (stream == 0) return fmt::format("rank {} compute", rank);
  if (stream == 1) return fmt::format("rank {} comm", rank);
  if (stream == 2) return fmt::format("rank {} dp", rank);
  return fmt::format("rank {} stream {}", rank, stream);
}

Json meta(const char* what, int pid, int tid, Json args) {
  return {{"name", what}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", std::move(args)}};
}

}  // namespace

std::string perfetto_trace(const RunResult& r) {
  std::vector<Json> events;
  for (std::size_t vi = 0; vi < r.variants.size(); ++vi) {
    const VariantResult& v = r.variants[vi];
    const int pid = static_cast<int>(vi) + 1;
    events.push_back(meta("process_name", pid, 0, {{"name", fmt::format("{} ({})", v.name, v.schedule)}}));
    events.push_back(meta("process_sort_index", pid, 0, {{"sort_index", pid}}));
    // Threads numbered in (rank, stream) order, so rank 0 compute, rank 0 comm, rank 1 compute, ...
    std::map<std::pair<int, int>, int> tid_of;
    for (const auto& e : v.events) tid_of.emplace(std::pair{e.rank, e.stream}, 0);
    int tid = 0;
    for (auto& [key, id] : tid_of) {
      id = ++tid;
      const auto [rank, stream] = key;
      events.push_back(meta("thread_name", pid, tid, {{"name", thread_name(rank, stream)}}));
      events.push_back(meta("thread_sort_index", pid, tid, {{"sort_index", tid}}));
    }
    for (const auto& e : v.events) {
      const double start_ns = ns_of(e.start_s);
      const double dur_ns = std::max(0.0, ns_of(e.end_s) - start_ns);
      events.push_back({{"name", e.name},
                        {"cat", e.cls},
                        {"ph", "X"},
                        {"pid", pid},
                        {"tid", tid_of.at({e.rank, e.stream})},
                        {"ts", start_ns / 1e3},
                        {"dur", dur_ns / 1e3},
                        {"args", {{"class", e.cls}, {"layer", e.layer}, {"chunk", e.chunk}, {"phase", e.phase}}}});
    }
  }
  // One event per line: diffable and still one JSON document.
  std::string out = "{\"traceEvents\":[\n";
  for (std::size_t i = 0; i < events.size(); ++i)
    out += events[i].dump(-1, ' ', false, Json::error_handler_t::replace) + (i + 1 < events.size() ? ",\n" : "\n");
  const RunContext& c = r.context;
  Json other = {{"schema", RunResult::kSchema}, {"moesim_version", c.moesim_version}, {"git_sha", c.git_sha},
                {"scenario_name", c.scenario_name}, {"model", c.model},     {"cluster", c.cluster},
                {"fidelity", c.fidelity},           {"seed", c.seed}};
  out += "],\"displayTimeUnit\":\"ns\",\"otherData\":" + other.dump(-1, ' ', false, Json::error_handler_t::replace) +
         "}\n";
  return out;
}

}  // namespace moesim::reports
