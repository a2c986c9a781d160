#include "sim/ptask_reduction.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace moesim {

double RankRoutes::latency_s(int s, int d) const {
  double l = 0.0;
  for (const uint32_t* c = begin(s, d); c != end(s, d); ++c) l += channel_latency_s[*c];
  return l;
}

namespace {

using Sums = std::vector<std::pair<int, double>>;  // (rank, bytes): row or column sums

// North-west corner over rows r and columns c whose totals agree up to rounding: fills cell (i, j) with what
// is left of row i or column j, whichever is smaller, and passes each cell to cell(src, dst, bytes).
// Leftovers below 1e-12 of the total (rounding ulps) are not cells of their own. Stops and returns false as
// soon as cell() refuses one.
template <class Cell>
bool north_west_corner(const Sums& r, const Sums& c, double total, Cell cell) {
  const double dust = 1e-12 * total;
  std::size_t i = 0, j = 0;
  double ri = r[0].second, cj = c[0].second;
  while (i < r.size() && j < c.size()) {
    if (ri < cj) {
      if (ri > dust && !cell(r[i].first, c[j].first, ri)) return false;
      cj -= ri;
      if (++i < r.size()) ri = r[i].second;
    } else {
      if (cj > dust && !cell(r[i].first, c[j].first, cj)) return false;
      ri -= cj;
      if (++j < c.size()) cj = c[j].second;
    }
  }
  return true;
}

class Reducer {
 public:
  Reducer(const std::vector<double>& bytes, const RankRoutes& routes) : bytes_(bytes), routes_(routes) {}

  double at(int s, int d) const { return bytes_[static_cast<std::size_t>(s) * routes_.ranks + d]; }

  void keep_all(const std::vector<int>& srcs, const std::vector<int>& dsts) {
    for (int s : srcs)
      for (int d : dsts)
        if (s != d && at(s, d) > 0) out.push_back({s, d, at(s, d)});
  }

  // One block: sources srcs (all in one half), destinations dsts (all in the other).
  void block(std::vector<int> srcs, std::vector<int> dsts) {
    if (srcs.empty() || dsts.empty()) return;
    // Shape check: every route is [F(s), G(d)].
    for (int s : srcs)
      for (int d : dsts) {
        const uint32_t* b = routes_.begin(s, d);
        if (routes_.end(s, d) - b != 2 || b[0] != *routes_.begin(s, dsts[0]) || b[1] != routes_.begin(srcs[0], d)[1])
          return keep_all(srcs, dsts);
      }
    // Row and column sums; the longest-latency pair with bytes goes to the corner.
    int best_s = -1, best_d = -1;
    double best_lat = -1.0;
    Sums r, c;
    for (int s : srcs) r.emplace_back(s, 0.0);
    for (int d : dsts) c.emplace_back(d, 0.0);
    for (std::size_t i = 0; i < srcs.size(); ++i)
      for (std::size_t j = 0; j < dsts.size(); ++j) {
        const double b = at(srcs[i], dsts[j]);
        if (b <= 0) continue;
        r[i].second += b;
        c[j].second += b;
        const double lat = routes_.latency_s(srcs[i], dsts[j]);
        if (lat > best_lat) best_lat = lat, best_s = srcs[i], best_d = dsts[j];
      }
    if (best_s < 0) return;  // nothing to send in this block
    // A reduced pair may join any sending row to any receiving column: its latency is at most the largest
    // egress latency plus the largest ingress latency. Only when that equals the block's longest pair does
    // the task's latency stay the same; otherwise the block is kept as it is.
    double egress = 0.0, ingress = 0.0;
    for (std::size_t i = 0; i < srcs.size(); ++i)
      if (r[i].second > 0) egress = std::max(egress, routes_.channel_latency_s[*routes_.begin(srcs[i], dsts[0])]);
    for (std::size_t j = 0; j < dsts.size(); ++j)
      if (c[j].second > 0) ingress = std::max(ingress, routes_.channel_latency_s[routes_.begin(srcs[0], dsts[j])[1]]);
    if (egress + ingress > best_lat) return keep_all(srcs, dsts);
    double total = 0.0;
    for (const auto& x : r) total += x.second;
    auto empty = [](const Sums::value_type& x) { return x.second <= 0; };
    r.erase(std::remove_if(r.begin(), r.end(), empty), r.end());
    c.erase(std::remove_if(c.begin(), c.end(), empty), c.end());
    auto front = [](Sums& v, int id) {
      auto it = std::find_if(v.begin(), v.end(), [&](const auto& x) { return x.first == id; });
      std::rotate(v.begin(), it, it + 1);
    };
    front(r, best_s);
    front(c, best_d);
    north_west_corner(r, c, total, [&](int src, int dst, double x) {
      out.push_back({src, dst, x});
      return true;
    });
  }

  // All groups at once (three or more): every pair of ranks in different groups must have the two-channel
  // shape [F(s), G(d)] with F(s) the same for all of s's destinations and G(d) for all of d's sources. Rows
  // are the ranks in group order, columns the ranks in group order rotated by half the groups, and one
  // north-west corner fills the whole matrix (at most rows + cols - 1 cells instead of about that many per
  // level of halves). It fails, and the caller halves instead, when a cell would join two ranks of one group,
  // when a new pair could have a longer route than the longest pair, or when no cell has that latency.
  bool rotated(const std::vector<std::vector<int>>& groups) {
    const std::size_t G = groups.size();
    if (G < 3) return false;
    const int R = routes_.ranks;
    std::vector<int> group_of(static_cast<std::size_t>(R), -1);
    std::vector<int> rows, cols;
    for (std::size_t g = 0; g < G; ++g)
      for (int r : groups[g]) group_of[static_cast<std::size_t>(r)] = static_cast<int>(g), rows.push_back(r);
    for (std::size_t g = 0; g < G; ++g)
      for (int r : groups[(g + G / 2) % G]) cols.push_back(r);
    std::vector<uint32_t> first(static_cast<std::size_t>(R), UINT32_MAX), last(static_cast<std::size_t>(R), UINT32_MAX);
    std::vector<double> row_sum(static_cast<std::size_t>(R), 0.0), col_sum(static_cast<std::size_t>(R), 0.0);
    double best_lat = -1.0, total = 0.0;
    for (int s : rows)
      for (int d : rows) {
        if (group_of[static_cast<std::size_t>(s)] == group_of[static_cast<std::size_t>(d)]) continue;
        const uint32_t* b = routes_.begin(s, d);
        if (routes_.end(s, d) - b != 2) return false;
        uint32_t& f = first[static_cast<std::size_t>(s)];
        uint32_t& l = last[static_cast<std::size_t>(d)];
        if (f == UINT32_MAX) f = b[0];
        if (l == UINT32_MAX) l = b[1];
        if (b[0] != f || b[1] != l) return false;
        const double x = at(s, d);
        if (x <= 0) continue;
        row_sum[static_cast<std::size_t>(s)] += x;
        col_sum[static_cast<std::size_t>(d)] += x;
        total += x;
        best_lat = std::max(best_lat, routes_.latency_s(s, d));
      }
    if (best_lat < 0) return true;  // nothing crosses groups
    double egress = 0.0, ingress = 0.0;
    for (int r : rows) {
      if (row_sum[static_cast<std::size_t>(r)] > 0)
        egress = std::max(egress, routes_.channel_latency_s[first[static_cast<std::size_t>(r)]]);
      if (col_sum[static_cast<std::size_t>(r)] > 0)
        ingress = std::max(ingress, routes_.channel_latency_s[last[static_cast<std::size_t>(r)]]);
    }
    if (egress + ingress > best_lat) return false;
    auto positive = [](const std::vector<int>& ids, const std::vector<double>& sum) {
      Sums v;
      for (int r : ids)
        if (sum[static_cast<std::size_t>(r)] > 0) v.emplace_back(r, sum[static_cast<std::size_t>(r)]);
      return v;
    };
    const Sums r = positive(rows, row_sum), c = positive(cols, col_sum);
    std::vector<PairBytes> cells;
    bool reaches_longest = false;
    auto emit = [&](int s, int d, double x) {
      if (group_of[static_cast<std::size_t>(s)] == group_of[static_cast<std::size_t>(d)]) return false;
      cells.push_back({s, d, x});
      reaches_longest = reaches_longest || routes_.latency_s(s, d) == best_lat;
      return true;
    };
    if (!north_west_corner(r, c, total, emit)) return false;
    if (!reaches_longest) return false;
    out.insert(out.end(), cells.begin(), cells.end());
    return true;
  }

  void split(const std::vector<std::vector<int>>& nodes, std::size_t lo, std::size_t hi) {
    if (hi - lo < 2) return;
    const std::size_t mid = (lo + hi) / 2;
    std::vector<int> a, b;
    for (std::size_t n = lo; n < mid; ++n) a.insert(a.end(), nodes[n].begin(), nodes[n].end());
    for (std::size_t n = mid; n < hi; ++n) b.insert(b.end(), nodes[n].begin(), nodes[n].end());
    block(a, b);
    block(b, a);
    split(nodes, lo, mid);
    split(nodes, mid, hi);
  }

  std::vector<PairBytes> out;

 private:
  const std::vector<double>& bytes_;
  const RankRoutes& routes_;
};

}  // namespace

std::vector<PairBytes> reduce_all_to_all(const std::vector<double>& bytes, const std::vector<int>& rank_node,
                                         const RankRoutes& routes) {
  const int R = routes.ranks;
  if (static_cast<int>(rank_node.size()) != R || bytes.size() != static_cast<std::size_t>(R) * R ||
      routes.off.size() != static_cast<std::size_t>(R) * R + 1)
    throw std::invalid_argument("reduce_all_to_all: sizes do not match the rank count");
  std::map<int, std::vector<int>> by_node;
  for (int r = 0; r < R; ++r) by_node[rank_node[static_cast<std::size_t>(r)]].push_back(r);
  std::vector<std::vector<int>> nodes;
  for (auto& [n, ranks] : by_node) nodes.push_back(std::move(ranks));
  Reducer red(bytes, routes);
  // Between nodes, then inside each node with every rank as its own group.
  if (!red.rotated(nodes)) red.split(nodes, 0, nodes.size());
  for (const auto& ranks : nodes) {
    std::vector<std::vector<int>> singles;
    for (int r : ranks) singles.push_back({r});
    if (!red.rotated(singles)) red.split(singles, 0, singles.size());
  }
  std::sort(red.out.begin(), red.out.end(),
            [](const PairBytes& x, const PairBytes& y) { return x.src != y.src ? x.src < y.src : x.dst < y.dst; });
  return std::move(red.out);
}

}  // namespace moesim
