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
    std::map<int, double> row, col;
    for (int s : srcs)
      for (int d : dsts) {
        const double b = at(s, d);
        if (b <= 0) continue;
        row[s] += b;
        col[d] += b;
        const double lat = routes_.latency_s(s, d);
        if (lat > best_lat) best_lat = lat, best_s = s, best_d = d;
      }
    if (best_s < 0) return;  // nothing to send in this block
    std::vector<std::pair<int, double>> r(row.begin(), row.end()), c(col.begin(), col.end());
    auto front = [](std::vector<std::pair<int, double>>& v, int id) {
      auto it = std::find_if(v.begin(), v.end(), [&](const auto& x) { return x.first == id; });
      std::rotate(v.begin(), it, it + 1);
    };
    front(r, best_s);
    front(c, best_d);
    // North-west corner: fill cell (i, j) with what is left of row i or column j, whichever is smaller.
    std::size_t i = 0, j = 0;
    double ri = r[0].second, cj = c[0].second;
    while (i < r.size() && j < c.size()) {
      if (ri < cj) {
        if (ri > 0) out.push_back({r[i].first, c[j].first, ri});
        cj -= ri;
        if (++i < r.size()) ri = r[i].second;
      } else {
        if (cj > 0) out.push_back({r[i].first, c[j].first, cj});
        ri -= cj;
        if (++j < c.size()) cj = c[j].second;
      }
    }
    // Row and column totals agree up to rounding; what is left over (a few ulps) is dropped.
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
  for (const auto& ranks : nodes) red.keep_all(ranks, ranks);  // inside a node: kept as they are
  red.split(nodes, 0, nodes.size());
  std::sort(red.out.begin(), red.out.end(),
            [](const PairBytes& x, const PairBytes& y) { return x.src != y.src ? x.src < y.src : x.dst < y.dst; });
  return std::move(red.out);
}

}  // namespace moesim
