// Hostile inputs and environments (issue 12) that a tests/bad file cannot express: scenario paths that are
// not regular files, outputs that cannot be written, signals sent to a running `moesim run`.
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "sim/scenario.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kSource = MOESIM_SOURCE_DIR;

// The diagnostics of loading `path` ("" when it loads).
std::string load_problems(const std::string& path) {
  try {
    moesim::load_scenario(path);
    return "";
  } catch (const moesim::InputError& e) {
    return e.diagnostics().str();
  }
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under /tmp, removed at the end of the test.
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("moesim-test-hardening-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

struct Run {
  int exit_code = -1;
  std::string err;
};

// Runs a shell command, returning its exit code and what it wrote to stderr.
Run run_shell(const std::string& cmd, const fs::path& dir) {
  const fs::path err = dir / "stderr";
  const int status = std::system((cmd + " 2>'" + err.string() + "'").c_str());
  Run r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_text(err);
  return r;
}

const std::string kBin = MOESIM_BIN;
const std::string kDemo = (kSource / "scenarios" / "demo-h200.yaml").string();

// Child pids of `pid` (Linux /proc).
std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

// Alive = exists and is not a zombie.
bool alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

}  // namespace

TEST_CASE("a scenario path that is not a readable regular file gets its own message at 1:1", "[scenario][hardening]") {
  TempDir tmp;
  CHECK(load_problems(tmp.path.string()) == tmp.path.string() + ":1:1: <root>: is a directory, not a file\n");
  const fs::path missing = tmp.path / "missing.yaml";
  CHECK(load_problems(missing.string()) ==
        missing.string() + ":1:1: <root>: cannot open file (No such file or directory)\n");
  const fs::path empty = tmp.path / "empty.yaml";
  std::ofstream(empty).close();
  CHECK(load_problems(empty.string()) == empty.string() + ":1:1: <root>: the file is empty (no YAML document)\n");
  CHECK(load_problems("/dev/zero") == "/dev/zero:1:1: <root>: is not a regular file (a device, FIFO or socket)\n");
  // A FIFO without a writer: refused at once instead of blocking in open().
  const fs::path fifo = tmp.path / "fifo.yaml";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK(load_problems(fifo.string()) == fifo.string() + ":1:1: <root>: is not a regular file (a device, FIFO or socket)\n");
  // Larger than the cap: refused before reading.
  const fs::path big = tmp.path / "big.yaml";
  fs::resize_file((std::ofstream(big).close(), big), 17u << 20);
  CHECK(load_problems(big.string()) ==
        big.string() + ":1:1: <root>: file is too large (17825792 bytes; at most 16777216)\n");
}

TEST_CASE("outputs that cannot be written fail the run, and unwritable paths fail before simulating",
          "[scenario][hardening][cli]") {
  TempDir tmp;
  // /dev/full accepts the open and fails the write: the run must not exit 0.
  if (fs::exists("/dev/full")) {
    Run r = run_shell("'" + kBin + "' run --quiet '" + kDemo + "' --json /dev/full", tmp.path);
    CHECK(r.exit_code == 1);
    CHECK(r.err == "moesim: cannot write /dev/full: No space left on device\n");
    r = run_shell("'" + kBin + "' run '" + kDemo + "' >/dev/full", tmp.path);
    CHECK(r.exit_code == 1);
    CHECK(r.err == "moesim: cannot write standard output: No space left on device\n");
  }
  // A directory that does not exist: refused at once (exit 2, nothing simulated, nothing written).
  const auto t0 = std::chrono::steady_clock::now();
  const std::string nowhere = (tmp.path / "no-such-dir" / "out.csv").string();
  Run r = run_shell("'" + kBin + "' run --quiet '" + kDemo + "' --csv '" + nowhere + "'", tmp.path);
  CHECK(r.exit_code == 2);
  CHECK(r.err == "moesim run: --csv " + nowhere + ": cannot write (directory " + (tmp.path / "no-such-dir").string() +
                     " does not exist)\n");
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  r = run_shell("'" + kBin + "' run --quiet '" + kDemo + "' --json '" + tmp.path.string() + "'", tmp.path);
  CHECK(r.exit_code == 2);
  CHECK(r.err == "moesim run: --json " + tmp.path.string() + ": cannot write (is a directory)\n");
}

TEST_CASE("killing moesim run does not orphan its variant processes", "[scenario][hardening][signals]") {
  // A long run (exact fidelity, 61-layer training step on 64 GPUs): its variant child is still simulating when
  // the parent is signalled.
  const std::string scenario = (kSource / "scenarios" / "bench" / "dsv3-train-64.yaml").string();
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    const pid_t parent = ::fork();
    REQUIRE(parent >= 0);
    if (parent == 0) {
      ::setpgid(0, 0);  // its own group, so that only the parent is signalled below, never the children by group
      std::freopen("/dev/null", "w", stdout);
      ::execl(kBin.c_str(), kBin.c_str(), "run", "--quiet", "--fidelity", "exact", scenario.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::vector<pid_t> kids;
    for (int i = 0; i < 400 && kids.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      kids = children_of(parent);
    }
    REQUIRE(!kids.empty());
    REQUIRE(::kill(parent, sig) == 0);  // the parent alone
    int status = 0;
    REQUIRE(::waitpid(parent, &status, 0) == parent);
    CHECK(WIFSIGNALED(status));
    bool any_alive = true;
    for (int i = 0; i < 200 && any_alive; ++i) {
      any_alive = false;
      for (pid_t k : kids) any_alive = any_alive || alive(k);
      if (any_alive) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    CHECK(!any_alive);
    for (pid_t k : kids)
      if (alive(k)) ::kill(k, SIGKILL);  // do not leave a runaway process behind a failed check
  }
}

TEST_CASE("a 65,536-GPU cluster with 8 ranks validates, runs and is described in linear memory",
          "[scenario][hardening][cli]") {
  // Routes, hosts and the unreachable-pair check used to be built for every GPU pair (validate took 47 s, run
  // was killed at 22 GB). ulimit -v (4 GiB) turns a quadratic regression into a failure. `make test-asan`
  // leaves this test out (ASan reserves terabytes of address space).
  TempDir tmp;
  const fs::path file = tmp.path / "big.yaml";
  std::ofstream(file) << "version: 1\nname: big\nmodel: olmoe-1b-7b\ncluster:\n  family: multi_node\n  gpu: h100-sxm\n"
                         "  nodes: 8192\n  node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: 370GB/s}\n"
                         "  nic_bandwidth: 400Gbps\n  fabric: {type: fat_tree, nics_per_leaf: 32}\n"
                         "parallelism: {ep: 8}\nworkload: {mode: inference_prefill, tokens_per_rank: 64}\n"
                         "variants:\n  - {name: base, schedule: topk}\n";
  // moesim under a 4 GiB address-space limit. Built with append: `limit + "'" + ...` trips GCC 12's false
  // -Wrestrict at -O3 (GCC PR 105651).
  const auto limited = [&](const std::string& command, const std::string& redirect) {
    std::string c = "ulimit -v 4194304; '";
    c.append(kBin).append("' ").append(command).append(" '").append(file.string()).append("' ").append(redirect);
    return c;
  };
  CHECK(run_shell(limited("validate", ">/dev/null"), tmp.path).exit_code == 0);
  CHECK(run_shell(limited("run --quiet", ""), tmp.path).exit_code == 0);
  const Run topo = run_shell(limited("topo", "> '" + (tmp.path / "topo.txt").string() + "'"), tmp.path);
  CHECK(topo.exit_code == 0);
  CHECK(read_text(tmp.path / "topo.txt").find("diameter and all-to-all bottleneck: not computed (65536 GPUs") !=
        std::string::npos);
}
