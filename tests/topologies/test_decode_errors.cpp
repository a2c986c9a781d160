// Bad topology inputs produce exact diagnostics (file:line:col: key.path: rule (got value)).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

using namespace moesim;
using namespace moesim::topo;
using namespace moesim::topo::test;

TEST_CASE("unknown key suggests the closest one", "[topologies]") {
  CHECK(errors_of(R"(cluster:
  family: nvswitch_node
  gpus: 8
  nvlink_bandwidht: 370GB/s
)") == "t.yaml:2:3: cluster.nvlink_bandwidth: missing required key\n"
       "t.yaml:4:3: cluster.nvlink_bandwidht: unknown key; did you mean 'nvlink_bandwidth'? (got nvlink_bandwidht)\n");
}

TEST_CASE("missing key", "[topologies]") {
  CHECK(errors_of("cluster:\n  family: nvswitch_node\n  nvlink_bandwidth: 370GB/s\n") ==
        "t.yaml:2:3: cluster.gpus: missing required key\n");
}

TEST_CASE("bare number where a unit is required", "[topologies]") {
  CHECK(errors_of("cluster:\n  family: nvswitch_node\n  gpus: 8\n  nvlink_bandwidth: 370\n") ==
        "t.yaml:4:21: cluster.nvlink_bandwidth: a unit is required for a bandwidth, e.g. \"900GB/s\", "
        "\"400Gbps\", \"25GiB/s\" (got 370)\n");
}

TEST_CASE("oversubscription below 1", "[topologies]") {
  CHECK(errors_of(R"(cluster:
  family: multi_node
  nodes: 2
  node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: 370GB/s}
  nic_bandwidth: 400Gbps
  fabric: {type: fat_tree, nics_per_leaf: 4, oversubscription: 0.5}
)") == "t.yaml:6:64: cluster.fabric.oversubscription: must be >= 1 (got 0.5)\n");
}

TEST_CASE("unknown preset lists the available ones with a suggestion", "[topologies]") {
  CHECK(errors_of("cluster: h200-hgx8\n") ==
        "t.yaml:1:10: cluster: unknown topology preset (available: a30-pcie-8, a800-2x8-100gbe, a800-nvlink-8, "
        "h100-4x8-400g-rail, h20-hgx-8, h200-hgx-8, nvl72-b200, rtx5090-pcie-8, supernode-384-b200); did you mean 'h200-hgx-8'? (got h200-hgx8)\n");
}

TEST_CASE("explicit topology with an unreachable GPU", "[topologies]") {
  CHECK(errors_of(R"(cluster:
  family: explicit
  nodes:
    - {name: g0, kind: gpu}
    - {name: g1, kind: gpu}
    - {name: g2, kind: gpu}
    - {name: sw, kind: switch}
  links:
    - {a: g0, b: sw, bandwidth: 10GB/s, kind: pcie}
    - {a: g1, b: sw, bandwidth: 10GB/s, kind: pcie}
)") == "t.yaml:2:3: cluster: GPU 'g0' cannot reach GPU 'g2'\n");
}

TEST_CASE("a GPU never forwards traffic, so a chain of GPUs is unreachable end to end", "[topologies]") {
  CHECK(errors_of(R"(cluster:
  family: explicit
  nodes: [{name: g0, kind: gpu}, {name: g1, kind: gpu}, {name: g2, kind: gpu}]
  links:
    - {a: g0, b: g1, bandwidth: 10GB/s, kind: nvlink}
    - {a: g1, b: g2, bandwidth: 10GB/s, kind: nvlink}
)") == "t.yaml:2:3: cluster: GPU 'g0' cannot reach GPU 'g2'\n");
}

// Each tests/topologies/bad/NAME.yaml must produce exactly the lines of NAME.expected (file name "NAME.yaml").
TEST_CASE("catalogue of bad topology files", "[topologies]") {
  const std::filesystem::path dir = std::filesystem::path(kDataDir) / "tests" / "topologies" / "bad";
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  CHECK(files.size() >= 6);
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  for (const auto& f : files) {
    INFO(f.filename().string());
    auto expected_path = f;
    expected_path.replace_extension(".expected");
    REQUIRE(std::filesystem::exists(expected_path));
    CHECK(errors_of(slurp(f), f.filename().string()) == slurp(expected_path));
  }
}
