// The rest of the step (issue 13 point 4): embedding, norms, residual adds, LM head, loss, Adam and the
// data-parallel gradient all-reduce, each worked by hand.
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "models/step_ops.hpp"
#include "sim/result_json.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;

// Toy GPU: 1 TB/s, 100 TFLOP/s bf16, 5 us per launch, efficiencies 1. Model: hidden 1024 bf16, MHA 8 x 128,
// 4 routed experts of FFN 512 (SwiGLU), vocab 32,000. 1,000 tokens.
TEST_CASE("step op costs match the hand-worked rooflines", "[step_ops]") {
  models::Architecture a = testing::toy_moe("toy", 4, 2);
  a.vocab_size = 32000;
  const models::CostModel cm(testing::toy_gpu(), a);
  const models::StepOpCosts c(cm);
  // Embedding: read and write 1000 x 1024 bf16 = 2 x 2,048,000 B = 4.096 us at 1 TB/s, + 5 us launch.
  CHECK(c.embedding(1000).seconds == Approx(9.096e-6).epsilon(1e-12));
  // Its backward: 3 x 2,048,000 B = 6.144 us + 5 us.
  CHECK(c.embedding_backward(1000).seconds == Approx(11.144e-6).epsilon(1e-12));
  // RMSNorm: (2 x 1,024,000 + 1024) x 2 B = 4,098,048 B = 4.098048 us (4 FLOP x 1.024e6 = 0.04 us), + 5 us.
  CHECK(c.norm(1000).seconds == Approx(9.098048e-6).epsilon(1e-12));
  // Residual add: 3 x 1,024,000 x 2 B = 6.144 us + 5 us.
  CHECK(c.residual(1000).seconds == Approx(11.144e-6).epsilon(1e-12));
  // LM head: 2 x 1000 x 32000 x 1024 = 6.5536e10 FLOP = 655.36 us; bytes 2.048e6 + 65.536e6 + 64e6 =
  // 131.584 us: compute-bound, + 5 us.
  CHECK(c.lm_head(1000).seconds == Approx(660.36e-6).epsilon(1e-12));
  // Loss: 3.2e7 logits x 6 B = 192 us (5 FLOP each: 1.6 us), + 5 us.
  CHECK(c.loss(1000).seconds == Approx(197e-6).epsilon(1e-12));
  // Adam: 28 B per parameter: 1e9 parameters = 28 GB = 28 ms (12 GFLOP: 0.12 ms), + 5 us.
  CHECK(models::kAdamReadBytesPerParam + models::kAdamWriteBytesPerParam == 28.0);
  CHECK(c.adam(1e9).seconds == Approx(0.028005).epsilon(1e-12));
  // No vocabulary: no embedding, LM head or loss.
  models::Architecture b = a;
  b.vocab_size = 0;
  const models::CostModel cm0(testing::toy_gpu(), b);
  const models::StepOpCosts c0(cm0);
  CHECK(c0.embedding(1000).seconds == 0.0);
  CHECK(c0.lm_head(1000).seconds == 0.0);
  CHECK(c0.loss(1000).seconds == 0.0);
}

TEST_CASE("parameter counts and LM head rows are worked by hand", "[step_ops]") {
  models::Architecture a = testing::toy_moe("toy", 4, 2);
  a.vocab_size = 32000;
  const models::CostModel cm(testing::toy_gpu(), a);
  const models::StepOpCosts c(cm);
  // Attention: fused qkv 1024 x (8 + 2 x 8) x 128 = 3,145,728, o 1024 x 1024 = 1,048,576; two norms 2 x 1024;
  // router 1024 x 4.
  CHECK(cm.attention_params() == 4194304.0);
  CHECK(c.block_params(0) == 4194304.0 + 2048.0 + 4096.0);
  // Two SwiGLU experts of 512: 2 x 3 x 1024 x 512; split over an ETP group of 2: half.
  CHECK(c.expert_params({0, 1}, 1) == 3145728.0);
  CHECK(c.expert_params({0, 1}, 2) == 1572864.0);
  // Embedding + LM head 2 x 32000 x 1024, final norm 1024.
  CHECK(c.outer_params() == 65537024.0);
  // Prefill: the last token of each sequence; training and decode: every token.
  CHECK(models::lm_head_rows(false, false, 4096, 1024) == 4);
  CHECK(models::lm_head_rows(false, false, 4097, 1024) == 5);
  CHECK(models::lm_head_rows(false, false, 100, 1024) == 1);
  CHECK(models::lm_head_rows(false, true, 64, 4096) == 64);
  CHECK(models::lm_head_rows(true, false, 4096, 1024) == 4096);
}

namespace {
std::string toy() { return testing::source_dir() + "/tests/data/toy-2rank.yaml"; }
// One simulation per process (DESIGN rule 5): simulates in a forked child and returns what `pick` reads.
double simulated(const Scenario& sc, Fidelity f, const std::function<double(const VariantResult&)>& pick) {
  return testing::run_in_child([&] { return pick(simulate_variant(sc, sc.variants.at(0), f, false)); });
}
}  // namespace

// tests/data/toy-2rank.yaml (every kernel = its launches x 1 us; 1 GB/s links, no latency; see test_step.cpp):
// the whole inference step adds to the blocks' 10.768 us two norms and two residual adds (1 us each) and the
// final norm (1 us; the toy model has no vocab_size, so no embedding or LM head): 15.768 us. The block scope
// leaves the final norm out: 14.768 us.
TEST_CASE("a 2-rank inference step has its norms and residual adds", "[step_ops]") {
  Scenario sc = load_scenario(toy());
  VariantResult v = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(v.step_time_s == Approx(15.768e-6).epsilon(1e-9));
  CHECK(v.extra.at("block_time_s") == Approx(14.768e-6).epsilon(1e-9));
  CHECK(v.time_by_class_s.at("norm") == Approx(3e-6).epsilon(1e-9));
  CHECK(v.time_by_class_s.at("residual") == Approx(2e-6).epsilon(1e-9));
  CHECK(v.time_by_class_s.count("optimizer") == 0);
  CHECK(v.time_by_class_s.count("dp_all_reduce") == 0);
}

// Training, the same toy (ep 2, dp 1):
//   forward 15.768 us as above; final norm backward 2 us (x 2);
//   backward: MoE residual 1 (an add, x 1), unpermute 2, combine 0.384, experts 6, dispatch 0.384,
//   gate + permute 6, norm 2, attention residual 1, attention 6, norm 2 = 26.768 us; blocks end at 44.536 us.
//   Dense gradients, all-reduced over the 2 EP ranks (each ran attention on its own tokens): final norm 64 +
//   attention (64 x 6 x 32 + 64 x 64 = 16,384) + norms 128 + router 128 = 16,704 parameters x 2 B = 33,408 B,
//   one bucket (25 MiB default) after the last backward op. Ring of 2: each half sends 1/2 x 33,408 B one way at
//   1 GB/s = 16.704 us; two halves = 33.408 us (= 2 (N-1)/N S / B). Then Adam: 1 launch = 1 us.
//   step = 44.536 + 33.408 + 1 = 78.944 us; blocks = 14.768 + 26.768 = 41.536 us.
TEST_CASE("a 2-rank training step adds the gradient all-reduce and the optimizer", "[step_ops]") {
  Scenario sc = load_scenario(toy());
  sc.mode = models::Mode::training;
  VariantResult v = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(v.step_time_s == Approx(78.944e-6).epsilon(1e-9));
  CHECK(v.extra.at("block_time_s") == Approx(41.536e-6).epsilon(1e-9));
  CHECK(v.time_by_class_s.at("dp_all_reduce") == Approx(33.408e-6).epsilon(1e-9));
  CHECK(v.time_by_class_s.at("optimizer") == Approx(1e-6).epsilon(1e-9));
}

// Two data-parallel replicas of a 1-rank EP group on the toy's two GPUs (1 GB/s each way), vocab 100:
// dense gradients (LM head 100 x 64 + final norm 64, block 16,640, embedding 6,400 = 29,504 parameters,
// 59,008 B) and the routed experts' (both experts on the one EP rank: 2 x 3 x 64 x 32 = 12,288 parameters,
// 24,576 B) each in one bucket, all-reduced over the DP group {0, 1}: S / B for N = 2, one after the other on
// the dp stream: (59,008 + 24,576) B / 1 GB/s = 83.584 us per rank.
TEST_CASE("DP all-reduce over a 2-GPU link takes 2 (N-1)/N S / B", "[step_ops][dp]") {
  std::string text = R"(
version: 1
name: toy-dp
model: {name: toy, layers: 1, hidden: 64, expert_ffn: 32, routed_experts: 2, top_k: 1, vocab_size: 100,
        attention: {kind: mha, heads: 2, head_dim: 32}}
cluster:
  family: explicit
  nodes: [{name: a, kind: gpu}, {name: b, kind: gpu}, {name: s, kind: switch}]
  links:
    - {a: a, b: s, bandwidth: "1GB/s", kind: nvlink}
    - {a: b, b: s, bandwidth: "1GB/s", kind: nvlink}
gpu: {profile: )" + testing::source_dir() + R"(/tests/data/toy-profile.yaml}
parallelism: {ep: 1, dp: 2, dp_bucket: "1GB"}
workload: {mode: training, tokens_per_rank: 4, seed: 1}
variants:
  - {name: topk, schedule: topk}
)";
  Scenario sc = load_scenario_text(text, "toy-dp.yaml");
  REQUIRE(sc.dp == 2);
  REQUIRE(sc.rank_gpu == std::vector<int>{0, 1});
  auto cls = [](const char* c) {
    return [c](const VariantResult& v) { return v.time_by_class_s.count(c) ? v.time_by_class_s.at(c) : 0.0; };
  };
  CHECK(simulated(sc, Fidelity::exact, cls("dp_all_reduce")) == Approx(83.584e-6).epsilon(1e-9));
  // Embedding forward and backward, LM head forward (1) and backward (x 2), loss: 1 launch each, per rank.
  CHECK(simulated(sc, Fidelity::exact, cls("embedding")) == Approx(2e-6).epsilon(1e-9));
  CHECK(simulated(sc, Fidelity::exact, cls("lm_head")) == Approx(3e-6).epsilon(1e-9));
  CHECK(simulated(sc, Fidelity::exact, cls("loss")) == Approx(1e-6).epsilon(1e-9));
  // The fast level (one parallel task per collective) gives the same all-reduce time.
  CHECK(simulated(sc, Fidelity::fast, cls("dp_all_reduce")) == Approx(83.584e-6).epsilon(1e-6));
  // With a collective launch of L = 5 us each all-reduce call (one per bucket: dense, then experts) pays L
  // once, its all-gather half none: 83.584 + 2 x 5 = 93.584 us per rank, in both fidelities.
  sc.profile.collective_launch.value = 5e-6;
  CHECK(simulated(sc, Fidelity::exact, cls("dp_all_reduce")) == Approx(93.584e-6).epsilon(1e-9));
  CHECK(simulated(sc, Fidelity::fast, cls("dp_all_reduce")) == Approx(93.584e-6).epsilon(1e-6));
}

TEST_CASE("baseline.scope picks the time a speed-up compares", "[step_ops]") {
  const std::string head = R"(
version: 1
name: scope
model: olmoe-1b-7b
cluster: h200-hgx-8
parallelism: {ep: 8}
workload: {mode: inference_prefill, tokens_per_rank: 512, seed: 3}
variants:
  - {name: a, schedule: topk}
  - {name: b, schedule: pipelined, chunks: 2}
simulation: {layers: 2}
)";
  for (const char* scope : {"block", "step", "moe_layer"}) {
    Scenario sc = load_scenario_text(head + "baseline: {variant: a, scope: " + scope + "}\n", "scope.yaml");
    RunResult rr = run_scenario(sc, {});
    REQUIRE(rr.speedup_scope == scope);
    const auto& a = rr.variants.at(0);
    const auto& b = rr.variants.at(1);
    const std::string key = std::string(scope) == "step" ? "" : std::string(scope) + "_time_s";
    const double ta = key.empty() ? a.step_time_s : a.extra.at(key);
    const double tb = key.empty() ? b.step_time_s : b.extra.at(key);
    INFO(scope);
    CHECK(b.speedup_vs_baseline == Approx(ta / tb).epsilon(1e-12));
  }
  // A plain name keeps the block scope.
  Scenario sc = load_scenario_text(head + "baseline: a\n", "scope.yaml");
  CHECK(sc.speedup_scope == "block");
}

// Representative DP replicas (simulation.dp_replicas, issue 14 point 3). Four one-GPU servers on one switch
// (1 GB/s NICs each way, no latency), four replicas of a 1-rank EP group of the toy above: dense gradients
// 59,008 B and expert gradients 24,576 B, each one bucket, all-reduced over N = 4 members (dense: every rank;
// experts: the DP group, also every rank). Each member sends (N - 1) / N x S to the next in each half and
// receives as much from the previous, one flow each way per NIC: 2 x 3/4 x (59,008 + 24,576) B / 1 GB/s =
// 125.376 us per rank. Auto simulates 2 replicas (training: the rings cross a replica boundary) whose rings
// carry the bytes of 4-member rings: the same 125.376 us; `all` simulates the 4.
namespace {
// The whole result of one simulation, run in a forked child.
VariantResult run_variant(const Scenario& sc, Fidelity f) {
  const testing::ChildText out =
      testing::run_in_child_text([&] { return variant_to_json(simulate_variant(sc, sc.variants.at(0), f, false)).dump(); });
  REQUIRE(out.ok());
  return variant_from_json(nlohmann::json::parse(out.text));
}
}  // namespace

TEST_CASE("representative DP replicas give the all-reduce of every replica", "[step_ops][dp]") {
  const std::string head = R"(
version: 1
name: toy-dp4
model: {name: toy, layers: 1, hidden: 64, expert_ffn: 32, routed_experts: 2, top_k: 1, vocab_size: 100,
        attention: {kind: mha, heads: 2, head_dim: 32}}
cluster:
  family: multi_node
  gpu: h100-sxm
  nodes: 4
  node: {family: nvswitch_node, gpus: 1, nvlink_bandwidth: "1GB/s"}
  nic_bandwidth: "1GB/s"
  fabric: single_switch
gpu: {profile: )" + testing::source_dir() + R"(/tests/data/toy-profile.yaml}
parallelism: {ep: 1, dp: 4, dp_bucket: "1GB"}
workload: {mode: training, tokens_per_rank: 4, seed: 1}
variants:
  - {name: topk, schedule: topk}
)";
  const Scenario rep = load_scenario_text(head, "toy-dp4.yaml");
  const Scenario all = load_scenario_text(head + "simulation: {dp_replicas: all}\n", "toy-dp4-all.yaml");
  REQUIRE(rep.dp_simulated == 2);
  REQUIRE(rep.simulated_rank_gpu() == std::vector<int>{0, 1});
  REQUIRE(all.dp_simulated == 4);
  auto reduce = [](const VariantResult& v) { return v.time_by_class_s.at("dp_all_reduce"); };
  auto step = [](const VariantResult& v) { return v.step_time_s; };
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    INFO(fidelity_name(f));
    const double eps = f == Fidelity::exact ? 1e-9 : 1e-6;
    CHECK(simulated(rep, f, reduce) == Approx(125.376e-6).epsilon(eps));
    CHECK(simulated(all, f, reduce) == Approx(125.376e-6).epsilon(eps));
    CHECK(simulated(rep, f, step) == Approx(simulated(all, f, step)).epsilon(1e-12));
  }
  // Inference has no rings: one replica stands for all.
  std::string prefill = head;
  prefill.replace(prefill.find("training"), 8, "inference_prefill");
  CHECK(load_scenario_text(prefill, "toy-dp4-prefill.yaml").dp_simulated == 1);
}

// When the replicas may interact, auto simulates every one and says why; representative is refused.
TEST_CASE("auto simulates every DP replica where replicas could differ or contend", "[step_ops][dp]") {
  auto scenario = [](const std::string& cluster, const std::string& par, const std::string& sim) {
    return "version: 1\nname: dp\nmodel: olmoe-1b-7b\ncluster: " + cluster + "\nparallelism: " + par +
           "\nworkload: {mode: training, tokens_per_rank: 256}\nvariants:\n  - {name: base, schedule: topk}\n" + sim;
  };
  const std::string rail = "h100-4x8-400g-rail";
  const std::string oversub =
      "{family: multi_node, gpu: h100-sxm, nodes: 4, node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: "
      "\"370GB/s\"}, nic_bandwidth: \"48GB/s\", fabric: {type: fat_tree, nics_per_leaf: 8, oversubscription: 2}}";
  CHECK(load_scenario_text(scenario(rail, "{ep: 8, dp: 4}", ""), "a.yaml").dp_simulated == 2);
  {
    const Scenario sc = load_scenario_text(scenario(oversub, "{ep: 8, dp: 4}", ""), "b.yaml");
    CHECK(sc.dp_simulated == 4);
    CHECK_THAT(sc.dp_representative_block, Catch::Contains("oversubscribed"));
  }
  {
    const Scenario sc = load_scenario_text(scenario(rail, "{ep: 4, dp: 8}", ""), "c.yaml");
    CHECK(sc.dp_simulated == 8);
    CHECK_THAT(sc.dp_representative_block, Catch::Contains("whole servers"));
  }
  {
    const Scenario sc = load_scenario_text(
        scenario(rail, "{ep: 8, dp: 4, gpus: [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, "
                       "20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]}", ""),
        "d.yaml");
    CHECK(sc.dp_simulated == 4);
    CHECK_THAT(sc.dp_representative_block, Catch::Contains("by hand"));
  }
  {
    const Scenario sc = load_scenario_text(scenario("h200-hgx-8", "{ep: 2, dp: 4}", ""), "e.yaml");
    CHECK(sc.dp_simulated == 4);
    CHECK_THAT(sc.dp_representative_block, Catch::Contains("nvswitch_node"));
  }
  // Two replicas in training are already the representative pair: nothing is left out.
  CHECK(load_scenario_text(scenario(rail, "{ep: 16, dp: 2}", ""), "f.yaml").dp_simulated == 2);
  CHECK(load_scenario_text(scenario(rail, "{ep: 8, dp: 4}", "simulation: {dp_replicas: all}\n"), "g.yaml").dp_simulated ==
        4);
  CHECK_THROWS_WITH(load_scenario_text(scenario(oversub, "{ep: 8, dp: 4}", "simulation: {dp_replicas: representative}\n"),
                                       "h.yaml"),
                    Catch::Contains("cannot simulate representative DP replicas"));
}

// Issue 14 point 5: representative DP replicas against simulating every replica, on a case small enough to
// run both in both fidelities (under a second; the slow test below does the 2,048-GPU bench): OLMoE, 4 layers, training, Zipf routing, 4 replicas of EP 16 (two 8-GPU servers
// each) on a rail-optimized 400G fabric. Step times, every class time and the simulated ranks' rows agree to
// rounding (measured: see ARCHITECTURE.md, 'Representative DP replicas').
TEST_CASE("representative DP replicas match simulating every replica", "[step_ops][dp]") {
  const std::string head = R"(
version: 1
name: dp-representative
model: olmoe-1b-7b
cluster:
  family: multi_node
  gpu: h100-sxm
  nodes: 8
  node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: "370GB/s", nvlink_latency: "0.5us"}
  nic_bandwidth: "48GB/s"
  nic_link_bandwidth: "64GB/s"
  nic_latency: "1.5us"
  fabric: rail_optimized
parallelism: {ep: 16, dp: 4, dp_bucket: "64MiB"}
workload: {mode: training, tokens_per_rank: 1024, seed: 3, routing: {distribution: zipf, s: 1.0}}
variants:
  - {name: topk, schedule: topk}
)";
  const Scenario rep = load_scenario_text(head + "simulation: {layers: 4}\n", "rep.yaml");
  const Scenario all = load_scenario_text(head + "simulation: {layers: 4, dp_replicas: all}\n", "all.yaml");
  REQUIRE(rep.dp_simulated == 2);
  REQUIRE(all.dp_simulated == 4);
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    INFO(fidelity_name(f));
    const VariantResult a = run_variant(rep, f), b = run_variant(all, f);
    CHECK(a.step_time_s == Approx(b.step_time_s).epsilon(1e-12));
    REQUIRE(a.time_by_class_s.size() == b.time_by_class_s.size());
    for (const auto& [cls, t] : b.time_by_class_s) {
      INFO(cls);
      CHECK(a.time_by_class_s.at(cls) == Approx(t).epsilon(1e-9));
    }
    // Rows: the representative run's ranks (2 x 16) are the first ones of the full run, with the same figures.
    std::map<std::tuple<int, int, int>, const LayerRankRow*> full;
    for (const LayerRankRow& r : b.rows) full[{r.step, r.layer, r.rank}] = &r;
    CHECK(a.rows.size() * 2 == b.rows.size());
    for (const LayerRankRow& r : a.rows) {
      REQUIRE(r.rank < 32);
      const LayerRankRow& o = *full.at({r.step, r.layer, r.rank});
      CHECK(r.tokens_received == o.tokens_received);
      CHECK(r.end_s == Approx(o.end_s).epsilon(1e-12));
      CHECK(r.comm_s == Approx(o.comm_s).epsilon(1e-9));
    }
  }
}

// The 2,048-GPU bench (scenarios/bench/dsv3-train-2048.yaml: DeepSeek-V3 training step, 32 replicas of EP 64,
// fast fidelity) with 2 replicas simulated and with all 32: the same step time; class times (means over the
// simulated ranks) to rounding. About 35 s, 1.1 GB (the run of every replica).
TEST_CASE("representative DP replicas match every replica on the 2048-GPU bench", "[step_ops][dp][slow]") {
  const std::string file = testing::source_dir() + "/scenarios/bench/dsv3-train-2048.yaml";
  const Scenario rep = load_scenario(file);
  Scenario all = rep;
  all.dp_simulated = all.dp;
  REQUIRE(rep.dp_simulated == 2);
  REQUIRE(all.dp_simulated == 32);
  const Fidelity f = rep.resolved_fidelity();
  const VariantResult a = run_variant(rep, f), b = run_variant(all, f);
  CHECK(a.step_time_s == Approx(b.step_time_s).epsilon(1e-12));
  for (const auto& [cls, t] : b.time_by_class_s) {
    INFO(cls);
    CHECK(a.time_by_class_s.at(cls) == Approx(t).epsilon(1e-9));
  }
}
