// The capacity planner (issue 15 points 2 and 7, sim/plan.hpp): a case worked by hand (two GPU types, one
// configuration infeasible by memory, the cheapest feasible one picked, the one that cannot win pruned), the
// memory model's figures by hand, the lower bound below the simulated step time, and the CLI's CSV.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/plan.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = MOESIM_SOURCE_DIR;
const fs::path kToy = kSource / "tests" / "data" / "plan-toy.yaml";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("memory per rank of the toy model, worked by hand", "[plan]") {
  // tests/data/plan-toy.yaml as written: EP 2 on H100, prefill of 512 tokens per rank.
  //   experts per rank: 128 / 2 = 64, each 3 x 4096 x 4096 = 50,331,648 parameters (SwiGLU), in 16 layers:
  //     64 x 50,331,648 x 16 = 51,539,607,552
  //   per block: attention 4096 x (32 + 2 x 32) x 128 + 4096 x 4096 = 67,108,864, two norms 2 x 4096 = 8,192,
  //     router 4096 x 128 = 524,288: 67,641,344; x 16 = 1,082,261,504; no vocabulary (no embedding/LM head),
  //     but the final norm: 4096
  //   params 52,621,873,152; bf16 weights x 2 B = 105,243,746,304 B
  //   activations (one layer, inference) 34 x 4096 x 512 = 71,303,168 B
  //   KV cache (prefill: the batch's own tokens) 512 x 2 x 32 x 128 x 2 B x 16 layers = 134,217,728 B
  //   total 105,449,267,200 B = 105.4 GB > the H100's 80 GB.
  const Scenario sc = load_scenario(kToy.string());
  const RankMemory m = estimate_rank_memory(sc);
  CHECK(m.params == Approx(52621873152.0).epsilon(1e-12));
  CHECK(m.weights == Approx(105243746304.0).epsilon(1e-12));
  CHECK(m.activations == Approx(71303168.0).epsilon(1e-12));
  CHECK(m.kv_cache == Approx(134217728.0).epsilon(1e-12));
  CHECK(m.grads == 0);
  CHECK(m.optimizer == 0);
  CHECK(m.total() == Approx(105449267200.0).epsilon(1e-12));
  CHECK(sc.profile.memory_bytes == Approx(80e9));
}

TEST_CASE("training memory: 16 B per parameter with Adam, 34 h bytes of activations per token and layer", "[plan]") {
  std::string text = read_text(kToy);
  const auto at = text.find("mode: inference_prefill");
  REQUIRE(at != std::string::npos);
  text.replace(at, 23, "mode: training");
  const Scenario sc = load_scenario_text(text, "plan-toy-train.yaml");
  const RankMemory m = estimate_rank_memory(sc);
  // Same parameters as above; gradients 2 B and Adam 12 B each (ZeRO's 16 B with the 2 B weight):
  CHECK(m.grads == Approx(2 * 52621873152.0).epsilon(1e-12));
  CHECK(m.optimizer == Approx(12 * 52621873152.0).epsilon(1e-12));
  // 34 x 4096 x 512 tokens x 16 layers = 1,140,850,688 B; no KV cache in training.
  CHECK(m.activations == Approx(1140850688.0).epsilon(1e-12));
  CHECK(m.kv_cache == 0);
}

TEST_CASE("the planner picks the cheapest feasible configuration, worked by hand", "[plan]") {
  // Menu (tests/data/plan-toy.yaml): H100 at 2.00 USD/h in a 4-GPU box; H200 at 3.00 USD/h in a 2-GPU and a
  // 4-GPU box (example inputs); EP 2 or 4. Target: step time <= 10 s, which every configuration that fits meets
  // by orders of magnitude (a 512-token prefill step of 16 layers takes milliseconds). The cost of a deployment
  // meeting a step-time target is the box's GPUs x price, known before simulating:
  //   0 H100 box of 4, EP 2: 105.4 GB per GPU > 80 GB (test above): infeasible by memory
  //   1 H100 box of 4, EP 4: 4 x 2.00 = 8.00 USD/h
  //   2 H200 box of 2, EP 2: 2 x 3.00 = 6.00 USD/h (105.4 GB < 141 GB)  <- the winner: fewer GPUs of the pricier type
  //   3 H200 box of 2, EP 4: 4 ranks on 2 GPUs: invalid
  //   4 H200 box of 4, EP 2: 4 x 3.00 = 12.00 USD/h
  //   5 H200 box of 4, EP 4: 4 x 3.00 = 12.00 USD/h
  // Visited cheapest bound first: 6.00 and 8.00 are simulated; 12.00 exceeds the runner-up's 8.00, so 4 and 5
  // can be neither winner nor runner-up and are pruned without simulating.
  for (int jobs : {1, 2}) {
    INFO("jobs " << jobs);
    PlanOptions opt;
    opt.jobs = jobs;
    opt.quiet = true;
    const PlanOutcome o = run_plan(kToy.string(), opt);
    REQUIRE(o.candidates.size() == 6);
    const PlanCandidate& h100_2 = o.candidates[0];
    CHECK(h100_2.gpu == "h100-sxm");
    CHECK(h100_2.ep == 2);
    CHECK(h100_2.status == "infeasible");
    CHECK(h100_2.reason.rfind("needs 105.4 GB per GPU > 80.0 GB: weights 105.2 GB", 0) == 0);
    CHECK(h100_2.reason.find("KV cache 0.1 GB") != std::string::npos);
    CHECK(o.candidates[3].status == "invalid");
    REQUIRE(o.winner);
    REQUIRE(o.runner_up);
    const PlanCandidate& w = o.candidates[*o.winner];
    const PlanCandidate& r = o.candidates[*o.runner_up];
    CHECK(*o.winner == 2);
    CHECK(w.gpu == "h200-sxm");
    CHECK(w.ep == 2);
    CHECK(w.gpus == 2);
    CHECK(w.cost_per_h == Approx(6.0));
    CHECK(*o.runner_up == 1);
    CHECK(r.gpu == "h100-sxm");
    CHECK(r.ep == 4);
    CHECK(r.cost_per_h == Approx(8.0));
    CHECK(w.meets_target);
    CHECK(w.step_time_s < 10.0);
    for (std::size_t i : {4, 5}) {
      CHECK(o.candidates[i].status == "pruned");
      CHECK(o.candidates[i].bound_cost_per_h == Approx(12.0));
      CHECK(o.candidates[i].bound_cost_per_h > r.cost_per_h);  // it really could not be winner or runner-up
    }
    CHECK(o.simulated == 2);
    CHECK(o.pruned == 2);
    // The bound holds for what was simulated.
    for (const auto& c : o.candidates)
      if (c.status == "simulated") CHECK(c.bound_step_s <= c.step_time_s);
    // What binds is named.
    CHECK((w.binds.rfind("compute", 0) == 0 || w.binds.rfind("exposed communication", 0) == 0));
  }
}

TEST_CASE("a candidate whose bound misses a latency target is pruned; no winner when none meets it", "[plan]") {
  // The toy in decode with a 32,000-token vocabulary: every step runs the LM head on each of a rank's sequences
  // (global_tokens 1024: 512 at EP 2, 256 at EP 4): 2 x 512 x 32,000 x 4096 = 134.2 GFLOP at the highest peak of
  // either GPU (fp8, 1979 TFLOP/s) = 67.8 us (33.9 us at EP 4) is the bound. A 10 us per-token target is missed
  // by every candidate's bound, so none is simulated.
  std::string text = read_text(kToy);
  for (auto [from, to] : {std::pair<std::string, std::string>{"  dtype: bf16\n", "  dtype: bf16\n  vocab_size: 32000\n"},
                          {"mode: inference_prefill", "mode: decode\n  context_tokens: 128"},
                          {"target: {step_time: 10s}", "target: {token_latency: 10us}"}}) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  }
  const fs::path f = fs::temp_directory_path() / ("moesim-test-plan-decode-" + std::to_string(::getpid()) + ".yaml");
  {
    std::ofstream out(f, std::ios::binary);
    out << text;
  }
  PlanOptions opt;
  opt.quiet = true;
  const PlanOutcome o = run_plan(f.string(), opt);
  fs::remove(f);
  REQUIRE(o.candidates.size() == 6);
  CHECK(o.candidates[0].status == "infeasible");
  CHECK(o.candidates[3].status == "invalid");
  for (std::size_t i : {1, 2, 4, 5}) {
    INFO(i);
    CHECK(o.candidates[i].status == "pruned");
    const double rows = o.candidates[i].ep == 2 ? 512 : 256;
    CHECK(o.candidates[i].tokens_per_rank == static_cast<int64_t>(rows));
    CHECK(o.candidates[i].bound_step_s == Approx(2.0 * rows * 32000 * 4096 / 1979e12));
    CHECK(o.candidates[i].reason.rfind(o.candidates[i].ep == 2 ? "lower bound 6.78" : "lower bound 3.39", 0) == 0);
  }
  CHECK(o.simulated == 0);
  CHECK(!o.winner);
  CHECK(!o.runner_up);
  CHECK(plan_console_text(o).find("winner: none") != std::string::npos);
}

TEST_CASE("a tokens/s target replicates instances; the pruned candidate's simulated cost is not lower", "[plan]") {
  // Pricing by hand: an instance of 4 ranks x 512 tokens at a 2 ms step makes 2048 / 0.002 = 1,024,000 tokens/s;
  // a 3,000,000 tokens/s target needs ceil(2.93) = 3 instances: 3 x 4 x 2.00 = 24 USD/h.
  PlanSpec spec;
  spec.target = PlanTarget::tokens_per_s;
  spec.target_value = 3e6;
  PlanCandidate c;
  c.tokens_per_rank = 512;
  c.ranks = 4;
  c.gpus = 4;
  c.price_per_gpu_hour = 2.0;
  c.step_time_s = 0.002;
  price_candidate(spec, c);
  CHECK(c.tokens_per_s == Approx(1024000.0));
  CHECK(c.replicas == 3);
  CHECK(c.cost_per_h == Approx(24.0));
  // 8 USD/h for 1,024,000 x 3600 tokens: 8 / 3,686.4 M = 0.00217 USD per million tokens.
  CHECK(c.usd_per_mtok == Approx(8.0 / 3686.4));

  // A pruned candidate of the toy (H200 box of 4, EP 4), simulated anyway: it meets the target at 12 USD/h,
  // more than the winner's 6 and the runner-up's 8.
  std::string text = read_text(kToy);
  for (auto [from, to] : {std::pair<std::string, std::string>{"parallelism: {ep: 2}", "parallelism: {ep: 4}"},
                          {"gpus: 4, nvlink_bandwidth: 370GB/s, nvlink_latency: 0.5us}\nparallelism",
                           "gpus: 4, nvlink_bandwidth: 370GB/s, nvlink_latency: 0.5us}\ngpu: {profile: h200-sxm}\nparallelism"}}) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  }
  const Scenario sc = load_scenario_text(text, "plan-toy-h200-ep4.yaml");
  RunOptions ro;
  ro.jobs = 1;
  const RunResult rr = run_scenario(sc, ro);
  PlanSpec st;
  st.target = PlanTarget::step_time;
  st.target_value = 10;
  PlanCandidate p;
  p.tokens_per_rank = sc.tokens_per_rank;
  p.ranks = sc.ep;
  p.gpus = 4;
  p.price_per_gpu_hour = 3.0;
  p.step_time_s = rr.variants.at(0).step_time_s;
  price_candidate(st, p);
  CHECK(p.meets_target);
  CHECK(p.cost_per_h == Approx(12.0));
  CHECK(p.cost_per_h > 8.0);
  CHECK(step_time_lower_bound(sc) <= p.step_time_s);
}

TEST_CASE("the step-time lower bound is below the simulated step time", "[plan]") {
  // Scenarios with the GEMMs the bound counts (shared experts, dense layers, an LM head): prefill
  // (DeepSeek-V2-Lite), training (scmoe-a800-nvlink), decode (below).
  for (const char* f : {"scenarios/demo-h200.yaml", "scenarios/scmoe-a800-nvlink.yaml"}) {
    INFO(f);
    const Scenario sc = load_scenario((kSource / f).string());
    const double bound = step_time_lower_bound(sc);
    CHECK(bound > 0);
    RunOptions ro;
    ro.jobs = 2;
    const RunResult rr = run_scenario(sc, ro);
    for (const auto& v : rr.variants) {
      INFO(v.name);
      CHECK(bound <= v.step_time_s);
    }
  }
  // Decode: demo-h200 with 256 sequences per rank of a 4096-token context.
  std::string text = read_text(kSource / "scenarios" / "demo-h200.yaml");
  const std::string from = "mode: inference_prefill\n  tokens_per_rank: 4096";
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "mode: decode\n  tokens_per_rank: 256");
  const Scenario sc = load_scenario_text(text, "demo-h200-decode.yaml");
  REQUIRE(sc.mode == models::Mode::decode);
  const double bound = step_time_lower_bound(sc);
  CHECK(bound > 0);
  RunOptions ro;
  ro.jobs = 2;
  for (const auto& v : run_scenario(sc, ro).variants) {
    INFO(v.name);
    CHECK(bound <= v.step_time_s);
  }
}

TEST_CASE("moesim plan writes every candidate to the CSV and exits 0 with a winner", "[plan][cli]") {
  const fs::path dir = fs::temp_directory_path() / ("moesim-test-plan-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string csv = (dir / "plan.csv").string(), out = (dir / "out.txt").string();
  const int rc = std::system(fmt::format("{} plan {} --quiet --jobs 2 --csv {} > {} 2>&1", MOESIM_BIN, kToy.string(), csv, out).c_str());
  REQUIRE(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
  const std::string text = read_text(csv), console = read_text(out);
  INFO(console);
  CHECK(text.rfind("candidate,gpu,cluster,ep,variant,schedule,ranks,gpus,tokens_per_rank,price_usd_per_gpu_h,status,reason,", 0) == 0);
  CHECK(std::count(text.begin(), text.end(), '\n') == 7);  // header + 6 candidates
  CHECK(text.find(",infeasible,\"needs 105.4 GB per GPU > 80.0 GB") != std::string::npos);
  CHECK(text.find(",pruned,cost lower bound 12 USD/h > runner-up's 8 USD/h") != std::string::npos);
  CHECK(console.find("winner: candidate 2: 2 x h200-sxm on h200-2, EP 2 (2 ranks)") != std::string::npos);
  CHECK(console.find("runner-up: candidate 1: 4 x h100-sxm on h100-4, EP 4 (4 ranks)") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("the shipped plans answer: a winner, every simulated bound below its step, memory reasons", "[plan][cli]") {
  // scenarios/plan-*.yaml through the binary (their answer time is a benchmark: tools/bench.sh). For each: exit
  // 0, a winner and a runner-up printed, every candidate a status, and the bound <= the simulated step.
  const fs::path dir = fs::temp_directory_path() / ("moesim-test-plan-shipped-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const char* name : {"plan-dsv3-serving", "plan-qwen3-30b-train"}) {
    INFO(name);
    const std::string csv = (dir / (std::string(name) + ".csv")).string(), out = (dir / "out.txt").string();
    const int rc = std::system(fmt::format("{} plan {} --quiet --jobs 2 --csv {} > {} 2>&1", MOESIM_BIN,
                                           (kSource / "scenarios" / (std::string(name) + ".yaml")).string(), csv, out)
                                   .c_str());
    const std::string console = read_text(out);
    INFO(console);
    REQUIRE(WIFEXITED(rc));
    CHECK(WEXITSTATUS(rc) == 0);
    CHECK(console.find("winner: candidate") != std::string::npos);
    CHECK(console.find("runner-up: candidate") != std::string::npos);
    CHECK(console.find("infeasible") != std::string::npos);  // each menu has a configuration too big for its GPU
    std::istringstream in(read_text(csv));
    std::string line;
    std::getline(in, line);  // header
    int simulated = 0;
    while (std::getline(in, line)) {
      // Cells up to the reason have no commas except a quoted reason; simulated rows have an empty reason.
      if (line.find(",simulated,") == std::string::npos) continue;
      ++simulated;
      std::vector<std::string> cells;
      std::string cell;
      std::istringstream ls(line);
      while (std::getline(ls, cell, ',')) cells.push_back(cell);
      REQUIRE(cells.size() >= 22);
      const double bound = std::stod(cells[19]), step = std::stod(cells[21]);  // bound_step_time_s, step_time_s
      INFO(line);
      CHECK(bound <= step);
    }
    CHECK(simulated >= 2);
  }
  fs::remove_all(dir);
}

namespace {

// The toy model cut to 8 experts with top-4 routing (every token picks 4 distinct experts, a rank at EP 4 holds
// 2 of them), on the given cluster and EP degree, with the given mode and variants.
std::string alltoall_toy(const std::string& cluster, int ep, const std::string& mode, const std::string& variants) {
  std::string text = read_text(kToy);
  auto swap = [&](const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  swap("routed_experts: 128\n  top_k: 2", "routed_experts: 8\n  top_k: 4");
  swap("cluster: {family: nvswitch_node, name: h100-4, gpu: h100-sxm, gpus: 4, nvlink_bandwidth: 370GB/s, nvlink_latency: 0.5us}",
       "cluster: " + cluster);
  swap("parallelism: {ep: 2}", fmt::format("parallelism: {{ep: {}}}", ep));
  swap("mode: inference_prefill", "mode: " + mode);
  swap("variants:\n  - {name: topk, schedule: topk}", "variants:\n" + variants);
  text = text.substr(0, text.find("plan:"));
  return text;
}

}  // namespace

TEST_CASE("the all-to-all term of the bound, worked by hand, and below the simulated step", "[plan]") {
  // 8 experts, top-4, EP 4 on one 4-GPU NVSwitch box (one 370 GB/s full-duplex NVLink per GPU): each rank holds
  // 2 experts, so of a token's 4 distinct picks at least 2 are remote. Per rank and MoE layer the dispatch sends
  // >= 512 tokens x 2 pairs x 4096 x 2 B = 8,388,608 B out of the GPU's one link (the combine brings as much
  // back in); 16 MoE layers: 134,217,728 B / 370e9 B/s = 362.75 us. The compute term is 0 (no shared experts,
  // dense layers or vocabulary), so the all-to-all term is the bound.
  const std::string box = "{family: nvswitch_node, name: h100-4, gpu: h100-sxm, gpus: 4, nvlink_bandwidth: 370GB/s, nvlink_latency: 0.5us}";
  const std::string variants = "  - {name: topk, schedule: topk}\n  - {name: pipelined, schedule: pipelined, chunks: 2}\n";
  const double by_hand = 512.0 * 2 * 4096 * 2 * 16 / 370e9;
  for (const char* mode : {"inference_prefill", "training"}) {
    INFO(mode);
    const Scenario sc = load_scenario_text(alltoall_toy(box, 4, mode, variants), "alltoall-toy.yaml");
    const double passes = sc.mode == models::Mode::training ? 2.0 : 1.0;  // the backward all-to-alls
    RunOptions ro;
    ro.jobs = 2;
    const RunResult rr = run_scenario(sc, ro);
    REQUIRE(rr.variants.size() == 2);
    for (std::size_t i = 0; i < sc.variants.size(); ++i) {
      INFO(sc.variants[i].name);
      const StepBound b = step_bound(sc, sc.variants[i]);
      CHECK(b.compute_s == 0);
      CHECK(b.comm_s == Approx(passes * by_hand).epsilon(1e-9));
      CHECK(std::string(b.binds()) == "all-to-all");
      CHECK(b.step_s() <= rr.variants[i].step_time_s);
      // Every rank holds 2 experts, so each has the same floor: the mean over ranks of their summed all-to-all
      // durations is not below it either (the term bounds the communication itself, not only the step).
      CHECK(b.comm_s <= rr.variants[i].comm_s);
    }
  }
  // EP 2: a rank holds 4 experts, a token's 4 picks may all be local: no term.
  {
    const Scenario sc = load_scenario_text(alltoall_toy(box, 2, "inference_prefill", variants), "alltoall-toy-ep2.yaml");
    CHECK(alltoall_lower_bound(sc, sc.variants[0]) == 0);
  }
  // Schedules and settings that can move fewer pairs get no term.
  {
    std::string text = alltoall_toy(box, 4, "inference_prefill",
                                     "  - {name: topk, schedule: topk}\n  - {name: ds, schedule: dualsparse}\n");
    const Scenario sc = load_scenario_text(text, "alltoall-toy-ds.yaml");
    CHECK(alltoall_lower_bound(sc, sc.variants[0]) > 0);
    CHECK(alltoall_lower_bound(sc, sc.variants[1]) == 0);
    const auto at = text.find("routing: {distribution: uniform}");
    REQUIRE(at != std::string::npos);
    text.replace(at, 32, "routing: {distribution: uniform, capacity_factor: 1.0}");
    const Scenario capped = load_scenario_text(text, "alltoall-toy-capacity.yaml");
    CHECK(alltoall_lower_bound(capped, capped.variants[0]) == 0);
  }
  // Two 8-GPU A800 servers over 100 GbE (a slow inter-node network), EP 16 with 32 experts and top-8 (2 local,
  // >= 6 remote per token): the term binds and stays below the simulated step.
  {
    std::string text = alltoall_toy("a800-2x8-100gbe", 16, "inference_prefill", "  - {name: topk, schedule: topk}\n");
    const auto at = text.find("routed_experts: 8\n  top_k: 4");
    REQUIRE(at != std::string::npos);
    text.replace(at, 28, "routed_experts: 32\n  top_k: 8");
    const Scenario sc = load_scenario_text(text, "alltoall-toy-a800.yaml");
    const StepBound b = step_bound(sc, sc.variants[0]);
    CHECK(b.comm_s > 0);
    CHECK(std::string(b.binds()) == "all-to-all");
    RunOptions ro;
    ro.jobs = 1;
    const RunResult rr = run_scenario(sc, ro);
    INFO(fmt::format("bound {} s, simulated {} s", b.step_s(), rr.variants.at(0).step_time_s));
    CHECK(b.step_s() <= rr.variants.at(0).step_time_s);
  }
}

TEST_CASE("the planner split over two ranks and merged gives the one-process winner and runner-up", "[plan]") {
  // What `mpirun -np 2 moesim plan` does, without MPI: each rank's run_plan simulates the open candidates at
  // its positions of the cost-bound order; rank 0 merges both ranks' items (the gather's result).
  PlanOptions one;
  one.jobs = 1;
  one.quiet = true;
  const PlanOutcome whole = run_plan(kToy.string(), one);
  REQUIRE(whole.winner);
  REQUIRE(whole.runner_up);
  std::map<std::size_t, std::string> items;
  PlanOutcome at0;
  for (int rank : {0, 1}) {
    PlanOptions o = one;
    o.shard_rank = rank;
    o.shard_size = 2;
    PlanOutcome part = run_plan(kToy.string(), o);
    CHECK(part.order == whole.order);  // the same cost-bound order on every rank
    const auto mine = plan_shard_items(part, o);
    for (const auto& [i, text] : mine) {
      const auto p = std::find(part.order.begin(), part.order.end(), i) - part.order.begin();
      CHECK(p % 2 == rank);  // only its own positions
      CHECK(items.emplace(i, text).second);
    }
    if (rank == 0) at0 = std::move(part);
  }
  CHECK(items.size() == whole.order.size());  // every open candidate visited by one rank
  merge_plan_items(at0, items);
  REQUIRE(at0.winner);
  REQUIRE(at0.runner_up);
  CHECK(*at0.winner == *whole.winner);
  CHECK(*at0.runner_up == *whole.runner_up);
  for (const auto& c : at0.candidates) {
    INFO(c.index);
    const PlanCandidate& w = whole.candidates[c.index];
    CHECK(!c.status.empty());
    if (c.status == "simulated" && w.status == "simulated") {
      CHECK(c.step_time_s == w.step_time_s);  // exact: %.17g on the wire
      CHECK(c.cost_per_h == w.cost_per_h);
      CHECK(c.binds == w.binds);
    }
    if (c.status != "simulated" && c.status != "pruned") CHECK(c.status == w.status);
  }
}
