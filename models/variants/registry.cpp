// The registry of schedules. A new schedule: one file with its build function, one entry below.
#include <fmt/format.h>

#include "models/variants/variant.hpp"

namespace moesim::models {

OpGraph build_topk(const VariantSpec&, const StepInput&);

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

VariantSpec decode_variant(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir) {
  VariantSpec spec;
  if (!v.expect_map()) return spec;
  spec.name = v.str("name");
  spec.schedule = v.choice("schedule", schedule_names());
  const ScheduleInfo* info = find_schedule(spec.schedule);
  std::vector<std::string> keys = {"name", "schedule", "routing", "description"};
  if (info) keys.insert(keys.end(), info->keys.begin(), info->keys.end());
  v.check_keys(keys);
  spec.top_k = arch.top_k;
  if (v.has("k")) spec.top_k = static_cast<int>(v.integer("k", Range::between(1, arch.routed_experts)));
  if (v.has("chunks")) spec.chunks = static_cast<int>(v.integer("chunks", Range::between(1, 64)));
  if (v.has("position")) spec.position = static_cast<int>(v.integer("position", Range::between(1, 3)));
  if (v.has("expert_slot")) {
    YamlView s = v.at("expert_slot");
    if (s.is_scalar() && s.raw().Scalar() == "auto") spec.expert_slot = 0;
    else spec.expert_slot = static_cast<int>(s.as_integer(Range::between(1, 4)));
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
