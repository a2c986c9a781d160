// The calibration plan (what --dry-run prints): shapes from the built-in model table, presets, estimate.
#include <catch2/catch.hpp>

#include <algorithm>

#include "common/plan.hpp"

using namespace moesim::calibrate;

namespace {
const GemmShape* find_shape(const std::vector<GemmShape>& v, const std::string& kernel, long long n, long long k) {
  for (const auto& s : v) {
    if (s.kernel == kernel && s.n == n && s.k == k) return &s;
  }
  return nullptr;
}
}  // namespace

TEST_CASE("quick plan: expert shapes, sub-expert splits, sweep and estimate") {
  const Plan p = make_plan("quick");
  // DeepSeek-V3: hidden 7168, ffn 2048. gate_up n = 2 * 2048 = 4096, k = 7168; down n = 7168, k = 2048.
  REQUIRE(find_shape(p.gemm_shapes, "expert_gate_up", 4096, 7168));
  REQUIRE(find_shape(p.gemm_shapes, "expert_down", 7168, 2048));
  // Split into P = 2: ffn 1024 -> gate_up n = 2048; P = 4: ffn 512 -> down k = 512.
  CHECK(find_shape(p.gemm_shapes, "expert_gate_up", 2048, 7168)->split == 2);
  CHECK(find_shape(p.gemm_shapes, "expert_down", 7168, 512)->split == 4);
  // Mixtral gate_up: n = 2 * 14336 = 28672, k = 4096.
  CHECK(find_shape(p.gemm_shapes, "expert_gate_up", 28672, 4096));
  // Quick has 4 models, splits only for DeepSeek-V3: (4 + 2) * 2 = 12 shapes.
  CHECK(p.gemm_shapes.size() == 12);
  CHECK(p.gemm_tokens.front() == 1);
  CHECK(p.gemm_tokens.back() == 16384);
  CHECK(std::is_sorted(p.gemm_tokens.begin(), p.gemm_tokens.end()));
  CHECK(p.samples >= 5);
  CHECK(p.min_sample_s >= 200e-6);
  // The quick preset must finish in under 4 minutes on an H200: budget and estimate both below 240 s.
  CHECK(p.budget_s < 240);
  CHECK(estimate_plan(p).total() < 240);
  CHECK(describe_plan(p).find("estimated device time") != std::string::npos);
}

TEST_CASE("full plan: all seven models, shared shapes measured once") {
  const Plan p = make_plan("full");
  // DeepSeek-V2-Lite and Kimi-VL-A3B share hidden 2048 / ffn 1408: gate_up n = 2816, k = 2048, once.
  const GemmShape* s = find_shape(p.gemm_shapes, "expert_gate_up", 2816, 2048);
  REQUIRE(s);
  CHECK(s->models == std::vector<std::string>{"DeepSeek-V2-Lite", "Kimi-VL-A3B"});
  // Qwen3-235B split P = 2: ffn 1536 / 2 = 768 -> gate_up n = 1536, k = 4096.
  CHECK(find_shape(p.gemm_shapes, "expert_gate_up", 1536, 4096));
  // 1.5x midpoints: 3 and 24576 is over 16384 so the sweep ends at 16384.
  CHECK(std::find(p.gemm_tokens.begin(), p.gemm_tokens.end(), 3) != p.gemm_tokens.end());
  CHECK(p.gemm_tokens.back() == 16384);
  CHECK_THROWS_WITH(make_plan("fast"), "unknown preset 'fast' (expected quick or full)");
}
