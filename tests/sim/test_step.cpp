// Whole-step tests of the topk schedule: a hand-derived 2-rank step, skew monotonicity, determinism.
#include <catch2/catch.hpp>
#include <filesystem>

#include "reports/reports.hpp"
#include "sim/metrics.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"

using namespace moesim;

namespace {
std::string toy() { return testing::source_dir() + "/tests/data/toy-2rank.yaml"; }
}  // namespace

// tests/data/toy-2rank.yaml: every kernel costs exactly its launches x 1 us (toy profile); 2 ranks, top-1 over
// 2 experts (expert 0 on rank 0, expert 1 on rank 1), hidden 64 bf16 = 128 bytes per token; the trace sends
// rank 0's tokens to experts [1, 1, 1, 0] and rank 1's to [0, 1, 1, 1]. Links: 1 GB/s, no latency.
//   attention = fused qkv + o projections + core = 3 launches = 3 us
//   gate      = router GEMM + top-k          = 2 us;  permute = 1 us
//   dispatch  = max(3 x 128 B, 1 x 128 B) / 1e9 B/s  = 384 ns (the two directions do not share links)
//   experts   = each rank has one active expert: gate_up + SwiGLU + down = 3 us
//   combine   = the transpose: 384 ns;  unpermute = 1 us
// Both ranks are symmetric, so the blocks take 3 + 2 + 1 + 3 + 1 us + 2 x 0.384 us = 10.768 us; the whole step
// adds two norms, two residual adds and the final norm (1 us each; test_step_ops.cpp): 15.768 us.
TEST_CASE("a 2-rank, 1-layer topk inference step takes the hand-derived time", "[step]") {
  Scenario sc = load_scenario(toy());
  VariantResult v = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(v.step_time_s == Approx(15.768e-6).epsilon(1e-9));
  CHECK(v.exposed_comm_s == Approx(0.768e-6).epsilon(1e-9));
  CHECK(v.compute_s == Approx(15e-6).epsilon(1e-9));
  // Rank 0's expert 0 receives 1 + 1 = 2 tokens, rank 1's expert 1 receives 3 + 3 = 6: max/mean = 6 / 4.
  CHECK(v.load_imbalance == Approx(1.5));
}

// Training: forward as above, then backward with compute x 2 and the all-to-alls reversed:
//   unpermute 2 + combine-grad 0.384 + experts 6 + dispatch-grad 0.384 + gate/permute 6 + attention 6
//   = 20.768 us; blocks = 10.768 + 20.768 = 31.536 us. With norms, residual adds, the gradient all-reduce and
//   Adam (worked in test_step_ops.cpp) the step is 78.944 us and the block scope 41.536 us.
TEST_CASE("a 2-rank, 1-layer topk training step takes the hand-derived time", "[step]") {
  Scenario sc = load_scenario(toy());
  sc.mode = models::Mode::training;
  VariantResult v = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(v.step_time_s == Approx(78.944e-6).epsilon(1e-9));
}

// The same toy with a collective launch of L = 2 us (issue 13 point 7; tests/data/toy-profile.yaml sets 0).
// Every collective call pays L once, from the moment its rank reaches it, before its bytes move:
//   inference: dispatch and combine are one call each: 15.768 + 2 x 2 = 19.768 us, all of it on the critical
//   path (both ranks are symmetric), so the exposed communication grows by the same 4 us to 4.768 us.
//   training: 4 all-to-alls (dispatch, combine and their gradients): blocks 41.536 + 4 x 2 = 49.536 us, ending
//   at 44.536 + 8 = 52.536 us; the gradient all-reduce is one call (a reduce-scatter then an all-gather in the
//   graph, but one NCCL launch): 33.408 + 2 = 35.408 us; Adam 1 us: step 52.536 + 35.408 + 1 = 88.944 us.
TEST_CASE("the toy inference step pays one collective launch per call", "[step][collective_launch]") {
  Scenario sc = load_scenario(toy());
  REQUIRE(sc.profile.collective_launch.value == 0.0);
  sc.profile.collective_launch.value = 2e-6;
  VariantResult v = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(v.step_time_s == Approx(19.768e-6).epsilon(1e-9));
  CHECK(v.exposed_comm_s == Approx(4.768e-6).epsilon(1e-9));
  CHECK(v.compute_s == Approx(15e-6).epsilon(1e-9));
}

TEST_CASE("the toy training step pays one collective launch per call, one per all-reduce", "[step][collective_launch]") {
  Scenario sc = load_scenario(toy());
  sc.profile.collective_launch.value = 2e-6;
  sc.mode = models::Mode::training;
  VariantResult t = simulate_variant(sc, sc.variants.at(0), Fidelity::exact, false);
  CHECK(t.step_time_s == Approx(88.944e-6).epsilon(1e-9));
  CHECK(t.extra.at("block_time_s") == Approx(49.536e-6).epsilon(1e-9));
  CHECK(t.time_by_class_s.at("dp_all_reduce") == Approx(35.408e-6).epsilon(1e-9));
}

TEST_CASE("more skew never makes the step faster", "[step]") {
  // OLMoE (64 experts, top-8) on 8 x H200, 2 layers; Zipf exponents rising from 0 (uniform) to 1.6.
  const std::string text = R"(
version: 1
name: skew-sweep
model: olmoe-1b-7b
cluster: h200-hgx-8
parallelism: {ep: 8}
workload: {mode: inference_prefill, tokens_per_rank: 2048, seed: 7}
variants:
  - {name: s0.0, schedule: topk, routing: {distribution: zipf, s: 0.0}}
  - {name: s0.4, schedule: topk, routing: {distribution: zipf, s: 0.4}}
  - {name: s0.8, schedule: topk, routing: {distribution: zipf, s: 0.8}}
  - {name: s1.2, schedule: topk, routing: {distribution: zipf, s: 1.2}}
  - {name: s1.6, schedule: topk, routing: {distribution: zipf, s: 1.6}}
simulation: {layers: 2}
)";
  Scenario sc = load_scenario_text(text, "skew.yaml");
  RunResult rr = run_scenario(sc, {});
  REQUIRE(rr.variants.size() == 5);
  for (std::size_t i = 1; i < rr.variants.size(); ++i) {
    INFO(rr.variants[i - 1].name << " " << rr.variants[i - 1].step_time_s << " s -> " << rr.variants[i].name << " "
                                 << rr.variants[i].step_time_s << " s");
    CHECK(rr.variants[i].step_time_s >= rr.variants[i - 1].step_time_s);
    CHECK(rr.variants[i].load_imbalance >= rr.variants[i - 1].load_imbalance);
  }
}

TEST_CASE("same scenario and seed give byte-identical JSON, another seed differs", "[step][determinism]") {
  Scenario sc = load_scenario(testing::source_dir() + "/scenarios/demo-h200.yaml");
  const std::string a = reports::json_report(run_scenario(sc, {}));
  const std::string b = reports::json_report(run_scenario(sc, {}));
  CHECK(a == b);
  sc.seed += 1;
  const std::string c = reports::json_report(run_scenario(sc, {}));
  CHECK(a != c);
}

TEST_CASE("a trace's events give a ring's members their own transfers (a sparse collective has no matrix)",
          "[metrics]") {
  // Regression: `moesim run --trace` on a training scenario (whose gradient all-reduce is a sparse ring) read
  // the empty byte matrix and crashed. Ring 0 -> 1 -> 2 -> 0 of 100, 200 and 300 bytes over ranks 0-2; the
  // summary needs only the ops' times, so a hand-made trace (each op 0-1 s) stands in for a simulation.
  OpGraph g(3);
  const std::vector<Transfer> ring = {{0, 1, 100.0}, {1, 2, 200.0}, {2, 0, 300.0}};
  const auto ops = g.add_collective(OpKind::reduce_scatter, {0, 1, 2}, Stream::dp, OpClass::dp_all_reduce,
                                    Phase::backward, -1, ring, {});
  Trace t;
  t.start_s.assign(g.ops().size(), 0.0);
  t.end_s.assign(g.ops().size(), 1.0);
  t.makespan_s = 1.0;
  VariantResult v;
  summarize(g, t, 1, true, v);
  REQUIRE(v.events.size() == 3);
  for (std::size_t r = 0; r < 3; ++r) {
    INFO("rank " << r);
    CHECK(v.events[r].bytes_sent == ring[r].bytes);                 // rank r sends to r + 1
    CHECK(v.events[r].bytes_received == ring[(r + 2) % 3].bytes);  // and receives from r - 1
    CHECK(v.events[r].sends_to == std::vector<int>{static_cast<int>((r + 1) % 3)});
  }
  CHECK(ops.size() == 3);
}
