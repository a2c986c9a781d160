// DualSparse under expert tensor parallelism (parallelism.etp), ETP vs S-ETP, worked by hand on a 4-rank toy.
//
// The toy: 2 groups x etp 2 = 4 ranks. 4 routed experts (hidden 1024, bf16: 2048 bytes per token; FFN 512),
// top-2, no shared expert. Group 0 = ranks {0, 1} holds experts {0, 1}, group 1 = ranks {2, 3} holds {2, 3}
// (each rank 256 of the 512 neurons under ETP, or one of the 2 sub-experts under S-ETP). 2 tokens per rank:
//
//   rank 0: t0 0:.90 2:.10   t1 1:.72 3:.28        rank 2: t0 0:.55 1:.45   t1 0:.65 3:.35
//   rank 1: t0 2:.60 0:.40   t1 3:.80 2:.20        rank 3: t0 1:.85 2:.15   t1 2:.52 0:.48
//
// Where the all-to-all sends each pair (Placement::dest_of_nth; an expert is on both ranks of its group): to
// the source itself when it holds the expert, else the n-th pair of a source to an expert goes to replica
// (src mod 2 + n) mod 2 of the group. So:
//   src 0: e0 -> 0, e2 -> 2, e1 -> 0, e3 -> 2          src 2: e0 -> 0, e1 -> 0, e0 (2nd) -> 1, e3 -> 2
//   src 1: e2 -> 3, e0 -> 1, e3 -> 3, e2 (2nd) -> 2    src 3: e1 -> 1, e2 -> 3, e2 -> 3, e0 -> 1
// Pairs src -> dst: row 0 {2,0,2,0}, row 1 {0,1,1,2}, row 2 {2,1,1,0}, row 3 {0,2,0,2}: every rank receives 4,
// each group 8 (e0 5, e1 3; e2 5, e3 3). 10 of the 16 pairs leave their rank.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <unistd.h>

#include "models/cost_model.hpp"
#include "models/placement.hpp"
#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/dualsparse.hpp"
#include "models/variants/step_costs.hpp"
#include "sim/diagnostics.hpp"
#include "sim/engine.hpp"
#include "sim/metrics.hpp"
#include "sim/platform_spec.hpp"
#include "sim/yaml_view.hpp"
#include "tests/sim/test_support.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;
using namespace moesim::models;

namespace {

constexpr double kBpt = 1024 * 2.0;  // bytes per token

const char* kTrace =
    "layer,rank,token,experts,scores\n"
    "0,0,0,0;2,0.90;0.10\n0,0,1,1;3,0.72;0.28\n"
    "0,1,0,2;0,0.60;0.40\n0,1,1,3;2,0.80;0.20\n"
    "0,2,0,0;1,0.55;0.45\n0,2,1,0;3,0.65;0.35\n"
    "0,3,0,1;2,0.85;0.15\n0,3,1,2;0,0.52;0.48\n";

Architecture arch4() { return testing::toy_moe("toy-etp", 4, 2); }

Profile profile4() { return testing::toy_gpu(); }

// 4 GPUs on a switch, 50 GB/s per direction, no latency.
PlatformSpec four_gpus() {
  PlatformSpec p;
  for (int i = 0; i < 4; ++i) {
    p.gpu_names.push_back("gpu" + std::to_string(i));
    p.gpu_node.push_back(0);
    p.links.push_back({"gpu" + std::to_string(i) + "-sw", "nvlink", 50e9, 0.0, true});
  }
  std::vector<std::vector<LinkUse>> routes(16);
  for (uint32_t s = 0; s < 4; ++s)
    for (uint32_t d = 0; d < 4; ++d)
      if (s != d) routes[s * 4 + d] = {{s, true}, {d, false}};
  p.set_routes(routes);
  return p;
}

struct Toy {
  Architecture arch = arch4();
  Placement placement = Placement::from_slots(4, {{0, 1}, {0, 1}, {2, 3}, {2, 3}});
  Profile profile = profile4();
  std::unique_ptr<CostModel> cost;
  std::unique_ptr<StepCosts> costs;
  std::unique_ptr<RoutingPlan> plan;
  std::vector<int> layers{0};
  StepInput input() const {
    return {arch, placement, *plan, *costs, Mode::inference_prefill, 4, 2, layers, 0, nullptr, 2};
  }
};

std::unique_ptr<Toy> make_toy() {
  auto t = std::make_unique<Toy>();
  t->cost = std::make_unique<CostModel>(t->profile, t->arch);
  t->costs = std::make_unique<StepCosts>(*t->cost, false, 2);
  auto dir = std::filesystem::temp_directory_path() / ("moesim_etp_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "toy.csv") << kTrace;
  Diagnostics d;
  const YamlView v = YamlView::load_string("{distribution: trace, file: " + (dir / "toy.csv").string() + "}",
                                           "routing", &d);
  const RoutingSpec rs = decode_routing(v, t->arch, 4, ".");
  REQUIRE(d.str() == "");
  t->plan = std::make_unique<RoutingPlan>(generate_routing(rs, t->arch, t->placement, 2, 1));
  return t;
}

std::pair<VariantSpec, std::string> decode(const std::string& yaml, int etp) {
  Diagnostics d;
  const YamlView v = YamlView::load_string(yaml, "variant", &d);
  static const Profile profile = profile4();
  VariantSpec s = decode_variant(v, arch4(), 4, ".", &profile, Mode::inference_prefill, etp);
  return {s, d.str()};
}

OpGraph build(const Toy& toy, const std::string& yaml) {
  auto [s, errors] = decode(yaml, 2);
  INFO(errors);
  REQUIRE(errors.empty());
  return find_schedule(s.schedule)->build(s, toy.input());
}

// Off-diagonal bytes of the collectives of one kind, summed (all-to-alls: the first, i.e. the dispatch).
double bytes_of(const OpGraph& g, OpKind kind) {
  double sum = 0;
  for (const Collective& c : g.collectives()) {
    if (c.kind != kind) continue;
    const auto M = static_cast<std::size_t>(c.size());
    for (std::size_t p = 0; p < M * M; ++p)
      if (p / M != p % M) sum += c.bytes[p];
    if (kind == OpKind::all_to_all) break;
  }
  return sum;
}

std::vector<double> expert_durations(const OpGraph& g) {
  std::vector<double> out;
  for (const Op& op : g.ops())
    if (op.cls == OpClass::expert) out.push_back(op.duration_s);
  return out;
}

}  // namespace

TEST_CASE("ETP and S-ETP without dropping: the plan's pairs, the same bytes, the same GEMMs",
          "[variants][dualsparse][etp]") {
  auto toy = make_toy();
  CHECK(toy->plan->layer(0).rank_tokens == std::vector<int64_t>{2, 0, 2, 0, 0, 1, 1, 2, 2, 1, 1, 0, 0, 2, 0, 2});
  const OpGraph etp = build(*toy, "{name: e, schedule: dualsparse, expert_tp: etp}");
  const OpGraph setp = build(*toy, "{name: s, schedule: dualsparse, expert_tp: s_etp}");
  // ETP: dispatch all-to-all of the 10 pairs that leave their rank, then one all-gather per group: each rank's
  // block is the 4 pairs it received, sent to the other rank of its group: 4 x 4 = 16 pairs. 26 in all.
  CHECK(bytes_of(etp, OpKind::all_to_all) == 10 * kBpt);
  CHECK(bytes_of(etp, OpKind::all_gather) == 16 * kBpt);
  int gathers = 0, scatters = 0;
  for (const Collective& c : etp.collectives()) {
    gathers += c.kind == OpKind::all_gather;
    scatters += c.kind == OpKind::reduce_scatter;
    if (c.kind != OpKind::all_to_all) CHECK(c.size() == 2);
  }
  CHECK(gathers == 2);
  CHECK(scatters == 2);
  CHECK(bytes_of(etp, OpKind::reduce_scatter) == 16 * kBpt);  // the partial outputs of the same blocks
  // S-ETP: each pair to both sub-experts of its group, one copy local when the source is in the group: the 6
  // pairs sent within their own group (src 0: e0 e1; src 1: e0; src 2: e3; src 3: e2 e2) leave once, the 10
  // others twice: 6 + 20 = 26 pairs, the same bytes as ETP, in one collective.
  CHECK(bytes_of(setp, OpKind::all_to_all) == 26 * kBpt);
  CHECK(bytes_of(setp, OpKind::all_gather) == 0);
  // The same GEMMs: every rank of group 0 runs e0 over 5 rows and e1 over 3, at 256 neurons; group 1 e2 5, e3 3.
  const std::vector<double> d_etp = expert_durations(etp), d_setp = expert_durations(setp);
  REQUIRE(d_etp.size() == 4);
  CHECK(d_etp == d_setp);
  const double want = toy->costs->model().grouped_experts({5, 3}, 2).seconds;
  for (double d : d_etp) CHECK(d == want);
}

TEST_CASE("S-ETP with 2T-Drop before dispatch skips the minor half's copies", "[variants][dualsparse][etp]") {
  auto toy = make_toy();
  // 2t, T = 0.4, delta = 0.1: dropped below 0.3, half in [0.3, 0.5), full from 0.5.
  //   e0 .90 F .40 H .55 F .65 F .48 H    e1 .72 F .45 H .85 F    e2 .10 D .60 F .20 D .15 D .52 F
  //   e3 .28 D .80 F .35 H
  // 16 routed: 4 dropped, 4 halves. Group 0 (e0, e1): full 3 + 2, half 2 + 1; group 1 (e2, e3): full 2 + 1,
  // half 0 + 1. Rank rows (ffn / 2 each): the major-half rank (0, 2) computes full + half, the other full only.
  const std::string opts = "policy: 2t, threshold: 0.4, delta: 0.1, drop_before_dispatch: true";
  const OpGraph etp = build(*toy, "{name: e, schedule: dualsparse, expert_tp: etp, " + opts + "}");
  const OpGraph setp = build(*toy, "{name: s, schedule: dualsparse, expert_tp: s_etp, " + opts + "}");
  const auto& m = toy->costs->model();
  const std::vector<double> want = {m.grouped_experts({5, 3}, 2).seconds, m.grouped_experts({3, 2}, 2).seconds,
                                    m.grouped_experts({2, 2}, 2).seconds, m.grouped_experts({2, 1}, 2).seconds};
  CHECK(expert_durations(etp) == want);
  CHECK(expert_durations(setp) == want);
  // ETP: the all-to-all carries the 12 kept pairs to the plan's ranks; kept src -> dst: 0->0 2; 1->1 1, 1->3 2;
  // 2->0 2, 2->1 1, 2->2 1; 3->1 2, 3->3 1: 7 leave their rank. Blocks (kept received, own included): rank 0
  // 4, rank 1 4, rank 2 1, rank 3 3, each sent to the other rank of the group: 12. Dispatch total 19 pairs.
  CHECK(bytes_of(etp, OpKind::all_to_all) == 7 * kBpt);
  CHECK(bytes_of(etp, OpKind::all_gather) == 12 * kBpt);
  // S-ETP: full pairs to both ranks of the group, half pairs to the major-half rank only, dropped pairs nowhere:
  // src 0: e0 e1 full -> rank 1 (2); src 1: e2 e3 full -> ranks 2, 3 (4), e0 half -> rank 0 (1);
  // src 2: e0 e0 full -> rank 1 (2), e1 half -> rank 0 (1), e3 half -> rank 2 (itself, 0);
  // src 3: e1 full -> ranks 0, 1 (2), e2 full -> rank 2 (1), e0 half -> rank 0 (1): 16 pairs, 3 fewer than
  // ETP: the halves e1 .45, e3 .35 and e0 .48, which ETP's all-gather also sends to the minor-half rank.
  CHECK(bytes_of(setp, OpKind::all_to_all) == 16 * kBpt);
}

TEST_CASE("ETP simulates, and each rank reports its group's pairs", "[variants][dualsparse][etp]") {
  auto toy = make_toy();
  const auto child = testing::run_in_child_text([&] {
    const OpGraph g = build(*toy, "{name: e, schedule: dualsparse, expert_tp: etp}");
    const Trace tr = run_engine(four_gpus(), {0, 1, 2, 3}, g, EngineOptions{});
    VariantResult v;
    summarize(g, tr, 1, false, v);
    std::string out = std::to_string(v.step_time_s > 0);
    for (const auto& [key, rx] : g.received())
      for (int64_t x : rx.pairs) out += fmt::format(" {}", x);  // not " " + string: GCC 12 -O3 -Wrestrict false positive
    for (const auto& [cls, s] : v.time_by_class_s) out += fmt::format(" {}", cls);
    return out;
  });
  REQUIRE(child.ok());
  // Every rank computes on its group's 8 pairs; the breakdown has the group collectives.
  CHECK_THAT(child.text, Catch::StartsWith("1 8 8 8 8"));
  CHECK_THAT(child.text, Catch::Contains("expert_all_gather"));
  CHECK_THAT(child.text, Catch::Contains("expert_reduce_scatter"));
}

TEST_CASE("expert_tp options are checked against parallelism.etp", "[variants][dualsparse][etp]") {
  CHECK_THAT(decode("{name: d, schedule: dualsparse, expert_tp: etp}", 1).second,
             Catch::Contains("expert_tp: needs expert tensor parallelism (parallelism.etp > 1)"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, expert_tp: s_etp, partition: 4}", 2).second,
             Catch::Contains("partition: must equal parallelism.etp = 2 under expert_tp: s_etp"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, expert_tp: etp, partition: 2}", 2).second,
             Catch::Contains("partition: must be 1 under expert_tp: etp"));
  CHECK_THAT(decode("{name: d, schedule: dualsparse, expert_tp: tp}", 2).second,
             Catch::Contains("expert_tp: must be one of etp, s_etp"));
  CHECK_THAT(decode("{name: t, schedule: topk}", 2).second,
             Catch::Contains("schedule: does not model expert tensor parallelism (parallelism.etp = 2)"));
  auto [s, errors] = decode("{name: d, schedule: dualsparse, expert_tp: s_etp}", 2);
  CHECK(errors.empty());
  CHECK(s.options_as<DualSparseOptions>().partition == 2);
  CHECK(s.shown.at("expert_tp") == "s_etp");
}
