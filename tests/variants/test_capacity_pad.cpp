// routing.capacity_mode: pad (GShard/Tutel-style fixed-capacity buffers) worked by hand on a 2-rank toy.
//
// The toy: 4 routed experts (hidden 1024, bf16: 2048 bytes per token), top-2, contiguous placement (rank 0
// holds experts {0, 1}, rank 1 holds {2, 3}), 4 tokens per rank, capacity_factor 1: every (source rank,
// expert) buffer holds ceil(1 x 4 x 2 / 4) = 2 pairs. The trace:
//   rank 0: t0 {0, 1}  t1 {0, 2}  t2 {0, 3}  t3 {1, 2}     rank 1: t0 {2, 3}  t1 {2, 0}  t2 {2, 1}  t3 {3, 0}
// Rank 0 sends e0 3 pairs (its third, t2's, is dropped), e1 2, e2 2, e3 1; rank 1 sends e2 3 (t2's dropped),
// e3 2, e0 2, e1 1. Kept pairs src -> dst: 0->0 2 + 2 = 4, 0->1 2 + 1 = 3, 1->0 2 + 1 = 3, 1->1 2 + 2 = 4.
// Padded, every buffer is 2 rows whatever it holds: src -> dst = 2 experts x 2 rows = 4 for every pair, and
// each expert computes 2 sources x 2 rows = 4 rows (dropping alone: rank 0 e0 4, e1 3; rank 1 e2 4, e3 3).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

#include "models/cost_model.hpp"
#include "models/placement.hpp"
#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/step_costs.hpp"
#include "models/variants/variant.hpp"
#include "sim/diagnostics.hpp"
#include "sim/scenario.hpp"
#include "sim/yaml_view.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;
using namespace moesim::models;

namespace {

const char* kTrace =
    "layer,rank,token,experts\n"
    "0,0,0,0;1\n0,0,1,0;2\n0,0,2,0;3\n0,0,3,1;2\n"
    "0,1,0,2;3\n0,1,1,2;0\n0,1,2,2;1\n0,1,3,3;0\n";

Architecture arch() { return testing::toy_moe("toy-pad", 4, 2); }

Profile profile() { return testing::toy_gpu(); }

RoutingPlan plan(const std::string& mode) {
  auto dir = std::filesystem::temp_directory_path() / ("moesim_pad_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "toy.csv") << kTrace;
  Diagnostics d;
  const YamlView v = YamlView::load_string("{distribution: trace, capacity_factor: 1.0, capacity_mode: " + mode +
                                               ", file: " + (dir / "toy.csv").string() + "}",
                                           "routing", &d);
  const RoutingSpec rs = decode_routing(v, arch(), 2, ".");
  REQUIRE(d.str() == "");
  return generate_routing(rs, arch(), Placement(4, 2), 4, 1);
}

}  // namespace

TEST_CASE("capacity_mode pad: kept pairs as with drop, padded rows for the all-to-alls and the GEMMs",
          "[routing][capacity]") {
  const RoutingPlan drop = plan("drop"), pad = plan("pad");
  for (const RoutingPlan* p : {&drop, &pad}) {
    CHECK(p->layer(0).rank_tokens == std::vector<int64_t>{4, 3, 3, 4});
    CHECK(p->layer(0).dropped == 2);
  }
  CHECK(drop.layer(0).pad_rows.empty());
  CHECK(drop.layer(0).padded_rank_tokens.empty());
  CHECK(pad.layer(0).pad_rows == std::vector<int64_t>{2, 2});
  CHECK(pad.layer(0).padded_rank_tokens == std::vector<int64_t>{4, 4, 4, 4});
  const Placement pl(4, 2);
  CHECK(expert_tokens(drop, pl, 0, 0) == std::vector<int64_t>{4, 3});
  CHECK(expert_tokens(drop, pl, 0, 1) == std::vector<int64_t>{4, 3});
  CHECK(expert_tokens(pad, pl, 0, 0) == std::vector<int64_t>{4, 4});
  CHECK(expert_tokens(pad, pl, 0, 1) == std::vector<int64_t>{4, 4});

  // topk's graph: the dispatch carries 4 padded rows each way (drop: 3), the experts compute {4, 4} rows.
  const Architecture a = arch();
  const Profile pr = profile();
  const CostModel cost(pr, a);
  const StepCosts costs(cost, false, 4);
  VariantSpec topk;
  topk.name = "t";
  topk.schedule = "topk";
  topk.top_k = 2;
  auto graph = [&](const RoutingPlan& p) {
    const StepInput in{a, pl, p, costs, Mode::inference_prefill, 2, 4, {0}, 0, nullptr};
    return find_schedule("topk")->build(topk, in);
  };
  const OpGraph gd = graph(drop), gp = graph(pad);
  const double bpt = 2048;
  CHECK(gd.collectives().at(0).bytes == std::vector<double>{4 * bpt, 3 * bpt, 3 * bpt, 4 * bpt});
  CHECK(gp.collectives().at(0).bytes == std::vector<double>{4 * bpt, 4 * bpt, 4 * bpt, 4 * bpt});
  std::vector<double> expert_d, expert_p;
  for (const Op& op : gd.ops())
    if (op.cls == OpClass::expert) expert_d.push_back(op.duration_s);
  for (const Op& op : gp.ops())
    if (op.cls == OpClass::expert) expert_p.push_back(op.duration_s);
  CHECK(expert_d == std::vector<double>(2, costs.experts({4, 3}).seconds));
  CHECK(expert_p == std::vector<double>(2, costs.experts({4, 4}).seconds));
}

TEST_CASE("capacity_mode pad is checked: needs a factor, no replicas, a schedule that costs it",
          "[routing][capacity]") {
  Diagnostics d;
  const YamlView v = YamlView::load_string("{distribution: uniform, capacity_mode: pad}", "routing", &d);
  decode_routing(v, arch(), 2, ".");
  CHECK_THAT(d.str(), Catch::Contains("capacity_mode: pad sizes every buffer at the capacity: set capacity_factor too"));
  Diagnostics d2;
  decode_routing(YamlView::load_string("{capacity_factor: 1.2, capacity_mode: padded}", "routing", &d2), arch(), 2, ".");
  CHECK_THAT(d2.str(), Catch::Contains("capacity_mode: must be one of drop, pad"));
  const std::string head =
      "version: 1\nname: pad\nmodel: mixtral-8x7b\ncluster: h200-hgx-8\n"
      "workload: {mode: inference_prefill, tokens_per_rank: 256, routing: {capacity_factor: 1.25, capacity_mode: pad}}\n";
  auto errors = [&](const std::string& rest) {
    try {
      load_scenario_text(head + rest, "pad.yaml");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(errors("parallelism: {ep: 8}\nvariants: [{name: t, schedule: topk}]\n").empty());
  CHECK_THAT(errors("parallelism: {ep: 8}\nvariants: [{name: e, schedule: eplb}]\n"),
             Catch::Contains("schedule: does not model padded capacity buffers (routing.capacity_mode: pad)"));
  CHECK_THAT(errors("parallelism: {ep: 3, placement: {replicate: true}}\nvariants: [{name: t, schedule: topk}]\n"),
             Catch::Contains("capacity_mode: pad is not modelled with replicated experts"));
}
