#include <catch2/catch.hpp>

#include "models/profile.hpp"
#include "test_util.hpp"

using namespace moesim;
using namespace moesim::models;
using moesim::test::Doc;
using moesim::test::kDataDir;

TEST_CASE("every shipped profile loads", "[models][profile]") {
  struct Row {
    const char* id;
    double bw, bf16, fp8;
  };
  // REFERENCE.md GPU table (dense, no sparsity; rtx5090 from the RTX Blackwell whitepaper, FP32 accumulate);
  // fp8 0 = no FP8 tensor cores.
  const Row rows[] = {{"h200-sxm", 4.8e12, 989e12, 1979e12}, {"h100-sxm", 3.35e12, 989e12, 1979e12},
                      {"a100-sxm", 2039e9, 312e12, 0},       {"a800-sxm", 2039e9, 312e12, 0},
                      {"a30-pcie", 933e9, 165e12, 0},        {"b200", 8e12, 2250e12, 4500e12},
                      {"h20", 4.0e12, 148e12, 296e12},        {"rtx5090", 1792e9, 209.5e12, 419e12}};
  for (const Row& r : rows) {
    INFO(r.id);
    Profile p = load_profile(r.id, kDataDir);
    CHECK(p.id == r.id);
    CHECK(p.kind == ProfileKind::datasheet);
    CHECK(p.roofline_provenance() == Provenance::datasheet);
    CHECK(p.memory_bandwidth == Approx(r.bw));
    CHECK(p.peak_bf16 == Approx(r.bf16));
    CHECK(p.peak_fp8 == Approx(r.fp8));
    CHECK(p.gemm.compute == 0.79);
    CHECK(p.confidence == "low");
    CHECK(p.sources.size() >= 2);
  }
  // FP4 (NVFP4) peaks exist only on Blackwell: dense, FP32 accumulate.
  CHECK(load_profile("b200", kDataDir).peak_fp4 == Approx(9000e12));
  CHECK(load_profile("rtx5090", kDataDir).peak_fp4 == Approx(1676e12));
  CHECK(load_profile("h20", kDataDir).peak_fp4 == 0.0);
  CHECK(load_profile("rtx5090", kDataDir).sms == 170);
  CHECK(load_profile("h20", kDataDir).sms == 78);
  for (const std::string& id : list_profiles(kDataDir)) CHECK_NOTHROW(load_profile(id, kDataDir));
  // Issue 13 points 6 and 7: every shipped profile uses the shape model, pays the cited NCCL launch per
  // collective call, and derives its interference from 20 comm SMs: 132 / (132 - 20) = 1.17857 on H200.
  for (const std::string& id : list_profiles(kDataDir)) {
    INFO(id);
    const Profile p = load_profile(id, kDataDir);
    CHECK(p.gemm_model == GemmShapeModel::tiled);
    CHECK(p.collective_launch.value == Approx(10.5e-6));
    CHECK(p.collective_launch.kind == "reference");
    CHECK(p.collective_launch.source.find("DeepEP/issues/303") != std::string::npos);
    CHECK(p.comm_sms.value == 20);
    CHECK(p.overlap_interference == Approx(p.sms / (p.sms - 20.0)));
    CHECK(p.overlap_interference_kind == "derived");
  }
  CHECK(load_profile("h200-sxm", kDataDir).overlap_interference == Approx(132.0 / 112.0));
  CHECK(load_profile("a30-pcie", kDataDir).overlap_interference == Approx(56.0 / 36.0));
}

TEST_CASE("profile collective figures: defaults, plain values and cited mappings", "[models][profile]") {
  const std::string head = R"(schema: moesim-profile/1
id: p
kind: datasheet
gpu: {name: G, sms: 100, memory: "1GB", memory_bandwidth: "1TB/s"}
peak: {bf16: "100TFLOP/s"}
efficiency:
  gemm: {compute: 0.5, memory: 0.5}
  attention: {compute: 0.5, memory: 0.5}
  elementwise: {compute: 0.5, memory: 0.5}
launch_overhead: "1us"
sources: ["test"]
confidence: low
)";
  {
    // Nothing given: the cited defaults; interference derived 100 / (100 - 20) = 1.25.
    Doc d(head, "p.yaml");
    const Profile p = decode_profile(d.root);
    CHECK(d.diags.str() == "");
    CHECK(p.collective_launch.value == Approx(kDefaultCollectiveLaunchS));
    CHECK(p.collective_launch.kind == "reference");
    CHECK(p.comm_sms.value == kDefaultCommSms);
    CHECK(p.overlap_interference == Approx(1.25));
    CHECK(p.overlap_interference_kind == "derived");
    CHECK(p.gemm_model == GemmShapeModel::tiled);
    CHECK(p.gemm_shape.k_overhead < 0);  // derived per dtype
  }
  {
    // Plain values take the profile's kind; a mapping carries its own; a given interference wins.
    Doc d(head + "collective_launch: \"5us\"\ncomm_sms: {value: 36, kind: measured, source: \"nsys\"}\n", "p.yaml");
    const Profile p = decode_profile(d.root);
    CHECK(d.diags.str() == "");
    CHECK(p.collective_launch.value == Approx(5e-6));
    CHECK(p.collective_launch.kind == "datasheet");
    CHECK(p.comm_sms.value == 36);
    CHECK(p.comm_sms.kind == "measured");
    CHECK(p.comm_sms.source == "nsys");
    CHECK(p.overlap_interference == Approx(100.0 / 64.0));
    Doc e(head + "overlap_interference: 1.1\n", "p.yaml");
    const Profile q = decode_profile(e.root);
    CHECK(q.overlap_interference == Approx(1.1));
    CHECK(q.overlap_interference_kind == "datasheet");
  }
  {
    // Bad figures: comm_sms must leave SMs for compute; a mapping needs value, kind and source; overriding the
    // shape model needs a source.
    Doc d(head + "comm_sms: 100\ncollective_launch: {value: \"2us\", kind: guessed}\ngemm_shape: {k_overhead: 50}\n",
          "p.yaml");
    decode_profile(d.root);
    CHECK(d.diags.str() ==
          "p.yaml:13:11: comm_sms: must be below gpu.sms (100): a communication kernel cannot hold every SM "
          "(got 100)\n"
          "p.yaml:14:20: collective_launch.source: missing required key\n"
          "p.yaml:14:41: collective_launch.kind: must be one of measured, derived, datasheet, reference (got guessed)\n"
          "p.yaml:15:13: gemm_shape.source: must say where overridden shape-model figures come from\n");
  }
}

TEST_CASE("profile diagnostics", "[models][profile][bad]") {
  Doc d("gpu: {profile: h200-sx}\n");
  CHECK_FALSE(resolve_profile(d.root.at("gpu").at("profile"), kDataDir));
  CHECK(d.diags.str() ==
        "scenario.yaml:1:16: gpu.profile: unknown GPU profile; profiles: a100-sxm, a30-pcie, a800-sxm, b200, "
        "h100-sxm, h20, h200-sxm, rtx5090; did you mean 'h200-sxm'? (got h200-sx)\n");

  Doc b(R"(schema: moesim-profile/1
id: x
kind: measured
gpu: {name: X, sms: 1, memory: "1GB", memory_bandwidth: "1TB/s"}
peak: {bf16: "1TFLOP/s"}
efficiency:
  gemm: {compute: 1.5, memory: 1}
  attention: {compute: 1, memory: 1}
  elementwise: {compute: 1, memory: 1}
launch_overhead: "1us"
sources: [a]
confidence: low
colour: red
tables:
  - {kernel: permute, dtype: bf16, n: 0, k: 8, provenance: measured, points: [[2, 1e-6], [1, 2e-6]]}
)",
        "p.yaml");
  decode_profile(b.root);
  CHECK(b.diags.str() ==
        "p.yaml:3:7: kind: measured needs a provenance mapping (GPU, driver, CUDA, cuBLASLt, date, git sha) "
        "(got measured)\n"
        "p.yaml:7:19: efficiency.gemm.compute: must be in (0, 1] (got 1.5)\n"
        "p.yaml:13:1: colour: unknown key; allowed keys: schema, id, kind, gpu, peak, efficiency, gemm_shape, "
        "launch_overhead, collective_launch, comm_sms, overlap_interference, sources, confidence, provenance, "
        "tables (got colour)\n"
        "p.yaml:15:91: tables[0].points[1][0]: tokens must be strictly increasing (got 1)\n");
}
