// Fitting logic of moesim-calibrate-fit: measured tables interpolated in tokens (primary model), the
// roofline-with-waves fit used beyond the measured range, and held-out errors.
#pragma once

#include <string>
#include <vector>

#include "models/profile.hpp"

namespace moesim::calibrate {

// What one kernel execution does as a function of tokens T (or rows: the measurement's axis).
struct WorkModel {
  double flops_per_token = 0;  // FLOP per token
  double bytes_fixed = 0;      // bytes moved regardless of T (weights), bytes
  double bytes_per_token = 0;  // bytes per token, bytes
  long long gemm_n = 0;        // GEMM output columns; 0 = not a GEMM (no tile or wave quantisation)
  int tile_tokens = 128;       // GEMM tile along tokens
  int tile_n = 128;            // GEMM tile along n
  int sms = 132;               // streaming multiprocessors (tiles run one per SM per wave)
};

// The hardware peaks a fit is relative to.
struct Peaks {
  double flops_per_s = 0;  // dense tensor peak of the dtype, FLOP/s
  double bytes_per_s = 0;  // memory bandwidth, bytes/s
};

// alpha_s: fixed cost per execution (launch, prologue), s; eta_compute / eta_memory: fraction of the compute
// peak / memory bandwidth reached, (0, 1]. The profile's own table fit, so a fit is stored as it is.
using RooflineParams = models::TableFit;

// FLOP charged to the compute term at T tokens. For a GEMM, tokens are rounded up to the tile and the
// tiles (ceil(T/tile_tokens) * ceil(n/tile_n)) run in waves of `sms`: a partial last wave costs a full
// one. Below one wave (tiles < sms) cuBLAS splits k across SMs, so no wave penalty is charged there.
double effective_flops(const WorkModel& w, double tokens);
double work_bytes(const WorkModel& w, double tokens);

// t(T) = alpha + max(flops(T) / (eta_c * P), bytes(T) / (eta_m * BW)), seconds.
double roofline_time(const WorkModel& w, const Peaks& peaks, const RooflineParams& p, double tokens);

struct FitResult {
  RooflineParams params;
  int compute_bound_points = 0;  // points where the compute term is the larger one at the fit
  int memory_bound_points = 0;
  double in_sample_mape = 0;     // mean |pred - y| / y over the fitted points
};

// Least squares on relative error over (alpha >= 0, eta in [1e-4, 1]): alpha in closed form for each
// (eta_c, eta_m), a log-spaced grid over the etas, then a pattern search to convergence. An eta that no
// point is bound by cannot be identified: it is left at `fallback` (and the bound counts say so).
FitResult fit_roofline(const WorkModel& w, const Peaks& peaks, const std::vector<double>& tokens,
                       const std::vector<double>& seconds, const RooflineParams& fallback);

// Linear interpolation in tokens between measured points (tokens strictly increasing). Outside the range
// it clamps to the end value (callers use the fit there). Linear pieces keep it monotone where the data is.
double interpolate(const std::vector<double>& tokens, const std::vector<double>& seconds, double t);

// Held-out error of the table: leave-one-out over interior points (each interior point predicted by linear
// interpolation between its neighbours; end points cannot be held out without extrapolating). Mean of
// |pred - y| / y; 0 when there are fewer than 3 points.
double holdout_mape_loo(const std::vector<double>& tokens, const std::vector<double>& seconds);

// Held-out error of the fit: fit on even-index points, report the MAPE on odd-index points.
double holdout_mape_fit_every_other(const WorkModel& w, const Peaks& peaks, const std::vector<double>& tokens,
                                    const std::vector<double>& seconds, const RooflineParams& fallback);

// Least-squares slope and intercept of y = a + b x (used for launch overhead from bursts).
struct Line {
  double intercept = 0;
  double slope = 0;
};
Line fit_line(const std::vector<double>& x, const std::vector<double>& y);

double median(std::vector<double> v);

}  // namespace moesim::calibrate
