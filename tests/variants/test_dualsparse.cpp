// DualSparse (schedule `dualsparse`) worked by hand on a 2-rank toy whose routing is a tiny trace written here.
//
// The toy. One MoE layer, hidden 1024 (bf16: 2048 bytes per token), 4 routed experts of FFN 512, top-2, one
// shared expert of FFN 512, contiguous placement: rank 0 holds experts {0, 1}, rank 1 holds {2, 3}. Every
// rank has 4 tokens; their experts and normalised scores (each token's two scores sum to 1):
//
//   rank 0: t0 0:0.90 2:0.10   t1 1:0.68 3:0.32   t2 0:0.58 1:0.42   t3 2:0.75 3:0.25
//   rank 1: t0 2:0.55 0:0.45   t1 3:0.75 1:0.25   t2 2:0.65 3:0.35   t3 0:0.95 2:0.05
//
// Per expert (score list): e0 {.90 .58 .45 .95}, e1 {.68 .42 .25}, e2 {.10 .75 .55 .65 .05},
// e3 {.32 .25 .75 .35}; so rank 0 receives 7 pairs, rank 1 receives 9. 16 routed pairs, 8 tokens x 1 shared
// expert = 8 shared computations: 24 in all. No score sits on a threshold used below (scores are floats).
//
// Each simulation runs in a forked child (one SimGrid engine per process, DESIGN rule 5).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/variants/two_gpus.hpp"
#include "models/cost_model.hpp"
#include "models/placement.hpp"
#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/dualsparse.hpp"
#include "models/variants/schedule_util.hpp"
#include "models/variants/step_costs.hpp"
#include "sim/diagnostics.hpp"
#include "sim/engine.hpp"
#include "sim/metrics.hpp"
#include "sim/platform_spec.hpp"
#include "sim/result_json.hpp"
#include "sim/yaml_view.hpp"
#include "tests/sim/test_support.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;
using namespace moesim::models;

namespace {

constexpr int kHidden = 1024;
constexpr double kBytesPerToken = kHidden * 2.0;

const char* kTrace =
    "layer,rank,token,experts,scores\n"
    "0,0,0,0;2,0.90;0.10\n0,0,1,1;3,0.68;0.32\n0,0,2,0;1,0.58;0.42\n0,0,3,2;3,0.75;0.25\n"
    "0,1,0,2;0,0.55;0.45\n0,1,1,3;1,0.75;0.25\n0,1,2,2;3,0.65;0.35\n0,1,3,0;2,0.95;0.05\n";

Profile toy_profile() { return testing::toy_gpu(); }

Architecture toy_arch(int64_t expert_ffn = 512) { return testing::toy_moe("toy-dualsparse", 4, 2, expert_ffn, 1); }

using testing::two_gpus;

std::string write_trace() {
  auto dir = std::filesystem::temp_directory_path() / ("moesim_dualsparse_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / "toy.csv";
  std::ofstream(p) << kTrace;
  return p.string();
}

struct Toy {
  Architecture arch = toy_arch();
  Placement placement{4, 2};
  Profile profile = toy_profile();
  std::unique_ptr<CostModel> cost;
  std::unique_ptr<StepCosts> costs;
  std::unique_ptr<RoutingPlan> plan;
  std::vector<int> layers{0};
  PlatformSpec platform = two_gpus(50e9);
  StepInput input() const { return {arch, placement, *plan, *costs, Mode::inference_prefill, 2, 4, layers, 0, nullptr}; }
};

std::unique_ptr<Toy> make_toy() {
  auto t = std::make_unique<Toy>();
  t->cost = std::make_unique<CostModel>(t->profile, t->arch);
  t->costs = std::make_unique<StepCosts>(*t->cost, false, 4);
  Diagnostics d;
  const YamlView v = YamlView::load_string("{distribution: trace, file: " + write_trace() + "}", "routing", &d);
  const RoutingSpec rs = decode_routing(v, t->arch, 2, ".");
  REQUIRE(d.str() == "");
  t->plan = std::make_unique<RoutingPlan>(generate_routing(rs, t->arch, t->placement, 4, 1));
  return t;
}

// Decodes one variant entry; returns the spec and the diagnostics text.
std::pair<VariantSpec, std::string> decode(const std::string& yaml, const Architecture& arch) {
  Diagnostics d;
  const YamlView v = YamlView::load_string(yaml, "variant", &d);
  static const Profile profile = toy_profile();
  VariantSpec s = decode_variant(v, arch, 2, ".", &profile, Mode::inference_prefill);
  return {s, d.str()};
}

VariantSpec spec(const std::string& yaml, const Toy& toy) {
  auto [s, errors] = decode(yaml, toy.arch);
  INFO(errors);
  REQUIRE(errors.empty());
  return s;
}

DualSparseLayer layer_of(const Toy& toy, const std::string& yaml) {
  return dualsparse_layer(*toy.plan, toy.arch, toy.placement, 0, spec(yaml, toy).options_as<DualSparseOptions>());
}

// The result of one simulation, plus the graph's all-to-all bytes (dispatch of layer 0) and expert op durations.
struct Sim {
  VariantResult v;
  std::vector<double> a2a_bytes, expert_s;
};

Sim simulate_here(const Toy& toy, const VariantSpec& spec) {
  const ScheduleInfo* info = find_schedule(spec.schedule);
  if (!info) throw std::runtime_error("no schedule " + spec.schedule);
  const OpGraph g = info->build(spec, toy.input());
  const Trace tr = run_engine(toy.platform, {0, 1}, g, EngineOptions{});
  Sim s;
  s.v.name = "v";
  summarize(g, tr, 1, false, s.v);
  if (info->derive_metrics) info->derive_metrics(s.v.extra);
  s.v.wall_s = 0;
  s.a2a_bytes = g.collectives().at(0).bytes;
  for (const auto& op : g.ops())
    if (op.cls == OpClass::expert) s.expert_s.push_back(op.duration_s);
  return s;
}

// Simulates in a forked child; the result crosses a pipe as JSON (doubles round-trip exactly).
Sim simulate(const Toy& toy, const VariantSpec& spec) {
  const auto child = testing::run_in_child_text([&] {
    const Sim s = simulate_here(toy, spec);
    nlohmann::json j;
    j["v"] = variant_to_json(s.v);
    j["a2a"] = s.a2a_bytes;
    j["expert"] = s.expert_s;
    return j.dump();
  });
  INFO(child.text);
  REQUIRE(child.ok());
  const auto j = nlohmann::json::parse(child.text);
  return {variant_from_json(j["v"]), j["a2a"].get<std::vector<double>>(), j["expert"].get<std::vector<double>>()};
}

}  // namespace

TEST_CASE("dualsparse drop counts of a hand-written score trace", "[variants][dualsparse]") {
  auto toy = make_toy();
  // 1t, T = 0.3: dropped below 0.3: e2 .10, e3 .25, e1 .25, e2 .05 -> 4 of 16 routed; none halved.
  const DualSparseLayer one = layer_of(*toy, "{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}");
  CHECK(one.routed == 16);
  CHECK(one.shared == 8);
  CHECK(one.dropped == 4);
  CHECK(one.halves == 0);
  CHECK(one.received == std::vector<int64_t>{7, 9});
  // Rank 0: e0 keeps 4, e1 keeps .68 .42 (2); rank 1: e2 keeps .75 .55 .65 (3), e3 keeps .32 .75 .35 (3).
  CHECK(one.full == std::vector<std::vector<int64_t>>{{4, 2}, {3, 3}});
  // 2t, T = 0.3, delta = 0.1: dropped below 0.2: .10, .05 (2); half in [0.2, 0.4): e3 .32 .25 .35, e1 .25 (4).
  const DualSparseLayer two =
      layer_of(*toy, "{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0.1}");
  CHECK(two.dropped == 2);
  CHECK(two.halves == 4);
  CHECK(two.full == std::vector<std::vector<int64_t>>{{4, 2}, {3, 1}});
  CHECK(two.half == std::vector<std::vector<int64_t>>{{0, 1}, {0, 3}});
  // Kept pairs src -> dst (full + half): 0->0 t0 e0, t1 e1, t2 e0, t2 e1 = 4; 0->1 t1 e3, t3 e2, t3 e3 = 3
  // (t0 e2 .10 dropped); 1->0 t0 e0, t1 e1, t3 e0 = 3; 1->1 t0 e2, t1 e3, t2 e2, t2 e3 = 4 (t3 e2 .05 dropped).
  CHECK(two.kept_pairs == std::vector<int64_t>{4, 3, 3, 4});

  // Reported rates: drop = dropped / (routed + shared); ideal speed-up counts a half pair as half the work.
  const Sim s1 = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}", *toy));
  CHECK(s1.v.extra.at("ds_drop_rate") == Approx(4.0 / 24.0));
  CHECK(s1.v.extra.at("ds_half_rate") == 0.0);
  CHECK(s1.v.extra.at("ds_ideal_speedup") == Approx(1.0 / (1.0 - 4.0 / 24.0)));
  CHECK(s1.v.extra.at("ds_rank0_work_before_pairs") == 7);
  CHECK(s1.v.extra.at("ds_rank1_work_after_pairs") == 6);
  const Sim s2 =
      simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0.1}", *toy));
  CHECK(s2.v.extra.at("ds_drop_rate") == Approx(2.0 / 24.0));
  CHECK(s2.v.extra.at("ds_half_rate") == Approx(4.0 / 24.0));
  CHECK(s2.v.extra.at("ds_ideal_speedup") == Approx(1.0 / (1.0 - 2.0 / 24.0 - 2.0 / 24.0)));
  // Rank 1: 9 pairs before; after 4 full + 3 halves = 5.5 pair equivalents. Rank 0: 7 before, 6 full + 1 half
  // = 6.5 after, now the largest: the busiest rank goes from 9 to 6.5.
  CHECK(s2.v.extra.at("ds_rank1_work_after_pairs") == 5.5);
  CHECK(s2.v.extra.at("ds_rank0_work_after_pairs") == 6.5);
  CHECK(s2.v.extra.at("ds_max_rank_ideal_speedup") == Approx(9.0 / 6.5));
}

TEST_CASE("dualsparse 1t with T = 0 is topk: the same op durations and step time", "[variants][dualsparse]") {
  auto toy = make_toy();
  const Sim top = simulate(*toy, spec("{name: t, schedule: topk}", *toy));
  for (const char* y : {"{name: d, schedule: dualsparse, policy: 1t, threshold: 0}",
                        "{name: d, schedule: dualsparse}"}) {
    const Sim ds = simulate(*toy, spec(y, *toy));
    CHECK(ds.v.step_time_s == top.v.step_time_s);
    CHECK(ds.expert_s == top.expert_s);
    CHECK(ds.a2a_bytes == top.a2a_bytes);
    CHECK(ds.v.time_by_class_s == top.v.time_by_class_s);
    CHECK(ds.v.extra.at("ds_drop_rate") == 0.0);
    CHECK(ds.v.extra.at("ds_ideal_speedup") == 1.0);
  }
}

TEST_CASE("dualsparse 2t with delta = 0 is 1t", "[variants][dualsparse]") {
  auto toy = make_toy();
  const DualSparseLayer one = layer_of(*toy, "{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}");
  const DualSparseLayer two = layer_of(*toy, "{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0}");
  CHECK(two.dropped == one.dropped);
  CHECK(two.halves == 0);
  CHECK(two.full == one.full);
  const Sim s1 = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}", *toy));
  const Sim s2 = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0}", *toy));
  CHECK(s2.v.step_time_s == s1.v.step_time_s);
  CHECK(s2.expert_s == s1.expert_s);
}

TEST_CASE("dualsparse dropping shortens the expert GEMMs: full pairs at ffn, half pairs at ffn / 2",
          "[variants][dualsparse]") {
  auto toy = make_toy();
  const Sim top = simulate(*toy, spec("{name: t, schedule: topk}", *toy));
  const Sim s2 = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0.1}", *toy));
  // Rank 1 (experts 2, 3): full {3, 1} at 512, half {0, 3} at 256 (a second grouped GEMM, its own launches).
  const CostModel& c = *toy->cost;
  const double want = c.grouped_experts({3, 1}).seconds + c.grouped_experts({0, 3}, 2).seconds;
  REQUIRE(s2.expert_s.size() == 2);
  CHECK(s2.expert_s[1] == Approx(want).epsilon(1e-12));
  // At 4 tokens a rank the GEMMs are launch and weight bound: the half GEMMs' extra launches cost more than the
  // rows they save (so 2t is slower than topk here), while 1t only removes rows.
  CHECK(s2.expert_s[1] > top.expert_s[1]);
  const Sim s1 = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}", *toy));
  CHECK(s1.expert_s[1] == Approx(c.grouped_experts({3, 3}).seconds).epsilon(1e-12));
  CHECK(s1.expert_s[1] < top.expert_s[1]);
  // FLOPs: 6 x hidden x (full x 512 + half x 256) over both ranks: full 10, half 4.
  CHECK(s2.v.extra.at("ds_expert_gemm_flops") == Approx(6.0 * kHidden * (10 * 512 + 4 * 256)));
  // The default dispatch still carries every routed pair: 0 -> 1 sends t0 e2, t1 e3, t3 e2, t3 e3 = 4 tokens.
  CHECK(s2.a2a_bytes == top.a2a_bytes);
  CHECK(s2.a2a_bytes[1] == 4 * kBytesPerToken);
}

TEST_CASE("dualsparse drop_before_dispatch sends only the kept pairs", "[variants][dualsparse]") {
  auto toy = make_toy();
  const Sim s = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0.1, "
                                    "drop_before_dispatch: true}", *toy));
  // Kept pairs 0 -> 1: 3, 1 -> 0: 3 (see the first test); the diagonal stays local.
  CHECK(s.a2a_bytes[1] == 3 * kBytesPerToken);
  CHECK(s.a2a_bytes[2] == 3 * kBytesPerToken);
  const Sim late = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.3, delta: 0.1}", *toy));
  CHECK(s.v.step_time_s < late.v.step_time_s);
  CHECK(s.expert_s == late.expert_s);
}

TEST_CASE("dualsparse partition 2 without dropping: same FLOPs and all-to-all bytes, P GEMMs of ffn / P",
          "[variants][dualsparse]") {
  auto toy = make_toy();
  const Sim p1 = simulate(*toy, spec("{name: d, schedule: dualsparse, partition: 1}", *toy));
  const Sim p2 = simulate(*toy, spec("{name: d, schedule: dualsparse, partition: 2}", *toy));
  // 16 routed pairs x 6 x hidden x 512, whatever P.
  CHECK(p1.v.extra.at("ds_expert_gemm_flops") == Approx(16.0 * 6 * kHidden * 512));
  CHECK(p2.v.extra.at("ds_expert_gemm_flops") == p1.v.extra.at("ds_expert_gemm_flops"));
  CHECK(p2.a2a_bytes == p1.a2a_bytes);
  // Rank 0 receives e0: 4, e1: 3 pairs -> sub-experts {4, 4, 3, 3} of FFN 256, each its own launch.
  const double want = toy->cost->grouped_experts({4, 4, 3, 3}, 2).seconds;
  CHECK(p2.expert_s[0] == Approx(want).epsilon(1e-12));
  CHECK(p2.expert_s[0] >= p1.expert_s[0]);
  // The sub-expert list itself: P = 4 with a half pair puts it on the first two sub-experts only.
  const auto g = sub_expert_gemms({2}, {1}, 512, 4);
  REQUIRE(g.size() == 4);
  CHECK(g[0].tokens == 3);
  CHECK(g[1].tokens == 3);
  CHECK(g[2].tokens == 2);
  CHECK(g[3].ffn == 128);
  CHECK(sub_expert_flops(g, kHidden) == Approx(sub_expert_flops(sub_expert_gemms({2}, {1}, 512, 1), kHidden)));
}

TEST_CASE("dualsparse load_aware: thresholds scale with load, the most loaded rank keeps T",
          "[variants][dualsparse]") {
  auto toy = make_toy();
  const DualSparseLayer la =
      layer_of(*toy, "{name: d, schedule: dualsparse, policy: load_aware, threshold: 0.3, delta: 0}");
  // Rank 1 (9 pairs) keeps T = 0.3; rank 0 (7 pairs) gets 0.3 x 7 / 9 = 0.2333, so e1's .25 survives there.
  CHECK(la.threshold[1] == 0.3);
  CHECK(la.threshold[0] == Approx(0.3 * 7.0 / 9.0));
  CHECK(la.dropped == 3);
  CHECK(la.full == std::vector<std::vector<int64_t>>{{4, 3}, {3, 3}});
  // The most loaded rank drops exactly what 1t drops there, and its work never exceeds the no-drop work.
  const DualSparseLayer one = layer_of(*toy, "{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}");
  CHECK(la.full[1] == one.full[1]);
  const DualSparseLayer none = layer_of(*toy, "{name: d, schedule: dualsparse}");
  for (std::size_t r = 0; r < 2; ++r) {
    const int64_t before = std::accumulate(none.full[r].begin(), none.full[r].end(), int64_t{0});
    const int64_t after = std::accumulate(la.full[r].begin(), la.full[r].end(), int64_t{0}) +
                          std::accumulate(la.half[r].begin(), la.half[r].end(), int64_t{0});
    CHECK(after <= before);
  }
  const Sim s = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: load_aware, threshold: 0.3, delta: 0}", *toy));
  const Sim top = simulate(*toy, spec("{name: t, schedule: topk}", *toy));
  CHECK(s.expert_s[1] <= top.expert_s[1]);
  CHECK(s.v.extra.at("ds_drop_rate") == Approx(3.0 / 24.0));
}

TEST_CASE("dualsparse rejects bad options with the key and the rule", "[variants][dualsparse]") {
  const Architecture a = toy_arch(96);  // 96 = 2^5 x 3: P = 64 does not divide it
  CHECK_THAT(decode("{name: d, schedule: dualsparse, partition: 64}", a).second,
             Catch::Contains("partition: must divide the expert FFN width (model.expert_ffn = 96) (got 64)"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, partition: 3}", a).second,
             Catch::Contains("partition: must be a power of two"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, policy: 1t, threshold: 1.5}", a).second,
             Catch::Contains("threshold: must be in [0, 1] (got 1.5)"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, policy: 1t}", a).second, Catch::Contains("threshold"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, policy: 3t, threshold: 0.1}", a).second,
             Catch::Contains("policy: must be one of none, 1t, 2t, load_aware"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, treshold: 0.1}", a).second, Catch::Contains("treshold"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.1}", toy_arch(95)).second,
             Catch::Contains("policy: keeps half of an expert's neurons: model.expert_ffn must be even"));
  CHECK(decode("{name: d, schedule: dualsparse, policy: 2t, threshold: 0.1, partition: 32}", a).second.empty());
}

TEST_CASE("dualsparse with T = 1 drops every routed pair and still simulates", "[variants][dualsparse]") {
  auto toy = make_toy();
  // Every top-2 score is < 1: all 16 routed pairs dropped; only the 8 shared computations are left. Sent before
  // the dispatch, the all-to-alls carry nothing at all (empty pairs are skipped, the step still finishes).
  const Sim s = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 1, "
                                    "drop_before_dispatch: true}", *toy));
  CHECK(s.v.extra.at("ds_drop_rate") == Approx(16.0 / 24.0));
  CHECK(s.v.extra.at("ds_ideal_speedup") == Approx(3.0));
  CHECK(s.a2a_bytes == std::vector<double>(4, 0.0));
  CHECK(s.expert_s == std::vector<double>{0.0, 0.0});
  // Without shared experts nothing is left: the ideal speed-up is undefined and reported as 0, not infinity.
  std::map<std::string, double> x{{"ds_routed_pairs", 16}, {"ds_shared_pairs", 0}, {"ds_dropped_pairs", 16},
                                  {"ds_half_pairs", 0}, {"ds_max_rank_work_before_pairs", 9},
                                  {"ds_max_rank_work_after_pairs", 0}};
  find_schedule("dualsparse")->derive_metrics(x);
  CHECK(x.at("ds_drop_rate") == 1.0);
  CHECK(x.at("ds_ideal_speedup") == 0.0);
  CHECK(x.at("ds_max_rank_ideal_speedup") == 0.0);
}

// --- thresholds: a sweep of T (issue 11 point 6) -------------------------------------------------------------

namespace {

// The expansion of one decoded entry (ScheduleInfo::expand), as the scenario loader does it.
std::vector<VariantSpec> expand(const VariantSpec& s) { return find_schedule("dualsparse")->expand(s); }

}  // namespace

TEST_CASE("dualsparse thresholds expand into one tagged variant per threshold", "[variants][dualsparse][sweep]") {
  auto toy = make_toy();
  const VariantSpec entry =
      spec("{name: ds, schedule: dualsparse, policy: 1t, partition: 2, thresholds: [0.2, 0.3, 0.5]}", *toy);
  // The entry itself shows the list; it is never simulated as such.
  CHECK(entry.shown.at("thresholds") == "[0.2, 0.3, 0.5]");
  CHECK(entry.shown.count("threshold") == 0);
  CHECK(entry.options_as<DualSparseOptions>().thresholds == std::vector<double>{0.2, 0.3, 0.5});
  const std::vector<VariantSpec> points = expand(entry);
  REQUIRE(points.size() == 3);
  const std::vector<std::string> names{"ds T=0.2", "ds T=0.3", "ds T=0.5"};
  const std::vector<double> ts{0.2, 0.3, 0.5};
  for (std::size_t i = 0; i < 3; ++i) {
    INFO(i);
    const VariantSpec& p = points[i];
    CHECK(p.name == names[i]);
    CHECK(p.schedule == "dualsparse");
    const auto& o = p.options_as<DualSparseOptions>();
    CHECK(o.threshold == ts[i]);
    CHECK(o.thresholds.empty());  // a point is a single-threshold variant
    CHECK(o.policy == DropPolicy::one_t);
    CHECK(o.partition == 2);      // every other option carries over
    CHECK(p.shown.at("threshold") == fmt::format("{}", ts[i]));
    CHECK(p.shown.count("thresholds") == 0);
    CHECK(p.shown.at("partition") == "2");
    CHECK(p.shown.at("policy") == "1t");
    CHECK(p.sweep.of == "ds");
    CHECK(p.sweep.key == "threshold");
    CHECK(p.sweep.value == ts[i]);
  }
  // A single threshold is no sweep: nothing to expand, no tag.
  const VariantSpec one = spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}", *toy);
  CHECK(expand(one).empty());
  CHECK(one.sweep.empty());
  // The shown value is the shortest text that reads back as the double: 0.1 + 0.2 is not 0.3.
  const auto odd = expand(spec("{name: x, schedule: dualsparse, policy: 2t, thresholds: [0.1, 0.30000000000000004]}",
                               *toy));
  REQUIRE(odd.size() == 2);
  CHECK(odd[1].name == "x T=0.30000000000000004");
  CHECK(odd[1].sweep.value == 0.1 + 0.2);
}

TEST_CASE("dualsparse thresholds: every rule is an error naming the key", "[variants][dualsparse][sweep]") {
  const Architecture a = toy_arch();
  auto errors = [&](const std::string& yaml) { return decode(yaml, a).second; };
  const std::string head = "{name: d, schedule: dualsparse, policy: 1t, ";
  CHECK(errors(head + "thresholds: [0.1, 0.2]}").empty());
  // Strictly increasing: a repeated value and a smaller one are each reported where they stand (columns 68 and
  // 73 of the one-line entry: the list opens at column 57, its items start at 58, 63, 68 and 73).
  CHECK(errors(head + "thresholds: [0.1, 0.2, 0.2, 0.15]}") ==
        "variant:1:68: thresholds[2]: must be greater than the value before it (0.2): thresholds increase strictly "
        "(got 0.2)\n"
        "variant:1:73: thresholds[3]: must be greater than the value before it (0.2): thresholds increase strictly "
        "(got 0.15)\n");
  CHECK_THAT(errors(head + "thresholds: [0.1, 1.5]}"), Catch::Contains("thresholds[1]: must be in [0, 1] (got 1.5)"));
  CHECK_THAT(errors(head + "thresholds: [-0.1, 0.5]}"), Catch::Contains("thresholds[0]: must be in [0, 1] (got -0.1)"));
  CHECK_THAT(errors(head + "thresholds: [0.1, high]}"), Catch::Contains("thresholds[1]:"));
  CHECK_THAT(errors(head + "thresholds: [0.1]}"),
             Catch::Contains("thresholds: must list 2 to 64 thresholds (one simulation each) (got a list of 1)"));
  std::string many = head + "thresholds: [";
  for (int i = 0; i < 65; ++i) many += fmt::format("{}{}", i ? ", " : "", i / 100.0);
  CHECK_THAT(errors(many + "]}"), Catch::Contains("thresholds: must list 2 to 64 thresholds (one simulation each) "
                                                  "(got a list of 65)"));
  std::string max = head + "thresholds: [";
  for (int i = 0; i < 64; ++i) max += fmt::format("{}{}", i ? ", " : "", i / 100.0);
  CHECK(errors(max + "]}").empty());
  CHECK_THAT(errors(head + "thresholds: 0.1}"), Catch::Contains("thresholds: must be a list (got 0.1)"));
  CHECK_THAT(errors(head + "threshold: 0.1, thresholds: [0.1, 0.2]}"),
             Catch::Contains("thresholds: cannot be given together with threshold (threshold: one value; thresholds: "
                             "a list of values to sweep) (got a list)"));
  CHECK_THAT(errors("{name: d, schedule: dualsparse, thresholds: [0.1, 0.2]}"),
             Catch::Contains("thresholds: needs a dropping policy (policy: 1t, 2t or load_aware) (got a list)"));
  // Unknown keys stay errors, with a suggestion.
  CHECK_THAT(errors(head + "threshold_list: [0.1, 0.2]}"), Catch::Contains("threshold_list"));
  // A list with an error is not expanded (no points, no follow-on errors from them).
  auto [bad, text] = decode(head + "thresholds: [0.2, 0.1]}", a);
  CHECK(!text.empty());
  CHECK(expand(bad).empty());
  // Other schedules do not know the key.
  CHECK_THAT(errors("{name: t, schedule: topk, thresholds: [0.1, 0.2]}"), Catch::Contains("thresholds"));
}

TEST_CASE("a sweep point simulates exactly as the same threshold written alone", "[variants][dualsparse][sweep]") {
  auto toy = make_toy();
  const std::vector<VariantSpec> points =
      expand(spec("{name: ds, schedule: dualsparse, policy: 1t, thresholds: [0.2, 0.3, 0.5]}", *toy));
  REQUIRE(points.size() == 3);
  // Dropped pairs by hand from the score lists at the top of the file (routed 16 + shared 8 = 24):
  //   T = 0.2: .10 .05 -> 2;  T = 0.3: + .25 .25 -> 4;  T = 0.5: + .45 .42 .32 .35 -> 8.
  const std::vector<double> dropped{2, 4, 8};
  for (std::size_t i = 0; i < 3; ++i) {
    INFO(points[i].name);
    const Sim s = simulate(*toy, points[i]);
    CHECK(s.v.extra.at("ds_drop_rate") == Approx(dropped[i] / 24.0));
    CHECK(s.v.extra.at("ds_ideal_speedup") == Approx(24.0 / (24.0 - dropped[i])));
  }
  const Sim point = simulate(*toy, points[1]);
  const Sim alone = simulate(*toy, spec("{name: d, schedule: dualsparse, policy: 1t, threshold: 0.3}", *toy));
  CHECK(point.v.step_time_s == alone.v.step_time_s);
  CHECK(point.v.extra == alone.v.extra);
  CHECK(point.expert_s == alone.expert_s);
  CHECK(point.a2a_bytes == alone.a2a_bytes);
}
