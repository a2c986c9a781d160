// The raw calibration format (`moesim-calibrate-raw/1`), documented in calibrate/README.md.
//
// The CUDA binary fills a RawRun and rewrites the whole file after every section; the fitter reads it
// back (fit/io.cpp). Header-only and CUDA-free so a CPU test can round-trip exactly this writer. Builds as
// C++17 too (the comparisons, used by tests, need C++20), for nvcc hosts with an older compiler.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "yaml_writer.hpp"

namespace moesim::calibrate {

inline constexpr const char* kRawSchema = "moesim-calibrate-raw/1";

// One measured point: x in the measurement's axis unit (tokens, rows, blocks, ...), times in seconds per
// kernel execution (median, min, max over `samples` samples).
struct RawPoint {
  double x = 0;
  double median_s = 0;
  double min_s = 0;
  double max_s = 0;
  int samples = 0;
#if __cplusplus >= 202002L
  bool operator==(const RawPoint&) const = default;
#endif
};

struct RawMeasurement {
  std::string kernel;            // expert_gate_up, expert_down, grouped_gemm, cast_fp8, permute, ...
  std::string dtype;             // bf16 | fp8_tensor | fp8_block_1x128 | fp8_block_128x128
  std::string variant;           // implementation: cublaslt, lt_graph_loop, cublas_grouped, custom, ...
  long long n = 0;               // GEMM output columns; see README per kernel for non-GEMM meaning
  long long k = 0;               // GEMM reduction dim, or the row width of elementwise kernels
  int split = 1;                 // sub-experts per expert (P); the shape is already divided by it
  std::vector<std::string> models;  // model presets this shape belongs to (informational)
  std::string axis = "tokens";   // unit of RawPoint::x
  double flops_per_unit = 0;     // FLOP per unit of axis
  double bytes_fixed = 0;        // bytes moved regardless of x (weights), bytes
  double bytes_per_unit = 0;     // bytes moved per unit of axis, bytes
  std::vector<std::pair<std::string, double>> params;  // kernel-specific numbers (experts, topk, ...)
  std::vector<RawPoint> points;
#if __cplusplus >= 202002L
  bool operator==(const RawMeasurement&) const = default;
#endif
};

struct RawSection {
  std::string name;
  std::string status;  // complete | truncated | skipped | failed | unsupported
  double elapsed_s = 0;
  std::string note;
#if __cplusplus >= 202002L
  bool operator==(const RawSection&) const = default;
#endif
};

// The same GEMM re-measured between sections: drift in its time (or in the loaded SM clock) flags
// thermal or power throttling during the run.
struct RawSentinel {
  std::string after;     // section name it followed ("start" for the first)
  double elapsed_s = 0;  // since the run started, s
  double median_s = 0;   // sentinel GEMM time, s
  double sm_clock_mhz = 0;  // SM clock measured under load at that moment (clock64 / globaltimer), MHz
#if __cplusplus >= 202002L
  bool operator==(const RawSentinel&) const = default;
#endif
};

struct RawUnsupported {
  std::string kernel;
  std::string dtype;
  long long n = 0;
  long long k = 0;
  double x = 0;  // -1: every point of the shape
  std::string reason;
#if __cplusplus >= 202002L
  bool operator==(const RawUnsupported&) const = default;
#endif
};

struct RawProvenance {
  std::string gpu_name;
  int sms = 0;
  long long l2_bytes = 0;
  long long memory_bytes = 0;
  int memory_bus_bits = 0;
  double sm_clock_max_mhz = 0;    // cudaDevAttrClockRate (boost clock, not locked)
  double mem_clock_max_mhz = 0;   // cudaDevAttrMemoryClockRate
  double sm_clock_measured_mhz = 0;  // under load at the start of the run
  std::string compute_capability;
  std::string driver_version;
  std::string cuda_runtime_version;
  std::string cublaslt_version;
  std::string nccl_version;       // "none" when built without NCCL
  int visible_gpus = 0;
  std::string git_sha;
  std::string date_utc;           // ISO 8601, start of the run
  std::string preset;
  double budget_s = 0;
  int samples_per_point = 0;
  double min_sample_s = 0;
  std::string command;
  bool synthetic = false;         // true only for hand-made test fixtures, never for a real run
#if __cplusplus >= 202002L
  bool operator==(const RawProvenance&) const = default;
#endif
};

struct RawRun {
  RawProvenance provenance;
  bool complete = false;  // false while the run is in progress (or if it was killed)
  double elapsed_s = 0;
  std::vector<RawSection> sections;
  std::vector<RawSentinel> sentinel;
  std::vector<RawUnsupported> unsupported;
  std::vector<RawMeasurement> measurements;
#if __cplusplus >= 202002L
  bool operator==(const RawRun&) const = default;
#endif
};

inline YamlNode to_yaml_node(const RawRun& run) {
  const auto& p = run.provenance;
  YamlNode prov = YamlNode::map();
  prov.set("gpu_name", YamlNode::str(p.gpu_name))
      .set("sms", YamlNode::integer(p.sms))
      .set("l2_bytes", YamlNode::integer(p.l2_bytes))
      .set("memory_bytes", YamlNode::integer(p.memory_bytes))
      .set("memory_bus_bits", YamlNode::integer(p.memory_bus_bits))
      .set("sm_clock_max_mhz", YamlNode::num(p.sm_clock_max_mhz))
      .set("mem_clock_max_mhz", YamlNode::num(p.mem_clock_max_mhz))
      .set("sm_clock_measured_mhz", YamlNode::num(p.sm_clock_measured_mhz))
      .set("compute_capability", YamlNode::str(p.compute_capability))
      .set("driver_version", YamlNode::str(p.driver_version))
      .set("cuda_runtime_version", YamlNode::str(p.cuda_runtime_version))
      .set("cublaslt_version", YamlNode::str(p.cublaslt_version))
      .set("nccl_version", YamlNode::str(p.nccl_version))
      .set("visible_gpus", YamlNode::integer(p.visible_gpus))
      .set("git_sha", YamlNode::str(p.git_sha))
      .set("date_utc", YamlNode::str(p.date_utc))
      .set("preset", YamlNode::str(p.preset))
      .set("budget_s", YamlNode::num(p.budget_s))
      .set("samples_per_point", YamlNode::integer(p.samples_per_point))
      .set("min_sample_s", YamlNode::num(p.min_sample_s))
      .set("command", YamlNode::str(p.command))
      .set("synthetic", YamlNode::boolean(p.synthetic));

  YamlNode sections = YamlNode::seq();
  for (const auto& s : run.sections) {
    YamlNode m = YamlNode::map(true);
    m.set("name", YamlNode::str(s.name))
        .set("status", YamlNode::word(s.status))
        .set("elapsed_s", YamlNode::num(s.elapsed_s))
        .set("note", YamlNode::str(s.note));
    sections.push(std::move(m));
  }
  YamlNode sentinel = YamlNode::seq();
  for (const auto& s : run.sentinel) {
    YamlNode m = YamlNode::map(true);
    m.set("after", YamlNode::str(s.after))
        .set("elapsed_s", YamlNode::num(s.elapsed_s))
        .set("median_s", YamlNode::num(s.median_s))
        .set("sm_clock_mhz", YamlNode::num(s.sm_clock_mhz));
    sentinel.push(std::move(m));
  }
  YamlNode unsupported = YamlNode::seq();
  for (const auto& u : run.unsupported) {
    YamlNode m = YamlNode::map(true);
    m.set("kernel", YamlNode::str(u.kernel))
        .set("dtype", YamlNode::str(u.dtype))
        .set("n", YamlNode::integer(u.n))
        .set("k", YamlNode::integer(u.k))
        .set("x", YamlNode::num(u.x))
        .set("reason", YamlNode::str(u.reason));
    unsupported.push(std::move(m));
  }
  YamlNode measurements = YamlNode::seq();
  for (const auto& r : run.measurements) {
    YamlNode m = YamlNode::map();
    YamlNode models = YamlNode::seq(true);
    for (const auto& name : r.models) models.push(YamlNode::str(name));
    YamlNode params = YamlNode::map(true);
    for (const auto& [key, value] : r.params) params.set(key, YamlNode::num(value));
    YamlNode points = YamlNode::seq();
    for (const auto& pt : r.points) {
      YamlNode row = YamlNode::seq(true);
      row.push(YamlNode::num(pt.x))
          .push(YamlNode::num(pt.median_s))
          .push(YamlNode::num(pt.min_s))
          .push(YamlNode::num(pt.max_s))
          .push(YamlNode::integer(pt.samples));
      points.push(std::move(row));
    }
    m.set("kernel", YamlNode::str(r.kernel))
        .set("dtype", YamlNode::str(r.dtype))
        .set("variant", YamlNode::str(r.variant))
        .set("n", YamlNode::integer(r.n))
        .set("k", YamlNode::integer(r.k))
        .set("split", YamlNode::integer(r.split))
        .set("models", std::move(models))
        .set("axis", YamlNode::str(r.axis))
        .set("flops_per_unit", YamlNode::num(r.flops_per_unit))
        .set("bytes_fixed", YamlNode::num(r.bytes_fixed))
        .set("bytes_per_unit", YamlNode::num(r.bytes_per_unit))
        .set("params", std::move(params))
        .set("points", std::move(points));
    measurements.push(std::move(m));
  }

  YamlNode root = YamlNode::map();
  root.set("schema", YamlNode::str(kRawSchema))
      .set("provenance", std::move(prov))
      .set("complete", YamlNode::boolean(run.complete))
      .set("elapsed_s", YamlNode::num(run.elapsed_s))
      .set("sections", std::move(sections))
      .set("sentinel", std::move(sentinel))
      .set("unsupported", std::move(unsupported))
      .set("measurements", std::move(measurements));
  return root;
}

inline std::string to_yaml(const RawRun& run) {
  return "# moesim calibration raw results (format: calibrate/README.md)\n" + to_yaml_node(run).dump();
}

}  // namespace moesim::calibrate
