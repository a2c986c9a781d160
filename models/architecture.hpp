// MoE model architectures: the shapes the cost model and the routing generator need.
//
// An Architecture is decoded from the scenario's `model:` value: a preset name (models/presets/<name>.yaml,
// each citing the model's config.json) or an inline mapping, optionally `preset: name` plus overriding keys.
// Invariants after a successful decode: all sizes > 0, 1 <= top_k <= routed_experts, at least one MoE layer,
// dense_ffn > 0 when a dense layer exists, shared_expert_ffn > 0 when shared_experts > 0.
#pragma once

#include <string>
#include <vector>

#include "sim/yaml_view.hpp"

namespace moesim::models {

// Weight/activation precision of the GEMMs. fp8: 1-byte weights and GEMM inputs, peak.fp8 throughput.
// fp4: NVFP4 (W4A4), 4-bit E2M1 values plus one FP8 E4M3 scale per 16 elements, peak.fp4 throughput. A model's
// own dtype is bf16 or fp8; fp4 is only a per-rank compute precision (schedules realb, lowp_all).
enum class DType { bf16, fp8, fp4 };
// Bytes per weight/GEMM-input element: bf16 2, fp8 1, fp4 0.5 + 1/16 (the block scale) = 0.5625.
inline double dtype_bytes(DType d) { return d == DType::fp8 ? 1.0 : d == DType::fp4 ? 0.5625 : 2.0; }
inline const char* dtype_name(DType d) { return d == DType::fp8 ? "fp8" : d == DType::fp4 ? "fp4" : "bf16"; }

enum class AttentionKind { mha, gqa, mla };

// mha/gqa use heads, kv_heads, head_dim. mla (DeepSeek multi-head latent attention) uses heads,
// q_lora_rank (0 = queries not compressed, as in DeepSeek-V2-Lite), kv_lora_rank, qk_nope_head_dim,
// qk_rope_head_dim, v_head_dim; its KV cache holds kv_lora_rank + qk_rope_head_dim values per token.
// The span a query attends over: causal (a decoder: position i sees positions 1..i) or not (an encoder, a
// vision transformer: every position sees the whole sequence), limited by window > 0 (sliding window for a
// causal model: the last `window` positions; for a non-causal one, Swin-style windows: the `window` tokens
// of the query's own window). See CostModel::attention_core for the average span each gives.
struct Attention {
  AttentionKind kind = AttentionKind::mha;
  bool causal = true;
  int64_t window = 0;  // tokens; 0 = no window
  int heads = 0;
  int kv_heads = 0;  // mha: = heads
  int head_dim = 0;
  int q_lora_rank = 0;
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
};

// The FFN kind of an MLP (expert or dense): swiglu = silu(x W_gate) * (x W_up) then W_down (3 matrices, the
// gate and up projections as one GEMM of 2 x ffn columns); gelu / relu = act(x W_up) then W_down (2
// matrices). Each runs its elementwise activation as its own kernel.
enum class Activation { swiglu, gelu, relu };
inline const char* activation_name(Activation a) {
  return a == Activation::gelu ? "gelu" : a == Activation::relu ? "relu" : "swiglu";
}
// Weight matrices of an FFN of this kind (3 or 2), and the width of its first GEMM for an FFN of f.
inline int ffn_matrices(Activation a) { return a == Activation::swiglu ? 3 : 2; }
inline int64_t up_width(Activation a, int64_t f) { return a == Activation::swiglu ? 2 * f : f; }

// One stage of a model built of stages (model.stages; issue 13 point 5): consecutive blocks that share a
// shape, e.g. a stage of a hierarchical vision transformer (Swin: Liu et al., ICCV 2021), whose hidden size
// doubles and whose token count quarters from one stage to the next (patch merging). The per-block fields
// below replace the model's top-level ones for the stage's blocks; the expert count, top_k, dtype and the
// activations stay model-wide.
struct Stage {
  std::string name;
  int first_layer = 0;       // model index of the stage's first block
  int layers = 0;            // blocks in the stage
  double token_scale = 1.0;  // the stage's tokens per rank = round(workload tokens_per_rank x token_scale)
  // Whether a patch-merging op runs before the stage's first block (never on stage 0): the previous stage's
  // tokens are grouped by merge_group (= previous token_scale / token_scale, an integer) neighbours,
  // concatenated (merge_group x previous hidden wide), normalised and projected to this stage's hidden.
  bool patch_merge = false;
  int merge_group = 1;
  int merge_in = 0;  // merge_group x previous stage's hidden (the width of the concatenated rows)
  int hidden = 0;
  int expert_ffn = 0;
  int dense_ffn = 0;
  int shared_expert_ffn = 0;
  int vision_expert_ffn = 0;
  Attention attention;
};

struct Architecture {
  std::string name;
  std::string source;         // where the shape comes from (config.json URL)
  int layers = 0;             // decoder blocks
  int hidden = 0;             // model width
  int expert_ffn = 0;         // intermediate size of one routed expert
  int dense_ffn = 0;          // intermediate size of a dense-layer MLP (0 when the model has none)
  int routed_experts = 0;
  int shared_experts = 0;     // shared experts per MoE layer (fused into one MLP of shared_ffn_total())
  int shared_expert_ffn = 0;  // intermediate size of one shared expert
  int top_k = 0;
  // Modality-isolated models (ERNIE-4.5-VL style): the last vision_experts of the routed experts serve only
  // vision tokens, the others only text tokens; top_k applies within each range. 0 = modality-fused.
  int vision_experts = 0;
  int vision_expert_ffn = 0;  // intermediate size of one vision expert (= expert_ffn unless set)
  Attention attention;
  DType dtype = DType::bf16;
  // Whether the model's router renormalises its top-k gate probabilities to sum to 1 before weighting the
  // experts' outputs (Hugging Face config `norm_topk_prob`; Mixtral always does). true: the gate weight of a
  // pair is its score normalised over the token's top-k; false: the softmax probability itself (the
  // normalised score times the token's top-k mass). Reports show it; DualSparse's thresholds read the
  // normalised score either way, as the method prescribes.
  bool norm_topk_prob = false;
  Activation expert_activation = Activation::swiglu;  // routed and shared experts (expert_activation)
  Activation dense_activation = Activation::swiglu;   // dense-layer MLPs (dense_activation)
  // Tokenizer vocabulary (config.json vocab_size): the embedding table and the LM head are vocab_size x hidden
  // (untied). 0 = not given: the step has no embedding, LM head or loss op (models/step_ops.hpp).
  int vocab_size = 0;
  std::vector<bool> moe_layer;  // moe_layer[l]: block l has a routed MoE FFN (else a dense MLP)
  // Models built of stages (model.stages): the stages in order, covering layers 0..layers-1. Empty: a flat
  // model, one shape (the fields above) for every block. With stages, the per-block fields above hold stage
  // 0's shape; stage_shape(s) gives the architecture a block of stage s is costed with.
  std::vector<Stage> stages;

  bool is_moe_layer(int l) const { return l >= 0 && l < layers && moe_layer[static_cast<size_t>(l)]; }
  std::vector<int> moe_layer_indices() const;  // ascending
  int moe_layer_count() const;
  int shared_ffn_total() const { return shared_experts * shared_expert_ffn; }
  bool is_vision_expert(int e) const { return vision_experts > 0 && e >= routed_experts - vision_experts; }
  // Intermediate size of routed expert e.
  int ffn_of_expert(int e) const { return is_vision_expert(e) ? vision_expert_ffn : expert_ffn; }
  // Stages: at least 1 (a flat model is one stage). stage_of(l): the stage of block l (0 for a flat model).
  int stage_count() const { return stages.empty() ? 1 : static_cast<int>(stages.size()); }
  int stage_of(int layer) const;
  // This architecture with stage s's per-block fields as its top-level ones and no stages (a flat model's
  // stage 0 is the model itself). moe_layer and layers stay the whole model's.
  Architecture stage_shape(int s) const;
  // Tokens per rank of block `layer` for a workload of T tokens per rank: round(T x token_scale), at least 1
  // (T itself for a flat model).
  int64_t layer_tokens(int layer, int64_t T) const;
  int64_t stage_tokens(int s, int64_t T) const;
};

// Names of the shipped presets (file stems under <data_dir>/models/presets), sorted.
std::vector<std::string> list_architecture_presets(const std::string& data_dir);

// Decodes the scenario's `model:` value. Problems are recorded in v's Diagnostics (the caller throws
// InputError when any were recorded); the returned value is then a placeholder.
Architecture decode_architecture(const YamlView& v, const std::string& data_dir);

// Convenience for tools and tests: loads a preset by name, throws InputError on any problem.
Architecture load_architecture_preset(const std::string& name, const std::string& data_dir);

}  // namespace moesim::models
