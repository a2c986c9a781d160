// Schedule tests on a hand-made 2-rank toy whose every kernel and all-to-all time is a round number, so the
// step time of each schedule is a small formula worked out below.
//
// The toy. Profile: peak FLOP/s and memory bandwidth 1e30 (the roofline term is ~0), launch overhead 1 ms,
// so a kernel costs 1 ms per launch; one measured table gives the dense MLP's SwiGLU 4 ms. Architecture:
// hidden 64 (bf16: 128 bytes per token), 1 attention head, 2 routed experts (one per rank), no shared expert,
// 8 tokens per rank. Forward costs (ms); backward = 2x:
//   A  attention        = 3  (qkv + o projections: 2 launches, core: 1)
//   G  gate + permute   = 3  (router GEMM + top-k: 2, permute: 1); a later chunk's permute alone: P = 1
//   E  experts          = 3  (each rank's one expert: gate_up, SwiGLU, down), also per chunk
//   U  unpermute        = 1  (also per chunk)
//   S  shared expert    = 3  (sized like one routed expert, the model having none)
//   M  dense MLP        = 6  (gate_up 1 + SwiGLU 4 (table) + down 1)
// Routing (a trace): top-1 token t of each rank goes to expert t % 2, so each rank sends 4 tokens = 512 bytes
// to the other; top-2 sends all 8 (1024 bytes). The network is 2 GPUs on a switch, full duplex, no latency,
// bandwidth chosen so the top-1 dispatch (and combine) takes D ms; chunk i of r carries D / r.
// The model: layer 0 dense (Block-MLP) + layer 1 MoE (Block-MoE), one ScMoE pair; or 2 MoE layers.
//
// Each simulation runs in a forked child (one SimGrid engine per process, DESIGN rule 5).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <memory>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/variants/two_gpus.hpp"
#include "models/cost_model.hpp"
#include "models/placement.hpp"
#include "models/profile.hpp"
#include "models/routing.hpp"
#include "models/variants/schedule_util.hpp"
#include "models/variants/step_costs.hpp"
#include "models/variants/variant.hpp"
#include "sim/engine.hpp"
#include "sim/metrics.hpp"
#include "sim/platform_spec.hpp"

using namespace moesim;
using namespace moesim::models;

namespace {

constexpr double kMs = 1e-3;
constexpr int kTokens = 8;
constexpr int kHidden = 64;
constexpr double kTop1Bytes = 4.0 * kHidden * 2.0;  // 4 tokens of 128 bytes each way

// Forward kernel times of the toy, ms (see the header).
constexpr double A = 3, G = 3, E = 3, U = 1, S = 3, M = 6;

struct Toy {
  Architecture arch;
  Placement placement{2, 2};
  std::unique_ptr<CostModel> cost;
  std::unique_ptr<StepCosts> costs;
  std::unique_ptr<RoutingPlan> plan;
  std::vector<int> layers;
  Mode mode = Mode::inference_prefill;
  PlatformSpec platform;
  double bandwidth_Bps = 0;
  StepInput input() const { return {arch, placement, *plan, *costs, mode, 2, kTokens, layers, 0, nullptr}; }
};

Profile toy_profile() {
  Profile p;
  p.id = "toy";
  p.kind = ProfileKind::datasheet;
  p.memory_bandwidth = 1e30;
  p.peak_bf16 = 1e30;
  p.launch_overhead_s = 1e-3;
  ProfileTable swiglu;  // the dense MLP's SwiGLU (k = dense_ffn 32) on 8 tokens: 4 ms
  swiglu.kernel = "swiglu";
  swiglu.dtype = "bf16";
  swiglu.n = 0;
  swiglu.k = 32;
  swiglu.points = {{8.0, 4e-3}};
  p.tables.push_back(swiglu);
  return p;
}

using testing::two_gpus;

// k: experts per token; dispatch_ms: D, the top-1 dispatch time; every_block_moe: 2 MoE layers, else a pair.
std::unique_ptr<Toy> make_toy(int k, Mode mode, double dispatch_ms, bool every_block_moe = false) {
  auto t = std::make_unique<Toy>();
  Architecture& a = t->arch;
  a.name = "toy";
  a.layers = 2;
  a.hidden = kHidden;
  a.expert_ffn = 16;
  a.dense_ffn = 32;
  a.routed_experts = 2;
  a.top_k = k;
  a.attention.kind = AttentionKind::mha;
  a.attention.heads = 1;
  a.attention.kv_heads = 1;
  a.attention.head_dim = 8;
  a.moe_layer = {every_block_moe, true};
  t->cost = std::make_unique<CostModel>(toy_profile(), a);
  t->costs = std::make_unique<StepCosts>(*t->cost, false, 8);
  RoutingSpec rs;
  rs.distribution = RoutingDistribution::trace;
  auto rows = std::make_shared<std::vector<TraceToken>>();
  for (int r = 0; r < 2; ++r)
    for (int tok = 0; tok < kTokens; ++tok) {
      TraceToken row;
      row.layer = -1;
      row.rank = r;
      row.token = tok;
      if (k == 1) {
        row.experts = {tok % 2};
        row.scores = {1.0f};
      } else {
        row.experts = {0, 1};
        row.scores = {0.5f, 0.5f};
      }
      rows->push_back(row);
    }
  rs.trace = rows;
  t->plan = std::make_unique<RoutingPlan>(generate_routing(rs, a, t->placement, kTokens, 1));
  t->layers = {0, 1};
  t->mode = mode;
  t->bandwidth_Bps = kTop1Bytes / (dispatch_ms * kMs);
  t->platform = two_gpus(t->bandwidth_Bps);
  return t;
}

VariantSpec spec_of(const std::string& schedule, int top_k = 1, int chunks = 1, int position = 2, int slot = 0) {
  VariantSpec s;
  s.name = schedule;
  s.schedule = schedule;
  s.top_k = top_k;
  s.chunks = chunks;
  s.position = position;
  s.expert_slot = slot;
  return s;
}

// What a child reports back (plain doubles, so it crosses the pipe as bytes). Times in ms.
struct Outcome {
  double step = NAN, exposed = NAN, comm = NAN, overlap_ratio = NAN;
  double compute_overlap = NAN;  // worst overlap of two compute ops of one rank (ms), 0 when none
  double serial = NAN;           // every op of rank 0 back to back: compute durations + each a2a alone (ms)
  double misplaced = NAN;        // compute ops off the compute stream + (overlapped schedules) a2as off comm
};

Outcome simulate_here(const Toy& toy, const VariantSpec& spec, double interference) {
  const ScheduleInfo* info = find_schedule(spec.schedule);
  if (!info) throw std::runtime_error("no schedule " + spec.schedule);
  const StepInput in = toy.input();
  const OpGraph g = info->build(spec, in);
  Outcome o;
  const bool overlapped = spec.schedule != "topk" && spec.schedule != "shared_expert";
  double serial = 0, misplaced = 0;
  for (const Op& op : g.ops()) {
    if (op.kind == OpKind::compute) {
      misplaced += op.stream != Stream::compute;
      if (op.rank == 0) serial += op.duration_s;
    } else if (overlapped) {
      misplaced += op.stream != Stream::comm;
    }
  }
  for (const Collective& c : g.collectives())
    serial += std::max(c.bytes[1], c.bytes[2]) / toy.bandwidth_Bps;  // the two directions run side by side
  EngineOptions eo;
  eo.overlap_interference = interference;
  const Trace tr = run_engine(toy.platform, {0, 1}, g, eo);
  VariantResult v;
  summarize(g, tr, static_cast<int>(in.layers.size()), false, v);
  double worst = 0;
  for (int r = 0; r < 2; ++r) {
    std::vector<std::pair<double, double>> iv;
    for (const Op& op : g.ops())
      if (op.kind == OpKind::compute && op.rank == r && op.duration_s > 0)
        iv.emplace_back(tr.start_s[op.id], tr.end_s[op.id]);
    std::sort(iv.begin(), iv.end());
    for (std::size_t i = 1; i < iv.size(); ++i) worst = std::max(worst, iv[i - 1].second - iv[i].first);
  }
  o.step = v.step_time_s / kMs;
  o.exposed = v.exposed_comm_s / kMs;
  o.comm = v.comm_s / kMs;
  o.overlap_ratio = v.overlap_ratio;
  o.compute_overlap = worst / kMs;
  o.serial = serial / kMs;
  o.misplaced = misplaced;
  return o;
}

// Runs one simulation in a forked child and returns its outcome (the parent never starts SimGrid).
// interference: EngineOptions::overlap_interference (compute slow-down while a comm-stream a2a is in flight).
Outcome simulate(const Toy& toy, const VariantSpec& spec, double interference = 1.0) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    Outcome o;
    int code = 0;
    try {
      o = simulate_here(toy, spec, interference);
    } catch (...) {
      code = 1;
    }
    const ssize_t n = ::write(fds[1], &o, sizeof o);
    ::close(fds[1]);
    ::_exit(n == static_cast<ssize_t>(sizeof o) ? code : 2);
  }
  ::close(fds[1]);
  Outcome o;
  std::size_t got = 0;
  char* p = reinterpret_cast<char*>(&o);
  while (got < sizeof o) {
    const ssize_t n = ::read(fds[0], p + got, sizeof o - got);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  INFO("schedule " << spec.schedule << ": child exit status " << status);
  REQUIRE(got == sizeof o);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return o;
}

Approx ms(double v) { return Approx(v).epsilon(1e-6).margin(1e-6); }

}  // namespace

TEST_CASE("topk top-2 runs every op in sequence", "[variants][topk]") {
  // D = 4 ms for top-1, so top-2's all-to-alls carry twice the bytes: 8 ms each.
  // Pair: A + M (dense block) + A + G + 8 + E + 8 + U = 3 + 6 + 3 + 3 + 8 + 3 + 8 + 1 = 35 ms.
  // Both all-to-alls are exposed (16 ms), nothing overlaps.
  auto toy = make_toy(2, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("topk", 2));
  CHECK(o.step == ms(A + M + A + G + 8 + E + 8 + U));
  CHECK(o.step == ms(35));
  CHECK(o.exposed == ms(16));
  CHECK(o.overlap_ratio == Approx(0.0).margin(1e-9));
}

TEST_CASE("shared_expert is top-1 plus a routed-sized shared expert in sequence (inference)", "[variants][shared]") {
  // D = 4: A + M + A + G + D + E + D + U + S = 3 + 6 + 3 + 3 + 4 + 3 + 4 + 1 + 3 = 30 ms, 8 ms exposed.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("shared_expert"));
  CHECK(o.step == ms(30));
  CHECK(o.exposed == ms(8));
}

TEST_CASE("shared_expert training mirrors the forward pass with twice the compute", "[variants][shared]") {
  // Forward 30 ms (above). Backward, MoE layer first: S' 6, U' 2, combine' 4, E' 6, dispatch' 4, G' 6, A' 6,
  // then the dense layer: M' 12, A' 6 -> 52 ms. Step = 82 ms; four 4 ms all-to-alls exposed = 16 ms.
  auto toy = make_toy(1, Mode::training, 4);
  const Outcome o = simulate(*toy, spec_of("shared_expert"));
  CHECK(o.step == ms(30 + 52));
  CHECK(o.exposed == ms(16));
}

TEST_CASE("pipelined with 2 chunks overlaps chunk 0's combine and chunk 1's dispatch with the experts",
          "[variants][pipelined]") {
  // D = 6, so each chunk's all-to-all takes 3 ms. Compute: A 0-3, M 3-9, A 9-12, G0 12-15 (gate + permute),
  // G1 15-16 (permute only). Comm: d0 15-18, d1 18-21. E0 after d0: 18-21. c0 after d1 and E0: 21-24.
  // E1 after d1 and E0: 21-24. c1 after c0 and E1: 24-27. U0 after c0 and E1: 24-25. U1 after c1: 27-28.
  // Step = 28 ms (topk top-1: 19 + 2 x 6 = 31). Exposed: d0 has only G1 beside it (16-18: 2 ms), c1 only
  // U0 (25-27: 2 ms) -> 4 ms: the first dispatch and the last combine.
  auto toy = make_toy(1, Mode::inference_prefill, 6);
  const Outcome o = simulate(*toy, spec_of("pipelined", 1, 2));
  CHECK(o.step == ms(28));
  CHECK(o.exposed == ms(4));
  CHECK(o.misplaced == 0);
}

TEST_CASE("pipelined with 1 chunk is the topk timeline", "[variants][pipelined]") {
  // Each all-to-all still waits for its neighbours: A + M + A + G + D + E + D + U = 19 + 2 x 6 = 31 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 6);
  const Outcome p = simulate(*toy, spec_of("pipelined", 1, 1));
  const Outcome t = simulate(*toy, spec_of("topk", 1));
  CHECK(p.step == ms(31));
  CHECK(t.step == ms(31));
}

TEST_CASE("pipelined training: the backward pipeline mirrors the forward one", "[variants][pipelined]") {
  // Forward ends at 28 (above). Backward (2x compute, all-to-alls still 3 ms per chunk), MoE layer first:
  // U0' 28-30, U1' 30-32; comm c0' (after U0') 30-33, c1' 33-36; E0' (after c0') 33-39; d0' (after c1', E0')
  // 39-42; E1' (after c1', E0') 39-45; d1' (after d0', E1') 45-48; G0' (gate + permute, 6, after d0', E1')
  // 45-51; G1' (permute, 2, after d1') 51-53; A' 53-59; dense layer: M' 59-71, A' 71-77. Step = 77 ms.
  auto toy = make_toy(1, Mode::training, 6);
  const Outcome o = simulate(*toy, spec_of("pipelined", 1, 2));
  CHECK(o.step == ms(77));
}

TEST_CASE("scmoe position 2, slot 2 hides a short all-to-all completely", "[variants][scmoe]") {
  // D = 4: attn + G + max(mlp, D) + E + max(attn + shared, D) + U = 3 + 3 + max(6, 4) + 3 + max(6, 4) + 1
  //      = 22 ms. Both all-to-alls run beside compute: exposed 0, overlap ratio 1.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2));
  CHECK(o.step == ms(A + G + std::max(M, 4.0) + E + std::max(A + S, 4.0) + U));
  CHECK(o.step == ms(22));
  CHECK(o.exposed == ms(0));
  CHECK(o.overlap_ratio == Approx(1.0));
  CHECK(o.misplaced == 0);
}

TEST_CASE("scmoe under overlap interference: compute beside an all-to-all runs slower", "[variants][scmoe]") {
  // Interference f = 1.5, D = 4, position 2, slot 2. The dispatch runs 6-10; the dense MLP beside it does
  // only 4 / 1.5 = 2.667 ms of its 6 ms of work by 10, the rest at full speed: it ends at 13.333. E 13.333-
  // 16.333; the combine runs 16.333-20.333 while attention does 2.667 of its 3 ms, ending at 20.667; the
  // shared expert (nothing beside it) 20.667-23.667; U 23.667-24.667. So each window stretches to
  // D + (work - D / f):  3 + 3 + (4 + 6 - 4/1.5) + 3 + (4 + 6 - 4/1.5) + 1 = 24.667 ms (22 ms without
  // interference). The sequential shared_expert schedule has no comm-stream a2a, so it stays at 30 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const double f = 1.5;
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2), f);
  const Outcome seq = simulate(*toy, spec_of("shared_expert"), f);
  CHECK(o.step == ms(A + G + (4 + M - 4 / f) + E + (4 + A + S - 4 / f) + U));
  CHECK(o.step == ms(24.0 + 2.0 / 3.0));
  CHECK(seq.step == ms(30));
}

TEST_CASE("scmoe position 2, slot 2 with an all-to-all longer than its window", "[variants][scmoe]") {
  // D = 8: 3 + 3 + max(6, 8) + 3 + max(6, 8) + 1 = 26 ms; 2 ms of each all-to-all is exposed: 4 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 8);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2));
  CHECK(o.step == ms(26));
  CHECK(o.exposed == ms(4));
  CHECK(o.overlap_ratio == Approx(1.0 - 4.0 / 16.0).epsilon(1e-6));
}

TEST_CASE("scmoe position 1, slot 3: the gate waits for the dense MLP", "[variants][scmoe]") {
  // D = 4: attn + mlp + G + max(attn, D) + E + max(shared, D) + U = 3 + 6 + 3 + 4 + 3 + 4 + 1 = 24 ms;
  // each all-to-all outlasts its 3 ms window by 1 ms: exposed 2 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 1, 3));
  CHECK(o.step == ms(A + M + G + std::max(A, 4.0) + E + std::max(S, 4.0) + U));
  CHECK(o.step == ms(24));
  CHECK(o.exposed == ms(2));
}

TEST_CASE("scmoe position 3, slot 1: gate first, the combine overlaps three backbone ops", "[variants][scmoe]") {
  // D = 4: G + max(attn, D) + E + max(mlp + attn + shared, D) + U = 3 + 4 + 3 + 12 + 1 = 23 ms; exposed 1 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 3, 1));
  CHECK(o.step == ms(G + std::max(A, 4.0) + E + std::max(M + A + S, 4.0) + U));
  CHECK(o.step == ms(23));
  CHECK(o.exposed == ms(1));
}

TEST_CASE("scmoe position 2, slot 4 leaves the combine exposed", "[variants][scmoe]") {
  // D = 4: attn + G + max(mlp + attn + shared, D) + E + D + U = 3 + 3 + max(12, 4) + 3 + 4 + 1 = 26 ms;
  // the combine (4 ms) has only the unpermute after it, which waits for it: exposed 4.
  auto toy = make_toy(1, Mode::inference_prefill, 4);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 2, 4));
  CHECK(o.step == ms(A + G + std::max(M + A + S, 4.0) + E + 4 + U));
  CHECK(o.step == ms(26));
  CHECK(o.exposed == ms(4));
}

TEST_CASE("scmoe training, position 2, slot 2: the backward all-to-alls are hidden too", "[variants][scmoe]") {
  // Forward 22 ms (above). Backward (2x): U' 2, [shared' 6 + attn' 6 beside combine' 4], E' 6,
  // [mlp' 12 beside dispatch' 4], G' 6, attn' 6 = 2 + 12 + 6 + 12 + 6 + 6 = 44. Step = 66 ms, exposed 0.
  auto toy = make_toy(1, Mode::training, 4);
  const Outcome o = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2));
  CHECK(o.step == ms(22 + 44));
  CHECK(o.exposed == ms(0));
}

TEST_CASE("scmoe_pipelined with 2 chunks beats scmoe when the dispatch outlasts its window", "[variants][scmoe]") {
  // D = 12 (6 ms per chunk), position 2, slot 2. Compute: A 0-3, G0 3-6, G1 6-7, M 7-13; comm d0 6-12,
  // d1 12-18. E0 (after d0, M) 13-16; E1 (after d1) 18-21; comm c0 (after d1, E0) 18-24, c1 24-30;
  // A 21-24, S 24-27, U0 (after c0) 27-28, U1 (after c1) 30-31. Step = 31 ms.
  // Unchunked scmoe: 3 + 3 + max(6, 12) + 3 + max(6, 12) + 1 = 34 ms; chunks: 1 gives the same 34 ms.
  // Exposed in the chunked run: comm busy 6-30, compute idle 16-18 and 28-30 -> 4 ms.
  auto toy = make_toy(1, Mode::inference_prefill, 12);
  const Outcome p2 = simulate(*toy, spec_of("scmoe_pipelined", 1, 2, 2, 2));
  const Outcome p1 = simulate(*toy, spec_of("scmoe_pipelined", 1, 1, 2, 2));
  const Outcome sc = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2));
  CHECK(p2.step == ms(31));
  CHECK(p2.exposed == ms(4));
  CHECK(sc.step == ms(34));
  CHECK(p1.step == ms(34));
}

TEST_CASE("scmoe with every block MoE uses each block's attention and shared expert as the window",
          "[variants][scmoe]") {
  // Two MoE blocks, D = 2. Position 3 (the block input), slot 1 (after attention), per block:
  //   G + max(attn, D) + E + max(shared, D) + U = 3 + 3 + 3 + 3 + 1 = 13 ms -> 26 ms, nothing exposed.
  // Position 2, slot 4 (after the shared expert), per block: attn + G + max(shared, D) + E + D + U
  //   = 3 + 3 + 3 + 3 + 2 + 1 = 15 -> 30 ms, the combines exposed (2 x 2 = 4 ms).
  // Position 2, slot 2 means "after attention" in a lone block (= slot 1): attn + G + D + E + max(shared, D)
  //   + U = 3 + 3 + 2 + 3 + 3 + 1 = 15 -> 30 ms, the dispatches exposed (4 ms).
  auto toy = make_toy(1, Mode::inference_prefill, 2, true);
  const Outcome a = simulate(*toy, spec_of("scmoe", 1, 1, 3, 1));
  const Outcome b = simulate(*toy, spec_of("scmoe", 1, 1, 2, 4));
  const Outcome c = simulate(*toy, spec_of("scmoe", 1, 1, 2, 2));
  CHECK(a.step == ms(26));
  CHECK(a.exposed == ms(0));
  CHECK(b.step == ms(30));
  CHECK(b.exposed == ms(4));
  CHECK(c.step == ms(30));
  CHECK(c.exposed == ms(4));
}

TEST_CASE("no schedule runs two compute ops of one rank at once, and overlap never costs time",
          "[variants][invariants]") {
  // For every schedule and option, inference and training, short and long all-to-alls, pair and every-block-MoE:
  //  - compute ops of one rank never overlap in the trace (one compute stream per GPU);
  //  - every compute op is on the compute stream, every overlapped all-to-all on the comm stream;
  //  - the step is no longer than the same ops run back to back (the serialised time);
  //  - scmoe is never slower than shared_expert, the same work (top-1 + shared) without the shortcut.
  std::vector<VariantSpec> specs = {spec_of("topk", 1), spec_of("shared_expert"), spec_of("pipelined", 1, 2),
                                    spec_of("pipelined", 1, 3)};
  for (int pos = 1; pos <= 3; ++pos)
    for (int slot = pos == 1 ? 2 : 1; slot <= 4; ++slot) {
      specs.push_back(spec_of("scmoe", 1, 1, pos, slot));
      if (slot == 2 || slot == 3) specs.push_back(spec_of("scmoe_pipelined", 1, 2, pos, slot));
    }
  for (bool every_moe : {false, true})
    for (Mode mode : {Mode::inference_prefill, Mode::training})
      for (double d : {2.0, 9.0, 30.0}) {
        auto toy = make_toy(1, mode, d, every_moe);
        const Outcome seq = simulate(*toy, spec_of("shared_expert"));
        for (const VariantSpec& s : specs) {
          INFO(s.schedule << " position " << s.position << " slot " << s.expert_slot << " chunks " << s.chunks
                          << " mode " << mode_name(mode) << " D " << d << " every block MoE " << every_moe);
          const Outcome o = simulate(*toy, s);
          CHECK(o.compute_overlap <= 1e-9);
          CHECK(o.misplaced == 0);
          CHECK(o.step <= o.serial * (1 + 1e-9) + 1e-9);
          if (s.schedule == "scmoe") CHECK(o.step <= seq.step * (1 + 1e-9) + 1e-9);
        }
      }
}

TEST_CASE("scmoe candidates: top-1, every legal slot for auto, pinned slots raised past the gate",
          "[variants][scmoe]") {
  const ScheduleInfo* info = find_schedule("scmoe");
  REQUIRE(info != nullptr);
  REQUIRE(info->candidates);
  auto slots = [&](int position, int slot) {
    std::vector<int> out;
    for (const VariantSpec& c : info->candidates(spec_of("scmoe", 2, 1, position, slot))) {
      CHECK(c.top_k == 1);
      CHECK(c.shown.at("expert_slot") == std::to_string(c.expert_slot));
      out.push_back(c.expert_slot);
    }
    return out;
  };
  CHECK(slots(1, 0) == std::vector<int>{2, 3, 4});
  CHECK(slots(2, 0) == std::vector<int>{1, 2, 3, 4});
  CHECK(slots(3, 0) == std::vector<int>{1, 2, 3, 4});
  CHECK(slots(2, 3) == std::vector<int>{3});
  CHECK(slots(1, 1) == std::vector<int>{2});
  const ScheduleInfo* sp = find_schedule("scmoe_pipelined");
  REQUIRE(sp != nullptr);
  CHECK(sp->candidates(spec_of("scmoe_pipelined", 2, 4, 2, 0)).size() == 4);
  const ScheduleInfo* se = find_schedule("shared_expert");
  REQUIRE(se != nullptr);
  const auto c = se->candidates(spec_of("shared_expert", 2));
  REQUIRE(c.size() == 1);
  CHECK(c[0].top_k == 1);
  CHECK(find_schedule("pipelined") != nullptr);
}

TEST_CASE("pair time is two blocks' worth of the step", "[variants][metrics]") {
  // 4 layers alternating dense / MoE = 2 pairs: 12 ms / 2 = 6 ms. Every block MoE: per-layer 3 ms x 2 = 6 ms.
  CHECK(pair_time_s(12e-3, 4) == Approx(6e-3));
  CHECK(pair_time_s(12e-3, 0) == 0.0);
}
