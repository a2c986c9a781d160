#include "models/architecture.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <map>

#include "sim/limits.hpp"

namespace moesim::models {

std::vector<int> Architecture::moe_layer_indices() const {
  std::vector<int> out;
  for (int l = 0; l < layers; ++l)
    if (moe_layer[static_cast<size_t>(l)]) out.push_back(l);
  return out;
}

int Architecture::moe_layer_count() const {
  return static_cast<int>(std::count(moe_layer.begin(), moe_layer.end(), true));
}

std::vector<std::string> list_architecture_presets(const std::string& data_dir) {
  return yaml_file_stems((std::filesystem::path(data_dir) / "models" / "presets").string());
}

namespace {

const std::vector<std::string> kArchKeys = {"name",          "source",         "layers",       "dense_layers",
                                            "moe_every",     "hidden",         "expert_ffn",   "dense_ffn",
                                            "routed_experts", "shared_experts", "shared_expert_ffn", "top_k",
                                            "attention",     "dtype",          "vision_experts", "vision_expert_ffn",
                                            "norm_topk_prob", "expert_activation", "dense_activation", "vocab_size"};

// The architecture being assembled from a preset file and inline overrides. `where` remembers the mapping
// that last set each key, so a rule violation points at the line that caused it.
struct Draft {
  Architecture a;
  int first_dense = 0;
  std::vector<int> dense_list;
  int moe_every = 1;
  std::map<std::string, YamlView> where;
  std::size_t errors_at_start = 0;  // cross-key rules run only when no key failed its own rule
};

int positive_int(const YamlView& m, std::string_view key, Range r) {
  return static_cast<int>(m.at(key).as_integer(r));
}

void decode_attention(const YamlView& v, Attention& at) {
  if (!v.expect_map()) return;
  std::string kind = v.choice("kind", {"mha", "gqa", "mla"});
  at = Attention{};
  at.heads = static_cast<int>(v.integer("heads", Range::between(1, limits::kMaxHeadWidth)));
  at.causal = v.boolean_or("causal", true);
  at.window = v.integer_or("window", 0, Range::between(0, limits::kMaxContext));
  if (kind == "mla") {
    v.check_keys({"kind", "heads", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                  "v_head_dim", "causal", "window"});
    at.kind = AttentionKind::mla;
    at.q_lora_rank = static_cast<int>(v.integer_or("q_lora_rank", 0, Range::between(0, limits::kMaxHeadWidth)));
    at.kv_lora_rank = static_cast<int>(v.integer("kv_lora_rank", Range::between(1, limits::kMaxHeadWidth)));
    at.qk_nope_head_dim = static_cast<int>(v.integer("qk_nope_head_dim", Range::between(1, limits::kMaxHeadWidth)));
    at.qk_rope_head_dim = static_cast<int>(v.integer("qk_rope_head_dim", Range::between(1, limits::kMaxHeadWidth)));
    at.v_head_dim = static_cast<int>(v.integer("v_head_dim", Range::between(1, limits::kMaxHeadWidth)));
    at.kv_heads = at.heads;
    at.head_dim = at.qk_nope_head_dim + at.qk_rope_head_dim;
    return;
  }
  v.check_keys({"kind", "heads", "kv_heads", "head_dim", "causal", "window"});
  at.kind = kind == "gqa" ? AttentionKind::gqa : AttentionKind::mha;
  at.head_dim = static_cast<int>(v.integer("head_dim", Range::between(1, limits::kMaxHeadWidth)));
  if (at.kind == AttentionKind::mha) {
    at.kv_heads = static_cast<int>(v.integer_or("kv_heads", at.heads, Range::between(1, limits::kMaxHeadWidth)));
    if (at.kv_heads != at.heads) v.error_at("kv_heads", "must equal heads for mha (use kind: gqa)");
  } else {
    at.kv_heads = static_cast<int>(v.integer("kv_heads", Range::between(1, limits::kMaxHeadWidth)));
    if (at.heads % at.kv_heads != 0) v.error_at("kv_heads", fmt::format("must divide heads ({})", at.heads));
  }
}

// Applies every key present in mapping m to the draft.
void apply_keys(const YamlView& m, Draft& d) {
  Architecture& a = d.a;
  for (const std::string& key : m.keys()) {
    if (std::find(kArchKeys.begin(), kArchKeys.end(), key) == kArchKeys.end()) continue;  // check_keys reports
    d.where.insert_or_assign(key, m);
    YamlView v = m.at(key);
    if (key == "name") a.name = v.as_str();
    else if (key == "source") a.source = v.as_str();
    else if (key == "layers") a.layers = positive_int(m, key, Range::between(1, limits::kMaxLayers));
    else if (key == "hidden") a.hidden = positive_int(m, key, Range::between(1, limits::kMaxWidth));
    else if (key == "expert_ffn") a.expert_ffn = positive_int(m, key, Range::between(1, limits::kMaxWidth));
    else if (key == "dense_ffn") a.dense_ffn = positive_int(m, key, Range::between(0, limits::kMaxWidth));
    else if (key == "routed_experts") a.routed_experts = positive_int(m, key, Range::between(1, limits::kMaxExperts));
    else if (key == "shared_experts") a.shared_experts = positive_int(m, key, Range::between(0, limits::kMaxSharedExperts));
    else if (key == "shared_expert_ffn") a.shared_expert_ffn = positive_int(m, key, Range::between(0, limits::kMaxWidth));
    else if (key == "top_k") a.top_k = positive_int(m, key, Range::between(1, limits::kMaxTopK));
    else if (key == "moe_every") d.moe_every = positive_int(m, key, Range::between(1, limits::kMaxLayers));
    else if (key == "vision_experts") a.vision_experts = positive_int(m, key, Range::between(0, limits::kMaxExperts));
    else if (key == "vision_expert_ffn") a.vision_expert_ffn = positive_int(m, key, Range::between(1, limits::kMaxWidth));
    else if (key == "dtype") a.dtype = v.as_choice({"bf16", "fp8"}) == "fp8" ? DType::fp8 : DType::bf16;
    else if (key == "attention") decode_attention(v, a.attention);
    else if (key == "norm_topk_prob") a.norm_topk_prob = m.boolean(key);
    else if (key == "vocab_size") a.vocab_size = positive_int(m, key, Range::between(0, limits::kMaxVocab));
    else if (key == "expert_activation" || key == "dense_activation") {
      const std::string x = v.as_choice({"swiglu", "gelu", "relu"});
      const Activation act = x == "gelu" ? Activation::gelu : x == "relu" ? Activation::relu : Activation::swiglu;
      (key == "expert_activation" ? a.expert_activation : a.dense_activation) = act;
    }
    else if (key == "dense_layers") {
      // An integer k: the first k blocks are dense (DeepSeek's first_k_dense_replace). A list: those indices.
      d.first_dense = 0;
      d.dense_list.clear();
      if (v.is_sequence()) {
        for (const YamlView& it : v.items()) d.dense_list.push_back(static_cast<int>(it.as_integer(Range::between(0, limits::kMaxLayers))));
      } else {
        d.first_dense = static_cast<int>(v.as_integer(Range::between(0, limits::kMaxLayers)));
      }
    }
  }
}

// Validates cross-key rules and fills moe_layer. Errors point at the mapping that set the offending key.
void finish(Draft& d, const YamlView& fallback) {
  Architecture& a = d.a;
  auto at = [&](const std::string& key) -> YamlView {
    auto it = d.where.find(key);
    return it != d.where.end() ? it->second : fallback;
  };
  bool complete = true;
  for (const char* key : {"layers", "hidden", "expert_ffn", "routed_experts", "top_k", "attention"}) {
    if (!d.where.count(key)) {
      fallback.require(key);
      complete = false;
    }
  }
  if (!complete || fallback.diagnostic_count() != d.errors_at_start) return;
  if (a.top_k > a.routed_experts)
    at("top_k").error_at("top_k", fmt::format("must be <= routed_experts ({})", a.routed_experts));
  if (a.vision_experts > 0 && a.routed_experts - a.vision_experts < a.top_k)
    at("vision_experts").error_at("vision_experts",
                                  fmt::format("must leave at least top_k = {} text experts of routed_experts ({})",
                                              a.top_k, a.routed_experts));
  if (a.vision_experts > 0 && a.vision_experts < a.top_k)
    at("vision_experts").error_at("vision_experts", fmt::format("must be 0 or at least top_k = {}", a.top_k));
  if (d.where.count("vision_expert_ffn") && a.vision_experts == 0)
    at("vision_expert_ffn").error_at("vision_expert_ffn", "only used with vision_experts > 0");
  if (a.vision_expert_ffn <= 0) a.vision_expert_ffn = a.expert_ffn;
  if (a.shared_experts > 0 && a.shared_expert_ffn <= 0)
    at("shared_experts").error_at("shared_experts", "needs shared_expert_ffn > 0");
  a.moe_layer.assign(static_cast<size_t>(a.layers), false);
  for (int l = 0; l < a.layers; ++l) {
    // moe_every n: block l is MoE when (l + 1) % n == 0 (Hugging Face's decoder_sparse_step convention).
    bool moe = l >= d.first_dense && (l + 1) % d.moe_every == 0;
    if (std::find(d.dense_list.begin(), d.dense_list.end(), l) != d.dense_list.end()) moe = false;
    a.moe_layer[static_cast<size_t>(l)] = moe;
  }
  for (int l : d.dense_list)
    if (l >= a.layers) at("dense_layers").error_at("dense_layers", fmt::format("layer index must be < layers ({})", a.layers));
  if (a.moe_layer_count() == 0) at("dense_layers").error_at(d.where.count("dense_layers") ? "dense_layers" : "layers", "leaves no MoE layer");
  if (a.moe_layer_count() < a.layers && a.dense_ffn <= 0)
    at("dense_ffn").error_at("dense_ffn", "must be > 0 when the model has dense layers");
}

// Loads a preset file into the draft; returns false if the name is unknown (after reporting at `ref`).
bool load_preset(const YamlView& ref, const std::string& name, const std::string& data_dir, Draft& d) {
  std::vector<std::string> names = list_architecture_presets(data_dir);
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    ref.error(unknown_name_rule("unknown model preset", "presets", name, names), ref.shown());
    return false;
  }
  std::string path = (std::filesystem::path(data_dir) / "models" / "presets" / (name + ".yaml")).string();
  YamlView f = YamlView::load_file(path, ref.diagnostics());
  if (!f.expect_map()) return false;
  f.check_keys(kArchKeys);
  f.require("source");  // every preset cites its config.json
  apply_keys(f, d);
  if (d.a.name.empty()) d.a.name = name;
  return true;
}

}  // namespace

Architecture decode_architecture(const YamlView& v, const std::string& data_dir) {
  Draft d;
  d.errors_at_start = v.diagnostic_count();
  if (v.is_scalar()) {
    if (load_preset(v, v.as_str(), data_dir, d)) finish(d, v);
    return d.a;
  }
  if (!v.expect_map()) return d.a;
  std::vector<std::string> allowed = kArchKeys;
  allowed.push_back("preset");
  v.check_keys(allowed);
  if (v.has("preset")) {
    YamlView p = v.at("preset");
    if (!load_preset(p, p.as_str(), data_dir, d)) return d.a;
  }
  apply_keys(v, d);
  if (d.a.name.empty()) d.a.name = "inline";
  finish(d, v);
  return d.a;
}

Architecture load_architecture_preset(const std::string& name, const std::string& data_dir) {
  Diagnostics diags;
  YamlView v = YamlView::load_string(name, "<preset>", &diags);
  Architecture a = decode_architecture(v, data_dir);
  if (!diags.empty()) throw InputError(diags);
  return a;
}

}  // namespace moesim::models
