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
    std::vector<std::pair<int, double>> r, c;
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
    auto empty = [](const std::pair<int, double>& x) { return x.second <= 0; };
    r.erase(std::remove_if(r.begin(), r.end(), empty), r.end());
    c.erase(std::remove_if(c.begin(), c.end(), empty), c.end());
    auto front = [](std::vector<std::pair<int, double>>& v, int id) {
      auto it = std::find_if(v.begin(), v.end(), [&](const auto& x) { return x.first == id; });
      std::rotate(v.begin(), it, it + 1);
    };
    front(r, best_s);
    front(c, best_d);
    // North-west corner: fill cell (i, j) with what is left of row i or column j, whichever is smaller.
    std::size_t i = 0, j = 0;
    double ri = r[0].second, cj = c[0].second;
    // Row and column totals agree up to rounding: leftovers below `dust` (ulps of the block's bytes) are not
    // cells of their own.
    const double dust = 1e-12 * total;
    while (i < r.size() && j < c.size()) {
      if (ri < cj) {
        if (ri > dust) out.push_back({r[i].first, c[j].first, ri});
        cj -= ri;
        if (++i < r.size()) ri = r[i].second;
      } else {
        if (cj > dust) out.push_back({r[i].first, c[j].first, cj});
        ri -= cj;
        if (++j < c.size()) cj = c[j].second;
      }
    }
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
  red.split(nodes, 0, nodes.size());
  for (const auto& ranks : nodes) {
    std::vector<std::vector<int>> singles;
    for (int r : ranks) singles.push_back({r});
    red.split(singles, 0, singles.size());
  }
  std::sort(red.out.begin(), red.out.end(),
            [](const PairBytes& x, const PairBytes& y) { return x.src != y.src ? x.src < y.src : x.dst < y.dst; });
  return std::move(red.out);
}

}  // namespace moesim
