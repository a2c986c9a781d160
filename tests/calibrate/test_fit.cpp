// Fitting logic of calibrate/fit. All data here is SYNTHETIC (generated from the model or written by
// hand); expected values are worked out by hand in the comments.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "fit/fit.hpp"

using namespace moesim::calibrate;

namespace {

// DeepSeek-V3 gate_up in bf16: n = 4096, k = 7168.
WorkModel v3_gate_up() {
  WorkModel w;
  w.flops_per_token = 2.0 * 4096 * 7168;  // 58,720,256 FLOP per token
  w.bytes_fixed = 4096.0 * 7168 * 2;      // weights: 58,720,256 bytes
  w.bytes_per_token = 7168 * 2 + 4096 * 2;  // input row + output row: 22,528 bytes
  w.gemm_n = 4096;
  w.tile_tokens = 128;
  w.tile_n = 128;
  w.sms = 132;
  return w;
}

const Peaks kPeaks{1e15, 4e12};  // 1 PFLOP/s, 4 TB/s

}  // namespace

TEST_CASE("roofline time with tile and wave quantisation, hand-worked") {
  const WorkModel w = v3_gate_up();
  const RooflineParams p{5e-6, 0.8, 0.9};
  // T = 200: rounded up to 256 tokens; tiles = 2 * 32 = 64 < 132 SMs -> no wave penalty.
  // flops = 58,720,256 * 256 = 15,032,385,536 -> / (0.8 * 1e15) = 18.79048192 us.
  // bytes = 58,720,256 + 22,528 * 200 = 63,225,856 -> / (0.9 * 4e12) = 17.5627378 us (memory side loses).
  CHECK(effective_flops(w, 200) == Approx(15032385536.0).epsilon(1e-12));
  CHECK(work_bytes(w, 200) == Approx(63225856.0).epsilon(1e-12));
  CHECK(roofline_time(w, kPeaks, p, 200) == Approx(5e-6 + 18.79048192e-6).epsilon(1e-9));
  // T = 16384: 128 token tiles * 32 n tiles = 4096 tiles; waves = ceil(4096 / 132) = 32 (31.03 rounded up),
  // so 32 * 132 = 4224 tile slots for 4096 tiles: factor 1.03125.
  // flops = 58,720,256 * 16384 * 1.03125 = 992,137,445,376 -> / 0.8e15 = 1240.17180672 us.
  CHECK(effective_flops(w, 16384) == Approx(992137445376.0).epsilon(1e-12));
  CHECK(roofline_time(w, kPeaks, p, 16384) == Approx(5e-6 + 1240.17180672e-6).epsilon(1e-9));
  // T = 1, memory-bound: bytes = 58,720,256 + 22,528 = 58,742,784 -> / 3.6e12 = 16.31744 us.
  CHECK(roofline_time(w, kPeaks, p, 1) == Approx(5e-6 + 58742784.0 / 3.6e12).epsilon(1e-9));
  CHECK(58742784.0 / 3.6e12 == Approx(16.31744e-6).epsilon(1e-6));
  // Non-GEMM (gemm_n = 0): no quantisation, flops = 10 * 3 = 30.
  WorkModel e;
  e.flops_per_token = 10;
  e.bytes_per_token = 100;
  CHECK(effective_flops(e, 3) == 30);
  CHECK(work_bytes(e, 3) == 300);
}

TEST_CASE("fit recovers alpha, eta_compute and eta_memory from a synthetic curve") {
  const WorkModel w = v3_gate_up();
  const RooflineParams truth{6e-6, 0.72, 0.85};
  std::vector<double> tokens{1, 8, 32, 64, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384}, secs;
  for (const double t : tokens) secs.push_back(roofline_time(w, kPeaks, truth, t));
  const FitResult r = fit_roofline(w, kPeaks, tokens, secs, RooflineParams{0, 0.5, 0.5});
  CHECK(r.params.alpha_s == Approx(6e-6).epsilon(1e-4));
  CHECK(r.params.eta_compute == Approx(0.72).epsilon(1e-4));
  CHECK(r.params.eta_memory == Approx(0.85).epsilon(1e-4));
  CHECK(r.in_sample_mape < 1e-6);
  CHECK(r.compute_bound_points > 0);
  CHECK(r.memory_bound_points > 0);
  // The fit trained on even-index points predicts the odd ones of an exact curve.
  CHECK(holdout_mape_fit_every_other(w, kPeaks, tokens, secs, RooflineParams{0, 0.5, 0.5}) < 1e-5);
}

TEST_CASE("fit tolerates +-1% alternating noise") {
  const WorkModel w = v3_gate_up();
  const RooflineParams truth{4e-6, 0.6, 0.9};
  std::vector<double> tokens{1, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}, secs;
  for (size_t i = 0; i < tokens.size(); ++i) {
    secs.push_back(roofline_time(w, kPeaks, truth, tokens[i]) * (i % 2 ? 1.01 : 0.99));
  }
  const FitResult r = fit_roofline(w, kPeaks, tokens, secs, RooflineParams{0, 0.5, 0.5});
  CHECK(r.params.eta_compute == Approx(0.6).epsilon(0.03));
  CHECK(r.params.eta_memory == Approx(0.9).epsilon(0.03));
  CHECK(r.in_sample_mape == Approx(0.01).margin(0.005));
}

TEST_CASE("an eta no point is bound by falls back to the class efficiency") {
  // Elementwise kernel: 1 FLOP and 6 bytes per token. At 1e15 FLOP/s vs 4e12 B/s the compute term is
  // 1e-15 s per token against 1.5e-12 s: memory-bound everywhere, eta_compute is not identified.
  WorkModel w;
  w.flops_per_token = 1;
  w.bytes_per_token = 6;
  const RooflineParams truth{3e-6, 1.0, 0.8};
  std::vector<double> tokens{1, 16, 256, 4096, 65536}, secs;
  for (const double t : tokens) secs.push_back(roofline_time(w, kPeaks, truth, t));
  const FitResult r = fit_roofline(w, kPeaks, tokens, secs, RooflineParams{0, 0.5, 0.7});
  CHECK(r.compute_bound_points == 0);
  CHECK(r.memory_bound_points == 5);
  CHECK(r.params.eta_compute == 0.5);  // the fallback, which keeps every point memory-bound
  CHECK(r.params.eta_memory == Approx(0.8).epsilon(1e-4));
  CHECK(r.params.alpha_s == Approx(3e-6).epsilon(1e-4));
}

TEST_CASE("linear interpolation in tokens: hand values and monotone where the data is") {
  const std::vector<double> t{1, 16, 128, 1024};
  const std::vector<double> s{1e-5, 1.2e-5, 3e-5, 2e-4};
  // 72 is halfway between 16 and 128: (1.2e-5 + 3e-5) / 2 = 2.1e-5.
  CHECK(interpolate(t, s, 72) == Approx(2.1e-5).epsilon(1e-12));
  CHECK(interpolate(t, s, 16) == Approx(1.2e-5).epsilon(1e-12));
  // 576 is halfway between 128 and 1024: (3e-5 + 2e-4) / 2 = 1.15e-4.
  CHECK(interpolate(t, s, 576) == Approx(1.15e-4).epsilon(1e-12));
  // Outside the range it clamps (the cost model switches to the fit there).
  CHECK(interpolate(t, s, 0.5) == 1e-5);
  CHECK(interpolate(t, s, 4096) == 2e-4);
  double prev = 0;
  for (double x = 1; x <= 1024; x += 0.5) {
    const double v = interpolate(t, s, x);
    REQUIRE(v >= prev);
    prev = v;
  }
  // Where the data falls (a dip between 16 and 128), the interpolant falls there and nowhere else.
  const std::vector<double> d{1e-5, 2e-5, 1.5e-5, 4e-5};
  CHECK(interpolate(t, d, 72) == Approx(1.75e-5).epsilon(1e-12));
  CHECK(interpolate(t, d, 8) > interpolate(t, d, 4));
  CHECK(interpolate(t, d, 500) > interpolate(t, d, 200));
}

TEST_CASE("held-out MAPE, leave-one-out over interior points, hand-worked") {
  // Points (1,1) (2,3) (3,4) (4,8).
  // Hold out (2,3): neighbours (1,1),(3,4) give 2.5 at x=2 -> |2.5-3|/3 = 1/6.
  // Hold out (3,4): neighbours (2,3),(4,8) give 5.5 at x=3 -> |5.5-4|/4 = 0.375.
  // MAPE = (1/6 + 0.375) / 2 = 0.2708333...
  CHECK(holdout_mape_loo({1, 2, 3, 4}, {1, 3, 4, 8}) == Approx((1.0 / 6 + 0.375) / 2).epsilon(1e-12));
  CHECK(holdout_mape_loo({1, 2, 3, 4}, {1, 3, 4, 8}) == Approx(0.2708333333).epsilon(1e-9));
  // A straight line is predicted exactly; two points leave nothing to hold out.
  CHECK(holdout_mape_loo({1, 2, 3}, {2, 4, 6}) == 0);
  CHECK(holdout_mape_loo({1, 2}, {2, 5}) == 0);
}

TEST_CASE("least-squares line and median, hand-worked") {
  // x = 1,2,3, y = 2,4,6.5: mean x 2, mean y 25/6; Sxy = (-1)(-13/6) + 0 + (1)(14/6) = 4.5; Sxx = 2.
  // slope 2.25, intercept 25/6 - 4.5 = -1/3.
  const Line l = fit_line({1, 2, 3}, {2, 4, 6.5});
  CHECK(l.slope == Approx(2.25).epsilon(1e-12));
  CHECK(l.intercept == Approx(-1.0 / 3).epsilon(1e-12));
  CHECK(median({3, 1, 2}) == 2);
  CHECK(median({4, 1, 3, 2}) == 2.5);
  CHECK_THROWS(fit_line({1, 1}, {2, 3}));
}
