// Schedules `realb`, `realb_seq` and `lowp_all`: expert GEMMs in a lower precision on some EP ranks.
//
// ReaLB (multimodal prefill): vision tokens crowd onto a few experts, so the ranks holding them set every
// layer's time. After gating, each rank of each MoE layer decides its precision from the routing:
//
//   low(r) = global tokens >= batch_threshold
//            and load(r) > (1 + load_threshold) * mean load      (load = token-expert pairs the rank receives)
//            and vision share(r) >= modality_threshold          (vision pairs / pairs received by r)
//
// A low-precision rank casts its BF16 expert weights of that layer (CostModel::weight_cast) and runs its
// expert GEMMs in `precision` (fp8 W8A8 on Hopper, fp4 = NVFP4 W4A4 on Blackwell; activations quantised on the
// fly, CostModel::expert_group). Per MoE layer, when at least one rank is low:
//
//   realb      compute: gate+permute -> cast ------------> experts -----------------> unpermute [-> shared]
//              comm:                 \-> dispatch(a2a) ---/        \-> combine(a2a) -/
//              (the cast runs while the dispatch is in flight, so the profile's overlap interference applies)
//   realb_seq  compute: gate+permute -> cast -> dispatch -> experts -> combine -> unpermute [-> shared]
//
// A layer where no rank is low runs exactly as `topk` (the same ops on one stream), so a balanced or small
// batch gives the baseline's result. `lowp_all` runs every rank of every layer in `precision` with weights
// quantised offline (no cast): the upper bound of the speed low precision can buy. Inference only (prefill or
// decode): precision switching of training's backward pass is not modelled.
#include <algorithm>
#include <fmt/format.h>

#include "models/variants/schedule_util.hpp"

namespace moesim::models {

struct LowPrecisionOptions : ScheduleOptions {
  DType low = DType::fp8;
  double load_threshold = 0.2;
  double modality_threshold = 0.7;
  int64_t batch_threshold = 2048;
};

namespace {

enum class LowpKind { realb, realb_seq, all };

std::shared_ptr<const ScheduleOptions> decode_lowp(const YamlView& v, const DecodeContext& ctx,
                                                   std::map<std::string, std::string>& shown, LowpKind kind) {
  auto o = std::make_shared<LowPrecisionOptions>();
  const Profile& p = ctx.profile;
  if (ctx.mode == Mode::training)
    v.error_at("schedule", "models inference only (prefill or decode); precision switching in training is not modelled");
  // Default: FP4 where the GPU has FP4 tensor cores (Blackwell), else FP8 (Hopper).
  const std::string def = p.peak_fp4 > 0 ? "fp4" : "fp8";
  const std::string want = v.choice_or("precision", {"fp8", "fp4"}, def);
  o->low = want == "fp4" ? DType::fp4 : DType::fp8;
  if (!p.id.empty() && (o->low == DType::fp4 ? p.peak_fp4 : p.peak_fp8) <= 0) {
    const std::string rule = fmt::format("GPU profile {} has no {} peak (no {} tensor cores); pick another precision "
                                         "or GPU", p.id, want, want == "fp4" ? "FP4" : "FP8");
    if (v.has("precision")) v.error_at("precision", rule);
    else v.error_at("schedule", rule);
  }
  if (dtype_bytes(o->low) >= dtype_bytes(ctx.arch.dtype))
    v.error_at(v.has("precision") ? "precision" : "schedule",
               fmt::format("must be below the model's dtype ({})", dtype_name(ctx.arch.dtype)));
  shown["precision"] = want;
  if (kind == LowpKind::all) return o;
  o->load_threshold = v.number_or("load_threshold", 0.2, Range::between(0, 1000));
  o->modality_threshold = v.number_or("modality_threshold", 0.7, Range::between(0, 1));
  o->batch_threshold = v.integer_or("batch_threshold", 2048, Range::between(0, 1e12));
  shown["load_threshold"] = fmt::format("{}", o->load_threshold);
  shown["modality_threshold"] = fmt::format("{}", o->modality_threshold);
  shown["batch_threshold"] = fmt::format("{}", o->batch_threshold);
  return o;
}

}  // namespace

std::vector<bool> realb_low_ranks(const RoutingPlan& plan, int layer, double load_threshold,
                                  double modality_threshold, int64_t batch_threshold) {
  const int R = plan.ranks();
  std::vector<bool> low(static_cast<std::size_t>(R), false);
  const LayerRouting& L = plan.layer(layer);
  int64_t global = 0;
  for (int64_t t : L.src_tokens) global += t;
  if (global < batch_threshold) return low;
  const std::vector<int64_t> load = plan.tokens_per_rank_received(layer);
  const std::vector<int64_t> vis = plan.vision_per_rank_received(layer);
  int64_t sum = 0;
  for (int64_t x : load) sum += x;
  const double mean = static_cast<double>(sum) / R;
  for (int r = 0; r < R; ++r) {
    const auto i = static_cast<std::size_t>(r);
    const double share = load[i] > 0 ? static_cast<double>(vis[i]) / static_cast<double>(load[i]) : 0.0;
    low[i] = static_cast<double>(load[i]) > (1.0 + load_threshold) * mean && share >= modality_threshold;
  }
  return low;
}

namespace {

OpGraph build_lowp(const VariantSpec& spec, const StepInput& in, LowpKind kind) {
  const auto& o = spec.options_as<LowPrecisionOptions>();
  std::map<int, std::vector<bool>> low;
  for (int l : in.layers)
    if (in.arch.is_moe_layer(l))
      low[l] = kind == LowpKind::all ? std::vector<bool>(static_cast<std::size_t>(in.ranks), true)
                                     : realb_low_ranks(in.routing, l, o.load_threshold, o.modality_threshold,
                                                       o.batch_threshold);
  auto prec = [&](int l, int r) {
    auto it = low.find(l);
    return it != low.end() && it->second[static_cast<std::size_t>(r)] ? o.low : in.arch.dtype;
  };
  const bool shared = in.arch.shared_experts > 0;
  return build_layered(
      in,
      [&](LayerEmitter& em, int layer, Phase ph) {
        const auto& lw = low.at(layer);
        const bool any = std::find(lw.begin(), lw.end(), true) != lw.end();
        if (kind == LowpKind::realb && any) {
          const auto gp = em.gate_permute(layer, ph);
          em.cast(layer, ph);
          const auto disp = em.all_to_all(layer, ph, OpClass::dispatch, Stream::comm, per_rank_deps({gp}));
          const auto ex = em.experts(layer, ph, per_rank_deps({disp}));
          const auto comb = em.all_to_all(layer, ph, OpClass::combine, Stream::comm, per_rank_deps({ex}));
          em.unpermute(layer, ph, per_rank_deps({comb}));
        } else {
          em.gate_permute(layer, ph);
          if (kind == LowpKind::realb_seq && any) em.cast(layer, ph);
          em.all_to_all(layer, ph, OpClass::dispatch, Stream::compute);
          em.experts(layer, ph);
          em.all_to_all(layer, ph, OpClass::combine, Stream::compute);
          em.unpermute(layer, ph);
        }
        if (shared) em.shared_expert(layer, ph);
      },
      [&](LayerEmitter& em) { em.set_precision(prec); });
}

}  // namespace

OpGraph build_realb(const VariantSpec& s, const StepInput& in) { return build_lowp(s, in, LowpKind::realb); }
OpGraph build_realb_seq(const VariantSpec& s, const StepInput& in) { return build_lowp(s, in, LowpKind::realb_seq); }
OpGraph build_lowp_all(const VariantSpec& s, const StepInput& in) { return build_lowp(s, in, LowpKind::all); }

std::shared_ptr<const ScheduleOptions> decode_realb(const YamlView& v, const DecodeContext& c,
                                                    std::map<std::string, std::string>& shown) {
  return decode_lowp(v, c, shown, LowpKind::realb);
}
std::shared_ptr<const ScheduleOptions> decode_lowp_all(const YamlView& v, const DecodeContext& c,
                                                       std::map<std::string, std::string>& shown) {
  return decode_lowp(v, c, shown, LowpKind::all);
}

}  // namespace moesim::models
