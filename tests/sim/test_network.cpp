// Network model against public NCCL figures (REFERENCE.md) and fast-vs-exact agreement.
// nccl-tests all-to-all: each GPU sends S bytes in total, S/n to every rank (itself included);
// algbw = S / t, busbw = algbw * (n - 1) / n.
#include <catch2/catch.hpp>
#include <cmath>

#include "sim/engine.hpp"
#include "sim/scenario.hpp"
#include "tests/sim/test_support.hpp"
#include "topologies/topology_spec.hpp"

using namespace moesim;

namespace {

const double kMiB = 1048576.0;

// Simulates one all-to-all with bytes[s][d] on `cluster`'s first n GPUs; returns its makespan.
double a2a_time(const topo::Cluster& cluster, int n, const std::vector<double>& bytes, Fidelity f) {
  OpGraph g(n);
  g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  std::vector<int> rank_gpu(n);
  for (int i = 0; i < n; ++i) rank_gpu[i] = i;
  EngineOptions opt;
  opt.fidelity = f;
  return run_engine(cluster.lower(), rank_gpu, g, opt).makespan_s;
}

std::vector<double> uniform_bytes(int n, double per_gpu) {
  std::vector<double> b(static_cast<std::size_t>(n) * n, per_gpu / n);
  for (int i = 0; i < n; ++i) b[static_cast<std::size_t>(i) * n + i] = 0.0;
  return b;
}

// Skewed: destination d receives weight (d + 1)^2 of each source's bytes (rank 7 gets 64x rank 0).
std::vector<double> skewed_bytes(int n, double per_gpu) {
  double w = 0;
  for (int d = 0; d < n; ++d) w += (d + 1.0) * (d + 1.0);
  std::vector<double> b(static_cast<std::size_t>(n) * n, 0.0);
  for (int s = 0; s < n; ++s)
    for (int d = 0; d < n; ++d)
      if (s != d) b[static_cast<std::size_t>(s) * n + d] = per_gpu * (d + 1.0) * (d + 1.0) / w;
  return b;
}

// 2 nodes x 8 GPUs, NVLink 370 GB/s, one 400G NIC per GPU at the 48 GB/s NCCL reaches (REFERENCE.md:
// NDR reaches 46-49 GB/s), single switch.
const char* kTwoNodes = R"(
family: multi_node
nodes: 2
node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: "370GB/s", nvlink_latency: "0.5us"}
nic_bandwidth: "48GB/s"
nic_link_bandwidth: "64GB/s"
nic_latency: "1.5us"
fabric: single_switch
)";

topo::Cluster h200() { return topo::load_cluster_text("h200-hgx-8", "h200.yaml", data_dir()); }
topo::Cluster two_nodes() { return topo::load_cluster_text(kTwoNodes, "two-nodes.yaml", data_dir()); }

}  // namespace

TEST_CASE("8xH200 uniform all-to-all reaches NCCL's ~370 GB/s bus bandwidth", "[network]") {
  const double S = 256 * kMiB;
  const double t = a2a_time(h200(), 8, uniform_bytes(8, S), Fidelity::exact);
  const double busbw = S / t * 7.0 / 8.0;
  // REFERENCE.md: NCCL maintainer, nccl-tests issue 212: ~370 GB/s on one H100/H200 node. Within 15 %.
  CHECK(busbw == Approx(370e9).epsilon(0.15));
}

TEST_CASE("2 nodes x 8 GPUs with 400G per GPU reach ~90 GB/s all-to-all bus bandwidth", "[network]") {
  const double S = 256 * kMiB;
  const double t = a2a_time(two_nodes(), 16, uniform_bytes(16, S), Fidelity::exact);
  const double busbw = S / t * 15.0 / 16.0;
  // REFERENCE.md: "2 nodes x 8 with 400G per GPU -> busbw ~ 90 GB/s" (nccl-tests issue 130). By hand:
  // t ~ max(S*7/16 / 370e9, S*8/16 / 48e9) = S / 96e9, so busbw = 96e9 * 15/16 = 90 GB/s. Within 15 %.
  CHECK(busbw == Approx(90e9).epsilon(0.15));
}

namespace {
// Uneven per pair: w(s, d) = ((37 s + 11 d) mod 17 + 1)^2, normalised per source (many distinct flow sizes,
// so the exact run completes flows at many different times).
std::vector<double> uneven_bytes(int n, double per_gpu) {
  std::vector<double> b(static_cast<std::size_t>(n) * n, 0.0);
  for (int s = 0; s < n; ++s) {
    double w = 0;
    for (int d = 0; d < n; ++d)
      if (d != s) w += std::pow((37 * s + 11 * d) % 17 + 1.0, 2);
    for (int d = 0; d < n; ++d)
      if (d != s) b[static_cast<std::size_t>(s) * n + d] = per_gpu * std::pow((37 * s + 11 * d) % 17 + 1.0, 2) / w;
  }
  return b;
}

void check_fidelities_agree(const std::function<topo::Cluster()>& cluster, int n, bool skewed, bool uneven = false) {
  const double S = 64 * kMiB;
  const auto bytes = uneven ? uneven_bytes(n, S) : skewed ? skewed_bytes(n, S) : uniform_bytes(n, S);
  const double exact = testing::run_in_child([&] { return a2a_time(cluster(), n, bytes, Fidelity::exact); });
  const double fast = testing::run_in_child([&] { return a2a_time(cluster(), n, bytes, Fidelity::fast); });
  INFO("exact " << exact << " s, fast " << fast << " s");
  CHECK(fast == Approx(exact).epsilon(0.02));
}
}  // namespace

TEST_CASE("exact and fast fidelity agree within 2 % on 8 GPUs, uniform", "[network][fidelity]") {
  check_fidelities_agree(h200, 8, false);
}
TEST_CASE("exact and fast fidelity agree within 2 % on 8 GPUs, skewed", "[network][fidelity]") {
  check_fidelities_agree(h200, 8, true);
}
TEST_CASE("exact and fast fidelity agree within 2 % on 2 nodes x 8, uniform", "[network][fidelity]") {
  check_fidelities_agree(two_nodes, 16, false);
}
TEST_CASE("exact and fast fidelity agree within 2 % on 2 nodes x 8, skewed", "[network][fidelity]") {
  check_fidelities_agree(two_nodes, 16, true);
}

// Slow (label `slow`, make test-all): the agreement on a larger case, 64 GPUs (8 nodes x 8, rail-optimized
// 400G), one all-to-all with a different size for every pair.
TEST_CASE("exact and fast fidelity agree within 2 % on 8 nodes x 8, uneven", "[network][fidelity][slow]") {
  const char* text = R"(
family: multi_node
nodes: 8
node: {family: nvswitch_node, gpus: 8, nvlink_bandwidth: "370GB/s", nvlink_latency: "0.5us"}
nic_bandwidth: "48GB/s"
nic_link_bandwidth: "64GB/s"
nic_latency: "1.5us"
fabric: rail_optimized
)";
  check_fidelities_agree([&] { return topo::load_cluster_text(text, "eight-nodes.yaml", data_dir()); }, 64, false,
                         true);
}

// ---- Two-level fabrics written by hand: which fabric channels the engine prunes, and the fast fidelity's
// reduced ptasks. One engine run per test case (DESIGN rule 5; ctest runs each case as its own process).
namespace {

const double kNvlBw = 400e9, kNvlLat = 0.5e-6;  // per GPU, to the node's NVSwitch
const double kNicBw = 50e9, kNicLat = 1e-6;     // per GPU, to the node's leaf switch
// nodes x per_node GPUs (GPU g on node g / per_node). Links: NVLink of GPU g = g, NIC of GPU g = G + g, fabric
// link leaf(n) -> spine = 2G + n (no latency, as the built-in families do). All full duplex.
// Routes: inside a node [NVLink(s) up, NVLink(d) down]; between nodes
// [NIC(s) up, fabric(node s) up, fabric(node d) down, NIC(d) down].
PlatformSpec leaf_spine(int nodes, int per_node, double fabric_bw) {
  const int G = nodes * per_node;
  PlatformSpec p;
  for (int g = 0; g < G; ++g) {
    p.gpu_names.push_back("gpu" + std::to_string(g));
    p.gpu_node.push_back(g / per_node);
  }
  for (int g = 0; g < G; ++g)
    p.links.push_back({"gpu" + std::to_string(g) + "-nvswitch", "nvlink", kNvlBw, kNvlLat, true});
  for (int g = 0; g < G; ++g)
    p.links.push_back({"gpu" + std::to_string(g) + "-leaf", "nic", kNicBw, kNicLat, true});
  for (int n = 0; n < nodes; ++n)
    p.links.push_back({"leaf" + std::to_string(n) + "-spine", "infiniband", fabric_bw, 0.0, true});
  std::vector<std::vector<LinkUse>> routes(static_cast<std::size_t>(G) * G);
  auto u = [](int link) { return static_cast<uint32_t>(link); };
  for (int s = 0; s < G; ++s)
    for (int d = 0; d < G; ++d) {
      if (s == d) continue;
      const int ns = s / per_node, nd = d / per_node;
      auto& route = routes[static_cast<std::size_t>(s) * G + d];
      if (ns == nd) route = {{u(s), true}, {u(d), false}};
      else route = {{u(G + s), true}, {u(2 * G + ns), true}, {u(2 * G + nd), false}, {u(G + d), false}};
    }
  p.set_routes(routes);
  return p;
}

struct A2a {
  Trace trace;
  std::vector<OpId> ops;
};

A2a run_a2a(const PlatformSpec& p, const std::vector<double>& bytes, Fidelity f) {
  const int n = static_cast<int>(p.gpu_count());
  OpGraph g(n);
  A2a r;
  r.ops = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  std::vector<int> rank_gpu(n);
  for (int i = 0; i < n; ++i) rank_gpu[i] = i;
  EngineOptions opt;
  opt.fidelity = f;
  r.trace = run_engine(p, rank_gpu, g, opt);
  return r;
}

std::vector<double> all_pairs(int n, double m) {
  std::vector<double> b(static_cast<std::size_t>(n) * n, m);
  for (int i = 0; i < n; ++i) b[static_cast<std::size_t>(i) * n + i] = 0.0;
  return b;
}

}  // namespace

TEST_CASE("a non-blocking fabric's links are pruned and the all-to-all keeps its closed form",
          "[network][pruning]") {
  // 2 nodes x 2 GPUs; fabric link 100 GB/s = the two 50 GB/s NICs below it. Uniform, m = 3e7 bytes per pair.
  // Channels (directed links) that carry the same routes merge: NVLink(0) up and NVLink(1) down carry only
  // 0 -> 1, so each node's 4 NVLink channels form 2 groups; fabric(0) up and fabric(1) down carry exactly
  // {0,1} -> {2,3}, and fabric(1) up with fabric(0) down carry {2,3} -> {0,1}: 2 groups; the 8 NIC channels
  // carry distinct route sets. 4 + 2 + 8 = 14 groups. Each fabric group's routes start at the two NICs of one
  // node (50 + 50 = 100 GB/s <= 100 GB/s), so both are pruned: 2 pruned, 12 SimGrid links.
  // Time (CM02): every NIC up (down) channel carries 2 flows, 25 GB/s each (the fabric would carry
  // 4 x 25 = 100 GB/s, not binding). Inter-node flows: 2 x 1 us + 3e7 / 25e9 = 2e-6 + 1.2e-3 = 1.202e-3 s;
  // NVLink flows end at 2 x 0.5 us + 3e7 / 400e9 = 76 us. Every rank has inter-node flows: all end at 1.202 ms.
  const A2a r = run_a2a(leaf_spine(2, 2, 2 * kNicBw), all_pairs(4, 3e7), Fidelity::exact);
  CHECK(r.trace.simgrid_links_pruned == 2);
  CHECK(r.trace.simgrid_links == 12);
  for (OpId id : r.ops) CHECK(r.trace.end_s[id] == Approx(2e-6 + 1.2e-3).epsilon(1e-9));
  CHECK(r.trace.makespan_s == Approx(2e-6 + 1.2e-3).epsilon(1e-9));
}

TEST_CASE("an oversubscribed fabric link is kept and limits the all-to-all", "[network][pruning]") {
  // As above with the fabric link at 60 GB/s < 100 GB/s of NICs below it: neither fabric group is pruned
  // (0 pruned, 14 links). Each fabric group carries the 4 flows of one direction: 60 / 4 = 15 GB/s each, below
  // the NICs' 25 GB/s share. Inter-node flows: 2e-6 + 3e7 / 15e9 = 2e-6 + 2e-3 = 2.002e-3 s (a pruned fabric
  // would give the 1.202 ms of the non-blocking case).
  const A2a r = run_a2a(leaf_spine(2, 2, 60e9), all_pairs(4, 3e7), Fidelity::exact);
  CHECK(r.trace.simgrid_links_pruned == 0);
  CHECK(r.trace.simgrid_links == 14);
  for (OpId id : r.ops) CHECK(r.trace.end_s[id] == Approx(2e-6 + 2e-3).epsilon(1e-9));
  CHECK(r.trace.makespan_s == Approx(2e-6 + 2e-3).epsilon(1e-9));
}

TEST_CASE("fast fidelity on an oversubscribed fabric keeps every pair and the fabric bound",
          "[network][pruning][fast]") {
  // Same platform and bytes as the case above, one L07 ptask. The fabric channel stays in the routes
  // (3 channels: NIC up, fabric group, NIC down), so no inter-node block has the two-channel shape and all
  // 8 inter-node pairs stay; inside a node each pair is its own block: 4. ptask_pairs = 12 = the pairs in.
  // Time = longest route latency + max over channels of bytes / bandwidth:
  //   fabric group: 4 x 3e7 = 1.2e8 B / 60e9 = 2e-3 s; NIC: 2 x 3e7 / 50e9 = 1.2e-3 s; NVLink 3e7 / 400e9.
  //   2e-6 + 2e-3 = 2.002e-3 s.
  const A2a r = run_a2a(leaf_spine(2, 2, 60e9), all_pairs(4, 3e7), Fidelity::fast);
  CHECK(r.trace.simgrid_links_pruned == 0);
  CHECK(r.trace.ptask_pairs == 12);
  CHECK(r.trace.makespan_s == Approx(2e-6 + 2e-3).epsilon(1e-9));
}

TEST_CASE("fast fidelity reduces a skewed multi-node all-to-all to fewer pairs with the same makespan",
          "[network][fidelity][fast]") {
  // 3 nodes x 2 GPUs (ranks 0,1 | 2,3 | 4,5), non-blocking fabric (100 GB/s over two 50 GB/s NICs: the 6
  // fabric channels carry distinct route sets and are all pruned). Skewed: s -> d carries (d + 1)^2 MB,
  // so rank 5 receives 36 MB from every other rank. 30 pairs with bytes.
  const int n = 6;
  std::vector<double> bytes(n * n, 0.0);
  for (int s = 0; s < n; ++s)
    for (int d = 0; d < n; ++d)
      if (s != d) bytes[s * n + d] = (d + 1.0) * (d + 1.0) * 1e6;
  const A2a r = run_a2a(leaf_spine(3, 2, 2 * kNicBw), bytes, Fidelity::fast);
  CHECK(r.trace.simgrid_links_pruned == 6);
  // Pairs of the reduced matrix (routes between nodes are [NIC(s) up, NIC(d) down]; all 2 us, so each
  // block's corner is its first pair). In MB:
  //   {0,1} -> {2,3,4,5}: rows 9+16+25+36 = 86, 86; columns 2 x (9, 16, 25, 36) = 18, 32, 50, 72;
  //     partial rows 86, partial columns 18, 50, 100: no tie, 2 + 4 - 1 = 5 pairs
  //   {2,3,4,5} -> {0,1}: rows 1 + 4 = 5 each (partial 5, 10, 15); columns 4 x 1 = 4, 4 x 4 = 16: 5 pairs
  //   {2,3} -> {4,5}: rows 25 + 36 = 61 each; columns 50, 72: 61 != 50, 3 pairs
  //   {4,5} -> {2,3}: rows 9 + 16 = 25 each; columns 18, 32: 25 != 18, 3 pairs
  //   inside the nodes: 0<->1, 2<->3, 4<->5, one pair each way: 6 (NVLink routes are one merged channel)
  // 5 + 5 + 3 + 3 + 6 = 22 < 30.
  CHECK(r.trace.ptask_pairs == 22);
  // Makespan = longest latency (inter-node: 2 x 1 us) + max over channels of bytes / bandwidth:
  //   NIC down of rank 5: 4 remote senders x 36 MB = 144 MB / 50 GB/s = 2.88e-3 s   <- the largest
  //   NIC up of rank 0 or 1: 86 MB / 50 GB/s = 1.72e-3 s; fabric into node 2 (pruned): 4 x 61 MB / 100 GB/s
  //   = 2.44e-3 s; NVLink at most 36 MB / 400 GB/s = 90 us.
  // 2e-6 + 2.88e-3 = 2.882e-3 s, the same for every rank (one ptask).
  CHECK(r.trace.makespan_s == Approx(2e-6 + 2.88e-3).epsilon(1e-9));
  for (OpId id : r.ops) CHECK(r.trace.end_s[id] == Approx(2e-6 + 2.88e-3).epsilon(1e-9));
}
