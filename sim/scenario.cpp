#include "sim/scenario.hpp"

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <set>
#include <sstream>

#include "sim/budget.hpp"
#include "sim/input_file.hpp"
#include "sim/limits.hpp"
#include "models/step_ops.hpp"
#include "sim/sha256.hpp"
#include "sim/plan.hpp"
#include "sim/sweep.hpp"
#include "topologies/topology_spec.hpp"

namespace moesim {

std::string data_dir() {
  if (const char* env = std::getenv("MOESIM_DATA_DIR"); env && *env) return env;
  return MOESIM_DATA_DIR;
}

models::RoutingSpec variant_routing(const models::RoutingSpec& workload, const models::VariantSpec& spec) {
  const models::ScheduleInfo* info = models::find_schedule(spec.schedule);
  models::RoutingSpec r = spec.routing ? *spec.routing : workload;
  r.score_histograms = info && info->uses_gate_scores;
  if (info && info->uses_token_scores) r.keep_scores = true;
  return r;
}

std::vector<int> Scenario::simulated_layers() const {
  std::vector<int> out;
  const int n = layers_limit > 0 ? std::min(layers_limit, arch.layers) : arch.layers;
  for (int l = 0; l < n; ++l) out.push_back(l);
  return out;
}

Fidelity Scenario::resolved_fidelity() const {
  switch (fidelity) {
    case FidelityRequest::exact: return Fidelity::exact;
    case FidelityRequest::fast: return Fidelity::fast;
    case FidelityRequest::auto_:
      for (const auto& v : variants)
        if (const auto* info = models::find_schedule(v.schedule); info && info->needs_exact) return Fidelity::exact;
      return expected_exact_flows() <= kExactFlowBudget ? Fidelity::exact : Fidelity::fast;
  }
  return Fidelity::exact;
}

double Scenario::expected_exact_flows() const {
  double moe = 0;
  for (int l : simulated_layers())
    if (static_cast<std::size_t>(l) < arch.moe_layer.size() && arch.moe_layer[static_cast<std::size_t>(l)]) ++moe;
  const double passes = mode == models::Mode::training ? 2.0 : 1.0;  // backward repeats both all-to-alls
  // Every workload step repeats them.
  const double pairs = static_cast<double>(ep) * (static_cast<double>(std::max(0, ep - 1)) + (etp - 1));
  // Every simulated DP replica runs its own all-to-alls (the gradient rings add a few flows per bucket).
  return moe * 2.0 * passes * pairs * static_cast<double>(std::max(1, steps)) * std::max(1, dp_simulated);
}

namespace {

const std::vector<std::string> kModes = {"inference_prefill", "decode", "training"};

models::Mode mode_from(const std::string& s) {
  if (s == "decode") return models::Mode::decode;
  if (s == "training") return models::Mode::training;
  return models::Mode::inference_prefill;
}

// Refuses a scenario whose routing plan cannot fit in this machine's memory (sim/budget.hpp).
void check_memory(const Scenario& sc, const YamlView& wl) {
  const ResourceEstimate est = estimate_resources(sc);
  const double have = physical_memory_bytes();
  if (have <= 0 || est.bytes <= have) return;
  const bool records = sc.routing.keep_scores;
  wl.at("tokens_per_rank").error(
      fmt::format("needs about {} of memory for the routing plan{}, more than this machine has; lower "
                  "tokens_per_rank or simulation.layers",
                  format_bytes(est.bytes), records ? " (keep_scores keeps 9 bytes per token and expert)" : ""),
      wl.at("tokens_per_rank").shown());
}

// simulation.dp_replicas -> Scenario::dp_simulated (see there). Representative replicas are exact when every
// replica is the same work on the same kind of hardware, unshared: the cluster says its servers are identical
// and its fabric can never bind beyond the NICs (topo::Cluster::identical_nodes_nonblocking), each replica
// fills whole servers, and ranks sit on GPUs in order (replica d on servers d x n .. d x n + n - 1).
void resolve_dp_replicas(Scenario& sc, const YamlView& sim) {
  sc.dp_simulated = sc.dp;
  sc.dp_representative_block.clear();
  const int keep = sc.mode == models::Mode::training ? 2 : 1;
  if (sc.dp_replicas == "all" || sc.dp <= keep) return;  // nothing left out: no approximation to name
  const topo::Cluster& c = sc.cluster;
  bool in_order = true;
  for (std::size_t i = 0; i < sc.rank_gpu.size(); ++i) in_order = in_order && sc.rank_gpu[i] == static_cast<int>(i);
  std::string& why = sc.dp_representative_block;
  if (!c.identical_nodes_nonblocking)
    why = c.family != "multi_node"
              ? fmt::format("cluster family {} does not declare identical servers on a non-blocking fabric (only "
                            "multi_node does)", c.family)
              : "the fabric is oversubscribed: the replicas' all-to-alls can contend on its uplinks";
  else if (sc.ep % c.gpus_per_node != 0)
    why = fmt::format("a replica's {} ranks do not fill whole servers of {} GPUs: replicas would share a server's "
                      "links", sc.ep, c.gpus_per_node);
  else if (!in_order)
    why = "parallelism.gpus places the ranks by hand: replicas may sit on different kinds of links";
  if (why.empty()) {
    sc.dp_simulated = keep;
  } else if (sc.dp_replicas == "representative") {
    sim.at("dp_replicas").error(fmt::format("cannot simulate representative DP replicas: {}; use auto or all", why),
                                sim.at("dp_replicas").shown());
  }
}

Scenario decode(const YamlView& root, const std::string& file, const std::string& text, Diagnostics& diags) {
  Scenario sc;
  sc.file = file;
  sc.sha256 = sha256_hex(text);
  // Assigned whole, not `base_dir = "."` on an empty string: GCC 12 at -O3 flags that with a false
  // -Wrestrict (GCC PR 105651).
  std::string base_dir = std::filesystem::path(file).parent_path().string();
  sc.base_dir = base_dir.empty() ? std::string(".") : std::move(base_dir);
  if (!root.expect_map()) return sc;
  root.check_keys({"version", "name", "description", "model", "cluster", "gpu", "parallelism", "workload",
                   "variants", "baseline", "simulation", "sweep", "plan"});  // sweep: sim/sweep.cpp, plan: sim/plan.cpp
  if (root.require("version")) root.at("version").as_integer(Range::between(1, 1));
  sc.name = root.str("name");
  sc.description = root.str_or("description", "");
  const std::string dd = data_dir();

  // model. Later checks that read the model (placement, routing, trace rows, variants) run only when it
  // decoded cleanly: a failed model leaves fields (top_k, moe layers) unset.
  const std::size_t errors_before_model = diags.size();
  if (root.require("model")) sc.arch = models::decode_architecture(root.at("model"), dd);
  const bool model_ok = diags.size() == errors_before_model && root.has("model");

  // cluster
  if (root.require("cluster")) {
    YamlView c = root.at("cluster");
    sc.cluster = topo::decode_cluster(c, dd);
    sc.cluster_name = c.is_scalar() ? c.as_str() : c.str_or("name", "inline");
  }

  // gpu: a profile id or path; default = the GPU the cluster preset names.
  YamlView gpu = root.at("gpu");
  bool profile_given = false;
  if (gpu.defined() && gpu.expect_map()) {
    gpu.check_keys({"profile"});
    if (gpu.has("profile")) {
      profile_given = true;
      if (auto p = models::resolve_profile(gpu.at("profile"), dd, sc.base_dir)) sc.profile = std::move(*p);
    }
  }
  if (!profile_given && root.has("cluster")) {
    if (sc.cluster.default_gpu_profile.empty()) {
      if (diags.empty()) root.error("missing gpu.profile: the cluster names no default GPU profile");
    } else {
      try {
        sc.profile = models::load_profile(sc.cluster.default_gpu_profile, dd);
      } catch (const InputError& e) {
        for (const auto& d : e.diagnostics().items()) diags.add(d);
      }
    }
  }

  // An fp8 model needs a GPU with fp8 tensor cores.
  if (diags.empty() && sc.arch.dtype == models::DType::fp8 && sc.profile.peak_fp8 <= 0) {
    const std::string rule = fmt::format("model {} computes in fp8 but GPU profile {} has no fp8 peak; pick another "
                                         "GPU or set model dtype: bf16", sc.arch.name, sc.profile.id);
    if (profile_given) gpu.at("profile").error(rule, gpu.at("profile").shown());
    else root.at("model").error(rule, root.at("model").shown());
  }

  // parallelism
  YamlView par = root.at("parallelism");
  const std::size_t errors_before_par = diags.size();
  if (root.require("parallelism") && par.expect_map()) {
    par.check_keys({"ep", "etp", "dp", "dp_bucket", "placement", "gpus"});
    sc.dp = static_cast<int>(par.integer_or("dp", 1, Range::between(1, limits::kMaxGpus)));
    // PyTorch DDP's default bucket_cap_mb = 25 MiB (models/step_ops.hpp).
    sc.dp_bucket_bytes =
        par.quantity_or("dp_bucket", Dim::bytes, models::kDefaultDpBucketBytes, Range::between(1.0, limits::kMaxBytes));
    const int ep_degree = static_cast<int>(par.integer("ep", Range::between(1, 1 << 20)));
    sc.etp = static_cast<int>(par.integer_or("etp", 1, Range::between(1, 64)));
    if (sc.etp & (sc.etp - 1)) par.at("etp").error("must be a power of two (1, 2, 4, ..., 64)", par.at("etp").shown());
    else if (model_ok && sc.arch.expert_ffn % sc.etp != 0)
      par.at("etp").error(fmt::format("must divide the expert FFN width (model.expert_ffn = {}): each rank of a "
                                      "group holds expert_ffn / etp neurons of every expert of the group",
                                      sc.arch.expert_ffn),
                          par.at("etp").shown());
    else if (model_ok)
      for (const models::Stage& st : sc.arch.stages)
        if (st.expert_ffn % sc.etp != 0) {
          par.at("etp").error(fmt::format("must divide the expert FFN width of every stage (stage {}: expert_ffn = "
                                          "{})", st.name, st.expert_ffn),
                              par.at("etp").shown());
          break;
        }
    sc.ep = ep_degree * sc.etp;
    const int all_ranks = sc.ep * sc.dp;
    const std::string ranks_rule =
        sc.dp > 1 ? fmt::format("dp x ep{} = {}", sc.etp > 1 ? " x etp" : "", all_ranks)
                  : sc.etp > 1 ? fmt::format("ep x etp = {}", sc.ep) : fmt::format("ep = {}", sc.ep);
    const int gpus = static_cast<int>(sc.cluster.gpu_count());
    if (par.has("gpus")) {
      std::set<int64_t> seen;
      for (const YamlView& g : par.at("gpus").items()) {
        const std::size_t n_before = diags.size();
        int64_t id = g.as_integer(Range::between(0, std::max(0, gpus - 1)));
        if (diags.size() == n_before && !seen.insert(id).second) g.error("GPU listed twice", g.shown());
        sc.rank_gpu.push_back(static_cast<int>(id));
      }
      if (static_cast<int>(sc.rank_gpu.size()) != all_ranks)
        par.at("gpus").error(fmt::format("must list exactly {} GPU ids (one per rank)", ranks_rule),
                             fmt::format("{} ids", sc.rank_gpu.size()));
    } else if (gpus > 0) {
      if (all_ranks > gpus)
        par.at(sc.dp > 1 ? "dp" : "ep")
            .error(sc.etp > 1 || sc.dp > 1 ? fmt::format("more ranks ({}) than GPUs in the cluster ({})", ranks_rule, gpus)
                                           : fmt::format("more EP ranks than GPUs in the cluster ({})", gpus),
                   par.at(sc.dp > 1 ? "dp" : "ep").shown());
      for (int r = 0; r < std::min(all_ranks, gpus); ++r) sc.rank_gpu.push_back(r);
    }
    if (diags.size() == errors_before_par && model_ok && sc.arch.routed_experts > 0) {
      if (sc.etp == 1) {
        sc.placement = models::decode_placement(par.at("placement"), sc.arch.routed_experts, sc.ep, par.at("ep"));
      } else {
        // Experts are placed over the ep groups; every rank of a group holds (a 1/etp shard of) each of the
        // group's experts, so the rank-level placement lists each expert on all ranks of its group(s).
        const models::Placement groups =
            models::decode_placement(par.at("placement"), sc.arch.routed_experts, ep_degree, par.at("ep"));
        if (groups.ranks() == ep_degree) {  // else decode_placement reported why
          std::vector<std::vector<int>> slots(static_cast<std::size_t>(sc.ep));
          for (int r = 0; r < sc.ep; ++r) slots[static_cast<std::size_t>(r)] = groups.experts_of_rank(r / sc.etp);
          sc.placement = models::Placement::from_slots(sc.arch.routed_experts, slots);
        }
      }
    }
  }

  // workload
  YamlView wl = root.at("workload");
  if (root.require("workload") && wl.expect_map()) {
    wl.check_keys({"mode", "tokens_per_rank", "context_tokens", "routing", "seed", "steps", "drift", "modalities"});
    sc.mode = mode_from(wl.choice("mode", kModes));
    sc.tokens_per_rank = wl.integer("tokens_per_rank", Range::between(1, 1e9));
    if (sc.mode == models::Mode::decode)
      sc.context_tokens = wl.integer("context_tokens", Range::between(1, 1e8));
    else
      sc.context_tokens = wl.integer_or("context_tokens", sc.tokens_per_rank, Range::between(1, 1e8));
    sc.seed = static_cast<uint64_t>(wl.integer_or("seed", 1, Range::between(0, 9.0e18)));
    sc.steps = static_cast<int>(wl.integer_or("steps", 1, Range::between(1, limits::kMaxSteps)));
    if (model_ok && sc.arch.routed_experts > 0 && sc.ep > 0) {
      sc.routing = models::decode_routing(wl.at("routing"), sc.arch, sc.ep, sc.base_dir);
      sc.routing.drift = models::decode_drift(wl.at("drift"));
      if (wl.has("modalities") && !sc.arch.stages.empty())
        wl.error_at("modalities", "is not modelled for a model built of stages (model.stages): a request's token "
                                  "runs are drawn on the workload's tokens, not each stage's");
      else if (wl.has("modalities")) models::decode_modalities(wl.at("modalities"), sc.arch, sc.ep, sc.base_dir, sc.routing);
      else if (sc.arch.vision_experts > 0)
        wl.error_at("modalities", fmt::format("model {} has vision experts: the workload must say which tokens are "
                                              "vision tokens (workload.modalities)", sc.arch.name));
      // Drift moves a popularity ranking: zipf, or hot with a count (an explicit hot list is fixed).
      auto ranked = [](const models::RoutingSpec& r) {
        return r.distribution == models::RoutingDistribution::zipf ||
               (r.distribution == models::RoutingDistribution::hot && r.hot_experts.empty());
      };
      if (sc.routing.drift.kind != models::DriftKind::none && !ranked(sc.routing) &&
          !(sc.routing.vision && ranked(*sc.routing.vision)))
        wl.error_at("drift", "needs zipf routing or hot routing with a count of hot experts (a ranking that can move)");
      if (sc.routing.distribution == models::RoutingDistribution::trace && sc.steps > 1 &&
          sc.routing.trace_file.find("{step}") != std::string::npos)
        models::load_step_traces(wl.at("routing").at("file"), sc.arch, sc.ep, sc.steps, sc.routing);
    }
  }

  // routing.sampler: counts where a variant needs per-token records (its schedule reads gate scores, or a
  // multimodal batch has a capacity) is refused, naming the variant.
  auto check_sampler = [&](const models::VariantSpec& spec, const YamlView& v) {
    const models::RoutingSpec r = variant_routing(sc.routing, spec);
    if (r.sampler != models::Sampler::counts) return;
    if (const std::string why = models::needs_token_sampler(r); !why.empty()) {
      const YamlView at = spec.routing ? v.at("routing") : wl.at("routing");
      at.error_at("sampler", fmt::format("counts cannot draw the routing of variant '{}': {}", spec.name, why));
    }
  };

  // capacity_mode pad (checked per variant too when a variant has its own routing).
  static constexpr const char* kPadReplicated =
      "pad is not modelled with replicated experts (placement.replicate, parallelism.etp)";
  if (sc.routing.capacity_pad && sc.placement.replicated()) wl.at("routing").error_at("capacity_mode", kPadReplicated);

  // variants
  std::set<std::string> names;
  if (root.require("variants")) {
    auto items = root.at("variants").items();
    if (items.empty() && root.at("variants").is_sequence()) root.at("variants").error("must list at least one variant");
    for (const YamlView& v : items) {
      if (!model_ok || sc.arch.routed_experts <= 0 || sc.ep <= 0) break;  // model or parallelism already reported broken
      models::VariantSpec spec = models::decode_variant(v, sc.arch, sc.ep, sc.base_dir, &sc.profile, sc.mode, sc.etp);
      if (spec.routing) {
        if (sc.routing.requests) v.error_at("routing", "cannot override the routing of a multimodal workload (set "
                                                       "workload.modalities instead)");
        spec.routing->drift = sc.routing.drift;
      }
      // capacity_mode pad: buffers of replicated experts have no split rule, and some schedules derive
      // their pairs themselves.
      const bool pad = spec.routing ? spec.routing->capacity_pad : sc.routing.capacity_pad;
      const models::ScheduleInfo* info = models::find_schedule(spec.schedule);
      check_sampler(spec, v);
      if (pad && spec.routing && sc.placement.replicated())
        v.at("routing").error_at("capacity_mode", kPadReplicated);
      else if (pad && info && !info->supports_capacity_pad)
        v.at("schedule").error("does not model padded capacity buffers (routing.capacity_mode: pad)", spec.schedule);
      // A schedule may expand one entry into several variants (a sweep: dualsparse `thresholds:`); each is a
      // variant of its own, so its name must be unique too (the error points at the entry's name).
      std::vector<models::VariantSpec> expanded;
      if (info && info->expand) expanded = info->expand(spec);
      if (expanded.empty()) expanded.push_back(std::move(spec));
      for (auto& e : expanded) {
        if (!e.name.empty() && !names.insert(e.name).second) v.at("name").error("duplicate variant name", e.name);
        sc.variants.push_back(std::move(e));
      }
    }
  }
  // routing.sampler auto decides once for the workload's routing, not per variant: when one variant that
  // routes with it needs per-token records, every such variant draws tokens, so all of them are compared on
  // the same draws (a topk baseline and a dualsparse variant without dropping give the same times).
  if (sc.routing.sampler == models::Sampler::automatic)
    for (const auto& spec : sc.variants)
      if (!spec.routing && !models::needs_token_sampler(variant_routing(sc.routing, spec)).empty()) {
        sc.routing.sampler = models::Sampler::tokens;
        break;
      }
  if (root.has("baseline")) {
    // A variant name, or {variant: name, scope: moe_layer | block | step}. (No YamlView is re-assigned here:
    // assigning a yaml-cpp node overwrites the node it refers to.)
    const YamlView b = root.at("baseline");
    const bool mapped = b.is_map();
    if (mapped) {
      b.check_keys({"variant", "scope"});
      sc.baseline = b.str("variant");
      sc.speedup_scope = b.choice_or("scope", {"moe_layer", "block", "step"}, "block");
    } else {
      sc.baseline = root.str("baseline");
    }
    if (!sc.baseline.empty() && !sc.variants.empty() && !names.count(sc.baseline)) {
      const YamlView name_at = mapped ? b.at("variant") : b;
      std::vector<std::string> all(names.begin(), names.end());
      std::string hint = closest_match(sc.baseline, all);
      name_at.error(hint.empty() ? "must name a variant" : fmt::format("must name a variant; did you mean '{}'?", hint),
                    name_at.shown());
    }
  }

  // simulation
  YamlView sim = root.at("simulation");
  if (sim.defined() && sim.expect_map()) {
    sim.check_keys({"fidelity", "precision", "layers", "dp_replicas"});
    const std::string f = sim.choice_or("fidelity", {"auto", "exact", "fast"}, "auto");
    sc.fidelity = f == "exact" ? FidelityRequest::exact : f == "fast" ? FidelityRequest::fast : FidelityRequest::auto_;
    sc.precision_s = sim.quantity_or("precision", Dim::seconds, 1e-9, Range::between(1e-12, 1e-3));
    sc.layers_limit = static_cast<int>(sim.integer_or("layers", 0, Range::between(1, 100000)));
    sc.dp_replicas = sim.choice_or("dp_replicas", {"auto", "all", "representative"}, "auto");
  }
  if (diags.empty()) resolve_dp_replicas(sc, sim);
  if (diags.empty()) check_memory(sc, wl);
  return sc;
}

}  // namespace

Scenario load_scenario_text(const std::string& text, const std::string& name) {
  Diagnostics diags;
  YamlView root = YamlView::load_string(text, name, &diags);
  Scenario sc;
  if (diags.empty()) sc = decode(root, name, text, diags);
  // A sweep: section is checked whole, every point decoded (the scenario as written is what `run` simulates).
  if (diags.empty() && root.has("sweep")) {
    const SweepPlan plan = decode_sweep(root.at("sweep"));
    if (diags.empty()) check_sweep_points(name, text, plan, diags);
  }
  // A plan: section is checked here too (its candidates are decoded when the plan runs: sim/plan.cpp).
  if (diags.empty() && root.has("plan"))
    decode_plan(root.at("plan"), sc.mode == models::Mode::training ? "training"
                                 : sc.mode == models::Mode::decode ? "decode"
                                                                   : "inference_prefill");
  if (!diags.empty()) throw InputError(std::move(diags));
  return sc;
}

Scenario decode_scenario_tree(const YAML::Node& root, const std::string& file, const std::string& text) {
  Diagnostics diags;
  Scenario sc = decode(YamlView::from_node(root, file, &diags), file, text, diags);
  if (!diags.empty()) throw InputError(std::move(diags));
  return sc;
}

Scenario load_scenario(const std::string& path) {
  std::string why;
  std::optional<std::string> text = read_input_file(path, kMaxYamlFileBytes, &why);
  if (!text) {
    Diagnostics d;
    d.add({path, 1, 1, "", why, ""});
    throw InputError(std::move(d));
  }
  return load_scenario_text(*text, path);
}

}  // namespace moesim
