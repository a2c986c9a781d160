// Shape-aware GEMM compute time (models/gemm_efficiency.hpp). Every expected value is worked by hand below
// for an H200-like GPU: 132 SMs, 989 TFLOP/s bf16, 4.8 TB/s, e_c = 0.79 measured on 8192^3.
#include <catch2/catch.hpp>

#include <stdexcept>

#include "models/gemm_efficiency.hpp"

using namespace moesim::models;

namespace {
constexpr int kSms = 132;
constexpr double kPeak = 989e12, kBw = 4.8e12, kEc = 0.79;
// k_overhead = 2 B * 989e12 / (2 * 4.8e12) = 206.0416667 steps of K.
constexpr double kK0 = 989.0 / 4.8;
// Reference 8192^3: 64 x 64 = 4096 tiles in ceil(4096 / 132) = 32 waves (wave factor 32 * 132 / 4096 =
// 1.03125), each tile (8192 + k0) / 8192 = 1.0251516 of its K loop: e_tile = 0.79 * 1.03125 * 1.0251516.
constexpr double kEtile = kEc * (32.0 * 132.0 / 4096.0) * ((8192.0 + kK0) / 8192.0);  // 0.835178
}  // namespace

TEST_CASE("gemm_timing: the derived k_overhead is out_bytes * peak / (2 * bw)", "[gemm_efficiency]") {
  CHECK(derived_k_overhead(kPeak, kBw) == Approx(206.0416667).epsilon(1e-9));
  CHECK(derived_k_overhead(2 * kPeak, kBw) == Approx(412.0833333).epsilon(1e-9));  // fp8: twice the peak
  CHECK(derived_k_overhead(0, kBw) == 0.0);
}

TEST_CASE("gemm_timing: the reference shape keeps its measured efficiency", "[gemm_efficiency]") {
  // By construction e_tile takes the reference shape's own losses out of e_c, so 8192^3 costs
  // 2 * 8192^3 / (0.79 * 989e12) = 1.40727 ms, exactly what the flat roofline charged.
  const GemmTiming t = gemm_timing(8192, 8192, 8192, kSms, kPeak, kBw, kEc, {});
  CHECK(t.tile_efficiency == Approx(kEtile).epsilon(1e-12));
  CHECK(t.tile_efficiency == Approx(0.835178).epsilon(1e-5));
  CHECK(t.compute_s == Approx(2.0 * 8192.0 * 8192.0 * 8192.0 / (kEc * kPeak)).epsilon(1e-12));
  CHECK(t.efficiency == Approx(kEc).epsilon(1e-12));
  CHECK(t.waves == 32);
  CHECK(t.split_k == 1);
}

TEST_CASE("gemm_timing: a small-N expert GEMM splits K and pays the per-tile overhead", "[gemm_efficiency]") {
  // Qwen3-30B-A3B down projection with 512 tokens: m = 512, n = 2048, k = 768.
  // tiles = ceil(512/128) * ceil(2048/128) = 4 * 16 = 64 < 132 SMs: split-K s = min(floor(132/64) = 2,
  // ceil(768/64) = 12) = 2, each split K/s = 384. One wave.
  // compute = 2 * 128 * 128 * (384 + 206.0417) * 132 / (989e12 * 0.835178) = 2.55215e9 / 8.25991e14 = 3.0898 us.
  // The flat roofline charged 2 * 512 * 2048 * 768 / (0.79 * 989e12) = 2.0615 us; the effective efficiency is
  // 1.61061e9 / (3.0898e-6 * 989e12) = 0.5271.
  const GemmTiming t = gemm_timing(512, 2048, 768, kSms, kPeak, kBw, kEc, {});
  CHECK(t.tiles == 64);
  CHECK(t.split_k == 2);
  CHECK(t.waves == 1);
  CHECK(t.k_overhead == Approx(kK0).epsilon(1e-12));
  const double expected = 2.0 * 128 * 128 * (384.0 + kK0) * 132 / (kPeak * kEtile);
  CHECK(t.compute_s == Approx(expected).epsilon(1e-12));
  CHECK(t.compute_s == Approx(3.0898e-6).epsilon(1e-4));
  CHECK(t.efficiency == Approx(0.5271).epsilon(1e-3));
}

TEST_CASE("gemm_timing: small K costs more per FLOP than large K at the same tiles", "[gemm_efficiency]") {
  // m = 16896 = 132 * 128 rows, n = 128: exactly 132 tiles, one full wave, no split. Per tile the K loop
  // costs (K + 206.04): K = 256 -> efficiency e_tile * 256 / 462.04 = 0.4627; K = 8192 -> e_tile * 8192 /
  // 8398.04 = 0.8147 (= 0.79 * 1.03125: only the reference's wave loss is missing here).
  const GemmTiming small = gemm_timing(16896, 128, 256, kSms, kPeak, kBw, kEc, {});
  const GemmTiming large = gemm_timing(16896, 128, 8192, kSms, kPeak, kBw, kEc, {});
  CHECK(small.waves == 1);
  CHECK(small.split_k == 1);
  CHECK(small.efficiency == Approx(kEtile * 256.0 / (256.0 + kK0)).epsilon(1e-12));
  CHECK(small.efficiency == Approx(0.4627).epsilon(1e-3));
  CHECK(large.efficiency == Approx(kEc * 1.03125).epsilon(1e-12));
}

TEST_CASE("gemm_timing: tile and wave quantisation with k_overhead 0", "[gemm_efficiency]") {
  GemmShapeParams p;
  p.k_overhead = 0;
  // Reference losses with k0 = 0: the wave factor only, e_tile = 0.79 * 1.03125 = 0.8146875.
  // m = 130 rows: 2 row tiles (tile quantisation pads to 256), n = 128 * 133 = 17024: 133 column tiles.
  // tiles = 266 -> ceil(266 / 132) = 3 waves of 132 tiles: time = 3 * 2 * 128 * 128 * 4096 * 132 /
  // (989e12 * 0.8146875) = 5.31502e10 / 8.05726e14 = 65.966 us.
  const GemmTiming t = gemm_timing(130, 17024, 4096, kSms, kPeak, kBw, kEc, p);
  CHECK(t.tile_efficiency == Approx(0.8146875).epsilon(1e-12));
  CHECK(t.tiles == 266);
  CHECK(t.waves == 3);
  CHECK(t.compute_s == Approx(3.0 * 2 * 128 * 128 * 4096.0 * 132 / (kPeak * 0.8146875)).epsilon(1e-12));
  CHECK(t.compute_s == Approx(65.966e-6).epsilon(1e-4));
}

TEST_CASE("gemm_timing: the split of K stops at one tile_k slice per split", "[gemm_efficiency]") {
  // m = n = k = 128: one tile; 132 idle SMs but K has only ceil(128 / 64) = 2 slices: s = 2, K/s = 64.
  const GemmTiming t = gemm_timing(128, 128, 128, kSms, kPeak, kBw, kEc, {});
  CHECK(t.split_k == 2);
  CHECK(t.compute_s == Approx(2.0 * 128 * 128 * (64.0 + kK0) * 132 / (kPeak * kEtile)).epsilon(1e-12));
}

TEST_CASE("gemm_timing: the tile efficiency is clamped to 1", "[gemm_efficiency]") {
  // e_c = 1 on the reference would need e_tile = 1.0572 > 1: clamped, so the reference shape then runs at
  // 1 / 1.0572 = 0.9459 of peak.
  const GemmTiming t = gemm_timing(8192, 8192, 8192, kSms, kPeak, kBw, 1.0, {});
  CHECK(t.tile_efficiency == 1.0);
  CHECK(t.efficiency == Approx(1.0 / (1.03125 * (8192.0 + kK0) / 8192.0)).epsilon(1e-12));
}

TEST_CASE("gemm_timing: bad shapes are rejected", "[gemm_efficiency]") {
  CHECK_THROWS_AS(gemm_timing(0, 128, 128, kSms, kPeak, kBw, kEc, {}), std::invalid_argument);
  CHECK_THROWS_AS(gemm_timing(128, 128, 128, 0, kPeak, kBw, kEc, {}), std::invalid_argument);
  CHECK_THROWS_AS(gemm_timing(128, 128, 128, kSms, kPeak, kBw, 1.5, {}), std::invalid_argument);
}
