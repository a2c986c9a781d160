// Reporters on a hand-built RunResult: structure, exact values, determinism, quoting, alignment.
#include <algorithm>
#include <sstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "reports/reports.hpp"

using moesim::RunResult;
using moesim::VariantResult;
using nlohmann::json;

namespace {

VariantResult variant(const std::string& name, const std::string& schedule, double step) {
  VariantResult v;
  v.name = name;
  v.schedule = schedule;
  v.step_time_s = step;
  v.per_layer_mean_s = step / 2;
  v.compute_s = 0.6 * step;
  v.comm_s = 0.5 * step;
  v.exposed_comm_s = 0.25 * step;
  v.overlap_ratio = 0.5;
  v.load_imbalance = 1.25;
  v.load_imbalance_max = 1.5;
  v.time_by_class_s = {{"expert_ffn", 0.6 * step}, {"a2a_dispatch", 0.25 * step}};
  v.ops_by_provenance = {{"datasheet", 412}, {"measured", 40}};
  v.ops = 452;
  v.simgrid_activities = 96;
  v.wall_s = 0.123;
  for (int layer = 0; layer < 2; ++layer)
    for (int rank = 0; rank < 2; ++rank)
      v.rows.push_back({layer, rank, 100 + rank, 1e-3, 5e-4, layer * 2e-3, layer * 2e-3 + 1.9e-3, 0, "", -1});
  v.events.push_back({0, 0, "ffn.l0", "expert_ffn", 0, 0, "fwd", 1.5e-3, 2.25e-3, 0, -1, {}, {}, 0, 0});
  v.events.push_back({0, 1, "a2a.l0", "a2a_dispatch", 0, 1, "fwd", 0.0, 1.5e-3, 0, -1, {}, {}, 0, 0});
  v.events.push_back({1, 0, "ffn.l0", "expert_ffn", 0, 0, "fwd", 1.5e-3, 2.0e-3, 0, -1, {}, {}, 0, 0});
  return v;
}

RunResult sample() {
  RunResult r;
  auto& c = r.context;
  c.moesim_version = "0.1.0";
  c.git_sha = "abcdef123456";
  c.scenario_file = "scenarios/tiny.yaml";
  c.scenario_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  c.scenario_name = "tiny";
  c.seed = 42;
  c.simgrid_version = "3.32";
  c.simgrid_settings = {{"network/model", "CM02"}, {"network/crosstraffic", "0"}};
  c.fidelity = "fast";
  c.fidelity_requested = "auto";
  c.model = "mixtral-8x7b";
  c.cluster = "dgx-h100";
  c.gpus = 16;
  c.ep_ranks = 8;
  c.mode = "training";
  c.tokens_per_rank = 4096;
  c.profiles = {{"h100-gemm", "compute", "H100", "high", 1.0, {"datasheet", "bench"}},
                {"nvlink4", "network", "H100", "medium", 1.0, {}}};
  r.baseline = "base";
  r.variants.push_back(variant("base", "topk", 2e-3));
  r.variants.push_back(variant("pipelined, 4 chunks", "pipelined", 1.6e-3));
  r.variants[0].speedup_vs_baseline = 1.0;
  r.variants[1].speedup_vs_baseline = 1.25;
  r.variants[1].options = {{"chunks", "4"}};
  r.variants[1].extra = {{"bubble_s", 1e-4}};
  return r;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST_CASE("json report: schema, context first, values parse back", "[reports]") {
  const RunResult r = sample();
  const std::string text = moesim::reports::json_report(r, false, false);
  REQUIRE(text.back() == '\n');
  REQUIRE(text.rfind("{\n  \"schema\": \"moesim-result/1\",\n  \"context\": {", 0) == 0);
  const json j = json::parse(text);
  CHECK(j["schema"] == "moesim-result/1");
  const auto& c = j["context"];
  CHECK(c["seed"] == 42);
  CHECK(c["fidelity"] == "fast");
  CHECK(c["fidelity_requested"] == "auto");
  CHECK(c["gpus"] == 16);
  CHECK(c["tokens_per_rank"] == 4096);
  CHECK(c["simgrid_settings"]["network/model"] == "CM02");
  CHECK(c["profiles"].size() == 2);
  CHECK(c["profiles"][0]["sources"][1] == "bench");
  CHECK(j["baseline"] == "base");
  REQUIRE(j["variants"].size() == 2);
  const auto& v = j["variants"][1];
  CHECK(v["name"] == "pipelined, 4 chunks");
  CHECK(v["step_time_s"].get<double>() == 1.6e-3);  // exact: shortest round-trip printing
  CHECK(v["speedup_vs_baseline"].get<double>() == 1.25);
  CHECK(v["ops_by_provenance"]["datasheet"] == 412);
  CHECK(v["options"]["chunks"] == "4");
  CHECK(v["extra"]["bubble_s"].get<double>() == 1e-4);
  CHECK(v["rows"].size() == 4);
  CHECK(v["rows"][3]["tokens_received"] == 101);
  CHECK(v["rows"][3]["end_s"].get<double>() == 2e-3 + 1.9e-3);
}

TEST_CASE("json report is byte-identical for identical input", "[reports]") {
  CHECK(moesim::reports::json_report(sample(), true, false) == moesim::reports::json_report(sample(), true, false));
}

TEST_CASE("json report leaves out events and wall time unless asked", "[reports]") {
  const RunResult r = sample();
  const json plain = json::parse(moesim::reports::json_report(r, false, false));
  CHECK_FALSE(plain["variants"][0].contains("events"));
  CHECK_FALSE(plain["variants"][0].contains("wall_s"));
  const json full = json::parse(moesim::reports::json_report(r, true, true));
  CHECK(full["variants"][0]["events"].size() == 3);
  CHECK(full["variants"][0]["events"][0]["class"] == "expert_ffn");
  CHECK(full["variants"][0]["wall_s"].get<double>() == 0.123);
}

TEST_CASE("csv report: exact header, one row per (variant, layer, rank), RFC 4180 quoting", "[reports]") {
  const RunResult r = sample();
  const auto lines = lines_of(moesim::reports::csv_report(r));
  REQUIRE(!lines.empty());
  CHECK(lines[0] == "variant,schedule,layer,rank,tokens_received,compute_s,comm_s,start_s,end_s");
  std::size_t rows = 0;
  for (const auto& v : r.variants) rows += v.rows.size();
  CHECK(lines.size() == rows + 1);
  CHECK(lines[1] == "base,topk,0,0,100,0.001,0.0005,0,0.0019");
  CHECK(lines[5].rfind("\"pipelined, 4 chunks\",pipelined,0,0,", 0) == 0);
}

TEST_CASE("console report: names, speedup as given, aligned table", "[reports]") {
  const RunResult r = sample();
  const std::string text = moesim::reports::console_report(r);
  CHECK(text.find("pipelined, 4 chunks") != std::string::npos);
  CHECK(text.find("1.250x") != std::string::npos);
  CHECK(text.find("datasheet 412, measured 40") != std::string::npos);
  CHECK(text.find("fast (requested auto)") != std::string::npos);
  CHECK(text.find("network/model=CM02 network/crosstraffic=0") != std::string::npos);
  CHECK(text.find("h100-gemm (compute)") != std::string::npos);
  CHECK(text.find("bubble_s=0.0001") != std::string::npos);
  CHECK(text.find("wall") == std::string::npos);
  CHECK(moesim::reports::console_report(r, true).find("wall 123 ms") != std::string::npos);
  // The table: header line starting with "variant", the rule, then one line per variant, all one length.
  const auto lines = lines_of(text);
  std::size_t head = 0;
  while (head < lines.size() && lines[head].rfind("variant ", 0) != 0) ++head;
  REQUIRE(head + 3 < lines.size());
  CHECK(lines[head + 1].rfind("-------", 0) == 0);
  for (std::size_t i = head + 1; i <= head + 3; ++i) CHECK(lines[i].size() == lines[head].size());
  // Deterministic.
  CHECK(text == moesim::reports::console_report(sample()));
}

// Issue 13 figures (collective launch, comm SMs, derived interference, GEMM shape model) with their provenance.
TEST_CASE("profile figures with provenance reach the JSON context and the console header", "[reports]") {
  RunResult r = sample();
  auto& p = r.context.profiles[0];
  p.overlap_interference = 1.25;
  p.overlap_interference_from = {"derived", "derived: 100 SMs / (100 SMs - 20 comm SMs)"};
  p.collective_launch_s = 10.5e-6;
  p.collective_launch_from = {"reference", "nccl-tests alltoall_perf"};
  p.comm_sms = 20;
  p.comm_sms_from = {"reference", "DeepEP Buffer.num_sms"};
  p.gemm_model = "tiled";
  p.gemm_tile_m = p.gemm_tile_n = 128;
  p.gemm_tile_k = 64;
  p.gemm_k_overhead_bf16 = 206.0416667;
  p.gemm_reference = 8192;
  const json j = json::parse(moesim::reports::json_report(r, false, false));
  const auto& q = j["context"]["profiles"][0];
  CHECK(q["sources"] == json::array({"datasheet", "bench"}));
  CHECK(q["overlap_interference"].get<double>() == 1.25);
  CHECK(q["overlap_interference_provenance"]["kind"] == "derived");
  CHECK(q["collective_launch_s"].get<double>() == 10.5e-6);
  CHECK(q["collective_launch_provenance"]["source"] == "nccl-tests alltoall_perf");
  CHECK(q["comm_sms"] == 20);
  CHECK(q["gemm_shape"]["model"] == "tiled");
  CHECK(q["gemm_shape"]["k_overhead"] == "derived");
  CHECK(q["gemm_shape"]["tile_k"] == 64);
  // The second profile sets none of them: its header keeps the plain "id (kind)".
  CHECK(j["context"]["profiles"][1]["gemm_shape"]["model"] == "");
  const std::string text = moesim::reports::console_report(r);
  CHECK(text.find("h100-gemm (compute, overlap interference x1.25 (derived), collective launch 10.5 us (reference), "
                  "GEMMs tiled, k_overhead 206 (bf16))") != std::string::npos);
  CHECK(text.find("nvlink4 (network)") != std::string::npos);
}

TEST_CASE("console report has no speedup column without a baseline", "[reports]") {
  RunResult r = sample();
  r.baseline.clear();
  CHECK(moesim::reports::console_report(r).find("speedup") == std::string::npos);
}

TEST_CASE("perfetto trace: one X event per TraceEvent, microseconds, named threads", "[reports]") {
  const RunResult r = sample();
  const json j = json::parse(moesim::reports::perfetto_trace(r));
  const auto& ev = j["traceEvents"];
  std::size_t complete = 0;
  std::vector<std::string> thread_names, process_names;
  for (const auto& e : ev) {
    if (e["ph"] == "X") ++complete;
    if (e["ph"] == "M" && e["name"] == "thread_name") thread_names.push_back(e["args"]["name"]);
    if (e["ph"] == "M" && e["name"] == "process_name") process_names.push_back(e["args"]["name"]);
  }
  CHECK(complete == r.variants[0].events.size() + r.variants[1].events.size());
  CHECK(process_names == std::vector<std::string>{"base (topk)", "pipelined, 4 chunks (pipelined)"});
  // Per variant: (0,0), (0,1), (1,0) in that order.
  CHECK(thread_names.size() == 6);
  CHECK(thread_names[0] == "rank 0 compute");
  CHECK(thread_names[1] == "rank 0 comm");
  CHECK(thread_names[2] == "rank 1 compute");
  // First X event of variant 0: start 1.5e-3 s -> ts 1500 us, end 2.25e-3 s -> dur 750 us.
  const json* first = nullptr;
  for (const auto& e : ev)
    if (e["ph"] == "X") { first = &e; break; }
  REQUIRE(first != nullptr);
  CHECK((*first)["ts"].get<double>() == 1500.0);
  CHECK((*first)["dur"].get<double>() == 750.0);
  CHECK((*first)["pid"] == 1);
  CHECK((*first)["tid"] == 1);
  CHECK((*first)["args"]["class"] == "expert_ffn");
  CHECK((*first)["args"]["layer"] == 0);
  CHECK((*first)["args"]["chunk"] == 0);
  CHECK((*first)["args"]["phase"] == "fwd");
}

TEST_CASE("html report is self-contained with a chart and the table", "[reports]") {
  const std::string html = moesim::reports::html_report(sample());
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(html.find("<table>") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  CHECK(html.find("pipelined, 4 chunks") != std::string::npos);
}

TEST_CASE("gate-score statistics appear in JSON and HTML only for variants that have them", "[reports]") {
  RunResult r = sample();
  const std::string plain_json = moesim::reports::json_report(r), plain_html = moesim::reports::html_report(r);
  CHECK(plain_json.find("gate_scores") == std::string::npos);
  CHECK(plain_html.find("gate scores") == std::string::npos);
  moesim::GateScoreStats& g = r.variants[1].gate_scores;
  g.scores = "softmax";
  g.norm_topk_prob = false;
  g.bins = 4;
  g.pairs = 8;
  g.mean = 0.25;
  g.p50 = 0.2;
  g.topk_mass_mean = 0.75;
  g.layers = {{0, {1, 2, 1, 0}, 4, 0.3, 0.25}, {1, {3, 1, 0, 0}, 4, 0.2, 0.125}};
  const json j = json::parse(moesim::reports::json_report(r));
  CHECK_FALSE(j["variants"][0].contains("gate_scores"));
  const json& gs = j["variants"][1]["gate_scores"];
  CHECK(gs["scores"] == "softmax");
  CHECK(gs["norm_topk_prob"] == false);
  CHECK(gs["bins"] == 4);
  CHECK(gs["bin_width"] == 0.25);
  CHECK(gs["topk_mass_mean"] == 0.75);
  CHECK(gs["layers"][1]["counts"] == json::array({3, 1, 0, 0}));
  const std::string html = moesim::reports::html_report(r);
  CHECK(html.find("gate scores normalised over the top-k") != std::string::npos);
  CHECK(html.find("norm_topk_prob: false") != std::string::npos);
  // All layers' bin 0 holds 1 + 3 = 4 of 8 pairs: the fullest bar, 50 %.
  CHECK(html.find("[0, 0.25): 4 pairs (50.00%)") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);
}

namespace {

// sample() plus two sweeps: "ds" over three thresholds and "ds-early" over two, with hand-set figures. The
// ideal speed-up is 1 / (1 - drop - half / 2): drop 0.1, half 0.2 -> 1 / 0.8 = 1.25.
RunResult with_sweeps() {
  RunResult r = sample();
  auto point = [&](const std::string& of, double t, double step, double drop, double half, double moe_speedup) {
    VariantResult v = variant(fmt::format("{} T={}", of, t), "dualsparse", step);
    v.sweep = {of, "threshold", t};
    v.speedup_vs_baseline = 2e-3 / step;
    v.extra = {{"moe_layer_time_s", step / 4},
               {"moe_layer_speedup_vs_baseline", moe_speedup},
               {"ds_drop_rate", drop},
               {"ds_half_rate", half},
               {"ds_ideal_speedup", 1.0 / (1.0 - drop - half / 2)}};
    r.variants.push_back(std::move(v));
  };
  point("ds", 0.05, 1.6e-3, 0.1, 0.2, 1.125);
  point("ds", 0.1, 1.25e-3, 0.2, 0.0, 1.2);
  point("ds-early", 0.05, 1e-3, 0.1, 0.2, 1.5);
  point("ds", 0.2, 1e-3, 0.5, 0.0, 1.75);  // a sweep's points need not be adjacent in the variant list
  point("ds-early", 0.1, 8e-4, 0.2, 0.0, 1.875);
  return r;
}

std::size_t occurrences(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("sweeps group their points in variant order, sweeps in order of their first point", "[reports][sweep]") {
  const RunResult r = with_sweeps();
  const auto sw = moesim::reports::sweeps_of(r);
  REQUIRE(sw.size() == 2);
  CHECK(sw[0].of == "ds");
  CHECK(sw[0].key == "threshold");
  REQUIRE(sw[0].points.size() == 3);
  CHECK(sw[0].points[2]->name == "ds T=0.2");
  CHECK(sw[1].of == "ds-early");
  CHECK(sw[1].points.size() == 2);
  CHECK(moesim::reports::sweeps_of(sample()).empty());
}

TEST_CASE("sweep csv: header with units, one row per point with the variant's figures", "[reports][sweep]") {
  const std::vector<std::string> lines = lines_of(moesim::reports::sweep_csv_report(with_sweeps()));
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] ==
        "sweep,key,value,variant,step_time_s,speedup_vs_baseline,moe_layer_time_s,"
        "moe_layer_speedup_vs_baseline,drop_frac,half_frac,ideal_speedup");
  // ds T=0.05: step 1.6 ms, speed-up 2 / 1.6 = 1.25, MoE layer 0.4 ms, 1.125x, drop 0.1, half 0.2, ideal 1.25.
  CHECK(lines[1] == "ds,threshold,0.05,ds T=0.05,0.0016,1.25,0.0004,1.125,0.1,0.2,1.25");
  // ds T=0.2: step 1 ms, 2x, 0.25 ms, 1.75x, drop 0.5, ideal 1 / 0.5 = 2.
  CHECK(lines[3] == "ds,threshold,0.2,ds T=0.2,0.001,2,0.00025,1.75,0.5,0,2");
  CHECK(lines[4] == "ds-early,threshold,0.05,ds-early T=0.05,0.001,2,0.00025,1.5,0.1,0.2,1.25");
  // No sweep: the header alone.
  CHECK(lines_of(moesim::reports::sweep_csv_report(sample())).size() == 1);
  // A point without a baseline or drop figures leaves those fields empty.
  RunResult bare = with_sweeps();
  bare.variants[2].speedup_vs_baseline = 0;
  bare.variants[2].extra.clear();
  CHECK(lines_of(moesim::reports::sweep_csv_report(bare))[1] == "ds,threshold,0.05,ds T=0.05,0.0016,,,,,,");
}

TEST_CASE("console and html show a table per sweep, html a chart per sweep and a marker per point",
          "[reports][sweep]") {
  const RunResult r = with_sweeps();
  const std::string text = moesim::reports::console_report(r);
  CHECK_THAT(text, Catch::Contains("Sweep ds over threshold (3 points)"));
  CHECK_THAT(text, Catch::Contains("Sweep ds-early over threshold (2 points)"));
  // The sweep tables come after the MoE-metrics table (none here) and before the per-variant lines.
  CHECK(text.find("Sweep ds over") < text.find("base: "));
  const auto lines = lines_of(text);
  auto at = std::find_if(lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("Sweep ds over", 0) == 0; });
  REQUIRE(std::distance(at, lines.end()) > 3);
  CHECK(at[1] == "threshold  step time  speedup  MoE layer  MoE speedup  dropped   half  ideal speedup");
  CHECK(at[3] == "     0.05     1.6 ms   1.250x     400 us       1.125x    10.0%  20.0%         1.250x");
  CHECK(moesim::reports::console_report(sample()).find("Sweep") == std::string::npos);

  const std::string html = moesim::reports::html_report(r);
  CHECK_THAT(html, Catch::Contains("<h2>Sweeps</h2>"));
  CHECK(occurrences(html, "<svg class=\"sweep-chart\"") == 2);
  CHECK(occurrences(html, "class=\"sweep-sim\"") == 5);    // simulated MoE-layer speed-up, one per point
  CHECK(occurrences(html, "class=\"sweep-ideal\"") == 5);  // ideal speed-up, one per point
  CHECK_THAT(html, Catch::Contains("drop rate (% of expert computations)"));
  CHECK_THAT(html, Catch::Contains("speed-up vs baseline (x)"));
  CHECK_THAT(html, Catch::Contains("ds T=0.2 threshold = 0.2: 1.750x at 50.00% dropped"));
  CHECK(html.find("<script") == std::string::npos);
  CHECK(moesim::reports::html_report(sample()).find("Sweeps") == std::string::npos);
}

TEST_CASE("json report: the sweep tag only on points, a sweeps summary only with sweeps", "[reports][sweep]") {
  const json j = json::parse(moesim::reports::json_report(with_sweeps()));
  CHECK_FALSE(j["variants"][0].contains("sweep"));
  CHECK(j["variants"][2]["sweep"] == json({{"of", "ds"}, {"key", "threshold"}, {"value", 0.05}}));
  // The tag follows the options, before the figures (key order as written).
  const auto ordered = nlohmann::ordered_json::parse(moesim::reports::json_report(with_sweeps()));
  std::vector<std::string> keys;
  for (auto it = ordered["variants"][2].begin(); it != ordered["variants"][2].end(); ++it) keys.push_back(it.key());
  REQUIRE(keys.size() > 4);
  CHECK(std::vector<std::string>(keys.begin(), keys.begin() + 5) ==
        std::vector<std::string>{"name", "schedule", "options", "sweep", "step_time_s"});
  REQUIRE(j["sweeps"].size() == 2);
  CHECK(j["sweeps"][0]["of"] == "ds");
  CHECK(j["sweeps"][0]["points"].size() == 3);
  CHECK(j["sweeps"][1]["points"][1] == json({{"value", 0.1}, {"variant", "ds-early T=0.1"}}));
  CHECK_FALSE(json::parse(moesim::reports::json_report(sample())).contains("sweeps"));
}
