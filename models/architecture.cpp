#include "models/architecture.hpp"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>
#include <cmath>
#include <map>
#include <optional>

#include "sim/limits.hpp"

namespace moesim::models {

std::vector<int> Architecture::moe_layer_indices() const {
  std::vector<int> out;
  for (int l = 0; l < layers; ++l)
    if (moe_layer[static_cast<size_t>(l)]) out.push_back(l);
  return out;
}

int Architecture::stage_of(int layer) const {
  for (int s = static_cast<int>(stages.size()) - 1; s > 0; --s)
    if (layer >= stages[static_cast<size_t>(s)].first_layer) return s;
  return 0;
}

Architecture Architecture::stage_shape(int s) const {
  Architecture a = *this;
  a.stages.clear();
  if (stages.empty()) return a;
  const Stage& st = stages.at(static_cast<size_t>(s));
  a.hidden = st.hidden;
  a.expert_ffn = st.expert_ffn;
  a.dense_ffn = st.dense_ffn;
  a.shared_expert_ffn = st.shared_expert_ffn;
  a.vision_expert_ffn = st.vision_expert_ffn;
  a.attention = st.attention;
  return a;
}

int64_t Architecture::stage_tokens(int s, int64_t T) const {
  if (stages.empty()) return T;
  const double x = static_cast<double>(T) * stages.at(static_cast<size_t>(s)).token_scale;
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(x)));
}

int64_t Architecture::layer_tokens(int layer, int64_t T) const { return stage_tokens(stage_of(layer), T); }

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
                                            "norm_topk_prob", "expert_activation", "dense_activation", "vocab_size",
                                            "stages"};
// Keys a model.stages entry may set (the per-block shape); the other keys of kArchKeys are model-wide.
const std::vector<std::string> kStageKeys = {"name",       "layers",          "hidden",      "expert_ffn",
                                             "dense_ffn",  "shared_expert_ffn", "vision_expert_ffn", "attention",
                                             "moe_every",  "token_scale",     "patch_merge"};

// The architecture being assembled from a preset file and inline overrides. `where` remembers the mapping
// that last set each key, so a rule violation points at the line that caused it.
struct Draft {
  Architecture a;
  int first_dense = 0;
  std::vector<int> dense_list;
  int moe_every = 1;
  std::map<std::string, YamlView> where;
  std::optional<YamlView> stages;  // model.stages, decoded in finish() once the top-level keys are known
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
    else if (key == "stages") d.stages = v;
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

// Decodes model.stages into d.a.stages (each unset per-block key inherits the model's top-level value) and
// every stage's moe_every into `every`. Rules: a non-empty list; layers >= 1 in each stage; token_scale in
// (0, 1e3]; patch_merge only after stage 0, with previous token_scale / token_scale an integer >= 1.
void decode_stages(const YamlView& v, Draft& d, std::vector<int>& every) {
  Architecture& a = d.a;
  if (!v.is_sequence() || v.items().empty()) {
    v.error("must be a non-empty list of stages (mappings with at least `layers`)", v.shown());
    return;
  }
  int first = 0;
  for (const YamlView& m : v.items()) {
    if (!m.expect_map()) continue;
    for (const std::string& key : m.keys())
      if (std::find(kStageKeys.begin(), kStageKeys.end(), key) == kStageKeys.end() &&
          std::find(kArchKeys.begin(), kArchKeys.end(), key) != kArchKeys.end())
        m.error_at(key, "is model-wide: set it at the model's top level (a stage sets only: name, layers, hidden, "
                        "expert_ffn, dense_ffn, shared_expert_ffn, vision_expert_ffn, attention, moe_every, "
                        "token_scale, patch_merge)");
    std::vector<std::string> allowed = kStageKeys;
    for (const std::string& k : kArchKeys)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) allowed.push_back(k);  // reported above
    m.check_keys(allowed);
    Stage st;
    const int idx = static_cast<int>(a.stages.size());
    st.name = m.str_or("name", fmt::format("stage{}", idx + 1));
    st.first_layer = first;
    st.layers = static_cast<int>(m.integer("layers", Range::between(1, limits::kMaxLayers)));
    st.hidden = static_cast<int>(m.integer_or("hidden", a.hidden, Range::between(1, limits::kMaxWidth)));
    st.expert_ffn = static_cast<int>(m.integer_or("expert_ffn", a.expert_ffn, Range::between(1, limits::kMaxWidth)));
    st.dense_ffn = static_cast<int>(m.integer_or("dense_ffn", a.dense_ffn, Range::between(0, limits::kMaxWidth)));
    st.shared_expert_ffn = static_cast<int>(
        m.integer_or("shared_expert_ffn", a.shared_expert_ffn, Range::between(0, limits::kMaxWidth)));
    const bool own_vision_ffn = m.has("vision_expert_ffn");
    st.vision_expert_ffn = static_cast<int>(m.integer_or(
        "vision_expert_ffn", a.vision_expert_ffn > 0 ? a.vision_expert_ffn : st.expert_ffn,
        Range::between(1, limits::kMaxWidth)));
    if (own_vision_ffn && a.vision_experts == 0) m.error_at("vision_expert_ffn", "only used with vision_experts > 0");
    if (!d.where.count("vision_expert_ffn") && !own_vision_ffn) st.vision_expert_ffn = st.expert_ffn;
    st.attention = a.attention;
    if (m.has("attention")) decode_attention(m.at("attention"), st.attention);
    every.push_back(static_cast<int>(m.integer_or("moe_every", d.moe_every, Range::between(0, limits::kMaxLayers))));
    st.token_scale = m.number_or("token_scale", 1.0, Range{0.0, 1e3, true, false});
    st.patch_merge = m.boolean_or("patch_merge", false);
    if (a.shared_experts > 0 && st.shared_expert_ffn <= 0)
      m.error_at("shared_expert_ffn", "must be > 0: the model has shared_experts");
    if (st.patch_merge && idx == 0) m.error_at("patch_merge", "only a later stage merges patches (stage 1 has no previous stage)");
    if (st.patch_merge && idx > 0) {
      const Stage& prev = a.stages.back();
      const double g = prev.token_scale / st.token_scale;
      const double gi = std::round(g);
      if (gi < 1.0 || std::abs(g - gi) > 1e-9 * g)
        m.error_at("patch_merge", fmt::format("needs the previous stage's token_scale ({}) / this token_scale ({}) to "
                                              "be an integer >= 1 (the neighbours merged into one token)",
                                              prev.token_scale, st.token_scale));
      else {
        st.merge_group = static_cast<int>(gi);
        st.merge_in = st.merge_group * prev.hidden;
      }
    }
    first += st.layers;
    a.stages.push_back(st);
  }
  if (first > limits::kMaxLayers) v.error(fmt::format("the stages' layers sum to {}: at most {}", first, limits::kMaxLayers));
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
    if (std::string_view(key) == "layers" && d.stages) continue;  // the stages' layers sum to it
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
  // Per block: moe_every of its stage and its index within the stage (a flat model: one stage, the model's).
  std::vector<int> every_of(static_cast<size_t>(a.layers), d.moe_every), local(static_cast<size_t>(a.layers));
  for (int l = 0; l < a.layers; ++l) local[static_cast<size_t>(l)] = l;
  if (d.stages) {
    const std::size_t before = fallback.diagnostic_count();
    std::vector<int> every;
    decode_stages(*d.stages, d, every);
    if (fallback.diagnostic_count() != before) return;
    int total = 0;
    for (const Stage& st : a.stages) total += st.layers;
    if (d.where.count("layers") && a.layers != total) {
      at("layers").error_at("layers", fmt::format("must equal the sum of the stages' layers ({}) or be left out", total));
      return;
    }
    a.layers = total;
    every_of.assign(static_cast<size_t>(total), 1);
    local.assign(static_cast<size_t>(total), 0);
    for (size_t s = 0; s < a.stages.size(); ++s)
      for (int j = 0; j < a.stages[s].layers; ++j) {
        every_of[static_cast<size_t>(a.stages[s].first_layer + j)] = every[s];
        local[static_cast<size_t>(a.stages[s].first_layer + j)] = j;
      }
    // The top-level per-block fields hold stage 0's shape (what a flat reader of the model sees first).
    const Stage& s0 = a.stages.front();
    a.hidden = s0.hidden;
    a.expert_ffn = s0.expert_ffn;
    a.dense_ffn = s0.dense_ffn;
    a.shared_expert_ffn = s0.shared_expert_ffn;
    a.vision_expert_ffn = s0.vision_expert_ffn;
    a.attention = s0.attention;
  }
  a.moe_layer.assign(static_cast<size_t>(a.layers), false);
  for (int l = 0; l < a.layers; ++l) {
    // moe_every n: block l is MoE when (l + 1) % n == 0 (Hugging Face's decoder_sparse_step convention); in a
    // model built of stages l counts within the block's stage, and a stage's moe_every 0 makes it all dense.
    const int n = every_of[static_cast<size_t>(l)], j = local[static_cast<size_t>(l)];
    bool moe = l >= d.first_dense && n > 0 && (j + 1) % n == 0;
    if (std::find(d.dense_list.begin(), d.dense_list.end(), l) != d.dense_list.end()) moe = false;
    a.moe_layer[static_cast<size_t>(l)] = moe;
  }
  for (int l : d.dense_list)
    if (l >= a.layers) at("dense_layers").error_at("dense_layers", fmt::format("layer index must be < layers ({})", a.layers));
  if (a.moe_layer_count() == 0) at("dense_layers").error_at(d.where.count("dense_layers") ? "dense_layers" : "layers", "leaves no MoE layer");
  if (a.stages.empty()) {
    if (a.moe_layer_count() < a.layers && a.dense_ffn <= 0)
      at("dense_ffn").error_at("dense_ffn", "must be > 0 when the model has dense layers");
    return;
  }
  for (size_t s = 0; s < a.stages.size(); ++s) {
    const Stage& st = a.stages[s];
    bool dense = false;
    for (int j = 0; j < st.layers; ++j) dense = dense || !a.moe_layer[static_cast<size_t>(st.first_layer + j)];
    if (dense && st.dense_ffn <= 0)
      d.stages->items()[s].error_at("dense_ffn", fmt::format("must be > 0: stage {} has dense blocks (set it in the "
                                                             "stage or at the model's top level)", st.name));
  }
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
