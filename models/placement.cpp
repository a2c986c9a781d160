#include "models/placement.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

namespace moesim::models {

Placement::Placement(int experts, int ranks, PlacementScheme scheme, bool replicate)
    : experts_(experts), ranks_(ranks) {
  if (experts < 1 || ranks < 1) throw std::invalid_argument("placement needs >= 1 expert and >= 1 rank");
  if (!replicate && experts % ranks != 0)
    throw std::invalid_argument(fmt::format("EP degree {} does not divide {} routed experts", ranks, experts));
  const int slots = (experts + ranks - 1) / ranks;  // per rank
  replicated_ = slots * ranks != experts;
  replicas_.assign(static_cast<size_t>(experts), {});
  experts_of_.assign(static_cast<size_t>(ranks), {});
  for (int i = 0; i < slots * ranks; ++i) {
    const int e = i % experts;
    const int r = scheme == PlacementScheme::contiguous ? i / slots : i % ranks;
    // (e, r) is new exactly when r is not yet among e's (few) replicas, so rank r's list never needs a
    // search: the build is linear in the slots.
    auto& rs = replicas_[static_cast<size_t>(e)];
    if (std::find(rs.begin(), rs.end(), r) != rs.end()) continue;
    rs.push_back(r);
    experts_of_[static_cast<size_t>(r)].push_back(e);
  }
  for (auto& rs : replicas_) std::sort(rs.begin(), rs.end());
  for (auto& es : experts_of_) std::sort(es.begin(), es.end());
}

Placement Placement::from_slots(int experts, const std::vector<std::vector<int>>& slots) {
  Placement p;
  p.experts_ = experts;
  p.ranks_ = static_cast<int>(slots.size());
  if (experts < 1 || p.ranks_ < 1) throw std::invalid_argument("placement needs >= 1 expert and >= 1 rank");
  p.replicas_.assign(static_cast<size_t>(experts), {});
  p.experts_of_ = slots;
  for (int r = 0; r < p.ranks_; ++r) {
    auto& es = p.experts_of_[static_cast<size_t>(r)];
    std::sort(es.begin(), es.end());
    if (std::adjacent_find(es.begin(), es.end()) != es.end())
      throw std::invalid_argument(fmt::format("rank {} holds an expert twice", r));
    for (int e : es) {
      if (e < 0 || e >= experts) throw std::invalid_argument(fmt::format("expert id {} out of range", e));
      p.replicas_[static_cast<size_t>(e)].push_back(r);
    }
  }
  for (int e = 0; e < experts; ++e) {
    if (p.replicas_[static_cast<size_t>(e)].empty())
      throw std::invalid_argument(fmt::format("expert {} has no rank", e));
    if (p.replicas_[static_cast<size_t>(e)].size() > 1) p.replicated_ = true;
  }
  return p;
}

int Placement::local_replica(int src, int e) const {
  const auto& rs = replicas_[static_cast<size_t>(e)];
  return std::binary_search(rs.begin(), rs.end(), src) ? src : -1;
}

void Placement::distribute(int src, int e, int64_t tokens, int64_t* per_rank) const {
  const auto& rs = replicas_[static_cast<size_t>(e)];
  if (rs.size() == 1 || local_replica(src, e) >= 0) {
    per_rank[rs.size() == 1 ? rs.front() : src] += tokens;
    return;
  }
  const int64_t n = static_cast<int64_t>(rs.size());
  const int64_t start = src % n;
  for (int64_t j = 0; j < n; ++j)
    per_rank[rs[static_cast<size_t>((start + j) % n)]] += tokens / n + (j < tokens % n ? 1 : 0);
}

int Placement::dest_of_nth(int src, int e, int64_t n) const {
  const auto& rs = replicas_[static_cast<size_t>(e)];
  if (rs.size() == 1) return rs.front();
  if (local_replica(src, e) >= 0) return src;
  const int64_t m = static_cast<int64_t>(rs.size());
  return rs[static_cast<size_t>((src % m + n % m) % m)];
}

Placement decode_placement(const YamlView& v, int routed_experts, int ranks, const YamlView& ranks_at) {
  PlacementScheme scheme = PlacementScheme::contiguous;
  bool replicate = false;
  if (v.defined() && v.expect_map()) {
    v.check_keys({"scheme", "replicate"});
    scheme = v.choice_or("scheme", {"contiguous", "round_robin"}, "contiguous") == "round_robin"
                 ? PlacementScheme::round_robin
                 : PlacementScheme::contiguous;
    replicate = v.boolean_or("replicate", false);
  }
  if (ranks < 1 || routed_experts < 1) return Placement(1, 1);
  if (!replicate && routed_experts % ranks != 0) {
    ranks_at.error(fmt::format("EP degree must divide the {} routed experts (or set placement.replicate: true)",
                               routed_experts),
                   ranks_at.shown());
    return Placement(routed_experts, 1);
  }
  return Placement(routed_experts, ranks, scheme, replicate);
}

}  // namespace moesim::models
