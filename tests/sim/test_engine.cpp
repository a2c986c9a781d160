// Engine and network-model tests. Each TEST_CASE runs in its own process (catch_discover_tests), because
// SimGrid allows one simulation per process (DESIGN rule 5). Expected values are worked by hand below.
#include <catch2/catch.hpp>

#include "sim/engine.hpp"
#include "sim/op_graph.hpp"
#include "sim/platform_spec.hpp"
#include "tests/sim/test_support.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <fmt/format.h>

using namespace moesim;

namespace {

// A star: every GPU has one full-duplex link (bw per direction, latency lat) to a non-blocking switch.
PlatformSpec star(int n, double bw, double lat) {
  PlatformSpec p;
  for (int i = 0; i < n; ++i) {
    p.gpu_names.push_back("gpu" + std::to_string(i));
    p.gpu_node.push_back(0);
    p.links.push_back({"gpu" + std::to_string(i) + "-sw", "nvlink", bw, lat, true});
  }
  std::vector<std::vector<LinkUse>> routes(static_cast<std::size_t>(n) * n);
  for (int s = 0; s < n; ++s)
    for (int d = 0; d < n; ++d)
      if (s != d) routes[s * n + d] = {{static_cast<uint32_t>(s), true}, {static_cast<uint32_t>(d), false}};
  p.set_routes(routes);
  return p;
}

std::vector<int> identity(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST_CASE("one transfer takes latency + bytes / bandwidth", "[engine][exact]") {
  // 2 GPUs, links of 100 GB/s and 1 us each; route = 2 links, so latency = 2 us.
  // 1e9 bytes at 100e9 B/s = 10 ms. Expected end = 2e-6 + 1e-2 s.
  PlatformSpec p = star(2, 100e9, 1e-6);
  OpGraph g(2);
  std::vector<double> bytes = {0, 1e9, 0, 0};
  auto ops = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  Trace t = run_engine(p, identity(2), g, {});
  CHECK(t.end_s[ops[0]] == Approx(2e-6 + 1e-2).epsilon(1e-9));
  CHECK(t.end_s[ops[1]] == Approx(2e-6 + 1e-2).epsilon(1e-9));
  CHECK(t.makespan_s == Approx(2e-6 + 1e-2).epsilon(1e-9));
}

TEST_CASE("k flows through one link each get 1/k of it", "[engine][exact]") {
  // 4 GPUs; GPUs 1, 2, 3 each send 1e9 bytes to GPU 0. All three cross GPU 0's down-link (100 GB/s),
  // so each gets 100/3 GB/s: time = 1e9 / (100e9 / 3) = 30 ms, plus 2 x 0 latency.
  PlatformSpec p = star(4, 100e9, 0.0);
  OpGraph g(4);
  std::vector<double> bytes(16, 0.0);
  for (int s = 1; s < 4; ++s) bytes[s * 4 + 0] = 1e9;
  auto ops = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  Trace t = run_engine(p, identity(4), g, {});
  CHECK(t.end_s[ops[0]] == Approx(0.03).epsilon(1e-9));
  for (int r = 1; r < 4; ++r) CHECK(t.end_s[ops[r]] == Approx(0.03).epsilon(1e-9));
}

TEST_CASE("uniform all-to-all on one switch matches the closed form", "[engine][exact]") {
  // N = 8 GPUs on a non-blocking switch, each link B = 50 GB/s per direction, latency 0.5 us per link.
  // Each GPU sends m = 64 MiB to each of the 7 others. Every up-link carries 7 flows, every down-link 7
  // flows, all equal: each flow gets B/7, so t = 2 * 0.5us + 7 * m / B.
  const int n = 8;
  const double B = 50e9, m = 64.0 * 1048576, lat = 0.5e-6;
  PlatformSpec p = star(n, B, lat);
  OpGraph g(n);
  std::vector<double> bytes(n * n, m);
  auto ops = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  Trace t = run_engine(p, identity(n), g, {});
  const double expected = 2 * lat + 7 * m / B;
  for (OpId id : ops) CHECK(t.end_s[id] == Approx(expected).epsilon(1e-9));
}

TEST_CASE("fast fidelity gives the same uniform all-to-all makespan", "[engine][fast]") {
  const int n = 8;
  const double B = 50e9, m = 64.0 * 1048576, lat = 0.5e-6;
  PlatformSpec p = star(n, B, lat);
  OpGraph g(n);
  std::vector<double> bytes(n * n, m);
  g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  EngineOptions opt;
  opt.fidelity = Fidelity::fast;
  Trace t = run_engine(p, identity(n), g, opt);
  // L07 charges the route latency once and shares bandwidth like CM02 here: same closed form within 0.1 %.
  CHECK(t.makespan_s == Approx(2 * lat + 7 * m / B).epsilon(1e-3));
}

TEST_CASE("fast: each parallel task waits its whole route latency and two tasks share a link fairly",
          "[engine][fast]") {
  // 3 GPUs on one switch (B = 100 GB/s per direction, 3 us per link, so every route has 6 us of latency),
  // SimGrid surf/precision 10 us. Task A: GPU 0 -> 1, 1e9 B, on the comm stream, reached at t = 0. Task B:
  // GPU 2 -> 1, 2e9 B, on the DP stream, reached when GPU 2's 2 us kernel ends. Both cross GPU 1's down-link.
  //   A moves from 6 us (its latency; the kernel ending at 2 us must not cut it short, as L07's own latency
  //   phase would: 4 us left < 10 us of precision is rounded to 0) at 100 GB/s: 2e5 B by 8 us.
  //   B moves from 2 + 6 = 8 us; the down-link is then shared, 50 GB/s each (L07's fair bottleneck).
  //   A ends at 8e-6 + (1e9 - 2e5) / 50e9 = 8e-6 + 0.019996 = 0.020004 s, when B has moved 0.019996 x 50e9
  //   = 9.998e8 B; B's last 1.0002e9 B at 100 GB/s take 0.010002 s: B ends at 0.030006 s
  //   (= 6 us + 3e9 B / 100 GB/s: the down-link is busy from 6 us on).
  PlatformSpec p = star(3, 100e9, 3e-6);
  OpGraph g(3);
  auto a = g.add_collective(OpKind::all_gather, {0, 1}, Stream::comm, OpClass::dispatch, Phase::forward, 0,
                            std::vector<double>{0, 1e9, 0, 0}, {});
  OpId kernel = g.add_compute(2, Stream::compute, OpClass::expert, Phase::forward, 0, 2e-6, Provenance::datasheet);
  auto b = g.add_collective(OpKind::all_gather, {1, 2}, Stream::dp, OpClass::dispatch, Phase::forward, 0,
                            std::vector<double>{0, 0, 2e9, 0}, {{}, {}, {kernel}});
  EngineOptions opt;
  opt.fidelity = Fidelity::fast;
  opt.precision_s = 1e-5;
  Trace t = run_engine(p, identity(3), g, opt);
  CHECK(t.start_s[b[2]] == Approx(2e-6).epsilon(1e-12));
  for (OpId id : {a[0], a[1]}) CHECK(t.end_s[id] == Approx(0.020004).epsilon(1e-9));
  for (OpId id : {b[1], b[2]}) CHECK(t.end_s[id] == Approx(0.030006).epsilon(1e-9));
}

TEST_CASE("streams run in order and compute ops take their duration", "[engine][exact]") {
  // Rank 0: compute 1 ms then 2 ms on the compute stream; a comm-stream op waits for the first.
  // Rank 0's compute stream ends at 3 ms.
  PlatformSpec p = star(2, 100e9, 0.0);
  OpGraph g(2);
  OpId a = g.add_compute(0, Stream::compute, OpClass::attention, Phase::forward, 0, 1e-3, Provenance::datasheet);
  OpId b = g.add_compute(0, Stream::compute, OpClass::dense_mlp, Phase::forward, 0, 2e-3, Provenance::datasheet);
  OpId c = g.add_compute(1, Stream::compute, OpClass::attention, Phase::forward, 0, 0.5e-3, Provenance::datasheet,
                         {a});
  Trace t = run_engine(p, identity(2), g, {});
  CHECK(t.start_s[b] == Approx(1e-3).epsilon(1e-9));
  CHECK(t.end_s[b] == Approx(3e-3).epsilon(1e-9));
  CHECK(t.start_s[c] == Approx(1e-3).epsilon(1e-9));
  CHECK(t.end_s[c] == Approx(1.5e-3).epsilon(1e-9));
  CHECK(t.makespan_s == Approx(3e-3).epsilon(1e-9));
}

TEST_CASE("overlap interference slows compute only while a comm-stream all-to-all is in flight", "[engine]") {
  // 2 GPUs, 1 GB/s links, no latency. Rank 0 and 1 run a 10 us compute op on the compute stream while an
  // all-to-all of 5,000 bytes each way (5 us) runs on the comm stream from t = 0. Interference factor 2:
  // during the first 5 us the compute op progresses at half speed (2.5 us of work done), then at full speed
  // for the remaining 7.5 us of work: it ends at 5 + 7.5 = 12.5 us.
  PlatformSpec p = star(2, 1e9, 0.0);
  OpGraph g(2);
  std::vector<double> bytes = {0, 5000, 5000, 0};
  auto a2a = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});
  OpId c0 = g.add_compute(0, Stream::compute, OpClass::attention, Phase::forward, 0, 10e-6, Provenance::datasheet);
  EngineOptions opt;
  opt.overlap_interference = 2.0;
  Trace t = run_engine(p, identity(2), g, opt);
  CHECK(t.end_s[a2a[0]] == Approx(5e-6).epsilon(1e-9));
  CHECK(t.end_s[c0] == Approx(12.5e-6).epsilon(1e-9));
}

// Two sockets of two GPUs: every GPU has a full-duplex PCIe-like link of 32 GB/s and 1 us per direction (up =
// forward, down = backward); GPUs 0-1 and 2-3 reach each other over a full-duplex socket link of 40 GB/s and no
// latency (forward = socket 0 -> socket 1).
namespace {
PlatformSpec two_sockets() {
  PlatformSpec p;
  for (int i = 0; i < 4; ++i) {
    p.gpu_names.push_back("gpu" + std::to_string(i));
    p.gpu_node.push_back(0);
    p.links.push_back({"gpu" + std::to_string(i) + "-pcie", "pcie", 32e9, 1e-6, true});
  }
  p.links.push_back({"socket0-socket1", "inter_socket", 40e9, 0.0, true});
  std::vector<std::vector<LinkUse>> routes(16);
  for (uint32_t s = 0; s < 4; ++s)
    for (uint32_t d = 0; d < 4; ++d) {
      if (s == d) continue;
      routes[s * 4 + d] = {{s, true}};
      if (s / 2 != d / 2) routes[s * 4 + d].push_back({4, s < 2});
      routes[s * 4 + d].push_back({d, false});
    }
  p.set_routes(routes);
  return p;
}
}  // namespace

TEST_CASE("uneven flows share links max-min fairly in whatever order they start", "[engine][exact]") {
  // SimGrid 3.32's default network/optim:Lazy gets this case wrong (flow E ends at 48.875 us, rank 2 at
  // 158.25 us), and its answer depends on the order the flows are created in; the engine uses Full.
  // Flows (bytes), all starting at 0 after the 2 us route latency; routes: up(src) [socket] down(dst):
  //   A 1->0 4 MB (up1, dn0)       B 1->2 3 MB (up1, s01, dn2)   C 2->0 1 MB (up2, s10, dn0)
  //   D 3->0 4 MB (up3, s10, dn0)  E 3->2 1 MB (up3, dn2)
  // Max-min from t = 2 us: dn0 carries A, C, D -> 32/3 GB/s each (the tightest share). Then up1 leaves
  // 32 - 32/3 = 21.3 GB/s for B and up3 the same for E, but dn2 carries both: B = E = 16 GB/s.
  //   E ends at 2 + 1e6 / 16e9 = 2 + 62.5 = 64.5 us. B (1 MB sent) alone on dn2: 21.3 GB/s (up1's rest).
  //   C ends at 2 + 1e6 / (32e9 / 3) = 95.75 us; B has sent 1 MB + 31.25 us x 21.3 GB/s = 1.667 MB.
  //   From 95.75 us dn0 carries A and D: 16 GB/s each, and up1 leaves B 32 - 16 = 16 GB/s: B's last
  //   1.333 MB take 83.33 us, ending at 179.083 us. A and D (1 MB sent each) need 3 MB at 16 GB/s =
  //   187.5 us: they end at 283.25 us (neither can go faster once B is done: dn0 is shared by the two).
  // Each rank's op ends with its last flow: ranks 0, 1, 3 at 283.25 us; rank 2 (C, B in, E in) at 179.083 us.
  std::vector<double> bytes(16, 0.0);
  bytes[1 * 4 + 0] = 4e6;
  bytes[1 * 4 + 2] = 3e6;
  bytes[2 * 4 + 0] = 1e6;
  bytes[3 * 4 + 0] = 4e6;
  bytes[3 * 4 + 2] = 1e6;
  const double expected[4] = {283.25e-6, 283.25e-6, 179.0833333333e-6, 283.25e-6};
  // The same flows in two creation orders: ranks reaching the collective 0, 1, 2, 3 or 3, 2, 1, 0 (a rank's
  // flows start when it and its peer have both arrived), each its own simulation.
  for (bool reversed : {false, true}) {
    const double err = testing::run_in_child([&] {
      OpGraph g(4);
      // Rank r reaches the all-to-all after a compute op of 1 ns x (its position in the order): the flows of
      // the 2 us latency are created in that order, well before any byte moves.
      std::vector<std::vector<OpId>> deps(4);
      for (int r = 0; r < 4; ++r) {
        const int pos = reversed ? 3 - r : r;
        if (pos > 0)
          deps[r] = {g.add_compute(r, Stream::compute, OpClass::attention, Phase::forward, 0, pos * 1e-9,
                                   Provenance::datasheet)};
      }
      auto ops = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, deps);
      Trace t = run_engine(two_sockets(), identity(4), g, {});
      double worst = 0;
      for (int r = 0; r < 4; ++r) worst = std::max(worst, std::abs(t.end_s[ops[r]] - expected[r]) / expected[r]);
      return worst;
    });
    INFO((reversed ? "ranks arrive 3, 2, 1, 0" : "ranks arrive 0, 1, 2, 3"));
    // The arrival offsets (at most 3 ns) shift the ends by at most that much: 3 ns / 179 us = 1.7e-5.
    CHECK(err < 2e-5);
  }
}

TEST_CASE("compute ops timed by the engine end when SimGrid Execs would with interference too", "[engine]") {
  // Two ranks on a 1 GB/s star, no latency, interference factor 2. Each rank runs compute ops of 3, 7 and 4 us
  // on its compute stream; after the first, an all-to-all of 2,000 bytes each way (2 us) and then one of
  // 5,000 bytes (5 us) run on the comm stream. Worked by hand for rank 0: op 1 runs 0-3 us; the all-to-alls
  // run 3-5 and 5-10 us; op 2 (7 us of work) starts at 3 us at half speed until 10 us (3.5 us of work done),
  // then the last 3.5 us alone: it ends at 13.5 us; op 3 runs 13.5-17.5 us. The same graph runs with compute
  // ops as Execs on the GPU hosts (pstate switching) and as the engine's timers: every start and end agrees.
  auto run = [](bool execs) {
    return testing::run_in_child_text([execs] {
      PlatformSpec p = star(2, 1e9, 0.0);
      OpGraph g(2);
      std::vector<OpId> first(2), all;
      for (int r = 0; r < 2; ++r)
        all.push_back(first[r] = g.add_compute(r, Stream::compute, OpClass::attention, Phase::forward, 0, 3e-6,
                                               Provenance::datasheet));
      std::vector<std::vector<OpId>> deps = {{first[0]}, {first[1]}};
      for (OpId id : g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, {0, 2000, 2000, 0}, deps))
        all.push_back(id);
      for (OpId id : g.add_all_to_all(Stream::comm, OpClass::combine, Phase::forward, 0, {0, 5000, 5000, 0}, {}))
        all.push_back(id);
      for (int r = 0; r < 2; ++r) {
        all.push_back(g.add_compute(r, Stream::compute, OpClass::dense_mlp, Phase::forward, 0, 7e-6,
                                    Provenance::datasheet));
        all.push_back(g.add_compute(r, Stream::compute, OpClass::expert, Phase::forward, 0, 4e-6,
                                    Provenance::datasheet));
      }
      EngineOptions opt;
      opt.overlap_interference = 2.0;
      opt.kernels_as_execs = execs;
      Trace t = run_engine(p, identity(2), g, opt);
      std::string out = std::to_string(t.timed_kernels);
      for (OpId id : all) out += fmt::format(" {:.17g} {:.17g}", t.start_s[id], t.end_s[id]);
      return out;
    });
  };
  const auto timed = run(false), execs = run(true);
  REQUIRE(timed.ok());
  REQUIRE(execs.ok());
  std::istringstream a(timed.text), b(execs.text);
  std::size_t kernels_a = 0, kernels_b = 0;
  a >> kernels_a;
  b >> kernels_b;
  CHECK(kernels_a == 6);  // every compute op is on a compute stream: all timed
  CHECK(kernels_b == 0);
  std::vector<double> va, vb;
  for (double x; a >> x;) va.push_back(x);
  for (double x; b >> x;) vb.push_back(x);
  REQUIRE(va.size() == vb.size());
  for (std::size_t i = 0; i < va.size(); ++i) CHECK(va[i] == Approx(vb[i]).epsilon(1e-9).margin(1e-15));
  // Rank 0's 7 us op is the 7th op listed (after the 2 first ops and the 4 collective ops): its end.
  CHECK(va[2 * 6 + 1] == Approx(13.5e-6).epsilon(1e-9));
  CHECK(va[2 * 7 + 1] == Approx(17.5e-6).epsilon(1e-9));
}

// Each (kind, fidelity) below is its own simulation, run in a child process (DESIGN rule 5); the child returns
// the largest relative error of the ranks' end times against the value worked by hand.
TEST_CASE("an all-gather and a reduce-scatter on a 4-GPU switch match (N-1)/N * S / B", "[engine]") {
  // N = 4 GPUs on a non-blocking switch, links of B = 100 GB/s per direction, latency 1 us per link. The
  // all-gather collects S = 4 x 32 MiB: member i holds a shard S / N and sends it to the 3 others, so every
  // up-link carries 3 equal flows and every down-link 3: t = 2 x 1 us + (N - 1) / N x S / B (what a ring
  // all-gather costs on this switch: N - 1 steps of S / N each). The reduce-scatter of S (each member ends
  // with a reduced S / N block, receiving the 3 other members' partials of it) is the transpose: same time.
  const int n = 4;
  const double B = 100e9, lat = 1e-6, S = 4 * 32.0 * 1048576;
  const double expected = 2 * lat + (n - 1.0) / n * S / B;  // 2 us + 1.00663 ms
  for (OpKind kind : {OpKind::all_gather, OpKind::reduce_scatter})
    for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
      const double err = testing::run_in_child([&] {
        PlatformSpec p = star(n, B, lat);
        OpGraph g(n);
        std::vector<double> bytes(n * n, 0.0);
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j)
            if (i != j) bytes[kind == OpKind::all_gather ? i * n + j : j * n + i] = S / n;
        auto ops = g.add_collective(kind, {0, 1, 2, 3}, Stream::comm, OpClass::expert_all_gather, Phase::forward,
                                    0, bytes, {});
        EngineOptions opt;
        opt.fidelity = f;
        Trace t = run_engine(p, identity(n), g, opt);
        double worst = 0;
        for (OpId id : ops) worst = std::max(worst, std::abs(t.end_s[id] - expected) / expected);
        return worst;
      });
      INFO(op_kind_name(kind) << (f == Fidelity::exact ? " exact" : " fast"));
      CHECK(err < 1e-6);
    }
}

TEST_CASE("group collectives run apart: a small group does not wait for a big one", "[engine]") {
  // 8 GPUs on one switch (B = 100 GB/s per direction, no latency); two all-gathers at once, in groups {0..3}
  // (shards of 64 MiB) and {4..7} (shards of 16 MiB). The groups share no link, so each takes its own
  // 3 x shard / B, in both fidelities (the fast level must not make one task of both), and rank 4's next
  // compute op starts when its own group is done.
  const int n = 8;
  const double B = 100e9, big = 64.0 * 1048576, small = 16.0 * 1048576;
  const double t_big = 3 * big / B, t_small = 3 * small / B;
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    const double err = testing::run_in_child([&] {
      PlatformSpec p = star(n, B, 0.0);
      OpGraph g(n);
      auto group = [&](int base, double shard) {
        std::vector<double> bytes(16, 0.0);
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j)
            if (i != j) bytes[i * 4 + j] = shard;
        return g.add_collective(OpKind::all_gather, {base, base + 1, base + 2, base + 3}, Stream::compute,
                                OpClass::expert_all_gather, Phase::forward, 0, bytes, {});
      };
      auto a = group(0, big);
      auto b = group(4, small);
      if (a[4] != kNoOp || b[0] != kNoOp) return 1.0;  // non-members get no op
      OpId next = g.add_compute(4, Stream::compute, OpClass::expert, Phase::forward, 0, 1e-3, Provenance::datasheet);
      EngineOptions opt;
      opt.fidelity = f;
      Trace t = run_engine(p, identity(n), g, opt);
      double worst = std::abs(t.start_s[next] - t_small) / t_small;
      for (int r = 0; r < 4; ++r) worst = std::max(worst, std::abs(t.end_s[a[r]] - t_big) / t_big);
      for (int r = 4; r < 8; ++r) worst = std::max(worst, std::abs(t.end_s[b[r]] - t_small) / t_small);
      return worst;
    });
    INFO((f == Fidelity::exact ? "exact" : "fast"));
    CHECK(err < 1e-6);
  }
}

TEST_CASE("add_collective checks its members and bytes", "[engine]") {
  OpGraph g(4);
  CHECK_THROWS_AS(g.add_collective(OpKind::all_gather, {1, 0}, Stream::comm, OpClass::expert_all_gather,
                                   Phase::forward, 0, std::vector<double>(4, 0.0), {}),
                  std::invalid_argument);  // members must ascend
  CHECK_THROWS_AS(g.add_collective(OpKind::all_gather, {0, 1}, Stream::comm, OpClass::expert_all_gather,
                                   Phase::forward, 0, std::vector<double>(16, 0.0), {}),
                  std::invalid_argument);  // bytes are members x members
  CHECK_THROWS_AS(g.add_collective(OpKind::compute, {0, 1}, Stream::comm, OpClass::expert_all_gather,
                                   Phase::forward, 0, std::vector<double>(4, 0.0), {}),
                  std::invalid_argument);
  CHECK_THROWS_AS(g.add_collective(OpKind::reduce_scatter, {0, 4}, Stream::comm, OpClass::expert_reduce_scatter,
                                   Phase::forward, 0, std::vector<double>(4, 0.0), {}),
                  std::out_of_range);
  auto ids = g.add_collective(OpKind::reduce_scatter, {1, 3}, Stream::comm, OpClass::expert_reduce_scatter,
                              Phase::forward, 2, {0, 5, 7, 0}, {});
  REQUIRE(ids.size() == 4);
  CHECK(ids[0] == kNoOp);
  CHECK(ids[2] == kNoOp);
  const Collective& c = g.collectives().at(0);
  CHECK(c.kind == OpKind::reduce_scatter);
  CHECK(c.member_index(3) == 1);
  CHECK(c.member_index(2) == -1);
  CHECK(g.op(ids[3]).kind == OpKind::reduce_scatter);
  CHECK(g.op(ids[3]).layer == 2);
}

TEST_CASE("a sparse collective (a ring) runs as its dense matrix would, in both fidelities", "[engine]") {
  // 7 GPUs on one switch (B = 100 GB/s per direction, 1 us per link); members {0, 2, 3, 5, 6} (member index
  // i = 0..4) each send S = 50 MB to member i + 1 (mod 5): every up-link and every down-link carries one
  // transfer, so each ends at 2 us + S / B = 502 us; rank 1 and rank 4 (not members) get no op.
  const int n = 7;
  const double B = 100e9, lat = 1e-6, S = 50e6;
  const double expected = 2 * lat + S / B;
  const std::vector<int> members = {0, 2, 3, 5, 6};
  for (Fidelity f : {Fidelity::exact, Fidelity::fast})
    for (bool sparse : {true, false}) {
      const double err = testing::run_in_child([&] {
        PlatformSpec p = star(n, B, lat);
        OpGraph g(n);
        std::vector<OpId> ops;
        if (sparse) {
          std::vector<Transfer> ring;
          for (int i = 4; i >= 0; --i) ring.push_back({i, (i + 1) % 5, S});  // any order: sorted on insertion
          ring.push_back({0, 2, 0.0});                                         // zero transfers are dropped
          ops = g.add_collective(OpKind::all_gather, members, Stream::comm, OpClass::dp_all_reduce, Phase::backward,
                                 -1, ring, {});
          const Collective& c = g.collectives().at(0);
          if (!c.sparse() || c.transfers.size() != 5 || c.bytes_between(4, 0) != S || c.bytes_between(0, 2) != 0.0 ||
              c.bytes_between(1, 1) != 0.0)
            return 1.0;
        } else {
          std::vector<double> m(25, 0.0);
          for (int i = 0; i < 5; ++i) m[static_cast<std::size_t>(i * 5 + (i + 1) % 5)] = S;
          ops = g.add_collective(OpKind::all_gather, members, Stream::comm, OpClass::dp_all_reduce, Phase::backward,
                                 -1, m, {});
        }
        if (ops[1] != kNoOp || ops[4] != kNoOp) return 1.0;
        EngineOptions opt;
        opt.fidelity = f;
        Trace t = run_engine(p, identity(n), g, opt);
        double worst = 0;
        for (int r : members) worst = std::max(worst, std::abs(t.end_s[ops[static_cast<std::size_t>(r)]] - expected) / expected);
        return worst;
      });
      INFO((f == Fidelity::exact ? "exact" : "fast") << (sparse ? " sparse" : " dense"));
      CHECK(err < 1e-9);
    }
}

TEST_CASE("add_collective checks sparse transfers", "[engine]") {
  OpGraph g(4);
  auto add = [&](std::vector<Transfer> t) {
    return g.add_collective(OpKind::all_gather, {0, 1, 3}, Stream::comm, OpClass::dp_all_reduce, Phase::backward, -1,
                            std::move(t), {});
  };
  CHECK_THROWS_AS(add({{0, 0, 1.0}}), std::invalid_argument);                // to itself
  CHECK_THROWS_AS(add({{0, 3, 1.0}}), std::invalid_argument);                // member index 3 of 3 members
  CHECK_THROWS_AS(add({{0, 1, 1.0}, {0, 1, 2.0}}), std::invalid_argument);   // listed twice
  CHECK_THROWS_AS(add({{0, 1, -1.0}}), std::invalid_argument);               // negative bytes
  CHECK(g.collectives().empty());
  add({{2, 0, 3.0}, {0, 2, 1.0}});
  const Collective& c = g.collectives().at(0);
  CHECK(c.transfers.front().src == 0);  // sorted by (src, dst)
  CHECK(c.bytes_between(2, 0) == 3.0);
  CHECK(c.bytes_between(0, 1) == 0.0);
}

TEST_CASE("fast: each EP group's all-to-all is reduced over its own ranks, with the same times", "[engine]") {
  // 8 GPUs on one switch (B = 100 GB/s per direction, 1 us per link); two all-to-alls at once over the groups
  // {0..3} and {4..7} (two DP replicas), every member sending S = 10 MB to each other member. Each rank sends
  // 3 S over its up-link and receives 3 S over its down-link, the groups share no link: every op ends at
  // 2 us + 3 S / B. Every route has the two-channel shape [up(s), down(d)], so inside the (single) node each
  // group's 12 pairs become a north-west corner of at most 4 + 4 - 1 = 7 cells: fewer than the 24 pairs in.
  const int n = 8;
  const double B = 100e9, lat = 1e-6, S = 10e6;
  const double expected = 2 * lat + 3 * S / B;
  const double err = testing::run_in_child([&] {
    PlatformSpec p = star(n, B, lat);
    OpGraph one(4);
    std::vector<double> m(16, S);
    for (int i = 0; i < 4; ++i) m[static_cast<std::size_t>(i * 5)] = 0.0;
    one.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, m, {});
    const OpGraph g = one.replicate(2);
    if (g.collectives().size() != 2 || g.collectives()[1].members.front() != 4) return 1.0;
    EngineOptions opt;
    opt.fidelity = Fidelity::fast;
    Trace t = run_engine(p, identity(n), g, opt);
    double worst = 0;
    for (OpId id = 0; id < g.ops().size(); ++id) worst = std::max(worst, std::abs(t.end_s[id] - expected) / expected);
    return t.ptask_pairs <= 14 && t.ptask_pairs > 0 ? worst : 2.0;
  });
  CHECK(err < 1e-9);
}

TEST_CASE("exact: a ring's members all end with its slowest hop, a dense collective's members with their own flows",
          "[engine]") {
  // 4 GPUs on one switch, links of B = 100 GB/s except GPU 3's at B / 10, no latency. Transfers of S = 10 MB
  // 0 -> 1 -> 2 -> 3 -> 0. Hops 2 -> 3 and 3 -> 0 cross GPU 3's slow link (one per direction): 10 S / B = 1 ms;
  // the others S / B = 0.1 ms. As a ring (sparse) every member ends at 1 ms, rank 1 too (its data passes
  // through rank 3 before the ring is done); as a dense matrix rank 1 ends with its own two flows at 0.1 ms.
  const double B = 100e9, S = 10e6;
  for (bool sparse : {true, false}) {
    const double err = testing::run_in_child([&] {
      PlatformSpec p = star(4, B, 0.0);
      p.links[3].bandwidth_Bps = B / 10;
      OpGraph g(4);
      std::vector<OpId> ops;
      if (sparse) {
        ops = g.add_collective(OpKind::reduce_scatter, {0, 1, 2, 3}, Stream::dp, OpClass::dp_all_reduce,
                               Phase::backward, -1, std::vector<Transfer>{{0, 1, S}, {1, 2, S}, {2, 3, S}, {3, 0, S}}, {});
      } else {
        std::vector<double> m(16, 0.0);
        m[1] = m[6] = m[11] = m[12] = S;  // 0->1, 1->2, 2->3, 3->0
        ops = g.add_collective(OpKind::reduce_scatter, {0, 1, 2, 3}, Stream::dp, OpClass::dp_all_reduce,
                               Phase::backward, -1, m, {});
      }
      Trace t = run_engine(p, identity(4), g, {});
      const double slow = 10 * S / B, fast = S / B;
      double worst = std::abs(t.end_s[ops[1]] - (sparse ? slow : fast)) / fast;
      for (int r : {0, 2, 3}) worst = std::max(worst, std::abs(t.end_s[ops[static_cast<std::size_t>(r)]] - slow) / slow);
      return worst;
    });
    INFO((sparse ? "ring (sparse)" : "dense"));
    CHECK(err < 1e-9);
  }
}

// Collective launch (issue 13 point 7): every collective call pays EngineOptions::collective_launch_s before its
// data moves, the same in both fidelities; a chunked all-to-all pays it once per chunk.
TEST_CASE("a collective pays its fixed launch time once per call, in both fidelities", "[engine][collective_launch]") {
  // 2 GPUs, links of 100 GB/s and 1 us each (route latency 2 us); rank 0 sends 1e9 bytes to rank 1 (10 ms).
  // Launch L = 10 us. One call: end = L + 2 us + 10 ms = 10.012 ms.
  // The same bytes in two chunks (chunk 2 waits for chunk 1 on each rank): each chunk pays L + 2 us + 5 ms, so
  // the pair ends at 2 x (10 us + 2 us + 5 ms) = 10.024 ms: 12 us (one launch and one route latency) later.
  // With L = 0 the two chunks end at 10.004 ms (only the latency is paid twice). Four chunks pay four launches:
  // 4 x (10 us + 2 us + 2.5 ms) = 10.048 ms (10.008 ms with L = 0).
  const double L = 10e-6, lat = 2e-6, whole = 1e-2;
  for (Fidelity f : {Fidelity::exact, Fidelity::fast})
    for (int chunks : {1, 2, 4})
      for (double launch : {L, 0.0}) {
        const double expected = chunks * (launch + lat + whole / chunks);
        const double err = testing::run_in_child([&] {
          PlatformSpec p = star(2, 100e9, 1e-6);
          OpGraph g(2);
          std::vector<double> bytes = {0, 1e9 / chunks, 0, 0};
          std::vector<OpId> last;
          for (int c = 0; c < chunks; ++c)
            last = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, {});  // stream order
          EngineOptions opt;
          opt.fidelity = f;
          opt.collective_launch_s = launch;
          Trace t = run_engine(p, identity(2), g, opt);
          return std::max(std::abs(t.end_s[last[0]] - expected), std::abs(t.end_s[last[1]] - expected)) / expected;
        });
        INFO((f == Fidelity::exact ? "exact" : "fast") << ", " << chunks << " chunk(s), launch " << launch);
        CHECK(err < 1e-9);
      }
}

TEST_CASE("the collective launch starts when each rank reaches the call", "[engine][collective_launch]") {
  // Rank 1 computes 20 us before the all-to-all; rank 0 reaches it at 0. Launch 10 us: rank 0 is ready at
  // 10 us, rank 1 at 30 us; the flow (1e9 bytes 0 -> 1 at 100 GB/s, route latency 2 us) starts at 30 us and
  // ends at 30 us + 2 us + 10 ms. Rank 0's op still starts at 0 (it waits inside the call, as NCCL does).
  // A collective whose ranks move no bytes still costs the launch: an empty all-to-all ends at 10 us.
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    const double err = testing::run_in_child([&] {
      PlatformSpec p = star(2, 100e9, 1e-6);
      OpGraph g(2);
      OpId c1 = g.add_compute(1, Stream::comm, OpClass::attention, Phase::forward, 0, 20e-6, Provenance::datasheet);
      // Rank 1's all-to-all follows c1 on its comm stream; an empty all-to-all follows on both ranks.
      auto a2a = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, {0, 1e9, 0, 0}, {});
      auto empty = g.add_all_to_all(Stream::comm, OpClass::combine, Phase::forward, 0, {0, 0, 0, 0}, {});
      (void)c1;
      EngineOptions opt;
      opt.fidelity = f;
      opt.collective_launch_s = 10e-6;
      Trace t = run_engine(p, identity(2), g, opt);
      const double end = 30e-6 + 2e-6 + 1e-2;
      double worst = std::abs(t.start_s[a2a[0]]) + std::abs(t.start_s[a2a[1]] - 20e-6) / 20e-6;
      for (OpId id : a2a) worst = std::max(worst, std::abs(t.end_s[id] - end) / end);
      for (OpId id : empty) worst = std::max(worst, std::abs(t.end_s[id] - (end + 10e-6)) / end);
      return worst;
    });
    INFO((f == Fidelity::exact ? "exact" : "fast"));
    CHECK(err < 1e-9);
  }
}

TEST_CASE("the second phase of one call pays no second launch", "[engine][collective_launch]") {
  // A ring all-reduce is built as a reduce-scatter then an all-gather (one NCCL call): with the all-gather
  // marked as the call's continuation, two phases of 5e8 bytes 0 -> 1 (5 ms each at 100 GB/s, 2 us route
  // latency) end at L + 2 x (2 us + 5 ms) = 10 us + 10.004 ms = 10.014 ms, not 10.024 ms.
  for (Fidelity f : {Fidelity::exact, Fidelity::fast}) {
    const double err = testing::run_in_child([&] {
      PlatformSpec p = star(2, 100e9, 1e-6);
      OpGraph g(2);
      g.add_collective(OpKind::reduce_scatter, {0, 1}, Stream::dp, OpClass::dp_all_reduce, Phase::backward, -1,
                       {0, 5e8, 0, 0}, {});
      auto ag = g.add_collective(OpKind::all_gather, {0, 1}, Stream::dp, OpClass::dp_all_reduce, Phase::backward,
                                 -1, {0, 5e8, 0, 0}, {});
      g.continue_call(g.op(ag[0]).collective);
      EngineOptions opt;
      opt.fidelity = f;
      opt.collective_launch_s = 10e-6;
      Trace t = run_engine(p, identity(2), g, opt);
      const double end = 10e-6 + 2 * (2e-6 + 5e-3);
      return std::max(std::abs(t.end_s[ag[0]] - end), std::abs(t.end_s[ag[1]] - end)) / end;
    });
    INFO((f == Fidelity::exact ? "exact" : "fast"));
    CHECK(err < 1e-9);
  }
}

namespace {

// One step of a small exact multi-step workload on 4 ranks, different per step (durations and bytes depend
// on `step`): per rank an attention kernel, a dispatch all-to-all with uneven bytes on the comm stream, an
// expert kernel, a combine all-to-all, and (step 0 only) a ring all-reduce on the dp stream, so a later
// step's first ops also wait for an op of a step before the previous one.
OpGraph stream_test_step(int step) {
  const int R = 4;
  OpGraph g(R);
  std::vector<std::vector<OpId>> attn(R);
  for (int r = 0; r < R; ++r)
    attn[static_cast<std::size_t>(r)] = {g.add_compute(r, Stream::compute, OpClass::attention, Phase::forward, 0,
                                                       (2.0 + r + 0.5 * step) * 1e-6, Provenance::datasheet)};
  std::vector<double> bytes(R * R, 0.0), back(R * R, 0.0);
  for (int s = 0; s < R; ++s)
    for (int d = 0; d < R; ++d)
      if (s != d) {
        bytes[static_cast<std::size_t>(s * R + d)] = 1000.0 * (1 + (s * 3 + d + step) % 5);
        back[static_cast<std::size_t>(d * R + s)] = 700.0 * (1 + (s + 2 * d + step) % 4);
      }
  const std::vector<OpId> dispatch = g.add_all_to_all(Stream::comm, OpClass::dispatch, Phase::forward, 0, bytes, attn);
  std::vector<std::vector<OpId>> expert(R);
  for (int r = 0; r < R; ++r)
    expert[static_cast<std::size_t>(r)] = {
        g.add_compute(r, Stream::compute, OpClass::expert, Phase::forward, 0, (1.0 + (r * 7 + step) % 3) * 1e-6,
                      Provenance::datasheet, {dispatch[static_cast<std::size_t>(r)]})};
  g.add_all_to_all(Stream::comm, OpClass::combine, Phase::forward, 0, back, expert);
  if (step == 0) {
    std::vector<Transfer> ring;
    for (int i = 0; i < R; ++i) ring.push_back({i, (i + 1) % R, 3000.0});
    g.add_collective(OpKind::all_gather, {0, 1, 2, 3}, Stream::dp, OpClass::dp_all_reduce, Phase::backward, -1, ring,
                     attn);
  }
  return g;
}

// Every op's start and end, exactly (hex floats), with the activity and timed-kernel counts.
std::string trace_text(const Trace& t) {
  std::string out = fmt::format("{} {} {:a}", t.simgrid_activities, t.timed_kernels, t.makespan_s);
  for (std::size_t i = 0; i < t.start_s.size(); ++i) out += fmt::format(" {:a} {:a}", t.start_s[i], t.end_s[i]);
  return out;
}

}  // namespace

TEST_CASE("steps fed to the engine while it runs give the whole graph's times exactly", "[engine][stream]") {
  // Five steps of stream_test_step with interference and a collective launch time (timers on both paths),
  // once as the whole graph and once fed step by step: every op's start and end must be the same doubles.
  const int steps = 5;
  EngineOptions opt;
  opt.overlap_interference = 1.5;
  opt.collective_launch_s = 0.5e-6;
  const auto whole = testing::run_in_child_text([&] {
    OpGraph g(4);
    for (int s = 0; s < steps; ++s) g.append(stream_test_step(s), s);
    return trace_text(run_engine(star(4, 1e9, 0.2e-6), identity(4), g, opt));
  });
  const auto fed = testing::run_in_child_text([&] {
    OpGraph g(4);
    g.append(stream_test_step(0), 0);
    int next = 1, calls = 0;
    const StepFeed feed = [&](OpGraph& graph) {
      ++calls;
      graph.append(stream_test_step(next), next);
      return ++next < steps;
    };
    Trace t = run_engine(star(4, 1e9, 0.2e-6), identity(4), g, opt, feed);
    if (calls != steps - 1 || g.ops().size() != t.end_s.size()) return std::string("feed called wrongly");
    return trace_text(t);
  });
  REQUIRE(whole.ok());
  REQUIRE(fed.ok());
  CHECK(whole.text.size() > 100);
  CHECK(fed.text == whole.text);
}

TEST_CASE("a step feed that cannot give the whole graph's times is an error", "[engine][stream]") {
  // Two ranks: A (1 us) on rank 0, then B (1 us) on rank 1 after A. The engine asks the feed when A starts
  // (t = 0) and again when B starts (t = 1 us). A feed that appends the next step only at the second call
  // is too late: the next step's first op on rank 0 waits only for A, which has ended, so it would have
  // started at 1 us already in the whole graph.
  auto step = [](int) {
    OpGraph g(2);
    const OpId a = g.add_compute(0, Stream::compute, OpClass::attention, Phase::forward, 0, 1e-6, Provenance::datasheet);
    g.add_compute(1, Stream::compute, OpClass::attention, Phase::forward, 0, 1e-6, Provenance::datasheet, {a});
    return g;
  };
  auto run = [&](int append_at_call, Fidelity f) {
    return testing::run_in_child_text([=] {
      OpGraph g(2);
      g.append(step(0), 0);
      int calls = 0;
      const StepFeed feed = [&](OpGraph& graph) {
        if (++calls < append_at_call) return true;  // not yet
        graph.append(step(1), 1);
        return false;
      };
      EngineOptions opt;
      opt.fidelity = f;
      const Trace t = run_engine(star(2, 1e9, 0.0), identity(2), g, opt, feed);
      return fmt::format("{:.9g}", t.makespan_s);
    });
  };
  const auto in_time = run(1, Fidelity::exact), late = run(2, Fidelity::exact), never = run(1000, Fidelity::exact),
             fast = run(1, Fidelity::fast);
  REQUIRE(in_time.ok());
  // A 0-1 us, then B (after A) and A' (after A, rank 0's last op) 1-2 us, then B' (after A' and B) 2-3 us.
  CHECK(in_time.text == "3e-06");
  CHECK_FALSE(late.ok());
  CHECK(late.text.find("after every op it depends on had finished") != std::string::npos);
  // A feed still saying "not yet" when the simulation has run out of events.
  CHECK_FALSE(never.ok());
  CHECK(never.text.find("still promised steps") != std::string::npos);
  CHECK_FALSE(fast.ok());
  CHECK(fast.text.find("exact fidelity") != std::string::npos);
}

TEST_CASE("a fed collective between ranks the first step never joins is an error", "[engine][stream]") {
  // Step 0 runs all-gathers within {0, 1} and {2, 3}; the platform is built for those pairs only. A fed step
  // with an all-gather within {1, 2} would need routes (and link merging) the whole graph would have had.
  auto step = [](std::vector<std::vector<int>> groups) {
    OpGraph g(4);
    for (const auto& m : groups) g.add_collective(OpKind::all_gather, m, Stream::comm, OpClass::expert_all_gather,
                                                  Phase::forward, 0, std::vector<double>{0, 100, 100, 0}, {});
    return g;
  };
  auto run = [&](std::vector<std::vector<int>> fed_groups) {
    return testing::run_in_child_text([=] {
      OpGraph g(4);
      g.append(step({{0, 1}, {2, 3}}), 0);
      const StepFeed feed = [&](OpGraph& graph) {
        graph.append(step(fed_groups), 1);
        return false;
      };
      return fmt::format("{:.9g}", run_engine(star(4, 1e9, 0.0), identity(4), g, EngineOptions{}, feed).makespan_s);
    });
  };
  const auto same = run({{0, 1}, {2, 3}}), across = run({{1, 2}});
  REQUIRE(same.ok());
  CHECK(same.text == "2e-07");  // 100 B at 1 GB/s, twice
  CHECK_FALSE(across.ok());
  CHECK(across.text.find("no collective of the first step joins") != std::string::npos);
}

TEST_CASE("steps appended as chunks made apart give the graph append gives", "[engine][stream]") {
  // Five steps of stream_test_step (step 0's ring on the dp stream makes step 2's first ops wait for an op of
  // step 0): appended directly, and as chunks made against a running Tail, the graphs must be equal.
  OpGraph direct(4), chunked(4);
  direct.append(stream_test_step(0), 0);
  chunked.append(stream_test_step(0), 0);
  OpGraph::Tail tail = chunked.tail();
  std::vector<OpGraph::Chunk> chunks;
  for (int s = 1; s < 5; ++s) {
    direct.append(stream_test_step(s), s);
    chunks.push_back(OpGraph::chunk(stream_test_step(s), s, tail));
  }
  // A chunk appended out of order was made for another state of the graph.
  CHECK_THROWS_AS(chunked.append(OpGraph::Chunk(chunks[1])), std::logic_error);
  for (auto& c : chunks) chunked.append(std::move(c));
  REQUIRE(chunked.ops().size() == direct.ops().size());
  for (std::size_t i = 0; i < direct.ops().size(); ++i) {
    const Op &a = direct.ops()[i], &b = chunked.ops()[i];
    INFO("op " << i);
    CHECK(a.id == b.id);
    CHECK(a.deps == b.deps);
    CHECK(a.step == b.step);
    CHECK(a.collective == b.collective);
    CHECK(a.rank == b.rank);
    CHECK(a.stream == b.stream);
    CHECK(a.duration_s == b.duration_s);
  }
  REQUIRE(chunked.collectives().size() == direct.collectives().size());
  for (std::size_t c = 0; c < direct.collectives().size(); ++c) CHECK(chunked.collectives()[c].ops == direct.collectives()[c].ops);
  // Step 2's first op on rank 0 (its attention) waits for rank 0's last ops of step 1 and for step 0's ring op.
  bool found = false;
  for (const Op& o : direct.ops())
    if (o.step == 2 && o.rank == 0 && o.stream == Stream::compute) {
      for (OpId d : o.deps) found = found || (direct.op(d).step == 0 && direct.op(d).stream == Stream::dp);
      break;
    }
  CHECK(found);
}
