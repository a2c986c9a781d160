#include "models/variants/step_costs.hpp"

#include <algorithm>
#include <numeric>

namespace moesim::models {

StepCosts::StepCosts(const CostModel& cost, bool decode, int64_t context_tokens, double backward_factor)
    : cost_(cost), decode_(decode), context_(context_tokens), backward_factor_(backward_factor) {}

KernelCost StepCosts::attention(int64_t tokens) const {
  return cost_.attention(decode_ ? AttentionPass::decode : AttentionPass::prefill, tokens, context_);
}

StageCosts::StageCosts(const Profile& profile, const Architecture& arch, bool decode, int64_t tokens_per_rank,
                       int64_t context_tokens, double backward_factor) {
  for (int s = 0; s < arch.stage_count(); ++s) {
    One o;
    o.arch = std::make_unique<Architecture>(arch.stage_shape(s));
    o.model = std::make_unique<CostModel>(profile, *o.arch);
    o.tokens = arch.stage_tokens(s, tokens_per_rank);
    o.costs = std::make_unique<StepCosts>(*o.model, decode, arch.stage_tokens(s, context_tokens), backward_factor);
    stages_.push_back(std::move(o));
  }
}

double StepCosts::bytes_per_token() const {
  const Architecture& a = cost_.architecture();
  return static_cast<double>(a.hidden) * dtype_bytes(a.dtype);
}

std::vector<int64_t> expert_tokens(const RoutingPlan& plan, const Placement& pl, int layer, int rank) {
  const LayerRouting& lr = plan.layer(layer);
  if (!lr.slot_tokens.empty()) return lr.slot_tokens.at(static_cast<size_t>(rank));  // RoutingPlan::assign
  const auto& mine = pl.experts_of_rank(rank);
  std::vector<int64_t> out(mine.size(), 0);
  if (!lr.pad_rows.empty()) {
    // capacity_mode pad: every source's buffer for the expert, full or not.
    const int64_t rows = std::accumulate(lr.pad_rows.begin(), lr.pad_rows.end(), int64_t{0});
    std::fill(out.begin(), out.end(), rows);
    return out;
  }
  std::vector<int64_t> per_rank(static_cast<std::size_t>(plan.ranks()), 0);
  for (std::size_t i = 0; i < mine.size(); ++i) {
    const int e = mine[i];
    for (int src = 0; src < plan.ranks(); ++src) {
      const int64_t c = lr.counts[static_cast<std::size_t>(src) * plan.experts() + e];
      if (c == 0) continue;
      if (!pl.replicated()) {
        out[i] += c;
        continue;
      }
      std::fill(per_rank.begin(), per_rank.end(), 0);
      pl.distribute(src, e, c, per_rank.data());
      out[i] += per_rank[static_cast<std::size_t>(rank)];
    }
  }
  return out;
}

int64_t share(int64_t n, int parts, int i) { return n / parts + (i < n % parts ? 1 : 0); }

}  // namespace moesim::models
