// The roofline-with-waves compute term shared by the cost model (which extrapolates measured tables with
// it) and moesim-calibrate-fit (which fits α, η_c, η_m against it): both must charge the same FLOP.
#pragma once

#include <cmath>

namespace moesim::models {

// GEMM tile moesim-calibrate-fit assumes (cuBLASLt's common 128 x 128 output tile).
inline constexpr int kGemmTileTokens = 128;
inline constexpr int kGemmTileN = 128;

// FLOP charged to the compute term of a GEMM (tokens x k) . (k x n) with `flops_per_token` = 2 n k: tokens
// are rounded up to the tile and the tiles (ceil(T / tile_tokens) * ceil(n / tile_n)) run in waves of `sms`,
// a partial last wave costing a full one. Below one wave (tiles < sms) cuBLAS splits k across SMs, so no
// wave penalty is charged there. n <= 0 means "not a GEMM": no quantisation.
inline double wave_quantised_flops(double flops_per_token, double tokens, long long n, int sms,
                                   int tile_tokens = kGemmTileTokens, int tile_n = kGemmTileN) {
  if (n <= 0 || sms <= 0) return flops_per_token * tokens;
  const double tile_rows = std::ceil(tokens / tile_tokens);
  const double padded_tokens = tile_rows * tile_tokens;
  const double tiles = tile_rows * std::ceil(static_cast<double>(n) / tile_n);
  const double wave_factor = tiles < sms ? 1.0 : std::ceil(tiles / sms) * sms / tiles;
  return flops_per_token * padded_tokens * wave_factor;
}

}  // namespace moesim::models
