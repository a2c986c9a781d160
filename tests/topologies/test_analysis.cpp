// describe() and write_dot(): the human-facing outputs carry the figures the analysis computes.
#include <catch2/catch.hpp>
#include <sstream>

#include "test_support.hpp"
#include "topologies/analysis.hpp"
#include "topologies/dot.hpp"

using namespace moesim;
using namespace moesim::topo;
using namespace moesim::topo::test;

TEST_CASE("links_by_kind totals per-direction bandwidth per kind", "[topologies]") {
  const Cluster c = load("cluster: a800-2x8-100gbe\n");
  // 2 nodes x 8 NVLink links at 160 GB/s; 16 GPU-NIC links at 25 GB/s; 2 NIC-switch Ethernet links at 12 GB/s.
  const auto kinds = links_by_kind(c);
  REQUIRE(kinds.size() == 3);
  CHECK(kinds[0].kind == "ethernet");
  CHECK(kinds[0].links == 2);
  CHECK(kinds[0].total_bandwidth_Bps == Approx(24 * GBps));
  CHECK(kinds[1].kind == "nic");
  CHECK(kinds[1].links == 16);
  CHECK(kinds[2].kind == "nvlink");
  CHECK(kinds[2].total_bandwidth_Bps == Approx(16 * 160 * GBps));
}

TEST_CASE("describe reports sizes, bisection with its definition, diameter and bottleneck", "[topologies]") {
  const std::string d = describe(load("cluster: h200-hgx-8\n"), 256.0 * 1024 * 1024);
  CHECK_THAT(d, Catch::Contains("cluster: h200-hgx-8 (family nvswitch_node)"));
  CHECK_THAT(d, Catch::Contains("GPU profile: h200-sxm"));
  CHECK_THAT(d, Catch::Contains("GPUs: 8"));
  // 4 links of 370 GB/s on one side of the cut.
  CHECK_THAT(d, Catch::Contains("bisection bandwidth: 1.48 TB/s (min cut between GPUs 0..3 and 4..7 by id; each "
                                "full-duplex link counted in one direction)"));
  CHECK_THAT(d, Catch::Contains("diameter: 2 hops"));
  CHECK_THAT(d, Catch::Contains("uniform all-to-all bottleneck: n0.gpu0-n0.nvswitch"));
  CHECK_THAT(d, Catch::Contains("busbw <= 370 GB/s"));
}

TEST_CASE("write_dot draws GPUs as boxes, switches as ellipses, bandwidth on edges", "[topologies]") {
  std::ostringstream os;
  write_dot(load("cluster: h200-hgx-8\n"), os);
  const std::string s = os.str();
  CHECK_THAT(s, Catch::StartsWith("graph \"h200-hgx-8\" {"));
  CHECK_THAT(s, Catch::Contains("\"n0.gpu0\" [shape=box"));
  CHECK_THAT(s, Catch::Contains("\"n0.nvswitch\" [shape=ellipse]"));
  CHECK_THAT(s, Catch::Contains("\"n0.gpu7\" -- \"n0.nvswitch\" [label=\"nvlink 370 GB/s\"]"));
  CHECK_THAT(s, Catch::EndsWith("}\n"));
}
