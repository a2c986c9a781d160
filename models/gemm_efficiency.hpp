// Shape-aware GEMM compute time for roofline (datasheet / derived) profiles.
//
// A datasheet profile gives one GEMM compute efficiency e_c, measured on one large GEMM (the reference shape,
// R x R x R; 8192^3 for every shipped profile, see models/profiles/*.yaml). Applied as-is to every shape it
// makes small expert GEMMs far too fast. This model charges what the tiled GEMM algorithm does on any shape
// (NVIDIA, "Matrix Multiplication Background User's Guide", DU-09799-001, sections 2.1 "GPU implementation"
// and 3 "Dimension quantization effects"): the output is cut into tile_m x tile_n tiles, each computed by one
// SM looping over K in slices of tile_k, and the tiles run in waves of `sms`:
//
//  1. tile quantisation: M and N are rounded up to whole tiles;
//  2. wave quantisation: tiles = ceil(M / tile_m) * ceil(N / tile_n) run in ceil(tiles / sms) waves, a partial
//     last wave costing a full one;
//  3. small K: every tile pays a fixed prologue / epilogue beside its K loop, worth k_overhead slices of K:
//     a tile costs (K + k_overhead) instead of K. The default k_overhead is derived, not fitted: writing the
//     tile's tile_m x tile_n bf16 outputs at the SM's share of HBM bandwidth (bw / sms) takes as long as
//     k_overhead = out_bytes * peak / (2 * bw) steps of K at the SM's share of the peak (peak / sms);
//     206 for bf16 on an H200 (989 TFLOP/s, 4.8 TB/s), 412 for fp8;
//  4. small N (and small M): with fewer tiles than SMs the library splits K over the idle SMs (split-K):
//     s = min(floor(sms / tiles), ceil(K / tile_k)) splits of K / s each, every split paying k_overhead,
//     so a GEMM with few output tiles is charged short K loops;
//  5. the reference shape's own losses are taken out of e_c, so the measured shape keeps its measured time:
//     e_tile = e_c * (R + k_overhead) / R * wave_factor(R) (clamped to 1), the efficiency of one tile's K loop.
//
// Compute time = waves * 2 * tile_m * tile_n * (K / s + k_overhead) * sms / (peak * e_tile). The caller
// takes max(compute, bytes / (e_m * bw)) (the memory-bound regime) and adds the launch overhead.
#pragma once

#include <cstdint>

namespace moesim::models {

// The parameters a profile may override (`gemm_shape` in models/profiles/README.md).
struct GemmShapeParams {
  int tile_m = 128;         // output tile rows (tokens); cuBLASLt's common 128 x 128 tile (roofline.hpp)
  int tile_n = 128;         // output tile columns
  int tile_k = 64;          // K slice of one main-loop step (CUTLASS's 128 x 128 x 64 bf16 tile on sm_90)
  double k_overhead = -1;   // per-tile fixed cost in steps of K; < 0: derived, out_bytes * peak / (2 * bw)
  int64_t reference = 8192; // e_c was measured on a reference x reference x reference GEMM
};

struct GemmTiming {
  double tiles = 0;            // output tiles after tile quantisation
  double waves = 0;            // ceil(tiles / sms) (1 below one wave)
  double split_k = 1;          // K splits below one wave (1 otherwise)
  double k_overhead = 0;       // the per-tile fixed cost used, in steps of K
  double tile_efficiency = 0;  // e_tile (point 5 above)
  double compute_s = 0;        // the compute time
  double efficiency = 0;       // 2 m n k / (compute_s * peak): the effective fraction of peak for this shape
};

// out_bytes * peak / (2 * bw): the K-equivalent of writing one output tile (point 3). out_bytes = 2 (bf16).
double derived_k_overhead(double peak_flops, double memory_bandwidth, double out_bytes = 2.0);

// The compute time of a GEMM (m x k) . (k x n) on a GPU of `sms` SMs with peak `peak_flops` (FLOP/s) whose
// e_c (measured on the reference shape) is `eff_compute`; k_overhead < 0 in p is replaced by
// derived_k_overhead(peak_flops, memory_bandwidth). m, n, k >= 1. Throws std::invalid_argument on bad input.
GemmTiming gemm_timing(int64_t m, int64_t n, int64_t k, int sms, double peak_flops, double memory_bandwidth,
                       double eff_compute, const GemmShapeParams& p);

}  // namespace moesim::models
