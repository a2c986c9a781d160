// Smaller parallel tasks for the `fast` fidelity: an all-to-all's byte matrix rewritten with far fewer GPU
// pairs but exactly the same bytes on every link and the same longest route latency.
//
// Why this is exact for SimGrid's L07 model: a parallel task is one max-min variable whose weight on a link
// is the sum of the bytes of the pairs routed over it; L07 waits the longest route latency among the pairs
// with bytes before the task progresses. Two byte matrices with equal per-link sums and an equal longest
// latency therefore give the same task (same rate, same finish time, same sharing with other activities).
// Only the number of (pair, link) entries SimGrid expands and routes it looks up changes: it was quadratic
// in the GPUs, and is now about 4 x GPUs with the all-nodes corner (GPUs x log2(nodes) with halves).
//
// How: first, one north-west corner over all nodes at once (three or more nodes): when every pair of ranks
// in different nodes has the two-channel shape [F(s), G(d)] (the sender's egress, the receiver's ingress; F
// depends only on s, G only on d), only each rank's row sum (bytes it sends to other nodes) and column sum
// (bytes it receives from them) matter. Rows are the ranks node by node, columns the ranks with the nodes
// rotated by half, and the north-west-corner rule gives a matrix with those sums and at most
// rows + cols - 1 cells. It is used only when no cell joins two ranks of one node, no new pair could have a
// longer route than the longest pair (largest egress + largest ingress latency = the longest pair), and some
// cell has that longest latency. Otherwise nodes are split in halves recursively; every pair of halves
// (X, Y) is a block of source ranks in X and destination ranks in Y, reduced the same way when its routes
// have the two-channel shape (the block's longest-latency pair is put in the corner, whose cell is always
// positive, and the block is kept as it is when a new pair could be longer). Inside a node the same is done
// with each rank as its own group. Blocks without this shape are kept as they are.
#pragma once

#include <cstdint>
#include <vector>

namespace moesim {

struct PairBytes {
  int src = 0, dst = 0;  // rank indices
  double bytes = 0.0;
};

// The routes of a set of ranks as lists of channel ids (after any merging and pruning), in CSR form:
// pair (s, d) of ranks has channels ch[off[s * ranks + d] .. off[s * ranks + d + 1]).
struct RankRoutes {
  int ranks = 0;
  std::vector<uint32_t> off;  // ranks * ranks + 1
  std::vector<uint32_t> ch;
  std::vector<double> channel_latency_s;  // per channel id
  const uint32_t* begin(int s, int d) const { return ch.data() + off[static_cast<std::size_t>(s) * ranks + d]; }
  const uint32_t* end(int s, int d) const { return ch.data() + off[static_cast<std::size_t>(s) * ranks + d + 1]; }
  double latency_s(int s, int d) const;
};

// bytes: ranks x ranks row-major (diagonal ignored); rank_node: the node (server) of each rank.
// Returns the pairs with positive bytes of an equivalent matrix, sorted by (src, dst).
std::vector<PairBytes> reduce_all_to_all(const std::vector<double>& bytes, const std::vector<int>& rank_node,
                                         const RankRoutes& routes);

}  // namespace moesim
