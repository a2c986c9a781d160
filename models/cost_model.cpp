#include "models/cost_model.hpp"
#include "models/roofline.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

namespace moesim::models {

Provenance weaker(Provenance a, Provenance b) { return static_cast<uint8_t>(a) >= static_cast<uint8_t>(b) ? a : b; }

namespace {
constexpr double kActBytes = 2.0;  // bf16 activations / GEMM outputs
void check_tokens(int64_t t) {
  if (t < 0) throw std::invalid_argument(fmt::format("token count must be >= 0 (got {})", t));
}
}  // namespace

CostModel::CostModel(Profile profile, Architecture arch, CostModelOptions opt)
    : profile_(std::move(profile)), arch_(std::move(arch)), opt_(std::move(opt)) {
  if (arch_.dtype == DType::fp8 && profile_.peak_fp8 <= 0)
    throw std::invalid_argument(fmt::format("model {} is fp8 but profile {} has no fp8 peak (no FP8 tensor cores)",
                                            arch_.name, profile_.id));
  for (size_t i = 0; i < profile_.tables.size(); ++i) {
    const ProfileTable& t = profile_.tables[i];
    tables_.emplace(std::make_tuple(t.kernel, t.dtype, t.n, t.k), i);  // first entry of a shape wins
  }
  // Attention projections, one GEMM each (in -> out features).
  const Attention& a = arch_.attention;
  const int64_t h = arch_.hidden, H = a.heads;
  if (a.kind == AttentionKind::mla) {
    const int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    if (a.q_lora_rank > 0) {
      proj_.push_back({h, a.q_lora_rank});
      proj_.push_back({a.q_lora_rank, H * qk});
    } else {
      proj_.push_back({h, H * qk});
    }
    proj_.push_back({h, a.kv_lora_rank + a.qk_rope_head_dim});                    // kv_a (latent + rope key)
    proj_.push_back({a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim)});  // kv_b (not absorbed)
    proj_.push_back({H * a.v_head_dim, h});                                      // o
  } else {
    proj_.push_back({h, (H + 2 * static_cast<int64_t>(a.kv_heads)) * a.head_dim});  // fused qkv
    proj_.push_back({H * a.head_dim, h});                                          // o
  }
}

const Efficiency& CostModel::eff(KernelClass c) const {
  switch (c) {
    case KernelClass::gemm: return profile_.gemm;
    case KernelClass::attention: return profile_.attention;
    case KernelClass::elementwise: return profile_.elementwise;
  }
  return profile_.gemm;
}

const ProfileTable* CostModel::find_table(const std::string& kernel, const std::string& dtype, int64_t n,
                                          int64_t k) const {
  auto it = tables_.find(std::make_tuple(kernel, dtype, n, k));
  return it == tables_.end() ? nullptr : &profile_.tables[it->second];
}

KernelCost CostModel::roofline(KernelClass cls, DType dtype, double flops, double bytes, int launches) const {
  const Efficiency& e = eff(cls);
  const double tc = flops / (e.compute * peak(dtype));
  const double tm = bytes / (e.memory * profile_.memory_bandwidth);
  return {launches * profile_.launch_overhead_s + std::max(tc, tm), profile_.roofline_provenance()};
}

bool CostModel::tiled_gemms() const {
  return profile_.gemm_model == GemmShapeModel::tiled && profile_.kind != ProfileKind::measured && profile_.sms > 0;
}

KernelCost CostModel::gemm_roofline(DType dtype, int64_t m, int64_t n, int64_t k, double bytes) const {
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  if (!tiled_gemms() || peak(dtype) <= 0 || m < 1 || n < 1 || k < 1)
    return roofline(KernelClass::gemm, dtype, flops, bytes, 1);
  const GemmTiming g = gemm_timing(m, n, k, profile_.sms, peak(dtype), profile_.memory_bandwidth,
                                   profile_.gemm.compute, profile_.gemm_shape);
  const double tm = bytes / (profile_.gemm.memory * profile_.memory_bandwidth);
  return {profile_.launch_overhead_s + std::max(g.compute_s, tm), profile_.roofline_provenance()};
}

KernelCost CostModel::lookup(const ProfileTable* t, double x, KernelClass cls, DType dtype, double flops,
                             double bytes, int launches, int64_t gemm_n, int64_t gemm_k) const {
  if (t && !t->points.empty()) {
    const auto& p = t->points;
    if (x >= p.front().first && x <= p.back().first) {
      // Linear interpolation between the bracketing points (monotone where the data is).
      auto hi = std::lower_bound(p.begin(), p.end(), x, [](const auto& pt, double v) { return pt.first < v; });
      if (hi->first == x) return {hi->second, t->provenance};
      auto lo = hi - 1;
      const double f = (x - lo->first) / (hi->first - lo->first);
      return {lo->second + f * (hi->second - lo->second), t->provenance};
    }
    if (t->fit) {
      // The fit was made against the wave-quantised compute term (moesim-calibrate-fit); extrapolate with it.
      const double eff_flops = x > 0 ? wave_quantised_flops(flops / x, x, gemm_n, profile_.sms) : flops;
      const double tc = eff_flops / (t->fit->eta_compute * peak(dtype));
      const double tm = bytes / (t->fit->eta_memory * profile_.memory_bandwidth);
      return {t->fit->alpha_s + std::max(tc, tm), Provenance::fitted};
    }
  }
  if (gemm_n > 0 && gemm_k > 0) return gemm_roofline(dtype, static_cast<int64_t>(x), gemm_n, gemm_k, bytes);
  return roofline(cls, dtype, flops, bytes, launches);
}

KernelCost CostModel::gemm(const std::string& kernel, DType dtype, int64_t tokens, int64_t n, int64_t k) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double t = static_cast<double>(tokens), N = static_cast<double>(n), K = static_cast<double>(k);
  const double b = dtype_bytes(dtype);
  const double flops = 2.0 * t * N * K;
  const double bytes = t * K * b + K * N * b + t * N * kActBytes;
  return lookup(find_table(kernel, table_dtype(dtype), n, k), t, KernelClass::gemm, dtype, flops, bytes, 1, n, k);
}

KernelCost CostModel::attention_projections(int64_t tokens) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double t = static_cast<double>(tokens), b = dtype_bytes(arch_.dtype);
  double flops = 0, bytes = 0;
  KernelCost tiled{0.0, zero_prov()};
  for (const Proj& p : proj_) {
    const double pb = t * p.in * b + static_cast<double>(p.in) * p.out * b + t * p.out * kActBytes;
    flops += 2.0 * t * p.in * p.out;
    bytes += pb;
    // With the shape model each projection is its own GEMM shape (tokens x in) . (in x out).
    if (tiled_gemms()) tiled += gemm_roofline(arch_.dtype, tokens, p.out, p.in, pb);
  }
  if (tiled_gemms()) return tiled;
  return roofline(KernelClass::gemm, arch_.dtype, flops, bytes, static_cast<int>(proj_.size()));
}

double CostModel::attention_params() const {
  double n = 0;
  for (const Proj& p : proj_) n += static_cast<double>(p.in) * static_cast<double>(p.out);
  return n;
}

KernelCost CostModel::attention_core(AttentionPass pass, int64_t tokens, int64_t seq_len) const {
  check_tokens(tokens);
  if (seq_len < 1) throw std::invalid_argument(fmt::format("sequence length must be >= 1 (got {})", seq_len));
  if (tokens == 0) return {0.0, zero_prov()};
  const Attention& a = arch_.attention;
  const double t = static_cast<double>(tokens), H = a.heads;
  double S = static_cast<double>(seq_len);
  const bool mla = a.kind == AttentionKind::mla;
  double flops = 0, bytes = 0;
  // Keys a query attends over, on average (W = window, 0 = none):
  //   prefill, causal:            (S + 1) / 2; with W < S: (W (W + 1) / 2 + (S - W) W) / S (the first W
  //                               positions see 1..W keys, the others W)
  //   prefill, not causal:        S; with W: min(W, S) (Swin-style windows of W tokens)
  //   decode (one new token):     S cached keys; with W: min(W, S) (a sliding-window cache)
  const double W = a.window > 0 ? static_cast<double>(a.window) : 0.0;
  if (pass == AttentionPass::prefill) {
    // Flash-style: Q, K, V read and O written once.
    double ctx = a.causal ? (S + 1.0) / 2.0 : S;
    if (W > 0 && W < S) ctx = a.causal ? (W * (W + 1.0) / 2.0 + (S - W) * W) / S : W;
    const double qk = mla ? a.qk_nope_head_dim + a.qk_rope_head_dim : a.head_dim;
    const double v = mla ? a.v_head_dim : a.head_dim;
    const double kvh = mla ? H : a.kv_heads;  // MLA prefill materialises per-head K and V
    flops = 2.0 * t * ctx * H * (qk + v);
    bytes = t * (H * qk + kvh * qk + kvh * v + H * v) * kActBytes;
  } else if (mla) {
    // Absorbed MLA decode: scores over the latent + rope key, output in the latent; cache = latent + rope.
    if (W > 0 && W < S) S = W;
    const double lat = a.kv_lora_rank, rope = a.qk_rope_head_dim;
    flops = 2.0 * t * S * H * (lat + rope) + 2.0 * t * S * H * lat;
    bytes = t * S * (lat + rope) * kActBytes + t * H * (2.0 * lat + rope) * kActBytes;
  } else {
    if (W > 0 && W < S) S = W;
    const double d = a.head_dim, kvh = a.kv_heads;
    flops = 2.0 * t * S * H * 2.0 * d;
    bytes = t * S * 2.0 * kvh * d * kActBytes + t * 2.0 * H * d * kActBytes;
  }
  return roofline(KernelClass::attention, DType::bf16, flops, bytes, 1);
}

KernelCost CostModel::attention(AttentionPass pass, int64_t tokens, int64_t seq_len) const {
  return attention_projections(tokens) + attention_core(pass, tokens, seq_len);
}

KernelCost CostModel::router(int64_t tokens) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double t = static_cast<double>(tokens), h = arch_.hidden, E = arch_.routed_experts, k = arch_.top_k;
  const double g_flops = 2.0 * t * h * E;
  const double g_bytes = (t * h + h * E + t * E) * kActBytes;
  // top-k: read fp32 logits, write k (id, score) pairs of 4 + 4 bytes.
  const double k_flops = t * E;
  const double k_bytes = t * E * 4.0 + t * k * 8.0;
  // The router GEMM is a roofline; the top-k kernel has a measured table in calibrated profiles
  // (moesim-calibrate: kernel router_topk, n = top_k, k = experts, x = tokens).
  const KernelCost gate = tiled_gemms() ? gemm_roofline(DType::bf16, tokens, arch_.routed_experts, arch_.hidden, g_bytes)
                                        : roofline(KernelClass::gemm, DType::bf16, g_flops, g_bytes, 1);
  return gate +
         lookup(find_table("router_topk", "bf16", arch_.top_k, arch_.routed_experts), t, KernelClass::elementwise,
                DType::bf16, k_flops, k_bytes, 1);
}

KernelCost CostModel::permute(int64_t tokens) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double rows = static_cast<double>(tokens) * arch_.top_k;
  const double bytes = 2.0 * rows * arch_.hidden * dtype_bytes(arch_.dtype);
  return lookup(find_table("permute", table_dtype(arch_.dtype), 0, arch_.hidden), rows, KernelClass::elementwise,
                DType::bf16, 0.0, bytes, 1);
}

KernelCost CostModel::unpermute(int64_t tokens) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double rows = static_cast<double>(tokens) * arch_.top_k;
  const double bytes = 2.0 * rows * arch_.hidden * dtype_bytes(arch_.dtype);
  // Table convention (moesim-calibrate): n = top_k (rows combined per output token), k = hidden, x = rows.
  return lookup(find_table("unpermute", table_dtype(arch_.dtype), arch_.top_k, arch_.hidden), rows,
                KernelClass::elementwise, DType::bf16, 0.0, bytes, 1);
}

int64_t CostModel::sub_expert_ffn(int64_t ffn, int split) {
  if (split < 1 || ffn % split != 0)
    throw std::invalid_argument(fmt::format("sub-expert split {} must be >= 1 and divide the FFN size {}", split, ffn));
  return ffn / split;
}

KernelCost CostModel::expert_gate_up(int64_t tokens, int split) const {
  const int64_t f = sub_expert_ffn(arch_.expert_ffn, split);
  return gemm("expert_gate_up", arch_.dtype, tokens, up_width(arch_.expert_activation, f), arch_.hidden);
}

KernelCost CostModel::expert_down(int64_t tokens, int split) const {
  const int64_t f = sub_expert_ffn(arch_.expert_ffn, split);
  return gemm("expert_down", arch_.dtype, tokens, arch_.hidden, f);
}

KernelCost CostModel::swiglu(int64_t tokens, int64_t ffn) const { return activation(tokens, ffn, Activation::swiglu); }

KernelCost CostModel::activation(int64_t tokens, int64_t ffn, Activation a) const {
  check_tokens(tokens);
  if (tokens == 0) return {0.0, zero_prov()};
  const double t = static_cast<double>(tokens), f = static_cast<double>(ffn);
  switch (a) {
    case Activation::swiglu:
      // silu(g) * u: ~4 FLOP per output; reads g and u, writes the product (bf16).
      return lookup(find_table("swiglu", "bf16", 0, ffn), t, KernelClass::elementwise, DType::bf16, 4.0 * t * f,
                    3.0 * t * f * kActBytes, 1);
    case Activation::gelu:
      // tanh-approximated GELU, 0.5 x (1 + tanh(0.79788 (x + 0.044715 x^3))): ~8 FLOP and a tanh per element;
      // reads and writes one bf16 value per element (memory-bound at these widths, so the FLOP count hardly
      // matters).
      return lookup(find_table("gelu", "bf16", 0, ffn), t, KernelClass::elementwise, DType::bf16, 8.0 * t * f,
                    2.0 * t * f * kActBytes, 1);
    case Activation::relu:
      return lookup(find_table("relu", "bf16", 0, ffn), t, KernelClass::elementwise, DType::bf16, 1.0 * t * f,
                    2.0 * t * f * kActBytes, 1);
  }
  return {0.0, zero_prov()};
}

KernelCost CostModel::grouped_gate_up(const std::vector<int64_t>& tpe, int split) const {
  KernelCost c{0.0, zero_prov()};
  for (int64_t t : tpe)
    if (t > 0) c += expert_gate_up(t, split);
  return c;
}

KernelCost CostModel::grouped_down(const std::vector<int64_t>& tpe, int split) const {
  KernelCost c{0.0, zero_prov()};
  for (int64_t t : tpe)
    if (t > 0) c += expert_down(t, split);
  return c;
}

KernelCost CostModel::grouped_experts(const std::vector<int64_t>& tpe, int split) const {
  int64_t rows = 0;
  for (int64_t t : tpe) rows += std::max<int64_t>(t, 0);
  return grouped_gate_up(tpe, split) +
         activation(rows, sub_expert_ffn(arch_.expert_ffn, split), arch_.expert_activation) + grouped_down(tpe, split);
}

KernelCost CostModel::act_quant(int64_t rows, int64_t width, DType d) const {
  check_tokens(rows);
  if (rows == 0 || !below_model(d)) return {0.0, zero_prov()};
  const double r = static_cast<double>(rows), w = static_cast<double>(width);
  const double bytes = r * w * (kActBytes + dtype_bytes(d));
  const ProfileTable* t = d == DType::fp8 ? find_table("cast_fp8", "fp8_block_1x128", 0, width) : nullptr;
  return lookup(t, r, KernelClass::elementwise, DType::bf16, 4.0 * r * w, bytes, 1);
}

KernelCost CostModel::expert_group(const std::vector<int64_t>& tpe, const std::vector<int>& experts, DType d) const {
  if (tpe.size() != experts.size()) throw std::invalid_argument("expert_group: one token count per expert");
  if (arch_.vision_experts == 0 && d == arch_.dtype) return grouped_experts(tpe);
  if (d != arch_.dtype && peak(d) <= 0)
    throw std::invalid_argument(fmt::format("profile {} has no {} peak", profile_.id, dtype_name(d)));
  KernelCost c{0.0, zero_prov()};
  // Widths in a fixed order (text experts' width first), each with its own SwiGLU launch.
  for (int width : {arch_.expert_ffn, arch_.vision_expert_ffn}) {
    int64_t rows = 0;
    KernelCost up{0.0, zero_prov()}, down{0.0, zero_prov()};
    for (std::size_t i = 0; i < experts.size(); ++i) {
      if (tpe[i] <= 0 || arch_.ffn_of_expert(experts[i]) != width) continue;
      rows += tpe[i];
      up += gemm("expert_gate_up", d, tpe[i], up_width(arch_.expert_activation, width), arch_.hidden);
      down += gemm("expert_down", d, tpe[i], arch_.hidden, width);
    }
    if (rows == 0) continue;
    c += act_quant(rows, arch_.hidden, d) + up + activation(rows, width, arch_.expert_activation) +
         act_quant(rows, width, d) + down;
    if (arch_.vision_expert_ffn == arch_.expert_ffn) break;  // one width: every expert was counted
  }
  return c;
}

double CostModel::expert_weight_bytes(int expert, DType d) const {
  return ffn_matrices(arch_.expert_activation) * static_cast<double>(arch_.hidden) * arch_.ffn_of_expert(expert) *
         dtype_bytes(d);
}

KernelCost CostModel::weight_cast(const std::vector<int>& experts, DType d) const {
  if (experts.empty() || !below_model(d)) return {0.0, zero_prov()};
  KernelCost c{0.0, zero_prov()};
  for (int width : {arch_.expert_ffn, arch_.vision_expert_ffn}) {
    int64_t n = 0;
    for (int e : experts) n += arch_.ffn_of_expert(e) == width ? 1 : 0;
    if (n > 0) {
      const double h = arch_.hidden, f = width, per = kActBytes + dtype_bytes(d);
      // gate_up: 2f rows of hidden elements per expert (f for gelu/relu); down: hidden rows of f elements.
      const double up_rows = static_cast<double>(up_width(arch_.expert_activation, width)) * n, down_rows = h * n;
      const bool fp8 = d == DType::fp8;
      c += lookup(fp8 ? find_table("cast_fp8", "fp8_block_128x128", 0, arch_.hidden) : nullptr, up_rows,
                  KernelClass::elementwise, DType::bf16, 4.0 * up_rows * h, up_rows * h * per, 1);
      c += lookup(fp8 ? find_table("cast_fp8", "fp8_block_128x128", 0, width) : nullptr, down_rows,
                  KernelClass::elementwise, DType::bf16, 4.0 * down_rows * f, down_rows * f * per, 1);
    }
    if (arch_.vision_expert_ffn == arch_.expert_ffn) break;
  }
  return c;
}

KernelCost CostModel::ffn(int64_t tokens, int64_t f, Activation a) const {
  return gemm("expert_gate_up", arch_.dtype, tokens, up_width(a, f), arch_.hidden) + activation(tokens, f, a) +
         gemm("expert_down", arch_.dtype, tokens, arch_.hidden, f);
}

KernelCost CostModel::shared_expert(int64_t tokens) const {
  if (arch_.shared_experts == 0) return {0.0, zero_prov()};
  return ffn(tokens, arch_.shared_ffn_total(), arch_.expert_activation);
}

KernelCost CostModel::dense_mlp(int64_t tokens) const {
  if (arch_.dense_ffn <= 0) throw std::invalid_argument(fmt::format("model {} has no dense MLP", arch_.name));
  return ffn(tokens, arch_.dense_ffn, arch_.dense_activation);
}

}  // namespace moesim::models
