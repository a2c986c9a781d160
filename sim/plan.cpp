#include "sim/plan.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>

#include "models/cost_model.hpp"
#include "models/profile.hpp"
#include "models/step_ops.hpp"
#include "sim/csv_field.hpp"
#include "sim/input_file.hpp"
#include "sim/runner.hpp"
#include "sim/sweep.hpp"
#include "sim/worker_pool.hpp"

namespace moesim {

namespace {

// "2.49USD/h", "2.49 USD/h": USD per GPU-hour. nullopt when malformed.
std::optional<double> parse_usd_per_hour(const std::string& s) {
  const std::string unit = "USD/h";
  if (s.size() <= unit.size() || s.compare(s.size() - unit.size(), unit.size(), unit) != 0) return std::nullopt;
  std::string num = s.substr(0, s.size() - unit.size());
  while (!num.empty() && num.back() == ' ') num.pop_back();
  if (num.empty()) return std::nullopt;
  char* end = nullptr;
  const double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

const char* target_key(PlanTarget t) {
  return t == PlanTarget::tokens_per_s ? "tokens_per_s" : t == PlanTarget::step_time ? "step_time" : "token_latency";
}

}  // namespace

PlanSpec decode_plan(const YamlView& section, const std::string& mode) {
  PlanSpec spec;
  if (!section.expect_map()) return spec;
  section.check_keys({"target", "global_tokens", "menu"});
  if (section.require("target")) {
    const YamlView t = section.at("target");
    if (t.expect_map()) {
      t.check_keys({"tokens_per_s", "step_time", "token_latency"});
      const int given = (t.has("tokens_per_s") ? 1 : 0) + (t.has("step_time") ? 1 : 0) + (t.has("token_latency") ? 1 : 0);
      if (given != 1) {
        t.error("give exactly one of tokens_per_s, step_time, token_latency", fmt::format("{} given", given));
      } else if (t.has("tokens_per_s")) {
        spec.target = PlanTarget::tokens_per_s;
        spec.target_value = t.number("tokens_per_s", Range::positive());
      } else if (t.has("step_time")) {
        spec.target = PlanTarget::step_time;
        spec.target_value = t.quantity("step_time", Dim::seconds);
      } else {
        spec.target = PlanTarget::token_latency;
        spec.target_value = t.quantity("token_latency", Dim::seconds);
        if (mode != "decode")
          t.error_at("token_latency", fmt::format("a per-token latency target needs workload.mode decode (the "
                                                  "scenario's mode is {})", mode.empty() ? "not given" : mode));
      }
    }
  }
  if (section.has("global_tokens"))
    spec.global_tokens = section.integer("global_tokens", Range::between(1, 1e12));
  if (section.require("menu")) {
    const YamlView menu = section.at("menu");
    if (menu.expect_map()) {
      menu.check_keys({"gpus", "ep"});
      if (menu.require("gpus")) {
        const YamlView gl = menu.at("gpus");
        if (!gl.is_sequence() || gl.raw().size() == 0) gl.error("must be a non-empty list of GPU offers", gl.shown());
        else {
          std::set<std::string> seen;
          for (const YamlView& g : gl.items()) {
            if (!g.expect_map()) continue;
            g.check_keys({"profile", "price_per_gpu_hour", "source", "clusters"});
            PlanGpu pg;
            pg.profile = g.str("profile");
            // A profile id must name a shipped profile (a path, with '/' or ending in .yaml, is loaded per
            // candidate by the ordinary decoder, which reports its problems there).
            const bool is_path = pg.profile.find('/') != std::string::npos ||
                                 (pg.profile.size() > 5 && pg.profile.compare(pg.profile.size() - 5, 5, ".yaml") == 0);
            if (!pg.profile.empty() && !is_path) {
              const std::vector<std::string> ids = models::list_profiles(data_dir());
              if (std::find(ids.begin(), ids.end(), pg.profile) == ids.end())
                g.at("profile").error(unknown_name_rule("unknown GPU profile", "profiles", pg.profile, ids), pg.profile);
            }
            if (!pg.profile.empty() && !seen.insert(pg.profile).second)
              g.error_at("profile", "GPU profile listed twice (give one entry with all its clusters)");
            if (g.require("price_per_gpu_hour")) {
              const YamlView p = g.at("price_per_gpu_hour");
              const auto v = p.is_scalar() ? parse_usd_per_hour(p.as_str()) : std::nullopt;
              if (!v) p.error("a price with its unit, e.g. \"2.49USD/h\" (US dollars per GPU-hour)", p.shown());
              else if (*v <= 0) p.error("must be > 0", p.shown());
              else pg.price_per_gpu_hour = *v;
            }
            if (g.require("source")) {
              pg.source = g.str("source");
              if (pg.source.empty()) g.error_at("source", "must say where the price comes from (a URL and date, or "
                                                          "\"example input\")");
            }
            if (g.require("clusters")) {
              const YamlView cl = g.at("clusters");
              if (!cl.is_sequence() || cl.raw().size() == 0)
                cl.error("must be a non-empty list of cluster presets or inline clusters", cl.shown());
              else
                for (const YamlView& c : cl.items()) {
                  if (c.is_scalar()) {
                    // A preset name must name a shipped cluster preset (an inline cluster is checked by the
                    // ordinary decoder when the candidate is decoded; its problems make the candidate invalid).
                    const std::vector<std::string> presets = yaml_file_stems(fmt::format("{}/topologies/presets", data_dir()));
                    if (std::find(presets.begin(), presets.end(), c.as_str()) == presets.end()) {
                      c.error(unknown_name_rule("unknown topology preset", "presets", c.as_str(), presets), c.as_str());
                      continue;
                    }
                    pg.cluster_labels.push_back(c.as_str());
                  }
                  else if (c.is_map()) pg.cluster_labels.push_back(c.str_or("name", "inline"));
                  else {
                    c.error("a cluster preset name or an inline cluster mapping", c.shown());
                    continue;
                  }
                  pg.clusters.push_back(c.raw());
                }
            }
            spec.gpus.push_back(std::move(pg));
          }
        }
      }
      if (menu.has("ep")) {
        const YamlView el = menu.at("ep");
        if (!el.is_sequence() || el.raw().size() == 0) el.error("must be a non-empty list of EP degrees", el.shown());
        else
          for (const YamlView& e : el.items()) spec.ep.push_back(static_cast<int>(e.as_integer(Range::between(1, 1 << 20))));
      }
    }
  }
  return spec;
}

// ------------------------------------------------------------------------------------------------------------
// Memory and the lower bound.

RankMemory estimate_rank_memory(const Scenario& sc) {
  const models::CostModel cost(sc.profile, sc.arch);
  const models::StepOpCosts ops(cost);
  const models::Architecture& a = sc.arch;
  // Every rank holds the non-expert blocks, the embedding and LM head (no pipeline or tensor parallelism of
  // them: the simulator's step, schedule_util.cpp), and its routed experts (replicas included) in every MoE layer.
  double dense = ops.outer_params();
  for (int l = 0; l < a.layers; ++l) dense += ops.block_params(l);
  double experts = 0;
  for (int r = 0; r < sc.ep; ++r) experts = std::max(experts, ops.expert_params(sc.placement.experts_of_rank(r), sc.etp));
  RankMemory m;
  m.params = dense + a.moe_layer_count() * experts;
  m.weights = m.params * models::dtype_bytes(a.dtype);
  const double t = static_cast<double>(sc.tokens_per_rank), h = a.hidden;
  // KV cache per token and layer, bf16 (kActBytes = 2): MLA keeps the latent + the rope key, MHA/GQA a key and
  // a value per KV head (models/cost_model.cpp attention_core reads exactly these bytes).
  const double kv_per_token_layer =
      (a.attention.kind == models::AttentionKind::mla ? a.attention.kv_lora_rank + a.attention.qk_rope_head_dim
                                                      : 2.0 * a.attention.kv_heads * a.attention.head_dim) *
      2.0;
  if (sc.mode == models::Mode::training) {
    // Mixed-precision Adam: 16 B per parameter in all (ZeRO, Rajbhandari et al., SC'20, sec. 3): the weight,
    // 2 B bf16 gradient, 12 B fp32 master weight, momentum and variance (models/step_ops.hpp).
    m.grads = 2.0 * m.params;
    m.optimizer = 12.0 * m.params;
    // Activations kept for backward: 34 h bytes per token and layer, the 16-bit transformer layer of Korthikanti
    // et al., "Reducing Activation Recomputation in Large Transformer Models" (MLSys 2023), eq. 1, with flash
    // attention (no s x s score matrix: the 5 a s / h term drops). It counts a dense 4h MLP; an MoE layer's
    // expert inputs/intermediates scale with top_k instead, which this estimate does not model.
    m.activations = 34.0 * h * t * a.layers;
  } else {
    // Inference keeps one layer's activations live at a time: the same 34 h bytes per token, one layer.
    m.activations = 34.0 * h * t;
    // Prefill writes the batch's own KV; decode reads tokens_per_rank sequences of context_tokens each.
    const double cached = sc.mode == models::Mode::decode ? t * static_cast<double>(sc.context_tokens) : t;
    m.kv_cache = cached * kv_per_token_layer * a.layers;
  }
  return m;
}

double step_time_lower_bound(const Scenario& sc) {
  const models::Architecture& a = sc.arch;
  const models::Profile& p = sc.profile;
  // The highest peak of the profile: no GEMM of any precision runs faster (roofline efficiencies are <= 1 and
  // a measured table cannot beat the peak).
  const double peak = std::max({p.peak_bf16, p.peak_fp8, p.peak_fp4});
  if (peak <= 0) return 0;
  const bool training = sc.mode == models::Mode::training;
  const bool decode = sc.mode == models::Mode::decode;
  const double t = static_cast<double>(sc.tokens_per_rank), h = a.hidden;
  // GEMM parameters every token passes through whatever the schedule does with the routed experts: the shared
  // experts of MoE layers and the MLP of dense layers. Attention projections are left out (absorbed MLA in
  // decode computes other products than the weights' count suggests), routed experts too (a schedule may drop
  // or skip pairs).
  double per_token = 0;
  for (int l : sc.simulated_layers())
    per_token += a.is_moe_layer(l) ? models::ffn_matrices(a.expert_activation) * h * a.shared_ffn_total()
                                   : models::ffn_matrices(a.dense_activation) * h * a.dense_ffn;
  double flops = 2.0 * t * per_token;
  // The LM head: rows x V x h (the simulator runs it when the model has a vocabulary and all layers are simulated).
  if (a.vocab_size > 0 && (sc.layers_limit == 0 || sc.layers_limit >= a.layers))
    flops += 2.0 * static_cast<double>(models::lm_head_rows(training, decode, sc.tokens_per_rank, sc.context_tokens)) *
             a.vocab_size * h;
  // Training: forward + backward (input and weight gradients: twice the forward).
  if (training) flops *= 3.0;
  return flops * static_cast<double>(std::max(1, sc.steps)) / peak;
}

double alltoall_lower_bound(const Scenario& sc, const models::VariantSpec& v) {
  const models::Architecture& a = sc.arch;
  // Schedules whose all-to-alls carry every routed pair of the plan (LayerEmitter::all_to_all with the routing
  // plan's matrix; pipelined splits it into chunks that sum to it). Others drop pairs (dualsparse), move
  // replicas (eplb, realb), or were not checked (scmoe: top-1, so the term is 0 anyway with E >= EP).
  static const std::set<std::string> kFullPairs{"topk", "pipelined", "shared_expert"};
  if (!kFullPairs.count(v.schedule) || sc.etp != 1 || !a.stages.empty()) return 0;
  const models::RoutingSpec r = variant_routing(sc.routing, v);
  if (r.capacity_factor || r.distribution == models::RoutingDistribution::trace || r.requests || r.vision) return 0;
  const int k = v.top_k > 0 ? v.top_k : a.top_k;
  int moe_layers = 0;
  for (int l : sc.simulated_layers()) moe_layers += a.is_moe_layer(l) ? 1 : 0;
  const int ep = sc.ep, ranks = static_cast<int>(sc.rank_gpu.size());
  if (k <= 0 || moe_layers == 0 || ep < 2 || ranks < ep) return 0;
  const double bytes_per_pair = static_cast<double>(a.hidden) * models::dtype_bytes(a.dtype);
  const double passes = (sc.mode == models::Mode::training ? 2.0 : 1.0) * moe_layers * std::max(1, sc.steps);
  const PlatformSpec platform = sc.cluster.lower(sc.rank_gpu);
  // A link direction's capacity (bytes/s): a full-duplex link has bandwidth_Bps per direction, a half-duplex
  // one shares it between both, so it is keyed without its direction.
  auto key = [&](const LinkUse& u) {
    return platform.links[u.link].full_duplex ? 2 * static_cast<std::size_t>(u.link) + u.forward
                                              : 2 * static_cast<std::size_t>(u.link);
  };
  double bound = 0;
  for (int g = 0; g < ranks; ++g) {
    const int local = static_cast<int>(sc.placement.experts_of_rank(g % ep).size());
    const double remote_pairs = static_cast<double>(sc.tokens_per_rank) * std::max(0, k - local);
    if (remote_pairs <= 0) continue;
    std::set<std::size_t> out, in;
    const auto gi = static_cast<std::size_t>(sc.rank_gpu[static_cast<std::size_t>(g)]);
    for (int h = g / ep * ep; h < g / ep * ep + ep; ++h) {
      if (h == g) continue;
      const auto gh = static_cast<std::size_t>(sc.rank_gpu[static_cast<std::size_t>(h)]);
      if (gh == gi) return 0;  // two ranks on one GPU: their pairs need no link
      const auto to = platform.route(gi, gh), from = platform.route(gh, gi);
      if (to.empty() || from.empty()) return 0;
      out.insert(key(to.front()));
      in.insert(key(from.back()));
    }
    auto capacity = [&](const std::set<std::size_t>& chans) {
      double bw = 0;
      for (std::size_t c : chans) bw += platform.links[c / 2].bandwidth_Bps;
      return bw;
    };
    // Dispatch out (and the combine's gradient in training) leave by `out`; the combine (and the dispatch's
    // gradient) come back by `in`. Full-duplex links carry both at once, so the larger of the two, not the sum.
    const double bytes = passes * remote_pairs * bytes_per_pair;
    bound = std::max({bound, bytes / capacity(out), bytes / capacity(in)});
  }
  return bound;
}

StepBound step_bound(const Scenario& sc, const models::VariantSpec& v) {
  return {step_time_lower_bound(sc), alltoall_lower_bound(sc, v)};
}

// ------------------------------------------------------------------------------------------------------------
// Pricing.

void price_candidate(const PlanSpec& spec, PlanCandidate& c) {
  const double tokens_per_step = static_cast<double>(c.tokens_per_rank) * c.ranks;
  c.tokens_per_s = c.step_time_s > 0 ? tokens_per_step / c.step_time_s : 0;
  const double instance_per_h = c.price_per_gpu_hour * c.gpus;
  if (spec.target == PlanTarget::tokens_per_s) {
    // Enough identical instances (data-parallel replicas of the whole configuration) to reach the rate.
    c.replicas = c.tokens_per_s > 0 ? static_cast<int>(std::ceil(spec.target_value / c.tokens_per_s - 1e-12)) : 0;
    c.replicas = std::max(1, c.replicas);
    c.meets_target = c.tokens_per_s > 0;
  } else {
    c.replicas = 1;
    c.meets_target = c.step_time_s <= spec.target_value;
  }
  c.cost_per_h = c.replicas * instance_per_h;
  c.usd_per_mtok = c.tokens_per_s > 0 ? instance_per_h / (c.tokens_per_s * 3600.0) * 1e6 : 0;
}

namespace {

// The cost lower bound (USD/h) of a candidate from its step-time bound; +inf when the bound misses the target.
double cost_bound(const PlanSpec& spec, const PlanCandidate& c) {
  const double instance_per_h = c.price_per_gpu_hour * c.gpus;
  if (spec.target == PlanTarget::tokens_per_s) {
    const double tokens_per_step = static_cast<double>(c.tokens_per_rank) * c.ranks;
    // The step takes at least bound_step_s, so one instance makes at most tokens_per_step / bound tokens/s.
    const double max_rate = c.bound_step_s > 0 ? tokens_per_step / c.bound_step_s : std::numeric_limits<double>::infinity();
    const double replicas = std::max(1.0, std::ceil(spec.target_value / max_rate - 1e-12));
    return replicas * instance_per_h;
  }
  return instance_per_h;
}

bool better(const PlanCandidate& a, const PlanCandidate& b) {
  if (a.cost_per_h != b.cost_per_h) return a.cost_per_h < b.cost_per_h;
  if (a.step_time_s != b.step_time_s) return a.step_time_s < b.step_time_s;
  return a.index < b.index;
}

std::string gb(double bytes) { return fmt::format("{:.1f} GB", bytes / 1e9); }

std::string memory_reason(const RankMemory& m, double cap) {
  std::string parts = fmt::format("weights {}", gb(m.weights));
  if (m.grads > 0) parts += fmt::format(", gradients {}", gb(m.grads));
  if (m.optimizer > 0) parts += fmt::format(", Adam state {}", gb(m.optimizer));
  if (m.kv_cache > 0) parts += fmt::format(", KV cache {}", gb(m.kv_cache));
  parts += fmt::format(", activations {}", gb(m.activations));
  return fmt::format("needs {} per GPU > {}: {}", gb(m.total()), gb(cap), parts);
}

// What binds a simulated candidate: memory when it fills >= 90 % of the GPU, else the larger of compute and
// exposed communication, with their shares of the step.
std::string binding(const PlanCandidate& c) {
  const double mem = c.memory_capacity > 0 ? c.memory.total() / c.memory_capacity : 0;
  const double comp = c.step_time_s > 0 ? c.compute_s / c.step_time_s : 0;
  const double exposed = c.step_time_s > 0 ? c.exposed_comm_s / c.step_time_s : 0;
  std::string what = comp >= exposed ? "compute" : "exposed communication";
  if (mem >= 0.9) what = "memory";
  return fmt::format("{} (compute {:.0f}% of the step, exposed communication {:.0f}%, memory {:.0f}% of the GPU)",
                     what, 100 * comp, 100 * exposed, 100 * mem);
}

// Winner, runner-up and the counts from the candidates' statuses (the simulated ones priced).
void rank_plan(PlanOutcome& o) {
  std::vector<std::size_t> ranked;
  o.simulated = o.pruned = 0;
  for (const auto& c : o.candidates) {
    o.simulated += c.status == "simulated" ? 1 : 0;
    o.pruned += c.status == "pruned" ? 1 : 0;
    if (c.status == "simulated" && c.meets_target) ranked.push_back(c.index);
  }
  std::sort(ranked.begin(), ranked.end(),
            [&](std::size_t a, std::size_t b) { return better(o.candidates[a], o.candidates[b]); });
  o.winner.reset();
  o.runner_up.reset();
  if (!ranked.empty()) o.winner = ranked[0];
  if (ranked.size() >= 2) o.runner_up = ranked[1];
}

// Simulates the scenarios `scs` (each one variant) in worker processes, `jobs` at a time (one SimGrid
// simulation per process, DESIGN rule 5: run_scenario itself runs the variant in a child of the worker).
// Fills the simulated fields, or status failed with the error.
void simulate_batch(const std::vector<const Scenario*>& scs, const std::vector<PlanCandidate*>& cands, int jobs) {
  const auto work = [&](std::size_t i) -> WorkerAnswer {
    RunOptions ro;
    ro.jobs = 1;
    ro.only = {cands[i]->variant};
    const RunResult rr = run_scenario(*scs[i], ro);
    const VariantResult& r = rr.variants.at(0);
    return worker_ok(
        fmt::format("{:.17g} {:.17g} {:.17g} {:.17g}", r.step_time_s, r.compute_s, r.comm_s, r.exposed_comm_s));
  };
  const auto done = [&](const WorkerResult& w) {
    PlanCandidate& c = *cands[w.task];
    const WorkerReply r = read_worker_reply(w);
    double v[4];
    if (r.kind == WorkerReply::ok && std::sscanf(r.text.c_str(), "%lf %lf %lf %lf", &v[0], &v[1], &v[2], &v[3]) == 4) {
      c.status = "simulated";
      c.step_time_s = v[0], c.compute_s = v[1], c.comm_s = v[2], c.exposed_comm_s = v[3];
    } else {
      c.status = "failed";
      c.reason = r.kind == WorkerReply::error ? r.text : worker_death_text(w.status);
      while (!c.reason.empty() && c.reason.back() == '\n') c.reason.pop_back();
    }
  };
  WorkerPoolOptions opt;
  opt.jobs = jobs;
  run_worker_pool(scs.size(), work, done, opt);
}

}  // namespace

PlanOutcome run_plan(const std::string& file, const PlanOptions& opt) {
  std::string why;
  const std::optional<std::string> text = read_input_file(file, kMaxYamlFileBytes, &why);
  if (!text) {
    Diagnostics d;
    d.add({file, 1, 1, "", why, ""});
    throw InputError(std::move(d));
  }
  // The scenario as written must load (load_scenario_text also checks the plan: section).
  const Scenario base = load_scenario_text(*text, file);
  Diagnostics diags;
  const YamlView root = YamlView::load_string(*text, file, &diags);
  if (!root.has("plan"))
    throw std::invalid_argument(fmt::format("{} has no plan: section (scenarios/README.md \"plan\")", escape_control(file)));
  PlanOutcome out;
  out.scenario_name = base.name;
  const std::string mode_text = base.mode == models::Mode::training ? "training"
                                : base.mode == models::Mode::decode ? "decode"
                                                                    : "inference_prefill";
  out.spec = decode_plan(root.at("plan"), mode_text);
  if (!diags.empty()) throw InputError(std::move(diags));
  const PlanSpec& spec = out.spec;
  const std::vector<int> eps = spec.ep.empty() ? std::vector<int>{base.ep / std::max(1, base.etp)} : spec.ep;

  // Candidates: GPU x its clusters x EP degree x variant, each decoded by the ordinary decoder.
  std::vector<std::optional<Scenario>> scs;
  for (const PlanGpu& g : spec.gpus)
    for (std::size_t ci = 0; ci < g.clusters.size(); ++ci)
      for (int ep : eps)
        for (const auto& v : base.variants) {
          PlanCandidate c;
          c.index = out.candidates.size();
          c.gpu = g.profile, c.cluster = g.cluster_labels[ci], c.variant = v.name, c.schedule = v.schedule;
          c.ep = ep;
          c.price_per_gpu_hour = g.price_per_gpu_hour;
          std::optional<Scenario> sc;
          YAML::Node tree = YAML::Load(*text);
          tree.remove("plan");
          tree.remove("sweep");
          std::vector<std::pair<std::string, YAML::Node>> settings{
              {"cluster", g.clusters[ci]}, {"gpu.profile", YAML::Node(g.profile)}, {"parallelism.ep", YAML::Node(ep)}};
          const int ranks = ep * base.etp * base.dp;
          c.ranks = ranks;
          if (spec.global_tokens > 0) {
            if (spec.global_tokens % ranks != 0) {
              c.status = "invalid";
              c.reason = fmt::format("plan.global_tokens {} is not a multiple of the {} ranks", spec.global_tokens, ranks);
            } else {
              settings.push_back({"workload.tokens_per_rank", YAML::Node(spec.global_tokens / ranks)});
            }
          }
          if (c.status.empty()) {
            for (const auto& [key, value] : settings)
              if (auto problem = apply_sweep_setting(tree, key, value)) {
                c.status = "invalid";
                c.reason = fmt::format("cannot set {}: {}", key, *problem);
                break;
              }
          }
          if (c.status.empty()) {
            try {
              sc = decode_scenario_tree(tree, file, *text);
            } catch (const InputError& e) {
              c.status = "invalid";
              c.reason = e.diagnostics().items().empty() ? std::string("invalid") : e.diagnostics().items().front().rule;
            }
          }
          if (sc) {
            c.ranks = sc->ep * sc->dp;
            c.gpus = static_cast<int>(sc->cluster.gpu_count());
            c.tokens_per_rank = sc->tokens_per_rank;
            c.memory = estimate_rank_memory(*sc);
            c.memory_capacity = sc->profile.memory_bytes;
            const StepBound sb = step_bound(*sc, v);
            c.bound_compute_s = sb.compute_s;
            c.bound_comm_s = sb.comm_s;
            c.bound_step_s = sb.step_s();
            c.bound_binds = sb.binds();
            c.bound_cost_per_h = cost_bound(spec, c);
            if (c.memory.total() > c.memory_capacity) {
              c.status = "infeasible";
              c.reason = memory_reason(c.memory, c.memory_capacity);
            } else if (spec.target != PlanTarget::tokens_per_s && c.bound_step_s > spec.target_value) {
              c.status = "pruned";
              c.reason = fmt::format("lower bound {:.6g} s > target {} {:.6g} s", c.bound_step_s,
                                     target_key(spec.target), spec.target_value);
            }
          }
          out.candidates.push_back(std::move(c));
          scs.push_back(std::move(sc));
        }

  // Visit the open candidates in order of their cost lower bound; simulate a batch of `jobs` at a time; after
  // each batch prune every candidate whose bound exceeds the runner-up's cost (it can be neither winner nor
  // runner-up; ties are kept, they are decided by step time).
  std::vector<std::size_t> order;
  for (const auto& c : out.candidates)
    if (c.status.empty()) order.push_back(c.index);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return out.candidates[a].bound_cost_per_h < out.candidates[b].bound_cost_per_h;
  });
  std::vector<std::size_t> ranked;  // simulated candidates meeting the target, best first
  auto second_cost = [&]() {
    return ranked.size() >= 2 ? out.candidates[ranked[1]].cost_per_h : std::numeric_limits<double>::infinity();
  };
  out.order = order;
  const auto shards = static_cast<std::size_t>(std::max(1, opt.shard_size));
  std::size_t pos = 0;
  while (pos < order.size()) {
    std::vector<const Scenario*> batch_sc;
    std::vector<PlanCandidate*> batch;
    while (pos < order.size() && static_cast<int>(batch.size()) < std::max(1, opt.jobs)) {
      const std::size_t p = pos++;
      if (p % shards != static_cast<std::size_t>(opt.shard_rank)) continue;  // another MPI rank's
      PlanCandidate& c = out.candidates[order[p]];
      if (c.bound_cost_per_h > second_cost()) {
        c.status = "pruned";
        c.reason = fmt::format("cost lower bound {:.6g} USD/h > runner-up's {:.6g} USD/h", c.bound_cost_per_h, second_cost());
        continue;
      }
      batch.push_back(&c);
      batch_sc.push_back(&*scs[c.index]);
    }
    if (batch.empty()) continue;
    if (!opt.quiet)
      for (const PlanCandidate* c : batch)
        std::cout << fmt::format("{}simulating candidate {}: {} on {}, EP {}, {}\n", opt.progress_prefix, c->index, c->gpu,
                                 c->cluster, c->ep, c->variant);
    std::cout.flush();
    simulate_batch(batch_sc, batch, opt.jobs);
    for (PlanCandidate* c : batch) {
      if (c->status != "simulated") continue;
      price_candidate(spec, *c);
      c->binds = binding(*c);
      if (!c->meets_target) {
        c->reason = fmt::format("step time {:.6g} s > target {} {:.6g} s", c->step_time_s, target_key(spec.target),
                                spec.target_value);
        continue;
      }
      ranked.push_back(c->index);
    }
    std::sort(ranked.begin(), ranked.end(),
              [&](std::size_t a, std::size_t b) { return better(out.candidates[a], out.candidates[b]); });
  }
  rank_plan(out);
  return out;
}

std::map<std::size_t, std::string> plan_shard_items(const PlanOutcome& o, const PlanOptions& opt) {
  std::map<std::size_t, std::string> items;
  for (std::size_t p = 0; p < o.order.size(); ++p) {
    if (p % static_cast<std::size_t>(std::max(1, opt.shard_size)) != static_cast<std::size_t>(opt.shard_rank)) continue;
    const PlanCandidate& c = o.candidates[o.order[p]];
    // status, the four simulated times (exact: %.17g), then the reason (last: it may hold any character).
    items[c.index] = fmt::format("{}\n{:.17g} {:.17g} {:.17g} {:.17g}\n{}", c.status, c.step_time_s, c.compute_s,
                                 c.comm_s, c.exposed_comm_s, c.reason);
  }
  return items;
}

void merge_plan_items(PlanOutcome& o, const std::map<std::size_t, std::string>& items) {
  for (const auto& [i, text] : items) {
    if (i >= o.candidates.size()) throw std::runtime_error(fmt::format("plan: a rank sent candidate {} of {}", i, o.candidates.size()));
    PlanCandidate& c = o.candidates[i];
    const auto a = text.find('\n'), b = a == std::string::npos ? a : text.find('\n', a + 1);
    if (b == std::string::npos ||
        std::sscanf(text.c_str() + a + 1, "%lf %lf %lf %lf", &c.step_time_s, &c.compute_s, &c.comm_s, &c.exposed_comm_s) != 4)
      throw std::runtime_error(fmt::format("plan: malformed result of candidate {}", i));
    c.status = text.substr(0, a);
    c.reason = text.substr(b + 1);
    if (c.status == "simulated") {
      price_candidate(o.spec, c);
      c.binds = binding(c);
    }
  }
  rank_plan(o);
}

std::string plan_csv_text(const PlanOutcome& o) {
  const std::vector<std::string> cols{
      "candidate", "gpu", "cluster", "ep", "variant", "schedule", "ranks", "gpus", "tokens_per_rank", "price_usd_per_gpu_h",
      "status", "reason", "mem_total_gb", "mem_capacity_gb", "mem_weights_gb", "mem_grads_gb", "mem_optimizer_gb",
      "mem_activations_gb", "mem_kv_cache_gb", "bound_step_time_s", "bound_cost_usd_per_h", "step_time_s",
      "compute_s", "comm_s", "exposed_comm_s", "tokens_per_s", "replicas", "meets_target", "cost_usd_per_h",
      "usd_per_mtok", "binds", "bound_compute_s", "bound_comm_s", "bound_binds"};
  auto line = [](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      if (i) s += ',';
      s += csv_field(cells[i]);
    }
    s += '\n';
    return s;
  };
  auto num = [](double x) { return fmt::format("{:.9g}", x); };
  std::string s = line(cols);
  for (const auto& c : o.candidates) {
    const bool decoded = c.memory_capacity > 0;
    const bool sim = c.status == "simulated";
    s += line({std::to_string(c.index), c.gpu, c.cluster, std::to_string(c.ep), c.variant, c.schedule,
               std::to_string(c.ranks), decoded ? std::to_string(c.gpus) : "", decoded ? std::to_string(c.tokens_per_rank) : "", num(c.price_per_gpu_hour),
               c.status, c.reason, decoded ? num(c.memory.total() / 1e9) : "", decoded ? num(c.memory_capacity / 1e9) : "",
               decoded ? num(c.memory.weights / 1e9) : "", decoded ? num(c.memory.grads / 1e9) : "",
               decoded ? num(c.memory.optimizer / 1e9) : "", decoded ? num(c.memory.activations / 1e9) : "",
               decoded ? num(c.memory.kv_cache / 1e9) : "", decoded ? num(c.bound_step_s) : "",
               decoded ? num(c.bound_cost_per_h) : "", sim ? num(c.step_time_s) : "", sim ? num(c.compute_s) : "",
               sim ? num(c.comm_s) : "", sim ? num(c.exposed_comm_s) : "", sim ? num(c.tokens_per_s) : "",
               sim ? std::to_string(c.replicas) : "", sim ? (c.meets_target ? "yes" : "no") : "",
               sim ? num(c.cost_per_h) : "", sim ? num(c.usd_per_mtok) : "", c.binds,
               decoded ? num(c.bound_compute_s) : "", decoded ? num(c.bound_comm_s) : "", decoded ? c.bound_binds : ""});
  }
  return s;
}

std::string plan_console_text(const PlanOutcome& o) {
  const PlanSpec& sp = o.spec;
  std::string s = fmt::format("plan {}: target {} {}{}\n", o.scenario_name, target_key(sp.target),
                              fmt::format("{:.6g}", sp.target_value), sp.target == PlanTarget::tokens_per_s ? " tokens/s" : " s");
  std::map<std::string, int> by_status;
  for (const auto& c : o.candidates) ++by_status[c.status];
  s += fmt::format("{} candidates:", o.candidates.size());
  for (const auto& [st, n] : by_status) s += fmt::format(" {} {}", n, st);
  s += "\n";
  auto show = [&](const char* what, const std::optional<std::size_t>& i) {
    if (!i) {
      s += fmt::format("{}: none\n", what);
      return;
    }
    const PlanCandidate& c = o.candidates[*i];
    s += fmt::format("{}: candidate {}: {} x {} on {}, EP {} ({} ranks), variant {} ({})\n", what, c.index, c.gpus, c.gpu,
                     c.cluster, c.ep, c.ranks, c.variant, c.schedule);
    s += fmt::format("  step {:.6g} s, {:.6g} tokens/s per instance, {} instance{}, {:.2f} USD/h ({:.4g} USD per million "
                     "tokens)\n",
                     c.step_time_s, c.tokens_per_s, c.replicas, c.replicas == 1 ? "" : "s", c.cost_per_h, c.usd_per_mtok);
    s += fmt::format("  memory {:.1f} of {:.1f} GB per GPU; binds: {}\n", c.memory.total() / 1e9, c.memory_capacity / 1e9,
                     c.binds);
  };
  show("winner", o.winner);
  show("runner-up", o.runner_up);
  // Why the others are out, in short: each infeasible GPU/cluster/EP once.
  std::set<std::string> said;
  for (const auto& c : o.candidates)
    if (c.status == "infeasible" || c.status == "invalid" || c.status == "failed") {
      const std::string line = fmt::format("  {} {} on {}, EP {}: {}\n", c.status, c.gpu, c.cluster, c.ep, c.reason);
      if (said.insert(line).second) s += line;
    }
  return s;
}

}  // namespace moesim
