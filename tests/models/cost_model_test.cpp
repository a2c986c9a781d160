#include <catch2/catch.hpp>

#include "models/cost_model.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;

namespace {

// Toy GPU: 12 SMs, 100 TFLOP/s bf16, 200 TFLOP/s fp8, 1 TB/s, gemm efficiency 0.5/0.5, launch 1 us; GEMMs
// by the flat roofline (gemm_shape.model flat: the hand-worked figures below; the shape model has its own
// tests at the end, with toy_profile_tiled()); measured tables: expert_gate_up n = 64, k = 32 over tokens [1, 9], and expert_down n = 1024, k = 2048 over [1, 8],
// each with a fit for beyond.
const char* kProfile = R"(schema: moesim-profile/1
id: toy
kind: datasheet
gpu: {name: Toy, sms: 12, memory: "1GB", memory_bandwidth: "1TB/s"}
peak: {bf16: "100TFLOP/s", fp8: "200TFLOP/s"}
efficiency:
  gemm: {compute: 0.5, memory: 0.5}
  attention: {compute: 0.5, memory: 0.5}
  elementwise: {compute: 1.0, memory: 0.5}
gemm_shape: {model: flat}
launch_overhead: "1us"
sources: ["test"]
confidence: low
tables:
  - kernel: expert_gate_up
    dtype: bf16
    n: 64
    k: 32
    provenance: measured
    points: [[1, 10.0e-6], [9, 30.0e-6]]
    fit: {alpha_s: 2.0e-6, eta_compute: 1.0, eta_memory: 1.0}
  - kernel: expert_down
    dtype: bf16
    n: 1024
    k: 2048
    provenance: measured
    points: [[1, 20.0e-6], [8, 25.0e-6]]
    fit: {alpha_s: 3.0e-6, eta_compute: 0.5, eta_memory: 1.0}
)";

Profile toy_profile(const std::string& text = kProfile) {
  Doc d(text, "toy.yaml");
  Profile p = decode_profile(d.root);
  REQUIRE(d.diags.str() == "");
  return p;
}

// The toy profile with the shape model (the default from YAML): gemm_shape as given (empty: none).
Profile toy_profile_tiled(const std::string& gemm_shape = "") {
  std::string text = kProfile;
  const std::string flat = "gemm_shape: {model: flat}\n";
  text.replace(text.find(flat), flat.size(), gemm_shape);
  return toy_profile(text);
}

// hidden 1024, expert FFN 4096, 8 experts, top-2, MHA 8 heads x 128; dtype as given.
Architecture toy_arch(const char* dtype = "bf16") {
  Doc d(std::string("model:\n  layers: 1\n  hidden: 1024\n  expert_ffn: 4096\n  routed_experts: 8\n  top_k: 2\n"
                    "  attention: {kind: mha, heads: 8, head_dim: 128}\n  dtype: ") + dtype + "\n");
  Architecture a = decode_architecture(d.root.at("model"), kDataDir);
  REQUIRE(d.diags.str() == "");
  return a;
}

}  // namespace

TEST_CASE("roofline: compute-bound and memory-bound GEMMs", "[models][cost]") {
  CostModel cm(toy_profile(), toy_arch());
  // 4096 tokens, gate_up n = 2 * 4096 = 8192, k = 1024:
  //   flops = 2 * 4096 * 8192 * 1024 = 68,719,476,736 -> / (0.5 * 100e12) = 1.37438953472e-3 s
  //   bytes = 4096*1024*2 + 1024*8192*2 + 4096*8192*2 = 92,274,688 -> / (0.5 * 1e12) = 1.84549376e-4 s
  //   compute-bound: 1e-6 + 1.37438953472e-3
  KernelCost c = cm.expert_gate_up(4096);
  CHECK(c.seconds == Approx(1e-6 + 1.37438953472e-3).epsilon(1e-12));
  CHECK(c.prov == Provenance::datasheet);
  // 1 token: flops = 2 * 8192 * 1024 = 16,777,216 -> 3.3554432e-7 s;
  //   bytes = 1024*2 + 1024*8192*2 + 8192*2 = 16,795,648 -> / 5e11 = 3.3591296e-5 s (weights dominate)
  KernelCost m = cm.expert_gate_up(1);
  CHECK(m.seconds == Approx(1e-6 + 3.3591296e-5).epsilon(1e-12));
  // down, 1 token: n = 1024, k = 4096: bytes = 4096*2 + 4096*1024*2 + 1024*2 = 8,398,848 -> 1.6797696e-5 s
  CHECK(cm.expert_down(1).seconds == Approx(1e-6 + 1.6797696e-5).epsilon(1e-12));
  CHECK(cm.expert_gate_up(0).seconds == 0.0);
}

TEST_CASE("fp8 uses the fp8 peak and 1-byte weights", "[models][cost]") {
  CostModel cm(toy_profile(), toy_arch("fp8"));
  // flops 68,719,476,736 / (0.5 * 200e12) = 6.8719476736e-4 s;
  // bytes = 4096*1024*1 + 1024*8192*1 + 4096*8192*2 = 79,691,776 -> / 5e11 = 1.59383552e-4 s -> compute-bound.
  CHECK(cm.expert_gate_up(4096).seconds == Approx(1e-6 + 6.8719476736e-4).epsilon(1e-12));
  // 1 token: bytes = 1024 + 8,388,608 + 16,384 = 8,406,016 -> / 5e11 = 1.6812032e-5 s
  CHECK(cm.expert_gate_up(1).seconds == Approx(1e-6 + 1.6812032e-5).epsilon(1e-12));
  Profile no_fp8 = toy_profile();
  no_fp8.peak_fp8 = 0;
  CHECK_THROWS_AS(CostModel(no_fp8, toy_arch("fp8")), std::invalid_argument);
}

TEST_CASE("measured table: interpolation inside, fit outside", "[models][cost]") {
  CostModel cm(toy_profile(), toy_arch());
  // tokens 5 between (1, 10us) and (9, 30us): 10 + (5 - 1) / 8 * 20 = 20 us, measured.
  KernelCost in = cm.gemm("expert_gate_up", DType::bf16, 5, 64, 32);
  CHECK(in.seconds == Approx(20e-6).epsilon(1e-12));
  CHECK(in.prov == Provenance::measured);
  CHECK(cm.gemm("expert_gate_up", DType::bf16, 9, 64, 32).seconds == Approx(30e-6).epsilon(1e-12));
  // tokens 17 beyond the range -> fit: flops = 2*17*64*32 = 69,632 -> / 100e12 = 6.9632e-10 s;
  //   bytes = 17*32*2 + 32*64*2 + 17*64*2 = 7,360 -> / 1e12 = 7.36e-9 s; 2e-6 + 7.36e-9 = 2.00736e-6, fitted.
  KernelCost out = cm.gemm("expert_gate_up", DType::bf16, 17, 64, 32);
  CHECK(out.seconds == Approx(2.00736e-6).epsilon(1e-12));
  CHECK(out.prov == Provenance::fitted);
  // Another shape has no table -> roofline, datasheet. Sums carry the weakest provenance.
  CHECK(cm.gemm("expert_gate_up", DType::bf16, 5, 64, 64).prov == Provenance::datasheet);
  CHECK((in + out).prov == Provenance::fitted);
  CHECK((in + cm.expert_gate_up(1)).prov == Provenance::datasheet);
}

TEST_CASE("fitted extrapolation charges tile- and wave-quantised FLOP, as the fitter does", "[models][cost]") {
  CostModel cm(toy_profile(), toy_arch());
  // expert_down n = 1024, k = 2048, 200 tokens (beyond the measured [1, 8]): flops per token = 2 * 1024 *
  //   2048 = 4,194,304. Tokens rounded up to the 128 tile: 256; tiles = 2 * ceil(1024 / 128) = 16 >= 12 SMs,
  //   so 2 waves of 12: wave factor 24 / 16 = 1.5; charged flops = 4,194,304 * 256 * 1.5 = 1,610,612,736
  //   -> / (0.5 * 100e12) = 3.221225472e-5 s. bytes = 200*2048*2 + 2048*1024*2 + 200*1024*2 = 5,423,104
  //   -> / 1e12 = 5.42e-6 s. Compute-bound: 3e-6 + 3.221225472e-5 = 3.521225472e-5 s (unquantised it would
  //   be 1.9777216e-5 s).
  KernelCost down = cm.gemm("expert_down", DType::bf16, 200, 1024, 2048);
  CHECK(down.seconds == Approx(3.521225472e-5).epsilon(1e-12));
  CHECK(down.prov == Provenance::fitted);
}

TEST_CASE("grouped experts, permute, attention, shared expert", "[models][cost]") {
  CostModel cm(toy_profile(), toy_arch());
  // Grouped gate_up over [0, 1, 0, 1]: two active experts, each the 1-token cost 1e-6 + 3.3591296e-5.
  CHECK(cm.grouped_gate_up({0, 1, 0, 1}).seconds == Approx(2 * (1e-6 + 3.3591296e-5)).epsilon(1e-12));
  // permute 100 tokens: 2 * 100 * 2 * 1024 * 2 B = 819,200 B -> / (0.5 * 1e12) = 1.6384e-6 s, + 1 us.
  CHECK(cm.permute(100).seconds == Approx(1e-6 + 1.6384e-6).epsilon(1e-12));
  // SwiGLU, 10 rows of ffn 4096: bytes = 3 * 10 * 4096 * 2 = 245,760 -> / 5e11 = 4.9152e-7 s;
  //   flops = 4 * 10 * 4096 = 163,840 -> / (1.0 * 100e12) = 1.6384e-9 s; memory-bound.
  CHECK(cm.swiglu(10, 4096).seconds == Approx(1e-6 + 4.9152e-7).epsilon(1e-12));
  // Decode attention core, 1 sequence over 1000 cached tokens, 8 heads x 128, MHA:
  //   flops = 2 * 1 * 1000 * 8 * 2 * 128 = 4,096,000 -> / (0.5 * 100e12) = 8.192e-8 s
  //   bytes = 1000 * 2 * 8 * 128 * 2 (KV cache) + 2 * 8 * 128 * 2 = 4,100,096 -> / 5e11 = 8.200192e-6 s
  CHECK(cm.attention_core(AttentionPass::decode, 1, 1000).seconds == Approx(1e-6 + 8.200192e-6).epsilon(1e-12));
  // Prefill core, 4096 tokens of sequences of 4096: context (4096 + 1) / 2 = 2048.5,
  //   flops = 2 * 4096 * 2048.5 * 8 * (128 + 128) = 34,368,126,976 -> / 5e13 = 6.8736253952e-4 s
  //   bytes = 4096 * (4 * 8 * 128) * 2 = 33,554,432 -> 6.7108864e-5 s; compute-bound.
  CHECK(cm.attention_core(AttentionPass::prefill, 4096, 4096).seconds ==
        Approx(1e-6 + 6.8736253952e-4).epsilon(1e-12));
  CHECK(cm.shared_expert(100).seconds == 0.0);  // no shared experts
  CHECK_THROWS_AS(cm.dense_mlp(1), std::invalid_argument);
  CHECK(CostModel::sub_expert_ffn(4096, 4) == 1024);
  CHECK_THROWS_AS(CostModel::sub_expert_ffn(4096, 3), std::invalid_argument);
  // Split P = 4 shrinks the gate_up GEMM to n = 2 * 1024: 1 token bytes = 2048 + 1024*2048*2 + 2048*2
  //   = 4,200,448 -> / 5e11 = 8.400896e-6 s.
  CHECK(cm.expert_gate_up(1, 4).seconds == Approx(1e-6 + 8.400896e-6).epsilon(1e-12));
}

TEST_CASE("cost model runs on every preset with the H200 profile", "[models][cost]") {
  Profile h200 = load_profile("h200-sxm", kDataDir);
  for (const std::string& name : list_architecture_presets(kDataDir)) {
    INFO(name);
    CostModel cm(h200, load_architecture_preset(name, kDataDir));
    CHECK(cm.attention(AttentionPass::prefill, 4096, 4096).seconds > 0);
    CHECK(cm.attention(AttentionPass::decode, 64, 4096).seconds > 0);
    CHECK(cm.router(4096).seconds > 0);
    // Ridge check: a 1-token expert GEMM is weight-bandwidth bound, so 2 tokens cost about the same.
    CHECK(cm.expert_gate_up(2).seconds == Approx(cm.expert_gate_up(1).seconds).epsilon(0.01));
  }
}

TEST_CASE("FFN kinds: gelu and relu FFNs have 2 matrices and their own activation kernel", "[models][cost]") {
  Doc d(std::string("model:\n  layers: 1\n  hidden: 1024\n  expert_ffn: 4096\n  dense_ffn: 2048\n  routed_experts: 8\n"
                    "  top_k: 2\n  attention: {kind: mha, heads: 8, head_dim: 128}\n  expert_activation: gelu\n"
                    "  dense_activation: relu\n"));
  const Architecture a = decode_architecture(d.root.at("model"), kDataDir);
  REQUIRE(d.diags.str() == "");
  CHECK(a.expert_activation == Activation::gelu);
  CHECK(a.dense_activation == Activation::relu);
  CostModel cm(toy_profile(), a), swi(toy_profile(), toy_arch());
  // The first GEMM is hidden -> ffn (SwiGLU: hidden -> 2 ffn): the same call as a plain gemm of n = 4096.
  CHECK(cm.expert_gate_up(5).seconds == cm.gemm("expert_gate_up", DType::bf16, 5, 4096, 1024).seconds);
  CHECK(swi.expert_gate_up(5).seconds == cm.gemm("expert_gate_up", DType::bf16, 5, 8192, 1024).seconds);
  // GELU over 10 rows of 4096: reads and writes 10 x 4096 bf16 = 2 x 10 x 4096 x 2 = 163,840 B -> / (0.5 x
  // 1 TB/s) = 3.2768e-7 s; 8 FLOP per element = 327,680 -> / 1e14 = 3.3e-9 s: memory-bound, + 1 us launch.
  // ReLU: the same bytes (1 FLOP per element).
  CHECK(cm.activation(10, 4096, Activation::gelu).seconds == Approx(1e-6 + 3.2768e-7).epsilon(1e-12));
  CHECK(cm.activation(10, 4096, Activation::relu).seconds == Approx(1e-6 + 3.2768e-7).epsilon(1e-12));
  CHECK(cm.activation(10, 4096, Activation::swiglu).seconds == swi.swiglu(10, 4096).seconds);
  // A grouped expert op = gate_up + one activation launch over all rows + down.
  const double want = cm.expert_gate_up(5).seconds + cm.expert_gate_up(3).seconds +
                      cm.activation(8, 4096, Activation::gelu).seconds + cm.expert_down(5).seconds +
                      cm.expert_down(3).seconds;
  CHECK(cm.grouped_experts({5, 0, 3}).seconds == Approx(want).epsilon(1e-12));
  // Weights: 2 matrices of 1024 x 4096 bf16 = 16,777,216 B (SwiGLU: 3 = 25,165,824 B).
  CHECK(cm.expert_weight_bytes(0, DType::bf16) == 16777216.0);
  CHECK(swi.expert_weight_bytes(0, DType::bf16) == 25165824.0);
  // The dense MLP uses dense_activation: relu, hidden -> 2048 -> hidden.
  const double dense = cm.gemm("expert_gate_up", DType::bf16, 7, 2048, 1024).seconds +
                       cm.activation(7, 2048, Activation::relu).seconds +
                       cm.gemm("expert_down", DType::bf16, 7, 1024, 2048).seconds;
  CHECK(cm.dense_mlp(7).seconds == Approx(dense).epsilon(1e-12));
}

TEST_CASE("FFN kinds: an unknown activation is an error naming the key", "[models][cost]") {
  Doc d(std::string("model:\n  layers: 1\n  hidden: 1024\n  expert_ffn: 4096\n  routed_experts: 8\n  top_k: 2\n"
                    "  attention: {kind: mha, heads: 8, head_dim: 128}\n  expert_activation: tanh\n"));
  decode_architecture(d.root.at("model"), kDataDir);
  CHECK_THAT(d.diags.str(), Catch::Contains("model.expert_activation: must be one of swiglu, gelu, relu (got tanh)"));
}

TEST_CASE("attention kinds: causal or not, sliding or Swin-style windows", "[models][cost]") {
  auto with = [](const std::string& extra) {
    Doc d(std::string("model:\n  layers: 1\n  hidden: 1024\n  expert_ffn: 4096\n  routed_experts: 8\n  top_k: 2\n"
                      "  attention: {kind: mha, heads: 8, head_dim: 128") + extra + "}\n");
    Architecture a = decode_architecture(d.root.at("model"), kDataDir);
    REQUIRE(d.diags.str() == "");
    return a;
  };
  // Prefill of 4096 tokens in sequences of 4096, 8 heads x (128 + 128): flops = 2 x 4096 x ctx x 8 x 256 =
  // 16,777,216 x ctx; / (0.5 x 100e12) = 3.3554432e-7 x ctx s. Bytes (Q, K, V, O once: 4 x 4096 x 1024 x 2 =
  // 33,554,432 -> 6.7108864e-5 s) stay below the compute time for every ctx here, so time = 1 us + 3.3554432e-7 ctx.
  auto prefill = [](const Architecture& a) {
    return CostModel(toy_profile(), a).attention_core(AttentionPass::prefill, 4096, 4096).seconds;
  };
  const double per_ctx = 3.3554432e-7;
  CHECK(prefill(with("")) == Approx(1e-6 + per_ctx * 2048.5).epsilon(1e-12));                  // (S + 1) / 2
  CHECK(prefill(with(", causal: false")) == Approx(1e-6 + per_ctx * 4096).epsilon(1e-12));      // S
  // Causal, sliding window 1024: (1024 x 1025 / 2 + 3072 x 1024) / 4096 = (524,800 + 3,145,728) / 4096 = 896.125.
  CHECK(prefill(with(", window: 1024")) == Approx(1e-6 + per_ctx * 896.125).epsilon(1e-12));
  // Not causal, windows of 256 tokens (Swin-style): 256 keys per query. Compute 8.59e-5 s, bytes 6.71e-5 s.
  CHECK(prefill(with(", causal: false, window: 256")) == Approx(1e-6 + per_ctx * 256).epsilon(1e-12));
  // A window at least S changes nothing.
  CHECK(prefill(with(", window: 8192")) == prefill(with("")));
  // Decode over 1000 cached tokens with a 100-token sliding window reads 100 keys: as decode over 100.
  const CostModel w(toy_profile(), with(", window: 100")), full(toy_profile(), with(""));
  CHECK(w.attention_core(AttentionPass::decode, 1, 1000).seconds ==
        full.attention_core(AttentionPass::decode, 1, 100).seconds);
  Doc bad("model:\n  layers: 1\n  hidden: 1024\n  expert_ffn: 4096\n  routed_experts: 8\n  top_k: 2\n"
          "  attention: {kind: mha, heads: 8, head_dim: 128, window: -4}\n");
  decode_architecture(bad.root.at("model"), kDataDir);
  CHECK_THAT(bad.diags.str(), Catch::Contains("model.attention.window: must be in [0, 100000000] (got -4)"));
}

// Shape model (issue 13 point 6) on the toy GPU: 12 SMs, 100 TFLOP/s, 1 TB/s, e_c = e_m = 0.5, launch 1 us.
//   k_overhead = 2 B * 100e12 / (2 * 1e12) = 100 steps of K.
//   Reference 8192^3: 4096 tiles in ceil(4096 / 12) = 342 waves (wave factor 342 * 12 / 4096 = 1.001953125);
//   e_tile = 0.5 * 1.001953125 * (8192 + 100) / 8192 = 0.50709176.
TEST_CASE("shape model: GEMM costs with tiles, waves, split-K and the K overhead", "[models][cost][gemm_shape]") {
  CostModel cm(toy_profile_tiled(), toy_arch());
  REQUIRE(cm.tiled_gemms());
  const double e_tile = 0.5 * (342.0 * 12 / 4096) * (8292.0 / 8192);
  // gate_up, 4096 tokens, n = 8192, k = 1024 (no table of that shape): 32 x 64 = 2048 tiles, ceil(2048 / 12)
  // = 171 waves; compute = 171 * 2 * 128 * 128 * (1024 + 100) * 12 / (100e12 * e_tile) = 7.5577688e10 /
  // 5.0709176e13 = 1.490413 ms (the flat roofline: 1.374390 ms); memory 0.184549 ms: compute-bound.
  const double up = 171.0 * 2 * 128 * 128 * 1124 * 12 / (100e12 * e_tile);
  CHECK(up == Approx(1.490413e-3).epsilon(1e-6));
  KernelCost c = cm.expert_gate_up(4096);
  CHECK(c.seconds == Approx(1e-6 + up).epsilon(1e-12));
  CHECK(c.prov == Provenance::datasheet);
  // down, 1 token, n = 1024, k = 4096: 1 x 8 = 8 tiles < 12 SMs: split-K s = min(floor(12 / 8), 64) = 1;
  // compute = 2 * 128 * 128 * (4096 + 100) * 12 / (100e12 * e_tile) = 32.537 us (one padded 128-row tile)
  // against 16.798 us of weight reads: compute-bound.
  const double down = 2.0 * 128 * 128 * 4196 * 12 / (100e12 * e_tile);
  CHECK(down == Approx(32.537e-6).epsilon(1e-4));
  CHECK(cm.expert_down(1).seconds == Approx(1e-6 + down).epsilon(1e-12));
  // The measured table still wins inside its range: gate_up n = 64, k = 32 at 5 tokens is interpolated.
  CostModel small(toy_profile_tiled(), [] {
    Architecture a = toy_arch();
    a.hidden = 32;
    a.expert_ffn = 32;
    return a;
  }());
  const KernelCost t = small.expert_gate_up(5);
  CHECK(t.seconds == Approx(20e-6).epsilon(1e-12));
  CHECK(t.prov == Provenance::measured);
}

TEST_CASE("shape model: profile overrides and the memory-bound regime", "[models][cost][gemm_shape]") {
  // tile_m 16 (a small-M kernel): 1 token, gate_up n = 8192, k = 1024: 1 x 64 = 64 tiles, 6 waves.
  // Reference with 16-row tiles: 512 x 64 = 32768 tiles, ceil(32768 / 12) = 2731 waves (factor 2731 * 12 /
  // 32768 = 1.00012207); e_tile = 0.5 * 1.00012207 * 8292 / 8192 = 0.50616531.
  // compute = 6 * 2 * 16 * 128 * (1024 + 100) * 12 / (100e12 * e_tile) = 6.549 us; the weights take
  // 16,795,648 B / 0.5e12 = 33.591 us: memory-bound, 1 us + 33.591296 us as the flat roofline.
  CostModel cm(toy_profile_tiled("gemm_shape: {tile_m: 16, source: \"test: a 16-row tile\"}\n"), toy_arch());
  CHECK(cm.profile().gemm_shape.tile_m == 16);
  CHECK(cm.expert_gate_up(1).seconds == Approx(1e-6 + 3.3591296e-5).epsilon(1e-12));
  // k_overhead 0, tile_m 16, 96 tokens: 6 x 64 = 384 tiles = 32 full waves, so compute = 32 * 2 * 16 * 128 *
  // 1024 * 12 / (100e12 * e0) with e0 = 0.5 * 1.00012207 (no K overhead): = 1.6106e9 / 5.0006e13 = 32.208 us;
  // memory: (96 * 1024 + 1024 * 8192 + 96 * 8192) * 2 B / 0.5e12 = 37.093 us: memory-bound.
  CostModel k0(toy_profile_tiled("gemm_shape: {tile_m: 16, k_overhead: 0, source: \"test\"}\n"), toy_arch());
  const double mem = (96.0 * 1024 + 1024.0 * 8192 + 96.0 * 8192) * 2 / 0.5e12;
  const double comp = 32.0 * 2 * 16 * 128 * 1024 * 12 / (100e12 * 0.5 * (2731.0 * 12 / 32768));
  CHECK(comp == Approx(32.208e-6).epsilon(1e-4));
  CHECK(mem == Approx(37.093e-6).epsilon(1e-4));
  CHECK(k0.expert_gate_up(96).seconds == Approx(1e-6 + mem).epsilon(1e-12));
  // 192 tokens: 64 full waves, compute 64.416 us > memory (192 * 1024 + 8 Mi + 192 * 8192) * 2 / 0.5e12 =
  // 40.694 us: compute-bound.
  CHECK(k0.expert_gate_up(192).seconds == Approx(1e-6 + 2 * comp).epsilon(1e-12));
}

TEST_CASE("shape model: flat and measured profiles keep the flat roofline", "[models][cost][gemm_shape]") {
  CostModel flat(toy_profile(), toy_arch());
  CHECK_FALSE(flat.tiled_gemms());
  Profile measured = toy_profile_tiled();
  measured.kind = ProfileKind::measured;
  CostModel m(measured, toy_arch());
  CHECK_FALSE(m.tiled_gemms());
  // 1e-6 + 2 * 4096 * 8192 * 1024 / (0.5 * 100e12), as in the first roofline test.
  CHECK(m.expert_gate_up(4096).seconds == Approx(1e-6 + 1.37438953472e-3).epsilon(1e-12));
}
