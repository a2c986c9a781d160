// The rest of a step around the MoE layers (issue 13 point 4): token embedding, RMSNorm / LayerNorm, residual
// adds, the LM head, the cross-entropy loss, the Adam optimizer step, and the parameter counts the optimizer
// and the data-parallel gradient all-reduce need. Pure functions of (profile, architecture, shape) -> seconds,
// like CostModel, whose roofline (launch + max(flops / (eff_c * peak), bytes / (eff_m * bw))) and GEMM they use:
// every op here but the LM head is memory-bound elementwise work at the profile's memory bandwidth.
//
// Byte counts (activations in bf16, 2 B, as in CostModel; t = tokens, h = hidden, V = vocab_size):
//   embedding lookup     reads t rows of h weights (model dtype) and writes them: 2 t h b
//   embedding backward   reads t gradient rows, reads and writes the t touched rows of the table's gradient:
//                        3 t h b (a scatter-add; the rest of the gradient table is zeroed by the optimizer)
//   norm (RMSNorm)       reads t h + h weights, writes t h: (2 t h + h) 2 B, ~4 FLOP per element. A LayerNorm
//                        reads and writes the same (the mean is one more reduction over data already read), so
//                        the same cost; every shipped preset uses RMSNorm.
//   residual add         reads two t h tensors and writes one: 3 t h 2 B. This is the fused bias-dropout-add of
//                        Megatron-LM; the presets have no linear biases and dropout 0 (config.json
//                        attention_dropout 0.0), so the bias and the dropout mask cost nothing.
//   LM head              GEMM (rows x h) . (h x V) at the model dtype (table kernel `lm_head` when a profile has
//                        one); backward = 2 GEMMs of that shape (input and weight gradients): backward_factor 2.
//   loss                 fused softmax cross-entropy over rows x V logits (training): reads the bf16 logits
//                        twice (max and sum of exponentials, then the softmax gradient) and writes the gradient
//                        once: 6 B per logit, ~5 FLOP per logit. Its backward is the gradient it wrote.
//   Adam                 mixed-precision Adam keeps 16 B per parameter (ZeRO, Rajbhandari et al., SC'20, sec. 3:
//                        2 B fp16/bf16 weights, 2 B gradients, 4 B fp32 master weights, 4 B momentum, 4 B
//                        variance); one step reads the gradient, master weight, momentum and variance (14 B) and
//                        writes master weight, momentum, variance and the bf16 weight (14 B): 28 B per parameter,
//                        ~12 FLOP per parameter, one fused (multi-tensor) launch. Plain data parallelism: every
//                        rank updates every parameter it holds (no ZeRO sharding of the optimizer state).
#pragma once

#include <cstdint>
#include <vector>

#include "models/cost_model.hpp"

namespace moesim::models {

inline constexpr double kAdamReadBytesPerParam = 14.0;   // bf16 grad + fp32 master, momentum, variance
inline constexpr double kAdamWriteBytesPerParam = 14.0;  // fp32 master, momentum, variance + bf16 weight
inline constexpr double kAdamFlopsPerParam = 12.0;
// Gradients are all-reduced in bf16 (2 B per parameter): PyTorch DDP reduces gradients in the parameters'
// dtype, and Megatron-LM reduces in the gradient buffer's dtype, bf16 unless --accumulate-allreduce-grads-in-fp32.
inline constexpr double kGradBytesPerParam = 2.0;
// PyTorch DistributedDataParallel's default bucket_cap_mb = 25 (MiB):
// https://pytorch.org/docs/stable/generated/torch.nn.parallel.DistributedDataParallel.html
inline constexpr double kDefaultDpBucketBytes = 25.0 * 1024 * 1024;

class StepOpCosts {
 public:
  explicit StepOpCosts(const CostModel& cost) : cost_(cost) {}

  KernelCost embedding(int64_t tokens) const;           // forward lookup (0 when vocab_size is 0)
  KernelCost embedding_backward(int64_t tokens) const;  // scatter-add into the table's gradient
  KernelCost norm(int64_t tokens) const;
  KernelCost residual(int64_t tokens) const;
  KernelCost lm_head(int64_t rows) const;  // forward GEMM (0 when vocab_size is 0)
  KernelCost loss(int64_t rows) const;     // fused softmax cross-entropy, forward with its gradient
  KernelCost adam(double params) const;    // one optimizer step over `params` parameters

  // Parameter counts (elements). block_params: what every rank holds of block `layer` besides the routed
  // experts: attention projections, two norms, and the router + shared experts (MoE block) or the dense MLP.
  double block_params(int layer) const;
  // The routed experts `experts` (ids) of one rank, each split over `etp` ranks of its group.
  double expert_params(const std::vector<int>& experts, int etp) const;
  // Embedding table, LM head and final norm: 2 V h + h (0 V when vocab_size is 0).
  double outer_params() const;

 private:
  const CostModel& cost_;
};

// Rows the LM head computes on one rank: training and decode every token (decode: one new token per
// sequence); prefill only the last token of each sequence (the one the next token is sampled from), i.e.
// ceil(tokens / context_tokens) sequences.
int64_t lm_head_rows(bool training, bool decode, int64_t tokens, int64_t context_tokens);

}  // namespace moesim::models
