// reduce_all_to_all (sim/ptask_reduction.hpp): the fast fidelity's all-to-all byte matrix rewritten with fewer
// GPU pairs. What must hold for SimGrid's L07 ptask to be unchanged: the same bytes on every channel, the same
// longest route latency among pairs with bytes; and the output is the positive pairs, sorted, off-diagonal.
// No SimGrid here: the routes are written by hand as channel-id lists.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <vector>

#include "sim/ptask_reduction.hpp"

using namespace moesim;

namespace {

using RouteFn = std::function<std::vector<uint32_t>(int, int)>;

// CSR routes from route(s, d) for s != d (the diagonal stays empty, as the engine builds it).
RankRoutes make_routes(int ranks, const RouteFn& route, std::vector<double> channel_latency_s) {
  RankRoutes r;
  r.ranks = ranks;
  r.off.push_back(0);
  for (int s = 0; s < ranks; ++s)
    for (int d = 0; d < ranks; ++d) {
      if (s != d)
        for (uint32_t c : route(s, d)) r.ch.push_back(c);
      r.off.push_back(static_cast<uint32_t>(r.ch.size()));
    }
  r.channel_latency_s = std::move(channel_latency_s);
  return r;
}

// The usual two-level shape, R ranks: rank r has an egress channel E(r) = r and an ingress channel
// I(r) = R + r for traffic between nodes, and NVLink-like up/down channels U(r) = 2R + r, D(r) = 3R + r
// inside its node. Route s -> d: [E(s), I(d)] between nodes, [U(s), D(d)] inside a node.
uint32_t egress(int r) { return static_cast<uint32_t>(r); }
uint32_t ingress(int R, int r) { return static_cast<uint32_t>(R + r); }
uint32_t nvl_up(int R, int r) { return static_cast<uint32_t>(2 * R + r); }
uint32_t nvl_down(int R, int r) { return static_cast<uint32_t>(3 * R + r); }

RankRoutes two_level(const std::vector<int>& rank_node, std::vector<double> latency) {
  const int R = static_cast<int>(rank_node.size());
  latency.resize(static_cast<std::size_t>(4 * R), 0.0);
  return make_routes(
      R,
      [&](int s, int d) {
        if (rank_node[s] == rank_node[d]) return std::vector<uint32_t>{nvl_up(R, s), nvl_down(R, d)};
        return std::vector<uint32_t>{egress(s), ingress(R, d)};
      },
      std::move(latency));
}

// Every channel 1 us unless set otherwise (4R channels for two_level).
std::vector<double> latencies(int channels, std::vector<std::pair<uint32_t, double>> overrides = {}) {
  std::vector<double> l(static_cast<std::size_t>(channels), 1e-6);
  for (auto [c, v] : overrides) l[c] = v;
  return l;
}

// Bytes each channel carries: the sum over pairs whose route uses it.
std::vector<double> channel_bytes(const std::vector<PairBytes>& pairs, const RankRoutes& routes) {
  std::vector<double> load(routes.channel_latency_s.size(), 0.0);
  for (const PairBytes& p : pairs)
    for (const uint32_t* c = routes.begin(p.src, p.dst); c != routes.end(p.src, p.dst); ++c) load[*c] += p.bytes;
  return load;
}

// The input matrix as pairs: positive, off-diagonal, in (src, dst) order.
std::vector<PairBytes> positive_pairs(const std::vector<double>& bytes, int R) {
  std::vector<PairBytes> out;
  for (int s = 0; s < R; ++s)
    for (int d = 0; d < R; ++d)
      if (s != d && bytes[static_cast<std::size_t>(s) * R + d] > 0)
        out.push_back({s, d, bytes[static_cast<std::size_t>(s) * R + d]});
  return out;
}

double max_latency(const std::vector<PairBytes>& pairs, const RankRoutes& routes) {
  double m = 0;
  for (const PairBytes& p : pairs) m = std::max(m, routes.latency_s(p.src, p.dst));
  return m;
}

// The invariants of the header comment: (a) the same bytes on every channel, (c) the same longest latency,
// (d) sorted by (src, dst), strictly, with bytes > 0 and no src == dst.
void check_equivalent(const std::vector<double>& bytes, const std::vector<PairBytes>& out, const RankRoutes& routes) {
  const std::vector<PairBytes> in = positive_pairs(bytes, routes.ranks);
  const std::vector<double> want = channel_bytes(in, routes), got = channel_bytes(out, routes);
  REQUIRE(got.size() == want.size());
  for (std::size_t c = 0; c < want.size(); ++c) {
    INFO("channel " << c);
    CHECK(got[c] == Approx(want[c]).epsilon(1e-9).margin(0));
  }
  CHECK(max_latency(out, routes) == max_latency(in, routes));
  for (std::size_t i = 0; i < out.size(); ++i) {
    INFO("pair " << out[i].src << " -> " << out[i].dst);
    CHECK(out[i].bytes > 0);
    CHECK(out[i].src != out[i].dst);
    if (i > 0) CHECK(std::pair(out[i - 1].src, out[i - 1].dst) < std::pair(out[i].src, out[i].dst));
  }
}

bool has_pair(const std::vector<PairBytes>& v, int s, int d) {
  return std::any_of(v.begin(), v.end(), [&](const PairBytes& p) { return p.src == s && p.dst == d; });
}

}  // namespace

TEST_CASE("ptask reduction: hand-worked 2 nodes x 2 ranks", "[ptask_reduction]") {
  // Ranks 0, 1 on node 0; 2, 3 on node 1. Channels as in two_level (R = 4): E(r) = r, I(r) = 4 + r,
  // U(r) = 8 + r, D(r) = 12 + r. Latencies (us): E(0) = E(1) = E(2) = 1, E(3) = 5; I(0) = 1, I(1) = 3,
  // I(2) = 1, I(3) = 2; NVLink channels 0.5. The diagonal (100) must be ignored.
  //        to 0   1   2   3
  //   0:    100   5   3   1
  //   1:      2 100   4   6
  //   2:      7   1 100   2
  //   3:      2   8   3 100
  const std::vector<double> bytes = {100, 5, 3, 1, 2, 100, 4, 6, 7, 1, 100, 2, 2, 8, 3, 100};
  const std::vector<int> node = {0, 0, 1, 1};
  std::vector<double> lat(16, 0.5e-6);
  for (int c : {0, 1, 2, 4, 6}) lat[c] = 1e-6;
  lat[3] = 5e-6;  // E(3)
  lat[5] = 3e-6;  // I(1)
  lat[7] = 2e-6;  // I(3)
  const RankRoutes routes = two_level(node, lat);
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  // Inside a node every rank is its own group; with two ranks a node's blocks are single pairs, unchanged:
  // 0->1 = 5, 1->0 = 2, 2->3 = 2, 3->2 = 3.
  //
  // Block node 0 -> node 1 (sources 0, 1; destinations 2, 3). Latencies E(s) + I(d): 0->2 = 2, 0->3 = 3,
  // 1->2 = 2, 1->3 = 3 us. The longest, 3 us, is shared by 0->3 and 1->3; the first in (src, dst) order wins:
  // 0->3 goes to the corner. Rows (0, 1) = (3+1, 4+6) = (4, 10); columns, 3 first: (3, 2) = (1+6, 3+4) = (7, 7).
  //   cell (0, 3) = min(4, 7) = 4: row 0 done, column 3 has 3 left
  //   cell (1, 3) = min(10, 3) = 3: column 3 done, row 1 has 7 left
  //   cell (1, 2) = min(7, 7) = 7: both done.
  // (Had 1->3 won the corner, the cells would be 1->3 = 7, 1->2 = 3, 0->2 = 4.)
  //
  // Block node 1 -> node 0 (sources 2, 3; destinations 0, 1). Latencies: 2->0 = 1+1 = 2, 2->1 = 1+3 = 4,
  // 3->0 = 5+1 = 6, 3->1 = 5+3 = 8 us: 3->1 is the corner. Rows, 3 first: (3, 2) = (2+8, 7+1) = (10, 8);
  // columns, 1 first: (1, 0) = (1+8, 7+2) = (9, 9).
  //   cell (3, 1) = min(10, 9) = 9: column 1 done, row 3 has 1 left
  //   cell (3, 0) = min(1, 9) = 1: row 3 done, column 0 has 8 left
  //   cell (2, 0) = min(8, 8) = 8: both done.
  // 12 off-diagonal pairs in, 10 out. Integer bytes: every sum is exact, so the comparison is exact.
  const std::vector<PairBytes> want = {{0, 1, 5}, {0, 3, 4}, {1, 0, 2}, {1, 2, 7}, {1, 3, 3},
                                       {2, 0, 8}, {2, 3, 2}, {3, 0, 1}, {3, 1, 9}, {3, 2, 3}};
  REQUIRE(out.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("pair " << i);
    CHECK(out[i].src == want[i].src);
    CHECK(out[i].dst == want[i].dst);
    CHECK(out[i].bytes == want[i].bytes);
  }
  check_equivalent(bytes, out, routes);
}

TEST_CASE("ptask reduction: dense 2 nodes x 4 ranks keeps channel bytes and the longest latency",
          "[ptask_reduction]") {
  // Ranks 0-3 on node 0, 4-7 on node 1; bytes(s, d) = 1 + (3 s + 5 d) mod 11 off the diagonal (all > 0):
  const std::vector<double> bytes = {
      0,  6,  11, 5,  10, 4,  9,  3,   //
      4,  0,  3,  8,  2,  7,  1,  6,   //
      7,  1,  0,  11, 5,  10, 4,  9,   //
      10, 4,  9,  0,  8,  2,  7,  1,   //
      2,  7,  1,  6,  0,  5,  10, 4,   //
      5,  10, 4,  9,  3,  0,  2,  7,   //
      8,  2,  7,  1,  6,  11, 0,  10,  //
      11, 5,  10, 4,  9,  3,  8,  0,   //
  };
  const std::vector<int> node = {0, 0, 0, 0, 1, 1, 1, 1};
  // All channels 1 us except E(1) = 3 us and I(6) = 4 us: 1 -> 6 (1 byte) is the only pair at 7 us.
  const RankRoutes routes = two_level(node, latencies(32, {{egress(1), 3e-6}, {ingress(8, 6), 4e-6}}));
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  check_equivalent(bytes, out, routes);
  CHECK(has_pair(out, 1, 6));
  CHECK(max_latency(out, routes) == Approx(7e-6).epsilon(1e-12));
  // Count by the north-west-corner rule: a block with all row and column sums positive gets rows + cols - 1
  // cells, one fewer for every partial row sum equal to a partial column sum (both run out at once).
  // Two nodes are two halves (the all-groups corner needs three or more groups):
  //   node 0 -> 1, corner 1 -> 6: rows in order (1, 0, 2, 3) = (16, 26, 28, 18), partial 16, 42, 70;
  //     columns (6, 4, 5, 7) = (21, 25, 23, 19), partial 21, 46, 69: no tie, 4 + 4 - 1 = 7 cells.
  //   node 1 -> 0, all 2 us, corner 4 -> 0: rows (4..7) = (16, 28, 18, 30), partial 16, 44, 62;
  //     columns (0..3) = (26, 24, 22, 20), partial 26, 50, 72: no tie, 7 cells.
  // Inside a node each rank is its own group: four groups, so one corner over the node, rows in rank order and
  // columns rotated by two ranks (NVLink channels all 1 us: every cell has the longest latency).
  //   node 0: rows (0..3) = (6+11+5, 4+3+8, 7+1+11, 10+4+9) = (22, 15, 19, 23), partial 22, 37, 56;
  //     columns (2, 3, 0, 1) = (11+3+9, 5+8+11, 4+7+10, 6+1+4) = (23, 24, 21, 11), partial 23, 47, 68.
  //     No tie: 7 cells, 0->2, 1->2, 1->3, 2->3, 2->0, 3->0, 3->1 (none on the diagonal).
  //   node 1: rows (4..7) = (5+10+4, 3+2+7, 6+11+10, 9+3+8) = (19, 12, 27, 20), partial 19, 31, 58;
  //     columns (6, 7, 4, 5) = (10+2+8, 4+7+10, 3+6+9, 5+11+3) = (20, 21, 18, 19), partial 20, 41, 59.
  //     No tie: 7 cells, 4->6, 5->6, 5->7, 6->7, 6->4, 7->4, 7->5.
  // 7 + 7 + 7 + 7 = 28 < 56 pairs in.
  CHECK(positive_pairs(bytes, 8).size() == 56);
  CHECK(out.size() == 28);
  for (auto [s, d] : {std::pair{0, 2}, {1, 2}, {1, 3}, {2, 3}, {2, 0}, {3, 0}, {3, 1}, {4, 6}, {5, 6}, {5, 7},
                      {6, 7}, {6, 4}, {7, 4}, {7, 5}})
    CHECK(has_pair(out, s, d));
}

TEST_CASE("ptask reduction: 3 nodes with interleaved ranks, recursive halves", "[ptask_reduction]") {
  // rank_node = {0, 1, 2, 0, 1, 2}: node 0 = {0, 3}, node 1 = {1, 4}, node 2 = {2, 5} (ranks need not be
  // contiguous per node). bytes(s, d) = 1 + (5 s + 3 d) mod 11 off the diagonal. Equal latencies.
  const std::vector<double> bytes = {
      0,  4, 7,  10, 2, 5,   //
      6,  0, 1,  4,  7, 10,  //
      11, 3, 0,  9,  1, 4,   //
      5,  8, 11, 0,  6, 9,   //
      10, 2, 5,  8,  0, 3,   //
      4,  7, 10, 2,  5, 0,   //
  };
  const std::vector<int> node = {0, 1, 2, 0, 1, 2};
  const RankRoutes routes = two_level(node, latencies(24));
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  check_equivalent(bytes, out, routes);
  // Three nodes: one north-west corner over all of them. Rows node by node (0, 3, 1, 4, 2, 5), columns rotated
  // by one node (1, 4, 2, 5, 0, 3); sums over ranks of other nodes only:
  //   rows    0: 4+7+2+5 = 18, 3: 8+11+6+9 = 34, 1: 6+1+4+10 = 21, 4: 10+5+8+3 = 26, 2: 11+3+9+1 = 24,
  //           5: 4+7+2+5 = 18; partial 18, 52, 73, 99, 123 (total 141)
  //   columns 1: 4+3+8+7 = 22, 4: 2+1+6+5 = 14, 2: 7+1+11+5 = 24, 5: 5+10+9+3 = 27, 0: 6+11+10+4 = 31,
  //           3: 4+9+8+2 = 23; partial 22, 36, 60, 87, 118 (total 141)
  // No tie: 6 + 6 - 1 = 11 cells, walking the merged partial sums:
  //   0->1 = 18, 3->1 = 4, 3->4 = 14, 3->2 = 16, 1->2 = 8, 1->5 = 13, 4->5 = 14, 4->0 = 12, 2->0 = 19,
  //   2->3 = 5, 5->3 = 18 (each joins two different nodes; equal latencies).
  // Inside each node (two ranks, two groups: halves): one pair each way, 6. Total 11 + 6 = 17 < 30.
  CHECK(out.size() == 17);
  const std::vector<PairBytes> between = {{0, 1, 18}, {1, 2, 8},  {1, 5, 13}, {2, 0, 19}, {2, 3, 5}, {3, 1, 4},
                                          {3, 2, 16}, {3, 4, 14}, {4, 0, 12}, {4, 5, 14}, {5, 3, 18}};
  std::vector<PairBytes> got;
  for (const PairBytes& p : out)
    if (node[p.src] != node[p.dst]) got.push_back(p);
  REQUIRE(got.size() == between.size());
  for (std::size_t i = 0; i < between.size(); ++i) {
    INFO("pair " << i);
    CHECK(got[i].src == between[i].src);
    CHECK(got[i].dst == between[i].dst);
    CHECK(got[i].bytes == between[i].bytes);
  }
}

TEST_CASE("ptask reduction: an all-groups corner that would join a rank to itself falls back to halves",
          "[ptask_reduction]") {
  // One node, three ranks (three groups of one). Bytes 0->1 = 1, 1->0 = 2, 2->1 = 3, nothing else.
  // Rows (0, 1, 2) = (1, 2, 3); columns rotated by one rank (1, 2, 0) = (1+3, 0, 2) -> positive (1, 0) = (4, 2).
  // The corner puts 1 on 0->1, then row 1 would continue in column 1: cell 1->1, not a transfer. So the
  // halves are used: {0} | {1, 2}, then {1} | {2}; every block has one pair, and the output is the input.
  const std::vector<int> node = {0, 0, 0};
  const RankRoutes routes = two_level(node, latencies(12));
  std::vector<double> bytes(9, 0.0);
  bytes[0 * 3 + 1] = 1;
  bytes[1 * 3 + 0] = 2;
  bytes[2 * 3 + 1] = 3;
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  check_equivalent(bytes, out, routes);
  const std::vector<PairBytes> in = positive_pairs(bytes, 3);
  REQUIRE(out.size() == in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    CHECK(out[i].src == in[i].src);
    CHECK(out[i].dst == in[i].dst);
    CHECK(out[i].bytes == in[i].bytes);
  }
}

TEST_CASE("ptask reduction: an all-groups corner that misses the longest route falls back to halves",
          "[ptask_reduction]") {
  // Three nodes of one rank each, 1 byte between every pair. Latencies: E(0) = 1 us, I(2) = 1 us, all other
  // channels 0, so 0->2 (2 us) is the longest route and the only one that long. Rows (0, 1, 2) = (2, 2, 2),
  // columns rotated by one node (1, 2, 0) = (2, 2, 2): the corner gives 0->1, 1->2, 2->0 (1, 1 and 0 us),
  // which would shorten the task's latency from 2 us to 1 us. So the halves are used: {0} | {1, 2} (corner
  // 0->2, then 0->1), {1, 2} -> {0} (one column: 1->0, 2->0), {1} | {2}: the output is the input.
  const std::vector<int> node = {0, 1, 2};
  const RankRoutes routes = two_level(node, latencies(12, {{egress(0), 1e-6}, {ingress(3, 2), 1e-6}, {egress(1), 0},
                                                           {egress(2), 0}, {ingress(3, 0), 0}, {ingress(3, 1), 0}}));
  std::vector<double> bytes(9, 1.0);
  for (int r = 0; r < 3; ++r) bytes[static_cast<std::size_t>(r) * 3 + r] = 0;
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  check_equivalent(bytes, out, routes);
  CHECK(max_latency(out, routes) == Approx(2e-6));
  CHECK(out.size() == 6);
}

TEST_CASE("ptask reduction: a block whose routes cross a middle channel is kept as it is", "[ptask_reduction]") {
  // 2 nodes x 2 ranks (0, 1 | 2, 3). Node 0 -> node 1 goes through a shared channel M = 16 in the middle,
  // [E(s), M, I(d)]: that block must come back pair for pair. Node 1 -> node 0 is the two-channel shape and is
  // reduced: rows (2, 3) = (1+2, 3+4) = (3, 7), columns (0, 1) = (1+3, 2+4) = (4, 6), corner 2 -> 0 (first of
  // equal latencies): cells 2->0 = 3, 3->0 = 1, 3->1 = 6.
  const std::vector<double> bytes = {0, 9, 5, 6, 8, 0, 7, 4, 1, 2, 0, 3, 3, 4, 5, 0};
  const std::vector<int> node = {0, 0, 1, 1};
  const RankRoutes routes = make_routes(
      4,
      [&](int s, int d) {
        if (node[s] == node[d]) return std::vector<uint32_t>{nvl_up(4, s), nvl_down(4, d)};
        if (node[s] == 0) return std::vector<uint32_t>{egress(s), 16, ingress(4, d)};
        return std::vector<uint32_t>{egress(s), ingress(4, d)};
      },
      latencies(17));
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  check_equivalent(bytes, out, routes);
  std::vector<PairBytes> block01, block10;
  for (const PairBytes& p : out)
    if (node[p.src] != node[p.dst]) (node[p.src] == 0 ? block01 : block10).push_back(p);
  // Input node 0 -> 1: 0->2 = 5, 0->3 = 6, 1->2 = 7, 1->3 = 4.
  const std::vector<PairBytes> kept = {{0, 2, 5}, {0, 3, 6}, {1, 2, 7}, {1, 3, 4}};
  const std::vector<PairBytes> reduced = {{2, 0, 3}, {3, 0, 1}, {3, 1, 6}};
  for (auto [got, want] : {std::pair{&block01, &kept}, std::pair{&block10, &reduced}}) {
    REQUIRE(got->size() == want->size());
    for (std::size_t i = 0; i < want->size(); ++i) {
      CHECK((*got)[i].src == (*want)[i].src);
      CHECK((*got)[i].dst == (*want)[i].dst);
      CHECK((*got)[i].bytes == (*want)[i].bytes);
    }
  }
}

TEST_CASE("ptask reduction: a block whose sender channel depends on the destination is kept", "[ptask_reduction]") {
  // Rail-style two-channel routes: rank s leaves through X(s, d mod 2) = 16 + 2 s + d mod 2, so a source has no
  // single first channel F(s) for the block; nor does a destination have one last channel when the last channel
  // depends on the source, Y(d, s mod 2) = 24 + 2 d + s mod 2. Both shapes must keep every pair.
  const std::vector<double> bytes = {0, 9, 5, 6, 8, 0, 7, 4, 1, 2, 0, 3, 3, 4, 5, 0};
  const std::vector<int> node = {0, 0, 1, 1};
  for (bool by_source : {false, true}) {
    INFO((by_source ? "last channel depends on the source" : "first channel depends on the destination"));
    const RankRoutes routes = make_routes(
        4,
        [&](int s, int d) {
          if (node[s] == node[d]) return std::vector<uint32_t>{nvl_up(4, s), nvl_down(4, d)};
          if (by_source) return std::vector<uint32_t>{egress(s), static_cast<uint32_t>(24 + 2 * d + s % 2)};
          return std::vector<uint32_t>{static_cast<uint32_t>(16 + 2 * s + d % 2), ingress(4, d)};
        },
        latencies(32));
    const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
    const std::vector<PairBytes> in = positive_pairs(bytes, 4);
    REQUIRE(out.size() == in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      CHECK(out[i].src == in[i].src);
      CHECK(out[i].dst == in[i].dst);
      CHECK(out[i].bytes == in[i].bytes);
    }
  }
}

TEST_CASE("ptask reduction: sparse blocks and an empty matrix", "[ptask_reduction]") {
  // 2 nodes x 2 ranks. Only 1 -> 2 crosses nodes (one cell stays one cell); zero and negative entries and the
  // diagonal never become pairs. Then an all-zero matrix reduces to nothing.
  const std::vector<int> node = {0, 0, 1, 1};
  const RankRoutes routes = two_level(node, latencies(16));
  std::vector<double> bytes(16, 0.0);
  bytes[1 * 4 + 2] = 42;
  bytes[0 * 4 + 0] = 7;   // diagonal
  bytes[3 * 4 + 0] = -1;  // not a transfer
  const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
  REQUIRE(out.size() == 1);
  CHECK(out[0].src == 1);
  CHECK(out[0].dst == 2);
  CHECK(out[0].bytes == 42);
  CHECK(reduce_all_to_all(std::vector<double>(16, 0.0), node, routes).empty());
}

TEST_CASE("ptask reduction: sizes that do not match the rank count throw", "[ptask_reduction][bad]") {
  const std::vector<int> node = {0, 0, 1, 1};
  const RankRoutes routes = two_level(node, latencies(16));
  const std::vector<double> bytes(16, 1.0);
  CHECK_NOTHROW(reduce_all_to_all(bytes, node, routes));
  CHECK_THROWS_AS(reduce_all_to_all(std::vector<double>(15, 1.0), node, routes), std::invalid_argument);
  CHECK_THROWS_AS(reduce_all_to_all(bytes, {0, 0, 1}, routes), std::invalid_argument);
  RankRoutes short_off = routes;
  short_off.off.pop_back();
  CHECK_THROWS_AS(reduce_all_to_all(bytes, node, short_off), std::invalid_argument);
}

TEST_CASE("ptask reduction: a block whose new pairs could have a longer route is kept", "[ptask_reduction]") {
  // Node 0 = {a=0, b=1, x=2}, node 1 = {c=3, d=4}. Only b's egress and c's ingress have 10 us latency, the
  // others 0. Input a->c, x->c, b->d (1 byte each): the longest route is 10 us (a->c, x->c or b->d).
  // The north-west corner of the block node0 -> node1 would pair b with c (20 us), so that block must be
  // kept as it is: the output is exactly the input.
  const std::vector<int> node = {0, 0, 0, 1, 1};
  const int R = 5;
  std::vector<double> lat(4 * R, 0.0);
  lat[egress(1)] = 10e-6;
  lat[ingress(R, 3)] = 10e-6;
  const RankRoutes routes = two_level(node, lat);
  std::vector<double> bytes(R * R, 0.0);
  bytes[0 * R + 3] = 1;
  bytes[2 * R + 3] = 1;
  bytes[1 * R + 4] = 1;
  const auto out = reduce_all_to_all(bytes, node, routes);
  REQUIRE(out.size() == 3);
  CHECK(max_latency(out, routes) == Approx(10e-6));
  const auto in = positive_pairs(bytes, R);
  for (std::size_t i = 0; i < out.size(); ++i) {
    CHECK(out[i].src == in[i].src);
    CHECK(out[i].dst == in[i].dst);
    CHECK(out[i].bytes == in[i].bytes);
  }
}

TEST_CASE("ptask reduction: random matrices keep channel bytes and the longest latency", "[ptask_reduction]") {
  // 300 random cases: 1-6 nodes of 1-4 ranks (ranks of a node not necessarily contiguous), bytes with zeros
  // and a few heavy receivers, channel latencies drawn from {0, 1, 2} us so that both the all-nodes corner and
  // its fallbacks (a cell inside a node, a shorter longest route) occur. Whatever path is taken, the output
  // must carry the same bytes on every channel, keep the longest latency, and list sorted positive pairs.
  uint64_t state = 12345;
  auto next = [&state]() {  // 64-bit LCG (Knuth MMIX); the high bits are used
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  int reduced_cases = 0;
  for (int c = 0; c < 300; ++c) {
    const int nodes = 1 + static_cast<int>(next() % 6), per_node = 1 + static_cast<int>(next() % 4);
    const int R = nodes * per_node;
    std::vector<int> node(static_cast<std::size_t>(R));
    for (int r = 0; r < R; ++r) node[static_cast<std::size_t>(r)] = r % nodes;
    std::vector<double> lat(static_cast<std::size_t>(4 * R));
    for (double& l : lat) l = static_cast<double>(next() % 3) * 1e-6;
    const RankRoutes routes = two_level(node, lat);
    std::vector<double> bytes(static_cast<std::size_t>(R) * R, 0.0);
    const int heavy = static_cast<int>(next() % static_cast<uint32_t>(R));
    for (int s = 0; s < R; ++s)
      for (int d = 0; d < R; ++d) {
        if (s == d || next() % 4 == 0) continue;  // about a quarter of the pairs send nothing
        bytes[static_cast<std::size_t>(s) * R + d] = (1 + next() % 1000) * (d == heavy ? 50.0 : 1.0);
      }
    INFO("case " << c << ": " << nodes << " nodes x " << per_node << " ranks");
    const std::vector<PairBytes> out = reduce_all_to_all(bytes, node, routes);
    check_equivalent(bytes, out, routes);
    if (out.size() < positive_pairs(bytes, R).size()) ++reduced_cases;
  }
  CHECK(reduced_cases > 100);  // the reduction did act, not only the keep-as-is paths
}
