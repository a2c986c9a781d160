// A scenario: cluster + model + workload + variants + simulation settings, loaded from YAML and validated.
// Immutable after loading; everything downstream is a pure function of it and the seed (DESIGN data flow).
// The format (moesim-scenario v1) is documented key by key in scenarios/README.md.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include <yaml-cpp/yaml.h>

#include "models/architecture.hpp"
#include "models/placement.hpp"
#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/variant.hpp"
#include "sim/engine.hpp"
#include "topologies/cluster.hpp"

namespace moesim {

enum class FidelityRequest { auto_, exact, fast };

struct Scenario {
  std::string file;      // path as given
  std::string base_dir;  // directory of the file (relative paths in it resolve against this)
  std::string sha256;    // of the file's bytes
  std::string name;
  std::string description;

  models::Architecture arch;
  topo::Cluster cluster;
  std::string cluster_name;
  models::Profile profile;

  int ep = 0;                 // ranks (GPUs) = parallelism.ep x parallelism.etp; every rank is a token source
  int etp = 1;                // parallelism.etp: expert tensor-parallel degree (groups of etp consecutive ranks)
  // parallelism.dp: data-parallel replicas of the EP group. The cluster runs dp x ep x etp ranks; replica d's
  // rank r is global rank d * ep + r (ep here = ranks of one group) on GPU rank_gpu[d * ep + r]. A DP group is
  // the same EP rank in every replica. dp_bucket_bytes: the gradient all-reduce's bucket (parallelism.dp_bucket).
  int dp = 1;
  double dp_bucket_bytes = 0;
  std::vector<int> rank_gpu;  // global rank (dp x ep of them) -> GPU id in the cluster
  models::Placement placement;

  models::Mode mode = models::Mode::inference_prefill;
  int64_t tokens_per_rank = 0;
  int64_t context_tokens = 0;  // attention span: prefill/training sequence length, decode KV length
  uint64_t seed = 0;
  int steps = 1;  // workload.steps: consecutive batches simulated, each with its own routing draws
  models::RoutingSpec routing;  // with modalities: the text tokens' routing, carrying the vision spec

  std::vector<models::VariantSpec> variants;
  std::string baseline;  // a variant name, or ""
  // Which time a speed-up against the baseline compares (baseline.scope): moe_layer (MoE-layer time), block
  // (the transformer blocks: the step less its exposed embedding / LM head / loss / optimizer / DP all-reduce
  // time; the default, which is what step times meant before those ops existed) or step (the whole step).
  std::string speedup_scope = "block";

  // simulation.dp_replicas: auto | all | representative, and what it resolved to. dp_simulated: the DP replicas
  // the engine simulates, dp or (representative) the first 2 in training, 1 otherwise: every replica runs the
  // same routing and op graph, so when replicas fill whole identical servers of a non-blocking fabric (they
  // share no link that can bind) the others run the same ops at the same times; two in training so that the
  // gradient rings cross a replica boundary as they do on the cluster (their bytes are those of the rings of
  // all dp replicas: models::DataParallel::ring_degree). dp_representative_block: why auto simulates every
  // replica ("" when representative replicas are exact).
  std::string dp_replicas = "auto";
  int dp_simulated = 1;
  std::string dp_representative_block;
  // Ranks the engine simulates (dp_simulated x ep) and their GPUs (the first entries of rank_gpu).
  int simulated_ranks() const { return dp_simulated * ep; }
  std::vector<int> simulated_rank_gpu() const {
    return {rank_gpu.begin(), rank_gpu.begin() + std::min<std::ptrdiff_t>(simulated_ranks(), std::ssize(rank_gpu))};
  }

  FidelityRequest fidelity = FidelityRequest::auto_;
  double precision_s = 1e-9;
  int layers_limit = 0;  // 0 = all layers

  // The layers simulated (first layers_limit, or all).
  std::vector<int> simulated_layers() const;
  // auto -> exact while the expected number of SimGrid flows of the exact level stays within
  // kExactFlowBudget (a run of a few seconds at ~40 us a flow on a 2-core machine), fast above; always exact
  // when a variant's schedule needs per-rank all-to-all finish times (ScheduleInfo::needs_exact: realb).
  Fidelity resolved_fidelity() const;
  // Flows the exact level simulates: one per ordered rank pair in each dispatch and combine all-to-all of each
  // simulated MoE layer (twice in training), for every workload step, plus with etp > 1 one per ordered pair
  // within each group for the all-gather and the reduce-scatter, for each simulated DP replica. Chunked
  // schedules split bytes, not pairs; the estimate is per chunk.
  double expected_exact_flows() const;
};

inline constexpr double kExactFlowBudget = 100000;

// The routing a variant's plans are drawn from: its own routing or the workload's, with gate-score
// histograms on only for a schedule that reads gate scores and per-token records kept for one that reads
// token scores (the runner routes with exactly this spec).
models::RoutingSpec variant_routing(const models::RoutingSpec& workload, const models::VariantSpec& spec);

// Directory holding shipped presets/profiles: $MOESIM_DATA_DIR, else the source tree it was built from.
std::string data_dir();

// Loads and validates a scenario file. Throws InputError carrying every problem found.
Scenario load_scenario(const std::string& path);
Scenario load_scenario_text(const std::string& text, const std::string& name);
// Decodes a parsed scenario tree (a sweep point, sim/sweep.hpp: the file's tree with the point's values written
// in; `text` is the file's bytes, hashed). Its sweep: section, if any, is not checked. Throws InputError.
Scenario decode_scenario_tree(const YAML::Node& root, const std::string& file, const std::string& text);

}  // namespace moesim
