// The tiny YAML writer the CUDA binary uses, the raw format round trip through the fitter's reader, bad
// input, profile reading/writing and the fitter end to end. All data is SYNTHETIC.
#include <catch2/catch.hpp>
#include <limits>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "common/raw_format.hpp"
#include "common/yaml_writer.hpp"
#include "fit/fitter.hpp"
#include "fit/io.hpp"

using namespace moesim::calibrate;

namespace {

const std::string kFixtures = MOESIM_CAL_FIXTURES;

// A datasheet profile with round numbers (synthetic): 1 PFLOP/s bf16, 4 TB/s.
std::string datasheet_text(const std::string& id, const std::string& bw) {
  return "schema: moesim-profile/1\nid: " + id +
         "\nkind: datasheet\ngpu: {name: Test GPU, sms: 100, memory: 80GB, memory_bandwidth: \"" + bw +
         "\"}\npeak: {bf16: 1000TFLOP/s}\nefficiency:\n  gemm: {compute: 0.7, memory: 0.8}\n"
         "  attention: {compute: 0.5, memory: 0.9}\n  elementwise: {compute: 0.5, memory: 0.9}\n"
         "launch_overhead: 4us\noverlap_interference: 1.0\nsources: [synthetic test]\nconfidence: low\n";
}

RawRun small_run() {
  RawRun r;
  auto& p = r.provenance;
  p.gpu_name = "SYNTHETIC \"GPU\": test";
  p.sms = 100;
  p.l2_bytes = 50331648;
  p.memory_bytes = 85899345920;
  p.memory_bus_bits = 5120;
  p.sm_clock_max_mhz = 1980;
  p.mem_clock_max_mhz = 2619;
  p.sm_clock_measured_mhz = 1755.5;
  p.compute_capability = "9.0";
  p.driver_version = "13.0";
  p.cuda_runtime_version = "13.0";
  p.cublaslt_version = "130100";
  p.nccl_version = "none";
  p.visible_gpus = 1;
  p.git_sha = "abc123";
  p.date_utc = "2025-01-02T03:04:05Z";
  p.preset = "quick";
  p.budget_s = 210;
  p.samples_per_point = 5;
  p.min_sample_s = 0.0002;
  p.command = "moesim-calibrate --preset quick\n--out x.yaml";
  p.synthetic = true;
  r.complete = false;
  r.elapsed_s = 12.5;
  r.sections = {{"expert_gemm", "truncated", 10.25, "budget ran out"}, {"all_to_all", "skipped", 0, "1 GPU"}};
  r.sentinel = {{"start", 0.5, 3.25e-4, 1980}, {"expert_gemm", 10.75, 3.5e-4, 1950}};
  r.unsupported = {{"expert_gate_up", "fp8_block_1x128", 4096, 7168, 1, "CUBLAS_STATUS_NOT_SUPPORTED"}};
  RawMeasurement m;
  m.kernel = "swiglu";
  m.dtype = "bf16";
  m.variant = "custom";
  m.n = 0;
  m.k = 2048;
  m.models = {"Qwen3-30B-A3B", "OLMoE-1B-7B"};
  m.axis = "tokens";
  m.flops_per_unit = 0;
  m.bytes_fixed = 0;
  m.bytes_per_unit = 1e6;
  m.params = {{"topk", 8}, {"experts", 128}};
  // Memory-bound only, alpha 0, eta_m 0.8 at 4 TB/s: t = T * 1e6 / 3.2e12 = T * 3.125e-7 s.
  for (const double t : {1.0, 10.0, 100.0, 1000.0}) m.points.push_back({t, t * 3.125e-7, t * 3.0e-7, t * 3.25e-7, 5});
  r.measurements.push_back(m);
  return r;
}

}  // namespace

TEST_CASE("yaml writer: exact text of a small document") {
  YamlNode root = YamlNode::map();
  YamlNode list = YamlNode::seq();
  YamlNode item = YamlNode::map();
  item.set("a", YamlNode::integer(1)).set("b", YamlNode::str("x"));
  list.push(std::move(item)).push(YamlNode::num(0.5));
  YamlNode row = YamlNode::seq(true);
  row.push(YamlNode::num(1e-5)).push(YamlNode::num(3));
  YamlNode inner = YamlNode::map();
  inner.set("flow", std::move(row)).set("empty", YamlNode::seq());
  root.set("name", YamlNode::str("say \"hi\"")).set("list", std::move(list)).set("inner", std::move(inner));
  CHECK(root.dump() ==
        "name: \"say \\\"hi\\\"\"\n"
        "list:\n"
        "  - a: 1\n"
        "    b: \"x\"\n"
        "  - 0.5\n"
        "inner:\n"
        "  flow: [1.0e-05, 3]\n"
        "  empty: []\n");
  CHECK(YamlNode::format_double(2.5e-6) == "2.5e-06");
  CHECK(YamlNode::format_double(1e-5) == "1.0e-05");
  CHECK(YamlNode::format_double(16384) == "16384");
  CHECK(YamlNode::format_double(0.1) == "0.1");
  // 1/3 does not survive 9 digits: written with 17 so it reads back exactly.
  CHECK(YamlNode::format_double(1.0 / 3) == "0.33333333333333331");
  // 100 * 3e-7 is not the double nearest 3e-5: its text must still read back to the same double.
  CHECK(100 * 3.0e-7 != 3e-5);
  CHECK(std::strtod(YamlNode::format_double(100 * 3.0e-7).c_str(), nullptr) == 100 * 3.0e-7);
}

TEST_CASE("raw format written by the CUDA side's writer round-trips through the fitter's reader") {
  const RawRun run = small_run();
  const std::string text = to_yaml(run);
  const RawRun back = parse_raw(text, "roundtrip.yaml");
  CHECK(back.provenance == run.provenance);
  CHECK(back.sections == run.sections);
  CHECK(back.sentinel == run.sentinel);
  CHECK(back.unsupported == run.unsupported);
  REQUIRE(back.measurements.size() == 1);
  CHECK(back.measurements[0] == run.measurements[0]);
  CHECK(back == run);
  // And a second write is byte-identical.
  CHECK(to_yaml(back) == text);
}

TEST_CASE("bad raw input names the file and the key") {
  CHECK_THROWS_WITH(read_raw_file("/nonexistent/raw.yaml"), "/nonexistent/raw.yaml: cannot open file");
  CHECK_THROWS_WITH(read_raw_file(kFixtures + "/bad_raw_point.yaml"),
                    Catch::Contains("bad_raw_point.yaml: key 'measurements[0].points[1]': expected [x, median_s"));
  std::string text = to_yaml(small_run());
  CHECK_THROWS_WITH(parse_raw(text + "extra: 1\n", "f.yaml"), "f.yaml: key 'extra': unknown key");
  std::string no_sms = text;
  no_sms.replace(no_sms.find("  sms: 100\n"), 11, "");
  CHECK_THROWS_WITH(parse_raw(no_sms, "f.yaml"), "f.yaml: key 'provenance.sms': missing required key");
  std::string bad_num = text;
  bad_num.replace(bad_num.find("  sms: 100\n"), 11, "  sms: many\n");
  CHECK_THROWS_WITH(parse_raw(bad_num, "f.yaml"), "f.yaml: key 'provenance.sms': expected an integer, got 'many'");
  CHECK_THROWS_WITH(parse_raw("schema: [unclosed\n", "f.yaml"), Catch::StartsWith("f.yaml: malformed YAML at line"));
  CHECK_THROWS_WITH(parse_raw("schema: other/1\n", "f.yaml"),
                    "f.yaml: key 'schema': expected 'moesim-calibrate-raw/1', got 'other/1'");
}

TEST_CASE("raw mapping keys that are not scalars are a FitError at their position (fuzz finding)") {
  // libFuzzer's fuzz_raw found "{{}}": a mapping used as a key made yaml-cpp throw past the FitError contract.
  CHECK_THROWS_WITH(parse_raw("{{}}", "f.yaml"), "f.yaml:1:2: keys must be plain scalars (got a mapping)");
  CHECK_THROWS_WITH(parse_raw("? [a]\n: 1\n", "f.yaml"),
                    Catch::Matches("f\\.yaml:1:3: .*keys must be plain scalars \\(got a sequence\\)"));
}

TEST_CASE("raw points with x <= 0 or infinite times are rejected at their line") {
  for (const double x : {0.0, -1.0}) {
    RawRun run = small_run();
    run.measurements[0].points[0].x = x;
    CHECK_THROWS_WITH(parse_raw(to_yaml(run), "f.yaml"),
                      Catch::Matches("f\\.yaml:[0-9]+:[0-9]+: key 'measurements\\[0\\]\\.points\\[0\\]\\[0\\]': x must be "
                                     "a finite number > 0"));
  }
  RawRun run = small_run();
  run.measurements[0].points[2].max_s = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(parse_raw(to_yaml(run), "f.yaml"),
                    Catch::Matches("f\\.yaml:[0-9]+:[0-9]+: key 'measurements\\[0\\]\\.points\\[2\\]\\[3\\]': times must be "
                                   "finite"));
}

TEST_CASE("write_file_atomic replaces only regular files") {
  // A FIFO stands in for a device (a regression must not be able to replace a real /dev node).
  const std::string fifo = "/tmp/moesim-test-io-fifo-" + std::to_string(::getpid());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(write_file_atomic(fifo, "x"),
                    "'" + fifo + "' is not a regular file; outputs are written only to regular files");
  struct stat st {};
  CHECK((::stat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));  // still the FIFO, not a replaced file
  ::unlink(fifo.c_str());
  CHECK_THROWS_WITH(write_file_atomic("/tmp", "x"),
                    "'/tmp' is not a regular file; outputs are written only to regular files");
}

TEST_CASE("units of profile quantities") {
  CHECK(parse_bandwidth("4.8TB/s") == Approx(4.8e12));
  CHECK(parse_bandwidth("900GB/s") == Approx(9e11));
  CHECK(parse_bandwidth("1GiB/s") == Approx(1073741824.0));
  CHECK(parse_flops("989TFLOP/s") == Approx(9.89e14));
  CHECK(parse_seconds("4us") == Approx(4e-6));
  CHECK(parse_seconds("2.5ms") == Approx(2.5e-3));
  CHECK(format_seconds(4.21e-6) == "4.21us");
  CHECK_THROWS_WITH(parse_bandwidth("4.8"), Catch::Contains("a unit is required"));
  CHECK_THROWS_WITH(parse_flops("989TB/s"), Catch::Contains("unknown unit 'TB/s'"));
}

TEST_CASE("profile reader is strict and the writer's output reads back") {
  const ProfileDoc ds = parse_profile(datasheet_text("ds", "4TB/s"), "ds.yaml");
  CHECK(ds.peak_flops("bf16") == Approx(1e15));
  CHECK(ds.peak_flops("fp8_tensor") == 0);  // no fp8 peak in this datasheet
  CHECK(ds.bandwidth_bytes_per_s() == Approx(4e12));
  const ProfileDoc back = parse_profile(to_yaml(ds), "again.yaml");
  CHECK(back.id == "ds");
  CHECK(back.gemm.compute == 0.7);
  // Messages are the simulator's: file:line:col: key.path: rule (got value).
  CHECK_THROWS_WITH(parse_profile(datasheet_text("ds", "4TB/s") + "colour: red\n", "p.yaml"),
                    Catch::Contains(": colour: unknown key") && Catch::StartsWith("p.yaml:"));
  CHECK_THROWS_WITH(parse_profile(datasheet_text("ds", "fast"), "p.yaml"),
                    Catch::Contains(": gpu.memory_bandwidth: ") && Catch::Contains("(got \"fast\")"));
  std::string measured = datasheet_text("m", "4TB/s");
  measured.replace(measured.find("kind: datasheet"), 15, "kind: measured");
  CHECK_THROWS_WITH(parse_profile(measured, "p.yaml"), Catch::StartsWith("p.yaml:") && Catch::Contains("provenance"));
}

TEST_CASE("fitter end to end: measured profile, then a derived one for a GPU with twice the bandwidth") {
  const ProfileDoc ds = parse_profile(datasheet_text("ds", "4TB/s"), "ds.yaml");
  FitOptions opt;
  opt.raw_label = "run.yaml";
  CHECK_THROWS_WITH(fit_run(small_run(), ds, opt), Catch::StartsWith("run.yaml: key 'provenance.synthetic'"));
  opt.allow_synthetic = true;
  const FitReport rep = fit_run(small_run(), ds, opt);
  const ProfileDoc& p = rep.profile;
  CHECK(p.kind == "measured");
  CHECK(p.id == "test-gpu-measured-synthetic");
  CHECK(p.confidence == "low");
  CHECK(p.sms == 100);
  REQUIRE(p.tables.size() == 1);
  const ProfileTable& t = p.tables[0];
  CHECK(t.kernel == "swiglu");
  CHECK(t.points.size() == 4);
  CHECK(t.points[3].second == Approx(3.125e-4));
  // Exact line through the origin: interpolating (10, 100) predicts 100 exactly etc. -> LOO MAPE 0.
  CHECK(t.holdout_mape == Approx(0).margin(1e-12));
  REQUIRE(t.has_fit);
  CHECK(t.fit.eta_memory == Approx(0.8).epsilon(1e-6));
  CHECK(t.fit.alpha_s == Approx(0).margin(1e-12));
  CHECK(t.fit.eta_compute == 0.5);  // not identified (no FLOPs): the datasheet's elementwise value
  CHECK(p.elementwise.memory == Approx(0.8).epsilon(1e-6));
  CHECK(p.gemm.compute == 0.7);  // no GEMM measured: datasheet values kept
  CHECK(p.launch_overhead == "4us");
  // Sentinel drift: (3.5e-4 - 3.25e-4) / 3.25e-4 = 0.0769...
  CHECK(rep.sentinel_drift == Approx(0.025 / 0.325).epsilon(1e-9));
  const ProfileDoc back = parse_profile(to_yaml(p), "out.yaml");
  CHECK(back.tables.size() == 1);
  CHECK(back.provenance.size() == p.provenance.size());

  // Derived for a GPU with 8 TB/s: memory-bound times halve. T = 1000: 1e9 B / (0.8 * 8e12) = 1.5625e-4 s.
  const ProfileDoc target = parse_profile(datasheet_text("fast-ds", "8TB/s"), "t.yaml");
  const FitReport der = derive_profile(rep, target, "fast-derived");
  CHECK(der.profile.kind == "derived");
  REQUIRE(der.profile.tables.size() == 1);
  CHECK(der.profile.tables[0].provenance == "derived");
  CHECK(der.profile.tables[0].points[3].second == Approx(1.5625e-4).epsilon(1e-6));
  const ProfileDoc dback = parse_profile(to_yaml(der.profile), "derived.yaml");
  CHECK(dback.provenance.front().first == "derived_from");
  CHECK(dback.provenance.front().second == p.id);
}

TEST_CASE("fitter on the committed synthetic fixture") {
  const RawRun run = read_raw_file(kFixtures + "/synthetic_raw.yaml");
  const ProfileDoc ds = read_profile_file(kFixtures + "/test_datasheet.yaml");
  FitOptions opt;
  opt.allow_synthetic = true;
  const FitReport rep = fit_run(run, ds, opt);
  // 6 profile tables: gate_up bf16, down bf16, gate_up fp8, grouped (lt_graph_loop only), cast, swiglu.
  CHECK(rep.profile.tables.size() == 6);
  // Launch: burst times 3us + 2.5us * N exactly -> slope 2.5us.
  CHECK(rep.profile.launch_overhead == "2.5us");
  // Interference: nearest to 20 SMs among 8, 16, 24 is 16 (|16-20| = |24-20|, the first wins): 1.14.
  CHECK(rep.profile.overlap_interference == Approx(1.14).epsilon(1e-9));
  // The fixture was generated with eta_c 0.75, eta_m 0.85 and +-1.5 % wiggle.
  CHECK(rep.profile.gemm.compute == Approx(0.75).epsilon(0.03));
  CHECK(rep.profile.gemm.memory == Approx(0.85).epsilon(0.03));
}

TEST_CASE("fitter: an ignored duplicate table does not move the fitted profile") {
  const RawRun run = read_raw_file(kFixtures + "/synthetic_raw.yaml");
  const ProfileDoc ds = read_profile_file(kFixtures + "/test_datasheet.yaml");
  FitOptions opt;
  opt.allow_synthetic = true;
  // A second expert_gate_up bf16 (split 1) table of the same shape, every time doubled: it would pull the
  // gemm efficiency medians down if it were fitted.
  RawRun dup = run;
  REQUIRE(dup.measurements[0].kernel == "expert_gate_up");
  REQUIRE(dup.measurements[0].split == 1);
  RawMeasurement twice = dup.measurements[0];
  for (auto& pt : twice.points) {
    pt.median_s *= 2;
    pt.min_s *= 2;
    pt.max_s *= 2;
  }
  dup.measurements.push_back(twice);
  const FitReport ref = fit_run(run, ds, opt);
  const FitReport rep = fit_run(dup, ds, opt);
  CHECK(rep.profile.tables.size() == ref.profile.tables.size());
  CHECK(rep.profile.gemm.compute == ref.profile.gemm.compute);
  CHECK(rep.profile.gemm.memory == ref.profile.gemm.memory);
  CHECK(to_yaml(rep.profile) == to_yaml(ref.profile));
  CHECK(std::count_if(rep.notes.begin(), rep.notes.end(), [](const std::string& n) {
          return n == "duplicate table expert_gate_up bf16 n=4096 k=7168 ignored";
        }) == 1);
}
