// Chrome trace-event JSON (JSON object format) for ui.perfetto.dev / chrome://tracing: one process per
// variant, one thread per (rank, stream). Times are microseconds, rounded to whole nanoseconds so that
// hand-written checks (1.5e-3 s -> 1500 us) hold exactly and events of one thread do not drift into overlap.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
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

// Metadata events carry ts 0 too: the format does not need it, but some consumers expect every event to have one.
Json meta(const char* what, int pid, int tid, Json args) {
  return {{"name", what}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"ts", 0}, {"args", std::move(args)}};
}

// The dispatch ops that feed expert op `x`: walk its deps back within the same (step, layer, phase), through
// every op but other expert ops (a chunk's expert GEMM waits for the previous chunk's on its stream, which must
// not make the earlier chunk's dispatch count as feeding it), and stop at each dispatch reached. Covers expert
// GEMMs that wait for the dispatch directly and those behind a permute or an ETP all-gather.
std::set<uint32_t> feeding_dispatches(const std::vector<TraceEvent>& ev, uint32_t x) {
  std::set<uint32_t> found, seen;
  std::vector<uint32_t> todo(ev[x].deps.begin(), ev[x].deps.end());
  const TraceEvent& e = ev[x];
  while (!todo.empty()) {
    const uint32_t d = todo.back();
    todo.pop_back();
    if (d >= ev.size() || !seen.insert(d).second) continue;
    const TraceEvent& p = ev[d];
    if (p.step != e.step || p.layer != e.layer || p.phase != e.phase || p.cls == "expert") continue;
    if (p.cls == "dispatch") {
      found.insert(d);
      continue;
    }
    todo.insert(todo.end(), p.deps.begin(), p.deps.end());
  }
  return found;
}

// Flow arrows kept at most, over the whole trace: an all-to-all feeds up to ranks^2 (dispatch, expert) pairs per
// layer, chunk and phase, which for large runs would make the file hundreds of MB; the rest are counted in
// otherData.flows_left_out (arrows are kept in op order, so the first layers keep theirs).
constexpr int64_t kMaxFlows = 200000;

// Busiest ranks shown with byte counters (by bytes sent + received over the run, ties to the lower rank).
constexpr std::size_t kCounterRanks = 4;

}  // namespace

std::string perfetto_trace(const RunResult& r) {
  std::vector<Json> events;
  int64_t flow_id = 0;  // flow ids are unique over the whole trace
  int64_t flows_left_out = 0;
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
                        {"args",
                         {{"class", e.cls},
                          {"layer", e.layer},
                          {"chunk", e.chunk},
                          {"phase", e.phase},
                          {"step", e.step}}}});
    }
    // Flows: an arrow from each rank's dispatch op to every expert op it sends tokens to (the members of the
    // dispatch all-to-all that feeds the expert op and send a non-zero byte count to its rank). The arrow leaves
    // the dispatch slice no later than the expert op starts and lands mid-way through the expert slice, so both
    // ends bind to their enclosing slices and the flow never runs backwards in time.
    std::map<int, std::vector<uint32_t>> dispatch_of;  // collective -> its members' dispatch events
    for (uint32_t i = 0; i < v.events.size(); ++i)
      if (v.events[i].cls == "dispatch" && v.events[i].collective >= 0)
        dispatch_of[v.events[i].collective].push_back(i);
    for (uint32_t x = 0; x < v.events.size(); ++x) {
      const TraceEvent& e = v.events[x];
      if (e.cls != "expert") continue;
      const double x_start = ns_of(e.start_s), x_end = std::max(x_start, ns_of(e.end_s));
      for (uint32_t d : feeding_dispatches(v.events, x))
        for (uint32_t src : dispatch_of[v.events[d].collective]) {
          const TraceEvent& se = v.events[src];
          if (!std::binary_search(se.sends_to.begin(), se.sends_to.end(), e.rank)) continue;
          if (flow_id >= kMaxFlows) {
            ++flows_left_out;
            continue;
          }
          const double s_start = ns_of(se.start_s), s_end = std::max(s_start, ns_of(se.end_s));
          const double s_ts = s_start + std::clamp(x_start - s_start, 0.0, s_end - s_start) / 2;
          const double f_ts = std::max(s_ts, x_start + (x_end - x_start) / 2);
          ++flow_id;
          Json args = {{"bytes_sent_by_source_B", se.bytes_sent}, {"layer", e.layer}, {"phase", e.phase}};
          events.push_back({{"name", "dispatch to expert"}, {"cat", "flow"}, {"ph", "s"}, {"id", flow_id},
                            {"pid", pid}, {"tid", tid_of.at({se.rank, se.stream})}, {"ts", s_ts / 1e3},
                            {"args", args}});
          events.push_back({{"name", "dispatch to expert"}, {"cat", "flow"}, {"ph", "f"}, {"bp", "e"},
                            {"id", flow_id}, {"pid", pid}, {"tid", tid_of.at({e.rank, e.stream})},
                            {"ts", f_ts / 1e3}, {"args", std::move(args)}});
        }
    }
    // Counters: for the busiest ranks, the bytes of the collective ops (all-to-alls, ETP all-gathers and
    // reduce-scatters, DP all-reduce) in progress on that rank, sent and received. Each op's whole payload counts
    // from its start to its end: the engine does not export per-link flows, so this is a per-rank step
    // function, not link occupancy.
    std::map<int, double> rank_bytes;
    for (const auto& e : v.events)
      if (e.collective >= 0) rank_bytes[e.rank] += e.bytes_sent + e.bytes_received;
    std::vector<std::pair<int, double>> busiest(rank_bytes.begin(), rank_bytes.end());
    std::stable_sort(busiest.begin(), busiest.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (std::size_t k = 0; k < busiest.size() && k < kCounterRanks && busiest[k].second > 0; ++k) {
      const int rank = busiest[k].first;
      std::map<double, std::pair<double, double>> delta;  // ns -> (sent, received) change
      for (const auto& e : v.events) {
        if (e.rank != rank || e.collective < 0 || e.bytes_sent + e.bytes_received <= 0) continue;
        const double a = ns_of(e.start_s), b = std::max(a, ns_of(e.end_s));
        delta[a].first += e.bytes_sent, delta[a].second += e.bytes_received;
        delta[b].first -= e.bytes_sent, delta[b].second -= e.bytes_received;
      }
      double sent = 0, received = 0;
      const std::string name = fmt::format("rank {} bytes of collectives in progress", rank);
      for (const auto& [ns, d] : delta) {
        sent += d.first, received += d.second;
        // Sums of +x and -x can leave rounding dust; below a byte is nothing in flight.
        if (std::abs(sent) < 0.5) sent = 0;
        if (std::abs(received) < 0.5) received = 0;
        events.push_back({{"name", name}, {"cat", "bytes"}, {"ph", "C"}, {"pid", pid}, {"tid", 0},
                          {"ts", ns / 1e3}, {"args", {{"sent_B", sent}, {"received_B", received}}}});
      }
    }
  }
  // One event per line: diffable and still one JSON document.
  std::string out = "{\"traceEvents\":[\n";
  for (std::size_t i = 0; i < events.size(); ++i)
    out += events[i].dump(-1, ' ', false, Json::error_handler_t::replace) + (i + 1 < events.size() ? ",\n" : "\n");
  const RunContext& c = r.context;
  Json other = {{"schema", RunResult::kSchema}, {"moesim_version", c.moesim_version}, {"git_sha", c.git_sha},
                {"scenario_name", c.scenario_name}, {"model", c.model},     {"cluster", c.cluster},
                {"fidelity", c.fidelity},           {"seed", c.seed},
                {"flows", flow_id},                 {"flows_left_out", flows_left_out}};
  out += "],\"displayTimeUnit\":\"ns\",\"otherData\":" + other.dump(-1, ' ', false, Json::error_handler_t::replace) +
         "}\n";
  return out;
}

}  // namespace moesim::reports
