#include "models/gemm_efficiency.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <stdexcept>

namespace moesim::models {

double derived_k_overhead(double peak_flops, double memory_bandwidth, double out_bytes) {
  if (peak_flops <= 0 || memory_bandwidth <= 0) return 0.0;
  return out_bytes * peak_flops / (2.0 * memory_bandwidth);
}

namespace {

struct Shape {
  double tiles, waves, split, k_per_split;
};

// Points 1, 2 and 4 of the header: tiles, waves and the split of K below one wave.
Shape quantise(double m, double n, double k, int sms, const GemmShapeParams& p) {
  Shape s;
  s.tiles = std::ceil(m / p.tile_m) * std::ceil(n / p.tile_n);
  if (s.tiles >= sms) {
    s.waves = std::ceil(s.tiles / sms);
    s.split = 1;
  } else {
    s.waves = 1;
    s.split = std::max(1.0, std::min(std::floor(sms / s.tiles), std::ceil(k / p.tile_k)));
  }
  s.k_per_split = k / s.split;
  return s;
}

// Seconds of the quantised work at tile efficiency 1: waves * 2 tm tn (K/s + k0) / (peak / sms).
double unit_seconds(const Shape& s, double k0, int sms, double peak, const GemmShapeParams& p) {
  return s.waves * 2.0 * p.tile_m * p.tile_n * (s.k_per_split + k0) * sms / peak;
}

}  // namespace

GemmTiming gemm_timing(int64_t m, int64_t n, int64_t k, int sms, double peak_flops, double memory_bandwidth,
                       double eff_compute, const GemmShapeParams& p) {
  if (m < 1 || n < 1 || k < 1)
    throw std::invalid_argument(fmt::format("gemm_timing: shape {} x {} x {} must be positive", m, n, k));
  if (sms < 1 || peak_flops <= 0 || eff_compute <= 0 || eff_compute > 1)
    throw std::invalid_argument("gemm_timing: needs sms >= 1, a positive peak and 0 < e_c <= 1");
  if (p.tile_m < 1 || p.tile_n < 1 || p.tile_k < 1 || p.reference < 1)
    throw std::invalid_argument("gemm_timing: tiles and the reference shape must be positive");
  GemmTiming t;
  t.k_overhead = p.k_overhead >= 0 ? p.k_overhead : derived_k_overhead(peak_flops, memory_bandwidth);
  // Point 5: e_c is the measured efficiency of the reference shape, losses included; the tile efficiency is
  // what remains once the model's own losses of that shape are taken out.
  const double r = static_cast<double>(p.reference);
  const Shape ref = quantise(r, r, r, sms, p);
  const double ref_ideal_s = 2.0 * r * r * r / peak_flops;
  t.tile_efficiency = std::min(1.0, eff_compute * unit_seconds(ref, t.k_overhead, sms, peak_flops, p) / ref_ideal_s);
  const Shape s = quantise(static_cast<double>(m), static_cast<double>(n), static_cast<double>(k), sms, p);
  t.tiles = s.tiles;
  t.waves = s.waves;
  t.split_k = s.split;
  t.compute_s = unit_seconds(s, t.k_overhead, sms, peak_flops, p) / t.tile_efficiency;
  t.efficiency = 2.0 * static_cast<double>(m) * n * k / (t.compute_s * peak_flops);
  return t;
}

}  // namespace moesim::models
