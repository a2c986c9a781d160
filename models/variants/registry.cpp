// The registry of schedules. A new schedule: one file with its build function, one entry below.
#include <algorithm>
#include <fmt/format.h>

#include "models/variants/variant.hpp"

namespace moesim::models {

OpGraph build_topk(const VariantSpec&, const StepInput&);
OpGraph build_shared_expert(const VariantSpec&, const StepInput&);
std::vector<VariantSpec> shared_expert_candidates(const VariantSpec&);
OpGraph build_pipelined(const VariantSpec&, const StepInput&);
OpGraph build_scmoe(const VariantSpec&, const StepInput&);
OpGraph build_scmoe_pipelined(const VariantSpec&, const StepInput&);
std::vector<VariantSpec> scmoe_candidates(const VariantSpec&);
OpGraph build_realb(const VariantSpec&, const StepInput&);
OpGraph build_realb_seq(const VariantSpec&, const StepInput&);
OpGraph build_lowp_all(const VariantSpec&, const StepInput&);
OpGraph build_eplb(const VariantSpec&, const StepInput&);
OpGraph build_dualsparse(const VariantSpec&, const StepInput&);
void dualsparse_metrics(std::map<std::string, double>&);
std::vector<VariantSpec> dualsparse_expand(const VariantSpec&);
using OptionDecoder = std::shared_ptr<const ScheduleOptions>(const YamlView&, const DecodeContext&,
                                                             std::map<std::string, std::string>&);
OptionDecoder decode_realb, decode_lowp_all, decode_eplb, decode_dualsparse;
int eplb_history(const VariantSpec&);

namespace {
ScheduleInfo with_options(ScheduleInfo s, std::function<OptionDecoder> decode,
                          std::function<int(const VariantSpec&)> history = {}, bool needs_exact = false,
                          bool supports_capacity_pad = true) {
  s.supports_capacity_pad = supports_capacity_pad;
  s.decode = std::move(decode);
  s.needs_exact = needs_exact;
  s.history_steps = std::move(history);
  s.moe_metrics = true;
  return s;
}

// DualSparse reads each token's gate scores and turns its summed counts into rates after the run; it also
// models expert tensor parallelism (ETP and S-ETP) and expands a `thresholds:` list into one variant per
// threshold (a sweep).
ScheduleInfo with_token_scores(ScheduleInfo s, std::function<void(std::map<std::string, double>&)> derive,
                               bool supports_etp, std::function<std::vector<VariantSpec>(const VariantSpec&)> expand) {
  s.expand = std::move(expand);
  s.uses_token_scores = true;
  s.derive_metrics = std::move(derive);
  s.supports_etp = supports_etp;
  s.supports_capacity_pad = false;
  return s;
}
}  // namespace

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::inference_prefill: return "inference_prefill";
    case Mode::decode: return "decode";
    case Mode::training: return "training";
  }
  return "?";
}

const std::vector<ScheduleInfo>& schedules() {
  static const std::vector<ScheduleInfo> all = {
      {"topk", "EP baseline: attention, gate, permute, dispatch, experts, combine, unpermute on one stream",
       {"k"}, build_topk, {}},
      {"shared_expert",
       "top-1 routed + shared expert, sequential on one stream (no shared expert in the model: one sized like a "
       "routed expert)",
       {}, build_shared_expert, shared_expert_candidates},
      {"pipelined",
       "Tutel-style: routed tokens in `chunks` chunks; chunk i's experts overlap chunk i+1's dispatch and chunk "
       "i-1's combine on the comm stream",
       {"k", "chunks"}, build_pipelined, {}},
      {"scmoe",
       "ScMoE: top-1 routed experts read an earlier representation (`position` 1|2|3) so dispatch/combine overlap "
       "the backbone; expert GEMM in `expert_slot` (auto: fastest); + shared expert (routed-sized if none)",
       {"position", "expert_slot"}, build_scmoe, scmoe_candidates},
      {"scmoe_pipelined", "ScMoE with its all-to-alls in `chunks` chunks, for communication longer than the window",
       {"position", "expert_slot", "chunks"}, build_scmoe_pipelined, scmoe_candidates},
      with_options({"realb",
                    "ReaLB: overloaded, vision-heavy ranks run their expert GEMMs in `precision` (fp4/fp8), the weight "
                    "cast hidden under the dispatch",
                    {"precision", "load_threshold", "modality_threshold", "batch_threshold"}, build_realb, {}},
                   decode_realb, {}, true),
      with_options({"realb_seq", "ReaLB's policy with the weight cast before the dispatch (nothing hidden)",
                    {"precision", "load_threshold", "modality_threshold", "batch_threshold"}, build_realb_seq, {}},
                   decode_realb, {}, true),
      with_options({"lowp_all", "every rank and layer in `precision`, weights quantised offline (no cast)",
                    {"precision"}, build_lowp_all, {}},
                   decode_lowp_all),
      with_options({"eplb",
                    "EPLB: `redundant_experts` replica slots for hot experts, chosen from the last `window` steps "
                    "every `interval` steps; tokens split `even` or `least_loaded`",
                    {"redundant_experts", "window", "interval", "split"}, build_eplb, {}},
                   decode_eplb, eplb_history, false, /*supports_capacity_pad=*/false),
      with_token_scores(
          with_options({"dualsparse",
                        "DualSparse-MoE: experts split into `partition` sub-experts; token-expert pairs with a low "
                        "gate score dropped (`policy` 1t), halved (2t) or dropped less on lightly loaded ranks "
                        "(load_aware); with parallelism.etp, `expert_tp` etp (all-gather / reduce-scatter in each "
                        "group) or s_etp (sub-experts placed as plain EP)",
                        {"policy", "threshold", "thresholds", "delta", "drop_before_dispatch", "partition",
                         "expert_tp"},
                        build_dualsparse, {}},
                       decode_dualsparse),
          dualsparse_metrics, /*supports_etp=*/true, dualsparse_expand),
  };
  return all;
}

const ScheduleInfo* find_schedule(const std::string& name) {
  for (const auto& s : schedules())
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<std::string> schedule_names() {
  std::vector<std::string> out;
  for (const auto& s : schedules()) out.push_back(s.name);
  return out;
}

VariantSpec decode_variant(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir,
                           const Profile* profile, Mode mode, int etp) {
  VariantSpec spec;
  if (!v.expect_map()) return spec;
  spec.name = v.str("name");
  const std::size_t before = v.diagnostic_count();
  spec.schedule = v.choice("schedule", schedule_names());
  // An unknown schedule was reported; its keys are unknown too, so checking them would only mislead.
  const bool schedule_ok = v.diagnostic_count() == before;
  const ScheduleInfo* info = schedule_ok ? find_schedule(spec.schedule) : nullptr;
  if (info && etp > 1 && !info->supports_etp)
    v.at("schedule").error(fmt::format("does not model expert tensor parallelism (parallelism.etp = {}); use "
                                       "dualsparse, whose expert_tp option picks etp or s_etp", etp),
                           spec.schedule);
  std::vector<std::string> keys = {"name", "schedule", "routing", "description"};
  if (info) {
    keys.insert(keys.end(), info->keys.begin(), info->keys.end());
    v.check_keys(keys);
  }
  // Decode only the keys this schedule accepts (the others were reported as unknown above).
  auto accepts = [&](const char* key) {
    return info && std::find(info->keys.begin(), info->keys.end(), key) != info->keys.end() && v.has(key);
  };
  spec.top_k = arch.top_k;
  if (accepts("k")) spec.top_k = static_cast<int>(v.integer("k", Range::between(1, arch.routed_experts)));
  if (accepts("chunks")) spec.chunks = static_cast<int>(v.integer("chunks", Range::between(1, 64)));
  if (accepts("position")) spec.position = static_cast<int>(v.integer("position", Range::between(1, 3)));
  if (accepts("expert_slot")) {
    YamlView s = v.at("expert_slot");
    const std::string text = s.is_scalar() ? s.raw().Scalar() : std::string();
    if (text == "auto") spec.expert_slot = 0;
    else if (text.size() == 1 && text[0] >= '1' && text[0] <= '4' && s.raw().Tag() != "!") spec.expert_slot = text[0] - '0';
    else s.error("must be auto or an integer in [1, 4]", s.shown());
  }
  if (info && info->decode) {
    static const Profile none;
    const DecodeContext ctx{arch, profile ? *profile : none, mode, ranks, etp};
    spec.options = info->decode(v, ctx, spec.shown);
  }
  if (v.has("routing")) {
    Architecture a = arch;
    a.top_k = spec.top_k;
    spec.routing = decode_routing(v.at("routing"), a, ranks, base_dir);
  }
  spec.shown["k"] = fmt::format("{}", spec.top_k);
  if (info)
    for (const auto& k : info->keys) {
      if (k == "chunks") spec.shown["chunks"] = fmt::format("{}", spec.chunks);
      if (k == "position") spec.shown["position"] = fmt::format("{}", spec.position);
      if (k == "expert_slot") spec.shown["expert_slot"] = spec.expert_slot == 0 ? "auto" : fmt::format("{}", spec.expert_slot);
    }
  return spec;
}

}  // namespace moesim::models
