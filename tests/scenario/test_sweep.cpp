// Threshold sweeps through the scenario format, the runner and the reports (issue 11 point 6): a dualsparse
// `thresholds:` entry becomes one variant per threshold, each tagged with its SweepPoint; the tag survives the
// child process's JSON pipe; a point's result is exactly that of the same threshold written alone; the sweep
// CSV, console table, HTML chart and JSON carry one entry per point; `moesim run --sweep-csv` writes the CSV
// and refuses a run without a sweep.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "reports/reports.hpp"
#include "sim/diagnostics.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {

// OLMoE prefill on 8 x H200, small enough for a test: 512 tokens per rank, 2 of 16 blocks.
std::string scenario_text(const std::string& variants, const std::string& baseline = "top8") {
  return "version: 1\nname: sweep-test\nmodel: olmoe-1b-7b\ncluster: h200-hgx-8\nparallelism: {ep: 8}\n"
         "workload: {mode: inference_prefill, tokens_per_rank: 512, seed: 3, routing: {distribution: zipf, s: 1.0}}\n"
         "variants:\n" + variants + "baseline: \"" + baseline + "\"\nsimulation: {layers: 2, fidelity: exact}\n";
}

const char* kVariants =
    "  - {name: top8, schedule: topk}\n"
    "  - {name: ds, schedule: dualsparse, policy: 1t, thresholds: [0.05, 0.1]}\n"
    "  - {name: one, schedule: dualsparse, policy: 1t, threshold: 0.1}\n";

std::string load_errors(const std::string& text) {
  try {
    load_scenario_text(text, "sweep.yaml");
  } catch (const InputError& e) {
    return e.diagnostics().str();
  }
  return "";
}

const VariantResult& named(const RunResult& r, const std::string& name) {
  for (const auto& v : r.variants)
    if (v.name == name) return v;
  throw std::runtime_error("no variant " + name);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(s);
  while (std::getline(in, cell, sep)) out.push_back(cell);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("a thresholds entry loads as one variant per threshold", "[scenario][sweep]") {
  const Scenario sc = load_scenario_text(scenario_text(kVariants), "sweep.yaml");
  REQUIRE(sc.variants.size() == 4);  // top8, the two points, one
  CHECK(sc.variants[0].name == "top8");
  CHECK(sc.variants[0].sweep.empty());
  CHECK(sc.variants[1].name == "ds T=0.05");
  CHECK(sc.variants[2].name == "ds T=0.1");
  CHECK(sc.variants[1].sweep.of == "ds");
  CHECK(sc.variants[2].sweep.value == 0.1);
  CHECK(sc.variants[3].name == "one");
  CHECK(sc.variants[3].sweep.empty());
  // A point can be the baseline; a name that is no point is refused with a suggestion.
  CHECK(load_errors(scenario_text(kVariants, "ds T=0.05")).empty());
  CHECK_THAT(load_errors(scenario_text(kVariants, "ds T=0.07")),
             Catch::Contains("baseline: must name a variant; did you mean 'ds T=0.05'?"));
  // The expanded names must be unique among all variants (reported at the entry's name: line 10 of the text,
  // column 12, after "  - {name: ").
  CHECK(load_errors(scenario_text("  - {name: top8, schedule: topk}\n"
                                  "  - {name: \"ds T=0.1\", schedule: dualsparse, policy: 1t, threshold: 0.1}\n"
                                  "  - {name: ds, schedule: dualsparse, policy: 1t, thresholds: [0.05, 0.1]}\n")) ==
        "sweep.yaml:10:12: variants[2].name: duplicate variant name (got ds T=0.1)\n");
}

TEST_CASE("a sweep point's result equals the same threshold alone, and every report lists the points",
          "[scenario][sweep]") {
  const Scenario sc = load_scenario_text(scenario_text(kVariants), "sweep.yaml");
  const RunResult rr = run_scenario(sc, {});
  REQUIRE(rr.variants.size() == 4);
  const VariantResult& p05 = named(rr, "ds T=0.05");
  const VariantResult& p10 = named(rr, "ds T=0.1");
  const VariantResult& one = named(rr, "one");
  // The tag crossed the child's pipe.
  CHECK(p10.sweep.of == "ds");
  CHECK(p10.sweep.key == "threshold");
  CHECK(p10.sweep.value == 0.1);
  CHECK(one.sweep.empty());
  CHECK(named(rr, "top8").sweep.empty());
  // Same threshold, same run: identical figures (same seed, same routing, same graph).
  CHECK(p10.step_time_s == one.step_time_s);
  CHECK(p10.extra == one.extra);
  CHECK(p10.options == one.options);
  CHECK(p10.extra.at("ds_drop_rate") > p05.extra.at("ds_drop_rate"));  // a higher T drops more

  // CSV: the header, then one row per point whose fields are the variant's figures as {:.9g}.
  const std::string csv = reports::sweep_csv_report(rr);
  const std::vector<std::string> lines = split(csv, '\n');
  REQUIRE(lines.size() == 4);  // header, two rows, and the empty piece after the final newline
  CHECK(lines[0] ==
        "sweep,key,value,variant,step_time_s,speedup_vs_baseline,moe_layer_time_s,"
        "moe_layer_speedup_vs_baseline,drop_frac,half_frac,ideal_speedup");
  CHECK(lines[3].empty());
  for (std::size_t i = 1; i <= 2; ++i) {
    const VariantResult& v = i == 1 ? p05 : p10;
    INFO(lines[i]);
    const std::vector<std::string> f = split(lines[i], ',');
    REQUIRE(f.size() == 11);
    auto g = [](double x) { return fmt::format("{:.9g}", x); };
    CHECK(f[0] == "ds");
    CHECK(f[1] == "threshold");
    CHECK(f[2] == g(v.sweep.value));
    CHECK(f[3] == v.name);
    CHECK(f[4] == g(v.step_time_s));
    CHECK(f[5] == g(v.speedup_vs_baseline));
    CHECK(f[6] == g(v.extra.at("moe_layer_time_s")));
    CHECK(f[7] == g(v.extra.at("moe_layer_speedup_vs_baseline")));
    CHECK(f[8] == g(v.extra.at("ds_drop_rate")));
    CHECK(f[9] == g(v.extra.at("ds_half_rate")));
    CHECK(f[10] == g(v.extra.at("ds_ideal_speedup")));
  }

  // JSON: the tag on the points only, and the summary.
  const auto j = nlohmann::json::parse(reports::json_report(rr));
  CHECK_FALSE(j["variants"][0].contains("sweep"));
  CHECK(j["variants"][1]["sweep"] == nlohmann::json({{"of", "ds"}, {"key", "threshold"}, {"value", 0.05}}));
  CHECK_FALSE(j["variants"][3].contains("sweep"));
  REQUIRE(j["sweeps"].size() == 1);
  CHECK(j["sweeps"][0]["points"][1] == nlohmann::json({{"value", 0.1}, {"variant", "ds T=0.1"}}));

  // Console and HTML: the table, and one chart with one marker per point and series.
  CHECK_THAT(reports::console_report(rr), Catch::Contains("Sweep ds over threshold (2 points)"));
  const std::string html = reports::html_report(rr);
  CHECK(count(html, "<svg class=\"sweep-chart\"") == 1);
  CHECK(count(html, "class=\"sweep-sim\"") == 2);
  CHECK(count(html, "class=\"sweep-ideal\"") == 2);
}

TEST_CASE("moesim run --sweep-csv writes the points and refuses a run without a sweep", "[scenario][sweep][cli]") {
  const fs::path dir = fs::temp_directory_path() / ("moesim-test-sweep-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "sweep.yaml") << scenario_text(kVariants);
  std::ofstream(dir / "plain.yaml") << scenario_text("  - {name: top8, schedule: topk}\n");
  auto run = [&](const std::string& args) {
    const std::string cmd = "cd '" + dir.string() + "' && '" + std::string(MOESIM_BIN) + "' run " + args +
                            " >/dev/null 2>err.txt";
    const int status = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  CHECK(run("sweep.yaml --sweep-csv points.csv") == 0);
  const std::vector<std::string> lines = split(read_text(dir / "points.csv"), '\n');
  REQUIRE(lines.size() == 4);
  CHECK(lines[1].rfind("ds,threshold,0.05,ds T=0.05,", 0) == 0);
  CHECK(lines[2].rfind("ds,threshold,0.1,ds T=0.1,", 0) == 0);
  // No sweep: exit 2 before simulating, nothing written.
  CHECK(run("plain.yaml --sweep-csv none.csv") == 2);
  CHECK(read_text(dir / "err.txt") ==
        "moesim run: --sweep-csv: plain.yaml has no sweep (a sweep is a variant entry with a list of values, e.g. "
        "dualsparse thresholds: [...])\n");
  CHECK_FALSE(fs::exists(dir / "none.csv"));
  // Selecting only variants outside the sweep is the same.
  CHECK(run("sweep.yaml --variant one --sweep-csv none.csv") == 2);
  CHECK_THAT(read_text(dir / "err.txt"), Catch::Contains("has no sweep among the selected variants"));
  fs::remove_all(dir);
}
