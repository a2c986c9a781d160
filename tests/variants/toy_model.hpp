// The toy GPU and one-layer MoE model of the schedule tests worked by hand (DualSparse, ETP, capacity
// padding, ReaLB/EPLB): round numbers, so expected values can be derived in each test.
#pragma once

#include <cstdint>
#include <string>

#include "models/architecture.hpp"
#include "models/profile.hpp"

namespace moesim::testing {

// A datasheet GPU: 1 TB/s, 100 TFLOP/s bf16 (fp8: `peak_fp8`, 0 = none), 5 us per kernel launch.
inline models::Profile toy_gpu(const std::string& id = "toy", double peak_fp8 = 0.0) {
  models::Profile p;
  p.id = id;
  p.kind = models::ProfileKind::datasheet;
  p.memory_bandwidth = 1e12;
  p.peak_bf16 = 1e14;
  p.peak_fp8 = peak_fp8;
  p.launch_overhead_s = 5e-6;
  return p;
}

// One MoE layer: hidden 1024 (bf16: 2048 bytes per token), MHA 8 heads x 128, `experts` routed experts of FFN
// `expert_ffn`, top_k, and `shared` shared experts of FFN 512 (none by default).
inline models::Architecture toy_moe(const std::string& name, int experts, int top_k, int64_t expert_ffn = 512,
                                    int shared = 0) {
  models::Architecture a;
  a.name = name;
  a.layers = 1;
  a.hidden = 1024;
  a.expert_ffn = static_cast<int>(expert_ffn);
  a.vision_expert_ffn = static_cast<int>(expert_ffn);
  a.routed_experts = experts;
  a.shared_experts = shared;
  a.shared_expert_ffn = shared > 0 ? 512 : 0;
  a.top_k = top_k;
  a.attention.kind = models::AttentionKind::mha;
  a.attention.heads = 8;
  a.attention.kv_heads = 8;
  a.attention.head_dim = 128;
  a.moe_layer = {true};
  return a;
}

}  // namespace moesim::testing
