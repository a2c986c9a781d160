// Models built of stages (issue 13 point 5): a stage's blocks are costed at the stage's shape and token
// count, worked by hand here; a flat model gives the same JSON as the same model written as one stage.
#include <catch2/catch.hpp>
#include <numeric>

#include "models/architecture.hpp"
#include "models/variants/schedule_util.hpp"
#include "models/variants/variant.hpp"
#include "reports/reports.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;

namespace {
// Two stages of two blocks each, every other block MoE (blocks 1 and 3). Stage s1: hidden 1024, MHA 8 x 128,
// expert FFN 512, the workload's tokens. Stage s2: hidden 512, MHA 4 x 128, expert FFN 256, a quarter of the
// tokens after a patch merge of 4 neighbours (merge input 4 x 1024 = 4096 wide). Both non-causal with
// windows of 64 tokens.
const char* kTwoStage = R"(
name: two-stage
source: "test model"
hidden: 1024
expert_ffn: 512
dense_ffn: 1024
routed_experts: 2
top_k: 1
moe_every: 2
attention: {kind: mha, heads: 8, head_dim: 128, causal: false, window: 64}
stages:
  - {name: s1, layers: 2}
  - name: s2
    layers: 2
    hidden: 512
    expert_ffn: 256
    dense_ffn: 512
    token_scale: 0.25
    patch_merge: true
    attention: {kind: mha, heads: 4, head_dim: 128, causal: false, window: 64}
)";

models::Architecture decode_model(const std::string& text) {
  Diagnostics diags;
  YamlView v = YamlView::load_string(text, "model.yaml", &diags);
  models::Architecture a = models::decode_architecture(v, testing::source_dir());
  if (!diags.empty()) throw InputError(diags);
  return a;
}
}  // namespace

TEST_CASE("a model built of stages decodes each stage's shape, blocks and tokens", "[stages]") {
  const models::Architecture a = decode_model(kTwoStage);
  REQUIRE(a.stage_count() == 2);
  CHECK(a.layers == 4);
  // moe_every 2 counts within each stage: block 1 of each stage (model blocks 1 and 3).
  CHECK(a.moe_layer == std::vector<bool>{false, true, false, true});
  CHECK(a.stage_of(1) == 0);
  CHECK(a.stage_of(2) == 1);
  CHECK(a.stages[1].first_layer == 2);
  CHECK(a.stages[1].merge_group == 4);
  CHECK(a.stages[1].merge_in == 4096);
  // round(1000 x 0.25) = 250; stage s1 keeps the workload's tokens.
  CHECK(a.layer_tokens(1, 1000) == 1000);
  CHECK(a.layer_tokens(3, 1000) == 250);
  const models::Architecture s2 = a.stage_shape(1);
  CHECK(s2.hidden == 512);
  CHECK(s2.expert_ffn == 256);
  CHECK(s2.dense_ffn == 512);
  CHECK(s2.attention.heads == 4);
  CHECK(s2.stages.empty());
  // The top level keeps stage s1's shape.
  CHECK(a.hidden == 1024);
  CHECK(a.attention.heads == 8);
}

// The toy GPU (tests/variants/toy_model.hpp): 1 TB/s, 100 TFLOP/s bf16, 5 us per launch, efficiencies 1, flat
// GEMMs. 2 ranks, 2 experts (one per rank), top-1 uniform routing, 1,024 tokens per rank, context 1,024.
TEST_CASE("a block of a later stage is costed at its stage's shape and tokens", "[stages]") {
  const models::Architecture a = decode_model(kTwoStage);
  const models::Profile gpu = testing::toy_gpu();
  const models::CostModel cost(gpu, a);
  const models::StepCosts costs(cost, false, 1024);
  const models::StageCosts stages(gpu, a, false, 1024, 1024);
  const models::Placement pl(2, 2);
  const models::RoutingPlan plan = models::generate_routing(models::RoutingSpec{}, a, pl, 1024, 1);
  // Routing draws each stage's tokens: 1,024 per rank in block 1, 256 in block 3.
  CHECK(plan.layer(1).src_tokens == std::vector<int64_t>{1024, 1024});
  CHECK(plan.layer(3).src_tokens == std::vector<int64_t>{256, 256});
  CHECK(stages.tokens(1) == 256);

  const models::StepInput in{a,   pl, plan, costs, models::Mode::inference_prefill, 2, 1024, {0, 1, 2, 3}, 0,
                             nullptr, 1, false, &stages};
  models::VariantSpec topk;
  topk.name = "t";
  topk.schedule = "topk";
  const OpGraph g = models::find_schedule("topk")->build(topk, in);
  auto compute = [&](OpClass cls, int layer) {
    for (const Op& op : g.ops())
      if (op.cls == cls && op.layer == layer && op.rank == 0) return op.duration_s;
    FAIL("no op");
    return 0.0;
  };
  auto a2a_bytes = [&](OpClass cls, int layer) {
    for (const Op& op : g.ops())
      if (op.cls == cls && op.layer == layer && op.rank == 0) {
        const auto& b = g.collectives().at(static_cast<std::size_t>(op.collective)).bytes;
        return std::accumulate(b.begin(), b.end(), 0.0);
      }
    FAIL("no all-to-all");
    return 0.0;
  };

  // Attention of block 2 (stage s2): 256 tokens, hidden 512, 4 heads x 128.
  //  projections, one roofline of 2 launches: qkv 512 -> 1536: 2 x 256 x 512 x 1536 = 402,653,184 FLOP,
  //  bytes (256 x 512 + 512 x 1536 + 256 x 1536) x 2 = 2,621,440; o 512 -> 512: 134,217,728 FLOP, bytes
  //  (256 x 512 + 512 x 512 + 256 x 512) x 2 = 1,048,576. 536,870,912 FLOP = 5.36870912 us > 3.670016 us of
  //  bytes: 10 us + 5.36870912 us.
  //  core: context round(1024 x 0.25) = 256, window 64 < 256, not causal: 64 keys per query.
  //  2 x 256 x 64 x 4 x (128 + 128) = 33,554,432 FLOP = 0.33554432 us; bytes 256 x (4 x 128 x 4) x 2 =
  //  1,048,576 = 1.048576 us (memory-bound): 5 us + 1.048576 us.
  CHECK(compute(OpClass::attention, 2) == Approx(15.36870912e-6 + 6.048576e-6).epsilon(1e-12));
  // Block 0 (stage s1) is costed as the flat model of stage s1's shape on all 1,024 tokens.
  CHECK(compute(OpClass::attention, 0) == Approx(costs.attention(1024).seconds).epsilon(1e-15));
  // Patch merge before block 2: LayerNorm over 256 rows of 4096: 4 x 1,048,576 FLOP (0.04194304 us), bytes
  // (2 x 1,048,576 + 4096) x 2 = 4,202,496 (4.202496 us): 5 + 4.202496 us. Reduction GEMM 256 x 4096 x 512:
  // 1,073,741,824 FLOP = 10.73741824 us; bytes (256 x 4096 + 4096 x 512 + 256 x 512) x 2 = 6,553,600
  // (6.5536 us): 5 + 10.73741824 us.
  CHECK(compute(OpClass::patch_merge, 2) == Approx(9.202496e-6 + 15.73741824e-6).epsilon(1e-12));
  // Dispatch of block 3: 2 ranks x 256 tokens x top-1 = 512 pairs of 512 x 2 B = 524,288 bytes in all
  // (local pairs included); block 1: 2 x 1,024 pairs of 1024 x 2 B = 4,194,304 bytes.
  CHECK(a2a_bytes(OpClass::dispatch, 3) == 524288.0);
  CHECK(a2a_bytes(OpClass::dispatch, 1) == 4194304.0);
  CHECK(a2a_bytes(OpClass::combine, 3) == 524288.0);
  // Expert GEMMs of block 3 on rank 0: its expert's received pairs at stage s2's widths.
  const std::vector<int64_t> rows = models::expert_tokens(plan, pl, 3, 0);
  CHECK(compute(OpClass::expert, 3) == Approx(stages.costs(1).experts(rows).seconds).epsilon(1e-15));
  CHECK(stages.costs(1).model().architecture().expert_ffn == 256);
}

namespace {
std::string scenario(const std::string& model, const std::string& mode) {
  return R"(version: 1
name: stages-equal
model:
)" + model + R"(cluster: a30-pcie-8
parallelism: {ep: 8}
workload: {mode: )" + mode + R"(, tokens_per_rank: 512, context_tokens: 256, seed: 3}
variants:
  - {name: top2, schedule: topk, k: 2}
  - {name: scmoe, schedule: scmoe, position: 2, expert_slot: auto}
  - {name: pipe, schedule: pipelined, k: 2, chunks: 2}
baseline: top2
)";
}
std::string json_of(const std::string& text) {
  const testing::ChildText out = testing::run_in_child_text([&] {
    Scenario sc = load_scenario_text(text, "stages-equal.yaml");
    RunResult rr = run_scenario(sc, {});
    // Not `= "x"`: GCC 12 at -O3 reports a false -Wrestrict on assigning a literal here.
    rr.context.git_sha = std::string(1, 'x');
    rr.context.scenario_sha256 = std::string(1, 'x');  // the hash of the input text, which differs by construction
    return reports::json_report(rr);
  });
  return out.text;
}
}  // namespace

TEST_CASE("a flat model and the same model as one stage give byte-identical JSON", "[stages]") {
  const std::string shape = R"(  name: m
  hidden: 256
  expert_ffn: 512
  dense_ffn: 512
  routed_experts: 8
  top_k: 2
  moe_every: 2
  vocab_size: 1000
  attention: {kind: mha, heads: 4, head_dim: 64}
)";
  for (const std::string mode : {"inference_prefill", "training"}) {
    INFO(mode);
    const std::string flat = json_of(scenario(shape + "  layers: 4\n", mode));
    const std::string staged = json_of(scenario(shape + "  stages: [{layers: 4}]\n", mode));
    REQUIRE(flat.find("\"step_time_s\"") != std::string::npos);
    CHECK(flat == staged);
  }
}

// ScMoE pairs a dense block with the MoE block after it, whose gate then runs on the dense block's input. Across
// a stage boundary the two blocks see different tokens and widths, so the MoE block that starts a stage is a
// lone block: its patch merge, then its own attention, then (position 2) its gate.
TEST_CASE("scmoe does not pair blocks across a stage boundary", "[stages]") {
  const models::Architecture a = decode_model(R"(
name: boundary
hidden: 1024
expert_ffn: 512
dense_ffn: 1024
routed_experts: 2
top_k: 1
attention: {kind: mha, heads: 8, head_dim: 128}
stages:
  - {layers: 1, moe_every: 0}
  - {layers: 1, moe_every: 1, hidden: 512, token_scale: 0.25, patch_merge: true}
)");
  REQUIRE(a.moe_layer == std::vector<bool>{false, true});
  const models::Profile gpu = testing::toy_gpu();
  const models::CostModel cost(gpu, a);
  const models::StepCosts costs(cost, false, 1024);
  const models::StageCosts stages(gpu, a, false, 1024, 1024);
  const models::Placement pl(2, 2);
  const models::RoutingPlan plan = models::generate_routing(models::RoutingSpec{}, a, pl, 1024, 1);
  const models::StepInput in{a,   pl, plan, costs, models::Mode::inference_prefill, 2, 1024, {0, 1}, 0,
                             nullptr, 1, false, &stages};
  models::VariantSpec spec;
  spec.name = "s";
  spec.schedule = "scmoe";
  spec.top_k = 1;
  spec.position = 2;
  spec.expert_slot = 1;
  const OpGraph g = models::find_schedule("scmoe")->build(spec, in);
  // Issue order of rank 0's compute-stream ops.
  auto index_of = [&](OpClass cls, int layer) {
    int i = 0;
    for (const Op& op : g.ops()) {
      if (op.rank != 0 || op.stream != Stream::compute) continue;
      if (op.cls == cls && op.layer == layer) return i;
      ++i;
    }
    return -1;
  };
  REQUIRE(index_of(OpClass::patch_merge, 1) >= 0);
  CHECK(index_of(OpClass::dense_mlp, 0) < index_of(OpClass::patch_merge, 1));
  CHECK(index_of(OpClass::patch_merge, 1) < index_of(OpClass::attention, 1));
  CHECK(index_of(OpClass::attention, 1) < index_of(OpClass::permute, 1));
}
