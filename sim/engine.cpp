#include "sim/engine.hpp"

#include "sim/phase_clock.hpp"
#include "sim/ptask_reduction.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <cstdio>
#include <fmt/format.h>
#include <simgrid/kernel/Timer.hpp>
#include <simgrid/s4u.hpp>
#include <simgrid/version.h>
#include <stdexcept>
#include <xbt/log.h>

namespace sg4 = simgrid::s4u;

namespace moesim {

std::string simgrid_version() {
  int major = 0, minor = 0, patch = 0;
  sg_version_get(&major, &minor, &patch);
  return fmt::format("{}.{}.{}", major, minor, patch);
}

const char* fidelity_name(Fidelity f) { return f == Fidelity::exact ? "exact" : "fast"; }

std::vector<std::pair<std::string, std::string>> simgrid_settings(const EngineOptions& opt) {
  std::vector<std::pair<std::string, std::string>> s;
  if (opt.fidelity == Fidelity::exact) {
    // CM02 without TCP corrections: hand-computed sharing cases match to 1e-9 (DESIGN rule 2).
    // network/optim Full, not SimGrid's default Lazy: with Lazy, 3.32 gives flows of uneven size rates that
    // are not max-min fair and depend on the order the flows were created in (5 flows on 4 GPUs: one ends at
    // 48.9 us where max-min gives 64.5 us; an 8-GPU all-to-all: per-flow times off by up to 36 %). Full
    // re-solves the whole system at each event and matches max-min worked by hand (tests/sim/test_engine.cpp);
    // it is also faster on 8-GPU all-to-alls. cpu/optim likewise, for the Execs of the fallback in prepare().
    s = {{"network/model", "CM02"},          {"network/crosstraffic", "0"},   {"network/TCP-gamma", "0"},
         {"network/latency-factor", "1.0"}, {"network/bandwidth-factor", "1.0"}, {"network/weight-S", "0"},
         {"network/optim", "Full"},          {"cpu/optim", "Full"}};
  } else {
    // One parallel task per all-to-all; L07 replaces both the host and the network model (DESIGN rule 3).
    // TCP-gamma 0 lifts L07's TCP-window cap on a task's rate (gamma / (2 x latency x bytes of its largest
    // pair)), which the reduced matrices of ptask_reduction.hpp would otherwise make tighter.
    s = {{"host/model", "ptask_L07"}, {"network/TCP-gamma", "0"}};
  }
  s.emplace_back("surf/precision", fmt::format("{:g}", opt.precision_s));
  return s;
}

namespace {

// Host speed used to turn a compute duration into a SimGrid work amount. Large so that SimGrid's relative
// work-amount precision is far below a nanosecond for microsecond kernels.
constexpr double kHostSpeed = 1e12;  // flop/s

// Activity tags: the value stored in Activity::set_data, low 2 bits = kind.
enum TagKind : uintptr_t { kTagOp = 0, kTagFlow = 1, kTagCollective = 2 };
void* make_tag(uintptr_t value, TagKind kind) { return reinterpret_cast<void*>((value << 2) | kind); }

// Which representative channels must become SimGrid links (1) and which can never limit any transfer (0).
// A channel c can be left out of every route when the routes through it are all bounded by other channels
// whose capacities sum to at most c's: each route's first channel (its sender's egress) is such a bound, and
// so is its last (the receiver's ingress). The first and last channels of every route are always kept, so
// the bounds stay in force. With the kept bounds, the traffic on c never exceeds its capacity under any
// sharing, so max-min sharing (CM02) and L07's ptask rates are the same with or without c; only channels
// without latency are left out, so route latencies are unchanged. Typical case: a non-blocking fabric's
// switch-to-switch links, each as wide as the NICs below it.
template <class BwOf>
std::vector<char> never_binding(std::size_t routes, const std::vector<uint32_t>& off, const std::vector<uint32_t>& ch,
                                const std::vector<double>& latency, BwOf bw_of) {
  const std::size_t channels = latency.size();
  std::vector<char> keep(channels, 0), used(channels, 0);
  for (std::size_t r = 0; r < routes; ++r) {
    if (off[r] == off[r + 1]) continue;
    keep[ch[off[r]]] = keep[ch[off[r + 1] - 1]] = 1;
    for (uint32_t i = off[r]; i < off[r + 1]; ++i) used[ch[i]] = 1;
  }
  // Sum, per candidate channel, the capacities of the distinct first (last) channels of the routes through
  // it: routes are visited grouped by their first (last) channel, so a mark per candidate dedups in O(1).
  auto bound_sums = [&](bool by_first) {
    std::vector<std::vector<uint32_t>> group(channels);
    for (std::size_t r = 0; r < routes; ++r)
      if (off[r + 1] - off[r] > 2) group[by_first ? ch[off[r]] : ch[off[r + 1] - 1]].push_back(static_cast<uint32_t>(r));
    std::vector<double> sum(channels, 0.0);
    std::vector<std::size_t> mark(channels, SIZE_MAX);
    for (std::size_t w = 0; w < channels; ++w)
      for (uint32_t r : group[w])
        for (uint32_t i = off[r] + 1; i + 1 < off[r + 1]; ++i)
          if (mark[ch[i]] != w) {
            mark[ch[i]] = w;
            sum[ch[i]] += bw_of(w);
          }
    return sum;
  };
  const std::vector<double> by_first = bound_sums(true), by_last = bound_sums(false);
  for (std::size_t c = 0; c < channels; ++c) {
    if (!used[c] || keep[c]) continue;
    const double cap = bw_of(c);
    keep[c] = latency[c] > 0.0 || !(by_first[c] <= cap || by_last[c] <= cap);
  }
  return keep;
}

class Runner {
 public:
  // feed: null, or the step feed (run_engine's) that appends to `graph`, which fed_graph points to.
  Runner(const PlatformSpec& platform, const std::vector<int>& rank_gpu, const OpGraph& graph,
         const EngineOptions& opt, OpGraph* fed_graph = nullptr, const StepFeed* feed = nullptr)
      : platform_(platform), rank_gpu_(rank_gpu), graph_(graph), opt_(opt), fed_graph_(fed_graph), feed_(feed),
        streaming_(feed != nullptr), feed_live_(feed != nullptr) {}

  Trace run() {
    validate();
    if (streaming_ && opt_.fidelity != Fidelity::exact)
      throw std::invalid_argument("run_engine: a step feed needs the exact fidelity (the fast fidelity's ptask "
                                  "reduction plans over all collectives at once)");
    int argc = 1;
    char arg0[] = "moesim";
    char* argv[] = {arg0, nullptr};
    xbt_log_control_set("root.thresh:critical");
    sg4::Engine engine(&argc, argv);
    for (const auto& [k, v] : simgrid_settings(opt_)) engine.set_config(k + ":" + v);
    PhaseClock clock;
    build_platform();
    clock.mark("platform", "engine");
    prepare();
    sg4::Activity::on_completion_cb([this](const sg4::Activity& a) { on_complete(a); });
    for (OpId id = 0; id < graph_.ops().size(); ++id)
      if (pending_deps_[id] == 0) ready_.push_back(id);
    drain_ready();
    engine.run();
    // Out of events: a feed that still has a step now appends it after everything it depends on has ended
    // (admit() rejects it); one that appends nothing yet still promises steps is a broken feed.
    if (feed_live_) {
      pull_step();
      if (feed_live_)
        throw std::logic_error("run_engine: the step feed still promised steps when the simulation had ended");
    }
    for (OpId id = 0; id < graph_.ops().size(); ++id)
      if (trace_.end_s[id] < 0)
        throw std::runtime_error(fmt::format("op '{}' never finished: the op graph deadlocks", graph_.label(id)));
    if (clock.on())
      std::fprintf(stderr,
                   "[phase] engine: %zu activities, %zu timed kernels, %zu completion times, %zu links (%zu pruned), "
                   "%zu ptask pairs, %zu ptask links, %zu steps fed\n",
                   trace_.simgrid_activities, trace_.timed_kernels, distinct_events_, trace_.simgrid_links,
                   trace_.simgrid_links_pruned, trace_.ptask_pairs, trace_.ptask_links, steps_fed_);
    return std::move(trace_);
  }

 private:
  void validate() {
    if (static_cast<int>(rank_gpu_.size()) != graph_.ranks())
      throw std::invalid_argument("rank_gpu must list one GPU per rank");
    std::vector<char> used(platform_.gpu_count(), 0);
    for (int g : rank_gpu_) {
      if (g < 0 || static_cast<std::size_t>(g) >= platform_.gpu_count())
        throw std::invalid_argument("rank mapped to a GPU the platform does not have");
      if (used[g]++) throw std::invalid_argument("two ranks mapped to one GPU");
    }
  }

  void build_platform() {
    auto* zone = sg4::create_full_zone("cluster");
    // Two speeds (pstates) when interference is modelled: 0 = alone, 1 = slowed by a concurrent comm kernel.
    std::vector<double> speeds = {kHostSpeed};
    if (opt_.overlap_interference > 1.0) speeds.push_back(kHostSpeed / opt_.overlap_interference);
    // Hosts only for the GPUs that carry ranks (in GPU id order): a full zone's routing table has hosts^2
    // entries, 34 GB for a 65,536-GPU cluster however few ranks it runs.
    std::vector<char> has_rank(platform_.gpu_count(), 0);
    for (int g : rank_gpu_) has_rank[static_cast<std::size_t>(g)] = 1;
    hosts_.assign(platform_.gpu_count(), nullptr);
    for (std::size_t g = 0; g < platform_.gpu_count(); ++g)
      if (has_rank[g]) hosts_[g] = zone->create_host(platform_.gpu_names[g], speeds);
    // Links are lowered as directed channels (a full-duplex link is two, one per direction). Channels that
    // carry exactly the same set of routes are merged into the one of least bandwidth, carrying the sum of
    // their latencies: max-min sharing never binds on the wider of two constraints with identical flows, and
    // every route keeps its total latency, so results are unchanged while SimGrid's solver sees fewer
    // constraints (a GPU's PCIe link to its own NIC and the NIC's port, for example). Exact for CM02 and L07.
    const int R = graph_.ranks();
    auto channel = [&](const LinkUse& u) {
      return 2 * static_cast<std::size_t>(u.link) + (platform_.links[u.link].full_duplex && !u.forward ? 1 : 0);
    };
    // Only the GPUs that carry a rank need routes; this keeps big clusters with small EP groups cheap.
    auto gpu_route = [&](int s, int d) -> std::span<const LinkUse> {
      return platform_.route(static_cast<std::size_t>(rank_gpu_[s]), static_cast<std::size_t>(rank_gpu_[d]));
    };
    // The rank pairs that get routes: those some collective can use. Every pair of a dense collective's
    // members (the fast fidelity's reduction may move bytes to any of them) and every transfer of a sparse
    // one; nothing else (a ring all-reduce over 2,048 ranks uses 2,048 pairs, not 4 M).
    // Streamed steps: the pairs of the graph's first step, which every later step must stay within (admit()).
    const std::size_t P = static_cast<std::size_t>(R) * R;
    usable_.assign(P, 0);
    std::vector<char>& usable = usable_;
    for (const Collective& col : graph_.collectives()) {
      if (col.sparse()) {
        for (const Transfer& t : col.transfers)
          usable[static_cast<std::size_t>(col.members[t.src]) * R + static_cast<std::size_t>(col.members[t.dst])] = 1;
        continue;
      }
      if (streaming_) dense_members_.insert(col.members);
      for (int32_t a : col.members)
        for (int32_t b : col.members)
          if (a != b) usable[static_cast<std::size_t>(a) * R + static_cast<std::size_t>(b)] = 1;
    }
    struct Signature {
      uint64_t a = 0, b = 0, count = 0;
      bool operator<(const Signature& o) const { return std::tie(a, b, count) < std::tie(o.a, o.b, o.count); }
    };
    std::vector<Signature> sig(2 * platform_.links.size());
    for (int s = 0; s < R; ++s)
      for (int d = 0; d < R; ++d) {
        if (s == d || !usable[static_cast<std::size_t>(s) * R + static_cast<std::size_t>(d)]) continue;
        const uint64_t r = static_cast<uint64_t>(s) * R + d;
        uint64_t h1 = r * 0x9E3779B97F4A7C15ULL + 1, h2 = r * 0xC2B2AE3D27D4EB4FULL + 7;
        h1 = (h1 ^ (h1 >> 31)) * 0xBF58476D1CE4E5B9ULL;
        h2 = (h2 ^ (h2 >> 29)) * 0x94D049BB133111EBULL;
        const auto route = gpu_route(s, d);
        if (route.empty())
          throw std::invalid_argument(fmt::format("no route from GPU {} to GPU {}", platform_.gpu_names[rank_gpu_[s]],
                                                  platform_.gpu_names[rank_gpu_[d]]));
        for (const LinkUse& u : route) {
          Signature& g = sig[channel(u)];
          g.a += h1 ^ (h1 >> 27);
          g.b += h2 ^ (h2 >> 31);
          ++g.count;
        }
      }
    // Representative of each group: least bandwidth, then lowest channel id (deterministic).
    std::map<Signature, std::size_t> rep_of_group;
    std::vector<double> group_latency(sig.size(), 0.0);
    auto bw_of = [&](std::size_t ch) { return platform_.links[ch / 2].bandwidth_Bps; };
    for (std::size_t ch = 0; ch < sig.size(); ++ch) {
      if (sig[ch].count == 0) continue;
      auto [it, fresh] = rep_of_group.try_emplace(sig[ch], ch);
      if (!fresh && bw_of(ch) < bw_of(it->second)) it->second = ch;
    }
    std::vector<std::size_t> rep(sig.size(), SIZE_MAX);
    for (std::size_t ch = 0; ch < sig.size(); ++ch)
      if (sig[ch].count) {
        rep[ch] = rep_of_group[sig[ch]];
        group_latency[rep[ch]] += platform_.links[ch / 2].latency_s;
      }
    // Each rank pair's route as its distinct representative channels, in route order (diagonal empty).
    std::vector<uint32_t> route_off(P + 1, 0), route_ch;
    route_ch.reserve(platform_.route_links.size());  // at most every hop of every route (usually about that)
    for (std::size_t p = 0; p < P; ++p) {
      const int s = static_cast<int>(p / R), d = static_cast<int>(p % R);
      if (s != d && usable[p])
        for (const LinkUse& u : gpu_route(s, d)) {
          const auto c = static_cast<uint32_t>(rep[channel(u)]);
          if (std::find(route_ch.begin() + route_off[p], route_ch.end(), c) == route_ch.end()) route_ch.push_back(c);
        }
      route_off[p + 1] = static_cast<uint32_t>(route_ch.size());
    }
    const std::vector<char> keep = never_binding(P, route_off, route_ch, group_latency, bw_of);
    // The routes as SimGrid will see them: kept channels only.
    RankRoutes routes;
    routes.ranks = R;
    routes.channel_latency_s = group_latency;
    routes.off.assign(P + 1, 0);
    routes.ch.reserve(route_ch.size());
    for (std::size_t p = 0; p < P; ++p) {
      for (uint32_t i = route_off[p]; i < route_off[p + 1]; ++i)
        if (keep[route_ch[i]]) routes.ch.push_back(route_ch[i]);
      routes.off[p + 1] = static_cast<uint32_t>(routes.ch.size());
    }
    // Exact: the GPU-pair routes the flows use: every pair with bytes. Streamed steps: every usable pair, as
    // later steps may send between pairs the first one leaves empty (extra routes change no result: only
    // links carry load). Fast: each collective's reduced matrix (see ptask_reduction.hpp), which becomes the
    // per-link bytes of its parallel task (build_link_endpoints); no GPU-pair route is made.
    std::vector<char> needed;
    const auto& colls = graph_.collectives();
    if (streaming_) {
      needed = usable;
    } else if (opt_.fidelity == Fidelity::exact) {
      needed.assign(P, 0);
      for (const Collective& col : colls)
        col.for_each_transfer([&](int i, int j, double) {
          needed[static_cast<std::size_t>(col.members[static_cast<std::size_t>(i)]) * R +
                 static_cast<std::size_t>(col.members[static_cast<std::size_t>(j)])] = 1;
        });
    } else {
      std::vector<int> rank_node(static_cast<std::size_t>(R));
      for (int r = 0; r < R; ++r) rank_node[static_cast<std::size_t>(r)] = platform_.gpu_node[rank_gpu_[r]];
      reduced_.resize(colls.size());
      ptask_latency_.assign(colls.size(), 0.0);
      struct GroupRoutes {
        std::vector<int> node;
        RankRoutes routes;
      };
      std::map<std::vector<int32_t>, GroupRoutes> group_routes;
      for (std::size_t c = 0; c < colls.size(); ++c) {
        const Collective& col = colls[c];
        if (col.size() == R && !col.sparse()) {
          reduced_[c] = reduce_all_to_all(col.bytes, rank_node, routes);
        } else if (col.kind == OpKind::all_to_all && !col.sparse() && col.size() > 2) {
          // An EP group's all-to-all among several groups (parallelism.dp): the same reduction over the
          // group's own ranks (their routes and nodes, built once per distinct group), mapped back.
          auto [it, fresh] = group_routes.try_emplace(col.members);
          if (fresh) {
            const auto M = static_cast<std::size_t>(col.size());
            it->second.node.resize(M);
            RankRoutes& lr = it->second.routes;
            lr.ranks = col.size();
            lr.channel_latency_s = routes.channel_latency_s;
            lr.off.assign(M * M + 1, 0);
            for (std::size_t i = 0; i < M; ++i) {
              it->second.node[i] = rank_node[static_cast<std::size_t>(col.members[i])];
              for (std::size_t j = 0; j < M; ++j) {
                lr.ch.insert(lr.ch.end(), routes.begin(col.members[i], col.members[j]),
                             routes.end(col.members[i], col.members[j]));
                lr.off[i * M + j + 1] = static_cast<uint32_t>(lr.ch.size());
              }
            }
          }
          reduced_[c] = reduce_all_to_all(col.bytes, it->second.node, it->second.routes);
          for (PairBytes& x : reduced_[c]) {
            x.src = col.members[static_cast<std::size_t>(x.src)];
            x.dst = col.members[static_cast<std::size_t>(x.dst)];
          }
        } else {
          // A group or sparse collective: its pairs as they are, in graph ranks.
          col.for_each_transfer([&](int i, int j, double b) {
            reduced_[c].push_back({col.members[static_cast<std::size_t>(i)], col.members[static_cast<std::size_t>(j)], b});
          });
        }
        // L07's latency of a parallel task: the longest route latency among its pairs (each summed in route
        // order, as SimGrid sums it). The reduction keeps the longest pair.
        double latency = 0.0;
        for (const PairBytes& x : reduced_[c]) latency = std::max(latency, routes.latency_s(x.src, x.dst));
        ptask_latency_[c] = latency;
        trace_.ptask_pairs += reduced_[c].size();
      }
    }
    std::vector<const sg4::Link*> sg_link(sig.size(), nullptr);
    for (std::size_t ch = 0; ch < sig.size(); ++ch) {
      if (!sig[ch].count || rep[ch] != ch) continue;
      if (!keep[ch]) {
        ++trace_.simgrid_links_pruned;
        continue;
      }
      const PlatformLink& l = platform_.links[ch / 2];
      auto* link = zone->create_link(l.full_duplex ? l.name + (ch % 2 ? "_DOWN" : "_UP") : l.name, l.bandwidth_Bps);
      // Fast: links without latency; each parallel task waits its own latency first (start_collective_ptask).
      link->set_latency(opt_.fidelity == Fidelity::exact ? group_latency[ch] : 0.0);
      sg_link[ch] = link;
      ++trace_.simgrid_links;
    }
    if (opt_.fidelity == Fidelity::exact) {
      for (std::size_t p = 0; p < P; ++p) {
        if (!needed[p]) continue;
        const int s = static_cast<int>(p / R), d = static_cast<int>(p % R);
        std::vector<sg4::LinkInRoute> route;
        for (uint32_t i = routes.off[p]; i < routes.off[p + 1]; ++i) route.emplace_back(sg_link[routes.ch[i]]);
        zone->add_route(hosts_[rank_gpu_[s]]->get_netpoint(), hosts_[rank_gpu_[d]]->get_netpoint(), nullptr,
                        nullptr, route, false);
      }
    } else {
      build_link_endpoints(zone, sg_link, routes);
    }
    zone->seal();
  }

  // Fast fidelity: what SimGrid sees of a parallel task is one variable with, on each link, the sum of the
  // bytes of its pairs routed over that link (and a weight-0 share of each of its hosts' CPUs); its latency
  // is paid by a timer of ours (start_collective_ptask). So instead of GPU hosts joined by multi-link routes,
  // a task spans K endpoint hosts whose ordered pairs (i, j), i != j, each have one link as their whole route
  // (K (K-1) >= the links), and carries each link's sum as the bytes of that link's pair. Same weights,
  // summed in the same order as L07 sums them (pairs in (src, dst) order, each route's links in order), so
  // the same rates and finish times, bit for bit (checked on the benches' JSON). But SimGrid 3.32 now holds
  // K + (links used) constraints per task instead of (members) + (links used), and expands one element per
  // link instead of one per pair hop. Its cost per task is quadratic in that count (each new element
  // searches the task's list; freeing the task walks the list once per constraint), so the 256 GPU CPUs of
  // an EP-256 all-to-all become 33 endpoints (simulation 1.14 s -> 0.67 s on dsv3-train-256), and a task's
  // byte matrix is K^2, not members^2. GPU hosts stay for compute ops that run as Execs.
  //
  // Each set of members (an EP group, a ring, an ETP group) has endpoints of its own, routed over the links
  // its collectives load: tasks of two groups then share only the links they both load, as they shared
  // only those (and no CPU) over the GPUs, and SimGrid's selective update does not join groups that never
  // meet (DP replicas' all-to-alls between their rings).
  //
  //   group endpoint 0 --link a--> endpoint 1      pair (0, 1) = link a
  //   group endpoint 0 --link b--> endpoint 2      pair (0, 2) = link b    ... K (K-1) pairs, one link each
  //   group endpoint 1 --link c--> endpoint 0      pair (1, 0) = link c    (a link may serve several groups)
  void build_link_endpoints(sg4::NetZone* zone, const std::vector<const sg4::Link*>& sg_link,
                            const RankRoutes& routes) {
    // Each collective's per-link sums (by channel), accumulated in L07's order (see above).
    std::vector<double> load(sg_link.size(), 0.0);
    std::vector<uint32_t> touched;
    std::vector<std::vector<std::pair<uint32_t, double>>> by_channel(reduced_.size());
    const auto& colls = graph_.collectives();
    for (std::size_t c = 0; c < reduced_.size(); ++c) {
      touched.clear();
      for (const PairBytes& x : reduced_[c])
        for (const uint32_t* ch = routes.begin(x.src, x.dst); ch != routes.end(x.src, x.dst); ++ch) {
          if (load[*ch] == 0.0) touched.push_back(*ch);
          load[*ch] += x.bytes;
        }
      std::sort(touched.begin(), touched.end());
      for (uint32_t ch : touched) {
        by_channel[c].push_back({ch, load[ch]});
        load[ch] = 0.0;
      }
      trace_.ptask_links += by_channel[c].size();
      std::vector<PairBytes>().swap(reduced_[c]);
    }
    // Groups by member set, in order of first collective; each group's links in channel order.
    std::map<std::vector<int32_t>, uint32_t> group_of;
    std::vector<std::vector<uint32_t>> group_channels, group_colls;
    coll_group_.assign(colls.size(), 0);
    for (std::size_t c = 0; c < colls.size(); ++c) {
      auto [it, fresh] = group_of.try_emplace(colls[c].members, static_cast<uint32_t>(group_channels.size()));
      if (fresh) {
        group_channels.emplace_back();
        group_colls.emplace_back();
      }
      coll_group_[c] = it->second;
      group_colls[it->second].push_back(static_cast<uint32_t>(c));
      for (const auto& [ch, b] : by_channel[c]) group_channels[it->second].push_back(ch);
    }
    std::vector<uint32_t> slot_of(sg_link.size(), UINT32_MAX);
    groups_.assign(group_channels.size(), {});
    link_load_.assign(colls.size(), {});
    for (std::size_t gi = 0; gi < group_channels.size(); ++gi) {
      std::vector<uint32_t>& chans = group_channels[gi];
      std::sort(chans.begin(), chans.end());
      chans.erase(std::unique(chans.begin(), chans.end()), chans.end());
      std::size_t k = 2;
      while (k * (k - 1) < chans.size()) ++k;
      EndpointGroup& g = groups_[gi];
      g.k = k;
      for (std::size_t i = 0; i < k; ++i)
        g.hosts.push_back(zone->create_host(fmt::format("moesim-ptask-endpoint-{}-{}", gi, i), kHostSpeed));
      // Slot t = ordered pair (i, j), i != j, in row-major order: the order L07 walks a task's byte matrix in.
      for (std::size_t t = 0; t < chans.size(); ++t) {
        const std::size_t i = t / (k - 1), jj = t % (k - 1), j = jj < i ? jj : jj + 1;
        slot_of[chans[t]] = static_cast<uint32_t>(i * k + j);
        zone->add_route(g.hosts[i]->get_netpoint(), g.hosts[j]->get_netpoint(), nullptr, nullptr,
                        {sg4::LinkInRoute(sg_link[chans[t]])}, false);
      }
      // slot_of holds this group's slots until the next group overwrites the channels they share.
      for (uint32_t c : group_colls[gi])
        for (const auto& [ch, b] : by_channel[c]) link_load_[c].push_back({slot_of[ch], b});
    }
  }

  void prepare() {
    comm_active_.assign(static_cast<std::size_t>(graph_.ranks()), 0);
    // Kernels as timers (see start_kernel) when every compute op is on its rank's compute stream: the op
    // graph chains each (rank, stream) in order (OpGraph::push), so a GPU then runs one kernel at a time.
    // Streamed steps: decided on the first step; admit() rejects a later step that breaks the rule.
    timed_kernels_ = !opt_.kernels_as_execs;
    for (const Op& o : graph_.ops())
      if (o.kind == OpKind::compute && o.stream != Stream::compute) timed_kernels_ = false;
    kernel_.assign(static_cast<std::size_t>(graph_.ranks()), Kernel{});
    prepare_ops(0);
    prepare_collectives(0);
    if (!graph_.ops().empty()) newest_step_ = graph_.ops().back().step;
  }

  // Per-op state for ops [first, n) (n = the graph's op count): trace slots, pending dependency counts and
  // successors. Successors within the chunk go to the CSR arrays (succ_offset_ / succ_, extended chunk by
  // chunk); a dependency on an op of an earlier chunk (streamed steps: the last ops of each rank before the
  // step) goes to a side list of that op, read after its CSR range, so every op's successors are still
  // visited in id order, as in the whole graph. A dependency that has already finished is not counted: the
  // op becomes ready when its last unfinished dependency ends, as it would have in the whole graph, provided
  // it has one (checked).
  void prepare_ops(OpId first) {
    const auto& ops = graph_.ops();
    const std::size_t n = ops.size();
    trace_.start_s.resize(n, -1.0);
    trace_.end_s.resize(n, -1.0);
    pending_deps_.resize(n, 0);
    if (streaming_) side_of_.resize(n, kNoSide);
    const std::size_t chunk = n - first;
    std::vector<uint32_t> count(chunk + 1, 0);
    for (std::size_t i = first; i < n; ++i)
      for (OpId d : ops[i].deps)
        if (d >= first) ++count[d - first + 1];
    for (std::size_t i = 0; i < chunk; ++i) count[i + 1] += count[i];
    const auto base = static_cast<uint32_t>(succ_.size());
    if (first == 0) succ_offset_.assign(1, 0);
    for (std::size_t i = 0; i < chunk; ++i) succ_offset_.push_back(base + count[i + 1]);
    succ_.resize(base + count[chunk]);
    std::vector<uint32_t> fill(count.begin(), count.end() - 1);
    for (std::size_t i = first; i < n; ++i) {
      const Op& o = ops[i];
      uint32_t pending = 0;
      for (OpId d : o.deps) {
        if (d >= first) {
          ++pending;
          succ_[base + fill[d - first]++] = o.id;
        } else if (trace_.end_s[d] < 0) {
          ++pending;
          if (side_of_[d] == kNoSide) {
            side_of_[d] = static_cast<uint32_t>(side_succ_.size());
            side_succ_.emplace_back();
          }
          side_succ_[side_of_[d]].push_back(o.id);
        }
      }
      if (first > 0 && pending == 0)
        throw std::logic_error(fmt::format(
            "run_engine: op '{}' of step {} was fed at {} s, after every op it depends on had finished: the step "
            "came too late to run as it would in the whole graph",
            graph_.label(o.id), o.step, sg4::Engine::get_clock()));
      pending_deps_[o.id] = pending;
    }
  }

  // Per collective c >= first: ready flags and (exact only: flows are tracked one by one) per rank, the
  // number of non-empty flows it sends or receives.
  void prepare_collectives(std::size_t first) {
    const auto& colls = graph_.collectives();
    coll_ready_count_.resize(colls.size(), 0);
    coll_rank_ready_.resize(colls.size());
    // Indexed by member (Collective::members), not by graph rank.
    for (std::size_t c = first; c < colls.size(); ++c) coll_rank_ready_[c].assign(colls[c].members.size(), 0);
    if (opt_.fidelity != Fidelity::exact) return;
    flows_left_.resize(colls.size());
    inbound_.resize(colls.size());
    ring_degree_.resize(colls.size());
    ring_flows_left_.resize(colls.size(), 0);
    for (std::size_t c = first; c < colls.size(); ++c) {
      const Collective& col = colls[c];
      const int M = col.size();
      flows_left_[c].assign(static_cast<std::size_t>(M), 0);
      col.for_each_transfer([&](int s, int d, double) {
        ++flows_left_[c][static_cast<std::size_t>(s)];
        ++flows_left_[c][static_cast<std::size_t>(d)];
      });
      // Sparse: the transfers into each member, so a member that becomes ready finds its peers in O(degree).
      if (col.sparse()) {
        ring_degree_[c] = flows_left_[c];
        ring_flows_left_[c] = col.transfers.size();
        std::vector<uint32_t>& in = inbound_[c];
        in.resize(col.transfers.size());
        for (uint32_t t = 0; t < in.size(); ++t) in[t] = t;
        std::sort(in.begin(), in.end(), [&](uint32_t a, uint32_t b) {
          return std::tie(col.transfers[a].dst, col.transfers[a].src) < std::tie(col.transfers[b].dst, col.transfers[b].src);
        });
      }
    }
  }

  // Streamed steps: asks the feed for the next step (drain_ready, before the first op of the newest step
  // starts) and admits what it appended. No reference into the graph's ops or collectives may be held
  // across this call: appending may move them.
  void pull_step() {
    const auto first = static_cast<OpId>(graph_.ops().size());
    const std::size_t first_c = graph_.collectives().size();
    feed_live_ = (*feed_)(*fed_graph_);
    if (graph_.ops().size() > first) {
      admit(first, first_c);
    } else if (graph_.collectives().size() != first_c) {
      throw std::logic_error("run_engine: the step feed appended collectives without ops");
    }
  }

  // Ops [first, ..) and collectives [first_c, ..) were just appended: check they run as in the whole graph
  // (the platform, built from the first step, routes their pairs and merges links the same way; the timed
  // kernels rule holds), then give them their engine state.
  void admit(OpId first, std::size_t first_c) {
    const auto& colls = graph_.collectives();
    const auto R = static_cast<std::size_t>(graph_.ranks());
    for (std::size_t c = first_c; c < colls.size(); ++c) {
      const Collective& col = colls[c];
      bool ok = true;
      if (col.sparse()) {
        for (const Transfer& t : col.transfers)
          ok = ok && usable_[static_cast<std::size_t>(col.members[t.src]) * R + static_cast<std::size_t>(col.members[t.dst])];
      } else if (!dense_members_.count(col.members)) {
        for (int32_t a : col.members)
          for (int32_t b : col.members)
            ok = ok && (a == b || usable_[static_cast<std::size_t>(a) * R + static_cast<std::size_t>(b)]);
        if (ok) dense_members_.insert(col.members);
      }
      if (!ok)
        throw std::logic_error(fmt::format(
            "run_engine: the fed collective of op '{}' joins ranks that no collective of the first step joins: "
            "the platform built from that step has no route for them (or would merge links differently)",
            graph_.label(col.ops.front())));
    }
    const auto& ops = graph_.ops();
    for (std::size_t i = first; i < ops.size(); ++i)
      if (timed_kernels_ && ops[i].kind == OpKind::compute && ops[i].stream != Stream::compute)
        throw std::logic_error(fmt::format("run_engine: fed op '{}' computes off its rank's compute stream, which "
                                           "the first step's timed kernels do not allow",
                                           graph_.label(static_cast<OpId>(i))));
    prepare_ops(first);
    prepare_collectives(first_c);
    newest_step_ = ops.back().step;
    ++steps_fed_;
  }

  // Starting ops can complete others instantly (zero-duration ops); a worklist avoids deep recursion.
  void drain_ready() {
    while (!ready_.empty()) {
      OpId id = ready_.back();
      ready_.pop_back();
      if (feed_live_ && graph_.op(id).step >= newest_step_) pull_step();
      start_op(id);
    }
  }

  // Tracks comm-stream collectives in flight per rank and switches the rank's GPU speed accordingly.
  void comm_in_flight(const Op& op, int delta) {
    if (opt_.overlap_interference <= 1.0 || op.kind == OpKind::compute || op.stream != Stream::comm) return;
    int& n = comm_active_[static_cast<std::size_t>(op.rank)];
    const int before = n;
    n += delta;
    if ((before == 0) == (n == 0)) return;
    if (!timed_kernels_) {
      hosts_[rank_gpu_[op.rank]]->set_pstate(n > 0 ? 1 : 0);
      return;
    }
    // The kernel running on this GPU (if any) has done (now - since) x speed of its work at the old speed; the
    // rest runs at the new one.
    Kernel& k = kernel_[static_cast<std::size_t>(op.rank)];
    if (k.id == kNoOp) return;
    const double now = sg4::Engine::get_clock();
    k.left_s = std::max(0.0, k.left_s - (now - k.since) * k.speed);
    k.timer->remove();
    schedule_kernel(op.rank, now);
  }

  // Relative speed of rank r's GPU now: 1, or 1 / overlap_interference while a collective of its comm stream
  // is in flight.
  double gpu_speed(int r) const {
    return opt_.overlap_interference > 1.0 && comm_active_[static_cast<std::size_t>(r)] > 0
               ? 1.0 / opt_.overlap_interference
               : 1.0;
  }

  // A compute op as a SimGrid timer rather than an Exec. A GPU runs its kernels one at a time (DESIGN rule
  // 1) and the op graph guarantees it here (prepare()), so SimGrid's CPU model would only ever give a kernel
  // its host's whole speed: the finish date is start + duration / speed, re-dated when the speed changes
  // (overlap interference). Same times as an Exec (to rounding), without a max-min variable per kernel: in
  // fast fidelity every Exec joins L07's system, whose all-to-all tasks tie all hosts into one component.
  void start_kernel(OpId id, const Op& op, double now) {
    Kernel& k = kernel_[static_cast<std::size_t>(op.rank)];
    if (k.id != kNoOp)
      throw std::logic_error(fmt::format("ops '{}' and '{}' run at once on one GPU stream", graph_.label(k.id),
                                         graph_.label(id)));
    k.id = id;
    k.left_s = op.duration_s;
    schedule_kernel(op.rank, now);
    ++trace_.timed_kernels;
  }

  // Dates the end of rank r's kernel from `now` at the GPU's current speed (its work left is k.left_s).
  void schedule_kernel(int r, double now) {
    Kernel& k = kernel_[static_cast<std::size_t>(r)];
    k.since = now;
    k.speed = gpu_speed(r);
    k.timer = simgrid::kernel::timer::Timer::set(now + k.left_s / k.speed, [this, r] { end_kernel(r); });
  }

  void end_kernel(int r) {
    Kernel& k = kernel_[static_cast<std::size_t>(r)];
    const OpId id = k.id;
    k = Kernel{};  // the timer deletes itself once this returns
    finish_op(id, sg4::Engine::get_clock());
    drain_ready();
  }

  void start_op(OpId id) {
    const Op& op = graph_.op(id);
    const double now = sg4::Engine::get_clock();
    trace_.start_s[id] = now;
    comm_in_flight(op, +1);
    if (op.kind == OpKind::compute) {
      if (op.duration_s <= 0.0) {
        finish_op(id, now);
        return;
      }
      if (timed_kernels_) {
        start_kernel(id, op, now);
        return;
      }
      auto exec = sg4::Exec::init();
      exec->set_flops_amount(op.duration_s * kHostSpeed);
      exec->set_host(hosts_[rank_gpu_[op.rank]]);
      launch(exec, make_tag(id, kTagOp));
      return;
    }
    // A collective: this rank reached it; after the launch time it is ready to move data. The timer fires in
    // SimGrid's maestro context, like the completion callbacks that start activities here.
    if (opt_.collective_launch_s > 0.0 && graph_.collectives()[op.collective].pays_launch) {
      simgrid::kernel::timer::Timer::set(now + opt_.collective_launch_s, [this, id] {
        reach_collective(id);
        drain_ready();
      });
      return;
    }
    reach_collective(id);
  }

  // Rank of op `id` is ready to exchange the data of its collective.
  void reach_collective(OpId id) {
    const Op& op = graph_.op(id);
    const double now = sg4::Engine::get_clock();
    const int c = op.collective;
    const Collective& col = graph_.collectives()[c];
    const int r = col.member_index(op.rank);  // member index
    coll_rank_ready_[c][r] = 1;
    ++coll_ready_count_[c];
    if (opt_.fidelity == Fidelity::exact) {
      // Start every flow whose other end is ready too (NCCL send/recv pairs need both sides posted).
      if (col.sparse()) {
        const auto& tr = col.transfers;
        auto out = std::lower_bound(tr.begin(), tr.end(), r, [](const Transfer& t, int v) { return t.src < v; });
        for (; out != tr.end() && out->src == r; ++out)
          if (coll_rank_ready_[c][static_cast<std::size_t>(out->dst)]) start_flow(c, r, out->dst);
        const std::vector<uint32_t>& in = inbound_[c];
        auto it = std::lower_bound(in.begin(), in.end(), r, [&](uint32_t t, int v) { return tr[t].dst < v; });
        for (; it != in.end() && tr[*it].dst == r; ++it)
          if (coll_rank_ready_[c][static_cast<std::size_t>(tr[*it].src)]) start_flow(c, tr[*it].src, r);
      } else {
        for (int q = 0; q < col.size(); ++q) {
          if (q == r || !coll_rank_ready_[c][q]) continue;
          start_flow(c, r, q);
          start_flow(c, q, r);
        }
      }
      if (flows_left_[c][r] == 0) finish_op(id, now);
    } else if (coll_ready_count_[c] == col.size()) {
      start_collective_ptask(c);
    }
  }

  // s, d: member indices of collective c.
  void start_flow(int c, int s, int d) {
    const Collective& col = graph_.collectives()[c];
    const double bytes = col.bytes_between(s, d);
    if (bytes <= 0) return;  // a 0-byte transfer never starts in SimGrid (DESIGN rule 4): skip it
    auto comm = sg4::Comm::sendto_init(hosts_[rank_gpu_[col.members[s]]], hosts_[rank_gpu_[col.members[d]]]);
    comm->set_payload_size(static_cast<uint64_t>(bytes + 0.5));
    // Member indices are < the graph's rank count, so (c, s, d) packs with R as the radix.
    const auto R = static_cast<uintptr_t>(graph_.ranks());
    const uintptr_t key = (static_cast<uintptr_t>(c) * R + s) * R + d;
    launch(comm, make_tag(key, kTagFlow));
  }

  // The fast fidelity's parallel task of collective c, after its latency. SimGrid's links carry no latency
  // here (the endpoint routes of build_link_endpoints are one link each, while a task's latency is its longest
  // GPU-pair route), so a timer of ours waits it, and the task then starts without one. L07 would hold the
  // task's variable disabled (sharing nothing) for that time, so rates and finish times are the same, except
  // that L07 rounds a latency left below surf/precision to zero at the next event of any kind: a kernel ending
  // 1 us into a 3 us latency started the task 2 us early at the benches' 10 us precision. The timer is exact.
  void start_collective_ptask(int c) {
    const Collective& col = graph_.collectives()[c];
    const double now = sg4::Engine::get_clock();
    if (link_load_[c].empty()) {
      for (OpId id : col.ops) finish_op(id, now);
      return;
    }
    if (ptask_latency_[c] > 0.0) {
      simgrid::kernel::timer::Timer::set(now + ptask_latency_[c], [this, c] { launch_collective_ptask(c); });
      return;
    }
    launch_collective_ptask(c);
  }

  // The task over its group's link endpoints (build_link_endpoints): each link's sum as its pair's bytes.
  void launch_collective_ptask(int c) {
    const EndpointGroup& g = groups_[coll_group_[c]];
    std::vector<double> bytes(g.k * g.k, 0.0);
    for (const auto& [cell, b] : link_load_[c]) bytes[cell] = b;
    auto exec = sg4::Exec::init();
    exec->set_flops_amounts(std::vector<double>(g.k, 0.0));
    exec->set_bytes_amounts(bytes);
    exec->set_hosts(g.hosts);
    launch(exec, make_tag(static_cast<uintptr_t>(c), kTagCollective));
  }

  // Activities must stay referenced while SimGrid runs them (an unreferenced one is destroyed under it). Each
  // running activity owns a slot; a finished one moves to the graveyard, which is emptied once the clock
  // has moved on, so memory stays proportional to the activities alive at one time.
  void launch(sg4::ActivityPtr a, void* tag) {
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    slots_[slot] = {a, reinterpret_cast<uintptr_t>(tag)};
    a->set_data(reinterpret_cast<void*>(static_cast<uintptr_t>(slot)));
    a->start();
    ++trace_.simgrid_activities;
  }

  void on_complete(const sg4::Activity& a) {
    const double clock = sg4::Engine::get_clock();
    if (clock > graveyard_clock_) {
      ++distinct_events_;
      graveyard_.clear();
      graveyard_clock_ = clock;
    }
    const auto slot = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(a.get_data<void>()));
    const uintptr_t tag = slots_[slot].tag;
    graveyard_.push_back(std::move(slots_[slot].ptr));
    free_slots_.push_back(slot);
    const uintptr_t value = tag >> 2;
    const double now = sg4::Engine::get_clock();
    switch (static_cast<TagKind>(tag & 3)) {
      case kTagOp: finish_op(static_cast<OpId>(value), now); break;
      case kTagFlow: {
        // Decode (collective, src, dst) as member indices (start_flow); each flow counts against both ends.
        const auto& colls = graph_.collectives();
        const std::size_t R = static_cast<std::size_t>(graph_.ranks());
        const std::size_t c = value / (R * R);
        const int s = static_cast<int>((value / R) % R), d = static_cast<int>(value % R);
        if (colls[c].sparse()) {
          // A ring: every member's op ends with the collective's last transfer (see Collective).
          --flows_left_[c][s];
          --flows_left_[c][d];
          if (--ring_flows_left_[c] == 0)
            for (std::size_t i = 0; i < colls[c].ops.size(); ++i)
              if (ring_degree_[c][i] > 0) finish_op(colls[c].ops[i], now);
          break;
        }
        for (int r : {s, d})
          if (--flows_left_[c][r] == 0 && coll_rank_ready_[c][r]) finish_op(colls[c].ops[r], now);
        break;
      }
      case kTagCollective:
        for (OpId id : graph_.collectives()[value].ops) finish_op(id, now);
        break;
    }
    drain_ready();
  }

  void finish_op(OpId id, double now) {
    trace_.end_s[id] = now;
    comm_in_flight(graph_.op(id), -1);
    if (now > trace_.makespan_s) trace_.makespan_s = now;
    for (uint32_t i = succ_offset_[id]; i < succ_offset_[id + 1]; ++i)
      if (--pending_deps_[succ_[i]] == 0) ready_.push_back(succ_[i]);
    if (streaming_ && side_of_[id] != kNoSide)
      for (OpId s : side_succ_[side_of_[id]])
        if (--pending_deps_[s] == 0) ready_.push_back(s);
  }

  const PlatformSpec& platform_;
  const std::vector<int>& rank_gpu_;
  const OpGraph& graph_;
  EngineOptions opt_;
  OpGraph* fed_graph_;     // streamed steps: graph_, appended to by the feed
  const StepFeed* feed_;   // null: the whole graph is given up front
  bool streaming_;
  bool feed_live_;         // the feed may still append steps
  int newest_step_ = 0;    // step of the graph's last op
  std::size_t steps_fed_ = 0;
  std::vector<char> usable_;  // per (src rank, dst rank): the pairs the platform was built for
  std::set<std::vector<int32_t>> dense_members_;  // streamed steps: dense member sets known to be usable
  static constexpr uint32_t kNoSide = UINT32_MAX;
  std::vector<uint32_t> side_of_;              // streamed steps: per op, its side list, or kNoSide
  std::vector<std::vector<OpId>> side_succ_;   // successors in later chunks, ascending ids
  Trace trace_;
  std::vector<sg4::Host*> hosts_;
  struct Slot {
    sg4::ActivityPtr ptr;
    uintptr_t tag = 0;
  };
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<sg4::ActivityPtr> graveyard_;
  double graveyard_clock_ = -1.0;
  std::size_t distinct_events_ = 0;  // distinct clock values at which activities completed
  std::vector<uint32_t> pending_deps_, succ_offset_, succ_;
  std::vector<OpId> ready_;
  std::vector<int> coll_ready_count_;
  std::vector<int> comm_active_;  // per rank: comm-stream all-to-alls in flight
  // Per rank, the compute op running on its GPU as a timer (start_kernel): its work left in seconds at full
  // speed as of `since`, and its current relative speed.
  struct Kernel {
    OpId id = kNoOp;
    double left_s = 0.0, since = 0.0, speed = 1.0;
    simgrid::kernel::timer::Timer* timer = nullptr;
  };
  bool timed_kernels_ = false;
  std::vector<Kernel> kernel_;
  std::vector<std::vector<char>> coll_rank_ready_;
  std::vector<std::vector<uint32_t>> inbound_;  // exact, sparse collectives: transfer indices by (dst, src)
  std::vector<std::vector<int>> ring_degree_;    // exact, sparse: per member, its transfers (sent + received)
  std::vector<std::size_t> ring_flows_left_;     // exact, sparse: transfers not yet ended
  std::vector<std::vector<int>> flows_left_;  // exact: per collective and rank, flows not yet ended
  std::vector<std::vector<PairBytes>> reduced_;  // fast: per collective, the pairs of its ptask
  std::vector<double> ptask_latency_;            // fast: per collective, its ptask's latency (s)
  // Fast: the link endpoints of each member set (build_link_endpoints), each collective's group, and per
  // collective its (cell i * K + j of its group's byte matrix, bytes) per link it loads, in channel order.
  struct EndpointGroup {
    std::size_t k = 0;
    std::vector<sg4::Host*> hosts;
  };
  std::vector<EndpointGroup> groups_;
  std::vector<uint32_t> coll_group_;
  std::vector<std::vector<std::pair<uint32_t, double>>> link_load_;
};

}  // namespace

namespace {
void claim_engine() {
  static bool ran = false;
  if (ran) throw std::logic_error("run_engine: only one simulation per process (DESIGN rule 5)");
  ran = true;
}
}  // namespace

Trace run_engine(const PlatformSpec& platform, const std::vector<int>& rank_gpu, const OpGraph& graph,
                 const EngineOptions& opt) {
  claim_engine();
  Runner runner(platform, rank_gpu, graph, opt);
  return runner.run();
}

Trace run_engine(const PlatformSpec& platform, const std::vector<int>& rank_gpu, OpGraph& graph,
                 const EngineOptions& opt, const StepFeed& feed) {
  claim_engine();
  Runner runner(platform, rank_gpu, graph, opt, feed ? &graph : nullptr, feed ? &feed : nullptr);
  return runner.run();
}

}  // namespace moesim
