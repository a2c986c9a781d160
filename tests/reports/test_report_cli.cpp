// `moesim run --html --trace` end to end on tests/data/toy-2rank.yaml (2 ranks, 1 MoE layer, topk): the trace
// follows the trace-event format with flows and counters; the HTML timeline draws exactly the trace's forward
// ops of the chosen layer in step 0; --html-layer's argument errors.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "report_fixture.hpp"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs the binary with `args`; returns the exit code, stderr in *err.
int run_moesim(const std::string& args, std::string* err) {
  const fs::path e = fs::temp_directory_path() / fmt::format("moesim_report_cli_{}.err", ::getpid());
  const int st = std::system(fmt::format("'{}' {} > /dev/null 2> '{}'", MOESIM_BIN, args, e.string()).c_str());
  *err = slurp(e);
  fs::remove(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const std::string kToy = std::string(MOESIM_SOURCE_DIR) + "/tests/data/toy-2rank.yaml";

}  // namespace

TEST_CASE("moesim run --html --trace: a valid trace with flows, a timeline of the layer's ops", "[reports][cli]") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("moesim_report_cli_{}", ::getpid());
  fs::create_directories(dir);
  const fs::path html = dir / "r.html", trace = dir / "r.trace.json";
  std::string err;
  REQUIRE(run_moesim(fmt::format("run '{}' --quiet --html '{}' --trace '{}'", kToy, html.string(), trace.string()),
                 &err) == 0);
  const auto j = nlohmann::json::parse(slurp(trace));
  std::size_t flows = 0, counters = 0;
  CHECK(moesim::testing::trace_problems(j, &flows, &counters) == "");
  // toy-trace.csv: rank 0 sends 3 tokens to expert 1 (rank 1), rank 1 sends 1 to expert 0 (rank 0); a rank's
  // own tokens do not cross the network. So one arrow into each rank's expert op: 2.
  std::size_t experts = 0, fwd_layer0 = 0;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] != "X") continue;
    experts += e["args"]["class"] == "expert";
    fwd_layer0 += e["args"]["layer"] == 0 && e["args"]["phase"] == "fwd" && e["args"]["step"] == 0;
  }
  CHECK(experts == 2);
  CHECK(flows == 2);
  CHECK(counters > 0);
  const std::string page = slurp(html);
  CHECK_THAT(page, Catch::Contains("<h2>Timeline of layer 0</h2>"));  // the model's one layer is MoE
  CHECK(moesim::testing::occurrences(page, "class=\"gantt-op\"") == fwd_layer0);
  CHECK(moesim::testing::occurrences(page, "class=\"tokens-cell\"") == 2);  // 1 MoE layer x 2 ranks
  CHECK(moesim::testing::svg_problems(page) == "");
  fs::remove_all(dir);
}

TEST_CASE("moesim run --html-layer: needs --html and a simulated layer", "[reports][cli]") {
  std::string err;
  CHECK(run_moesim(fmt::format("run '{}' --quiet --html-layer 0", kToy), &err) == 2);
  CHECK_THAT(err, Catch::Contains("--html-layer: needs --html"));
  const fs::path html = fs::temp_directory_path() / fmt::format("moesim_report_cli_{}.html", ::getpid());
  CHECK(run_moesim(fmt::format("run '{}' --quiet --html '{}' --html-layer 1", kToy, html.string()), &err) == 2);
  CHECK_THAT(err, Catch::Contains("--html-layer 1:"));
  CHECK_THAT(err, Catch::Contains("simulates layers 0 to 0"));
  CHECK_FALSE(fs::exists(html));  // refused before simulating
  CHECK(run_moesim(fmt::format("run '{}' --quiet --html '{}' --html-layer -1", kToy, html.string()), &err) == 2);
}
