// ReaLB (realb, realb_seq, lowp_all) and EPLB (eplb) worked by hand on a 2-rank toy whose routing is fixed by
// construction, so every rank's load, vision share and all-to-all bytes are known exactly.
//
// The toy. One MoE layer (attention, then the MoE block), hidden 1024 (bf16: 2048 bytes per token), 4 routed
// experts of FFN 512, top-1, contiguous placement: rank 0 holds experts {0, 1}, rank 1 holds {2, 3}.
// Profile: peaks 100 TFLOP/s bf16, 200 TFLOP/s fp8, 1 TB/s, launch 5 us (kernel costs come from CostModel
// calls below; the test does not care what they are, only how the schedule combines them).
// Multimodal routing: every rank holds T = 1024 tokens = one request of `text` text tokens followed by one
// image of 1024 - text vision tokens; text tokens all pick expert 0 (hot_experts [0], hot_share 1) and vision
// tokens all pick expert 2 (hot_experts [2], hot_share 1). So with text = 256:
//   rank 0 receives 2 x 256 = 512 text pairs (expert 0), rank 1 receives 2 x 768 = 1536 vision pairs (expert 2);
//   mean load 1024; rank 1: 1536 > (1 + 0.2) x 1024 and vision share 1 >= 0.7 -> low precision; rank 0 not.
//   Dispatch: 0 -> 1 carries 768 tokens, 1 -> 0 carries 256 tokens (the diagonal stays local); each direction
//   of each GPU link carries one flow, so the all-to-all lasts 768 x 2048 B / bw = D; the combine is the
//   transpose: also D.
// The network: 2 GPUs on a switch (full duplex, no latency), bandwidth chosen to give the D a test wants.
//
// Each simulation runs in a forked child (one SimGrid engine per process, DESIGN rule 5).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
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
#include "sim/diagnostics.hpp"
#include "sim/engine.hpp"
#include "sim/metrics.hpp"
#include "sim/platform_spec.hpp"
#include "sim/result_json.hpp"
#include "sim/yaml_view.hpp"
#include "tests/sim/test_support.hpp"
#include "tests/variants/toy_model.hpp"

using namespace moesim;
using namespace moesim::models;

namespace moesim::models {
// models/variants/realb.cpp: the ranks of `layer` that ReaLB's policy switches to the low precision.
std::vector<bool> realb_low_ranks(const RoutingPlan& plan, int layer, double load_threshold,
                                  double modality_threshold, int64_t batch_threshold);
}  // namespace moesim::models

namespace {

constexpr int64_t kT = 1024;      // tokens per rank
constexpr int kHidden = 1024;
constexpr double kBytesPerToken = kHidden * 2.0;

Profile toy_profile() { return testing::toy_gpu("toy-fp8", 2e14); }

Architecture toy_arch() { return testing::toy_moe("toy-vl", 4, 1); }

using testing::two_gpus;

std::shared_ptr<RoutingSpec> hot_on(int expert) {
  auto s = std::make_shared<RoutingSpec>();
  s->distribution = RoutingDistribution::hot;
  s->hot_experts = {expert};
  s->hot_share = 1.0;
  s->rotate_hot = false;
  return s;
}

struct Toy {
  Architecture arch = toy_arch();
  Placement placement{4, 2};
  Profile profile = toy_profile();
  std::unique_ptr<CostModel> cost;
  std::unique_ptr<StepCosts> costs;
  std::unique_ptr<RoutingPlan> plan;
  std::vector<int> layers{0};
  PlatformSpec platform;
  StepInput input() const {
    return {arch, placement, *plan, *costs, Mode::inference_prefill, 2, kT, layers, 0, nullptr};
  }
};

// text: text tokens per request (the rest of the rank's 1024 tokens is one image); dispatch_s: D.
std::unique_ptr<Toy> make_toy(int64_t text, double dispatch_s) {
  auto t = std::make_unique<Toy>();
  t->cost = std::make_unique<CostModel>(t->profile, t->arch);
  t->costs = std::make_unique<StepCosts>(*t->cost, false, kT);
  RoutingSpec rs = *hot_on(0);
  RequestShape shape;
  shape.text_tokens = text;
  shape.images_min = shape.images_max = 1;
  shape.tokens_per_image = kT - text;
  rs.requests = shape;
  rs.vision = hot_on(2);
  t->plan = std::make_unique<RoutingPlan>(generate_routing(rs, t->arch, t->placement, kT, 7));
  // The larger direction of the dispatch: max(vision tokens of rank 0, text tokens of rank 1) tokens.
  const double bytes = static_cast<double>(std::max(kT - text, text)) * kBytesPerToken;
  t->platform = two_gpus(bytes / dispatch_s);
  return t;
}

VariantSpec decode_spec(const std::string& yaml, const Toy& toy) {
  Diagnostics d;
  const YamlView v = YamlView::load_string(yaml, "variant", &d);
  VariantSpec s = decode_variant(v, toy.arch, 2, ".", &toy.profile, Mode::inference_prefill);
  INFO(d.str());
  REQUIRE(d.empty());
  return s;
}

VariantResult simulate_here(const Toy& toy, const VariantSpec& spec, double interference) {
  const ScheduleInfo* info = find_schedule(spec.schedule);
  if (!info) throw std::runtime_error("no schedule " + spec.schedule);
  const StepInput in = toy.input();
  const OpGraph g = info->build(spec, in);
  EngineOptions eo;
  eo.overlap_interference = interference;
  const Trace tr = run_engine(toy.platform, {0, 1}, g, eo);
  VariantResult v;
  v.name = "v";  // every schedule reports under one name, so two results compare field by field
  summarize(g, tr, 1, true, v);
  summarize_moe(g, tr, "bf16", v);
  v.wall_s = 0;
  return v;
}

// Simulates in a forked child and returns its result (it crosses the pipe as JSON; doubles round-trip).
VariantResult simulate(const Toy& toy, const VariantSpec& spec, double interference = 1.0) {
  const auto child =
      testing::run_in_child_text([&] { return variant_to_json(simulate_here(toy, spec, interference)).dump(); });
  INFO("schedule " << spec.schedule << ": " << child.text.substr(0, 300));
  REQUIRE(child.ok());
  return variant_from_json(nlohmann::json::parse(child.text));
}

Approx secs(double v) { return Approx(v).epsilon(1e-9).margin(1e-12); }

// Forward costs (seconds) of the toy, from the cost model.
struct Costs {
  double A, G, U;                   // attention, gate + permute, unpermute (T tokens, every rank)
  double e0_bf16, e1_bf16;          // experts of rank 0 (512 pairs on expert 0) and rank 1 (1536 on expert 2)
  double e0_fp8, e1_fp8;            // the same in fp8 (W8A8: activations quantised on the fly)
  double cast1;                     // rank 1's weight cast of experts {2, 3} to fp8
};

Costs costs_of(const Toy& t, int64_t load0, int64_t load1) {
  Costs c{};
  const CostModel& m = *t.cost;
  c.A = t.costs->attention(kT).seconds;
  c.G = (m.router(kT) + m.permute(kT)).seconds;
  c.U = m.unpermute(kT).seconds;
  c.e0_bf16 = m.grouped_experts({load0, 0}).seconds;
  c.e1_bf16 = m.grouped_experts({load1, 0}).seconds;
  c.e0_fp8 = m.expert_group({load0, 0}, {0, 1}, DType::fp8).seconds;
  c.e1_fp8 = m.expert_group({load1, 0}, {2, 3}, DType::fp8).seconds;
  c.cast1 = m.weight_cast({2, 3}, DType::fp8).seconds;
  return c;
}

const char* kRealb = "{name: r, schedule: realb, precision: fp8}";
const char* kRealbSeq = "{name: r, schedule: realb_seq, precision: fp8}";
const char* kLowpAll = "{name: r, schedule: lowp_all, precision: fp8}";
const char* kTopk = "{name: r, schedule: topk}";

double precision_code(const VariantResult& v, int rank) {
  for (const auto& row : v.rows)
    if (row.rank == rank && row.layer == 0) return row.precision == "fp8" ? 1 : row.precision == "bf16" ? 0 : -1;
  return -2;
}

}  // namespace

TEST_CASE("realb policy: the overloaded vision rank goes low, only above batch_threshold", "[variants][realb]") {
  auto t = make_toy(256, 1e-3);
  // Loads {512, 1536} (mean 1024), vision shares {0, 1}: see the header.
  CHECK(t->plan->tokens_per_rank_received(0) == std::vector<int64_t>{512, 1536});
  CHECK(t->plan->vision_per_rank_received(0) == std::vector<int64_t>{0, 1536});
  CHECK(realb_low_ranks(*t->plan, 0, 0.2, 0.7, 2048) == std::vector<bool>{false, true});
  // Global tokens 2 x 1024 = 2048: a threshold of 2049 keeps everything in bf16.
  CHECK(realb_low_ranks(*t->plan, 0, 0.2, 0.7, 2049) == std::vector<bool>{false, false});
  // 1536 > (1 + 0.5) x 1024 = 1536 is false: load_threshold 0.5 is exactly at the edge.
  CHECK(realb_low_ranks(*t->plan, 0, 0.49, 0.7, 0) == std::vector<bool>{false, true});
  CHECK(realb_low_ranks(*t->plan, 0, 0.5, 0.7, 0) == std::vector<bool>{false, false});
  // A vision share of 1 passes every modality threshold up to 1.
  CHECK(realb_low_ranks(*t->plan, 0, 0.2, 1.0, 0) == std::vector<bool>{false, true});
}

TEST_CASE("realb hides the cast under a longer dispatch: max(cast, D) + max over ranks of gemm(precision, load)",
          "[variants][realb]") {
  // D = 2 x cast. realb: A + G + max(c, D) + max(E0 bf16, E1 fp8) + D + U (rank 1's cast on the compute stream
  // while the dispatch is in flight on the comm stream); the MoE layer runs from the gate to the end of the
  // combine: G + max(c, D) + max(E0, E1) + D. realb_seq casts first: A + G + c + D + max(E0, E1) + D + U.
  // topk: A + G + D + max(E0 bf16, E1 bf16) + D + U; lowp_all: A + G + D + max(E0 fp8, E1 fp8) + D + U.
  auto probe = make_toy(256, 1e-3);
  const Costs c = costs_of(*probe, 512, 1536);
  REQUIRE(c.cast1 > 0);
  REQUIRE(c.e1_fp8 < c.e1_bf16);  // the toy is meaningful: fp8 is faster on the hot rank
  REQUIRE(c.e1_fp8 > c.e0_bf16);  // and the hot rank, in fp8, still sets the layer (max over ranks)
  const double D = 2 * c.cast1;
  auto t = make_toy(256, D);
  const VariantResult rb = simulate(*t, decode_spec(kRealb, *t));
  const VariantResult rs = simulate(*t, decode_spec(kRealbSeq, *t));
  const VariantResult tk = simulate(*t, decode_spec(kTopk, *t));
  const VariantResult la = simulate(*t, decode_spec(kLowpAll, *t));
  const double ex = std::max(c.e0_bf16, c.e1_fp8);
  CHECK(rb.step_time_s == secs(c.A + c.G + std::max(c.cast1, D) + ex + D + c.U));
  CHECK(rb.extra.at("moe_layer_time_s") == secs(c.G + D + ex + D));
  CHECK(rs.step_time_s == secs(c.A + c.G + c.cast1 + D + ex + D + c.U));
  CHECK(rs.extra.at("moe_layer_time_s") == secs(c.G + c.cast1 + D + ex + D));
  CHECK(tk.step_time_s == secs(c.A + c.G + D + std::max(c.e0_bf16, c.e1_bf16) + D + c.U));
  CHECK(la.step_time_s == secs(c.A + c.G + D + std::max(c.e0_fp8, c.e1_fp8) + D + c.U));
  // The cast lies wholly under the dispatch; realb_seq hides none of it. cast_s is per rank: (0 + c) / 2.
  CHECK(rb.extra.at("cast_hidden_frac") == Approx(1.0));
  CHECK(rs.extra.at("cast_hidden_frac") == Approx(0.0).margin(1e-12));
  CHECK(rb.extra.at("cast_s") == secs(c.cast1 / 2));
  CHECK(la.extra.count("cast_s") == 0);  // weights quantised offline: no cast op
  // Precision map: rank 0 bf16, rank 1 fp8 under realb and realb_seq; both fp8 under lowp_all; bf16 under topk.
  CHECK(precision_code(rb, 0) == 0);
  CHECK(precision_code(rb, 1) == 1);
  CHECK(precision_code(rs, 1) == 1);
  CHECK(precision_code(la, 0) == 1);
  CHECK(precision_code(tk, 1) == 0);
  REQUIRE(rb.lowp_share.size() == 1);
  CHECK(rb.lowp_share[0] == std::vector<double>{0.0, 1.0});
}

TEST_CASE("realb with a dispatch shorter than the cast exposes the rest of the cast", "[variants][realb]") {
  // D = cast / 2: the experts wait for the cast: A + G + c + max(E0, E1 fp8) + D + U; half the cast is hidden.
  auto probe = make_toy(256, 1e-3);
  const Costs c = costs_of(*probe, 512, 1536);
  const double D = c.cast1 / 2;
  auto t = make_toy(256, D);
  const VariantResult rb = simulate(*t, decode_spec(kRealb, *t));
  const VariantResult rs = simulate(*t, decode_spec(kRealbSeq, *t));
  const double ex = std::max(c.e0_bf16, c.e1_fp8);
  CHECK(rb.step_time_s == secs(c.A + c.G + std::max(c.cast1, D) + ex + D + c.U));
  CHECK(rb.step_time_s == secs(c.A + c.G + c.cast1 + ex + D + c.U));
  CHECK(rs.step_time_s == secs(c.A + c.G + c.cast1 + D + ex + D + c.U));
  CHECK(rb.extra.at("cast_hidden_frac") == Approx(0.5));
}

TEST_CASE("realb under overlap interference: the cast beside the dispatch runs slower", "[variants][realb]") {
  // Interference f = 2, D = 1.5 c: during the dispatch the cast does D / f = 0.75 c of its work, the remaining
  // 0.25 c at full speed after it: the cast ends at G + D + c - D / f = G + 1.75 c, and the experts start then.
  // realb = A + G + (D + c - D / f) + max(E0, E1 fp8) + D + U; the cast spans 1.75 c, of which D = 1.5 c lies
  // under the dispatch: hidden fraction 6/7. realb_seq has no comm-stream op, so f changes nothing there.
  auto probe = make_toy(256, 1e-3);
  const Costs c = costs_of(*probe, 512, 1536);
  const double f = 2.0, D = 1.5 * c.cast1;
  auto t = make_toy(256, D);
  const VariantResult rb = simulate(*t, decode_spec(kRealb, *t), f);
  const VariantResult rs = simulate(*t, decode_spec(kRealbSeq, *t), f);
  const double ex = std::max(c.e0_bf16, c.e1_fp8);
  CHECK(rb.step_time_s == secs(c.A + c.G + (D + c.cast1 - D / f) + ex + D + c.U));
  CHECK(rb.extra.at("cast_hidden_frac") == Approx(6.0 / 7.0));
  CHECK(rs.step_time_s == secs(c.A + c.G + c.cast1 + D + ex + D + c.U));
}

TEST_CASE("realb leaves a balanced workload in bf16: the result is topk's", "[variants][realb]") {
  // text = 512: rank 0 receives 1024 text pairs, rank 1 1024 vision pairs: loads equal the mean, so no rank
  // passes the load test although rank 1's vision share is 1. realb and realb_seq must give topk's result
  // field by field (step time, every op's start and end, rows, MoE-layer figures); lowp_all must not.
  auto t = make_toy(512, 1e-3);
  CHECK(t->plan->tokens_per_rank_received(0) == std::vector<int64_t>{1024, 1024});
  CHECK(realb_low_ranks(*t->plan, 0, 0.2, 0.7, 0) == std::vector<bool>{false, false});
  const nlohmann::json tk = variant_to_json(simulate(*t, decode_spec(kTopk, *t)));
  const nlohmann::json rb = variant_to_json(simulate(*t, decode_spec(kRealb, *t)));
  const nlohmann::json rs = variant_to_json(simulate(*t, decode_spec(kRealbSeq, *t)));
  const nlohmann::json la = variant_to_json(simulate(*t, decode_spec(kLowpAll, *t)));
  CHECK(rb.dump() == tk.dump());
  CHECK(rs.dump() == tk.dump());
  CHECK(la.dump() != tk.dump());
  CHECK(tk.at("events").size() > 0);
}

TEST_CASE("realb below batch_threshold is the baseline", "[variants][realb]") {
  // The overloaded toy (text = 256) has 2 x 1024 = 2048 tokens: batch_threshold 2049 keeps every rank in bf16
  // (identical to topk); 2048 lets rank 1 go low (so the threshold, not the toy, makes the difference).
  auto t = make_toy(256, 1e-3);
  const nlohmann::json tk = variant_to_json(simulate(*t, decode_spec(kTopk, *t)));
  const nlohmann::json above =
      variant_to_json(simulate(*t, decode_spec("{name: r, schedule: realb, precision: fp8, batch_threshold: 2049}", *t)));
  const nlohmann::json seq =
      variant_to_json(simulate(*t, decode_spec("{name: r, schedule: realb_seq, precision: fp8, batch_threshold: 2049}", *t)));
  const VariantResult at = simulate(*t, decode_spec("{name: r, schedule: realb, precision: fp8, batch_threshold: 2048}", *t));
  CHECK(above.dump() == tk.dump());
  CHECK(seq.dump() == tk.dump());
  CHECK(precision_code(at, 1) == 1);
  CHECK(at.step_time_s != Approx(variant_from_json(tk).step_time_s));
}

TEST_CASE("eplb with no redundant experts is the baseline", "[variants][eplb]") {
  auto t = make_toy(256, 1e-3);
  const nlohmann::json tk = variant_to_json(simulate(*t, decode_spec(kTopk, *t)));
  const nlohmann::json ep =
      variant_to_json(simulate(*t, decode_spec("{name: r, schedule: eplb, redundant_experts: 0}", *t)));
  CHECK(ep.dump() == tk.dump());
}
