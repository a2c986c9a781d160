// Per-op costs of one EP step, as the schedules ask for them: the cost model bound to a workload (mode,
// context length) plus the routing-derived token counts per rank and expert.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "models/cost_model.hpp"
#include "models/routing.hpp"

namespace moesim::models {

class StepCosts {
 public:
  // decode: attention reads a KV cache of `context_tokens`; otherwise causal prefill over sequences of
  // `context_tokens`. Backward ops cost `backward_factor` times their forward op (DESIGN: about twice).
  StepCosts(const CostModel& cost, bool decode, int64_t context_tokens, double backward_factor = 2.0);

  const CostModel& model() const { return cost_; }
  double backward_factor() const { return backward_factor_; }
  bool decode() const { return decode_; }
  int64_t context_tokens() const { return context_; }

  KernelCost attention(int64_t tokens) const;
  KernelCost gate(int64_t tokens) const { return cost_.router(tokens); }
  KernelCost permute(int64_t tokens) const { return cost_.permute(tokens); }
  KernelCost unpermute(int64_t tokens) const { return cost_.unpermute(tokens); }
  KernelCost shared_expert(int64_t tokens) const { return cost_.shared_expert(tokens); }
  KernelCost dense_mlp(int64_t tokens) const { return cost_.dense_mlp(tokens); }
  KernelCost experts(const std::vector<int64_t>& tokens_per_expert) const {
    return cost_.grouped_experts(tokens_per_expert);
  }
  // Bytes one token's hidden state occupies in an all-to-all (model dtype).
  double bytes_per_token() const;

 private:
  const CostModel& cost_;
  bool decode_;
  int64_t context_;
  double backward_factor_;
};

// The cost models of the stages of a model built of stages (Architecture::stages): stage s is costed with
// arch.stage_shape(s) on stage_tokens(s, T) tokens per rank, its attention context round(context x
// token_scale) (at least 1): each stage's sequences are the workload's after its patch merges.
class StageCosts {
 public:
  StageCosts(const Profile& profile, const Architecture& arch, bool decode, int64_t tokens_per_rank,
             int64_t context_tokens, double backward_factor = 2.0);
  int count() const { return static_cast<int>(stages_.size()); }
  const Architecture& arch(int s) const { return *stages_.at(static_cast<std::size_t>(s)).arch; }
  const StepCosts& costs(int s) const { return *stages_.at(static_cast<std::size_t>(s)).costs; }
  int64_t tokens(int s) const { return stages_.at(static_cast<std::size_t>(s)).tokens; }

 private:
  struct One {
    std::unique_ptr<Architecture> arch;
    std::unique_ptr<CostModel> model;
    std::unique_ptr<StepCosts> costs;
    int64_t tokens = 0;
  };
  std::vector<One> stages_;
};

// Token-expert pairs each expert held by `rank` receives in `layer` (replicas share per Placement::distribute),
// in the order of placement.experts_of_rank(rank). `placement` is the one the plan was generated with.
std::vector<int64_t> expert_tokens(const RoutingPlan& plan, const Placement& placement, int layer, int rank);

// Splits n into `parts` near-equal shares; share i = n / parts + (i < n % parts).
int64_t share(int64_t n, int parts, int i);

}  // namespace moesim::models
