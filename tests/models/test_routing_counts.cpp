// The counts sampler (models/routing_counts.hpp): inclusion probabilities worked by hand and by enumeration,
// the binomial sampler's moments, and the statistical comparison with the per-token sampler that
// ARCHITECTURE.md quotes ("Routing at the level of counts").
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "models/routing.hpp"
#include "models/routing_counts.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;
using moesim::test::toy_arch;

namespace {

RoutingSpec routing(const std::string& yaml, const Architecture& a, int ranks) {
  Doc d(yaml);
  RoutingSpec s = decode_routing(d.root.at("routing"), a, ranks, ".");
  REQUIRE(d.diags.str() == "");
  s.score_histograms = false;  // as the runner routes a schedule that reads no gate scores
  return s;
}

// Inclusion probabilities of successive sampling by enumerating every ordered k-sequence (small E only).
std::vector<double> enumerate_inclusion(const std::vector<double>& w, int k) {
  const size_t E = w.size();
  std::vector<double> pi(E, 0.0);
  std::vector<int> used(E, 0);
  std::function<void(int, double, double)> rec = [&](int depth, double prob, double left) {
    if (depth == k) return;
    for (size_t e = 0; e < E; ++e) {
      if (used[e] || w[e] <= 0) continue;
      const double p = prob * w[e] / left;
      pi[e] += p;
      used[e] = 1;
      rec(depth + 1, p, left - w[e]);
      used[e] = 0;
    }
  };
  rec(0, 1.0, std::accumulate(w.begin(), w.end(), 0.0));
  return pi;
}

}  // namespace

TEST_CASE("inclusion probabilities worked by hand", "[models][routing][counts]") {
  // w = (2, 1, 1), k = 2. Expert 0 is first with probability 2/4; it is second after expert 1 or 2 (1/4 each)
  // with probability 2/3: pi_0 = 1/2 + 2 * (1/4)(2/3) = 5/6. Expert 1 is first with 1/4, second after expert 0
  // (1/2 * 1/2 = 1/4) or after expert 2 (1/4 * 1/3 = 1/12): pi_1 = 1/4 + 1/4 + 1/12 = 7/12 = pi_2.
  const std::vector<double> pi = inclusion_probabilities({2, 1, 1}, 2);
  CHECK(pi[0] == Approx(5.0 / 6).epsilon(1e-9));
  CHECK(pi[1] == Approx(7.0 / 12).epsilon(1e-9));
  CHECK(pi[2] == Approx(7.0 / 12).epsilon(1e-9));
  // The closed forms: top_k = 1 is w / sum w; equal weights k / n; zero weights never; k = n positive all 1.
  CHECK(inclusion_probabilities({3, 1, 0, 4}, 1) == std::vector<double>{3.0 / 8, 1.0 / 8, 0.0, 4.0 / 8});
  CHECK(inclusion_probabilities({0, 5, 5, 5, 5}, 3) == std::vector<double>{0, 0.75, 0.75, 0.75, 0.75});
  CHECK(inclusion_probabilities({0, 2, 7, 0}, 2) == std::vector<double>{0, 1, 1, 0});
  CHECK_THROWS_AS(inclusion_probabilities({1, 0, 0}, 2), std::invalid_argument);
}

TEST_CASE("inclusion probabilities equal the enumeration of ordered picks", "[models][routing][counts]") {
  // Zipf weights (s = 1.2), a hot set, and a wide spread, with k from 2 to E - 1.
  std::vector<std::vector<double>> ws;
  std::vector<double> zipf;
  for (int i = 1; i <= 7; ++i) zipf.push_back(std::pow(i, -1.2));
  ws.push_back(zipf);
  ws.push_back({0.3, 0.3, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05});
  ws.push_back({1000, 1, 0.001, 3, 0.5, 0.5, 20});
  for (const auto& w : ws)
    for (int k = 2; k < static_cast<int>(w.size()); ++k) {
      INFO("E " << w.size() << ", k " << k);
      const std::vector<double> got = inclusion_probabilities(w, k), want = enumerate_inclusion(w, k);
      for (size_t e = 0; e < w.size(); ++e) CHECK(got[e] == Approx(want[e]).margin(1e-9));
      // Permuting the weights permutes the probabilities (the cache is keyed by the sorted weights).
      std::vector<double> rw(w.rbegin(), w.rend());
      const std::vector<double> back = inclusion_probabilities(rw, k);
      for (size_t e = 0; e < w.size(); ++e) CHECK(back[w.size() - 1 - e] == got[e]);
    }
}

TEST_CASE("binomial draws have the binomial's mean, variance and zero mass", "[models][routing][counts]") {
  // Both regimes: inversion (n p < 10) and transformed rejection (n p >= 10), and p > 1/2 (drawn as n - X).
  struct Case {
    int64_t n;
    double p;
  };
  for (const Case c : {Case{20, 0.1}, Case{4096, 0.001}, Case{4096, 0.03}, Case{1000000, 0.3}, Case{50, 0.9},
                       Case{300, 0.5}}) {
    INFO("n " << c.n << ", p " << c.p);
    Rng rng(derive_seed(7, static_cast<uint64_t>(c.n), static_cast<uint64_t>(c.p * 1e6)));
    const int N = 200000;
    double s = 0, s2 = 0;
    int zeros = 0;
    for (int i = 0; i < N; ++i) {
      const int64_t x = binomial(rng, c.n, c.p);
      REQUIRE(x >= 0);
      REQUIRE(x <= c.n);
      s += static_cast<double>(x);
      s2 += static_cast<double>(x) * static_cast<double>(x);
      zeros += x == 0;
    }
    const double mean = c.n * c.p, var = c.n * c.p * (1 - c.p);
    const double m = s / N, v = s2 / N - m * m;
    // 5 standard errors of the mean; the variance of a sample variance is about 2 var^2 / N (normal).
    CHECK(std::abs(m - mean) < 5 * std::sqrt(var / N));
    CHECK(std::abs(v / var - 1) < 5 * std::sqrt(2.0 / N) + 1e-3);
    const double p0 = std::pow(1 - c.p, static_cast<double>(c.n));
    CHECK(std::abs(zeros / static_cast<double>(N) - p0) < 5 * std::sqrt(p0 * (1 - p0) / N) + 1e-9);
  }
}

TEST_CASE("pair counts sum to tokens x top_k and stay within the tokens", "[models][routing][counts]") {
  std::vector<double> w;
  for (int i = 1; i <= 32; ++i) w.push_back(std::pow(i, -1.5));
  w[5] = 0;  // never picked
  for (int k : {1, 2, 8, 31}) {
    INFO("k " << k);
    const std::vector<double> pi = inclusion_probabilities(w, k);
    Rng rng(11);
    for (int64_t T : {int64_t{1}, int64_t{7}, int64_t{4096}}) {
      std::vector<int64_t> c(w.size(), 0);
      sample_pair_counts(rng, pi, k, T, c.data());
      CHECK(std::accumulate(c.begin(), c.end(), int64_t{0}) == T * k);
      CHECK(c[5] == 0);
      for (int64_t x : c) CHECK((x >= 0 && x <= T));
      if (k == 31) CHECK(std::count(c.begin(), c.end(), T) == 31);  // every expert of positive weight, each token
    }
  }
}

// The base seed of the statistical comparisons: it fixes the popularity ranking; the steps vary the draws.
constexpr uint64_t kRankingSeed = 7;

TEST_CASE("the counts sampler matches the per-token sampler in distribution", "[models][routing][counts]") {
  // 400 steps (one fixed popularity ranking: the base seed draws the ranking and each step only the tokens, so
  // the moments below are those of the token draw, not dominated by which expert a seed makes hot) of one
  // layer, 4 source ranks of 256 tokens, 16 experts, top-4, on 4 EP ranks. Per expert: the
  // mean and variance over seeds of its load (pairs over all sources); per seed: max/mean rank load.
  // Tolerances: means within 5 standard errors of their difference; the variance ratio pooled over experts
  // within 10 % (the approximation's expected shortfall here is ~3 %: 1 - 1/E + sqrt(2 / (pi T k (1 - k/E)))
  // for equal weights); per expert within 40 %; mean max/mean imbalance within 2 %.
  const Architecture a = toy_arch(1, 16, 4);
  const Placement pl(16, 4);
  const int seeds = 400, R = 4;
  const int64_t T = 256;
  for (const char* y : {"routing: {distribution: uniform", "routing: {distribution: zipf, s: 1.2",
                        "routing: {distribution: hot, hot_experts: 2, hot_share: 0.6"}) {
    INFO(y);
    struct Moments {
      std::vector<double> s, s2;
      double imb = 0;
    };
    auto measure = [&](const char* sampler) {
      const RoutingSpec sp = routing(std::string(y) + ", sampler: " + sampler + "}\n", a, R);
      Moments m{std::vector<double>(16, 0), std::vector<double>(16, 0), 0};
      for (int seed = 0; seed < seeds; ++seed) {
        const RoutingPlan p = generate_routing_step(sp, a, pl, T, kRankingSeed, seed, 1);
        REQUIRE(p.sampler() == (std::string(sampler) == "counts" ? Sampler::counts : Sampler::tokens));
        for (int e = 0; e < 16; ++e) {
          double load = 0;
          for (int src = 0; src < R; ++src) load += static_cast<double>(p.count(0, src, e));
          m.s[static_cast<size_t>(e)] += load;
          m.s2[static_cast<size_t>(e)] += load * load;
        }
        m.imb += p.load_imbalance(0);
      }
      return m;
    };
    const Moments tok = measure("tokens"), cnt = measure("counts");
    double vt_sum = 0, vc_sum = 0;
    for (size_t e = 0; e < 16; ++e) {
      const double mt = tok.s[e] / seeds, mc = cnt.s[e] / seeds;
      const double vt = tok.s2[e] / seeds - mt * mt, vc = cnt.s2[e] / seeds - mc * mc;
      INFO("expert " << e << ": mean " << mt << " vs " << mc << ", variance " << vt << " vs " << vc);
      CHECK(std::abs(mt - mc) < 5 * std::sqrt((vt + vc) / seeds));
      CHECK(std::abs(vc / vt - 1) < 0.4);
      vt_sum += vt;
      vc_sum += vc;
    }
    INFO("pooled variance ratio " << vc_sum / vt_sum << ", imbalance " << tok.imb / seeds << " vs " << cnt.imb / seeds);
    CHECK(std::abs(vc_sum / vt_sum - 1) < 0.10);
    CHECK(std::abs(cnt.imb / tok.imb - 1) < 0.02);
  }
}

TEST_CASE("the counts sampler is deterministic and independent of the thread split", "[models][routing][counts]") {
  const Architecture a = toy_arch(3, 24, 4);
  const Placement pl(24, 8);
  const RoutingSpec sp = routing("routing: {distribution: zipf, s: 1.1, capacity_factor: 1.1, sampler: counts}\n", a, 8);
  const RoutingPlan x = generate_routing(sp, a, pl, 300, 5, 1), y = generate_routing(sp, a, pl, 300, 5, 3),
                    z = generate_routing(sp, a, pl, 300, 6, 1);
  bool differs = false;
  for (size_t i = 0; i < x.layers().size(); ++i) {
    CHECK(x.layers()[i].counts == y.layers()[i].counts);
    CHECK(x.layers()[i].rank_tokens == y.layers()[i].rank_tokens);
    CHECK(x.layers()[i].dropped == y.layers()[i].dropped);
    differs = differs || x.layers()[i].counts != z.layers()[i].counts;
    // Capacity ceil(1.1 * 300 * 4 / 24) = 55 pairs per (source, expert): kept = min(count, 55).
    for (int64_t c : x.layers()[i].counts) CHECK(c <= 55);
    const int64_t kept = std::accumulate(x.layers()[i].counts.begin(), x.layers()[i].counts.end(), int64_t{0});
    CHECK(kept + x.layers()[i].dropped == 8 * 300 * 4);
  }
  CHECK(differs);
}

TEST_CASE("auto picks counts only when nothing needs per-token records", "[models][routing][counts]") {
  const Architecture a = toy_arch(1, 16, 2);
  RoutingSpec s = routing("routing: {distribution: zipf}\n", a, 4);
  CHECK(s.sampler == Sampler::automatic);
  CHECK(resolve_sampler(s) == Sampler::counts);
  s.score_histograms = true;  // a schedule that reads gate scores
  CHECK(resolve_sampler(s) == Sampler::tokens);
  CHECK(needs_token_sampler(s) == "gate-score histograms are drawn per token");
  s.score_histograms = false;
  s.keep_scores = true;
  CHECK(resolve_sampler(s) == Sampler::tokens);
  s.sampler = Sampler::counts;
  CHECK_THROWS_AS(resolve_sampler(s), std::invalid_argument);
  RoutingSpec t = routing("routing: {distribution: zipf, sampler: tokens}\n", a, 4);
  CHECK(resolve_sampler(t) == Sampler::tokens);
  // The decoder refuses what counts cannot draw, at the key.
  for (const char* y : {"routing: {keep_scores: true, sampler: counts}\n",
                        "routing: {gate: {scores: softmax}, sampler: counts}\n"}) {
    Doc d(y);
    decode_routing(d.root.at("routing"), a, 4, ".");
    CHECK(d.diags.str().find("routing.sampler") != std::string::npos);
  }
}

TEST_CASE("counts vs per-token sampler at DeepSeek-V3's shape (figures for ARCHITECTURE.md)",
          "[models][routing][counts][slow]") {
  // 256 experts, top-8, 8 source ranks of 4,096 tokens on 8 EP ranks, 200 seeds, zipf s = 1.2 and a hot set
  // (16 experts, 60 %), one fixed ranking (steps of one base seed). Prints the figures ARCHITECTURE.md quotes; checks the same tolerances as above.
  const Architecture a = toy_arch(1, 256, 8);
  const Placement pl(256, 8);
  const int seeds = 200, R = 8, E = 256;
  const int64_t T = 4096;
  for (const char* y : {"routing: {distribution: zipf, s: 1.2", "routing: {distribution: hot, hot_experts: 16, hot_share: 0.6"}) {
    struct Moments {
      std::vector<double> s, s2;
      double imb = 0, imb_max = 0;
    };
    auto measure = [&](const char* sampler) {
      const RoutingSpec sp = routing(std::string(y) + ", sampler: " + sampler + "}\n", a, R);
      Moments m{std::vector<double>(E, 0), std::vector<double>(E, 0), 0, 0};
      for (int seed = 0; seed < seeds; ++seed) {
        const RoutingPlan p = generate_routing_step(sp, a, pl, T, kRankingSeed, seed);
        for (int e = 0; e < E; ++e) {
          double load = 0;
          for (int src = 0; src < R; ++src) load += static_cast<double>(p.count(0, src, e));
          m.s[static_cast<size_t>(e)] += load;
          m.s2[static_cast<size_t>(e)] += load * load;
        }
        m.imb += p.load_imbalance(0);
        m.imb_max = std::max(m.imb_max, p.load_imbalance(0));
      }
      return m;
    };
    const Moments tok = measure("tokens"), cnt = measure("counts");
    double vt_sum = 0, vc_sum = 0, worst_mean_z = 0, worst_var = 0;
    for (size_t e = 0; e < static_cast<size_t>(E); ++e) {
      const double mt = tok.s[e] / seeds, mc = cnt.s[e] / seeds;
      const double vt = tok.s2[e] / seeds - mt * mt, vc = cnt.s2[e] / seeds - mc * mc;
      worst_mean_z = std::max(worst_mean_z, std::abs(mt - mc) / std::sqrt((vt + vc) / seeds));
      worst_var = std::max(worst_var, std::abs(vc / vt - 1));
      vt_sum += vt;
      vc_sum += vc;
    }
    WARN(y << "}: pooled variance ratio counts/tokens " << vc_sum / vt_sum << "; worst expert mean difference "
           << worst_mean_z << " standard errors; worst per-expert variance ratio off by " << worst_var
           << "; mean max/mean rank load " << tok.imb / seeds << " (tokens) vs " << cnt.imb / seeds
           << " (counts); max " << tok.imb_max << " vs " << cnt.imb_max);
    CHECK(worst_mean_z < 5);
    CHECK(std::abs(vc_sum / vt_sum - 1) < 0.10);
    CHECK(std::abs(cnt.imb / tok.imb - 1) < 0.02);
  }
}
