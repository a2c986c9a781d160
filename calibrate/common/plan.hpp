// What a calibration run measures: built-in model shapes, presets, sweeps and a rough time estimate.
//
// Header-only and CUDA-free: the CUDA binary prints it for --dry-run (no GPU needed) and host tests check
// it. Shapes come from the model table in /work/shared/REFERENCE.md (hidden size, expert FFN, experts, top-k).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace moesim::calibrate {

struct ModelShape {
  const char* name;
  int hidden;   // model hidden size (GEMM k of gate_up, n of down)
  int ffn;      // routed expert FFN width
  int experts;  // routed experts
  int topk;     // experts per token
};

inline constexpr std::array<ModelShape, 7> kModelShapes{{
    {"Mixtral-8x7B", 4096, 14336, 8, 2},
    {"DeepSeek-V2-Lite", 2048, 1408, 64, 6},
    {"DeepSeek-V3", 7168, 2048, 256, 8},
    {"OLMoE-1B-7B", 2048, 1024, 64, 8},
    {"Qwen3-30B-A3B", 2048, 768, 128, 8},
    {"Kimi-VL-A3B", 2048, 1408, 64, 6},
    {"Qwen3-235B-A22B", 4096, 1536, 128, 8},
}};

inline const ModelShape& model_shape(const std::string& name) {
  for (const auto& m : kModelShapes) {
    if (name == m.name) return m;
  }
  throw std::invalid_argument("unknown model preset '" + name + "'");
}

// One GEMM shape (weights k x n); models that share it are measured once.
struct GemmShape {
  std::string kernel;  // expert_gate_up | expert_down
  long long n = 0;
  long long k = 0;
  int split = 1;       // P: sub-experts per expert
  std::vector<std::string> models;
};

// Row width (k) and, for router_topk, top-k (n) of an elementwise kernel.
struct ElementwiseShape {
  std::string kernel;  // cast_fp8 | permute | unpermute | swiglu | router_topk
  std::string dtype;   // bf16, or the fp8 scaling of cast_fp8
  long long n = 0;
  long long k = 0;
  std::vector<std::string> models;
};

inline const std::vector<std::string>& all_sections() {
  // Cheap, always-useful sections first, so a short budget still yields launch, copy and interference.
  static const std::vector<std::string> s{"clock",       "launch",      "copy_blocks",  "interference",
                                          "expert_gemm", "elementwise", "grouped_gemm", "all_to_all"};
  return s;
}

struct Plan {
  std::string preset;
  double budget_s = 0;
  int samples = 5;              // samples per point (median taken)
  double min_sample_s = 200e-6; // each sample spans at least this long (graph replays chosen so)
  std::vector<std::string> sections;
  std::vector<GemmShape> gemm_shapes;
  std::vector<std::string> gemm_dtypes;
  std::vector<long long> gemm_tokens;      // tokens per expert
  std::vector<GemmShape> grouped_shapes;
  int grouped_experts = 8;                 // local experts per GPU in the grouped GEMM
  double grouped_zipf_s = 1.0;             // token counts of expert e proportional to 1 / (e + 1)^s
  std::vector<long long> grouped_tokens;   // total tokens over the local experts
  std::vector<ElementwiseShape> elementwise;
  std::vector<long long> elementwise_rows;
  std::vector<int> copy_blocks;            // thread blocks; 0 entries mean "SMs x copy_sm_multiples"
  std::vector<int> copy_sm_multiples;
  long long copy_bytes = 512ll << 20;      // per copy, bytes (>> L2)
  std::vector<int> launch_bursts;          // kernels per burst
  std::vector<int> interference_sms;       // SMs held by the copy kernel
  std::vector<long long> a2a_bytes;        // bytes each GPU sends in total
  // Sentinel GEMM: DeepSeek-V3 gate_up (n = 2 * 2048, k = 7168), bf16, 4096 tokens (~0.3 ms on H200).
  long long sentinel_n = 4096, sentinel_k = 7168, sentinel_tokens = 4096;
};

inline void add_gemm_shape(std::vector<GemmShape>& shapes, const std::string& kernel, long long n, long long k,
                           int split, const std::string& model) {
  for (auto& s : shapes) {
    if (s.kernel == kernel && s.n == n && s.k == k) {
      if (std::find(s.models.begin(), s.models.end(), model) == s.models.end()) s.models.push_back(model);
      return;
    }
  }
  shapes.push_back(GemmShape{kernel, n, k, split, {model}});
}

inline void add_elementwise(std::vector<ElementwiseShape>& v, const std::string& kernel, const std::string& dtype,
                            long long n, long long k, const std::string& model) {
  for (auto& s : v) {
    if (s.kernel == kernel && s.dtype == dtype && s.n == n && s.k == k) {
      if (std::find(s.models.begin(), s.models.end(), model) == s.models.end()) s.models.push_back(model);
      return;
    }
  }
  v.push_back(ElementwiseShape{kernel, dtype, n, k, {model}});
}

// The expert GEMM shapes of one model split into P sub-experts (P = 1: the whole expert).
inline void add_model_gemms(std::vector<GemmShape>& shapes, const ModelShape& m, int split) {
  const long long f = m.ffn / split;
  add_gemm_shape(shapes, "expert_gate_up", 2 * f, m.hidden, split, m.name);  // tokens x hidden . hidden x 2f
  add_gemm_shape(shapes, "expert_down", m.hidden, f, split, m.name);         // tokens x f . f x hidden
}

inline Plan make_plan(const std::string& preset) {
  Plan p;
  p.preset = preset;
  p.sections = all_sections();
  p.gemm_dtypes = {"bf16", "fp8_tensor", "fp8_block_1x128", "fp8_block_128x128"};
  std::vector<std::string> models;
  std::vector<std::string> split_models;  // models also measured at P = 2, 4
  if (preset == "quick") {
    // Must finish in under 4 minutes on an H200: four shapes families, sparse sweeps, 5 samples.
    p.budget_s = 210;
    p.samples = 5;
    models = {"DeepSeek-V3", "Qwen3-30B-A3B", "Mixtral-8x7B", "DeepSeek-V2-Lite"};
    split_models = {"DeepSeek-V3"};
    p.gemm_tokens = {1, 8, 32, 64, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384};
    p.grouped_tokens = {256, 1024, 4096, 16384};
    p.elementwise_rows = {1, 16, 128, 1024, 4096, 16384, 65536};
    p.launch_bursts = {1, 16, 128, 1024};
    p.copy_blocks = {1, 2, 4, 8, 16, 24, 32, 64, 0};
    p.copy_sm_multiples = {1, 4};
    p.interference_sms = {0, 8, 16, 20, 24, 32};
    p.a2a_bytes = {4096, 65536, 1 << 20, 16 << 20, 128 << 20};
  } else if (preset == "full") {
    p.budget_s = 3600;
    p.samples = 7;
    for (const auto& m : kModelShapes) models.push_back(m.name);
    split_models = models;
    // Powers of two and their 1.5x midpoints from 1 to 16384 tokens per expert.
    for (long long t = 1; t <= 16384; t *= 2) {
      p.gemm_tokens.push_back(t);
      if (t >= 2 && t * 3 / 2 < 16384) p.gemm_tokens.push_back(t * 3 / 2);
    }
    std::sort(p.gemm_tokens.begin(), p.gemm_tokens.end());
    p.grouped_tokens = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};
    for (long long r = 1; r <= 131072; r *= 4) p.elementwise_rows.push_back(r);
    p.launch_bursts = {1, 4, 16, 64, 256, 1024};
    p.copy_blocks = {1, 2, 4, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128, 0};
    p.copy_sm_multiples = {1, 2, 4, 8};
    p.interference_sms = {0, 4, 8, 12, 16, 20, 24, 32, 48};
    for (long long b = 1024; b <= (1ll << 30); b *= 4) p.a2a_bytes.push_back(b);
  } else {
    throw std::invalid_argument("unknown preset '" + preset + "' (expected quick or full)");
  }
  for (const auto& name : models) {
    const auto& m = model_shape(name);
    add_model_gemms(p.gemm_shapes, m, 1);
    if (std::find(split_models.begin(), split_models.end(), name) != split_models.end()) {
      add_model_gemms(p.gemm_shapes, m, 2);
      add_model_gemms(p.gemm_shapes, m, 4);
    }
    // Grouped GEMM: the unsplit expert shapes.
    add_gemm_shape(p.grouped_shapes, "expert_gate_up", 2ll * m.ffn, m.hidden, 1, m.name);
    add_gemm_shape(p.grouped_shapes, "expert_down", m.hidden, m.ffn, 1, m.name);
    add_elementwise(p.elementwise, "cast_fp8", "fp8_block_1x128", 0, m.hidden, m.name);    // activations
    add_elementwise(p.elementwise, "cast_fp8", "fp8_block_128x128", 0, m.hidden, m.name);  // weights, rows = n
    add_elementwise(p.elementwise, "cast_fp8", "fp8_block_128x128", 0, m.ffn, m.name);     // down weights
    add_elementwise(p.elementwise, "permute", "bf16", 0, m.hidden, m.name);
    add_elementwise(p.elementwise, "unpermute", "bf16", m.topk, m.hidden, m.name);
    add_elementwise(p.elementwise, "swiglu", "bf16", 0, m.ffn, m.name);
    add_elementwise(p.elementwise, "router_topk", "bf16", m.topk, m.experts, m.name);
  }
  if (preset == "quick") {
    // Grouped GEMM only for two models in the quick preset.
    std::vector<GemmShape> keep;
    for (const auto& s : p.grouped_shapes) {
      if (s.models.front() == "DeepSeek-V3" || s.models.front() == "Qwen3-30B-A3B") keep.push_back(s);
    }
    p.grouped_shapes = keep;
  }
  return p;
}

// Rough device-time estimate (seconds) for planning only: an H200-like roofline (800 TFLOP/s bf16,
// 1600 fp8, 4 TB/s), plus a fixed cost per point (graph capture, instantiation, heuristic query, pilot).
struct PlanEstimate {
  double gemm_s = 0, grouped_s = 0, elementwise_s = 0, other_s = 0;
  long long gemm_points = 0, grouped_points = 0, elementwise_points = 0;
  double total() const { return gemm_s + grouped_s + elementwise_s + other_s; }
};

inline PlanEstimate estimate_plan(const Plan& p) {
  const double per_point_overhead_s = 0.02;  // heuristic query, capture + instantiation of up to 256 nodes
  const double per_shape_overhead_s = 0.2;   // allocation + random fill
  auto point_cost = [&](double kernel_s) {
    const double sample = std::max(p.min_sample_s, kernel_s * 2);  // >= 2 kernels per replay
    return per_point_overhead_s + (p.samples + 2) * sample;        // + warm-up and pilot replays
  };
  PlanEstimate e;
  for (const auto& s : p.gemm_shapes) {
    for (const auto& dt : p.gemm_dtypes) {
      const double peak = dt == "bf16" ? 800e12 : 1600e12;
      const double elem = dt == "bf16" ? 2 : 1;
      e.gemm_s += per_shape_overhead_s;
      for (const long long t : p.gemm_tokens) {
        const double flops = 2.0 * t * s.n * s.k;
        const double bytes = elem * (s.n * s.k + t * s.k) + 2.0 * t * s.n;
        e.gemm_s += point_cost(std::max(flops / peak, bytes / 4e12) + 5e-6);
        ++e.gemm_points;
      }
    }
  }
  for (const auto& s : p.grouped_shapes) {
    for (int variant = 0; variant < 3; ++variant) {  // bf16 loop, bf16 cublas grouped, fp8 loop
      e.grouped_s += per_shape_overhead_s;
      for (const long long t : p.grouped_tokens) {
        const double flops = 2.0 * t * s.n * s.k;
        const double bytes = 2.0 * p.grouped_experts * s.n * s.k;
        e.grouped_s += point_cost(std::max(flops / 800e12, bytes / 4e12) + p.grouped_experts * 5e-6);
        ++e.grouped_points;
      }
    }
  }
  for (const auto& s : p.elementwise) {
    e.elementwise_s += per_shape_overhead_s;
    for (const long long r : p.elementwise_rows) {
      e.elementwise_s += point_cost(6.0 * r * s.k / 4e12 + 3e-6);
      ++e.elementwise_points;
    }
  }
  const double copy_points = static_cast<double>(p.copy_blocks.size() + p.copy_sm_multiples.size());
  e.other_s += 1.0;                                                      // clock probe, context, handles
  e.other_s += copy_points * point_cost(p.copy_bytes * 2.0 / 1e12);     // slow at few blocks
  e.other_s += static_cast<double>(p.launch_bursts.size()) * (p.samples + 2) * 0.003;
  e.other_s += static_cast<double>(p.interference_sms.size()) * 0.2;
  e.other_s += static_cast<double>(p.a2a_bytes.size()) * 0.1 + 2.0;     // NCCL init when several GPUs
  e.other_s += 8 * point_cost(3e-4);                                    // sentinel after each section
  return e;
}

inline std::string join_ints(const std::vector<long long>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

// The text --dry-run prints.
inline std::string describe_plan(const Plan& p) {
  std::string out;
  char buf[512];
  auto line = [&](const char* fmt, auto... args) {
    std::snprintf(buf, sizeof buf, fmt, args...);
    out += buf;
    out += "\n";
  };
  line("moesim-calibrate plan: preset %s, budget %.0f s, %d samples/point (median), samples >= %.0f us",
       p.preset.c_str(), p.budget_s, p.samples, p.min_sample_s * 1e6);
  std::string secs;
  for (const auto& s : p.sections) {
    if (!secs.empty()) secs += ", ";
    secs += s;
  }
  line("sections (in order): %s", secs.c_str());
  std::string dtypes;
  for (const auto& d : p.gemm_dtypes) {
    if (!dtypes.empty()) dtypes += ' ';
    dtypes += d;
  }
  line("[expert_gemm] cuBLASLt TN, dtypes: %s", dtypes.c_str());
  line("  tokens per expert: %s", join_ints(p.gemm_tokens).c_str());
  for (const auto& s : p.gemm_shapes) {
    std::string models;
    for (const auto& m : s.models) {
      if (!models.empty()) models += ",";
      models += m;
    }
    line("  %-15s n=%-6lld k=%-6lld P=%d  (%s)", s.kernel.c_str(), s.n, s.k, s.split, models.c_str());
  }
  line("[grouped_gemm] %d local experts, zipf s=%.1f token split; variants: bf16 lt_graph_loop, bf16 "
       "cublas_grouped, fp8_tensor lt_graph_loop",
       p.grouped_experts, p.grouped_zipf_s);
  line("  total tokens: %s", join_ints(p.grouped_tokens).c_str());
  for (const auto& s : p.grouped_shapes) {
    line("  %-15s n=%-6lld k=%-6lld (%s)", s.kernel.c_str(), s.n, s.k, s.models.front().c_str());
  }
  line("[elementwise] rows: %s", join_ints(p.elementwise_rows).c_str());
  for (const auto& s : p.elementwise) {
    line("  %-12s %-18s n=%-4lld k=%lld", s.kernel.c_str(), s.dtype.c_str(), s.n, s.k);
  }
  std::vector<long long> blocks(p.copy_blocks.begin(), p.copy_blocks.end());
  blocks.erase(std::remove(blocks.begin(), blocks.end(), 0), blocks.end());
  std::vector<long long> mult(p.copy_sm_multiples.begin(), p.copy_sm_multiples.end());
  line("[copy_blocks] %lld MiB device copy, blocks: %s and SMs x {%s}", p.copy_bytes >> 20,
       join_ints(blocks).c_str(), join_ints(mult).c_str());
  std::vector<long long> bursts(p.launch_bursts.begin(), p.launch_bursts.end());
  line("[launch] empty-kernel bursts (stream launches and graph replays): %s", join_ints(bursts).c_str());
  std::vector<long long> held(p.interference_sms.begin(), p.interference_sms.end());
  line("[interference] sentinel GEMM while a copy kernel holds c SMs, c: %s", join_ints(held).c_str());
  line("[all_to_all] NCCL grouped send/recv over all visible GPUs (needs >= 2), bytes per GPU: %s",
       join_ints(p.a2a_bytes).c_str());
  line("[sentinel] bf16 GEMM n=%lld k=%lld tokens=%lld, re-measured after every section", p.sentinel_n,
       p.sentinel_k, p.sentinel_tokens);
  const auto e = estimate_plan(p);
  line("estimated device time (H200-like roofline, rough): %.0f s total = expert_gemm %.0f s (%lld points)"
       " + grouped %.0f s (%lld) + elementwise %.0f s (%lld) + other %.0f s; budget %.0f s",
       e.total(), e.gemm_s, e.gemm_points, e.grouped_s, e.grouped_points, e.elementwise_s, e.elementwise_points,
       e.other_s, p.budget_s);
  return out;
}

}  // namespace moesim::calibrate
