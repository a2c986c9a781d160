// moesim: the command-line front end.
//   moesim run FILE [--json OUT] [--csv OUT] [--sweep-csv OUT] [--trace OUT] [--html OUT [--html-layer N]]
//              [--variant NAME]...
//              [--fidelity F]
//   moesim topo FILE [--dot OUT] [--simgrid-settings]
//   moesim sweep FILE --csv OUT [--json OUT] [--html OUT] [--set KEY=V1,V2,...]... [--zip KEY=V1,V2,...]...
//                [--jobs N] [--resume] [--fidelity F] [--quiet] [--force] [--shard I/N]
//   mpirun -np N moesim sweep ...   (the points split across the ranks; rank 0 writes the outputs)
//   moesim plan FILE [--csv OUT] [--jobs N] [--quiet]
//   moesim merge OUT.csv SHARD.csv... [--points N]
//   moesim validate FILE
//   moesim collective KIND --cluster PRESET|FILE [--ranks N | --gpus LIST] [--sizes MIN:MAX] [--step-factor F]
//                     [--fidelity auto|exact|fast] [--json OUT] [--csv OUT]
//   moesim list
// Exit codes: 0 success, 1 simulation failure, 2 bad input (every problem of the file is printed).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include <malloc.h>
#include <sys/mman.h>

#include "models/architecture.hpp"
#include "models/profile.hpp"
#include "reports/reports.hpp"
#include "sim/budget.hpp"
#include "sim/collective_bench.hpp"
#include "sim/mpi_split.hpp"
#include "sim/output_file.hpp"
#include "sim/phase_clock.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "reports/param_sweep.hpp"
#include "sim/plan.hpp"
#include "sim/sweep.hpp"
#include <unistd.h>
#include "topologies/analysis.hpp"
#include "topologies/dot.hpp"
#include "topologies/topology_spec.hpp"

using namespace moesim;

namespace {

void write_file(const std::string& path, const std::string& text) { write_output_file(path, text); }

// Checks every output path before any work starts; prints the first problem and returns false.
bool outputs_writable(const std::string& cmd, const std::vector<std::pair<const char*, std::string>>& outputs) {
  for (const auto& [option, path] : outputs) {
    if (path.empty()) continue;
    if (auto why = output_path_problem(path)) {
      std::cerr << fmt::format("moesim {}: {} {}: cannot write ({})\n", cmd, option, escape_control(path), *why);
      return false;
    }
  }
  return true;
}

int cmd_run(const std::string& file, const std::string& json, const std::string& csv, const std::string& sweep_csv,
            const std::string& trace, const std::string& html, int html_layer, const std::vector<std::string>& only,
            const std::string& fidelity, int jobs,
            bool quiet, bool show_wall, bool force) {
  PhaseClock clock;
  Scenario sc = load_scenario(file);
  clock.mark("load", "run");
  if (const ResourceEstimate est = estimate_resources(sc); est.routing_draws > kMaxDrawsWithoutForce && !force) {
    std::cerr << fmt::format("moesim run: {}: workload.tokens_per_rank: about {:.3g} routing draws per variant "
                             "(more than {:.0e}, likely hours); lower tokens_per_rank or simulation.layers, or "
                             "pass --force\n",
                             escape_control(file), est.routing_draws, kMaxDrawsWithoutForce);
    return 2;
  }
  for (const auto& name : only) {
    std::vector<std::string> names;
    for (const auto& v : sc.variants) names.push_back(v.name);
    if (std::find(names.begin(), names.end(), name) != names.end()) continue;
    std::string hint = closest_match(name, names);
    std::cerr << fmt::format("moesim run: --variant {}: no such variant in {}{}; variants:", name, file,
                             hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint));
    for (const auto& n : names) std::cerr << " " << n;
    std::cerr << "\n";
    return 2;
  }
  // --sweep-csv on a run without a sweep point is refused before simulating: an empty table would look like a
  // result (reports::sweep_csv_report itself writes the header alone).
  if (!sweep_csv.empty() &&
      std::none_of(sc.variants.begin(), sc.variants.end(), [&](const models::VariantSpec& v) {
        return !v.sweep.empty() && (only.empty() || std::find(only.begin(), only.end(), v.name) != only.end());
      })) {
    std::cerr << fmt::format("moesim run: --sweep-csv: {} has no sweep{} (a sweep is a variant entry with a list of "
                             "values, e.g. dualsparse thresholds: [...])\n",
                             escape_control(file), only.empty() ? "" : " among the selected variants");
    return 2;
  }
  // --html-layer picks the layer of the HTML timeline: it needs --html and one of the simulated layers.
  if (html_layer >= 0) {
    const int simulated = static_cast<int>(sc.simulated_layers().size());
    if (html.empty()) {
      std::cerr << "moesim run: --html-layer: needs --html (it picks the layer of the HTML report's timeline)\n";
      return 2;
    }
    if (html_layer >= simulated) {
      std::cerr << fmt::format("moesim run: --html-layer {}: {} simulates layers 0 to {} (simulation.layers)\n",
                               html_layer, escape_control(file), simulated - 1);
      return 2;
    }
  }
  if (!outputs_writable("run", {{"--json", json}, {"--csv", csv}, {"--sweep-csv", sweep_csv}, {"--trace", trace},
                                {"--html", html}}))
    return 2;
  RunOptions opt;
  opt.only = only;
  opt.jobs = jobs;
  opt.keep_events = !trace.empty() || !html.empty();  // the HTML timeline draws one layer's events
  if (fidelity == "exact") opt.fidelity = Fidelity::exact;
  if (fidelity == "fast") opt.fidelity = Fidelity::fast;
  RunResult rr = run_scenario(sc, opt);
  clock.mark("variants", "run");
  if (!quiet) {
    std::cout << reports::console_report(rr, show_wall);
    flush_stdout();
  }
  if (!json.empty()) write_file(json, reports::json_report(rr, false, show_wall));
  if (!csv.empty()) write_file(csv, reports::csv_report(rr));
  if (!sweep_csv.empty()) write_file(sweep_csv, reports::sweep_csv_report(rr));
  if (!trace.empty()) write_file(trace, reports::perfetto_trace(rr));
  if (!html.empty()) write_file(html, reports::html_report(rr, html_layer));
  clock.mark("reports", "run");
  return 0;
}

int cmd_topo(const std::string& file, const std::string& dot, bool settings) {
  if (settings) {
    for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
      EngineOptions eo;
      eo.fidelity = f;
      std::cout << "# fidelity " << fidelity_name(f) << "\n";
      for (const auto& [k, v] : simgrid_settings(eo)) std::cout << "--cfg=" << k << ":" << v << "\n";
    }
    if (file.empty()) return 0;
  }
  if (!outputs_writable("topo", {{"--dot", dot}})) return 2;
  topo::Cluster c = topo::load_cluster_file(file, data_dir());
  std::cout << topo::describe(c);
  flush_stdout();
  if (!dot.empty()) {
    std::ostringstream out;
    topo::write_dot(c, out);
    write_file(dot, out.str());
  }
  return 0;
}

// `moesim collective`: one collective swept over sizes, reported like nccl-tests (sim/collective_bench.hpp).
int cmd_collective(const std::string& kind_text, const std::string& cluster_arg, int ranks, const std::vector<int>& gpus,
                   const std::string& sizes_text, double step_factor, const std::string& fidelity,
                   const std::string& json, const std::string& csv, const std::string& launch) {
  auto bad = [](const std::string& msg) {
    std::cerr << "moesim collective: " << msg << "\n";
    return 2;
  };
  CollectiveBenchOptions opt;
  if (auto k = parse_collective_kind(kind_text)) opt.kind = *k;
  else
    return bad(fmt::format("KIND {}: {}", escape_control(kind_text),
                           unknown_name_rule("unknown collective", "collectives", kind_text, collective_kind_names())));
  try {
    opt.sizes = parse_size_sweep(sizes_text, step_factor);
  } catch (const std::invalid_argument& e) {
    return bad(e.what());
  }
  if (fidelity == "exact") opt.fidelity = Fidelity::exact;
  if (fidelity == "fast") opt.fidelity = Fidelity::fast;
  if (!outputs_writable("collective", {{"--json", json}, {"--csv", csv}})) return 2;
  // A path (an existing file, or anything that looks like one) is a cluster or scenario file; otherwise a
  // preset name, which the decoder checks against the shipped presets (with a did-you-mean).
  const std::string dd = data_dir();
  const bool is_file = std::filesystem::exists(cluster_arg) || cluster_arg.find('/') != std::string::npos ||
                       cluster_arg.ends_with(".yaml") || cluster_arg.ends_with(".yml");
  const topo::Cluster cluster =
      is_file ? topo::load_cluster_file(cluster_arg, dd) : topo::load_cluster_text(cluster_arg, "--cluster", dd);
  const int gpu_count = static_cast<int>(cluster.gpu_count());
  if (!gpus.empty()) {
    if (ranks > 0 && ranks != static_cast<int>(gpus.size()))
      return bad(fmt::format("--ranks {} and --gpus ({} GPUs) disagree; give one of them", ranks, gpus.size()));
    opt.gpus = gpus;
  } else {
    const int n = ranks > 0 ? ranks : gpu_count;
    if (n > gpu_count)
      return bad(fmt::format("--ranks {}: the cluster {} has {} GPUs", n, escape_control(cluster_arg), gpu_count));
    for (int g = 0; g < n; ++g) opt.gpus.push_back(g);
  }
  if (!launch.empty()) {
    // A time with its unit, like every quantity (units.hpp); 0 needs none.
    std::string why;
    const auto t = launch == "0" ? std::optional<double>(0.0) : parse_quantity(launch, Dim::seconds, &why);
    if (!t) return bad(fmt::format("--launch {}: {}", escape_control(launch), why));
    opt.launch_s = *t;
    if (!(opt.launch_s >= 0.0 && opt.launch_s <= 1.0))
      return bad(fmt::format("--launch {}: must be in [0, 1 s]", escape_control(launch)));
    opt.launch_from = "--launch";
  } else {
    // The cluster's GPU profile's collective_launch (measured by moesim-calibrate, else the cited reference
    // figure); a cluster without a GPU profile gets the reference figure.
    models::CitedFigure f{models::kDefaultCollectiveLaunchS, "reference", models::kDefaultCollectiveLaunchSource};
    if (!cluster.default_gpu_profile.empty()) f = models::load_profile(cluster.default_gpu_profile, dd).collective_launch;
    opt.launch_s = f.value;
    opt.launch_from = fmt::format("{}: {}", f.kind, f.source);
  }
  if (auto why = collective_bench_problem(cluster, opt)) return bad(*why);
  const std::string label = cluster.name.empty() ? cluster_arg : cluster.name;
  const CollectiveBenchResult r = run_collective_bench(cluster, escape_control(label), opt);
  std::cout << collective_bench_table(r);
  flush_stdout();
  if (!json.empty()) write_file(json, collective_bench_json(r));
  if (!csv.empty()) write_file(csv, collective_bench_csv(r));
  return 0;
}

// The CSV an MPI rank writes its own points to as they finish (its shard's CSV: `moesim merge` takes it too).
std::string rank_csv_path(const std::string& csv, const MpiWorld& w) {
  return fmt::format("{}.shard-{}-of-{}", csv, w.rank + 1, w.size);
}

// Under MPI, after this rank's points ran (and its worker processes are gone): MPI starts, rank 0 gathers every
// rank's rows and failures, writes the CSV (and JSON / HTML) exactly as one process would, and tells the others
// the outcome; on success every rank removes its shard CSV, otherwise it stays for --resume.
int finish_mpi_sweep(const MpiWorld& world, SweepOutcome& r, const std::string& csv, const std::string& json,
                     const std::string& html, const std::string& part, bool quiet) {
  MpiSession mpi(world);
  const std::map<std::size_t, std::string> rows = mpi.gather_items(sweep_rows_by_point(r.table));
  const std::vector<std::string> failures = mpi.gather_strings(r.failures);
  int status = 0;
  if (world.rank == 0) {
    try {
      SweepTable& t = r.table;
      set_sweep_rows(t, rows);
      std::string failed;
      for (const auto& f : failures) failed += f;
      replace_sweep_file(csv, sweep_csv_text(t));
      if (!failed.empty()) {
        std::cerr << failed
                  << fmt::format("moesim sweep: {} of {} points failed; the others are in {} (the same mpirun command "
                                 "with --resume retries the failed ones)\n",
                                 t.points - rows.size(), t.points, escape_control(csv));
        status = 1;
      } else {
        if (!json.empty()) write_file(json, reports::sweep_json(t));
        if (!html.empty()) write_file(html, reports::sweep_html(t));
        if (!quiet)
          std::cout << fmt::format("{} points, {} rows in {} ({} MPI ranks)\n", t.points, t.rows.size(), csv,
                                   world.size);
      }
    } catch (const std::exception& e) {
      std::cerr << "moesim sweep: " << e.what() << "\n";
      status = 1;
    }
  }
  status = mpi.broadcast(status);
  if (status == 0) std::filesystem::remove(part);
  return status;
}

// `moesim sweep` (sim/sweep.hpp). Exit 130 when interrupted (Ctrl-C): the CSV holds the finished points.
// Launched by mpirun as N > 1 processes, rank r runs the points p with p % N == r (shard r+1 of N, into its
// own CSV, rank_csv_path) and rank 0 writes the whole sweep's CSV (finish_mpi_sweep, sim/mpi_split.hpp).
// The MPI world `moesim COMMAND` was launched in (size 1 without a launcher), or nullopt after saying why it
// cannot run: a malformed launcher environment, or an MPI launch of a moesim built without MPI (N copies of
// the whole command would waste N - 1 machines and race on its outputs); `otherwise` says what to do instead.
std::optional<MpiWorld> mpi_world_for(const char* command, const char* otherwise) {
  MpiWorld world;
  try {
    world = mpi_world_from_env();
  } catch (const std::invalid_argument& e) {
    std::cerr << "moesim " << command << ": " << e.what() << "\n";
    return std::nullopt;
  }
  if (world.size > 1 && !mpi_compiled()) {
    std::cerr << fmt::format("moesim {}: launched as rank {} of {} ({}), but this moesim was built without MPI "
                             "(CMake found none: install libopenmpi-dev and configure again); {}\n",
                             command, world.rank, world.size, world.source, otherwise);
    return std::nullopt;
  }
  return world;
}

int cmd_sweep(const std::string& file, const std::string& csv, const std::string& json, const std::string& html,
              const std::vector<std::string>& set, const std::vector<std::string>& zip, const std::string& fidelity,
              int jobs, bool resume, bool quiet, bool force, const std::string& shard) {
  if (!outputs_writable("sweep", {{"--csv", csv}, {"--json", json}, {"--html", html}})) return 2;
  const std::optional<MpiWorld> launched =
      mpi_world_for("sweep", "run it without mpirun, or split the sweep with --shard I/N and `moesim merge`");
  if (!launched) return 2;
  const MpiWorld world = *launched;
  SweepOptions o;
  o.jobs = jobs;
  o.resume = resume;
  o.force = force;
  o.csv = csv;
  o.quiet = quiet;
  if (!shard.empty()) {
    try {
      std::tie(o.shard, o.shards) = parse_shard(shard);
    } catch (const std::invalid_argument& e) {
      std::cerr << "moesim sweep: " << e.what() << "\n";
      return 2;
    }
  }
  if (world.size > 1) {
    if (!shard.empty()) {
      std::cerr << "moesim sweep: --shard and an MPI launch both split the points; use one of them\n";
      return 2;
    }
    o.shard = static_cast<std::size_t>(world.rank) + 1;
    o.shards = static_cast<std::size_t>(world.size);
    o.csv = rank_csv_path(csv, world);
    if (!outputs_writable("sweep", {{"--csv (this rank's part)", o.csv}})) return 2;
    o.progress_prefix = fmt::format("rank {}/{}: ", world.rank, world.size);
  }
  // Not under MPI: OpenMPI gives each rank a pseudo-terminal, and N bars redrawn on one line are unreadable;
  // the ranks print a line per point, prefixed with the rank.
  o.progress_bar = ::isatty(STDOUT_FILENO) == 1 && world.size == 1;
  if (fidelity == "exact") o.fidelity = Fidelity::exact;
  if (fidelity == "fast") o.fidelity = Fidelity::fast;
  // Tests only (documented in README.md): stop as on Ctrl-C after this many points.
  if (const char* s = std::getenv("MOESIM_SWEEP_STOP_AFTER"); s && *s) o.stop_after = std::strtoul(s, nullptr, 10);
  SweepOutcome r;
  try {
    r = run_sweep(file, set, zip, o);
  } catch (const std::invalid_argument& e) {
    std::cerr << "moesim sweep: " << e.what() << "\n";
    return 2;
  }
  std::set<std::string> finished;
  for (const auto& row : r.table.rows) finished.insert(row[0]);
  if (r.interrupted) {
    // Under MPI this rank stops without starting MPI (mpirun then ends the job); its shard CSV keeps its finished
    // points for --resume.
    std::cerr << fmt::format("moesim sweep: {}interrupted: {} of {} points in {}; run the same command with "
                             "--resume to finish\n",
                             o.progress_prefix, finished.size(), r.shard_points, escape_control(o.csv));
    return 130;
  }
  if (world.size > 1) return finish_mpi_sweep(world, r, csv, json, html, o.csv, quiet);
  if (!r.failures.empty()) {
    std::cerr << r.failures
              << fmt::format("moesim sweep: {} of {} points failed; the others are in {} (--resume retries the "
                             "failed ones)\n",
                             r.shard_points - finished.size(), r.shard_points, escape_control(csv));
    return 1;
  }
  if (!json.empty()) write_file(json, reports::sweep_json(r.table));
  if (!html.empty()) write_file(html, reports::sweep_html(r.table));
  if (!quiet)
    std::cout << fmt::format("{} points{}, {} rows in {}\n", r.shard_points,
                             o.shards > 1 ? fmt::format(" (shard {}/{} of {})", o.shard, o.shards, r.table.points) : "",
                             r.table.rows.size(), csv);
  return 0;
}

// `moesim plan` (sim/plan.hpp): the cheapest configuration of the plan: section's menu that meets its target.
// Exit 0 with a winner, 1 when no candidate meets the target (the CSV says why each failed).
// `moesim plan` (sim/plan.hpp). Launched by mpirun as N > 1 processes, every rank builds the same candidates,
// simulates those at positions p % N == rank of the cost-bound order (forking its workers before MPI starts),
// and rank 0 gathers every rank's results and writes the console answer and the CSV.
int cmd_plan(const std::string& file, const std::string& csv, int jobs, bool quiet) {
  if (!outputs_writable("plan", {{"--csv", csv}})) return 2;
  const std::optional<MpiWorld> launched = mpi_world_for("plan", "run it without mpirun");
  if (!launched) return 2;
  const MpiWorld world = *launched;
  PlanOptions o;
  o.jobs = jobs;
  o.quiet = quiet;
  o.shard_rank = world.rank;
  o.shard_size = world.size;
  if (world.size > 1) o.progress_prefix = fmt::format("rank {}/{}: ", world.rank, world.size);
  PlanOutcome r;
  try {
    r = run_plan(file, o);
  } catch (const std::invalid_argument& e) {
    // Every rank reads the same file, so every rank stops here alike, before MPI starts.
    std::cerr << "moesim plan: " << e.what() << "\n";
    return 2;
  }
  if (world.size > 1) {
    // All simulations are done (no worker process left): now MPI may start.
    MpiSession mpi(world);
    const std::map<std::size_t, std::string> items = mpi.gather_items(plan_shard_items(r, o));
    int status = 0;
    if (world.rank == 0) {
      try {
        merge_plan_items(r, items);
        std::cout << plan_console_text(r);
        if (!csv.empty()) {
          write_file(csv, plan_csv_text(r));
          if (!quiet) std::cout << fmt::format("{} candidates in {} ({} MPI ranks)\n", r.candidates.size(), csv, world.size);
        }
        status = r.winner ? 0 : 1;
      } catch (const std::exception& e) {
        std::cerr << "moesim plan: " << e.what() << "\n";
        status = 2;
      }
    }
    return mpi.broadcast(status);
  }
  std::cout << plan_console_text(r);
  if (!csv.empty()) {
    write_file(csv, plan_csv_text(r));
    if (!quiet) std::cout << fmt::format("{} candidates in {}\n", r.candidates.size(), csv);
  }
  return r.winner ? 0 : 1;
}

// `moesim merge`: the whole sweep's CSV from its shards' (sim/sweep.hpp merge_sweep_csvs).
int cmd_merge(const std::string& out, const std::vector<std::string>& shards, long points) {
  if (!outputs_writable("merge", {{"OUT", out}})) return 2;
  std::string text;
  try {
    text = merge_sweep_csvs(shards, points > 0 ? std::optional<std::size_t>(static_cast<std::size_t>(points))
                                               : std::nullopt);
  } catch (const std::invalid_argument& e) {
    std::cerr << "moesim merge: " << e.what() << "\n";
    return 2;
  }
  replace_sweep_file(out, text);
  return 0;
}

int cmd_list() {
  const std::string dd = data_dir();
  auto print = [](const char* what, const std::vector<std::string>& names) {
    std::cout << what << ":";
    for (const auto& n : names) std::cout << " " << n;
    std::cout << "\n";
  };
  print("models", models::list_architecture_presets(dd));
  print("clusters", topo::available_presets(dd));
  print("profiles", models::list_profiles(dd));
  print("schedules", models::schedule_names());
  return 0;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
#define MOESIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOESIM_ASAN 1
#endif
#endif

// Memory for the run. Page faults were 10-14 % of the larger benchmarks: each 4 KiB page of the op graph's
// byte matrices, the engine's state and the report faulted in on first touch, at several microseconds each in
// a VM. Two things help:
//  - glibc maps each large block (128 KiB and up, adaptively to 32 MiB) afresh and unmaps it at free, so a
//    reused buffer faults all its pages in again. Blocks below 64 MiB stay in the heap instead (peak memory is
//    unchanged: it is what the run holds at once). The threshold matters: at 32 MiB, the fast fidelity's
//    2,048 x 2,048 byte matrix of each ring task (33.5 MB) was mapped afresh per gradient bucket and
//    `dsv3-train-2048` took 64 s instead of 25 s.
//  - The heap's first 240 MiB are reserved up front and advised for transparent huge pages, so they fault in
//    2 MiB at a time (realb-qwen3-vl-64 1.92 -> 1.68 s, dsv3-train-256 2.57 -> 2.01 s, layer-256 0.16 ->
//    0.14 s). Nothing is touched here: memory is used (and counted) only as the run allocates it, at most
//    2 MiB more than with 4 KiB pages; forked simulation children inherit the advice; kernels whose THP mode
//    is "never" ignore it. (glibc's glibc.malloc.hugetlb tunable does this for the whole heap, but is read
//    only at process start.) Not under ASan, whose allocator is not glibc's and would poison the reserve.
static void prepare_heap() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#ifndef MOESIM_ASAN
  constexpr std::size_t kBlock = 30u << 20, kHeapReserve = 8 * kBlock, kHuge = 2u << 20;
  static_assert(kHeapReserve < (256u << 20), "the trim threshold must keep the freed reserve");
  std::vector<void*> blocks;
  for (std::size_t got = 0; got < kHeapReserve; got += kBlock) blocks.push_back(std::malloc(kBlock));
  if (std::find(blocks.begin(), blocks.end(), nullptr) == blocks.end()) {
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (void* b : blocks) {
      lo = std::min(lo, reinterpret_cast<uintptr_t>(b));
      hi = std::max(hi, reinterpret_cast<uintptr_t>(b) + kBlock);
    }
    // The blocks are contiguous heap growth; advice over a gap (a heap that could not grow in place) fails
    // only for the gap.
    const uintptr_t a = (lo + kHuge - 1) / kHuge * kHuge, z = hi / kHuge * kHuge;
    if (z > a) ::madvise(reinterpret_cast<void*>(a), z - a, MADV_HUGEPAGE);
  }
  for (void* b : blocks) std::free(b);
#endif
}

int main(int argc, char** argv) {
  prepare_heap();
  CLI::App app{"moesim: discrete-event simulator of Mixture-of-Experts expert parallelism"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(MOESIM_VERSION) + " (" + MOESIM_GIT_SHA + ")");

  std::string file, json, csv, sweep_csv, trace, html, dot, fidelity = "scenario";
  std::vector<std::string> only;
  int jobs = 2, html_layer = -1;
  bool quiet = false, show_wall = false, settings = false, force = false;

  auto* run = app.add_subcommand("run", "simulate every variant of a scenario and report");
  run->add_option("FILE", file, "scenario YAML")->required();
  run->add_option("--json", json, "write the JSON result (schema moesim-result/1)");
  run->add_option("--csv", csv, "write one CSV row per variant, layer and rank");
  run->add_option("--sweep-csv", sweep_csv,
                  "write one CSV row per sweep point (e.g. each threshold of a dualsparse thresholds list); "
                  "refused when the run has no sweep");
  run->add_option("--trace", trace, "write a Perfetto / Chrome trace of every op");
  run->add_option("--html", html, "write a self-contained HTML report");
  run->add_option("--html-layer", html_layer,
                  "layer the HTML report's timeline shows (forward ops of step 0; default: the first MoE layer)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--variant", only, "run only this variant (repeatable)");
  run->add_option("--fidelity", fidelity, "override the scenario: exact | fast")
      ->check(CLI::IsMember({"scenario", "exact", "fast"}));
  run->add_option("--jobs", jobs, "variants simulated at once (child processes)")->check(CLI::Range(1, 64));
  run->add_flag("--quiet", quiet, "print nothing on success");
  run->add_flag("--show-wall", show_wall, "include host wall time in the table and JSON");
  run->add_flag("--force", force, "run even when the estimated work is very long (never overrides the memory check)");

  auto* topo_cmd = app.add_subcommand("topo", "describe a cluster: links, bisection, diameter, bottleneck");
  topo_cmd->add_option("FILE", file, "scenario or cluster YAML");
  topo_cmd->add_option("--dot", dot, "write the topology as Graphviz DOT");
  topo_cmd->add_flag("--simgrid-settings", settings, "print the SimGrid settings of each fidelity level");

  std::vector<std::string> sweep_set, sweep_zip;
  bool resume = false;
  auto* sweep = app.add_subcommand("sweep", "run a scenario at every point of a grid over its keys (its sweep: "
                                            "section, or --set / --zip) and write one CSV row per point and variant");
  sweep->add_option("FILE", file, "scenario YAML")->required();
  sweep->add_option("--csv", csv, "the CSV, written as points finish (required; --resume reads it)")->required();
  sweep->add_option("--json", json, "write the rows as JSON (schema moesim-sweep/1)");
  sweep->add_option("--html", html, "write an HTML page: a line chart per metric against the first swept key");
  sweep->add_option("--set", sweep_set, "KEY=V1,V2,...: one grid axis over a key path, e.g. parallelism.ep=2,4,8 "
                                        "(repeatable; --set / --zip replace the file's sweep: section)")
      ->allow_extra_args(false);
  sweep->add_option("--zip", sweep_zip, "KEY=V1,V2,...: keys walked together, one point per position (repeatable; "
                                        "equal lengths)")
      ->allow_extra_args(false);
  sweep->add_option("--jobs", jobs, "points simulated at once (worker processes)")->check(CLI::Range(1, 64));
  sweep->add_flag("--resume", resume, "keep the finished points of the existing --csv and run the rest");
  sweep->add_option("--fidelity", fidelity, "override every point: exact | fast")
      ->check(CLI::IsMember({"scenario", "exact", "fast"}));
  sweep->add_flag("--quiet", quiet, "no progress output");
  sweep->add_flag("--force", force, "run points whose estimated work is very long");
  std::string shard;
  sweep->add_option("--shard", shard, "I/N: run only the points p with p % N == I - 1 (1 <= I <= N), e.g. one "
                                      "Slurm array task each; `moesim merge` joins the shards' CSVs");

  auto* plan = app.add_subcommand("plan", "find the cheapest configuration of a scenario's plan: menu (GPU, cluster, "
                                          "EP degree, variant) that meets its target");
  plan->add_option("FILE", file, "scenario YAML with a plan: section")->required();
  plan->add_option("--csv", csv, "write every candidate (status, reason, memory, bound, cost) as CSV");
  plan->add_option("--jobs", jobs, "candidates simulated at once (worker processes)")->check(CLI::Range(1, 64));
  plan->add_flag("--quiet", quiet, "no progress output");

  std::string merge_out;
  std::vector<std::string> merge_in;
  long merge_points = 0;
  auto* merge = app.add_subcommand("merge", "join the CSVs of a sweep's shards (moesim sweep --shard I/N) into the "
                                            "CSV of the whole sweep");
  merge->add_option("OUT", merge_out, "the merged CSV")->required();
  merge->add_option("SHARD", merge_in, "the shards' CSVs, any order")->required();
  merge->add_option("--points", merge_points, "the sweep's point count: a missing last point is an error too")
      ->check(CLI::Range(1L, 10000L));

  auto* validate = app.add_subcommand("validate", "load a scenario and report every problem");
  validate->add_option("FILE", file, "scenario YAML")->required();

  std::string coll_kind, coll_cluster, coll_sizes = "1MiB:1GiB", coll_fidelity = "auto", coll_launch;
  int coll_ranks = 0;
  std::vector<int> coll_gpus;
  double coll_factor = 2.0;
  auto* coll = app.add_subcommand("collective", "simulate one collective over a sweep of sizes and report time, "
                                                "algbw and busbw like nccl-tests");
  coll->add_option("KIND", coll_kind, "all_to_all | all_gather | reduce_scatter | all_reduce")->required();
  coll->add_option("--cluster", coll_cluster, "topology preset name, or a cluster or scenario YAML file")->required();
  coll->add_option("--ranks", coll_ranks, "ranks on GPUs 0..N-1 (default: every GPU of the cluster)")
      ->check(CLI::Range(2, 1 << 20));
  coll->add_option("--gpus", coll_gpus, "GPU ids of the ranks instead, comma-separated (e.g. 0,8,16,24)")
      ->delimiter(',');
  coll->add_option("--sizes", coll_sizes, "MIN:MAX or one size, with units (nccl-tests -b/-e); default 1MiB:1GiB");
  coll->add_option("--step-factor", coll_factor, "each size is the previous one times F (nccl-tests -f); default 2");
  coll->add_option("--launch", coll_launch, "per-call launch time with its unit (e.g. 10us; 0: bytes and latency "
                                           "only); default: the cluster GPU profile's collective_launch");
  coll->add_option("--fidelity", coll_fidelity, "auto | exact | fast (auto: exact up to 20,000 flows, fast above)")
      ->check(CLI::IsMember({"auto", "exact", "fast"}));
  coll->add_option("--json", json, "write the result as JSON (schema moesim-collective/1)");
  coll->add_option("--csv", csv, "write one CSV row per size");

  app.add_subcommand("list", "list shipped models, clusters, GPU profiles and schedules");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help / the usage error
    return code == 0 ? 0 : 2;      // usage errors are bad input, like a bad scenario
  }
  try {
    const int rc = [&] {
      if (run->parsed()) return cmd_run(file, json, csv, sweep_csv, trace, html, html_layer, only, fidelity, jobs, quiet, show_wall, force);
      if (topo_cmd->parsed()) {
        if (file.empty() && !settings) {
          std::cerr << "moesim topo: FILE is required\n";
          return 2;
        }
        return cmd_topo(file, dot, settings);
      }
      if (sweep->parsed())
        return cmd_sweep(file, csv, json, html, sweep_set, sweep_zip, fidelity, jobs, resume, quiet, force, shard);
      if (plan->parsed()) return cmd_plan(file, csv, jobs, quiet);
      if (merge->parsed()) return cmd_merge(merge_out, merge_in, merge_points);
      if (coll->parsed())
        return cmd_collective(coll_kind, coll_cluster, coll_ranks, coll_gpus, coll_sizes, coll_factor, coll_fidelity,
                              json, csv, coll_launch);
      if (validate->parsed()) {
        Scenario sc = load_scenario(file);
        std::cout << fmt::format("{}: ok ({} variants, {} GPUs, EP {})\n", file, sc.variants.size(),
                                 sc.cluster.gpu_count(), sc.ep);
        return 0;
      }
      return cmd_list();
    }();
    flush_stdout();  // a full disk under standard output fails the command
    return rc;
  } catch (const InputError& e) {
    std::cerr << e.diagnostics().str() << fmt::format("{} error(s)\n", e.diagnostics().size());
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "moesim: " << e.what() << "\n";
    return 1;
  }
}
