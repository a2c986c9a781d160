#include "sim/collective_bench.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "sim/diagnostics.hpp"
#include "sim/units.hpp"

namespace moesim {

namespace {

struct KindInfo {
  CollectiveKind kind;
  const char* name;
};
constexpr KindInfo kKinds[] = {{CollectiveKind::all_to_all, "all_to_all"},
                               {CollectiveKind::all_gather, "all_gather"},
                               {CollectiveKind::reduce_scatter, "reduce_scatter"},
                               {CollectiveKind::all_reduce, "all_reduce"}};

// Collectives the engine runs per size: an all_reduce is a reduce_scatter then an all_gather.
int collectives_per_size(CollectiveKind k) { return k == CollectiveKind::all_reduce ? 2 : 1; }

// "0-7", "0-3,8-11": GPU ids as ranges, for headers.
std::string gpu_ranges(const std::vector<int>& gpus) {
  std::string out;
  for (std::size_t i = 0; i < gpus.size();) {
    std::size_t j = i;
    while (j + 1 < gpus.size() && gpus[j + 1] == gpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", gpus[i]) : fmt::format("{}-{}", gpus[i], gpus[j]);
    i = j + 1;
  }
  return out;
}

// nccl-tests prints times with 2, 1 or 0 decimals as they grow (common.cu); so does moesim.
std::string format_time_us(double us) {
  if (us >= 10000.0) return fmt::format("{:.0f}", us);
  if (us >= 100.0) return fmt::format("{:.1f}", us);
  return fmt::format("{:.2f}", us);
}

const char* redop_name(CollectiveKind k) {
  return k == CollectiveKind::all_reduce || k == CollectiveKind::reduce_scatter ? "sum" : "none";
}

}  // namespace

const char* collective_kind_name(CollectiveKind k) {
  for (const auto& i : kKinds)
    if (i.kind == k) return i.name;
  return "?";
}

std::vector<std::string> collective_kind_names() {
  std::vector<std::string> v;
  for (const auto& i : kKinds) v.emplace_back(i.name);
  return v;
}

std::optional<CollectiveKind> parse_collective_kind(std::string_view name) {
  for (const auto& i : kKinds)
    if (name == i.name) return i.kind;
  return std::nullopt;
}

double bus_bandwidth_factor(CollectiveKind k, int n) {
  const double f = (n - 1.0) / n;
  return k == CollectiveKind::all_reduce ? 2.0 * f : f;
}

std::string collective_algorithm_note(CollectiveKind k) {
  switch (k) {
    case CollectiveKind::all_to_all:
      return "every rank sends S/n to every other rank at once, one flow per ordered pair (NCCL's grouped "
             "send/recv)";
    case CollectiveKind::all_gather:
      return "direct exchange: every rank sends its S/n shard to every other rank at once; on a non-blocking "
             "switch this is a ring's (n-1)/n x S / B";
    case CollectiveKind::reduce_scatter:
      return "direct exchange: every rank sends every other rank its S/n partial of that rank's block at once "
             "(the reduction itself is not costed); on a non-blocking switch a ring's (n-1)/n x S / B";
    case CollectiveKind::all_reduce:
      return "reduce_scatter then all_gather, each a direct exchange; on a non-blocking switch a ring's "
             "2(n-1)/n x S / B (NVLS, tree and CollNet algorithms are not modelled)";
  }
  return "";
}

BenchSize nccl_size(CollectiveKind k, double requested_bytes, int ranks) {
  // nccl-tests' setupArgs: count = size / wordsize; the split collectives keep (count / n) x n elements.
  BenchSize s;
  s.requested_bytes = requested_bytes;
  const auto elements = static_cast<int64_t>(std::floor(requested_bytes / kBenchWordBytes));
  if (k == CollectiveKind::all_reduce) {
    s.count = elements;
    s.bytes = static_cast<double>(elements) * kBenchWordBytes;
  } else {
    s.count = elements / ranks;
    s.bytes = static_cast<double>(s.count) * ranks * kBenchWordBytes;
  }
  return s;
}

std::vector<double> parse_size_sweep(const std::string& text, double step_factor) {
  if (!(step_factor > 1.0) || !std::isfinite(step_factor))
    throw std::invalid_argument(fmt::format("--step-factor {}: must be above 1 (each size is the previous one "
                                            "times it, like nccl-tests -f)",
                                            step_factor));
  const auto colon = text.find(':');
  auto parse_one = [&](std::string_view part, const char* what) {
    std::string why;
    const auto v = parse_quantity(part, Dim::bytes, &why);
    if (!v) throw std::invalid_argument(fmt::format("--sizes {}: {}: {}", escape_control(text), what, why));
    if (!(*v >= 1.0))
      throw std::invalid_argument(fmt::format("--sizes {}: {} must be at least 1 B", escape_control(text), what));
    if (*v > kBenchMaxBytes)
      throw std::invalid_argument(fmt::format("--sizes {}: {} is above 1 TiB", escape_control(text), what));
    return *v;
  };
  if (colon == std::string::npos) return {std::floor(parse_one(text, "the size"))};  // whole bytes
  if (text.find(':', colon + 1) != std::string::npos)
    throw std::invalid_argument(fmt::format("--sizes {}: expected MIN:MAX (one colon), e.g. 1MiB:1GiB",
                                            escape_control(text)));
  const double lo = parse_one(std::string_view(text).substr(0, colon), "MIN");
  const double hi = parse_one(std::string_view(text).substr(colon + 1), "MAX");
  if (lo > hi)
    throw std::invalid_argument(fmt::format("--sizes {}: MIN ({}) is above MAX ({})", escape_control(text),
                                            format_bytes(lo), format_bytes(hi)));
  std::vector<double> sizes;
  // Whole bytes, like nccl-tests; the relative slack keeps MAX when MIN x f^k reaches it with rounding error.
  for (double s = lo; s <= hi * (1.0 + 1e-12); s *= step_factor) {
    if (static_cast<int>(sizes.size()) == kBenchMaxSizes)
      throw std::invalid_argument(fmt::format("--sizes {} with --step-factor {}: more than {} sizes; raise the "
                                              "step factor or narrow the range",
                                              escape_control(text), step_factor, kBenchMaxSizes));
    sizes.push_back(std::floor(s));
  }
  return sizes;
}

BenchGraph build_bench_graph(CollectiveKind k, int ranks, const std::vector<double>& bytes) {
  BenchGraph bg;
  bg.graph = OpGraph(ranks);
  OpGraph& g = bg.graph;
  std::vector<int> members(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) members[static_cast<std::size_t>(r)] = r;
  std::vector<OpId> previous;  // ops of the collective before, all ranks
  // A zero-length op on rank 0's compute stream that ends when every rank has finished `previous`; the next
  // collective's ops wait for it. Without it a rank that finishes early would start the next size early.
  auto barrier = [&](int layer) {
    return g.add_compute(0, Stream::compute, OpClass::other, Phase::forward, layer, 0.0, Provenance::emergent,
                         previous);
  };
  auto collective = [&](OpKind kind, double S, OpId after, int layer) {
    // Every ordered pair of distinct ranks moves S/n (the diagonal stays in the rank): the all-to-all's
    // chunk, the all-gather's shard, the reduce-scatter's partial block.
    std::vector<double> m(static_cast<std::size_t>(ranks) * ranks, S / ranks);
    for (int r = 0; r < ranks; ++r) m[static_cast<std::size_t>(r) * ranks + r] = 0.0;
    std::vector<std::vector<OpId>> deps;
    if (after != kNoOp) deps.assign(static_cast<std::size_t>(ranks), {after});
    const OpClass cls = kind == OpKind::all_gather       ? OpClass::expert_all_gather
                        : kind == OpKind::reduce_scatter ? OpClass::expert_reduce_scatter
                                                         : OpClass::dispatch;
    previous = g.add_collective(kind, members, Stream::comm, cls, Phase::forward, layer, std::move(m), deps);
  };
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const int layer = static_cast<int>(i);
    const OpId start = previous.empty() ? kNoOp : barrier(layer);
    bg.start_after.push_back(start);
    switch (k) {
      case CollectiveKind::all_to_all: collective(OpKind::all_to_all, bytes[i], start, layer); break;
      case CollectiveKind::all_gather: collective(OpKind::all_gather, bytes[i], start, layer); break;
      case CollectiveKind::reduce_scatter: collective(OpKind::reduce_scatter, bytes[i], start, layer); break;
      case CollectiveKind::all_reduce:
        collective(OpKind::reduce_scatter, bytes[i], start, layer);
        collective(OpKind::all_gather, bytes[i], barrier(layer), layer);
        g.continue_call(g.op(previous.front()).collective);  // one NCCL call: one launch
        break;
    }
    bg.last_ops.push_back(previous);
  }
  return bg;
}

double bench_exact_flows(CollectiveKind k, int ranks, std::size_t sizes) {
  return static_cast<double>(sizes) * collectives_per_size(k) * ranks * (ranks - 1.0);
}

std::optional<std::string> collective_bench_problem(const topo::Cluster& cluster, const CollectiveBenchOptions& opt) {
  const auto gpus = static_cast<int>(cluster.gpu_count());
  if (opt.gpus.size() < 2)
    return fmt::format("a collective needs at least 2 ranks (got {})", opt.gpus.size());
  if (static_cast<int>(opt.gpus.size()) > gpus)
    return fmt::format("{} ranks, but the cluster has {} GPUs", opt.gpus.size(), gpus);
  std::set<int> seen;
  for (int g : opt.gpus) {
    if (g < 0 || g >= gpus) return fmt::format("GPU {} does not exist (the cluster has GPUs 0-{})", g, gpus - 1);
    if (!seen.insert(g).second) return fmt::format("GPU {} is listed twice", g);
  }
  if (opt.sizes.empty()) return std::string("no sizes to run");
  const int n = static_cast<int>(opt.gpus.size());
  for (double s : opt.sizes)
    if (nccl_size(opt.kind, s, n).count < 1)
      return fmt::format("size {} B is below one {}-byte element per rank for {} ranks ({} B at least)",
                         s, kBenchWordBytes, n, kBenchWordBytes * n);
  return std::nullopt;
}

CollectiveBenchResult run_collective_bench(const topo::Cluster& cluster, const std::string& cluster_label,
                                           const CollectiveBenchOptions& opt) {
  if (auto why = collective_bench_problem(cluster, opt)) throw std::invalid_argument(*why);
  const int n = static_cast<int>(opt.gpus.size());
  CollectiveBenchResult r;
  r.kind = opt.kind;
  r.cluster = cluster_label;
  r.description = cluster.description;
  r.gpus = opt.gpus;
  r.exact_flows = bench_exact_flows(opt.kind, n, opt.sizes.size());
  r.fidelity_requested = opt.fidelity ? fidelity_name(*opt.fidelity) : "auto";
  r.fidelity = opt.fidelity ? *opt.fidelity : (r.exact_flows <= kBenchExactFlowBudget ? Fidelity::exact : Fidelity::fast);
  if (!(opt.launch_s >= 0.0)) throw std::invalid_argument("collective launch time must be >= 0");
  EngineOptions eo;
  eo.fidelity = r.fidelity;
  eo.collective_launch_s = opt.launch_s;
  r.launch_s = opt.launch_s;
  r.launch_from = opt.launch_from;
  r.simgrid_settings = simgrid_settings(eo);

  std::vector<double> bytes;
  for (double s : opt.sizes) {
    const BenchSize b = nccl_size(opt.kind, s, n);
    r.rows.push_back({b.requested_bytes, b.bytes, b.count, 0, 0, 0});
    bytes.push_back(b.bytes);
  }
  const BenchGraph bg = build_bench_graph(opt.kind, n, bytes);
  const PlatformSpec platform = cluster.lower(opt.gpus);
  std::set<int> nodes;
  for (int g : opt.gpus) nodes.insert(platform.gpu_node[static_cast<std::size_t>(g)]);
  r.nodes = static_cast<int>(nodes.size());
  const Trace t = run_engine(platform, opt.gpus, bg.graph, eo);
  double bus_sum = 0;
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    const double start = bg.start_after[i] == kNoOp ? 0.0 : t.end_s[bg.start_after[i]];
    double end = start;
    for (OpId id : bg.last_ops[i]) end = std::max(end, t.end_s[id]);
    CollectiveBenchRow& row = r.rows[i];
    row.time_s = end - start;
    row.algbw_Bps = row.time_s > 0 ? row.size_bytes / row.time_s : 0.0;
    row.busbw_Bps = row.algbw_Bps * bus_bandwidth_factor(opt.kind, n);
    bus_sum += row.busbw_Bps;
  }
  r.avg_busbw_Bps = bus_sum / static_cast<double>(r.rows.size());
  return r;
}

namespace {
std::vector<std::string> header_lines(const CollectiveBenchResult& r) {
  const int n = static_cast<int>(r.gpus.size());
  std::vector<std::string> h;
  h.push_back(fmt::format("moesim collective {}: cluster {}{}", collective_kind_name(r.kind), r.cluster,
                          r.description.empty() ? "" : " (" + r.description + ")"));
  h.push_back(fmt::format("ranks {} on GPUs {} ({} node{})", n, gpu_ranges(r.gpus), r.nodes, r.nodes == 1 ? "" : "s"));
  h.push_back(fmt::format("fidelity {} (requested {}; exact would simulate {:.0f} flows)", fidelity_name(r.fidelity),
                          r.fidelity_requested, r.exact_flows));
  h.push_back("algorithm: " + collective_algorithm_note(r.kind));
  h.push_back("each size runs alone: sizes follow each other on one stream with a barrier between them");
  if (r.launch_s > 0)
    h.push_back(fmt::format("per-call launch {:.4g} us on every rank before its data moves (all_reduce: once for both "
                            "halves){}; no other protocol overhead; the presets' link bandwidths are NCCL-achievable "
                            "figures", r.launch_s * 1e6, r.launch_from.empty() ? "" : fmt::format(" ({})", r.launch_from)));
  else
    h.push_back("no per-call launch cost (--launch 0) and no protocol overhead: bytes and route latency only; the "
                "presets' link bandwidths are NCCL-achievable figures");
  h.push_back(fmt::format("size S and busbw as nccl-tests (doc/PERFORMANCE.md): algbw = S / time, busbw = algbw "
                          "x {} = {:.4g}; datatype float (4 B), count in elements",
                          r.kind == CollectiveKind::all_reduce ? "2(n-1)/n" : "(n-1)/n",
                          bus_bandwidth_factor(r.kind, n)));
  std::string s = "simgrid " + simgrid_version() + ":";
  for (const auto& [k, v] : r.simgrid_settings) s += fmt::format(" {}:{}", k, v);
  h.push_back(s);
  return h;
}
}  // namespace

std::string collective_bench_table(const CollectiveBenchResult& r) {
  std::string out;
  for (const auto& l : header_lines(r)) out += "# " + l + "\n";
  out += "#\n";
  out += fmt::format("# {:>10}  {:>12}  {:>6}  {:>6}  {:>9}  {:>8}  {:>8}\n", "size", "count", "type", "redop",
                     "time", "algbw", "busbw");
  out += fmt::format("# {:>10}  {:>12}  {:>6}  {:>6}  {:>9}  {:>8}  {:>8}\n", "(B)", "(elements)", "", "", "(us)",
                     "(GB/s)", "(GB/s)");
  for (const auto& row : r.rows)
    out += fmt::format("{:>12.0f}  {:>12}  {:>6}  {:>6}  {:>9}  {:>8.2f}  {:>8.2f}\n", row.size_bytes, row.count,
                       "float", redop_name(r.kind), format_time_us(row.time_s * 1e6), row.algbw_Bps / 1e9,
                       row.busbw_Bps / 1e9);
  out += fmt::format("# Avg bus bandwidth    : {:.2f} GB/s\n", r.avg_busbw_Bps / 1e9);
  return out;
}

std::string collective_bench_json(const CollectiveBenchResult& r) {
  using Json = nlohmann::ordered_json;
  Json j;
  j["schema"] = "moesim-collective/1";
  Json c;
  c["moesim_version"] = MOESIM_VERSION;
  c["git_sha"] = MOESIM_GIT_SHA;
  c["simgrid_version"] = simgrid_version();
  Json settings = Json::object();
  for (const auto& [k, v] : r.simgrid_settings) settings[k] = v;
  c["simgrid_settings"] = settings;
  c["fidelity"] = fidelity_name(r.fidelity);
  c["fidelity_requested"] = r.fidelity_requested;
  c["exact_flows"] = r.exact_flows;
  c["launch_s"] = r.launch_s;
  c["launch_from"] = r.launch_from;
  c["cluster"] = r.cluster;
  c["cluster_description"] = r.description;
  c["collective"] = collective_kind_name(r.kind);
  c["ranks"] = r.gpus.size();
  c["gpus"] = r.gpus;
  c["nodes"] = r.nodes;
  c["algorithm"] = collective_algorithm_note(r.kind);
  c["datatype"] = "float";
  c["element_bytes"] = kBenchWordBytes;
  c["bus_bandwidth_factor"] = bus_bandwidth_factor(r.kind, static_cast<int>(r.gpus.size()));
  j["context"] = c;
  Json rows = Json::array();
  for (const auto& row : r.rows) {
    Json x;
    x["requested_bytes"] = row.requested_bytes;
    x["size_bytes"] = row.size_bytes;
    x["count_elements"] = row.count;
    x["time_s"] = row.time_s;
    x["algbw_GBps"] = row.algbw_Bps / 1e9;
    x["busbw_GBps"] = row.busbw_Bps / 1e9;
    rows.push_back(x);
  }
  j["rows"] = rows;
  j["avg_busbw_GBps"] = r.avg_busbw_Bps / 1e9;
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + '\n';
}

std::string collective_bench_csv(const CollectiveBenchResult& r) {
  std::string out = "collective,ranks,fidelity,size_bytes,count_elements,time_us,algbw_GBps,busbw_GBps\n";
  for (const auto& row : r.rows)
    out += fmt::format("{},{},{},{:.0f},{},{:.6f},{:.6f},{:.6f}\n", collective_kind_name(r.kind), r.gpus.size(),
                       fidelity_name(r.fidelity), row.size_bytes, row.count, row.time_s * 1e6, row.algbw_Bps / 1e9,
                       row.busbw_Bps / 1e9);
  return out;
}

}  // namespace moesim
