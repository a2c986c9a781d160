// Multimodal request shapes (workload.modalities) and zero-weight experts in the samplers: expected values
// worked by hand below.
#include <catch2/catch.hpp>

#include <cmath>

#include "models/routing.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;

namespace {

Architecture toy(int experts, int k) {
  Doc d("model:\n  layers: 1\n  hidden: 64\n  expert_ffn: 128\n  routed_experts: " + std::to_string(experts) +
        "\n  top_k: " + std::to_string(k) + "\n  attention: {kind: mha, heads: 2, head_dim: 32}\n");
  Architecture a = decode_architecture(d.root.at("model"), kDataDir);
  REQUIRE(d.diags.str() == "");
  return a;
}

}  // namespace

TEST_CASE("hot_share 1 spreads the picks evenly over the hot experts and never on a cold one",
          "[models][routing][modalities]") {
  // E = 8, k = 1, hot experts {0, 1, 2} with all the mass: weights 1/3, 1/3, 1/3, 0 x 5. 2 ranks x 30000
  // tokens = 60000 picks: 20000 per hot expert on average, sd sqrt(60000 x 1/3 x 2/3) = 115; 6 sd = 700.
  // (Before the alias-table fix the five zero-weight columns all fell to expert 0: about 6.67/8 of the picks.)
  const Architecture a = toy(8, 1);
  Doc d("routing: {distribution: hot, hot_experts: [0, 1, 2], hot_share: 1}\n");
  const RoutingSpec s = decode_routing(d.root.at("routing"), a, 2, ".");
  REQUIRE(d.diags.str() == "");
  const RoutingPlan plan = generate_routing(s, a, Placement(8, 2), 30000, 3);
  for (int e = 0; e < 8; ++e) {
    const int64_t got = plan.count(0, 0, e) + plan.count(0, 1, e);
    INFO("expert " << e);
    if (e < 3) CHECK(std::abs(static_cast<double>(got) - 20000.0) < 700.0);
    else CHECK(got == 0);
  }
}

TEST_CASE("request runs: text then images, filling the rank's tokens, seeded per step", "[models][modalities]") {
  // 100 text tokens + 1..3 images of 50 tokens. T = 1000: requests of 150, 200 or 250 tokens until 1000 are
  // filled, the last one cut short. Every run alternates text (100, or what is left) and vision (images x 50).
  RequestShape r;
  r.text_tokens = 100;
  r.images_min = 1;
  r.images_max = 3;
  r.tokens_per_image = 50;
  const auto runs = request_runs(r, 1000, 42, 0, 0);
  int64_t sum = 0;
  bool want_vision = false;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto [n, vision] = runs[i];
    INFO("run " << i);
    CHECK(vision == want_vision);
    const bool last = i + 1 == runs.size();
    if (!vision) CHECK((n == 100 || last));
    if (vision) CHECK((last || (n % 50 == 0 && n >= 50 && n <= 150)));
    sum += n;
    want_vision = !want_vision;
  }
  CHECK(sum == 1000);
  // Deterministic in (seed, step, rank); another step or rank draws other image counts.
  CHECK(request_runs(r, 1000, 42, 0, 0) == runs);
  CHECK(request_runs(r, 1000, 42, 1, 0) != runs);
  CHECK(request_runs(r, 1000, 42, 0, 1) != runs);
  // A fixed image count makes the vision share exact: 100 text + 2 x 50 vision per request, T = 1000 = 5
  // requests: 500 vision tokens.
  r.images_min = r.images_max = 2;
  int64_t vision = 0;
  for (const auto& [n, v] : request_runs(r, 1000, 42, 0, 0)) vision += v ? n : 0;
  CHECK(vision == 500);
}
