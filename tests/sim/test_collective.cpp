// `moesim collective` (sim/collective_bench.hpp): nccl-tests' size and bus-bandwidth conventions, each
// collective's time against its closed form worked by hand, a 2-node preset against REFERENCE.md's all-to-all
// formula, one simulation for a sweep against one simulation per size, and the CLI's argument errors.
// Every simulation runs in a child process (DESIGN rule 5: one per process).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/collective_bench.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"
#include "topologies/topology_spec.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {

const double kMiB = 1048576.0, kGiB = 1073741824.0;
const CollectiveKind kAllKinds[] = {CollectiveKind::all_to_all, CollectiveKind::all_gather,
                                    CollectiveKind::reduce_scatter, CollectiveKind::all_reduce};

std::vector<int> first_gpus(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
  return v;
}

// Runs a sweep in a child process; returns its rows' times (seconds) and busbw (B/s) as text, "t b\n" per row.
std::vector<std::pair<double, double>> bench_in_child(const std::function<topo::Cluster()>& cluster,
                                                      CollectiveKind kind, int ranks, std::vector<double> sizes,
                                                      Fidelity f, double launch_s = 0.0) {
  const auto out = testing::run_in_child_text([&] {
    CollectiveBenchOptions opt;
    opt.launch_s = launch_s;
    opt.kind = kind;
    opt.gpus = first_gpus(ranks);
    opt.sizes = sizes;
    opt.fidelity = f;
    const CollectiveBenchResult r = run_collective_bench(cluster(), "test", opt);
    std::ostringstream s;
    s.precision(17);
    for (const auto& row : r.rows) s << row.time_s << " " << row.busbw_Bps << "\n";
    return s.str();
  });
  REQUIRE(out.ok());
  std::vector<std::pair<double, double>> rows;
  std::istringstream in(out.text);
  double t, b;
  while (in >> t >> b) rows.emplace_back(t, b);
  REQUIRE(rows.size() == sizes.size());
  return rows;
}

// 4 GPUs on one non-blocking switch: every GPU link B = 100 GB/s per direction, 1 us (a route: 2 us).
topo::Cluster switch4() {
  return topo::load_cluster_text("{family: nvswitch_node, gpus: 4, nvlink_bandwidth: 100GB/s, nvlink_latency: 1us}",
                                 "switch4.yaml", data_dir());
}
topo::Cluster rail_preset() { return topo::load_cluster_text("h100-4x8-400g-rail", "preset", data_dir()); }

}  // namespace

TEST_CASE("collective sizes, counts and bus factors follow nccl-tests", "[collective]") {
  // doc/PERFORMANCE.md: all_reduce 2(n-1)/n, the others (n-1)/n.
  CHECK(bus_bandwidth_factor(CollectiveKind::all_reduce, 8) == Approx(14.0 / 8));
  CHECK(bus_bandwidth_factor(CollectiveKind::all_to_all, 8) == Approx(7.0 / 8));
  CHECK(bus_bandwidth_factor(CollectiveKind::all_gather, 16) == Approx(15.0 / 16));
  CHECK(bus_bandwidth_factor(CollectiveKind::reduce_scatter, 2) == Approx(0.5));
  // 1 MiB of floats = 262,144 elements. all_reduce: count = all of them; the split collectives pass the
  // per-rank count (262,144 / 8 = 32,768) and keep S as is (divisible by 8 x 4 B).
  CHECK(nccl_size(CollectiveKind::all_reduce, kMiB, 8).count == 262144);
  CHECK(nccl_size(CollectiveKind::all_gather, kMiB, 8).count == 32768);
  CHECK(nccl_size(CollectiveKind::all_gather, kMiB, 8).bytes == kMiB);
  // 6 ranks: 262,144 / 6 = 43,690 elements per rank (remainder 4 dropped), S = 43,690 x 6 x 4 = 1,048,560 B.
  CHECK(nccl_size(CollectiveKind::all_to_all, kMiB, 6).count == 43690);
  CHECK(nccl_size(CollectiveKind::all_to_all, kMiB, 6).bytes == 1048560.0);
  CHECK(nccl_size(CollectiveKind::all_reduce, kMiB, 6).bytes == kMiB);
  // 1 MiB to 1 GiB by 2: 2^20 .. 2^30, 11 sizes; by 4: 2^20, 2^22, ..., 2^30, 6 sizes; one size alone.
  const auto sweep = parse_size_sweep("1MiB:1GiB", 2);
  REQUIRE(sweep.size() == 11);
  CHECK(sweep.front() == kMiB);
  CHECK(sweep.back() == kGiB);
  CHECK(parse_size_sweep("1MiB:1GiB", 4).size() == 6);
  CHECK(parse_size_sweep("256KB", 2) == std::vector<double>{256000.0});
  // The exact level's flows: one per ordered pair per collective; all_reduce runs two per size.
  CHECK(bench_exact_flows(CollectiveKind::all_to_all, 8, 11) == 11 * 56);
  CHECK(bench_exact_flows(CollectiveKind::all_reduce, 72, 11) == 11 * 2 * 72 * 71);
}

TEST_CASE("collective size sweeps reject bad text with a message", "[collective]") {
  auto message = [](const std::string& text, double f) {
    try {
      parse_size_sweep(text, f);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(message("1GiB:1MiB", 2), Catch::Contains("MIN (1 GiB) is above MAX (1 MiB)"));
  CHECK_THAT(message("1024", 2), Catch::Contains("a unit is required"));
  CHECK_THAT(message("1MiB:", 2), Catch::Contains("MAX"));
  CHECK_THAT(message("1MiB:2MiB:4MiB", 2), Catch::Contains("one colon"));
  CHECK_THAT(message("0B:1MiB", 2), Catch::Contains("at least 1 B"));
  CHECK_THAT(message("2TiB", 2), Catch::Contains("above 1 TiB"));
  CHECK_THAT(message("1MiB:1GiB", 1.0), Catch::Contains("must be above 1"));
  CHECK_THAT(message("1B:1TiB", 1.1), Catch::Contains("more than 64 sizes"));
}

// Each kind x fidelity below is one simulation in a child. On the 4-GPU switch each collective moves S/4 over
// every ordered pair at once: every up-link and every down-link carries 3 equal flows, each gets B/3, so
//   all_to_all, all_gather, reduce_scatter: t = 2 us + (n-1)/n x S / B = 2e-6 + 0.75 S / 1e11
//   all_reduce (reduce_scatter, then all_gather): twice that.
// S = 1 MiB: 2e-6 + 7.8643e-6 = 9.8643 us; S = 1 GiB: 2e-6 + 8.0530e-3 s. busbw at 1 GiB = B / (1 + 2 us x
// B / (0.75 S)) = 100 GB/s within 2.5e-4 (for all_reduce too: its factor and its time both double).
TEST_CASE("every collective on a 4-GPU switch takes its closed form, both fidelities", "[collective]") {
  const double B = 100e9, lat = 2e-6;
  const std::vector<double> sizes = {kMiB, 64 * kMiB, kGiB};
  for (CollectiveKind kind : kAllKinds)
    for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
      INFO(collective_kind_name(kind) << " " << fidelity_name(f));
      const auto rows = bench_in_child(switch4, kind, 4, sizes, f);
      const double phases = kind == CollectiveKind::all_reduce ? 2 : 1;
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        const double expected = phases * (lat + 0.75 * sizes[i] / B);
        CHECK(rows[i].first == Approx(expected).epsilon(1e-9));
      }
      CHECK(rows.back().second == Approx(B).epsilon(2.5e-4));
      CHECK(rows.back().second < B);
    }
}

// A per-call launch L (issue 13 point 7) delays every rank's data by L once per call: the closed forms above
// plus L, and an all_reduce (one NCCL call, built as reduce_scatter + all_gather) pays it once, not twice.
TEST_CASE("a collective launch adds its time once per call, all_reduce included", "[collective]") {
  const double B = 100e9, lat = 2e-6, L = 10e-6;
  const std::vector<double> sizes = {kMiB, kGiB};
  for (CollectiveKind kind : {CollectiveKind::all_to_all, CollectiveKind::all_reduce})
    for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
      INFO(collective_kind_name(kind) << " " << fidelity_name(f));
      const auto rows = bench_in_child(switch4, kind, 4, sizes, f, L);
      const double phases = kind == CollectiveKind::all_reduce ? 2 : 1;
      for (std::size_t i = 0; i < sizes.size(); ++i)
        CHECK(rows[i].first == Approx(L + phases * (lat + 0.75 * sizes[i] / B)).epsilon(1e-9));
    }
}

// REFERENCE.md, "All-to-all expectations": N nodes x G GPUs, one NIC per GPU, S bytes per GPU:
//   t(S) = a + max(S (G-1) / (N G) / b_nvlink, S (N-1) / N / b_nic).
// h100-4x8-400g-rail with --ranks 16 = 2 nodes x 8: b_nvlink = 370 GB/s, b_nic = 48 GB/s, so the NIC term
// S/2 / 48e9 = S / 96e9 beats S x 7/16 / 370e9 = S / 845.7e9. a = the inter-node route latency, 1.5 us on
// each GPU-NIC link = 3 us (the preset's comment). busbw = S / t x 15/16 -> 96 x 15/16 = 90 GB/s at large S,
// the NCCL maintainer's "~90 GB/s on 2 nodes" (nccl-tests issue 130). all_reduce = two such phases.
TEST_CASE("2 nodes x 8 of h100-4x8-400g-rail match REFERENCE.md's all-to-all formula", "[collective]") {
  const std::vector<double> sizes = {kMiB, 32 * kMiB, kGiB};
  for (CollectiveKind kind : {CollectiveKind::all_to_all, CollectiveKind::all_reduce}) {
    INFO(collective_kind_name(kind));
    const auto rows = bench_in_child(rail_preset, kind, 16, sizes, Fidelity::exact);
    const double phases = kind == CollectiveKind::all_reduce ? 2 : 1;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const double expected = phases * (3e-6 + std::max(sizes[i] * 7 / 16 / 370e9, sizes[i] / 2 / 48e9));
      CHECK(rows[i].first == Approx(expected).epsilon(1e-9));
    }
    CHECK(rows.back().second == Approx(90e9).epsilon(1e-3));
  }
}

TEST_CASE("one simulation of a sweep gives each size the time it has alone", "[collective]") {
  // The sweep runs its sizes one after another with a barrier between them; here each size is also run
  // alone, in a child of its own, on the 2-node preset (intra- and inter-node flows of different lengths).
  const std::vector<double> sizes = {kMiB, 32 * kMiB, kGiB};
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    INFO(fidelity_name(f));
    const auto together = bench_in_child(rail_preset, CollectiveKind::all_reduce, 16, sizes, f);
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const auto alone = bench_in_child(rail_preset, CollectiveKind::all_reduce, 16, {sizes[i]}, f);
      CHECK(together[i].first == Approx(alone[0].first).epsilon(1e-9));
    }
  }
}

TEST_CASE("collective_bench_problem names bad ranks and sizes", "[collective]") {
  const topo::Cluster c = switch4();
  CollectiveBenchOptions opt;
  opt.sizes = {kMiB};
  opt.gpus = {0};
  CHECK_THAT(collective_bench_problem(c, opt).value_or(""), Catch::Contains("at least 2 ranks"));
  opt.gpus = {0, 1, 2, 3, 4};
  CHECK_THAT(collective_bench_problem(c, opt).value_or(""), Catch::Contains("5 ranks, but the cluster has 4 GPUs"));
  opt.gpus = {0, 4};
  CHECK_THAT(collective_bench_problem(c, opt).value_or(""), Catch::Contains("GPU 4 does not exist"));
  opt.gpus = {1, 1};
  CHECK_THAT(collective_bench_problem(c, opt).value_or(""), Catch::Contains("GPU 1 is listed twice"));
  opt.gpus = {0, 1, 2, 3};
  opt.sizes = {8};  // two floats, four ranks
  CHECK_THAT(collective_bench_problem(c, opt).value_or(""), Catch::Contains("below one 4-byte element per rank"));
  opt.kind = CollectiveKind::all_reduce;  // all_reduce needs one element in all
  CHECK_FALSE(collective_bench_problem(c, opt).has_value());
}

// ---- The command line (the moesim binary): exit code 2 and a message for each bad argument; a good run.
namespace {

struct CliRun {
  int exit_code = -1;
  std::string out, err;
};

CliRun moesim_cli(const std::string& args) {
  const fs::path dir = fs::temp_directory_path() / ("moesim-test-collective-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cmd = "cd '" + dir.string() + "' && '" + std::string(MOESIM_BIN) + "' collective " + args +
                          " >stdout 2>stderr";
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  r.out = slurp(dir / "stdout");
  r.err = slurp(dir / "stderr");
  return r;
}

}  // namespace

TEST_CASE("moesim collective reports bad arguments with exit code 2", "[collective][cli]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"alltoall --cluster h200-hgx-8", "KIND alltoall: unknown collective; collectives: all_to_all, all_gather, "
                                        "reduce_scatter, all_reduce; did you mean 'all_to_all'?"},
      {"all_to_all", "--cluster is required"},
      {"all_to_all --cluster h200-hgx8", "unknown topology preset"},
      {"all_to_all --cluster no/such.yaml", "no/such.yaml"},
      {"all_to_all --cluster h200-hgx-8 --ranks 9", "--ranks 9: the cluster h200-hgx-8 has 8 GPUs"},
      {"all_to_all --cluster h200-hgx-8 --ranks 1", "--ranks"},
      {"all_to_all --cluster h200-hgx-8 --gpus 0,0", "GPU 0 is listed twice"},
      {"all_to_all --cluster h200-hgx-8 --gpus 0,9", "GPU 9 does not exist"},
      {"all_to_all --cluster h200-hgx-8 --gpus 0,1 --ranks 4", "--ranks 4 and --gpus (2 GPUs) disagree"},
      {"all_to_all --cluster h200-hgx-8 --sizes 1GiB:1MiB", "MIN (1 GiB) is above MAX (1 MiB)"},
      {"all_to_all --cluster h200-hgx-8 --sizes 1024", "a unit is required"},
      {"all_to_all --cluster h200-hgx-8 --sizes 16B", "below one 4-byte element per rank for 8 ranks (32 B at least)"},
      {"all_to_all --cluster h200-hgx-8 --step-factor 1", "--step-factor 1: must be above 1"},
      {"all_to_all --cluster h200-hgx-8 --fidelity slow", "--fidelity"},
      {"all_to_all --cluster h200-hgx-8 --json /no/such/dir/x.json", "--json /no/such/dir/x.json: cannot write"},
      {"all_to_all --cluster h200-hgx-8 --launch 5", "--launch 5: a unit is required"},
      {"all_to_all --cluster h200-hgx-8 --launch 2s", "--launch 2s: must be in [0, 1 s]"},
  };
  for (const auto& [args, message] : cases) {
    INFO(args);
    const CliRun r = moesim_cli(args);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(message));
    CHECK(r.out.empty());
  }
}

TEST_CASE("moesim collective prints an nccl-tests table and writes JSON and CSV", "[collective][cli]") {
  // 8 x H200 (370 GB/s per GPU link, 0.5 us each: 1 us a route), all_to_all of 1 GiB:
  // t = 1 us + 7/8 x 2^30 / 370e9 = 2.540254e-3 s, algbw = 2^30 / t = 422.69 GB/s, busbw = 7/8 of it =
  // 369.85 GB/s.
  const fs::path dir = fs::temp_directory_path() / ("moesim-test-collective-" + std::to_string(::getpid()));
  const CliRun r = moesim_cli("all_to_all --cluster h200-hgx-8 --sizes 1GiB --launch 0 --json out.json --csv out.csv");
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("# moesim collective all_to_all: cluster h200-hgx-8"));
  CHECK_THAT(r.out, Catch::Contains("ranks 8 on GPUs 0-7 (1 node)"));
  CHECK_THAT(r.out, Catch::Contains("fidelity exact (requested auto"));
  CHECK_THAT(r.out, Catch::Contains("  1073741824      33554432   float    none     2540.3    422.69    369.85\n"));
  std::ifstream in(dir / "out.json");
  const auto j = nlohmann::json::parse(in);
  CHECK(j["schema"] == "moesim-collective/1");
  CHECK(j["context"]["ranks"] == 8);
  REQUIRE(j["rows"].size() == 1);
  CHECK(j["rows"][0]["time_s"].get<double>() == Approx(1e-6 + 0.875 * kGiB / 370e9).epsilon(1e-9));
  CHECK(j["rows"][0]["busbw_GBps"].get<double>() == Approx(369.85).epsilon(1e-4));
  std::ifstream csv(dir / "out.csv");
  std::string header, line;
  std::getline(csv, header);
  std::getline(csv, line);
  CHECK(header == "collective,ranks,fidelity,size_bytes,count_elements,time_us,algbw_GBps,busbw_GBps");
  CHECK_THAT(line, Catch::StartsWith("all_to_all,8,exact,1073741824,33554432,2540.254314,422.6906"));
  fs::remove_all(dir);
}

TEST_CASE("moesim collective charges the GPU profile's collective launch by default", "[collective][cli]") {
  // h200-hgx-8's GPU profile (h200-sxm) has no measured collective_launch: the reference 10.5 us applies
  // (models/profile.hpp). all_to_all of 1 GiB: 10.5 us + the 2540.254 us of the case above = 2550.754 us;
  // all_reduce of 1 GiB: 10.5 us once + 2 x 2540.254 us = 5091.009 us.
  const CliRun a = moesim_cli("all_to_all --cluster h200-hgx-8 --sizes 1GiB");
  REQUIRE(a.exit_code == 0);
  CHECK_THAT(a.out, Catch::Contains("per-call launch 10.5 us on every rank"));
  CHECK_THAT(a.out, Catch::Contains("(reference: nccl-tests alltoall_perf"));
  CHECK_THAT(a.out, Catch::Contains("  1073741824      33554432   float    none     2550.8"));
  const CliRun b = moesim_cli("all_reduce --cluster h200-hgx-8 --sizes 1GiB");
  REQUIRE(b.exit_code == 0);
  CHECK_THAT(b.out, Catch::Contains("  1073741824     268435456   float     sum     5091.0"));
  const CliRun c = moesim_cli("all_to_all --cluster h200-hgx-8 --sizes 1GiB --launch 20us");
  REQUIRE(c.exit_code == 0);
  CHECK_THAT(c.out, Catch::Contains("per-call launch 20 us on every rank before its data moves (all_reduce: once "
                                    "for both halves) (--launch)"));
  CHECK_THAT(c.out, Catch::Contains("     2560.3 "));
}

TEST_CASE("moesim collective picks fast above 20,000 exact flows", "[collective][cli]") {
  // 72 ranks, 11 sizes: 11 x 72 x 71 = 56,232 flows > 20,000 -> fast; 8 ranks: 616 -> exact (case above).
  const CliRun r = moesim_cli("all_gather --cluster nvl72-b200");
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("fidelity fast (requested auto; exact would simulate 56232 flows)"));
}
