// The rest of the step (issue 13 point 4): embedding, norms, residual adds, LM head, loss, Adam and the
// data-parallel gradient all-reduce, each worked by hand.
#include <catch2/catch.hpp>
#include <functional>

#include "models/step_ops.hpp"
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
