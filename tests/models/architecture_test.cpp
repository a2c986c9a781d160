#include <catch2/catch.hpp>

#include "models/architecture.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;

namespace {
Architecture preset(const std::string& name) { return load_architecture_preset(name, kDataDir); }
}  // namespace

TEST_CASE("every architecture preset loads with the REFERENCE.md shape", "[models][architecture]") {
  struct Row {
    const char* name;
    int layers, hidden, ffn, experts, shared, top_k, moe_layers;
  };
  // REFERENCE.md model-shape table; moe_layers = layers - dense layers (first-k dense for DeepSeek/Kimi).
  const Row rows[] = {
      {"mixtral-8x7b", 32, 4096, 14336, 8, 0, 2, 32},    {"deepseek-v2-lite", 27, 2048, 1408, 64, 2, 6, 26},
      {"deepseek-v3", 61, 7168, 2048, 256, 1, 8, 58},    {"olmoe-1b-7b", 16, 2048, 1024, 64, 0, 8, 16},
      {"qwen3-30b-a3b", 48, 2048, 768, 128, 0, 8, 48},   {"kimi-vl-a3b", 27, 2048, 1408, 64, 2, 6, 26},
      {"qwen3-235b-a22b", 94, 4096, 1536, 128, 0, 8, 94}, {"qwen3-vl-30b-a3b", 48, 2048, 768, 128, 0, 8, 48},
      {"ernie-4.5-vl-28b-a3b", 28, 2560, 1536, 128, 2, 6, 27},
  };
  REQUIRE(list_architecture_presets(kDataDir).size() == std::size(rows));
  for (const Row& r : rows) {
    INFO(r.name);
    Architecture a = preset(r.name);
    CHECK(a.name == r.name);
    CHECK(!a.source.empty());
    CHECK(a.layers == r.layers);
    CHECK(a.hidden == r.hidden);
    CHECK(a.expert_ffn == r.ffn);
    CHECK(a.routed_experts == r.experts);
    CHECK(a.shared_experts == r.shared);
    CHECK(a.top_k == r.top_k);
    CHECK(a.moe_layer_count() == r.moe_layers);
  }
  Architecture v3 = preset("deepseek-v3");
  CHECK(v3.dense_ffn == 18432);
  CHECK(!v3.is_moe_layer(2));
  CHECK(v3.is_moe_layer(3));
  CHECK(v3.attention.kind == AttentionKind::mla);
  CHECK(v3.dtype == DType::fp8);
  CHECK(preset("deepseek-v2-lite").dense_ffn == 10944);
  Architecture mx = preset("mixtral-8x7b");
  CHECK(mx.attention.kind == AttentionKind::gqa);
  CHECK(mx.attention.heads == 32);
  CHECK(mx.attention.kv_heads == 8);
  CHECK(preset("qwen3-30b-a3b").attention.kv_heads == 4);
  CHECK(preset("kimi-vl-a3b").dense_ffn == 11264);
  CHECK(preset("kimi-vl-a3b").attention.q_lora_rank == 0);
  Architecture vl = preset("qwen3-vl-30b-a3b");
  CHECK(vl.attention.heads == 32);
  CHECK(vl.attention.kv_heads == 4);
  CHECK(vl.attention.head_dim == 128);
  // ERNIE-4.5-VL: modality-isolated; the last 64 of the 128 routed experts are vision experts of FFN 512.
  Architecture er = preset("ernie-4.5-vl-28b-a3b");
  CHECK(er.vision_experts == 64);
  CHECK(!er.is_vision_expert(63));
  CHECK(er.is_vision_expert(64));
  CHECK(er.ffn_of_expert(63) == 1536);
  CHECK(er.ffn_of_expert(127) == 512);
  CHECK(preset("qwen3-vl-30b-a3b").vision_experts == 0);
}

TEST_CASE("inline architecture overrides a preset, moe_every marks every n-th block", "[models][architecture]") {
  Doc d("model:\n  preset: mixtral-8x7b\n  top_k: 1\n");
  Architecture a = decode_architecture(d.root.at("model"), kDataDir);
  REQUIRE(d.diags.empty());
  CHECK(a.top_k == 1);
  CHECK(a.hidden == 4096);

  Doc e(R"(model:
  layers: 4
  moe_every: 2
  hidden: 64
  expert_ffn: 128
  dense_ffn: 256
  routed_experts: 4
  top_k: 2
  attention: {kind: mha, heads: 2, head_dim: 32}
)");
  Architecture b = decode_architecture(e.root.at("model"), kDataDir);
  REQUIRE(e.diags.str() == "");
  // (l + 1) % 2 == 0: blocks 1 and 3 are MoE.
  CHECK(b.moe_layer_indices() == std::vector<int>{1, 3});
  CHECK(b.attention.kv_heads == 2);
}

TEST_CASE("architecture diagnostics", "[models][architecture][bad]") {
  Doc d("model: mixtral-8x7\n");
  decode_architecture(d.root.at("model"), kDataDir);
  CHECK(d.diags.str() ==
        "scenario.yaml:1:8: model: unknown model preset; presets: deepseek-v2-lite, deepseek-v3, ernie-4.5-vl-28b-a3b, "
        "kimi-vl-a3b, mixtral-8x7b, olmoe-1b-7b, qwen3-235b-a22b, qwen3-30b-a3b, qwen3-vl-30b-a3b; did you mean 'mixtral-8x7b'? (got mixtral-8x7)\n");

  Doc k("model:\n  preset: mixtral-8x7b\n  top_k: 9\n");
  decode_architecture(k.root.at("model"), kDataDir);
  CHECK(k.diags.str() == "scenario.yaml:3:10: model.top_k: must be <= routed_experts (8) (got 9)\n");

  Doc u("model:\n  preset: olmoe-1b-7b\n  hiden: 12\n");
  decode_architecture(u.root.at("model"), kDataDir);
  CHECK(u.diags.str() == "scenario.yaml:3:3: model.hiden: unknown key; did you mean 'hidden'? (got hiden)\n");

  CHECK_THROWS_AS(load_architecture_preset("nope", kDataDir), InputError);
}

TEST_CASE("norm_topk_prob: presets as their configs say, inline override, booleans only",
          "[models][architecture]") {
  // config.json norm_topk_prob: OLMoE and DeepSeek-V2-Lite false, DeepSeek-V3 and Qwen3 true; Mixtral has no key
  // but always renormalises its top-2.
  for (const char* n : {"olmoe-1b-7b", "deepseek-v2-lite", "ernie-4.5-vl-28b-a3b"})
    CHECK_FALSE(load_architecture_preset(n, kDataDir).norm_topk_prob);
  for (const char* n : {"deepseek-v3", "qwen3-30b-a3b", "qwen3-235b-a22b", "qwen3-vl-30b-a3b", "mixtral-8x7b",
                        "kimi-vl-a3b"})
    CHECK(load_architecture_preset(n, kDataDir).norm_topk_prob);
  Doc o("model:\n  preset: olmoe-1b-7b\n  norm_topk_prob: true\n");
  CHECK(decode_architecture(o.root.at("model"), kDataDir).norm_topk_prob);
  CHECK(o.diags.str() == "");
  Doc b("model:\n  preset: olmoe-1b-7b\n  norm_topk_prob: 1\n");
  decode_architecture(b.root.at("model"), kDataDir);
  CHECK(b.diags.str() == "scenario.yaml:3:19: model.norm_topk_prob: must be true or false (got 1)\n");
}
