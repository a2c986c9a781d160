#include "models/routing_counts.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace moesim::models {

namespace {

// ln(n!) : a table of running sums below 1024, Stirling's series above (its first omitted term,
// 1 / (1680 n^7), is below 1e-23 there).
double log_factorial(int64_t n) {
  static const std::array<double, 1024> table = [] {
    std::array<double, 1024> t{};
    double s = 0;
    for (size_t i = 1; i < t.size(); ++i) t[i] = (s += std::log(static_cast<double>(i)));
    return t;
  }();
  if (n < static_cast<int64_t>(table.size())) return table[static_cast<size_t>(n)];
  const double x = static_cast<double>(n) + 1.0, x2 = x * x;
  return (x - 0.5) * std::log(x) - x + 0.5 * std::log(2.0 * M_PI) + 1.0 / (12.0 * x) - 1.0 / (360.0 * x * x2) +
         1.0 / (1260.0 * x * x2 * x2);
}

// Inversion (sequential search from 0), for n p < 10: the expected number of steps is about n p + 1.
int64_t binomial_inversion(Rng& rng, int64_t n, double p) {
  const double q = 1.0 - p, s = p / q, a = (static_cast<double>(n) + 1.0) * s;
  const double r0 = std::exp(static_cast<double>(n) * std::log1p(-p));  // P(X = 0) >= e^-10.5 here
  for (;;) {
    double u = rng.uniform(), r = r0;
    int64_t x = 0;
    while (u > r && x < n) {
      u -= r;
      ++x;
      r *= a / static_cast<double>(x) - s;
    }
    if (u <= r) return x;  // else rounding left mass beyond n: draw again
  }
}

// Transformed rejection with squeeze (W. Hoermann, "The generation of binomial random variates", J. Statist.
// Comput. Simul. 46, 1993), for p <= 1/2 and n p >= 10. The squeeze accepts most draws without a logarithm;
// the others are accepted by comparing with the exact log-probability ratio log f(x) / f(m), m the mode.
int64_t binomial_btrs(Rng& rng, int64_t n, double p) {
  const double nd = static_cast<double>(n), q = 1.0 - p;
  const double spq = std::sqrt(nd * p * q);
  const double b = 1.15 + 2.53 * spq;
  const double a = -0.0873 + 0.0248 * b + 0.01 * p;
  const double c = nd * p + 0.5;
  const double alpha = (2.83 + 5.1 / b) * spq;
  const double v_r = 0.92 - 4.2 / b;
  const double lpq = std::log(p / q);
  const int64_t m = static_cast<int64_t>(std::floor((nd + 1.0) * p));
  const double log_fm = -log_factorial(m) - log_factorial(n - m);
  for (;;) {
    const double u = rng.uniform() - 0.5;
    double v = rng.uniform();
    const double us = 0.5 - std::abs(u);
    if (us <= 0.0) continue;
    const double kx = std::floor((2.0 * a / us + b) * u + c);
    if (!(kx >= 0.0) || kx > nd) continue;
    const int64_t x = static_cast<int64_t>(kx);
    if (us >= 0.07 && v <= v_r) return x;
    v = std::log(v * alpha / (a / (us * us) + b));
    if (v <= (-log_factorial(x) - log_factorial(n - x)) - log_fm + static_cast<double>(x - m) * lpq) return x;
  }
}

// 5-point Gauss-Legendre on [-1, 1].
constexpr std::array<double, 5> kGlNode = {-0.9061798459386640, -0.5384693101056831, 0.0, 0.5384693101056831,
                                           0.9061798459386640};
constexpr std::array<double, 5> kGlWeight = {0.2369268850561891, 0.4786286704993665, 0.5688888888888889,
                                             0.4786286704993665, 0.2369268850561891};

// The integral of the header comment over n experts of rates p (sum 1), 1 < k < n.
std::vector<double> inclusion_integral(const std::vector<double>& p, int k) {
  const size_t n = p.size(), K = static_cast<size_t>(k);
  std::vector<double> pi(n, 0.0);
  const double t_lo = 1e-7;
  // Head [0, t_lo]: P(N_{-e} <= k - 1) = 1 - O(t_lo^k), so the integrand is p_e exp(-p_e t).
  for (size_t e = 0; e < n; ++e) pi[e] = -std::expm1(-p[e] * t_lo);
  const double p_min = *std::min_element(p.begin(), p.end());
  const double t_hi = 80.0 / p_min;  // exp(-80): nothing of any expert's clock is left
  const double panel = std::log(10.0) / 8.0;
  const int panels = static_cast<int>(std::ceil(std::log(t_hi / t_lo) / panel));
  // pre[i * K + d]: coefficient of z^d in prod_{f < i} (q_f + a_f z); suf likewise over f >= i, cumulated in d.
  std::vector<double> pre((n + 1) * K), suf((n + 1) * K);
  std::vector<double> q(n), a(n);
  for (int s = 0; s < panels; ++s) {
    const double y0 = std::log(t_lo) + s * panel;
    bool done = true;
    for (size_t g = 0; g < kGlNode.size(); ++g) {
      const double t = std::exp(y0 + 0.5 * panel * (kGlNode[g] + 1.0));
      const double wq = 0.5 * panel * kGlWeight[g] * t;  // dt = t dy
      for (size_t f = 0; f < n; ++f) {
        q[f] = std::exp(-p[f] * t);
        a[f] = -std::expm1(-p[f] * t);
      }
      std::fill(pre.begin(), pre.begin() + static_cast<std::ptrdiff_t>(K), 0.0);
      pre[0] = 1.0;
      for (size_t f = 0; f < n; ++f) {
        const double* in = &pre[f * K];
        double* out = &pre[(f + 1) * K];
        out[0] = in[0] * q[f];
        for (size_t d = 1; d < K; ++d) out[d] = in[d] * q[f] + in[d - 1] * a[f];
      }
      std::fill(suf.begin() + static_cast<std::ptrdiff_t>(n * K), suf.end(), 0.0);
      suf[n * K] = 1.0;
      for (size_t f = n; f-- > 0;) {
        const double* in = &suf[(f + 1) * K];
        double* out = &suf[f * K];
        out[0] = in[0] * q[f];
        for (size_t d = 1; d < K; ++d) out[d] = in[d] * q[f] + in[d - 1] * a[f];
      }
      // Cumulate the suffixes in d: suf[i][d] = P(at most d of the experts f >= i arrived).
      for (size_t i = 0; i <= n; ++i)
        for (size_t d = 1; d < K; ++d) suf[i * K + d] += suf[i * K + d - 1];
      for (size_t e = 0; e < n; ++e) {
        // P(N_{-e} <= k - 1) = sum_i pre_e[i] * P(suffix beyond e <= k - 1 - i).
        double G = 0;
        const double* pe = &pre[e * K];
        const double* se = &suf[(e + 1) * K];
        for (size_t i = 0; i < K; ++i) G += pe[i] * se[K - 1 - i];
        pi[e] += wq * p[e] * q[e] * G;
        // What is left of e's integral beyond t is at most G(t) exp(-p_e t) (G only decreases).
        if (G * q[e] > 1e-16) done = false;
      }
    }
    if (done) break;
  }
  return pi;
}

}  // namespace

std::vector<double> inclusion_probabilities(const std::vector<double>& w, int k) {
  const size_t E = w.size();
  std::vector<size_t> pos;  // experts of positive weight, heaviest first (ties: lower id first)
  for (size_t e = 0; e < E; ++e)
    if (w[e] > 0.0) pos.push_back(e);
  if (k < 1 || pos.size() < static_cast<size_t>(k))
    throw std::invalid_argument("inclusion probabilities need at least top_k experts of positive weight");
  std::stable_sort(pos.begin(), pos.end(), [&](size_t x, size_t y) { return w[x] > w[y]; });
  std::vector<double> sorted(pos.size());
  double total = 0;
  for (size_t i = 0; i < pos.size(); ++i) total += (sorted[i] = w[pos[i]]);
  for (double& x : sorted) x /= total;

  static std::mutex mu;
  static std::map<std::pair<int, std::vector<double>>, std::vector<double>> cache;
  std::vector<double> pi_sorted;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache.find({k, sorted}); it != cache.end()) pi_sorted = it->second;
  }
  if (pi_sorted.empty()) {
    const size_t n = sorted.size();
    if (static_cast<size_t>(k) == n) {
      pi_sorted.assign(n, 1.0);
    } else if (k == 1) {
      pi_sorted = sorted;
    } else if (sorted.front() == sorted.back()) {
      pi_sorted.assign(n, static_cast<double>(k) / static_cast<double>(n));
    } else {
      pi_sorted = inclusion_integral(sorted, k);
      // Equal weights have equal probabilities: average over runs of ties (removes rounding differences).
      for (size_t i = 0; i < n;) {
        size_t j = i;
        double s = 0;
        while (j < n && sorted[j] == sorted[i]) s += pi_sorted[j++];
        for (size_t x = i; x < j; ++x) pi_sorted[x] = s / static_cast<double>(j - i);
        i = j;
      }
      // The quadrature's error is ~1e-12; normalising to sum k removes it, and anything larger is a bug.
      const double sum = std::accumulate(pi_sorted.begin(), pi_sorted.end(), 0.0);
      if (std::abs(sum - k) > 1e-6 * k) throw std::logic_error("inclusion probabilities do not sum to top_k");
      for (double& x : pi_sorted) x = std::min(1.0, x * k / sum);
    }
    std::lock_guard<std::mutex> lock(mu);
    cache.emplace(std::make_pair(k, sorted), pi_sorted);
  }
  std::vector<double> pi(E, 0.0);
  for (size_t i = 0; i < pos.size(); ++i) pi[pos[i]] = pi_sorted[i];
  return pi;
}

int64_t binomial(Rng& rng, int64_t n, double p) {
  if (n <= 0 || !(p > 0.0)) return 0;
  if (p >= 1.0) return n;
  const bool flip = p > 0.5;
  const double pp = flip ? 1.0 - p : p;
  const int64_t x = static_cast<double>(n) * pp < 10.0 ? binomial_inversion(rng, n, pp) : binomial_btrs(rng, n, pp);
  return flip ? n - x : x;
}

void sample_pair_counts(Rng& rng, const std::vector<double>& pi, int k, int64_t T, int64_t* counts) {
  const size_t E = pi.size();
  if (T <= 0) return;
  if (k == 1) {
    // Multinomial(T, pi) by conditional binomials: exact.
    int64_t rem = T;
    double mass = 1.0;
    size_t last = E;
    for (size_t e = 0; e < E; ++e)
      if (pi[e] > 0.0) last = e;
    for (size_t e = 0; e < E && rem > 0; ++e) {
      if (!(pi[e] > 0.0)) continue;
      const int64_t c = e == last ? rem : binomial(rng, rem, std::min(1.0, pi[e] / mass));
      counts[e] += c;
      rem -= c;
      mass -= pi[e];
    }
    return;
  }
  std::vector<int64_t> c(E, 0);
  int64_t sum = 0;
  for (size_t e = 0; e < E; ++e) sum += (c[e] = binomial(rng, T, pi[e]));
  // Bring the sum to T * k: the difference goes (multinomially) to the experts in proportion to their
  // variances pi (1 - pi), each kept within [0, T]; what a full (or empty) expert cannot take goes round again.
  int64_t delta = T * k - sum;
  std::vector<double> d(E);
  for (int round = 0; delta != 0; ++round) {
    const bool add = delta > 0;
    double dsum = 0;
    for (size_t e = 0; e < E; ++e) {
      const bool room = add ? c[e] < T : c[e] > 0;
      d[e] = room && pi[e] > 0.0 ? pi[e] * (1.0 - pi[e]) : 0.0;
      dsum += d[e];
    }
    int64_t rem = add ? delta : -delta;
    if (!(dsum > 0.0) || round >= 64) {
      // Every expert with room has pi 1 (or rounding kept the rounds going): fill the room in expert order.
      for (size_t e = 0; e < E && rem > 0; ++e) {
        if (!(pi[e] > 0.0)) continue;
        const int64_t take = std::min(rem, add ? T - c[e] : c[e]);
        c[e] += add ? take : -take;
        rem -= take;
      }
      if (rem != 0) throw std::logic_error("pair counts cannot reach tokens x top_k");
      break;
    }
    for (size_t e = 0; e < E && rem > 0; ++e) {
      if (d[e] <= 0.0) continue;
      int64_t x = binomial(rng, rem, std::min(1.0, d[e] / dsum));
      dsum -= d[e];
      x = std::min(x, add ? T - c[e] : c[e]);
      c[e] += add ? x : -x;
      rem -= x;
      delta += add ? -x : x;
    }
  }
  for (size_t e = 0; e < E; ++e) counts[e] += c[e];
}

}  // namespace moesim::models
