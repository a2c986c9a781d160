// Reporters on a hand-built RunResult: structure, exact values, determinism, quoting, alignment.
#include <sstream>

#include <catch2/catch.hpp>
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
  v.events.push_back({0, 0, "ffn.l0", "expert_ffn", 0, 0, "fwd", 1.5e-3, 2.25e-3});
  v.events.push_back({0, 1, "a2a.l0", "a2a_dispatch", 0, 1, "fwd", 0.0, 1.5e-3});
  v.events.push_back({1, 0, "ffn.l0", "expert_ffn", 0, 0, "fwd", 1.5e-3, 2.0e-3});
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
