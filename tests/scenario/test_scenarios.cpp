// Scenario format v1 as documented and shipped:
//   (a) every ```yaml block of scenarios/README.md is a complete scenario that loads;
//   (b) every scenarios/*.yaml and scenarios/bench/*.yaml loads;
//   (c) every tests/bad/NN-what.yaml fails with exactly the diagnostics in NN-what.expected, and for a few of
//       them the CLI (`moesim validate`) exits 2 and prints the same lines plus "N error(s)".
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "sim/scenario.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kSource = MOESIM_SOURCE_DIR;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The ```yaml fenced blocks of a Markdown text, in order.
std::vector<std::string> yaml_blocks(const std::string& markdown) {
  std::vector<std::string> out;
  std::istringstream in(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(' ');
    const std::string trimmed = first == std::string::npos ? "" : line.substr(first);
    if (!inside && trimmed.rfind("```yaml", 0) == 0) {
      inside = true;
      block.clear();
    } else if (inside && trimmed.rfind("```", 0) == 0) {
      inside = false;
      out.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return out;
}

// "" when the scenario loads, else its diagnostics (or the other exception's message).
std::string load_problems(const std::string& path) {
  try {
    moesim::load_scenario(path);
    return "";
  } catch (const moesim::InputError& e) {
    return e.diagnostics().str();
  } catch (const std::exception& e) {
    return std::string("unexpected exception: ") + e.what();
  }
}

std::vector<fs::path> files_with_extension(const fs::path& dir, const std::string& ext) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs with the working directory set to `dir`, restoring the previous one afterwards.
class ChangeDir {
 public:
  explicit ChangeDir(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ChangeDir() { fs::current_path(old_); }

 private:
  fs::path old_;
};

const fs::path kBad = kSource / "tests" / "bad";

}  // namespace

TEST_CASE("every yaml example in scenarios/README.md loads", "[scenario][readme]") {
  const std::vector<std::string> blocks = yaml_blocks(read_text(kSource / "scenarios" / "README.md"));
  REQUIRE(blocks.size() >= 5);
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const std::string name = "README.md example " + std::to_string(i + 1);
    std::string problems;
    try {
      moesim::load_scenario_text(blocks[i], name);
    } catch (const moesim::InputError& e) {
      problems = e.diagnostics().str();
    } catch (const std::exception& e) {
      problems = std::string("unexpected exception: ") + e.what();
    }
    INFO(name << ":\n" << blocks[i]);
    CHECK(problems == "");
  }
}

TEST_CASE("every shipped scenario loads", "[scenario][shipped]") {
  std::vector<fs::path> files = files_with_extension(kSource / "scenarios", ".yaml");
  for (const auto& p : files_with_extension(kSource / "scenarios" / "bench", ".yaml")) files.push_back(p);
  REQUIRE(!files.empty());
  for (const auto& p : files) {
    INFO(p.string());
    CHECK(load_problems(p.string()) == "");
  }
}

TEST_CASE("bad scenarios report exactly the expected diagnostics", "[scenario][bad]") {
  const std::vector<fs::path> yamls = files_with_extension(kBad, ".yaml");
  REQUIRE(yamls.size() >= 24);
  // Every .expected belongs to a .yaml (no stale expectations).
  for (const auto& e : files_with_extension(kBad, ".expected")) {
    INFO(e.string());
    CHECK(fs::exists(fs::path(e).replace_extension(".yaml")));
  }
  ChangeDir cd(kBad);  // messages carry the file name as passed: load by bare name
  for (const auto& y : yamls) {
    const std::string name = y.filename().string();
    const fs::path expected_path = fs::path(y).replace_extension(".expected");
    INFO(name);
    REQUIRE(fs::exists(expected_path));
    const std::string expected = read_text(expected_path);
    CHECK(!expected.empty());
    bool threw = false;
    std::string got;
    try {
      moesim::load_scenario(name);
    } catch (const moesim::InputError& e) {
      threw = true;
      got = e.diagnostics().str();
    }
    CHECK(threw);
    CHECK(got == expected);
  }
}

TEST_CASE("moesim validate exits 2 and prints the diagnostics and their count", "[scenario][bad][cli]") {
  const fs::path out = fs::temp_directory_path() / ("moesim-test-scenarios-" + std::to_string(::getpid()));
  fs::create_directories(out);
  for (const char* stem : {"01-unknown-top-level-key", "27-trace-unknown-expert", "32-several-errors"}) {
    INFO(stem);
    const std::string expected = read_text(kBad / (std::string(stem) + ".expected"));
    const auto lines = std::count(expected.begin(), expected.end(), '\n');
    const fs::path err = out / (std::string(stem) + ".stderr");
    const std::string cmd = "cd '" + kBad.string() + "' && '" + std::string(MOESIM_BIN) + "' validate " + stem +
                            ".yaml >/dev/null 2>'" + err.string() + "'";
    const int status = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 2);
    CHECK(read_text(err) == expected + std::to_string(lines) + " error(s)\n");
  }
  fs::remove_all(out);
}
