// Expert placement: which EP rank(s) hold each routed expert.
//
// Without replication the EP degree R must divide the routed experts E and every rank holds E/R experts:
// `contiguous` puts experts [r*E/R, (r+1)*E/R) on rank r; `round_robin` puts expert e on rank e mod R.
// With `replicate: true`, R need not divide E: each rank gets S = ceil(E/R) expert slots, slot i holds
// expert i mod E (so the first R*S - E experts get a second replica, and with R > E experts get several),
// and slots are laid out contiguous or round robin as above. Tokens for a replicated expert go to the
// replica on the sending rank when there is one, else are split evenly among its replicas (distribute()).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/yaml_view.hpp"

namespace moesim::models {

enum class PlacementScheme { contiguous, round_robin };

class Placement {
 public:
  Placement() = default;
  // Throws std::invalid_argument when R does not divide E and replicate is false (decode_placement reports
  // the same as a diagnostic first), or when ranks/experts < 1.
  Placement(int experts, int ranks, PlacementScheme scheme = PlacementScheme::contiguous, bool replicate = false);

  // An explicit placement: experts_of_rank[r] = the experts rank r holds (each expert on >= 1 rank, no rank
  // holding one twice). Throws std::invalid_argument otherwise. Used by EPLB, whose replicas change by step.
  static Placement from_slots(int experts, const std::vector<std::vector<int>>& experts_of_rank);

  int ranks() const { return ranks_; }
  int experts() const { return experts_; }
  bool replicated() const { return replicated_; }
  // The expert's first replica (its only rank when not replicated).
  int rank_of_expert(int e) const { return replicas_[static_cast<size_t>(e)].front(); }
  const std::vector<int>& ranks_of_expert(int e) const { return replicas_[static_cast<size_t>(e)]; }
  const std::vector<int>& experts_of_rank(int r) const { return experts_of_[static_cast<size_t>(r)]; }

  // Adds to per_rank[dst] the share of `tokens` that src sends to expert e lands on dst (size ranks()).
  // Rule: a replica on src takes all; else replica j of the list rotated to start at src mod n gets
  // floor(tokens/n) + (j < tokens mod n). dest_of_nth() gives the same split token by token.
  void distribute(int src, int e, int64_t tokens, int64_t* per_rank) const;
  // The rank receiving the n-th (0-based) token that src sends to expert e, consistent with distribute().
  int dest_of_nth(int src, int e, int64_t n) const;

 private:
  int local_replica(int src, int e) const;
  int experts_ = 0, ranks_ = 0;
  bool replicated_ = false;
  std::vector<std::vector<int>> replicas_;    // per expert, ascending ranks
  std::vector<std::vector<int>> experts_of_;  // per rank, ascending expert ids (distinct)
};

// Decodes a placement mapping {scheme: contiguous|round_robin (default contiguous), replicate: bool
// (default false)} for `ranks` EP ranks; an undefined v means all defaults. Problems become diagnostics
// (reported at `ranks_at`, the view that set the EP degree, for the divisibility rule).
Placement decode_placement(const YamlView& v, int routed_experts, int ranks, const YamlView& ranks_at);

}  // namespace moesim::models
