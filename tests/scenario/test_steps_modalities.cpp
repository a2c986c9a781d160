// Issue 10 through the scenario format and the runner: workload.steps, workload.modalities, workload.drift
// and EPLB over several steps, with expected values worked by hand below. run_scenario forks one child per
// variant (DESIGN rule 5), so these tests call it as often as they like; make_series only samples routing.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "models/cost_model.hpp"
#include "reports/reports.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = MOESIM_SOURCE_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Scenario load(const std::string& text) {
  try {
    return load_scenario_text(text, "inline.yaml");
  } catch (const InputError& e) {
    FAIL("scenario does not load:\n" << e.diagnostics().str() << "\n" << text);
  }
  return {};
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const auto at = s.find(from);
  REQUIRE(at != std::string::npos);
  s.replace(at, from.size(), to);
  return s;
}

const VariantResult& variant(const RunResult& rr, const std::string& name) {
  for (const auto& v : rr.variants)
    if (v.name == name) return v;
  FAIL("no variant " << name);
  return rr.variants.front();
}

// A temporary directory removed at the end of the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("moesim-test-steps-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

// The top-h experts by pairs received (ties: lower id) of one layer of a plan.
std::set<int> hottest(const models::RoutingPlan& plan, int layer, int h) {
  const int E = plan.experts(), R = plan.ranks();
  std::vector<std::pair<int64_t, int>> load;
  for (int e = 0; e < E; ++e) {
    int64_t c = 0;
    for (int s = 0; s < R; ++s) c += plan.count(layer, s, e);
    load.emplace_back(-c, e);
  }
  std::sort(load.begin(), load.end());
  std::set<int> out;
  for (int i = 0; i < h; ++i) out.insert(load[static_cast<std::size_t>(i)].second);
  return out;
}

// 64 experts, top-2, 4 MoE layers, EP 2 on an H200 node; hot routing: 8 hot experts (a count, so the ranking
// can drift) with 90 % of the mass. DRIFT is replaced by the workload.drift mapping under test.
const char* kHotScenario = R"(version: 1
name: drift
model: {name: toy64, layers: 4, hidden: 256, expert_ffn: 128, routed_experts: 64, top_k: 2,
        attention: {kind: mha, heads: 2, head_dim: 64}}
cluster: h200-hgx-8
parallelism: {ep: 2}
workload:
  mode: inference_prefill
  tokens_per_rank: 2048
  seed: 5
  steps: 41
  routing: {distribution: hot, hot_experts: 8, hot_share: 0.9}
  DRIFT
variants:
  - {name: base, schedule: topk}
)";

// Mean over layers and consecutive step pairs of the share of the hot set (8 experts) replaced per step.
double hot_set_change(const Scenario& sc) {
  const models::StepSeries series = make_series(sc, sc.variants.front(), 0);
  double changed = 0;
  int pairs = 0;
  for (int s = 1; s < sc.steps; ++s)
    for (int l = 0; l < sc.arch.layers; ++l) {
      const std::set<int> a = hottest(series.at(s - 1), l, 8), b = hottest(series.at(s), l, 8);
      int kept = 0;
      for (int e : b) kept += a.count(e) ? 1 : 0;
      changed += (8.0 - kept) / 8.0;
      ++pairs;
    }
  return changed / pairs;
}

}  // namespace

TEST_CASE("steps: 1 written out gives today's single-step result byte for byte", "[scenario][steps]") {
  // The shipped demo scenario with `steps: 1` added to its workload must reproduce its golden JSON exactly
  // (the golden file is the single-step result from before workload.steps existed); only the scenario's
  // file name and hash, which name the input, are set back to the shipped file's.
  fs::current_path(kSource);
  const std::string text = read_text("scenarios/demo-h200.yaml");
  const std::string with_steps = replaced(text, "  seed: 42\n", "  seed: 42\n  steps: 1\n");
  const Scenario plain = load_scenario("scenarios/demo-h200.yaml");
  const Scenario one = load(with_steps);
  REQUIRE(one.steps == 1);
  RunResult rr = run_scenario(one, {});
  rr.context.git_sha = "golden";
  rr.context.scenario_file = plain.file;
  rr.context.scenario_sha256 = plain.sha256;
  CHECK(reports::json_report(rr) == read_text("tests/golden/demo-h200.json"));
}

TEST_CASE("steps: 1 written out equals no steps key on a multimodal ReaLB run", "[scenario][steps]") {
  // MoE-layer metrics on (modalities, realb): the explicit key changes nothing in any field.
  const std::string base = R"(version: 1
name: mm
model: {preset: qwen3-vl-30b-a3b, layers: 2}
cluster: h200-hgx-8
parallelism: {ep: 8}
workload:
  mode: inference_prefill
  tokens_per_rank: 1024
  seed: 3
  STEPS
  modalities:
    request: {text_tokens: 128, images: [2, 4], tokens_per_image: 256}
    text: {distribution: zipf, s: 1.0}
    vision: {distribution: hot, hot_experts: 8, hot_share: 0.8}
variants:
  - {name: bf16, schedule: topk}
  - {name: realb, schedule: realb, batch_threshold: 0}
  - {name: eplb, schedule: eplb, redundant_experts: 8, window: 2, interval: 2}
baseline: bf16
)";
  RunResult a = run_scenario(load(replaced(base, "STEPS", "steps: 1")), {});
  RunResult b = run_scenario(load(replaced(base, "STEPS", "")), {});
  a.context.scenario_sha256 = b.context.scenario_sha256 = "";
  CHECK(a.variants.front().extra.count("moe_layer_time_s") == 1);
  CHECK(reports::json_report(a) == reports::json_report(b));
}

TEST_CASE("eplb with a window over a static routing balances it as the greedy rule says", "[scenario][eplb]") {
  // 2 ranks, 4 experts (rank 0 holds {0, 1}, rank 1 {2, 3}), top-1, one MoE layer, a trace that every step
  // repeats: each source rank sends 32 tokens to expert 0, 8 to expert 1, 6 to expert 2, 4 to expert 3.
  // Expert loads (both sources): 64, 16, 12, 8 (100 pairs). Home placement: rank 0 = 80, rank 1 = 20,
  // max / mean = 80 / 50 = 1.6.
  // redundant_experts 2 -> one free slot per rank. Greedy (hottest load per replica to the least-loaded rank
  // with a free slot not holding it): e0 (64) can only go to rank 1 -> per replica e0 32, e1 16, e2 12, e3 8;
  // e0 has no rank left (rank 0 holds it, rank 1 is full), e1 neither (same), e2 (12) -> rank 0.
  // Slots: rank 0 {0, 1, 2}, rank 1 {0, 2, 3}.
  //  split even: each source's 32 e0 pairs 16/16, its 6 e2 pairs 3/3:
  //    rank 0 = 32 (e0) + 16 (e1) + 6 (e2) = 54, rank 1 = 32 (e0) + 6 (e2) + 8 (e3) = 46; max / mean = 1.08.
  //  split least_loaded: single-replica experts first: rank 0 = 16 (e1), rank 1 = 8 (e3); then e0's 64 pairs
  //    water-fill {16, 8}: level 44 -> rank 0 + 28, rank 1 + 36 (44 / 44); e2's 12 pairs: 6 / 6 -> 50 / 50,
  //    max / mean = 1.0 (per source: e0 32 x 28/64 = 14 and 18, e2 3 and 3, all whole).
  // window 2, interval 2, steps 3: step 0 uses the warm-up steps -2, -1, step 2 re-places from steps 0, 1; the
  // routing is static, so both placements are the same and no weights move.
  TempDir tmp;
  {
    std::ofstream f(tmp.path / "trace.csv");
    f << "layer,rank,token,experts\n";
    for (int r = 0; r < 2; ++r) {
      int tok = 0;
      for (auto [e, n] : std::vector<std::pair<int, int>>{{0, 32}, {1, 8}, {2, 6}, {3, 4}})
        for (int i = 0; i < n; ++i) f << "*," << r << "," << tok++ << "," << e << "\n";
    }
  }
  const std::string text = R"(version: 1
name: eplb-hand
model: {name: toy4, layers: 1, hidden: 256, expert_ffn: 128, routed_experts: 4, top_k: 1,
        attention: {kind: mha, heads: 2, head_dim: 64}}
cluster: h200-hgx-8
parallelism: {ep: 2}
workload:
  mode: inference_prefill
  tokens_per_rank: 50
  steps: 3
  routing: {distribution: trace, file: TRACE}
variants:
  - {name: base, schedule: topk}
  - {name: even, schedule: eplb, redundant_experts: 2, window: 2, interval: 2}
  - {name: least, schedule: eplb, redundant_experts: 2, window: 2, interval: 2, split: least_loaded}
  - {name: zero, schedule: eplb, redundant_experts: 0, window: 2, interval: 2}
baseline: base
)";
  const Scenario sc = load(replaced(text, "TRACE", (tmp.path / "trace.csv").string()));
  RunOptions opt;
  opt.keep_events = true;
  const RunResult rr = run_scenario(sc, opt);
  // Simulated per-rank loads: tokens received per (step, rank) in the rows.
  auto loads = [&](const std::string& name) {
    std::vector<std::vector<int64_t>> out(3, std::vector<int64_t>(2, -1));
    for (const auto& row : variant(rr, name).rows) out.at(static_cast<std::size_t>(row.step)).at(static_cast<std::size_t>(row.rank)) = row.tokens_received;
    return out;
  };
  for (int s = 0; s < 3; ++s) {
    INFO("step " << s);
    CHECK(loads("base")[static_cast<std::size_t>(s)] == std::vector<int64_t>{80, 20});
    CHECK(loads("zero")[static_cast<std::size_t>(s)] == std::vector<int64_t>{80, 20});
    CHECK(loads("even")[static_cast<std::size_t>(s)] == std::vector<int64_t>{54, 46});
    CHECK(loads("least")[static_cast<std::size_t>(s)] == std::vector<int64_t>{50, 50});
  }
  CHECK(variant(rr, "base").load_imbalance == Approx(1.6));
  CHECK(variant(rr, "even").load_imbalance == Approx(54.0 / 50.0));
  CHECK(variant(rr, "least").load_imbalance == Approx(1.0));
  // The expert op of each rank computes exactly those slots: one grouped GEMM per rank and step.
  models::CostModel cm(sc.profile, sc.arch);
  auto expert_s = [&](const std::string& name, int rank) {
    std::vector<double> out;
    for (const auto& e : variant(rr, name).events)
      if (e.cls == "expert" && e.rank == rank) out.push_back(e.end_s - e.start_s);
    return out;
  };
  const double even0 = cm.grouped_experts({32, 16, 6}).seconds, even1 = cm.grouped_experts({32, 6, 8}).seconds;
  const double least0 = cm.grouped_experts({28, 16, 6}).seconds, least1 = cm.grouped_experts({36, 6, 8}).seconds;
  const double base0 = cm.grouped_experts({64, 16}).seconds, base1 = cm.grouped_experts({12, 8}).seconds;
  for (int r = 0; r < 2; ++r) {
    REQUIRE(expert_s("even", r).size() == 3);
    REQUIRE(expert_s("least", r).size() == 3);
    REQUIRE(expert_s("base", r).size() == 3);
  }
  for (double d : expert_s("even", 0)) CHECK(d == Approx(even0).epsilon(1e-9));
  for (double d : expert_s("even", 1)) CHECK(d == Approx(even1).epsilon(1e-9));
  for (double d : expert_s("least", 0)) CHECK(d == Approx(least0).epsilon(1e-9));
  for (double d : expert_s("least", 1)) CHECK(d == Approx(least1).epsilon(1e-9));
  for (double d : expert_s("base", 0)) CHECK(d == Approx(base0).epsilon(1e-9));
  for (double d : expert_s("base", 1)) CHECK(d == Approx(base1).epsilon(1e-9));
  // Extra memory: one extra slot per rank x one expert's weights (3 x 256 x 128 x 2 B) x 1 MoE layer.
  CHECK(variant(rr, "even").extra.at("eplb_extra_weight_bytes_per_rank") == Approx(3.0 * 256 * 128 * 2));
  // A static routing re-places nothing new at step 2: no weights move.
  CHECK(variant(rr, "even").extra.count("eplb_moved_weight_bytes") == 1);
  CHECK(variant(rr, "even").extra.at("eplb_moved_weight_bytes") == 0.0);
  // No redundant experts: topk's result in every field but the name.
  VariantResult zero = variant(rr, "zero"), base = variant(rr, "base");
  zero.name = base.name = "";
  zero.schedule = base.schedule = "";
  zero.options.clear();
  base.options.clear();
  zero.wall_s = base.wall_s = 0;
  zero.speedup_vs_baseline = base.speedup_vs_baseline = 0;
  RunResult one, two;
  one.variants = {zero};
  two.variants = {base};
  CHECK(reports::json_report(one) == reports::json_report(two));
}

TEST_CASE("precision: fp4 is rejected on a GPU without an fp4 peak, fp8 is accepted", "[scenario][realb]") {
  // The bad-input catalogue has the file:line:col form (tests/bad/56-fp4-without-peak); here the message
  // names the profile and the default precision on that GPU is fp8.
  const std::string base = R"(version: 1
name: fp4
model: qwen3-vl-30b-a3b
cluster: h200-hgx-8
parallelism: {ep: 8}
workload: {mode: inference_prefill, tokens_per_rank: 1024}
variants:
  - VARIANT
)";
  std::string problems;
  try {
    load_scenario_text(replaced(base, "VARIANT", "{name: r, schedule: lowp_all, precision: fp4}"), "fp4.yaml");
  } catch (const InputError& e) {
    problems = e.diagnostics().str();
  }
  CHECK(problems.find("fp4.yaml:8:") != std::string::npos);
  CHECK(problems.find("GPU profile h200-sxm has no fp4 peak") != std::string::npos);
  const Scenario ok = load(replaced(base, "VARIANT", "{name: r, schedule: realb}"));
  CHECK(ok.variants.front().shown.at("precision") == "fp8");
}

TEST_CASE("modalities: the vision share follows the request shape", "[scenario][modalities]") {
  // ERNIE-4.5-VL (modality-isolated: text experts [0, 64), vision experts [64, 128), top-6 in each range).
  // Requests of 100 text tokens + U{2, 3, 4} images x 200 tokens: on average 600 vision tokens of 700, so the
  // vision share of a step's tokens tends to 600 / 700 = 0.857 (a renewal-reward ratio of expectations; each
  // rank's last request is cut short, a bias below 900 / 16384 per rank). 8 ranks x 16384 tokens hold ~187
  // requests: the standard error of the share is ~0.003, so 0.02 is a loose bound.
  const std::string text = R"(version: 1
name: ernie
model: ernie-4.5-vl-28b-a3b
cluster: h200-hgx-8
parallelism: {ep: 8}
workload:
  mode: inference_prefill
  tokens_per_rank: 16384
  seed: 9
  steps: 2
  modalities:
    request: {text_tokens: 100, images: [2, 4], tokens_per_image: 200}
    text: {distribution: uniform}
    vision: {distribution: uniform}
variants:
  - {name: base, schedule: topk}
simulation: {layers: 2}
)";
  const Scenario sc = load(text);
  REQUIRE(sc.arch.vision_experts == 64);
  const models::StepSeries series = make_series(sc, sc.variants.front(), 0);
  const int E = 128, tv = 64, R = 8, k = 6;
  for (int s = 0; s < 2; ++s) {
    const models::RoutingPlan& plan = series.at(s);
    REQUIRE(plan.multimodal());
    int64_t vision = 0;
    for (int64_t v : plan.src_vision_tokens()) vision += v;
    const double share = static_cast<double>(vision) / (R * 16384.0);
    INFO("step " << s);
    CHECK(share == Approx(600.0 / 700.0).margin(0.02));
    // Modality-isolated: vision pairs only on vision experts [64, 128), text pairs only on [0, 64) (both drawn
    // uniformly, so only the model's ranges can keep them apart); every
    // token's k = 6 pairs stay inside its own range, so vision pairs = 6 x vision tokens.
    const models::LayerRouting& L = plan.layer(1);
    int64_t vis_pairs = 0, misplaced = 0;
    for (int src = 0; src < R; ++src)
      for (int e = 0; e < E; ++e) {
        const auto i = static_cast<std::size_t>(src * E + e);
        const int64_t v = L.vision_counts[i], t = L.counts[i] - L.vision_counts[i];
        vis_pairs += v;
        if (e < tv) misplaced += v;
        else misplaced += t;
      }
    CHECK(misplaced == 0);
    CHECK(vis_pairs == k * vision);
    // Uniform inside the range: each of the 64 vision experts receives 6 V / 64 pairs on average (V vision
    // tokens, ~112,000: ~10,500 each), each text expert 6 (8 x 16384 - V) / 64 (~1,750); a count's standard
    // deviation is below sqrt(mean), so 6 of them is a loose bound that still catches an expert that gets no
    // pairs or twice its share.
    const int64_t text_tokens = R * 16384 - vision;
    for (int e = 0; e < E; ++e) {
      int64_t got = 0;
      for (int src = 0; src < R; ++src) {
        const auto i = static_cast<std::size_t>(src * E + e);
        got += e < tv ? L.counts[i] : L.vision_counts[i];
      }
      const double want = k * static_cast<double>(e < tv ? text_tokens : vision) / 64.0;
      INFO("expert " << e);
      CHECK(std::abs(static_cast<double>(got) - want) < 6 * std::sqrt(want));
    }
  }
  // Different steps draw different requests (seeded per step).
  CHECK(series.at(0).src_vision_tokens() != series.at(1).src_vision_tokens());
}

TEST_CASE("drift none keeps the hot set, redraw f changes about f of it per step", "[scenario][drift]") {
  // none: the ranking is the same every step, so the 8 hot experts (90 % of 2 x 2048 x 2 pairs, ~920 each vs
  // ~15 for a cold one) are the same in every step and layer, although each step draws its tokens afresh.
  const Scenario none = load(replaced(kHotScenario, "DRIFT", "drift: {kind: none}"));
  CHECK(hot_set_change(none) == 0.0);
  // redraw f: m = round(64 f) ranking positions drawn at random exchange their experts by a random
  // permutation. Of the 8 hot positions, K are drawn: K ~ hypergeometric(64, 8 hot, m drawn), mean 8m/64,
  // variance m (8/64)(56/64)(64 - m)/63. The m drawn experts are permuted, so of the K drawn hot positions an
  // expected K x K/m get a hot expert back: expected replaced = E[K] - E[K^2] / m.
  //   f = 0.25, m = 16: E[K] = 2, Var K = 16 x 0.125 x 0.875 x 48/63 = 4/3, E[K^2] = 16/3:
  //     replaced 2 - 1/3 = 5/3 of 8 = 0.208 (about f).
  //   f = 1, m = 64: K = 8 always: replaced 8 - 64/64 = 7 of 8 = 0.875 (a fresh ranking keeps 1 of 8 by chance).
  // 40 step pairs x 4 layers = 160 samples: standard error ~0.015 for f = 0.25, so 0.05 is a loose bound.
  const Scenario quarter = load(replaced(kHotScenario, "DRIFT", "drift: {kind: redraw, fraction: 0.25}"));
  CHECK(hot_set_change(quarter) == Approx(5.0 / 24.0).margin(0.05));
  const Scenario full = load(replaced(kHotScenario, "DRIFT", "drift: {kind: redraw, fraction: 1}"));
  CHECK(hot_set_change(full) == Approx(7.0 / 8.0).margin(0.05));
}

TEST_CASE("each step draws its own routing and the same seed gives the same plans and results", "[scenario][steps]") {
  const Scenario sc = load(replaced(kHotScenario, "DRIFT", "drift: {kind: none}"));
  const models::StepSeries a = make_series(sc, sc.variants.front(), 0);
  const models::StepSeries b = make_series(sc, sc.variants.front(), 0);
  for (int s = 0; s < 3; ++s)
    for (int l = 0; l < 4; ++l) CHECK(a.at(s).layer(l).counts == b.at(s).layer(l).counts);
  CHECK(a.at(0).layer(0).counts != a.at(1).layer(0).counts);
  CHECK(a.at(1).layer(0).counts != a.at(2).layer(0).counts);
  // Step 0 is the one-step run's plan (the scenario seed itself).
  const models::RoutingPlan one =
      models::generate_routing(variant_routing(sc.routing, sc.variants.front()), sc.arch, sc.placement,
                               sc.tokens_per_rank, sc.seed);
  CHECK(one.layer(0).counts == a.at(0).layer(0).counts);
  // Another seed draws other tokens.
  const Scenario other = load(replaced(replaced(kHotScenario, "DRIFT", "drift: {kind: none}"), "seed: 5", "seed: 6"));
  CHECK(make_series(other, other.variants.front(), 0).at(1).layer(0).counts != a.at(1).layer(0).counts);
  // Through the runner (5 steps): the step times differ, and a second run reproduces the JSON exactly.
  const Scenario small = load(replaced(replaced(kHotScenario, "DRIFT", "drift: {kind: redraw, fraction: 0.5}"),
                                       "steps: 41", "steps: 5"));
  RunResult r1 = run_scenario(small, {});
  RunResult r2 = run_scenario(small, {});
  const auto& times = r1.variants.front().step_times_s;
  REQUIRE(times.size() == 5);
  CHECK(std::set<double>(times.begin(), times.end()).size() > 1);
  CHECK(reports::json_report(r1) == reports::json_report(r2));
}

TEST_CASE("dualsparse through the runner: keep_scores draws the same routing, so no dropping is topk",
          "[scenario][dualsparse]") {
  // A generated (zipf) routing has per-token scores only because the runner routes dualsparse variants with
  // keep_scores; the draws must be those of topk's plan (the shared multi-step series, which has no records),
  // so dualsparse without dropping gives topk's step times over 3 training steps, with replicated experts.
  const Scenario sc = load(R"(version: 1
name: ds-runner
model: mixtral-8x7b
cluster: h200-hgx-8
parallelism:
  ep: 6
  placement: {scheme: contiguous, replicate: true}
workload: {mode: training, tokens_per_rank: 256, steps: 3, routing: {distribution: zipf, s: 1.2}}
variants:
  - {name: a, schedule: topk}
  - {name: b, schedule: topk, k: 2}
  - {name: ds0, schedule: dualsparse}
  - {name: ds, schedule: dualsparse, policy: 1t, threshold: 0.3, drop_before_dispatch: true}
baseline: a
simulation: {layers: 2, fidelity: exact}
)");
  const RunResult rr = run_scenario(sc, {});
  const VariantResult& a = variant(rr, "a");
  const VariantResult& ds0 = variant(rr, "ds0");
  const VariantResult& ds = variant(rr, "ds");
  CHECK(ds0.step_times_s == a.step_times_s);
  CHECK(ds0.extra.at("ds_drop_rate") == 0.0);
  // Mixtral has no shared expert: every dropped computation is a routed pair; 3 steps x 2 MoE layers x 6 ranks
  // x 256 tokens x top-2 routed pairs in all.
  CHECK(ds.extra.at("ds_routed_pairs") == 3.0 * 2 * 6 * 256 * 2);
  CHECK(ds.extra.at("ds_drop_rate") == ds.extra.at("ds_dropped_pairs") / ds.extra.at("ds_routed_pairs"));
  CHECK(ds.extra.at("ds_drop_rate") > 0.0);
  CHECK(ds.step_time_s < a.step_time_s);
}
