// Compute cost model v0: pure functions of (profile, architecture, shape) -> seconds with provenance.
//
// Every kernel costs  launch + max(flops / (eff_c * peak[dtype]), bytes / (eff_m * bw))  (a roofline with a
// launch overhead), unless the profile has a measured table for it: a `tables` entry with the same kernel,
// dtype, n and k is interpolated linearly in tokens inside its measured range (Provenance::measured, or
// derived for a derived table), extrapolated with its `fit` outside (Provenance::fitted); otherwise the
// roofline is used with the profile's provenance (datasheet / derived; a measured profile's roofline is
// `fitted`). A sum of kernels carries the weakest provenance of its parts (measured < fitted < derived <
// datasheet). Zero tokens cost zero (the kernel is not launched).
//
// Byte counts: a GEMM (tokens x k) . (k x n) moves tokens*k input + k*n weight elements at the model dtype
// (bf16 2 B, fp8 1 B) and writes tokens*n outputs in bf16 (2 B); weights are counted every call, which is what
// makes small per-expert GEMMs weight-bandwidth bound. Elementwise activations are bf16.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "models/architecture.hpp"
#include "models/profile.hpp"
#include "sim/op_graph.hpp"

namespace moesim::models {

struct KernelCost {
  double seconds = 0.0;
  Provenance prov = Provenance::measured;  // the identity of `+`: any real cost is at least as weak
};
// The weaker of two provenances (measured < fitted < derived < datasheet).
Provenance weaker(Provenance a, Provenance b);
inline KernelCost operator+(KernelCost a, KernelCost b) { return {a.seconds + b.seconds, weaker(a.prov, b.prov)}; }
inline KernelCost& operator+=(KernelCost& a, KernelCost b) { return a = a + b; }

enum class KernelClass { gemm, attention, elementwise };
// prefill: `tokens` query tokens in causal sequences of seq_len (average context (seq_len + 1) / 2).
// decode: `tokens` sequences each adding one token that attends to seq_len cached tokens (reads the KV cache).
// Training backward: the caller scales by ~2 (DESIGN "backward mirrors with about twice the compute").
enum class AttentionPass { prefill, decode };

struct CostModelOptions {
  // Which measured-table dtype an fp8 model's GEMMs look up (per-tensor scaling by default).
  std::string fp8_table_dtype = "fp8_tensor";
};

class CostModel {
 public:
  // Throws std::invalid_argument when the model is fp8 and the profile has no fp8 peak.
  CostModel(Profile profile, Architecture arch, CostModelOptions opt = {});

  const Profile& profile() const { return profile_; }
  const Architecture& architecture() const { return arch_; }

  // launches * launch_overhead + max(flops / (eff.compute * peak[dtype]), bytes / (eff.memory * bw)).
  KernelCost roofline(KernelClass cls, DType dtype, double flops, double bytes, int launches = 1) const;
  // One GEMM (m x k) . (k x n) moving `bytes`, by the roofline: launch + max(compute, bytes / (e_m * bw)), the
  // compute term from the shape model (models/gemm_efficiency.hpp) when tiled_gemms(), else flat
  // 2 m n k / (e_c * peak).
  KernelCost gemm_roofline(DType dtype, int64_t m, int64_t n, int64_t k, double bytes) const;
  // Whether roofline GEMMs use the shape model: profiles of kind datasheet / derived with gemm_shape.model
  // tiled (the default from YAML). A measured profile's tables and fits win; its roofline fallback stays flat
  // (its efficiencies were fitted per table against the wave-quantised term of roofline.hpp).
  bool tiled_gemms() const;
  // A GEMM (tokens x k) . (k x n) at `dtype`, looked up as table kernel `kernel`.
  KernelCost gemm(const std::string& kernel, DType dtype, int64_t tokens, int64_t n, int64_t k) const;

  // The attention block of one layer on one rank: projections (GEMM efficiency) + core attention.
  KernelCost attention(AttentionPass pass, int64_t tokens, int64_t seq_len) const;
  KernelCost attention_projections(int64_t tokens) const;
  // Weights of the attention projections of one layer (the GEMMs attention_projections costs), in elements.
  double attention_params() const;
  KernelCost attention_core(AttentionPass pass, int64_t tokens, int64_t seq_len) const;
  // Router GEMM (tokens x hidden . hidden x experts, bf16, roofline) + top-k (table router_topk: n = top_k,
  // k = experts, x = tokens, when the profile has one).
  KernelCost router(int64_t tokens) const;
  // Memory-bound copies of tokens*top_k rows of hidden elements, read + write (table x = tokens*top_k;
  // permute: n = 0, unpermute: n = top_k; k = hidden).
  KernelCost permute(int64_t tokens) const;
  KernelCost unpermute(int64_t tokens) const;
  // One expert's GEMMs; split P = sub-experts per expert (shapes use ffn / P, P must divide ffn).
  KernelCost expert_gate_up(int64_t tokens, int split = 1) const;  // n = 2*ffn/P (gelu/relu: ffn/P), k = hidden
  KernelCost expert_down(int64_t tokens, int split = 1) const;     // n = hidden, k = ffn/P
  // SwiGLU over tokens rows of a 2*ffn gate_up output: reads 2*ffn, writes ffn (bf16). Table x = tokens, k = ffn.
  KernelCost swiglu(int64_t tokens, int64_t ffn) const;
  // The activation kernel of an FFN of kind a over tokens rows of ffn outputs: swiglu as above; gelu (~8 FLOP
  // per element, tanh approximation) and relu (1 FLOP) read and write ffn bf16 values per row. Tables
  // swiglu / gelu / relu (x = tokens, k = ffn) when the profile has them, else the elementwise roofline.
  KernelCost activation(int64_t tokens, int64_t ffn, Activation a) const;
  // Grouped expert GEMMs: the sum over experts with > 0 tokens of each expert's GEMM (each pays its launch:
  // a per-expert loop, as cuBLASLt has no grouped mode here), so weight bytes count once per active expert.
  KernelCost grouped_gate_up(const std::vector<int64_t>& tokens_per_expert, int split = 1) const;
  KernelCost grouped_down(const std::vector<int64_t>& tokens_per_expert, int split = 1) const;
  // gate_up + one activation launch over all rows (the model's expert_activation) + down.
  KernelCost grouped_experts(const std::vector<int64_t>& tokens_per_expert, int split = 1) const;
  // The expert GEMMs of one rank's local experts `experts` (ids) with tokens_per_expert[i] rows each, computed
  // at precision `d`: each expert uses its own FFN width (vision experts of a modality-isolated model their
  // vision_expert_ffn), one SwiGLU launch per width. With d = the model dtype and one width this is exactly
  // grouped_experts(). With d below the model dtype (fp8 or fp4 on a bf16 model; fp4 on an fp8 model) the
  // activations are quantised on the fly (W8A8 / W4A4): act_quant of the GEMM inputs (hidden wide) and of the
  // SwiGLU output (ffn wide) is added. The weights are assumed already in `d` (see weight_cast).
  KernelCost expert_group(const std::vector<int64_t>& tokens_per_expert, const std::vector<int>& experts,
                          DType d) const;
  // Quantising `rows` activation rows of `width` bf16 elements to d (fp8 with 1x128 block scales: table
  // cast_fp8/fp8_block_1x128, n = 0, k = width, x = rows; fp4: roofline, reads 2 B and writes 0.5625 B per
  // element, ~4 FLOP per element for the scale search). 0 when d is not below the model dtype.
  KernelCost act_quant(int64_t rows, int64_t width, DType d) const;
  // Casting the BF16 weights of `experts` (ids) to d before a low-precision GEMM (ReaLB's on-the-fly cast):
  // memory bound, reads 2 B and writes dtype_bytes(d) per weight. Per distinct FFN width f, gate_up (2f rows
  // of hidden) and down (hidden rows of f) each one launch over all experts of that width: fp8 uses the
  // cast_fp8/fp8_block_128x128 tables (k = row width, x = rows) when the profile has them, else the
  // elementwise roofline. 0 for no experts or d not below the model dtype.
  KernelCost weight_cast(const std::vector<int>& experts, DType d) const;
  // Bytes of one routed expert's weights (gate_up + down) at precision d.
  double expert_weight_bytes(int expert, DType d) const;
  // The shared experts as one fused dense FFN of shared_experts * shared_expert_ffn on all tokens (0 if none).
  KernelCost shared_expert(int64_t tokens) const;
  // A dense layer's MLP (dense_ffn).
  KernelCost dense_mlp(int64_t tokens) const;
  // An FFN of kind a and width ffn on all tokens: gate_up GEMM (2 ffn columns for swiglu, ffn for gelu/relu) +
  // activation + down GEMM (looked up as the expert_gate_up / expert_down tables). shared_expert (the
  // model's expert_activation) and dense_mlp (dense_activation) are this at their widths.
  KernelCost ffn(int64_t tokens, int64_t ffn, Activation a) const;

  // ffn / P; throws std::invalid_argument unless P >= 1 divides ffn.
  static int64_t sub_expert_ffn(int64_t ffn, int split);

 private:
  struct Proj {
    int64_t in, out;
  };
  double peak(DType d) const {
    return d == DType::fp8 ? profile_.peak_fp8 : d == DType::fp4 ? profile_.peak_fp4 : profile_.peak_bf16;
  }
  const Efficiency& eff(KernelClass c) const;
  const ProfileTable* find_table(const std::string& kernel, const std::string& dtype, int64_t n, int64_t k) const;
  std::string table_dtype(DType d) const {
    return d == DType::fp8 ? opt_.fp8_table_dtype : d == DType::fp4 ? "fp4" : "bf16";
  }
  // Whether d is a lower precision than the model's own dtype (so a cast / activation quantisation is needed).
  bool below_model(DType d) const { return dtype_bytes(d) < dtype_bytes(arch_.dtype); }
  // Table -> fit -> roofline for a kernel of known flops/bytes at x (table axis value).
  // gemm_n > 0: a GEMM with n output columns, whose fitted extrapolation uses the wave-quantised compute term.
  // gemm_n, gemm_k > 0: the roofline fallback is gemm_roofline(dtype, x, gemm_n, gemm_k, bytes).
  KernelCost lookup(const ProfileTable* t, double x, KernelClass cls, DType dtype, double flops, double bytes,
                    int launches, int64_t gemm_n = 0, int64_t gemm_k = 0) const;
  Provenance zero_prov() const { return profile_.roofline_provenance(); }

  Profile profile_;
  Architecture arch_;
  CostModelOptions opt_;
  std::map<std::tuple<std::string, std::string, int64_t, int64_t>, size_t> tables_;  // -> index in profile_.tables (indices survive copies)
  std::vector<Proj> proj_;  // attention projection GEMMs (precomputed from the architecture)
};

}  // namespace moesim::models
