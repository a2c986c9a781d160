#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/parallel_for.hpp"
#include "models/routing.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;

namespace {

// A toy model: `layers` MoE blocks, E experts, top-k (test_util.hpp).
Architecture toy(int layers, int experts, int k) { return moesim::test::toy_arch(layers, experts, k); }

RoutingSpec spec(const std::string& yaml, const Architecture& a, int ranks, const std::string& dir = ".") {
  Doc d(yaml);
  RoutingSpec s = decode_routing(d.root.at("routing"), a, ranks, dir);
  REQUIRE(d.diags.str() == "");
  return s;
}

std::string write_file(const std::string& name, const std::string& text) {
  auto dir = std::filesystem::temp_directory_path() / "moesim_models_test";
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

int64_t total(const LayerRouting& L) { return std::accumulate(L.counts.begin(), L.counts.end(), int64_t{0}); }

}  // namespace

TEST_CASE("routing is deterministic in the seed", "[models][routing]") {
  Architecture a = toy(3, 16, 4);
  Placement p(16, 4);
  for (const char* y : {"routing: {distribution: uniform}\n", "routing: {distribution: zipf, s: 1.2}\n",
                        "routing: {distribution: hot, hot_experts: 2, hot_share: 0.5}\n"}) {
    INFO(y);
    RoutingSpec s = spec(y, a, 4);
    RoutingPlan p1 = generate_routing(s, a, p, 500, 42), p2 = generate_routing(s, a, p, 500, 42),
                p3 = generate_routing(s, a, p, 500, 43);
    for (int l = 0; l < 3; ++l) {
      CHECK(p1.layer(l).counts == p2.layer(l).counts);
      CHECK(p1.layer(l).score_hist == p2.layer(l).score_hist);
      CHECK(p1.layer(l).counts != p3.layer(l).counts);
    }
    CHECK(p1.layer(0).counts != p1.layer(1).counts);  // each layer has its own stream
  }
}

TEST_CASE("uniform routing sends about T*k/E pairs to each expert", "[models][routing]") {
  // R = 4 ranks x T = 8000 tokens x k = 2 picks over E = 16 experts: each expert is picked by a token with
  // probability k/E = 1/8, so its count is Binomial(32000, 1/8): mean 4000, sd sqrt(32000 * 1/8 * 7/8) = 59.2.
  // Bound: |count - 4000| < 360 (about 6 sd; a fixed seed makes the test reproducible anyway).
  Architecture a = toy(1, 16, 2);
  RoutingPlan plan = generate_routing(RoutingSpec{}, a, Placement(16, 4), 8000, 7);
  for (int e = 0; e < 16; ++e) {
    int64_t c = 0;
    for (int s = 0; s < 4; ++s) c += plan.count(0, s, e);
    CHECK(std::abs(c - 4000) < 360);
  }
  // Conservation: every pair is counted once, none dropped: 4 * 8000 * 2.
  CHECK(total(plan.layer(0)) == 64000);
  // Per token the k experts are distinct (kept scores show it) and its k scores sum to 1.
  RoutingSpec keep = spec("routing: {keep_scores: true}\n", a, 4);
  RoutingPlan kp = generate_routing(keep, a, Placement(16, 4), 100, 7);
  const TokenRoutes& tr = kp.layer(0).tokens[2];
  REQUIRE(tr.experts.size() == 200);
  for (size_t t = 0; t < 100; ++t) {
    CHECK(tr.experts[2 * t] != tr.experts[2 * t + 1]);
    CHECK(tr.scores[2 * t] + tr.scores[2 * t + 1] == Approx(1.0).epsilon(1e-6));
  }
  CHECK(kp.layer(0).counts == generate_routing(RoutingSpec{}, a, Placement(16, 4), 100, 7).layer(0).counts);
}

TEST_CASE("zipf with a larger exponent is more imbalanced", "[models][routing]") {
  Architecture a = toy(1, 64, 4);
  Placement p(64, 8);
  RoutingPlan lo = generate_routing(spec("routing: {distribution: zipf, s: 0.5, rotate_hot: false}\n", a, 8), a, p, 2000, 1);
  RoutingPlan hi = generate_routing(spec("routing: {distribution: zipf, s: 1.5, rotate_hot: false}\n", a, 8), a, p, 2000, 1);
  CHECK(lo.load_imbalance(0) > 1.05);
  CHECK(hi.load_imbalance(0) > lo.load_imbalance(0) + 0.5);
  // Very skewed weights take the exact fallback path; picks must still be k distinct experts per token.
  RoutingPlan ex = generate_routing(spec("routing: {distribution: zipf, s: 6, keep_scores: true}\n", a, 8), a, p, 200, 1);
  const TokenRoutes& tr = ex.layer(0).tokens[0];
  for (size_t t = 0; t < 200; ++t)
    for (int i = 0; i < 4; ++i)
      for (int j = i + 1; j < 4; ++j) CHECK(tr.experts[4 * t + i] != tr.experts[4 * t + j]);
}

TEST_CASE("hot experts receive their share", "[models][routing]") {
  // k = 1: each token picks expert 3 with probability hot_share = 0.6. 4 ranks x 5000 tokens = 20000 picks;
  // sd of the share = sqrt(0.6 * 0.4 / 20000) = 0.0035; tolerance 0.02 (about 6 sd).
  Architecture a = toy(1, 16, 1);
  RoutingSpec s = spec("routing: {distribution: hot, hot_experts: [3], hot_share: 0.6}\n", a, 4);
  RoutingPlan plan = generate_routing(s, a, Placement(16, 4), 5000, 11);
  int64_t hot = 0;
  for (int r = 0; r < 4; ++r) hot += plan.count(0, r, 3);
  CHECK(std::abs(static_cast<double>(hot) / 20000.0 - 0.6) < 0.02);
  // A hot count with rotate_hot (default true) draws a different hot set per layer.
  Architecture b = toy(2, 64, 1);
  RoutingSpec rs = spec("routing: {distribution: hot, hot_experts: 2, hot_share: 0.9}\n", b, 1);
  RoutingPlan rp = generate_routing(rs, b, Placement(64, 1), 4000, 5);
  auto top2 = [&](int l) {
    std::vector<int> idx(64);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int x, int y) { return rp.count(l, 0, x) > rp.count(l, 0, y); });
    std::vector<int> t{idx[0], idx[1]};
    std::sort(t.begin(), t.end());
    return t;
  };
  CHECK(top2(0) != top2(1));
}

TEST_CASE("token counts are conserved under capacity dropping", "[models][routing]") {
  Architecture a = toy(2, 16, 4);
  RoutingSpec s = spec("routing: {distribution: zipf, s: 1.2, capacity_factor: 1.0}\n", a, 4);
  RoutingPlan plan = generate_routing(s, a, Placement(16, 4), 1000, 3);
  for (const LayerRouting& L : plan.layers()) {
    CHECK(L.dropped > 0);
    CHECK(total(L) == 1000 * 4 * 4 - L.dropped);  // T * k * ranks - dropped
    // ceil(1.0 * 1000 * 4 / 16) = 250 per (source rank, expert)
    for (int64_t c : L.counts) CHECK(c <= 250);
    int64_t hist = 0;
    for (uint32_t h : L.score_hist) hist += h;
    CHECK(hist == total(L));
  }
}

TEST_CASE("capacity factor drops exactly the excess (hand-worked trace)", "[models][routing]") {
  // 1 rank, E = 4, k = 1, 4 tokens all to expert 0. capacity_factor 1: ceil(1 * 4 * 1 / 4) = 1 kept, 3 dropped.
  // capacity_factor 2: ceil(2 * 4 / 4) = 2 kept, 2 dropped.
  Architecture a = toy(1, 4, 1);
  std::string f = write_file("cap.csv", "layer,rank,token,experts\n0,0,0,0\n0,0,1,0\n0,0,2,0\n0,0,3,0\n");
  for (auto [cf, kept] : {std::pair{1.0, 1}, std::pair{2.0, 2}}) {
    RoutingSpec s = spec("routing: {distribution: trace, file: " + f + ", capacity_factor: " + std::to_string(cf) + "}\n", a, 1);
    RoutingPlan p = generate_routing(s, a, Placement(4, 1), 1, 0);
    CHECK(p.count(0, 0, 0) == kept);
    CHECK(p.dropped(0) == 4 - kept);
    CHECK(p.layer(0).tokens[0].kept == std::vector<uint8_t>{1, static_cast<uint8_t>(kept > 1), 0, 0});
  }
}

TEST_CASE("traffic matrix on a 2-rank toy trace", "[models][routing]") {
  // E = 4, k = 2, contiguous on 2 ranks: experts 0,1 on rank 0; 2,3 on rank 1.
  //   rank 0 token 0 -> experts 0 (r0), 2 (r1), scores 0.75, 0.25
  //   rank 0 token 1 -> experts 2 (r1), 3 (r1), no scores -> 0.5 each
  //   rank 1 token 0 -> experts 1 (r0), 3 (r1), scores 1;3 -> 0.25, 0.75
  // pairs src->dst: [0][0] = 1, [0][1] = 3, [1][0] = 1, [1][1] = 1; x 100 bytes per token.
  Architecture a = toy(1, 4, 2);
  std::string f = write_file("toy.csv",
                             "# toy trace\nlayer,rank,token,experts,scores\n0,0,0,0;2,0.75;0.25\n0,0,1,2;3,\n"
                             "0,1,0,1;3,1;3\n");
  RoutingSpec s = spec("routing: {distribution: trace, file: " + f + "}\n", a, 2);
  RoutingPlan p = generate_routing(s, a, Placement(4, 2), 1, 0);
  CHECK(p.traffic_bytes(0, 100.0) == std::vector<double>{100, 300, 100, 100});
  CHECK(p.tokens_per_rank_received(0) == std::vector<int64_t>{2, 4});
  CHECK(p.load_imbalance(0) == Approx(4.0 / 3.0));  // max 4 / mean 3
  CHECK(p.layer(0).src_tokens == std::vector<int64_t>{2, 1});
  // Rank 0 receives scores 0.75 (bin 48 of 64) and 0.25 (bin 16).
  const auto& h = p.layer(0).score_hist;
  CHECK(h[48] == 1);
  CHECK(h[16] == 1);
  CHECK(h[64 + 32] == 2);  // rank 1: two 0.5 scores in bin 32
  CHECK_THROWS_AS(p.layer(1), std::out_of_range);
}

TEST_CASE("routing rejects bad input", "[models][routing][bad]") {
  Architecture a = toy(1, 4, 2);
  CHECK_THROWS_AS(generate_routing(RoutingSpec{}, a, Placement(4, 2), 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(generate_routing(RoutingSpec{}, a, Placement(4, 2), -5, 1), std::invalid_argument);

  std::string f = write_file("bad.csv", "layer,rank,token,experts\n0,0,0,0;1\n0,1,0,2;9\n");
  Doc d("routing:\n  distribution: trace\n  file: " + f + "\n");
  decode_routing(d.root.at("routing"), a, 2, ".");
  CHECK(d.diags.str() == f + ":3:7: experts: unknown expert id; must be in [0, 4) (got 9)\n");

  Doc z("routing: {distribution: zipf, s: -1}\n");
  decode_routing(z.root.at("routing"), a, 2, ".");
  CHECK(z.diags.str() == "scenario.yaml:1:34: routing.s: must be in [0, 8] (got -1)\n");

  Doc h("routing: {distribution: uniform, hot_share: 0.5}\n");
  decode_routing(h.root.at("routing"), a, 2, ".");
  CHECK(h.diags.str() == "scenario.yaml:1:45: routing.hot_share: only used with distribution: hot (got 0.5)\n");
}

TEST_CASE("routing generation at DeepSeek-V3 scale sums to tokens x top_k (time printed)", "[models][routing][perf]") {
  // 58 MoE layers x 64 ranks x 4096 tokens x top-8 = 121.6 M picks with the per-token sampler. The time is
  // printed, not checked: speed is a benchmark's business (scenarios/bench/), a timed test fails on a busy
  // machine.
  Architecture a = load_architecture_preset("deepseek-v3", kDataDir);
  Placement p(256, 64);
  for (const char* y : {"routing: {distribution: uniform}\n", "routing: {distribution: zipf, s: 1.0}\n"}) {
    RoutingSpec s = spec(y, a, 64);
    auto t0 = std::chrono::steady_clock::now();
    RoutingPlan plan = generate_routing(s, a, p, 4096, 9);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    WARN(y << " generation took " << secs << " s");
    CHECK(total(plan.layer(3)) == int64_t{64} * 4096 * 8);
  }
}

namespace {

// The parts of a plan that must not depend on how it was computed (everything but the optional per-token
// records, compared separately where kept).
void check_same_plan(const RoutingPlan& a, const RoutingPlan& b, bool with_hist) {
  REQUIRE(a.layers().size() == b.layers().size());
  for (std::size_t i = 0; i < a.layers().size(); ++i) {
    const LayerRouting &x = a.layers()[i], &y = b.layers()[i];
    INFO("layer " << x.layer);
    CHECK(x.layer == y.layer);
    CHECK(x.src_tokens == y.src_tokens);
    CHECK(x.counts == y.counts);
    CHECK(x.rank_tokens == y.rank_tokens);
    CHECK(x.dropped == y.dropped);
    if (with_hist) CHECK(x.score_hist == y.score_hist);
  }
}

// Synthetic routings for the thread and histogram cases: uniform, zipf and hot, each without and with a
// capacity factor, plus a replicated placement (tokens to a replicated expert are dealt out by the
// per-source count, so the split of sources among threads must not change it).
struct RoutingCase {
  std::string yaml;
  bool replicate;
};
const std::vector<RoutingCase> kRoutingCases = {
    {"routing: {distribution: uniform}\n", false},
    {"routing: {distribution: uniform, capacity_factor: 1.0}\n", false},
    {"routing: {distribution: zipf, s: 1.2}\n", false},
    {"routing: {distribution: zipf, s: 1.2, capacity_factor: 1.0}\n", false},
    {"routing: {distribution: hot, hot_experts: 3, hot_share: 0.6}\n", false},
    {"routing: {distribution: hot, hot_experts: 3, hot_share: 0.6, capacity_factor: 1.25}\n", false},
    // k = 4 picks, 3 hot experts holding 99.9 %: the 4th pick of almost every token is rejected 32 times
    // (probability 0.999^32 = 0.97) and falls back to the exact scan over the remaining mass.
    {"routing: {distribution: hot, hot_experts: 3, hot_share: 0.999}\n", false},
    {"routing: {distribution: zipf, s: 1.0, capacity_factor: 1.0}\n", true},
};

}  // namespace

TEST_CASE("routing plans do not depend on the thread count", "[models][routing][threads]") {
  // R = 8 source ranks: 2 threads take 4 + 4, 3 take 2 + 3 + 3, 7 take one each and the last one two (uneven
  // blocks). E = 24 experts, 3 per rank; the replicated case uses E = 20 so that some experts have replicas:
  // ceil(20 / 8) = 3 slots per rank, 24 slots, experts 0-3 twice. k = 4, T = 300 tokens per rank, 2 MoE layers.
  // Capacity 1.0: ceil(300 * 4 / 24) = 50 pairs per (source, expert), exactly the uniform mean, so many
  // (source, expert) pairs go over it and the dropping path runs (checked below).
  for (const RoutingCase& rc : kRoutingCases) {
    INFO(rc.yaml << (rc.replicate ? " (replicated placement)" : ""));
    const int E = rc.replicate ? 20 : 24;
    Architecture a = toy(2, E, 4);
    Placement p(E, 8, PlacementScheme::contiguous, rc.replicate);
    RoutingSpec s = spec(rc.yaml, a, 8);
    const RoutingPlan one = generate_routing(s, a, p, 300, 17, 1);
    if (s.capacity_factor)
      for (const LayerRouting& L : one.layers()) CHECK(L.dropped > 0);
    for (int threads : {2, 3, 7}) {
      INFO(threads << " threads");
      check_same_plan(one, generate_routing(s, a, p, 300, 17, threads), true);
    }
  }
}

TEST_CASE("per-token records do not depend on the thread count", "[models][routing][threads]") {
  // keep_scores: each source rank's token list is written by whichever thread owns that rank.
  Architecture a = toy(1, 16, 2);
  Placement p(16, 8);
  RoutingSpec s = spec("routing: {distribution: zipf, s: 1.1, capacity_factor: 1.0, keep_scores: true}\n", a, 8);
  const RoutingPlan one = generate_routing(s, a, p, 200, 5, 1), three = generate_routing(s, a, p, 200, 5, 3);
  check_same_plan(one, three, true);
  for (int r = 0; r < 8; ++r) {
    INFO("rank " << r);
    const TokenRoutes &x = one.layer(0).tokens[r], &y = three.layer(0).tokens[r];
    CHECK(x.experts.size() == 400);  // T * k
    CHECK(x.experts == y.experts);
    CHECK(x.scores == y.scores);
    CHECK(x.kept == y.kept);
  }
}

TEST_CASE("turning score histograms off leaves the expert picks unchanged", "[models][routing]") {
  // The runner turns histograms off for schedules that do not read gate scores; the raw scores are drawn
  // either way, so counts, rank_tokens and dropped must not move, only score_hist is left empty. Without
  // histograms, capacity, replicas or per-token records a weighted routing takes the counts-only sampler,
  // so the zipf and hot cases here also check that it draws exactly what the full sampler draws.
  for (const RoutingCase& rc : kRoutingCases) {
    INFO(rc.yaml << (rc.replicate ? " (replicated placement)" : ""));
    const int E = rc.replicate ? 20 : 24;
    Architecture a = toy(2, E, 4);
    Placement p(E, 8, PlacementScheme::contiguous, rc.replicate);
    RoutingSpec on = spec(rc.yaml, a, 8), off = on;
    off.score_histograms = false;
    off.sampler = Sampler::tokens;  // the per-token sampler's picks (auto would draw counts here)
    const RoutingPlan with = generate_routing(on, a, p, 300, 23, 3), without = generate_routing(off, a, p, 300, 23, 3);
    check_same_plan(with, without, false);
    for (std::size_t i = 0; i < with.layers().size(); ++i) {
      // The histogram holds one entry per kept pair when on, nothing when off.
      CHECK(without.layers()[i].score_hist.empty());
      int64_t hist = 0;
      for (uint32_t h : with.layers()[i].score_hist) hist += h;
      CHECK(hist == total(with.layers()[i]));
      CHECK(hist > 0);
    }
  }
  // With keep_scores the per-token scores are still recorded, and equal, when the histogram is off.
  Architecture a = toy(1, 16, 2);
  RoutingSpec on = spec("routing: {distribution: hot, hot_experts: 2, hot_share: 0.5, keep_scores: true}\n", a, 4),
              off = on;
  off.score_histograms = false;
  off.sampler = Sampler::tokens;
  const RoutingPlan with = generate_routing(on, a, Placement(16, 4), 100, 3, 2),
                    without = generate_routing(off, a, Placement(16, 4), 100, 3, 2);
  check_same_plan(with, without, false);
  CHECK(without.layer(0).score_hist.empty());
  for (int r = 0; r < 4; ++r) {
    CHECK(with.layer(0).tokens[r].experts == without.layer(0).tokens[r].experts);
    CHECK(with.layer(0).tokens[r].scores == without.layer(0).tokens[r].scores);
  }
}

// ------------------------------------------------------------------------------------------ softmax gate

TEST_CASE("softmax gate: one token worked by hand", "[models][routing][gate]") {
  // E = 3 experts of popularity (0.5, 0.3, 0.2), k = 2, Gumbel values fixed by hand (0, 0.5, -0.2).
  const double log_w[3] = {std::log(0.5), std::log(0.3), std::log(0.2)};
  const double g[3] = {0.0, 0.5, -0.2};
  uint32_t pick[2];
  double score[2];
  // noise 1, temperature 1: logits l = (log 0.5, log 0.3 + 0.5, log 0.2 - 0.2) = (-0.693, -0.704, -1.809), so
  // the picks are 0 then 1, and exp(l) = (0.5, 0.3 e^0.5, 0.2 e^-0.2). Scores: each picked exp(l) over the two
  // picked ones; top-k mass: the two picked over all three.
  const double e0 = 0.5, e1 = 0.3 * std::exp(0.5), e2 = 0.2 * std::exp(-0.2);
  double mass = softmax_gate_token(log_w, g, 3, 2, 1.0, 1.0, pick, score);
  CHECK(pick[0] == 0);
  CHECK(pick[1] == 1);
  CHECK(score[0] == Approx(e0 / (e0 + e1)).epsilon(1e-12));
  CHECK(score[1] == Approx(e1 / (e0 + e1)).epsilon(1e-12));
  CHECK(mass == Approx((e0 + e1) / (e0 + e1 + e2)).epsilon(1e-12));
  // Temperature 2 divides the logits by 2: exp(l / 2) = sqrt(exp(l)); same picks.
  mass = softmax_gate_token(log_w, g, 3, 2, 2.0, 1.0, pick, score);
  CHECK(score[0] == Approx(std::sqrt(e0) / (std::sqrt(e0) + std::sqrt(e1))).epsilon(1e-12));
  const double r0 = std::sqrt(e0), r1 = std::sqrt(e1), r2 = std::sqrt(e2);
  CHECK(mass == Approx((r0 + r1) / (r0 + r1 + r2)).epsilon(1e-12));
  // Noise 2 doubles the Gumbel terms: l1 = log 0.3 + 1 = -0.204 now beats l0 = -0.693, so expert 1 comes first;
  // exp(l) = (0.5, 0.3 e, 0.2 e^-0.4).
  const double f1 = 0.3 * std::exp(1.0);
  softmax_gate_token(log_w, g, 3, 2, 1.0, 2.0, pick, score);
  CHECK(pick[0] == 1);
  CHECK(pick[1] == 0);
  CHECK(score[0] == Approx(f1 / (f1 + 0.5)).epsilon(1e-12));
  // A zero-weight expert (log w = -infinity) is never picked and holds no probability; equal logits keep the
  // lower id first. Weights (0, 1, 1), no noise difference: picks 1 then 2, scores 1/2 each, mass 1.
  const double lz[3] = {-std::numeric_limits<double>::infinity(), 0.0, 0.0};
  const double g0[3] = {5.0, 0.0, 0.0};
  mass = softmax_gate_token(lz, g0, 3, 2, 1.0, 1.0, pick, score);
  CHECK(pick[0] == 1);
  CHECK(pick[1] == 2);
  CHECK(score[0] == 0.5);
  CHECK(mass == 1.0);
  CHECK_THROWS_AS(softmax_gate_token(lz, g0, 3, 3, 1.0, 1.0, pick, score), std::invalid_argument);
}

TEST_CASE("softmax gate: a large temperature makes every normalised score 1/k", "[models][routing][gate]") {
  // Logits differ by at most D = (log-weight span, ln 64^1.2 = 5.0 for zipf s = 1.2 over 64 experts) + the
  // Gumbel span (about 41: G in [-3.6, 37.4]) < 50, so with temperature t every exp(l / t) of a token lies
  // within a factor e^(50 / t) of the others and |score - 1/k| < (e^(50/t) - 1) / k: 6.3e-6 at t = 1e6.
  Architecture a = toy(2, 64, 4);
  const RoutingSpec s =
      spec("routing: {distribution: zipf, s: 1.2, keep_scores: true,\n"
           "          gate: {scores: softmax, temperature: 1e6}}\n",
           a, 2);
  const RoutingPlan plan = generate_routing(s, a, Placement(64, 2), 500, 3);
  const double bound = (std::exp(50.0 / 1e6) - 1.0) / 4;
  double worst = 0.0;
  for (const auto& L : plan.layers())
    for (const auto& tr : L.tokens)
      for (float x : tr.scores) worst = std::max(worst, std::abs(static_cast<double>(x) - 0.25));
  // Scores are stored as float: add float rounding of 0.25-sized values (2^-26).
  CHECK(worst < bound + 0x1.0p-26);
  // The top-k mass is then about k / E = 4 / 64.
  const auto& L0 = plan.layers().front();
  const double mass = (L0.topk_mass_sum[0] + L0.topk_mass_sum[1]) /
                      static_cast<double>(L0.topk_mass_tokens[0] + L0.topk_mass_tokens[1]);
  CHECK(mass == Approx(4.0 / 64).epsilon(1e-4));
}

TEST_CASE("softmax gate with noise 1 picks experts as weighted sampling without replacement",
          "[models][routing][gate]") {
  // Hot routing with an explicit list: w = (0.4, 0.2, 0.2, 0.2) over E = 4, k = 2. Sampling 2 without
  // replacement by w (which the Gumbel-top-k trick reproduces exactly): P(e in S) = w_e + sum_{j != e} w_j w_e /
  // (1 - w_j). Expert 0: 0.4 + 3 x 0.2 x 0.4 / 0.8 = 0.7; expert 1 (and 2, 3): 0.2 + 0.4 x 0.2 / 0.6 +
  // 2 x 0.2 x 0.2 / 0.8 = 0.4333 (the four sum to k = 2). N = 2 ranks x 20,000 tokens, each token includes e or
  // not independently: count ~ Binomial(N, p), sd = sqrt(N p (1 - p)) (91.7 for 0.7, 99.1 for 0.4333);
  // tolerance 5 sd. The default (uniform-score) mode samples the same distribution by rejection: it passes
  // the same bound.
  Architecture a = toy(1, 4, 2);
  const int64_t T = 20000;
  const double N = 2.0 * T;
  const double p[4] = {0.7, 0.2 + 0.4 * 0.2 / 0.6 + 2 * 0.2 * 0.2 / 0.8, 0, 0};
  for (const char* gate : {"{scores: softmax, noise: 1}", "{scores: uniform}"}) {
    INFO(gate);
    const RoutingSpec s = spec(std::string("routing: {distribution: hot, hot_experts: [0], hot_share: 0.4, gate: ") +
                                   gate + "}\n",
                               a, 2);
    const RoutingPlan plan = generate_routing(s, a, Placement(4, 2), T, 12345);
    for (int e = 0; e < 4; ++e) {
      const double pe = e == 0 ? p[0] : p[1];
      const double c = static_cast<double>(plan.count(0, 0, e) + plan.count(0, 1, e));
      CHECK(std::abs(c - N * pe) < 5.0 * std::sqrt(N * pe * (1 - pe)));
    }
  }
}

TEST_CASE("softmax gate: deterministic, thread-independent, scores sum to 1 per token", "[models][routing][gate]") {
  Architecture a = toy(3, 32, 4);
  const RoutingSpec s = spec(
      "routing: {distribution: zipf, s: 1.0, keep_scores: true, capacity_factor: 1.1, "
      "gate: {scores: softmax, temperature: 0.7, noise: 1.3}}\n",
      a, 8);
  const Placement pl(32, 8);
  const RoutingPlan one = generate_routing(s, a, pl, 300, 5, 1), three = generate_routing(s, a, pl, 300, 5, 3);
  for (size_t i = 0; i < one.layers().size(); ++i) {
    const LayerRouting &x = one.layers()[i], &y = three.layers()[i];
    CHECK(x.counts == y.counts);
    CHECK(x.dropped == y.dropped);
    CHECK(x.score_hist == y.score_hist);
    CHECK(x.topk_mass_sum == y.topk_mass_sum);
    for (size_t r = 0; r < x.tokens.size(); ++r) {
      CHECK(x.tokens[r].experts == y.tokens[r].experts);
      CHECK(x.tokens[r].scores == y.tokens[r].scores);
      // Each token's k scores, in descending order, sum to 1 (float rounding: 1e-6).
      const auto& sc = x.tokens[r].scores;
      for (size_t t = 0; t + 4 <= sc.size(); t += 4) {
        CHECK(sc[t] >= sc[t + 1]);
        CHECK(std::abs(sc[t] + sc[t + 1] + sc[t + 2] + sc[t + 3] - 1.0f) < 1e-6f);
      }
    }
  }
  // Without per-token records the counts are the same (the softmax picks never take the counts-only path).
  RoutingSpec lean = s;
  lean.keep_scores = false;
  lean.score_histograms = false;
  const RoutingPlan l = generate_routing(lean, a, pl, 300, 5);
  for (size_t i = 0; i < l.layers().size(); ++i) CHECK(l.layers()[i].counts == one.layers()[i].counts);
}

TEST_CASE("the default gate is the uniform one, drawn as before", "[models][routing][gate]") {
  // Spelling out the default changes nothing: same counts, records and histograms (the shipped scenarios'
  // golden files check the bytes against earlier versions).
  Architecture a = toy(2, 16, 4);
  const Placement pl(16, 4);
  for (const char* d : {"uniform", "zipf, s: 1.1", "hot, hot_experts: 3, hot_share: 0.6"}) {
    INFO(d);
    const std::string base = std::string("routing: {keep_scores: true, distribution: ") + d;
    const RoutingSpec plain = spec(base + "}\n", a, 4), spelled = spec(base + ", gate: {scores: uniform}}\n", a, 4);
    CHECK(plain.gate.scores == GateScores::uniform);
    const RoutingPlan x = generate_routing(plain, a, pl, 200, 8), y = generate_routing(spelled, a, pl, 200, 8);
    for (size_t i = 0; i < x.layers().size(); ++i) {
      CHECK(x.layers()[i].counts == y.layers()[i].counts);
      CHECK(x.layers()[i].score_hist == y.layers()[i].score_hist);
      CHECK(x.layers()[i].tokens[1].scores == y.layers()[i].tokens[1].scores);
      CHECK(x.layers()[i].topk_mass_sum.empty());
    }
  }
}

TEST_CASE("gate keys are checked", "[models][routing][gate][bad]") {
  Architecture a = toy(1, 8, 2);
  auto diags = [&](const std::string& y) {
    Doc d(y);
    decode_routing(d.root.at("routing"), a, 2, ".");
    return d.diags.str();
  };
  CHECK(diags("routing: {gate: {scores: softmax, temperature: 0}}\n") ==
        "scenario.yaml:1:48: routing.gate.temperature: must be in (0, 1000000] (got 0)\n");
  CHECK(diags("routing: {gate: {scores: softmax, noise: -1}}\n") ==
        "scenario.yaml:1:42: routing.gate.noise: must be in (0, 1000000] (got -1)\n");
  CHECK(diags("routing: {gate: {temperature: 2}}\n") ==
        "scenario.yaml:1:31: routing.gate.temperature: only used with scores: softmax (got 2)\n");
  CHECK(diags("routing: {gate: {scores: sigmoid}}\n") ==
        "scenario.yaml:1:26: routing.gate.scores: must be one of uniform, softmax (got sigmoid)\n");
  CHECK(diags("routing: {gate: {score: softmax}}\n").find("routing.gate.score: unknown key; did you mean 'scores'?") !=
        std::string::npos);
  const std::string f = write_file("gate-trace.csv", "layer,rank,token,experts\n*,0,0,0;1\n*,1,0,2;3\n");
  CHECK(diags("routing: {distribution: trace, file: " + f + ", gate: {scores: softmax}}\n")
            .find("routing.gate: only used with a generated distribution") != std::string::npos);
}

TEST_CASE("gate-score statistics of a trace with scores, worked by hand", "[models][routing][gate]") {
  // Top-2 trace, 2 ranks, one '*' row per rank: scores 3;1 -> (0.75, 0.25) and 1;1 -> (0.5, 0.5). With 4 bins
  // of width 0.25: 0.75 in bin 3, 0.25 in bin 1, 0.5 in bin 2 (twice). Per layer 4 pairs, mean 0.5, p50 = the
  // 2nd smallest of (0.25, 0.5, 0.5, 0.75) = 0.5. Two MoE layers give twice the pairs, same mean and p50; no
  // softmax tokens, so no top-k mass.
  Architecture a = toy(2, 4, 2);
  const std::string f = write_file("gate-stats.csv", "layer,rank,token,experts,scores\n*,0,0,0;1,3;1\n*,1,0,2;3,1;1\n");
  const RoutingSpec s = spec("routing: {distribution: trace, histogram_bins: 4, file: " + f + "}\n", a, 2);
  CHECK(gate_scores_label(s) == "trace");
  const RoutingPlan plan = generate_routing(s, a, Placement(4, 2), 1, 1);
  const GateScoreStats g = gate_score_stats({&plan}, {0, 1}, gate_scores_label(s), true);
  CHECK(g.scores == "trace");
  CHECK(g.norm_topk_prob);
  CHECK(g.bins == 4);
  REQUIRE(g.layers.size() == 2);
  CHECK(g.layers[0].counts == std::vector<int64_t>{0, 1, 2, 1});
  CHECK(g.layers[0].pairs == 4);
  CHECK(g.layers[0].mean == 0.5);
  CHECK(g.layers[0].p50 == 0.5);
  CHECK(g.pairs == 8);
  CHECK(g.mean == 0.5);
  CHECK(g.p50 == 0.5);
  CHECK(g.topk_mass_mean == -1.0);
  // Two steps' plans add their counts; a layer not asked for is left out.
  const GateScoreStats g2 = gate_score_stats({&plan, &plan}, {1}, "trace", false);
  REQUIRE(g2.layers.size() == 1);
  CHECK(g2.layers[0].layer == 1);
  CHECK(g2.layers[0].counts == std::vector<int64_t>{0, 2, 4, 2});
  // A plan without per-token records reports nothing.
  const RoutingPlan none = generate_routing(RoutingSpec{}, a, Placement(4, 2), 10, 1);
  CHECK(gate_score_stats({&none}, {0, 1}, "uniform", false).bins == 0);
}

// parallel_for (models/parallel_for.hpp): every index runs exactly once whatever the threads, and of several
// failing items the lowest index's error is the one rethrown, after all have run.
TEST_CASE("parallel_for runs every index once and rethrows the lowest failing one", "[models][parallel]") {
  for (int workers : {1, 2, 4}) {
    std::vector<int> runs(100, 0);
    moesim::models::parallel_for(100, workers, [&](int i) { ++runs[static_cast<std::size_t>(i)]; });
    CHECK(std::count(runs.begin(), runs.end(), 1) == 100);
    std::vector<std::atomic<int>> seen(50);
    try {
      moesim::models::parallel_for(50, workers, [&](int i) {
        ++seen[static_cast<std::size_t>(i)];
        if (i == 37 || i == 12 || i == 40) throw std::runtime_error("item " + std::to_string(i));
      });
      FAIL("no exception");
    } catch (const std::runtime_error& e) {
      CHECK(std::string(e.what()) == "item 12");
    }
    for (const auto& s : seen) CHECK(s.load() == 1);
  }
  moesim::models::parallel_for(0, 2, [](int) { FAIL("no index to run"); });
}
