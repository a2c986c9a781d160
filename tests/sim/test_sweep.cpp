// Generic sweeps (issue 15 point 1, sim/sweep.hpp): key paths written into the scenario tree, the points'
// order, every point validated with the point named, and through the binary: the CSV's columns and row count,
// bytes independent of --jobs, a point's figures equal to the same scenario run alone, an interrupted sweep
// (stopped as on Ctrl-C) leaving a valid CSV of its finished points, and --resume giving the CSV and JSON of an
// uninterrupted sweep byte for byte.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/diagnostics.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "sim/sweep.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = MOESIM_SOURCE_DIR;
const fs::path kToy = kSource / "tests" / "data" / "sweep-toy.yaml";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(s);
  while (std::getline(in, cell, sep)) out.push_back(cell);
  if (!s.empty() && s.back() == sep) out.emplace_back();
  return out;
}

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("moesim-test-param-sweep-" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
  std::string operator/(const std::string& f) const { return (dir / f).string(); }
};

// Runs the binary with `args` (environment prefix allowed); returns the exit code, stderr into *err.
int run_cli(const std::string& args, const Scratch& s, std::string* err = nullptr, const std::string& env = "") {
  const std::string e = s / "stderr.txt";
  const std::string cmd = env + " '" + std::string(MOESIM_BIN) + "' " + args + " >/dev/null 2>'" + e + "'";
  const int status = std::system(cmd.c_str());
  if (err) *err = read_text(e);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string load_errors(const std::string& text) {
  try {
    load_scenario_text(text, "sweep.yaml");
  } catch (const InputError& e) {
    return e.diagnostics().str();
  }
  return "";
}

// The toy scenario with its relative profile made absolute and its sweep: section replaced.
std::string toy_text(const std::string& sweep) {
  std::string t = read_text(kToy);
  const std::size_t at = t.find("\nsweep:\n");
  REQUIRE(at != std::string::npos);
  t = t.substr(0, at + 1) + sweep;
  const std::string rel = "toy-profile.yaml";
  t.replace(t.find(rel), rel.size(), (kSource / "tests" / "data" / rel).string());
  return t;
}

}  // namespace

TEST_CASE("param sweep: a key path writes its value into the tree", "[sweep][paths]") {
  const std::string text = read_text(kToy);
  YAML::Node root = YAML::Load(text);
  // An existing scalar: replaced in place (it keeps its line, so diagnostics about it point there).
  const int ep_line = root["parallelism"]["ep"].Mark().line;
  CHECK_FALSE(apply_sweep_setting(root, "parallelism.ep", YAML::Load("2")));
  CHECK(root["parallelism"]["ep"].as<int>() == 2);
  CHECK(root["parallelism"]["ep"].Mark().line == ep_line);
  // A list entry by its name and by its index.
  CHECK_FALSE(apply_sweep_setting(root, "variants[piped].chunks", YAML::Load("4")));
  CHECK(root["variants"][1]["chunks"].as<int>() == 4);
  CHECK_FALSE(apply_sweep_setting(root, "variants[0].top_k", YAML::Load("1")));
  CHECK(root["variants"][0]["top_k"].as<int>() == 1);
  CHECK_FALSE(apply_sweep_setting(root, "cluster.links[3].bandwidth", YAML::Load("5GB/s")));
  CHECK(root["cluster"]["links"][3]["bandwidth"].as<std::string>() == "5GB/s");
  // A key the file leaves out, and a mapping it leaves out: created (the decoder checks they exist).
  CHECK_FALSE(apply_sweep_setting(root, "simulation.layers", YAML::Load("1")));
  CHECK(root["simulation"]["layers"].as<int>() == 1);
  // What cannot be applied says why.
  CHECK(apply_sweep_setting(root, "variants[nope].chunks", YAML::Load("2")).value_or("").find(
            "variants[nope]: no entry with this name; names: topk, piped") != std::string::npos);
  CHECK(apply_sweep_setting(root, "cluster.links[4].bandwidth", YAML::Load("1GB/s")) ==
        std::optional<std::string>("cluster.links[4]: no such entry (the list has 4 entries, [0] to [3])"));
  CHECK(apply_sweep_setting(root, "name.x", YAML::Load("1")) ==
        std::optional<std::string>("name is sweep-toy, not a mapping (sweep a key of an inline one instead)"));
  CHECK(apply_sweep_setting(root, "workload.nothing[0]", YAML::Load("1")) ==
        std::optional<std::string>("workload.nothing: no such list in the scenario"));
  CHECK(sweep_path_problem("parallelism..ep").has_value());
  CHECK(sweep_path_problem("variants[").has_value());
  CHECK(sweep_path_problem("variants[zipf-1.2].routing.s") == std::nullopt);  // a name with a dot
}

TEST_CASE("param sweep: points walk the grid row-major, the zip list as one axis", "[sweep][points]") {
  const SweepPlan plan = sweep_from_args({"a.x=1,2", "b=p,q,r"}, {"c=10,20", "d=u,v"});
  CHECK(plan.keys() == std::vector<std::string>{"a.x", "b", "c", "d"});
  REQUIRE(plan.point_count() == 2 * 3 * 2);
  const auto pts = sweep_points(plan);
  REQUIRE(pts.size() == 12);
  CHECK(pts[0].label() == "a.x=1 b=p c=10 d=u");
  CHECK(pts[1].label() == "a.x=1 b=p c=20 d=v");  // the last axis varies fastest; zipped keys move together
  CHECK(pts[2].label() == "a.x=1 b=q c=10 d=u");
  CHECK(pts[11].label() == "a.x=2 b=r c=20 d=v");
  CHECK_THROWS_WITH(sweep_from_args({}, {"c=1,2", "d=1"}),
                    Catch::Contains("--zip d: 1 values, but c has 2"));
  CHECK_THROWS_WITH(sweep_from_args({"a=1", "a=2"}, {}), Catch::Contains("key swept twice"));
  CHECK_THROWS_WITH(sweep_from_args({"a"}, {}), Catch::Contains("expected KEY=V1,V2"));
}

TEST_CASE("param sweep: every point is validated, each problem naming its point", "[sweep][validate]") {
  CHECK(load_errors(toy_text(read_text(kToy).substr(read_text(kToy).find("sweep:\n")))) == "");
  // ep 8 on a 4-GPU cluster: only the points with it fail, each named; 2 of them (grid 2 x zip 1... x 2).
  const std::string e = load_errors(toy_text("sweep:\n  grid:\n    parallelism.ep: [4, 8]\n"
                                             "    workload.tokens_per_rank: [64, 128]\n"));
  CHECK(std::count(e.begin(), e.end(), '\n') == 2);
  CHECK(e.find("sweep point 2 of 4 (parallelism.ep=8 workload.tokens_per_rank=64): more EP ranks than GPUs in "
               "the cluster (4) (got 8)") != std::string::npos);
  CHECK(e.find("sweep point 3 of 4 (parallelism.ep=8 workload.tokens_per_rank=128)") != std::string::npos);
  // A key the format does not have: the decoder's own unknown-key rule, with the point named.
  const std::string u = load_errors(toy_text("sweep:\n  grid:\n    workload.tokens_per_rnk: [64]\n"));
  CHECK(u.find("workload.tokens_per_rnk: sweep point 0 of 1 (workload.tokens_per_rnk=64): unknown key; did you "
               "mean 'tokens_per_rank'?") != std::string::npos);
  // A path that cannot be applied is reported once, where the key is written.
  const std::string v = load_errors(toy_text("sweep:\n  grid:\n    variants[nope].chunks: [1, 2]\n"));
  CHECK(std::count(v.begin(), v.end(), '\n') == 1);
  CHECK(v.find("sweep.grid.variants[nope].chunks: sweep point 0 of 2 (variants[nope].chunks=1): cannot set "
               "variants[nope].chunks: variants[nope]: no entry with this name") != std::string::npos);
  // The section's own rules.
  CHECK(load_errors(toy_text("sweep:\n  zip:\n    workload.seed: [1, 2]\n    workload.routing.s: [1.0]\n"))
            .find("zip lists must have the same length (workload.seed has 2 values) (got 1 values)") !=
        std::string::npos);
  CHECK(load_errors(toy_text("sweep:\n  grid:\n    workload.seed: 3\n")).find("must be a non-empty list of values") !=
        std::string::npos);
  CHECK(load_errors(toy_text("sweep:\n  grd:\n    workload.seed: [3]\n")).find("unknown key") != std::string::npos);
}

TEST_CASE("param sweep: CSV columns, one row per point and variant, bytes independent of --jobs",
          "[sweep][cli]") {
  Scratch s;
  std::string err;
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --jobs 1 --csv '{}' --json '{}' --html '{}'", kToy.string(),
                             s / "a.csv", s / "a.json", s / "a.html"),
                 s, &err) == 0);
  INFO(err);
  const std::vector<std::string> lines = lines_of(read_text(s / "a.csv"));
  REQUIRE(lines.size() == 1 + 8 * 2);  // 2 x 2 grid x 2 zip positions, 2 variants each
  CHECK(lines[0] ==
        "point,parallelism.ep,workload.tokens_per_rank,workload.routing.s,cluster.links[0].bandwidth,variant,"
        "schedule,fidelity,step_time_s,per_layer_mean_s,compute_s,comm_s,exposed_comm_s,overlap_ratio,"
        "load_imbalance,load_imbalance_max,dropped_pairs,speedup_vs_baseline,moe_layer_time_s");
  const auto pts = sweep_points(sweep_from_args({"parallelism.ep=2,4", "workload.tokens_per_rank=64,128"},
                                                {"workload.routing.s=0.8,1.2", "cluster.links[0].bandwidth=1GB/s,2GB/s"}));
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto c = split(lines[i], ',');
    REQUIRE(c.size() == 19);
    const std::size_t p = (i - 1) / 2;
    CHECK(c[0] == std::to_string(p));
    CHECK(c[1] + c[2] + c[3] + c[4] == pts[p].settings[0].shown + pts[p].settings[1].shown +
                                           pts[p].settings[2].shown + pts[p].settings[3].shown);
    CHECK(c[5] == ((i - 1) % 2 == 0 ? "topk" : "piped"));
    CHECK(std::stod(c[8]) > 0);
    CHECK(c[17] == ((i - 1) % 2 == 0 ? "1" : c[17]));  // the baseline's speed-up over itself
  }
  // More workers: the same bytes.
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --jobs 3 --csv '{}' --json '{}'", kToy.string(), s / "b.csv",
                             s / "b.json"),
                 s) == 0);
  CHECK(read_text(s / "b.csv") == read_text(s / "a.csv"));
  CHECK(read_text(s / "b.json") == read_text(s / "a.json"));
  // The HTML page: a line chart per metric that has values (no MoE-layer time in a one-step text run).
  const std::string html = read_text(s / "a.html");
  std::size_t charts = 0;
  for (std::size_t at = 0; (at = html.find("class=\"sweep-line-chart\"", at)) != std::string::npos; ++at) ++charts;
  CHECK(charts == 8);
  CHECK(html.find("topk, workload.tokens_per_rank=64, workload.routing.s=0.8, cluster.links[0].bandwidth=1GB/s") !=
        std::string::npos);
}

TEST_CASE("param sweep: a point's figures are those of its scenario run alone", "[sweep][cli]") {
  Scratch s;
  // Point 7: ep 4, 128 tokens per rank, s 1.2, first link 2 GB/s.
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --csv '{}'", kToy.string(), s / "a.csv"), s) == 0);
  const auto lines = lines_of(read_text(s / "a.csv"));
  REQUIRE(lines.size() == 17);
  std::string text = toy_text("");
  auto put = [&](const std::string& from, const std::string& to) {
    const std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  put("parallelism: {ep: 4}", "parallelism: {ep: 4}");
  put("tokens_per_rank: 64", "tokens_per_rank: 128");
  put("s: 1.0}", "s: 1.2}");
  put("{a: a, b: s, bandwidth: \"1GB/s\"", "{a: a, b: s, bandwidth: \"2GB/s\"");
  const RunResult rr = run_scenario(load_scenario_text(text, "point7.yaml"), RunOptions{});
  REQUIRE(rr.variants.size() == 2);
  for (std::size_t v = 0; v < 2; ++v) {
    const auto c = split(lines[15 + v], ',');
    CHECK(c[0] == "7");
    CHECK(c[5] == rr.variants[v].name);
    CHECK(c[8] == fmt::format("{:.9g}", rr.variants[v].step_time_s));
    CHECK(c[11] == fmt::format("{:.9g}", rr.variants[v].comm_s));
  }
}

TEST_CASE("param sweep: an interrupted sweep keeps its finished points and --resume completes it byte for byte",
          "[sweep][cli][resume]") {
  Scratch s;
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --jobs 2 --csv '{}' --json '{}'", kToy.string(), s / "full.csv",
                             s / "full.json"),
                 s) == 0);
  const std::string full = read_text(s / "full.csv");
  // Stopped after 3 points (as on Ctrl-C): exit 130, a valid CSV holding exactly the finished points' rows.
  std::string err;
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --jobs 1 --csv '{}'", kToy.string(), s / "part.csv"), s, &err,
               "MOESIM_SWEEP_STOP_AFTER=3") == 130);
  CHECK(err.find("interrupted: 3 of 8 points in") != std::string::npos);
  const std::string part = read_text(s / "part.csv");
  CHECK(lines_of(part).size() == 1 + 3 * 2);
  CHECK(full.rfind(part, 0) == 0);  // --jobs 1 finishes in point order: the first 3 points' rows
  // A torn last line (a write cut short) is dropped by --resume, not trusted.
  { std::ofstream(s / "part.csv", std::ios::app) << "3,4,64,0.8,1GB/s,topk,topk,exa"; }
  // Resumed with two workers and stopped again, then resumed to the end: the uninterrupted CSV and JSON.
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --resume --jobs 2 --csv '{}'", kToy.string(), s / "part.csv"), s,
               nullptr, "MOESIM_SWEEP_STOP_AFTER=2") == 130);
  CHECK(lines_of(read_text(s / "part.csv")).size() >= 1 + 5 * 2);
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --resume --csv '{}' --json '{}'", kToy.string(), s / "part.csv",
                             s / "part.json"),
                 s, &err) == 0);
  INFO(err);
  CHECK(read_text(s / "part.csv") == full);
  CHECK(read_text(s / "part.json") == read_text(s / "full.json"));
  // A CSV of another sweep is refused, not mixed in.
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --resume --csv '{}' --set workload.seed=1,2", kToy.string(),
                           s / "part.csv"),
               s, &err) == 2);
  CHECK(err.find("has another header than this sweep's") != std::string::npos);
}

TEST_CASE("param sweep: --set replaces the file's sweep and reports bad points before running", "[sweep][cli]") {
  Scratch s;
  std::string err;
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --csv '{}' --set 'variants[piped].chunks=1,4'", kToy.string(),
                             s / "c.csv"),
                 s, &err) == 0);
  const auto lines = lines_of(read_text(s / "c.csv"));
  REQUIRE(lines.size() == 1 + 2 * 2);
  CHECK(lines[0].rfind("point,variants[piped].chunks,variant,", 0) == 0);
  // More chunks: more, smaller all-to-alls for the pipelined variant; the top-k variant is unchanged.
  CHECK(split(lines[1], ',')[5] == split(lines[3], ',')[5]);
  CHECK(split(lines[2], ',')[5] != split(lines[4], ',')[5]);
  // Every bad point named at once (exit 2), and nothing written.
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --csv '{}' --set parallelism.ep=2,8,16", kToy.string(),
                           s / "d.csv"),
               s, &err) == 2);
  CHECK(err.find("sweep point 1 of 3 (parallelism.ep=8)") != std::string::npos);
  CHECK(err.find("sweep point 2 of 3 (parallelism.ep=16)") != std::string::npos);
  CHECK(err.find("2 error(s)") != std::string::npos);
  CHECK_FALSE(fs::exists(s / "d.csv"));
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --csv '{}' --set 'variants[x].chunks=2'", kToy.string(), s / "d.csv"),
               s, &err) == 2);
  CHECK(err.find("<command line>:0:0: --set variants[x].chunks: sweep point 0 of 1 (variants[x].chunks=2): cannot "
                 "set variants[x].chunks: variants[x]: no entry with this name") != std::string::npos);
}

TEST_CASE("param sweep: shards run every N-th point and merge into the one-process CSV byte for byte",
          "[sweep][cli][shard]") {
  Scratch s;
  std::string err;
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --jobs 2 --csv '{}'", kToy.string(), s / "full.csv"), s) == 0);
  const std::string full = read_text(s / "full.csv");
  // The toy sweep has 8 points of 2 variants: shard 1/2 holds points 0, 2, 4, 6 and shard 2/2 points 1, 3, 5, 7
  // (p % 2 == I - 1), 4 x 2 rows each, every row as the one-process CSV has it.
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --shard 1/2 --csv '{}'", kToy.string(), s / "s1.csv"), s) == 0);
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --shard 2/2 --jobs 1 --csv '{}'", kToy.string(), s / "s2.csv"), s) ==
          0);
  const auto full_lines = lines_of(full), s1 = lines_of(read_text(s / "s1.csv")), s2 = lines_of(read_text(s / "s2.csv"));
  REQUIRE(full_lines.size() == 1 + 8 * 2);
  REQUIRE(s1.size() == 1 + 4 * 2);
  REQUIRE(s2.size() == 1 + 4 * 2);
  CHECK(s1[0] == full_lines[0]);
  CHECK(s2[0] == full_lines[0]);
  for (std::size_t r = 1; r < s1.size(); ++r) {
    CHECK(std::stoul(split(s1[r], ',')[0]) % 2 == 0);
    CHECK(std::stoul(split(s2[r], ',')[0]) % 2 == 1);
    CHECK(std::find(full_lines.begin(), full_lines.end(), s1[r]) != full_lines.end());
    CHECK(std::find(full_lines.begin(), full_lines.end(), s2[r]) != full_lines.end());
  }
  // Merged in either order: the one-process CSV, byte for byte.
  REQUIRE(run_cli(fmt::format("merge '{}' '{}' '{}'", s / "m.csv", s / "s2.csv", s / "s1.csv"), s, &err) == 0);
  INFO(err);
  CHECK(read_text(s / "m.csv") == full);
  REQUIRE(run_cli(fmt::format("merge '{}' '{}' '{}' --points 8", s / "m2.csv", s / "s1.csv", s / "s2.csv"), s) == 0);
  CHECK(read_text(s / "m2.csv") == full);
  // A missing shard, a shard given twice, a point count the shards do not reach: refused, nothing written.
  CHECK(run_cli(fmt::format("merge '{}' '{}'", s / "x.csv", s / "s2.csv"), s, &err) == 2);
  CHECK(err.find("4 of 8 points missing (0, 2, 4, 6)") != std::string::npos);
  CHECK(run_cli(fmt::format("merge '{}' '{}' '{}'", s / "x.csv", s / "s1.csv", s / "s1.csv"), s, &err) == 2);
  CHECK(err.find("also in") != std::string::npos);
  CHECK(run_cli(fmt::format("merge '{}' '{}' '{}' --points 9", s / "x.csv", s / "s1.csv", s / "s2.csv"), s, &err) ==
        2);
  CHECK(err.find("1 of 9 points missing (8)") != std::string::npos);
  CHECK_FALSE(fs::exists(s / "x.csv"));
  // An interrupted shard finishes with --resume; another shard's CSV is not taken for this one's.
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --shard 2/2 --jobs 1 --csv '{}'", kToy.string(), s / "p2.csv"), s,
                &err, "MOESIM_SWEEP_STOP_AFTER=1") == 130);
  CHECK(err.find("interrupted: 1 of 4 points in") != std::string::npos);
  CHECK(run_cli(fmt::format("sweep '{}' --quiet --shard 1/2 --resume --csv '{}'", kToy.string(), s / "p2.csv"), s,
                &err) == 2);
  CHECK(err.find("point 1 belongs to shard 2/2, not to this run's shard 1/2") != std::string::npos);
  REQUIRE(run_cli(fmt::format("sweep '{}' --quiet --shard 2/2 --resume --csv '{}'", kToy.string(), s / "p2.csv"), s) ==
          0);
  CHECK(read_text(s / "p2.csv") == read_text(s / "s2.csv"));
  // Bad --shard values.
  for (const char* bad : {"0/2", "3/2", "2", "a/b", "1/0"}) {
    INFO(bad);
    CHECK(run_cli(fmt::format("sweep '{}' --quiet --shard {} --csv '{}'", kToy.string(), bad, s / "y.csv"), s, &err) ==
          2);
    CHECK(err.find("--shard") != std::string::npos);
  }
}
