#include "models/routing.hpp"
#include "models/parallel_for.hpp"
#include "models/routing_counts.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "sim/input_file.hpp"
#include "sim/limits.hpp"

namespace moesim::models {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t s = seed;
  uint64_t h = splitmix64(s);
  s = h ^ (a * 0xd1342543de82ef95ULL);
  h = splitmix64(s);
  s = h ^ (b * 0xaf251af3b0f025b5ULL);
  return splitmix64(s);
}

Rng::Rng(uint64_t seed) {
  uint64_t st = seed;
  for (auto& w : s_) w = splitmix64(st);
}

// ----------------------------------------------------------------------------------------------- decode

namespace {

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    *out = std::stoll(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size();
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  size_t pos = 0;
  try {
    *out = std::stod(s, &pos);
  } catch (...) {
    return false;
  }
  return pos == s.size() && std::isfinite(*out);
}

// Reads a trace CSV (format in routing.hpp). Each problem becomes a diagnostic file:line:col: column: rule.
std::vector<TraceToken> load_trace(const std::string& path, const Architecture& arch, int ranks,
                                   const YamlView& at) {
  Diagnostics* diags = at.diagnostics();
  std::vector<TraceToken> rows;
  std::string why;
  const std::optional<std::string> content = read_input_file(path, kMaxTraceFileBytes, &why);
  if (!content) {
    at.error("trace file: " + why, at.shown());
    return rows;
  }
  std::istringstream in(*content);
  auto report = [&](int line, int col, const std::string& field, const std::string& rule, const std::string& got) {
    if (diags) diags->add({path, line, col, field, rule, got});
  };
  std::string text;
  int line_no = 0;
  bool header_seen = false, has_scores = false;
  const int E = arch.routed_experts, k = arch.top_k;
  while (std::getline(in, text)) {
    ++line_no;
    std::string line = trim(text);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = split(line, ',');
    // 1-based column of field i in the trimmed line (good enough: traces have no leading blanks).
    auto col_of = [&](size_t i) {
      size_t c = 1;
      for (size_t j = 0; j < i && j < f.size(); ++j) c += f[j].size() + 1;
      return static_cast<int>(c);
    };
    if (!header_seen) {
      header_seen = true;
      for (auto& x : f) x = trim(x);
      if (f == std::vector<std::string>{"layer", "rank", "token", "experts", "scores"}) has_scores = true;
      else if (f != std::vector<std::string>{"layer", "rank", "token", "experts"})
        report(line_no, 1, "header", "must be 'layer,rank,token,experts' or 'layer,rank,token,experts,scores'",
               line);
      continue;
    }
    if (f.size() != (has_scores ? 5u : 4u) && !(has_scores && f.size() == 4)) {
      report(line_no, 1, "row", fmt::format("must have {} comma-separated fields", has_scores ? 5 : 4), line);
      continue;
    }
    TraceToken t;
    bool ok = true;
    const std::string layer_s = trim(f[0]);
    int64_t v = 0;
    if (layer_s == "*") t.layer = -1;
    else if (!parse_int(layer_s, &v) || v < 0 || v >= arch.layers || !arch.is_moe_layer(static_cast<int>(v))) {
      report(line_no, col_of(0), "layer", fmt::format("must be '*' or a MoE layer index in [0, {})", arch.layers),
             layer_s);
      ok = false;
    } else {
      t.layer = static_cast<int>(v);
    }
    const std::string rank_s = trim(f[1]);
    if (!parse_int(rank_s, &v) || v < 0 || v >= ranks) {
      report(line_no, col_of(1), "rank", fmt::format("must be an EP rank in [0, {})", ranks), rank_s);
      ok = false;
    } else {
      t.rank = static_cast<int>(v);
    }
    const std::string token_s = trim(f[2]);
    if (!parse_int(token_s, &t.token) || t.token < 0) {
      report(line_no, col_of(2), "token", "must be an integer >= 0", token_s);
      ok = false;
    }
    std::vector<std::string> ex = split(trim(f[3]), ';');
    if (static_cast<int>(ex.size()) != k) {
      report(line_no, col_of(3), "experts", fmt::format("must list top_k = {} expert ids separated by ';'", k),
             trim(f[3]));
      ok = false;
    } else {
      for (const auto& s : ex) {
        const std::string e = trim(s);
        if (!parse_int(e, &v) || v < 0 || v >= E) {
          report(line_no, col_of(3), "experts", fmt::format("unknown expert id; must be in [0, {})", E), e);
          ok = false;
          break;
        }
        if (std::find(t.experts.begin(), t.experts.end(), static_cast<int>(v)) != t.experts.end()) {
          report(line_no, col_of(3), "experts", "expert ids of a token must be distinct", e);
          ok = false;
          break;
        }
        t.experts.push_back(static_cast<int>(v));
      }
    }
    std::vector<double> sc;
    if (has_scores && f.size() == 5 && !trim(f[4]).empty()) {
      std::vector<std::string> ss = split(trim(f[4]), ';');
      if (static_cast<int>(ss.size()) != k) {
        report(line_no, col_of(4), "scores", fmt::format("must list top_k = {} scores separated by ';'", k),
               trim(f[4]));
        ok = false;
      } else {
        for (const auto& s : ss) {
          double d = 0;
          if (!parse_double(trim(s), &d) || d < 0) {
            report(line_no, col_of(4), "scores", "must be numbers >= 0", trim(s));
            ok = false;
            break;
          }
          sc.push_back(d);
        }
      }
    }
    if (!ok) continue;
    double sum = 0;
    for (double d : sc) sum += d;
    for (int j = 0; j < k; ++j)
      t.scores.push_back(sc.empty() || sum <= 0 ? 1.0f / static_cast<float>(k)
                                                 : static_cast<float>(sc[static_cast<size_t>(j)] / sum));
    rows.push_back(std::move(t));
  }
  if (!header_seen) report(line_no, 0, "header", "trace file has no header line", "");
  // Every MoE layer needs rows, its own or '*' ones.
  bool star = false;
  std::vector<bool> seen(static_cast<size_t>(arch.layers), false);
  for (const auto& r : rows) {
    if (r.layer < 0) star = true;
    else seen[static_cast<size_t>(r.layer)] = true;
  }
  if (header_seen && !star)
    for (int l : arch.moe_layer_indices())
      if (!seen[static_cast<size_t>(l)]) {
        report(line_no, 0, "layer", fmt::format("trace has no rows for MoE layer {} (and no '*' rows)", l), "");
        break;
      }
  return rows;
}

// A per-step trace's file: the first "{step}" in the name becomes the step number. Built by concatenation, not
// std::string::replace, whose inlined copy GCC 12 at -O3 flags with a false -Wrestrict (GCC PR 105651).
std::string step_trace_path(const std::string& pattern, int step) {
  const std::size_t at = pattern.find("{step}");
  if (at == std::string::npos) return pattern;
  return pattern.substr(0, at) + std::to_string(step) + pattern.substr(at + 6);
}
}  // namespace

const char* gate_scores_name(GateScores g) { return g == GateScores::softmax ? "softmax" : "uniform"; }

namespace {
// Bounds of routing.gate (documented in scenarios/README.md): finite, so logits and their differences stay
// finite; the softmax is taken relative to the largest logit, so any temperature in range neither overflows
// nor divides 0 by 0.
constexpr double kMaxGateTemperature = 1e6;
constexpr double kMaxGateNoise = 1e6;

// routing.gate: {scores: uniform | softmax, temperature, noise}; temperature and noise only with softmax.
Gate decode_gate(const YamlView& g, bool is_trace) {
  Gate out;
  if (!g.expect_map()) return out;
  g.check_keys({"scores", "temperature", "noise"});
  if (is_trace) {
    g.error("only used with a generated distribution (a trace gives every token's experts and scores)", g.shown());
    return out;
  }
  out.scores = g.choice_or("scores", {"uniform", "softmax"}, "uniform") == "softmax" ? GateScores::softmax
                                                                                    : GateScores::uniform;
  if (out.scores == GateScores::softmax) {
    out.temperature = g.number_or("temperature", 1.0, Range{0.0, kMaxGateTemperature, true, false});
    out.noise = g.number_or("noise", 1.0, Range{0.0, kMaxGateNoise, true, false});
  } else {
    for (const char* key : {"temperature", "noise"})
      if (g.has(key)) g.error_at(key, "only used with scores: softmax");
  }
  return out;
}
}  // namespace

RoutingSpec decode_routing(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir) {
  RoutingSpec s;
  if (!v.defined()) return s;
  if (!v.expect_map()) return s;
  v.check_keys({"distribution", "s", "hot_experts", "hot_share", "rotate_hot", "capacity_factor", "capacity_mode",
                "keep_scores", "histogram_bins", "file", "gate", "sampler"});
  const std::string d = v.choice_or("distribution", {"uniform", "zipf", "hot", "trace"}, "uniform");
  s.distribution = d == "zipf"  ? RoutingDistribution::zipf
                   : d == "hot" ? RoutingDistribution::hot
                   : d == "trace" ? RoutingDistribution::trace
                                  : RoutingDistribution::uniform;
  auto only_for = [&](std::string_view key, bool allowed, const char* which) {
    if (v.has(key) && !allowed) v.error_at(key, fmt::format("only used with distribution: {}", which));
  };
  only_for("s", s.distribution == RoutingDistribution::zipf, "zipf");
  only_for("hot_experts", s.distribution == RoutingDistribution::hot, "hot");
  only_for("hot_share", s.distribution == RoutingDistribution::hot, "hot");
  only_for("file", s.distribution == RoutingDistribution::trace, "trace");
  only_for("rotate_hot",
           s.distribution == RoutingDistribution::zipf || s.distribution == RoutingDistribution::hot, "zipf or hot");
  const int E = arch.routed_experts, k = arch.top_k;
  s.rotate_hot = v.boolean_or("rotate_hot", true);
  s.keep_scores = v.boolean_or("keep_scores", false);
  s.histogram_bins = static_cast<int>(v.integer_or("histogram_bins", 64, Range::between(1, 4096)));
  if (v.has("capacity_factor")) s.capacity_factor = v.number("capacity_factor", Range::positive());
  s.capacity_pad = v.choice_or("capacity_mode", {"drop", "pad"}, "drop") == "pad";
  if (s.capacity_pad && !v.has("capacity_factor"))
    v.error_at("capacity_mode", "pad sizes every buffer at the capacity: set capacity_factor too");
  if (v.has("gate")) s.gate = decode_gate(v.at("gate"), s.distribution == RoutingDistribution::trace);
  const std::string sm = v.choice_or("sampler", {"tokens", "counts", "auto"}, "auto");
  s.sampler = sm == "tokens" ? Sampler::tokens : sm == "counts" ? Sampler::counts : Sampler::automatic;
  if (s.sampler == Sampler::counts) {
    // What needs per-token records regardless of the schedule (schedules are checked by the scenario).
    if (s.distribution == RoutingDistribution::trace)
      v.error_at("sampler", "counts cannot draw a trace (a trace gives every token's experts)");
    else if (s.keep_scores)
      v.error_at("sampler", "counts keeps no per-token records: keep_scores needs sampler: tokens (or auto)");
    else if (s.gate.scores == GateScores::softmax)
      v.error_at("sampler", "counts does not model the softmax gate's per-token scores: use sampler: tokens (or auto)");
  }
  if (s.distribution == RoutingDistribution::zipf) s.zipf_s = v.number_or("s", 1.0, Range::between(0, limits::kMaxZipfS));
  if (s.distribution == RoutingDistribution::hot) {
    s.hot_share = v.number("hot_share", Range::between(0, 1));
    int h = 0;
    if (v.require("hot_experts")) {
      YamlView hv = v.at("hot_experts");
      if (hv.is_sequence()) {
        for (const YamlView& it : hv.items()) {
          int e = static_cast<int>(it.as_integer(Range::between(0, E - 1)));
          if (std::find(s.hot_experts.begin(), s.hot_experts.end(), e) != s.hot_experts.end())
            it.error("duplicate expert id", it.shown());
          else s.hot_experts.push_back(e);
        }
        h = static_cast<int>(s.hot_experts.size());
        if (v.has("rotate_hot") && s.rotate_hot)
          v.error_at("rotate_hot", "cannot rotate an explicit hot_experts list (give a count instead)");
        s.rotate_hot = false;
      } else {
        h = static_cast<int>(hv.as_integer(Range::between(1, E - 1)));
        s.hot_count = h;
      }
      if (h >= E) hv.error(fmt::format("must leave at least one cold expert (routed_experts = {})", E), hv.shown());
      // Sampling k distinct experts needs k experts with non-zero weight.
      if (s.hot_share >= 1.0 && h < k)
        v.error_at("hot_share", fmt::format("1 needs at least top_k = {} hot experts", k));
      if (s.hot_share <= 0.0 && E - h < k)
        v.error_at("hot_share", fmt::format("0 needs at least top_k = {} cold experts", k));
    }
  }
  if (s.distribution == RoutingDistribution::trace && v.require("file")) {
    YamlView f = v.at("file");
    std::filesystem::path p(f.as_str());
    if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
    s.trace_file = p.string();
    // A per-step trace ("{step}" in the name): step 0's file here, the others with load_step_traces.
    s.trace =
        std::make_shared<const std::vector<TraceToken>>(load_trace(step_trace_path(s.trace_file, 0), arch, ranks, f));
  }
  return s;
}

void load_step_traces(const YamlView& file_at, const Architecture& arch, int ranks, int steps, RoutingSpec& s) {
  s.step_traces.clear();
  s.step_traces.push_back(s.trace);
  for (int st = 1; st < steps; ++st) {
    s.step_traces.push_back(std::make_shared<const std::vector<TraceToken>>(
        load_trace(step_trace_path(s.trace_file, st), arch, ranks, file_at)));
  }
}

Drift decode_drift(const YamlView& v) {
  Drift d;
  if (!v.defined() || !v.expect_map()) return d;
  v.check_keys({"kind", "fraction"});
  const std::string kind = v.choice("kind", {"none", "redraw"});
  if (kind == "redraw") {
    d.kind = DriftKind::redraw;
    d.fraction = v.number("fraction", Range::unit_interval_open_lo());
  } else if (v.has("fraction")) {
    v.error_at("fraction", "only used with kind: redraw");
  }
  return d;
}

namespace {
// A routing spec used for one modality must draw top_k distinct experts from [lo, hi) of a modality-
// isolated model: hot ids inside the range, hot counts leaving a cold expert there.
void check_range(const YamlView& v, const RoutingSpec& r, const Architecture& arch, int lo, int hi,
                 const char* what) {
  if (r.distribution == RoutingDistribution::trace) {
    v.error(fmt::format("{} tokens cannot use distribution: trace (a trace already gives every token's experts)", what));
    return;
  }
  if (hi - lo == arch.routed_experts) return;
  for (int e : r.hot_experts)
    if (e < lo || e >= hi)
      v.error_at("hot_experts", fmt::format("{} experts of this modality-isolated model are [{}, {})", what, lo, hi));
  if (r.hot_count >= hi - lo)
    v.error_at("hot_experts", fmt::format("must leave a cold {} expert (the range has {})", what, hi - lo));
}
}  // namespace

void decode_modalities(const YamlView& v, const Architecture& arch, int ranks, const std::string& base_dir,
                       RoutingSpec& text) {
  if (!v.expect_map()) return;
  v.check_keys({"request", "text", "vision"});
  RequestShape shape;
  if (v.require("request")) {
    YamlView r = v.at("request");
    if (r.expect_map()) {
      r.check_keys({"text_tokens", "images", "tokens_per_image"});
      shape.text_tokens = r.integer("text_tokens", Range::between(0, 1e7));
      shape.tokens_per_image = r.integer("tokens_per_image", Range::between(1, 1e6));
      if (r.require("images")) {
        YamlView im = r.at("images");
        if (im.is_sequence()) {
          auto items = im.items();
          if (items.size() != 2) {
            im.error("must be an integer or a list [min, max]", im.shown());
          } else {
            shape.images_min = static_cast<int>(items[0].as_integer(Range::between(0, 10000)));
            shape.images_max = static_cast<int>(items[1].as_integer(Range::between(0, 10000)));
            if (shape.images_max < shape.images_min) im.error("max must be >= min", im.shown());
          }
        } else {
          shape.images_min = shape.images_max = static_cast<int>(im.as_integer(Range::between(0, 10000)));
        }
      }
      if (r.diagnostic_count() == 0 && shape.text_tokens == 0 && shape.images_max == 0)
        r.error("a request needs text_tokens > 0 or images > 0");
    }
  }
  const int tv = arch.routed_experts - arch.vision_experts;
  // One sampler draws both modalities: routing.sampler of the workload, not of a modality.
  for (const char* m : {"text", "vision"})
    if (v.has(m) && v.at(m).is_map() && v.at(m).has("sampler"))
      v.at(m).error_at("sampler", "set the sampler on workload.routing (it draws both modalities)");
  if (v.has("text")) {
    const Drift drift = text.drift;
    const Sampler sampler = text.sampler;
    text = decode_routing(v.at("text"), arch, ranks, base_dir);
    text.drift = drift;
    text.sampler = sampler;
  }
  check_range(v.has("text") ? v.at("text") : v, text, arch, 0, tv, "text");
  auto vision = std::make_shared<RoutingSpec>();
  if (v.require("vision")) {
    *vision = decode_routing(v.at("vision"), arch, ranks, base_dir);
    check_range(v.at("vision"), *vision, arch, arch.vision_experts > 0 ? tv : 0, arch.routed_experts, "vision");
  }
  vision->drift = text.drift;
  if (text.capacity_factor != vision->capacity_factor && v.has("vision") && v.at("vision").has("capacity_factor"))
    v.at("vision").error_at("capacity_factor", "set the capacity factor on the text routing (it applies per rank to both)");
  text.requests = shape;
  text.vision = std::move(vision);
}

// ----------------------------------------------------------------------------------------------- generate

namespace {

// Vose's alias table over non-negative weights: O(1) draws from one 64-bit random number. The high 32 bits
// pick a column, the low 32 bits (lo) decide between the column and its alias: lo / 2^32 < prob <=>
// lo < ceil(prob * 2^32) for an integer lo, so each column keeps that integer threshold. The outcome is read
// from a two-entry array indexed by the comparison, so a draw has no data-dependent branch (the outcome of
// a skewed table is close to a coin flip per column and would be mispredicted often).
struct AliasTable {
  struct Entry {
    uint64_t threshold;  // ceil(prob * 2^32), in [0, 2^32]
    uint32_t out[2];     // out[0] = the column itself, out[1] = its alias
  };
  std::vector<Entry> entries;
  void build(const std::vector<double>& w) {
    const size_t n = w.size();
    double total = 0;
    for (double x : w) total += x;
    std::vector<double> prob(n, 0.0);
    std::vector<uint32_t> alias(n, 0);
    std::vector<double> scaled(n);
    std::vector<uint32_t> small, large;
    for (size_t i = 0; i < n; ++i) {
      scaled[i] = w[i] * static_cast<double>(n) / total;
      (scaled[i] < 1.0 ? small : large).push_back(static_cast<uint32_t>(i));
    }
    while (!small.empty() && !large.empty()) {
      uint32_t s = small.back(), l = large.back();
      small.pop_back();
      large.pop_back();
      prob[s] = scaled[s];
      alias[s] = l;
      scaled[l] = (scaled[l] + scaled[s]) - 1.0;
      (scaled[l] < 1.0 ? small : large).push_back(l);
    }
    for (uint32_t i : large) prob[i] = 1.0, alias[i] = i;
    for (uint32_t i : small) prob[i] = 1.0, alias[i] = i;  // rounding leftovers
    // A zero-weight expert must never be drawn, whatever the rounding did: its column always yields its alias.
    // The alias Vose gave it carries that expert's mass and is kept; only a leftover column aliased to itself
    // needs another (any expert of positive weight; its mass there is a rounding remnant).
    const uint32_t heaviest = static_cast<uint32_t>(std::max_element(w.begin(), w.end()) - w.begin());
    for (size_t i = 0; i < n; ++i)
      if (w[i] <= 0.0) {
        prob[i] = 0.0;
        if (alias[i] == i) alias[i] = heaviest;
      }
    entries.resize(n);
    for (size_t i = 0; i < n; ++i)
      entries[i] = {static_cast<uint64_t>(std::ceil(prob[i] * 0x1.0p32)), {static_cast<uint32_t>(i), alias[i]}};
  }
  uint32_t draw(uint64_t x) const {
    const uint64_t col = ((x >> 32) * entries.size()) >> 32;
    const Entry& a = entries[col];
    return a.out[(x & 0xffffffffULL) >= a.threshold];
  }
};

// One drift step of a ranking: m positions drawn at random exchange their experts by a random permutation.
void redraw(std::vector<int>& perm, int m, Rng& rng) {
  const int n = static_cast<int>(perm.size());
  std::vector<int> pos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = i;
  for (int i = 0; i < m; ++i)
    std::swap(pos[static_cast<size_t>(i)], pos[static_cast<size_t>(i) + rng.below(static_cast<uint32_t>(n - i))]);
  std::vector<int> ex(static_cast<size_t>(m));
  for (int i = 0; i < m; ++i) ex[static_cast<size_t>(i)] = perm[static_cast<size_t>(pos[static_cast<size_t>(i)])];
  for (int i = m - 1; i > 0; --i) std::swap(ex[static_cast<size_t>(i)], ex[rng.below(static_cast<uint32_t>(i + 1))]);
  for (int i = 0; i < m; ++i) perm[static_cast<size_t>(pos[static_cast<size_t>(i)])] = ex[static_cast<size_t>(i)];
}

// The popularity ranking (position -> expert offset in [0, n)) of a layer at a workload step. `tag` separates
// the text (~0) and vision (~1) rankings; step 0 without drift is the ranking of a one-step run.
std::vector<int> ranking(const RoutingSpec& s, int n, int layer, uint64_t seed, uint64_t tag, int step) {
  std::vector<int> perm(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  if (s.rotate_hot) {
    Rng rng(derive_seed(seed, static_cast<uint64_t>(layer), tag));  // stream apart from the token streams
    for (int i = n - 1; i > 0; --i) std::swap(perm[static_cast<size_t>(i)], perm[rng.below(static_cast<uint32_t>(i + 1))]);
  }
  if (s.drift.kind == DriftKind::redraw && step != 0) {
    const int m = std::clamp(static_cast<int>(std::lround(s.drift.fraction * n)), 0, n);
    const int dir = step > 0 ? 1 : -1;
    for (int st = dir; st != step + dir; st += dir) {
      Rng rng(derive_seed(seed ^ 0x6472696674ULL, static_cast<uint64_t>(layer), tag ^ static_cast<uint64_t>(static_cast<int64_t>(st))));
      redraw(perm, m, rng);
    }
  }
  return perm;
}

// Per-layer expert weights over all E experts, zero outside [lo, hi) (a modality's range in a modality-
// isolated model). Empty = uniform over all E (the Fisher-Yates path).
std::vector<double> layer_weights(const RoutingSpec& s, int E, int layer, uint64_t seed, uint64_t tag = ~0ULL,
                                  int step = 0, int lo = 0, int hi = -1) {
  if (hi < 0) hi = E;
  const int n = hi - lo;
  const bool ranked = s.distribution == RoutingDistribution::zipf || s.distribution == RoutingDistribution::hot;
  if (!ranked) {
    if (n == E) return {};
    std::vector<double> w(static_cast<size_t>(E), 0.0);
    for (int e = lo; e < hi; ++e) w[static_cast<size_t>(e)] = 1.0;
    return w;
  }
  const std::vector<int> perm = ranking(s, n, layer, seed, tag, step);
  std::vector<double> w(static_cast<size_t>(E), 0.0);
  if (s.distribution == RoutingDistribution::zipf) {
    for (int i = 0; i < n; ++i) w[static_cast<size_t>(lo + perm[static_cast<size_t>(i)])] = std::pow(i + 1.0, -s.zipf_s);
    return w;
  }
  std::vector<int> hot = s.hot_experts;
  if (hot.empty())
    for (int i = 0; i < s.hot_count; ++i) hot.push_back(lo + perm[static_cast<size_t>(i)]);
  const double h = static_cast<double>(hot.size());
  for (int e = lo; e < hi; ++e) w[static_cast<size_t>(e)] = (1.0 - s.hot_share) / (n - h);
  for (int e : hot) w[static_cast<size_t>(e)] = s.hot_share / h;
  return w;
}

}  // namespace

namespace {

// What the samplers of one MoE layer share (read-only while threads run).
struct LayerSetup {
  std::vector<double> w;  // expert weights (empty = uniform)
  double total_w = 0;
  AliasTable alias;
  int64_t cap = INT64_MAX;  // per (source rank, expert) capacity
  Gate gate;                // how picks and scores are made
  std::vector<double> log_w;  // softmax gate: log of each expert's weight (-infinity: weight 0), size E
  std::vector<double> pi;     // counts sampler: each expert's inclusion probability (size E, sum top_k)
};

// Draws the k distinct experts of one token from the layer's weights into pick[0..k) (sampling without
// replacement = draw from w, reject repeats; after 32 rejections of one pick (very skewed weights) an exact
// scan over the remaining mass, which gives the same distribution). seen[e] == stamp marks the token's
// experts. A repeat is absorbed without a branch: the draw is written to pick[j] and j only advances when
// the expert is new (stamping a repeat again changes nothing). Returns nothing; consumes the stream exactly
// as the draws require, so a plan depends only on (seed, layer, source rank).
[[gnu::always_inline]] inline void draw_weighted_token(const LayerSetup& ls, Rng& rng, uint32_t* seen, uint32_t stamp, uint32_t* pick,
                                int k, int E) {
  int j = 0, tries = 0;
  while (j < k) {
    const uint32_t e = ls.alias.draw(rng.next());
    const bool fresh = seen[e] != stamp;
    pick[j] = e;
    seen[e] = stamp;
    j += fresh;
    tries = fresh ? 0 : tries + 1;
    if (tries == 32) [[unlikely]] {
      double rem = ls.total_w;
      for (int i = 0; i < j; ++i) rem -= ls.w[pick[i]];
      double u = rng.uniform() * rem;
      uint32_t last = 0;
      for (uint32_t c = 0; c < static_cast<uint32_t>(E); ++c) {
        if (ls.w[c] <= 0.0 || std::find(pick, pick + j, c) != pick + j) continue;
        last = c;
        if ((u -= ls.w[c]) < 0) break;
      }
      pick[j] = last;
      seen[last] = stamp;
      ++j;
      tries = 0;
    }
  }
}

// Where one layer's token-expert pairs are tallied: the gate-score histogram (ranks x bins by destination
// rank; nullptr = none), the destination of each kept pair for it (dest[e] when the placement is not
// replicated, else Placement::dest_of_nth) and the dropped-pair count.
struct PairTally {
  const Placement& placement;
  const int* dest;
  uint32_t* hist;
  int bins;
  int64_t* dropped;
};

// One token-expert pair src -> e with normalised gate score s: kept (counted in counts[e] and the histogram)
// while counts[e] is under cap, else dropped; recorded in tr unless null.
[[gnu::always_inline]] inline bool tally_pair(const PairTally& pt, int src, int e, double s, int64_t* counts,
                                              int64_t cap, TokenRoutes* tr) {
  int64_t& c = counts[e];
  const bool kept = c < cap;
  if (kept) {
    if (pt.hist) {
      // The destination of the c-th pair src -> e; the bin of s is floor(s * bins), clamped.
      const int dst = pt.placement.replicated() ? pt.placement.dest_of_nth(src, e, c) : pt.dest[e];
      const int bin = std::min(pt.bins - 1, static_cast<int>(s * pt.bins));
      ++pt.hist[static_cast<size_t>(dst) * pt.bins + static_cast<size_t>(bin)];
    }
    ++c;
  } else {
    ++*pt.dropped;
  }
  if (tr) {
    tr->experts.push_back(static_cast<int32_t>(e));
    tr->scores.push_back(static_cast<float>(s));
    tr->kept.push_back(kept ? 1 : 0);
  }
  return kept;
}

// A standard Gumbel variate from one 64-bit draw: G = -log(-log(U)), U = (m + 1/2) / 2^53 with m the top 53
// bits, so U lies strictly inside (0, 1) and G in about [-3.6, 37.4].
inline double gumbel(uint64_t x) { return -std::log(-std::log((static_cast<double>(x >> 11) + 0.5) * 0x1.0p-53)); }

// The common case of synthetic weighted routing: no capacity, no score use, no per-token records, one rank
// per expert; only L.counts is written. Same draws, in the same order, as sample_sources, so the counts are
// identical; the raw scores are still drawn (two per 64-bit number) and discarded to keep the stream aligned.
void sample_counts_weighted(const LayerSetup& ls, int E, int k, int64_t T, uint64_t seed, LayerRouting& L,
                            int src0, int src1) {
  std::vector<uint32_t> seen(static_cast<size_t>(E), 0), pick(static_cast<size_t>(k));
  const int score_draws = (k + 1) / 2;
  uint32_t stamp = 0;
  for (int src = src0; src < src1; ++src) {
    L.src_tokens[static_cast<size_t>(src)] = T;
    Rng rng(derive_seed(seed, static_cast<uint64_t>(L.layer), static_cast<uint64_t>(src)));
    int64_t* const counts = L.counts.data() + static_cast<size_t>(src) * E;
    for (int64_t t = 0; t < T; ++t) {
      if (++stamp == 0) {  // wrapped: forget every old mark
        std::fill(seen.begin(), seen.end(), 0u);
        stamp = 1;
      }
      draw_weighted_token(ls, rng, seen.data(), stamp, pick.data(), k, E);
      for (int j = 0; j < score_draws; ++j) rng.next();
      for (int j = 0; j < k; ++j) ++counts[pick[static_cast<size_t>(j)]];
    }
  }
}

// Samples the tokens of source ranks [src0, src1) of one synthetic layer. Writes the ranks' rows of
// L.counts (and L.vision_counts) and their L.tokens (disjoint per source), and adds to `hist` (ranks x bins)
// and `dropped`, which belong to the calling thread: threads never write the same memory, and integer sums do
// not depend on the order they are added in, so the plan is identical for any number of threads.
// Multimodal (runs != nullptr): each source's tokens come as runs of (tokens, is_vision) in request order;
// vision tokens draw from `vis` (their own weights), text tokens from `ls`.
void sample_sources(const LayerSetup& ls, const Placement& placement, const int* dest, int E, int k, int bins,
                    int64_t T, uint64_t seed, LayerRouting& L, int src0, int src1, uint32_t* hist,
                    int64_t* dropped, bool keep, const LayerSetup* vis = nullptr,
                    const std::vector<std::vector<std::pair<int64_t, bool>>>* runs = nullptr) {
  const bool scores_on = !L.score_hist.empty() || keep;
  const PairTally pt{placement, dest, hist, bins, dropped};
  const int64_t cap = ls.cap;
  std::vector<uint32_t> perm(static_cast<size_t>(E));
  std::vector<uint32_t> pick_v(static_cast<size_t>(k));
  std::vector<double> score_v(static_cast<size_t>(k));
  std::vector<double> gumbel_v(static_cast<size_t>(E));  // softmax gate: one token's noise per expert
  uint32_t* const pick = pick_v.data();
  double* const score = score_v.data();
  // seen[e] == stamp: expert e is already picked by the current token (O(1) repeat test).
  std::vector<uint32_t> seen(static_cast<size_t>(E), 0);
  uint32_t stamp = 0;
  for (int src = src0; src < src1; ++src) {
    L.src_tokens[static_cast<size_t>(src)] = T;
    int64_t* const counts = L.counts.data() + static_cast<size_t>(src) * E;
    int64_t* const vcounts = runs ? L.vision_counts.data() + static_cast<size_t>(src) * E : nullptr;
    Rng rng(derive_seed(seed, static_cast<uint64_t>(L.layer), static_cast<uint64_t>(src)));
    for (int e = 0; e < E; ++e) perm[static_cast<size_t>(e)] = static_cast<uint32_t>(e);
    TokenRoutes* tr = keep ? &L.tokens[static_cast<size_t>(src)] : nullptr;
    if (tr) {
      tr->experts.reserve(static_cast<size_t>(T * k));
      tr->scores.reserve(static_cast<size_t>(T * k));
      tr->kept.reserve(static_cast<size_t>(T * k));
    }
    // One token drawn from the weights of `cur`; vision tokens also count in vcounts.
    auto token = [&](const LayerSetup& cur, int64_t* vc) {
      if (cur.gate.scores == GateScores::softmax) {
        // The router modelled: one Gumbel per expert (E draws; zero-weight experts draw too, so the stream
        // does not depend on which experts a modality excludes), picks and normalised scores from the logits.
        for (int e = 0; e < E; ++e) gumbel_v[static_cast<size_t>(e)] = gumbel(rng.next());
        const double mass = softmax_gate_token(cur.log_w.data(), gumbel_v.data(), E, k, cur.gate.temperature,
                                               cur.gate.noise, pick, score);
        L.topk_mass_sum[static_cast<size_t>(src)] += mass;
        ++L.topk_mass_tokens[static_cast<size_t>(src)];
        for (int j = 0; j < k; ++j) {
          const int e = static_cast<int>(pick[j]);
          if (tally_pair(pt, src, e, score[j], counts, cap, tr) && vc) ++vc[e];
        }
        return;
      }
      if (cur.w.empty()) {
        // Partial Fisher-Yates: k distinct positions of a permutation = a uniform k-subset.
        // One 64-bit draw per pick: the high 32 bits choose the position, the low 32 bits the raw score.
        for (int j = 0; j < k; ++j) {
          const uint64_t x = rng.next();
          const uint32_t r =
              static_cast<uint32_t>(j) + static_cast<uint32_t>(((x >> 32) * static_cast<uint64_t>(E - j)) >> 32);
          std::swap(perm[static_cast<size_t>(j)], perm[r]);
          pick[j] = perm[static_cast<size_t>(j)];
          score[j] = (static_cast<double>(static_cast<uint32_t>(x)) + 1.0) * 0x1.0p-32;
        }
      } else {
        if (++stamp == 0) {  // wrapped: forget every old mark
          std::fill(seen.begin(), seen.end(), 0u);
          stamp = 1;
        }
        draw_weighted_token(cur, rng, seen.data(), stamp, pick, k, E);
        // Raw scores, two per 64-bit draw (drawn even when unused, so expert picks never depend on it).
        for (int j = 0; j < k; j += 2) {
          const uint64_t x = rng.next();
          if (!scores_on) continue;
          score[j] = (static_cast<double>(static_cast<uint32_t>(x)) + 1.0) * 0x1.0p-32;
          if (j + 1 < k) score[j + 1] = (static_cast<double>(x >> 32) + 1.0) * 0x1.0p-32;
        }
      }
      // Synthetic gate scores: raw U(0,1] per pick (32-bit resolution), normalised over the token's picks.
      double inv = 0.0;
      if (scores_on) {
        double sum = 0;
        for (int j = 0; j < k; ++j) sum += score[j];
        inv = 1.0 / sum;
      }
      for (int j = 0; j < k; ++j) {
        const int e = static_cast<int>(pick[j]);
        if (tally_pair(pt, src, e, score[j] * inv, counts, cap, tr) && vc) ++vc[e];
      }
    };
    if (!runs) {
      for (int64_t t = 0; t < T; ++t) token(ls, nullptr);
      continue;
    }
    for (const auto& [n, is_vision] : (*runs)[static_cast<size_t>(src)])
      for (int64_t t = 0; t < n; ++t) is_vision ? token(*vis, vcounts) : token(ls, nullptr);
  }
}

}  // namespace

double softmax_gate_token(const double* log_w, const double* gumbel, int E, int k, double temperature, double noise,
                          uint32_t* pick, double* score) {
  // Top-k by insertion: pick[0..n) in descending logit order, their logits in score[0..n) meanwhile. A logit
  // equal to the k-th does not enter, so ties keep the lower expert id (a total order: the same picks on every
  // platform). With noise = 1 the k largest log(w_e) + G_e are a sample of k experts without replacement with
  // probabilities proportional to w (the Gumbel-top-k trick: Vieira 2014; Kool, van Hoof and Welling, ICML 2019).
  int n = 0;
  for (int e = 0; e < E; ++e) {
    if (!std::isfinite(log_w[e])) continue;  // weight 0: never picked, probability 0
    const double l = log_w[e] + noise * gumbel[e];
    if (n == k && !(l > score[k - 1])) continue;
    int i = n < k ? n++ : k - 1;
    for (; i > 0 && l > score[i - 1]; --i) {
      score[i] = score[i - 1];
      pick[i] = pick[i - 1];
    }
    score[i] = l;
    pick[i] = static_cast<uint32_t>(e);
  }
  if (n < k) throw std::invalid_argument("softmax gate: fewer than top_k experts of non-zero weight");
  // softmax(l / temperature), each term taken relative to the largest logit (score[0]) so nothing overflows;
  // the common factor cancels in both ratios. The normalised scores need only the k picked terms; the top-k
  // mass needs the sum over all experts.
  const double top = score[0];
  double all = 0.0;
  for (int e = 0; e < E; ++e)
    if (std::isfinite(log_w[e])) all += std::exp((log_w[e] + noise * gumbel[e] - top) / temperature);
  double picked = 0.0;
  for (int j = 0; j < k; ++j) {
    score[j] = std::exp((score[j] - top) / temperature);
    picked += score[j];
  }
  for (int j = 0; j < k; ++j) score[j] /= picked;
  return picked / all;
}

std::string gate_scores_label(const RoutingSpec& spec) {
  if (spec.distribution == RoutingDistribution::trace) return "trace";
  const std::string text = gate_scores_name(spec.gate.scores);
  if (spec.requests && spec.vision && spec.vision->gate.scores != spec.gate.scores)
    return "text: " + text + ", vision: " + gate_scores_name(spec.vision->gate.scores);
  return text;
}

GateScoreStats gate_score_stats(const std::vector<const RoutingPlan*>& plans, const std::vector<int>& layers,
                                const std::string& scores, bool norm_topk_prob) {
  GateScoreStats g;
  g.scores = scores;
  g.norm_topk_prob = norm_topk_prob;
  if (plans.empty()) return g;
  const int bins = plans.front()->histogram_bins();
  // The ceil(n / 2)-th smallest of v (nearest rank), 0 for none; reorders v.
  auto p50 = [](std::vector<float>& v) -> double {
    if (v.empty()) return 0.0;
    const auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() + 1) / 2 - 1);
    std::nth_element(v.begin(), mid, v.end());
    return static_cast<double>(*mid);
  };
  std::vector<float> all;
  double sum_all = 0.0, mass = 0.0;
  int64_t mass_tokens = 0;
  for (int l : layers) {
    GateScoreLayer gl;
    gl.layer = l;
    gl.counts.assign(static_cast<size_t>(bins), 0);
    std::vector<float> vals;
    double sum = 0.0;
    bool found = false;
    for (const RoutingPlan* p : plans) {
      const auto& ls = p->layers();
      const auto it = std::find_if(ls.begin(), ls.end(), [&](const LayerRouting& x) { return x.layer == l; });
      if (it == ls.end() || it->tokens.empty()) continue;  // dense layer, or a plan without per-token records
      found = true;
      for (const TokenRoutes& tr : it->tokens)
        for (size_t j = 0; j < tr.scores.size(); ++j) {
          if (!tr.kept[j]) continue;  // dropped by the capacity factor: never routed
          const float x = tr.scores[j];
          ++gl.counts[static_cast<size_t>(std::clamp(static_cast<int>(static_cast<double>(x) * bins), 0, bins - 1))];
          vals.push_back(x);
          sum += x;
        }
      for (size_t r = 0; r < it->topk_mass_sum.size(); ++r) {
        mass += it->topk_mass_sum[r];
        mass_tokens += it->topk_mass_tokens[r];
      }
    }
    if (!found) continue;
    gl.pairs = static_cast<int64_t>(vals.size());
    gl.mean = gl.pairs > 0 ? sum / static_cast<double>(gl.pairs) : 0.0;
    sum_all += sum;
    all.insert(all.end(), vals.begin(), vals.end());
    gl.p50 = p50(vals);
    g.layers.push_back(std::move(gl));
  }
  if (g.layers.empty()) return g;
  g.bins = bins;
  g.pairs = static_cast<int64_t>(all.size());
  g.mean = g.pairs > 0 ? sum_all / static_cast<double>(g.pairs) : 0.0;
  g.p50 = p50(all);
  if (mass_tokens > 0) g.topk_mass_mean = mass / static_cast<double>(mass_tokens);
  return g;
}

int routing_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hw, 1u, 8u));
}

uint64_t step_seed(uint64_t seed, int step) {
  return step == 0 ? seed : derive_seed(seed, 0x73746570ULL, static_cast<uint64_t>(static_cast<int64_t>(step)));
}

std::vector<std::pair<int64_t, bool>> request_runs(const RequestShape& r, int64_t T, uint64_t seed, int step,
                                                   int rank) {
  std::vector<std::pair<int64_t, bool>> runs;
  if (r.text_tokens + static_cast<int64_t>(r.images_max) * r.tokens_per_image <= 0)
    throw std::invalid_argument("a request needs at least one token");
  Rng rng(derive_seed(step_seed(seed, step), 0x726571ULL, static_cast<uint64_t>(rank)));
  int64_t left = T;
  while (left > 0) {
    const int images = r.images_min + static_cast<int>(rng.below(static_cast<uint32_t>(r.images_max - r.images_min + 1)));
    const int64_t text = std::min(r.text_tokens, left);
    if (text > 0) runs.emplace_back(text, false);
    left -= text;
    const int64_t vision = std::min(static_cast<int64_t>(images) * r.tokens_per_image, left);
    if (vision > 0) runs.emplace_back(vision, true);
    left -= vision;
  }
  return runs;
}

const char* sampler_name(Sampler s) {
  return s == Sampler::tokens ? "tokens" : s == Sampler::counts ? "counts" : "auto";
}

std::string needs_token_sampler(const RoutingSpec& spec) {
  if (spec.distribution == RoutingDistribution::trace) return "the routing is a trace (every token's experts)";
  if (spec.keep_scores) return "per-token records are kept (keep_scores, or a schedule that reads token scores)";
  if (spec.score_histograms) return "gate-score histograms are drawn per token";
  if (spec.gate.scores == GateScores::softmax || (spec.vision && spec.vision->gate.scores == GateScores::softmax))
    return "the softmax gate scores each token";
  if (spec.requests && spec.capacity_factor)
    return "capacity in a multimodal batch keeps pairs in token order (text and vision interleaved)";
  return "";
}

Sampler resolve_sampler(const RoutingSpec& spec) {
  if (spec.sampler == Sampler::tokens) return Sampler::tokens;
  const std::string why = needs_token_sampler(spec);
  if (spec.sampler == Sampler::counts && !why.empty())
    throw std::invalid_argument("routing.sampler counts cannot draw this routing: " + why);
  return why.empty() ? Sampler::counts : Sampler::tokens;
}

namespace {
// A stream for the counts sampler of (layer, source rank), apart from the per-token streams.
constexpr uint64_t kCountStream = 0x636f756e74735f31ULL;  // "counts_1"

// The counts sampler for source ranks [src0, src1) of one layer: text tokens from `ls`, vision tokens (the
// request runs' vision share) from `vis`; capacity (never with modalities) keeps min(count, cap) per
// (source, expert), as the per-token sampler keeps the first cap pairs.
void sample_sources_counts(const LayerSetup& ls, const LayerSetup* vis, int E, int k, int64_t T, uint64_t seed,
                           const std::vector<int64_t>* src_vision, LayerRouting& L, int src0, int src1,
                           int64_t* dropped) {
  std::vector<int64_t> tmp(static_cast<size_t>(E));
  for (int src = src0; src < src1; ++src) {
    L.src_tokens[static_cast<size_t>(src)] = T;
    Rng rng(derive_seed(seed ^ kCountStream, static_cast<uint64_t>(L.layer), static_cast<uint64_t>(src)));
    int64_t* const counts = L.counts.data() + static_cast<size_t>(src) * E;
    const int64_t tv = vis ? (*src_vision)[static_cast<size_t>(src)] : 0;
    sample_pair_counts(rng, ls.pi, k, T - tv, counts);
    if (vis) {
      std::fill(tmp.begin(), tmp.end(), 0);
      sample_pair_counts(rng, vis->pi, k, tv, tmp.data());
      int64_t* const vc = L.vision_counts.data() + static_cast<size_t>(src) * E;
      for (int e = 0; e < E; ++e) counts[e] += tmp[static_cast<size_t>(e)], vc[e] += tmp[static_cast<size_t>(e)];
    }
    if (ls.cap != INT64_MAX)
      for (int e = 0; e < E; ++e)
        if (counts[e] > ls.cap) *dropped += counts[e] - ls.cap, counts[e] = ls.cap;
  }
}
}  // namespace

RoutingPlan generate_routing(const RoutingSpec& spec, const Architecture& arch, const Placement& placement,
                             int64_t tokens_per_rank, uint64_t seed, int threads) {
  return generate_routing_step(spec, arch, placement, tokens_per_rank, seed, 0, threads);
}

RoutingPlan generate_routing_step(const RoutingSpec& spec, const Architecture& arch, const Placement& placement,
                                  int64_t tokens_per_rank, uint64_t base_seed, int step, int threads) {
  if (tokens_per_rank <= 0)
    throw std::invalid_argument(fmt::format("tokens per rank must be > 0 (got {})", tokens_per_rank));
  if (placement.experts() != arch.routed_experts)
    throw std::invalid_argument("placement expert count differs from the architecture's routed experts");
  const bool is_trace = spec.distribution == RoutingDistribution::trace;
  if (is_trace && !spec.trace) throw std::invalid_argument("trace routing without loaded trace rows");
  const int R = placement.ranks(), E = arch.routed_experts, k = arch.top_k, bins = spec.histogram_bins;
  if (k > E || k < 1) throw std::invalid_argument("top_k must be in [1, routed_experts]");
  const bool by_counts = resolve_sampler(spec) == Sampler::counts;
  const bool mm = spec.requests.has_value();
  if (mm && (!spec.vision || is_trace)) throw std::invalid_argument("multimodal routing needs a synthetic vision spec");
  // Token draws of this step; the popularity rankings come from the base seed (then drift by step).
  const uint64_t seed = step_seed(base_seed, step);
  std::shared_ptr<const std::vector<TraceToken>> trace = spec.trace;
  if (is_trace && !spec.step_traces.empty()) {
    const int n = static_cast<int>(spec.step_traces.size());
    trace = spec.step_traces[static_cast<size_t>(((step % n) + n) % n)];
  }
  // Modality ranges: text experts [0, tv), vision experts [tv, E) in a modality-isolated model.
  const int tv = E - arch.vision_experts;
  std::vector<std::vector<std::pair<int64_t, bool>>> runs;
  RoutingPlan plan;
  plan.step_ = step;
  plan.multimodal_ = mm;
  plan.sampler_ = by_counts ? Sampler::counts : Sampler::tokens;
  if (mm) {
    plan.src_vision_.assign(static_cast<size_t>(R), 0);
    for (int r = 0; r < R; ++r) {
      runs.push_back(request_runs(*spec.requests, tokens_per_rank, base_seed, step, r));
      for (const auto& [n, v] : runs.back())
        if (v) plan.src_vision_[static_cast<size_t>(r)] += n;
    }
  }
  plan.ranks_ = R;
  plan.experts_ = E;
  plan.bins_ = bins;
  plan.index_.assign(static_cast<size_t>(arch.layers), -1);

  std::vector<int> fast_dest(static_cast<size_t>(E));
  for (int e = 0; e < E; ++e) fast_dest[static_cast<size_t>(e)] = placement.rank_of_expert(e);
  const bool replicated = placement.replicated();
  const bool keep = spec.keep_scores || is_trace;
  // Whether any token is scored by the softmax gate (its picks come from the logits, never the alias table).
  const bool softmax = !is_trace && (spec.gate.scores == GateScores::softmax ||
                                     (mm && spec.vision->gate.scores == GateScores::softmax));
  // ceil(c * T * k / E); the epsilon keeps exact products (c = 1.25, T*k/E = 8 -> 10) from rounding up.
  auto capacity = [&](int64_t T) -> int64_t {
    if (!spec.capacity_factor) return INT64_MAX;
    return static_cast<int64_t>(std::ceil(*spec.capacity_factor * static_cast<double>(T) * k / E - 1e-9));
  };

  const std::vector<int> moe = arch.moe_layer_indices();
  // Tokens per source rank of each MoE layer: its stage's (Architecture::layer_tokens; T for a flat model).
  std::vector<int64_t> Tl(moe.size());
  for (size_t i = 0; i < moe.size(); ++i) Tl[i] = arch.layer_tokens(moe[i], tokens_per_rank);
  plan.layers_.resize(moe.size());
  std::vector<LayerSetup> setup(is_trace ? 0 : moe.size()), vsetup(mm ? moe.size() : 0);
  for (size_t i = 0; i < moe.size(); ++i) {
    const int l = moe[i];
    plan.index_[static_cast<size_t>(l)] = static_cast<int>(i);
    LayerRouting& L = plan.layers_[i];
    L.layer = l;
    L.src_tokens.assign(static_cast<size_t>(R), 0);
    L.counts.assign(static_cast<size_t>(R) * E, 0);
    L.rank_tokens.assign(static_cast<size_t>(R) * R, 0);
    if (spec.score_histograms) L.score_hist.assign(static_cast<size_t>(R) * bins, 0);
    if (keep) L.tokens.resize(static_cast<size_t>(R));
    if (mm) {
      L.vision_counts.assign(static_cast<size_t>(R) * E, 0);
      L.rank_vision_tokens.assign(static_cast<size_t>(R) * R, 0);
    }
    if (softmax) {
      L.topk_mass_sum.assign(static_cast<size_t>(R), 0.0);
      L.topk_mass_tokens.assign(static_cast<size_t>(R), 0);
    }
    if (is_trace) continue;
    auto prepare = [&](LayerSetup& ls, const RoutingSpec& rs, uint64_t tag, int lo, int hi) {
      ls.w = layer_weights(rs, E, l, base_seed, tag, step, lo, hi);
      if (!ls.w.empty()) {
        ls.alias.build(ls.w);
        for (double x : ls.w) ls.total_w += x;
      }
      ls.cap = capacity(Tl[i]);
      ls.gate = rs.gate;
      if (by_counts) {
        // Uniform routing (empty w) over all E experts: every expert is a pick with probability k / E.
        ls.pi = ls.w.empty() ? std::vector<double>(static_cast<size_t>(E), static_cast<double>(k) / E)
                             : inclusion_probabilities(ls.w, k);
      }
      if (ls.gate.scores == GateScores::softmax) {
        // log(w_e); uniform routing (empty w) has all weights equal, and log(1) = 0 serves.
        ls.log_w.assign(static_cast<size_t>(E), 0.0);
        if (!ls.w.empty())
          for (int e = 0; e < E; ++e) {
            const double x = ls.w[static_cast<size_t>(e)];
            ls.log_w[static_cast<size_t>(e)] = x > 0.0 ? std::log(x) : -std::numeric_limits<double>::infinity();
          }
      }
    };
    prepare(setup[i], spec, ~0ULL, 0, mm ? tv : E);
    if (mm) prepare(vsetup[i], *spec.vision, ~1ULL, arch.vision_experts > 0 ? tv : 0, E);
  }

  if (is_trace) {
    for (size_t i = 0; i < moe.size(); ++i) {
      LayerRouting& L = plan.layers_[i];
      const int l = L.layer;
      bool own = false;
      for (const auto& row : *trace) own = own || row.layer == l;
      const int want = own ? l : -1;
      for (const auto& row : *trace)
        if (row.layer == want) ++L.src_tokens[static_cast<size_t>(row.rank)];
      const PairTally pt{placement, fast_dest.data(), L.score_hist.empty() ? nullptr : L.score_hist.data(), bins,
                         &L.dropped};
      for (const auto& row : *trace) {
        if (row.layer != want) continue;
        const int64_t cap = capacity(L.src_tokens[static_cast<size_t>(row.rank)]);
        TokenRoutes* const tr = &L.tokens[static_cast<size_t>(row.rank)];
        int64_t* const counts = L.counts.data() + static_cast<size_t>(row.rank) * E;
        for (int j = 0; j < k; ++j)
          tally_pair(pt, row.rank, row.experts[static_cast<size_t>(j)], row.scores[static_cast<size_t>(j)], counts,
                     cap, tr);
      }
    }
  } else {
    // Source ranks are split into contiguous blocks, one per thread; each (layer, rank) has its own random
    // stream, so the split does not change the plan.
    const int nt = std::clamp(threads, 1, R);
    std::vector<std::vector<uint32_t>> hist(static_cast<size_t>(nt));
    std::vector<std::vector<int64_t>> dropped(static_cast<size_t>(nt), std::vector<int64_t>(moe.size(), 0));
    auto work = [&](int t) {
      const int src0 = static_cast<int>(static_cast<int64_t>(R) * t / nt);
      const int src1 = static_cast<int>(static_cast<int64_t>(R) * (t + 1) / nt);
      std::vector<uint32_t>& h = hist[static_cast<size_t>(t)];
      if (spec.score_histograms) h.assign(moe.size() * static_cast<size_t>(R) * bins, 0);
      const bool counts_only = !replicated && !keep && !spec.score_histograms && !mm && !softmax;
      for (size_t i = 0; i < moe.size(); ++i) {
        if (by_counts) {
          sample_sources_counts(setup[i], mm ? &vsetup[i] : nullptr, E, k, Tl[i], seed,
                                mm ? &plan.src_vision_ : nullptr, plan.layers_[i], src0, src1,
                                &dropped[static_cast<size_t>(t)][i]);
          continue;
        }
        if (counts_only && !setup[i].w.empty() && setup[i].cap == INT64_MAX) {
          sample_counts_weighted(setup[i], E, k, Tl[i], seed, plan.layers_[i], src0, src1);
          continue;
        }
        sample_sources(setup[i], placement, fast_dest.data(), E, k, bins, Tl[i], seed, plan.layers_[i], src0,
                       src1, h.empty() ? nullptr : h.data() + i * static_cast<size_t>(R) * bins,
                       &dropped[static_cast<size_t>(t)][i], keep, mm ? &vsetup[i] : nullptr, mm ? &runs : nullptr);
      }
    };
    parallel_for(nt, nt, work);
    for (size_t i = 0; i < moe.size(); ++i) {
      LayerRouting& L = plan.layers_[i];
      const size_t n = static_cast<size_t>(R) * bins;
      for (int t = 0; t < nt; ++t) {
        L.dropped += dropped[static_cast<size_t>(t)][i];
        if (L.score_hist.empty()) continue;
        const uint32_t* h = hist[static_cast<size_t>(t)].data() + i * n;
        for (size_t j = 0; j < n; ++j) L.score_hist[j] += h[j];
      }
    }
  }
  for (LayerRouting& L : plan.layers_)
    for (int src = 0; src < R; ++src)
      for (int e = 0; e < E; ++e) {
        const int64_t c = L.counts[static_cast<size_t>(src) * E + e];
        if (c) placement.distribute(src, e, c, &L.rank_tokens[static_cast<size_t>(src) * R]);
        const int64_t v = mm ? L.vision_counts[static_cast<size_t>(src) * E + e] : 0;
        if (v) placement.distribute(src, e, v, &L.rank_vision_tokens[static_cast<size_t>(src) * R]);
      }
  if (spec.capacity_pad && spec.capacity_factor) {
    // Every (source, expert) buffer travels and is computed at its capacity (a padded buffer of a
    // replicated expert would need a rule for splitting it: the scenario refuses that combination).
    if (placement.replicated()) throw std::invalid_argument("capacity_mode pad with replicated experts");
    for (LayerRouting& L : plan.layers_) {
      L.pad_rows.assign(static_cast<size_t>(R), 0);
      L.padded_rank_tokens.assign(static_cast<size_t>(R) * R, 0);
      for (int src = 0; src < R; ++src) {
        const int64_t rows = capacity(L.src_tokens[static_cast<size_t>(src)]);
        L.pad_rows[static_cast<size_t>(src)] = rows;
        for (int e = 0; e < E; ++e)
          L.padded_rank_tokens[static_cast<size_t>(src) * R + static_cast<size_t>(placement.rank_of_expert(e))] += rows;
      }
    }
  }
  return plan;
}

std::vector<int64_t> RoutingPlan::vision_per_rank_received(int l) const {
  const LayerRouting& L = layer(l);
  std::vector<int64_t> out(static_cast<size_t>(ranks_), 0);
  if (L.rank_vision_tokens.empty()) return out;
  for (int s = 0; s < ranks_; ++s)
    for (int d = 0; d < ranks_; ++d)
      out[static_cast<size_t>(d)] += L.rank_vision_tokens[static_cast<size_t>(s) * ranks_ + d];
  return out;
}

void RoutingPlan::assign(const std::function<const Placement&(int layer)>& placement_of, const Split& split) {
  const int R = ranks_, E = experts_;
  std::vector<int64_t> per(static_cast<size_t>(R));
  for (LayerRouting& L : layers_) {
    const Placement& pl = placement_of(L.layer);
    if (pl.ranks() != ranks_ || pl.experts() != experts_) throw std::invalid_argument("assign: placement shape differs");
    std::fill(L.rank_tokens.begin(), L.rank_tokens.end(), 0);
    std::fill(L.rank_vision_tokens.begin(), L.rank_vision_tokens.end(), 0);
    // received[r][e]: pairs for expert e landing on rank r.
    std::vector<std::vector<int64_t>> received(static_cast<size_t>(R), std::vector<int64_t>(static_cast<size_t>(E), 0));
    for (int src = 0; src < R; ++src)
      for (int e = 0; e < E; ++e) {
        const int64_t c = L.counts[static_cast<size_t>(src) * E + e];
        if (c == 0) continue;
        std::fill(per.begin(), per.end(), 0);
        split(L.layer, src, e, c, per.data());
        const int64_t v = L.vision_counts.empty() ? 0 : L.vision_counts[static_cast<size_t>(src) * E + e];
        int64_t v_left = v, c_left = c;
        for (int d = 0; d < R; ++d) {
          const int64_t p = per[static_cast<size_t>(d)];
          if (p == 0) continue;
          L.rank_tokens[static_cast<size_t>(src) * R + d] += p;
          received[static_cast<size_t>(d)][static_cast<size_t>(e)] += p;
          if (v > 0) {
            // Vision pairs follow in proportion (the last share takes the rounding rest).
            const int64_t vs = c_left == p ? v_left : v * p / c;
            L.rank_vision_tokens[static_cast<size_t>(src) * R + d] += vs;
            v_left -= vs;
            c_left -= p;
          }
        }
      }
    L.slot_tokens.assign(static_cast<size_t>(R), {});
    L.slot_experts.assign(static_cast<size_t>(R), {});
    for (int r = 0; r < R; ++r) {
      L.slot_experts[static_cast<size_t>(r)] = pl.experts_of_rank(r);
      for (int e : pl.experts_of_rank(r))
        L.slot_tokens[static_cast<size_t>(r)].push_back(received[static_cast<size_t>(r)][static_cast<size_t>(e)]);
    }
  }
}

// ----------------------------------------------------------------------------------------------- plan

const LayerRouting& RoutingPlan::layer(int l) const {
  if (l < 0 || l >= static_cast<int>(index_.size()) || index_[static_cast<size_t>(l)] < 0)
    throw std::out_of_range(fmt::format("layer {} is not a MoE layer of this routing plan", l));
  return layers_[static_cast<size_t>(index_[static_cast<size_t>(l)])];
}

int64_t RoutingPlan::count(int l, int src, int expert) const {
  return layer(l).counts[static_cast<size_t>(src) * experts_ + static_cast<size_t>(expert)];
}

std::vector<int64_t> RoutingPlan::tokens_per_rank_received(int l) const {
  const LayerRouting& L = layer(l);
  std::vector<int64_t> out(static_cast<size_t>(ranks_), 0);
  for (int s = 0; s < ranks_; ++s)
    for (int d = 0; d < ranks_; ++d) out[static_cast<size_t>(d)] += L.rank_tokens[static_cast<size_t>(s) * ranks_ + d];
  return out;
}

std::vector<double> RoutingPlan::traffic_bytes(int l, double bytes_per_token) const {
  const LayerRouting& L = layer(l);
  std::vector<double> out(L.rank_tokens.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(L.rank_tokens[i]) * bytes_per_token;
  return out;
}

double RoutingPlan::load_imbalance(int l) const {
  std::vector<int64_t> rx = tokens_per_rank_received(l);
  int64_t mx = 0, sum = 0;
  for (int64_t x : rx) mx = std::max(mx, x), sum += x;
  if (sum == 0) return 0.0;
  return static_cast<double>(mx) / (static_cast<double>(sum) / ranks_);
}

}  // namespace moesim::models
