#include "fit.hpp"

#include "models/roofline.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace moesim::calibrate {

double effective_flops(const WorkModel& w, double tokens) {
  // The cost model extrapolates with the same function (models/roofline.hpp).
  return models::wave_quantised_flops(w.flops_per_token, tokens, w.gemm_n, w.sms, w.tile_tokens, w.tile_n);
}

double work_bytes(const WorkModel& w, double tokens) { return w.bytes_fixed + w.bytes_per_token * tokens; }

double roofline_time(const WorkModel& w, const Peaks& peaks, const RooflineParams& p, double tokens) {
  const double compute = effective_flops(w, tokens) / (p.eta_compute * peaks.flops_per_s);
  const double memory = work_bytes(w, tokens) / (p.eta_memory * peaks.bytes_per_s);
  return p.alpha_s + std::max(compute, memory);
}

namespace {

struct Problem {
  std::vector<double> xc;  // compute seconds at eta_c = 1
  std::vector<double> xm;  // memory seconds at eta_m = 1
  std::vector<double> y;   // measured seconds
};

// Objective (sum of squared relative errors) at log10 etas, alpha solved in closed form:
// d/d alpha sum((alpha + m_i - y_i) / y_i)^2 = 0  =>  alpha = sum((y_i - m_i) / y_i^2) / sum(1 / y_i^2).
double objective(const Problem& pr, double log_ec, double log_em, double* alpha_out) {
  const double ec = std::pow(10.0, log_ec);
  const double em = std::pow(10.0, log_em);
  double num = 0, den = 0;
  for (size_t i = 0; i < pr.y.size(); ++i) {
    const double m = std::max(pr.xc[i] / ec, pr.xm[i] / em);
    num += (pr.y[i] - m) / (pr.y[i] * pr.y[i]);
    den += 1.0 / (pr.y[i] * pr.y[i]);
  }
  const double alpha = std::max(0.0, num / den);
  double sum = 0;
  for (size_t i = 0; i < pr.y.size(); ++i) {
    const double m = std::max(pr.xc[i] / ec, pr.xm[i] / em);
    const double r = (alpha + m - pr.y[i]) / pr.y[i];
    sum += r * r;
  }
  if (alpha_out) *alpha_out = alpha;
  return sum;
}

}  // namespace

FitResult fit_roofline(const WorkModel& w, const Peaks& peaks, const std::vector<double>& tokens,
                       const std::vector<double>& seconds, const RooflineParams& fallback) {
  if (tokens.size() != seconds.size() || tokens.empty()) {
    throw std::invalid_argument("fit_roofline: need matching, non-empty tokens and seconds");
  }
  if (peaks.flops_per_s <= 0 || peaks.bytes_per_s <= 0) {
    throw std::invalid_argument("fit_roofline: peaks must be positive");
  }
  Problem pr;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!(seconds[i] > 0)) throw std::invalid_argument("fit_roofline: times must be positive");
    pr.xc.push_back(effective_flops(w, tokens[i]) / peaks.flops_per_s);
    pr.xm.push_back(work_bytes(w, tokens[i]) / peaks.bytes_per_s);
    pr.y.push_back(seconds[i]);
  }
  // Etas live in [1e-4, 1]: log10 in [-4, 0].
  constexpr double lo = -4.0, hi = 0.0;
  constexpr int grid = 81;
  // When compute and memory terms are proportional over all points (elementwise kernels: both linear in
  // tokens), either side explains the data equally well. Searching from the highest etas down and moving
  // only on a strict improvement settles such ties on the highest efficiencies, i.e. the memory-bound
  // reading for memory kernels, and the unidentified eta is then reported as such below.
  const auto better = [](double f, double best) { return f < best * (1 - 1e-12); };
  double best = std::numeric_limits<double>::infinity(), best_c = 0, best_m = 0;
  for (int i = grid - 1; i >= 0; --i) {
    for (int j = grid - 1; j >= 0; --j) {
      const double c = lo + (hi - lo) * i / (grid - 1);
      const double m = lo + (hi - lo) * j / (grid - 1);
      const double f = objective(pr, c, m, nullptr);
      if (better(f, best)) {
        best = f;
        best_c = c;
        best_m = m;
      }
    }
  }
  // Pattern search over the 8 neighbours (diagonals help along the kink of the max), halving the step.
  double step = (hi - lo) / (grid - 1);
  while (step > 1e-13) {
    bool moved = false;
    for (int dc = -1; dc <= 1; ++dc) {
      for (int dm = -1; dm <= 1; ++dm) {
        if (dc == 0 && dm == 0) continue;
        const double c = std::clamp(best_c + dc * step, lo, hi);
        const double m = std::clamp(best_m + dm * step, lo, hi);
        const double f = objective(pr, c, m, nullptr);
        if (better(f, best)) {
          best = f;
          best_c = c;
          best_m = m;
          moved = true;
        }
      }
    }
    if (!moved) step /= 2;
  }
  FitResult r;
  objective(pr, best_c, best_m, &r.params.alpha_s);
  r.params.eta_compute = std::pow(10.0, best_c);
  r.params.eta_memory = std::pow(10.0, best_m);
  for (size_t i = 0; i < pr.y.size(); ++i) {
    if (pr.xc[i] / r.params.eta_compute > pr.xm[i] / r.params.eta_memory) {
      ++r.compute_bound_points;
    } else {
      ++r.memory_bound_points;
    }
  }
  // An eta no point is bound by is not identified: any value at or above the smallest one that keeps every
  // point on the other side fits equally well. Take the fallback, raised to that smallest value if needed.
  if (r.compute_bound_points == 0) {
    double need = 0;
    for (size_t i = 0; i < pr.y.size(); ++i) need = std::max(need, pr.xc[i] / (pr.xm[i] / r.params.eta_memory));
    r.params.eta_compute = std::min(1.0, std::max(fallback.eta_compute, need));
  }
  if (r.memory_bound_points == 0) {
    double need = 0;
    for (size_t i = 0; i < pr.y.size(); ++i) {
      need = std::max(need, pr.xm[i] / (pr.xc[i] / r.params.eta_compute));
    }
    r.params.eta_memory = std::min(1.0, std::max(fallback.eta_memory, need));
  }
  double sum = 0;
  for (size_t i = 0; i < pr.y.size(); ++i) {
    sum += std::abs(roofline_time(w, peaks, r.params, tokens[i]) - pr.y[i]) / pr.y[i];
  }
  r.in_sample_mape = sum / static_cast<double>(pr.y.size());
  return r;
}

double interpolate(const std::vector<double>& tokens, const std::vector<double>& seconds, double t) {
  if (tokens.empty() || tokens.size() != seconds.size()) {
    throw std::invalid_argument("interpolate: need matching, non-empty tokens and seconds");
  }
  if (t <= tokens.front()) return seconds.front();
  if (t >= tokens.back()) return seconds.back();
  const auto it = std::upper_bound(tokens.begin(), tokens.end(), t);
  const size_t hi = static_cast<size_t>(it - tokens.begin());
  const size_t lo = hi - 1;
  const double f = (t - tokens[lo]) / (tokens[hi] - tokens[lo]);
  return seconds[lo] + f * (seconds[hi] - seconds[lo]);
}

double holdout_mape_loo(const std::vector<double>& tokens, const std::vector<double>& seconds) {
  if (tokens.size() < 3) return 0;
  double sum = 0;
  for (size_t i = 1; i + 1 < tokens.size(); ++i) {
    const std::vector<double> t{tokens[i - 1], tokens[i + 1]};
    const std::vector<double> s{seconds[i - 1], seconds[i + 1]};
    sum += std::abs(interpolate(t, s, tokens[i]) - seconds[i]) / seconds[i];
  }
  return sum / static_cast<double>(tokens.size() - 2);
}

double holdout_mape_fit_every_other(const WorkModel& w, const Peaks& peaks, const std::vector<double>& tokens,
                                    const std::vector<double>& seconds, const RooflineParams& fallback) {
  std::vector<double> ft, fs, ht, hs;
  for (size_t i = 0; i < tokens.size(); ++i) {
    (i % 2 == 0 ? ft : ht).push_back(tokens[i]);
    (i % 2 == 0 ? fs : hs).push_back(seconds[i]);
  }
  if (ft.size() < 2 || ht.empty()) return std::numeric_limits<double>::quiet_NaN();
  const FitResult r = fit_roofline(w, peaks, ft, fs, fallback);
  double sum = 0;
  for (size_t i = 0; i < ht.size(); ++i) sum += std::abs(roofline_time(w, peaks, r.params, ht[i]) - hs[i]) / hs[i];
  return sum / static_cast<double>(ht.size());
}

Line fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 2) throw std::invalid_argument("fit_line: need >= 2 matching points");
  const double n = static_cast<double>(x.size());
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    sy += y[i];
    sxx += x[i] * x[i];
    sxy += x[i] * y[i];
  }
  const double den = n * sxx - sx * sx;
  if (den == 0) throw std::invalid_argument("fit_line: x values are all equal");
  Line l;
  l.slope = (n * sxy - sx * sy) / den;
  l.intercept = (sy - l.slope * sx) / n;
  return l;
}

double median(std::vector<double> v) {
  if (v.empty()) throw std::invalid_argument("median of nothing");
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

}  // namespace moesim::calibrate
