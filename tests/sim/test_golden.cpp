// Golden results: every shipped scenario (scenarios/*.yaml) is simulated and its JSON compared byte for byte
// with tests/golden/<file stem>.json. The git sha in the context is replaced by "golden" so that commits do
// not change the files. Multi-step scenarios keep the rows of their first step. After a deliberate change in results, regenerate with `make golden-update`
// (MOESIM_UPDATE_GOLDEN=1) and review the diff before committing it.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "reports/reports.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"

using namespace moesim;
namespace fs = std::filesystem;

namespace {
std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// First differing line, for a readable failure.
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream sa(a), sb(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ga = static_cast<bool>(std::getline(sa, la)), gb = static_cast<bool>(std::getline(sb, lb));
    if (!ga && !gb) return "identical";
    if (la != lb || ga != gb) return "line " + std::to_string(line) + ":\n  golden: " + lb + "\n  now:    " + la;
  }
}
}  // namespace

TEST_CASE("every shipped scenario matches its golden JSON", "[golden]") {
  fs::current_path(testing::source_dir());  // scenario paths in the context are relative to the source tree
  const bool update = std::getenv("MOESIM_UPDATE_GOLDEN") != nullptr;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator("scenarios"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 4);
  for (const auto& f : files) {
    Scenario sc = load_scenario(f.string());
    RunResult rr = run_scenario(sc, {});
    rr.context.git_sha = "golden";
    // Multi-step scenarios: the rows of the first step only (all steps would be megabytes); the later steps
    // are pinned by step_times_s, step_stats and the precision map.
    for (auto& v : rr.variants)
      std::erase_if(v.rows, [](const LayerRankRow& row) { return row.step > 0; });
    const std::string now = reports::json_report(rr);
    const fs::path golden = fs::path("tests/golden") / (f.stem().string() + ".json");
    if (update) {
      std::ofstream(golden, std::ios::binary) << now;
      continue;
    }
    INFO(f.string() << " vs " << golden.string() << "\n" << first_difference(now, read(golden)));
    CHECK(fs::exists(golden));
    CHECK(now == read(golden));
  }
}
