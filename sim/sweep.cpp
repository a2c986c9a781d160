#include "sim/sweep.hpp"
#include "sim/csv_field.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <unistd.h>

#include "sim/budget.hpp"
#include "sim/input_file.hpp"
#include "sim/output_file.hpp"
#include "sim/runner.hpp"
#include "sim/scenario.hpp"
#include "sim/worker_pool.hpp"

namespace moesim {

std::vector<std::string> SweepPlan::keys() const {
  std::vector<std::string> out;
  for (const auto& d : dims) out.insert(out.end(), d.keys.begin(), d.keys.end());
  return out;
}

std::size_t SweepPlan::point_count() const {
  if (dims.empty()) return 0;
  std::size_t n = 1;
  for (const auto& d : dims) {
    if (d.size() == 0) return 0;
    // Saturate instead of overflowing: anything above kMaxSweepPoints is refused anyway.
    n = n > kMaxSweepPoints ? n : n * d.size();
  }
  return n;
}

std::string SweepGridPoint::label() const {
  std::string s;
  for (const auto& st : settings) s += fmt::format("{}{}={}", s.empty() ? "" : " ", st.key, st.shown);
  return s;
}

std::string sweep_value_text(const YAML::Node& value) {
  if (value.IsScalar()) return value.Scalar();
  if (!value.IsDefined() || value.IsNull()) return "null";
  YAML::Emitter e;
  e.SetMapFormat(YAML::Flow);
  e.SetSeqFormat(YAML::Flow);
  e << value;
  return e.c_str();
}

std::vector<SweepGridPoint> sweep_points(const SweepPlan& plan) {
  std::vector<SweepGridPoint> out;
  const std::size_t n = plan.point_count();
  for (std::size_t p = 0; p < n; ++p) {
    SweepGridPoint gp;
    gp.index = p;
    // Row-major: the last axis varies fastest.
    std::vector<std::size_t> at(plan.dims.size());
    std::size_t rest = p;
    for (std::size_t d = plan.dims.size(); d-- > 0;) {
      at[d] = rest % plan.dims[d].size();
      rest /= plan.dims[d].size();
    }
    for (std::size_t d = 0; d < plan.dims.size(); ++d)
      for (std::size_t k = 0; k < plan.dims[d].keys.size(); ++k) {
        const YAML::Node& v = plan.dims[d].values[k][at[d]];
        gp.settings.push_back({plan.dims[d].keys[k], v, sweep_value_text(v)});
      }
    out.push_back(std::move(gp));
  }
  return out;
}

namespace {

struct PathSegment {
  std::string name;
  std::vector<std::string> selectors;  // [N] or [NAME], in order
};

std::optional<std::vector<PathSegment>> parse_path(const std::string& path, std::string* why) {
  std::vector<PathSegment> segs;
  std::size_t i = 0;
  auto fail = [&](const std::string& rule) -> std::optional<std::vector<PathSegment>> {
    *why = rule;
    return std::nullopt;
  };
  if (path.empty()) return fail("empty key path");
  while (i < path.size()) {
    PathSegment s;
    while (i < path.size() && path[i] != '.' && path[i] != '[') {
      if (path[i] == ']') return fail("']' without '['");
      s.name += path[i++];
    }
    if (s.name.empty()) return fail("empty key name (a path is names separated by dots, e.g. parallelism.ep)");
    while (i < path.size() && path[i] == '[') {
      const std::size_t close = path.find(']', i);
      if (close == std::string::npos) return fail("'[' without ']'");
      std::string sel = path.substr(i + 1, close - i - 1);
      if (sel.empty()) return fail("empty [] (give a list index, e.g. [0], or an entry name, e.g. [zipf])");
      s.selectors.push_back(std::move(sel));
      i = close + 1;
    }
    segs.push_back(std::move(s));
    if (i < path.size()) {
      if (path[i] != '.') return fail(fmt::format("unexpected '{}' after ']'", path[i]));
      if (++i == path.size()) return fail("the path ends with '.'");
    }
  }
  return segs;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string node_kind(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "empty";
  if (n.IsMap()) return "a mapping";
  if (n.IsSequence()) return "a list";
  return n.Scalar();
}

std::string csv_line(const std::vector<std::string>& cells) {
  std::string s;
  // Appended piece by piece: GCC 12's -O3 -Wrestrict false positive fires on `"," + std::string`.
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (i) s += ',';
    s += csv_field(cells[i]);
  }
  return s + '\n';
}

// Records of an RFC 4180 text; `complete` false when the last record has no line end (a torn write).
std::vector<std::vector<std::string>> parse_csv(const std::string& text, bool* complete) {
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> rec;
  std::string cell;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    any = true;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
        else quoted = false;
      } else {
        cell += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rec.push_back(std::move(cell));
      cell.clear();
    } else if (c == '\n') {
      rec.push_back(std::move(cell));
      cell.clear();
      out.push_back(std::move(rec));
      rec.clear();
      any = false;
    } else {
      cell += c;
    }
  }
  *complete = !any;
  return out;
}

}  // namespace

std::optional<std::string> sweep_path_problem(const std::string& path) {
  std::string why;
  if (!parse_path(path, &why)) return why;
  return std::nullopt;
}

std::optional<std::string> apply_sweep_setting(YAML::Node root, const std::string& path, const YAML::Node& value) {
  std::string why;
  const auto segs = parse_path(path, &why);
  if (!segs) return why;
  YAML::Node node;
  node.reset(root);  // reset, never operator=: assigning a Node handle writes into the tree
  std::string walked;
  for (std::size_t si = 0; si < segs->size(); ++si) {
    const PathSegment& s = (*segs)[si];
    const bool last = si + 1 == segs->size();
    if (!node.IsMap())
      return walked.empty() ? std::string("the scenario is not a mapping")
                            : fmt::format("{} is {}, not a mapping (sweep a key of an inline one instead)", walked,
                                          node_kind(node));
    walked += (walked.empty() ? "" : ".") + s.name;
    YAML::Node child;
    child.reset(node[s.name]);
    for (const std::string& sel : s.selectors) {
      if (!child.IsDefined() || child.IsNull()) return fmt::format("{}: no such list in the scenario", walked);
      if (!child.IsSequence()) return fmt::format("{} is {}, not a list", walked, node_kind(child));
      YAML::Node next;
      if (all_digits(sel)) {
        const std::size_t idx = sel.size() > 9 ? child.size() : std::stoul(sel);
        if (idx >= child.size())
          return fmt::format("{}[{}]: no such entry (the list has {} entries, [0] to [{}])", walked, sel,
                             child.size(), child.size() == 0 ? 0 : child.size() - 1);
        next.reset(child[idx]);
      } else {
        std::vector<std::string> names;
        bool found = false;
        for (std::size_t k = 0; k < child.size(); ++k) {
          const YAML::Node e = child[k];
          if (!e.IsMap() || !e["name"] || !e["name"].IsScalar()) continue;
          names.push_back(e["name"].Scalar());
          if (names.back() == sel && !found) next.reset(child[k]), found = true;
        }
        if (!found)
          return fmt::format("{}[{}]: {}", walked, sel, unknown_name_rule("no entry with this name", "names", sel, names));
      }
      walked += "[" + sel + "]";
      child.reset(next);
    }
    if (last) {
      if (child.IsDefined() && child.IsScalar() && value.IsScalar()) child = value.Scalar();  // keeps its place
      else child = value;
      return std::nullopt;
    }
    if (!child.IsDefined() || child.IsNull()) {
      if (!s.selectors.empty()) return fmt::format("{}: empty entry", walked);
      child = YAML::Node(YAML::NodeType::Map);  // a mapping the file leaves out (its keys take defaults)
    }
    node.reset(child);
  }
  return std::nullopt;
}

std::optional<YAML::Node> sweep_point_tree(const std::string& text, const SweepGridPoint& point,
                                           SweepSettingProblems* problems) {
  YAML::Node root = YAML::Load(text);
  if (root.IsMap()) root.remove("sweep");
  problems->clear();
  for (std::size_t k = 0; k < point.settings.size(); ++k)
    if (auto problem = apply_sweep_setting(root, point.settings[k].key, point.settings[k].value))
      problems->emplace_back(k, *problem);
  if (!problems->empty()) return std::nullopt;
  return root;
}

namespace {

// Checks a key path and adds it to `seen` (a key swept twice is an error).
bool key_ok(const YamlView& at, const std::string& key, std::set<std::string>& seen) {
  if (auto why = sweep_path_problem(key)) {
    at.error(fmt::format("bad key path: {}", *why), key);
    return false;
  }
  if (key == "sweep" || key.rfind("sweep.", 0) == 0 || key.rfind("sweep[", 0) == 0) {
    at.error("a sweep cannot sweep its own section", key);
    return false;
  }
  if (!seen.insert(key).second) {
    at.error("key swept twice (in grid and zip, or twice in one)", key);
    return false;
  }
  return true;
}

Diagnostic where_of(const YamlView& v) { return {v.file(), v.line(), v.column(), v.path(), "", ""}; }

}  // namespace

SweepPlan decode_sweep(const YamlView& section) {
  SweepPlan plan;
  if (!section.expect_map()) return plan;
  section.check_keys({"grid", "zip"});
  if (!section.has("grid") && !section.has("zip")) {
    section.error("needs a grid: and/or a zip: mapping of key paths to lists of values");
    return plan;
  }
  std::set<std::string> seen;
  if (section.has("grid")) {
    const YamlView grid = section.at("grid");
    if (grid.expect_map()) {
      if (grid.keys().empty()) grid.error("must map at least one key path to a list of values");
      for (const std::string& key : grid.keys()) {
        const YamlView list = grid.at(key);
        if (!key_ok(list, key, seen)) continue;
        if (!list.is_sequence() || list.raw().size() == 0) {
          list.error("must be a non-empty list of values", list.shown());
          continue;
        }
        SweepDim d;
        d.keys.push_back(key);
        d.values.emplace_back();
        for (std::size_t i = 0; i < list.raw().size(); ++i) d.values.back().push_back(list.raw()[i]);
        d.at.push_back(where_of(list));
        plan.dims.push_back(std::move(d));
      }
    }
  }
  if (section.has("zip")) {
    const YamlView zip = section.at("zip");
    if (zip.expect_map()) {
      if (zip.keys().empty()) zip.error("must map at least one key path to a list of values");
      SweepDim d;
      for (const std::string& key : zip.keys()) {
        const YamlView list = zip.at(key);
        if (!key_ok(list, key, seen)) continue;
        if (!list.is_sequence() || list.raw().size() == 0) {
          list.error("must be a non-empty list of values", list.shown());
          continue;
        }
        if (!d.keys.empty() && list.raw().size() != d.size()) {
          list.error(fmt::format("zip lists must have the same length ({} has {} values)", d.keys.front(), d.size()),
                     fmt::format("{} values", list.raw().size()));
          continue;
        }
        d.keys.push_back(key);
        d.values.emplace_back();
        for (std::size_t i = 0; i < list.raw().size(); ++i) d.values.back().push_back(list.raw()[i]);
        d.at.push_back(where_of(list));
      }
      if (!d.keys.empty()) plan.dims.push_back(std::move(d));
    }
  }
  std::size_t n = 1;
  for (const auto& d : plan.dims) n = n > kMaxSweepPoints ? n : n * d.size();
  if (!plan.dims.empty() && n > kMaxSweepPoints)
    section.error(fmt::format("more than {} points (the product of the grid lists' lengths, times the zip "
                              "length); each point is a run",
                              kMaxSweepPoints));
  return plan;
}

SweepPlan sweep_from_args(const std::vector<std::string>& set, const std::vector<std::string>& zip) {
  SweepPlan plan;
  std::set<std::string> seen;
  SweepDim zipped;
  auto parse = [&](const std::string& arg, const char* option, SweepDim& d) {
    const std::size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
      throw std::invalid_argument(fmt::format("{} {}: expected KEY=V1,V2,... (e.g. parallelism.ep=2,4,8)", option,
                                              escape_control(arg)));
    const std::string key = arg.substr(0, eq);
    if (auto why = sweep_path_problem(key))
      throw std::invalid_argument(fmt::format("{} {}: bad key path: {}", option, escape_control(arg), *why));
    if (!seen.insert(key).second)
      throw std::invalid_argument(fmt::format("{} {}: key swept twice", option, escape_control(key)));
    std::vector<YAML::Node> values;
    std::size_t from = eq + 1;
    for (;;) {
      const std::size_t comma = arg.find(',', from);
      const std::string text = arg.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
      if (text.empty())
        throw std::invalid_argument(fmt::format("{} {}: empty value", option, escape_control(arg)));
      YAML::Node v;
      try {
        v = YAML::Load(text);
      } catch (const YAML::Exception& e) {
        throw std::invalid_argument(fmt::format("{} {}: value {}: {}", option, escape_control(arg),
                                                escape_control(text), e.msg));
      }
      if (!v.IsScalar())
        throw std::invalid_argument(fmt::format("{} {}: value {} is not a single value", option,
                                                escape_control(arg), escape_control(text)));
      values.push_back(v);
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    if (!d.keys.empty() && values.size() != d.size())
      throw std::invalid_argument(fmt::format("--zip {}: {} values, but {} has {} (zipped lists walk together)",
                                              escape_control(key), values.size(), d.keys.front(), d.size()));
    d.keys.push_back(key);
    d.values.push_back(std::move(values));
    d.at.push_back({"<command line>", 0, 0, fmt::format("{} {}", option, key), "", ""});
  };
  for (const auto& a : set) {
    SweepDim d;
    parse(a, "--set", d);
    plan.dims.push_back(std::move(d));
  }
  for (const auto& a : zip) parse(a, "--zip", zipped);
  if (!zipped.keys.empty()) plan.dims.push_back(std::move(zipped));
  if (plan.point_count() > kMaxSweepPoints)
    throw std::invalid_argument(fmt::format("--set/--zip: more than {} points; each point is a run", kMaxSweepPoints));
  return plan;
}

std::vector<SweepPointInfo> check_sweep_points(const std::string& file, const std::string& text,
                                               const SweepPlan& plan, Diagnostics& diags) {
  const std::vector<SweepGridPoint> points = sweep_points(plan);
  std::vector<SweepPointInfo> info(points.size());
  // Where each key is given, in keys() order.
  std::vector<Diagnostic> at;
  for (const auto& d : plan.dims) at.insert(at.end(), d.at.begin(), d.at.end());
  std::set<std::pair<std::size_t, std::string>> reported;  // (key, rule) of setting errors, once each
  for (const SweepGridPoint& p : points) {
    const std::string name = fmt::format("sweep point {} of {} ({})", p.index, points.size(), p.label());
    SweepSettingProblems problems;
    const std::optional<YAML::Node> tree = sweep_point_tree(text, p, &problems);
    if (!tree) {
      for (const auto& [bad, why] : problems) {
        if (!reported.insert({bad, why}).second) continue;
        Diagnostic d = at[bad];
        d.rule = fmt::format("{}: cannot set {}: {}", name, p.settings[bad].key, why);
        d.got = p.settings[bad].shown;
        diags.add(std::move(d));
      }
      continue;
    }
    try {
      const Scenario sc = decode_scenario_tree(*tree, file, text);
      info[p.index].variants = sc.variants.size();
      info[p.index].routing_draws = estimate_resources(sc).routing_draws;
    } catch (const InputError& e) {
      for (Diagnostic d : e.diagnostics().items()) {
        d.rule = fmt::format("{}: {}", name, d.rule);
        // A problem with a swept key is the point's value's: point at that value in the sweep: section (or at
        // the --set / --zip argument), not at the scenario's own value it replaced (or at 1:1 for a key the
        // sweep added, which has no place in the file).
        for (std::size_t k = 0; k < p.settings.size(); ++k) {
          const std::string& key = p.settings[k].key;
          const bool about_key = d.key_path == key || d.key_path.rfind(key + ".", 0) == 0 ||
                                 d.key_path.rfind(key + "[", 0) == 0;
          if (!about_key || d.file != file) continue;
          const YAML::Mark m = p.settings[k].value.Mark();
          if (at[k].file == file && !m.is_null()) d.line = m.line + 1, d.column = m.column + 1;
          else d.file = at[k].file, d.line = at[k].line, d.column = at[k].column;
          break;
        }
        diags.add(std::move(d));
      }
    }
  }
  return info;
}

std::string sweep_csv_text(const SweepTable& t) {
  std::string s = csv_line(t.columns);
  for (const auto& r : t.rows) s += csv_line(r);
  return s;
}

// ------------------------------------------------------------------------------------------------------------
// Running.

namespace {

volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

// The rows of one finished point, as CSV cells (sweep_table.hpp's columns).
std::vector<std::vector<std::string>> point_rows(const SweepGridPoint& p, const RunResult& rr) {
  std::vector<std::vector<std::string>> rows;
  auto num = [](double x) { return fmt::format("{:.9g}", x); };
  for (const auto& v : rr.variants) {
    std::vector<std::string> r{std::to_string(p.index)};
    for (const auto& st : p.settings) r.push_back(st.shown);
    const auto moe = v.extra.find("moe_layer_time_s");
    for (std::string c : {v.name, v.schedule, rr.context.fidelity, num(v.step_time_s), num(v.per_layer_mean_s),
                          num(v.compute_s), num(v.comm_s), num(v.exposed_comm_s), num(v.overlap_ratio),
                          num(v.load_imbalance), num(v.load_imbalance_max), std::to_string(v.dropped_tokens),
                          v.speedup_vs_baseline > 0 ? num(v.speedup_vs_baseline) : std::string(),
                          moe == v.extra.end() ? std::string() : num(moe->second)})
      r.push_back(std::move(c));
    rows.push_back(std::move(r));
  }
  return rows;
}

void write_all(int fd, const std::string& s, const std::string& what) {
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(fmt::format("cannot write {}: {}", what, std::strerror(errno ? errno : EIO)));
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Replaces `path` with `text` at once (a temporary file renamed over it), so an interruption leaves either the
// old CSV or the new one, never half of one.
void replace_file(const std::string& path, const std::string& text) { replace_sweep_file(path, text); }

}  // namespace

void replace_sweep_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  write_output_file(tmp, text);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
}

namespace {

std::string clock_text(double s) {
  const long t = std::lround(std::max(0.0, s));
  return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60) : fmt::format("{}:{:02}", t / 60, t % 60);
}

}  // namespace

SweepOutcome run_sweep(const std::string& file, const std::vector<std::string>& set,
                       const std::vector<std::string>& zip, const SweepOptions& opt) {
  if (opt.csv.empty()) throw std::invalid_argument("--csv is required (the sweep's rows are written there as points finish)");
  // The scenario as written must load (it is what `moesim run` simulates); then the sweep, then every point.
  std::string why;
  const std::optional<std::string> text = read_input_file(file, kMaxYamlFileBytes, &why);
  if (!text) {
    Diagnostics d;
    d.add({file, 1, 1, "", why, ""});
    throw InputError(std::move(d));
  }
  Diagnostics diags;
  const YamlView root = YamlView::load_string(*text, file, &diags);
  if (!diags.empty()) throw InputError(std::move(diags));
  const Scenario base = decode_scenario_tree(root.raw(), file, *text);
  SweepPlan plan;
  if (!set.empty() || !zip.empty()) plan = sweep_from_args(set, zip);
  else if (root.has("sweep")) plan = decode_sweep(root.at("sweep"));
  else
    throw std::invalid_argument(fmt::format("{} has no sweep: section; give one, or axes with --set KEY=V1,V2,... "
                                            "(and --zip)",
                                            escape_control(file)));
  if (!diags.empty()) throw InputError(std::move(diags));
  const std::vector<SweepPointInfo> info = check_sweep_points(file, *text, plan, diags);
  if (!diags.empty()) throw InputError(std::move(diags));
  const std::vector<SweepGridPoint> points = sweep_points(plan);
  if (!opt.force) {
    std::string slow;
    for (const auto& p : points)
      if (info[p.index].routing_draws > kMaxDrawsWithoutForce)
        slow += fmt::format("{}sweep point {} ({}): about {:.3g} routing draws per variant", slow.empty() ? "" : "\n",
                            p.index, p.label(), info[p.index].routing_draws);
    if (!slow.empty())
      throw std::invalid_argument(fmt::format("{}\n(more than {:.0e} draws, likely hours each); lower "
                                              "tokens_per_rank or simulation.layers, or pass --force",
                                              slow, kMaxDrawsWithoutForce));
  }

  if (opt.shards < 1 || opt.shard < 1 || opt.shard > opt.shards)
    throw std::invalid_argument(fmt::format("--shard {}/{}: expected I/N with 1 <= I <= N", opt.shard, opt.shards));
  // Shard I of N runs the points p with p % N == I - 1 (every N-th point from I - 1: shards of nearly equal
  // size that each mix cheap and costly points of a grid whose last axis grows).
  auto in_shard = [&](std::size_t p) { return p % opt.shards == opt.shard - 1; };
  auto shard_of = [&](std::size_t p) { return p % opt.shards + 1; };

  SweepOutcome out;
  for (const auto& p : points) out.shard_points += in_shard(p.index) ? 1 : 0;
  SweepTable& t = out.table;
  t.scenario_file = file;
  t.scenario_name = base.name;
  t.points = points.size();
  t.keys = plan.keys();
  t.columns = {"point"};
  t.columns.insert(t.columns.end(), t.keys.begin(), t.keys.end());
  t.columns.insert(t.columns.end(), kSweepFixedColumns.begin(), kSweepFixedColumns.end());

  // Rows per finished point (from an earlier run of this sweep with --resume, then from this run).
  std::map<std::size_t, std::vector<std::vector<std::string>>> done;
  std::string kept;  // the CSV's finished points, in the order they were written
  if (opt.resume && std::filesystem::exists(opt.csv)) {
    const std::optional<std::string> old = read_input_file(opt.csv, kMaxTraceFileBytes, &why);
    if (!old) throw std::invalid_argument(fmt::format("--resume: {}: {}", escape_control(opt.csv), why));
    bool complete = true;
    const auto recs = parse_csv(*old, &complete);
    if (!recs.empty()) {
      if (recs.front() != t.columns)
        throw std::invalid_argument(fmt::format("--resume: {} has another header than this sweep's (a CSV of "
                                                "another sweep?); expected: {}",
                                                escape_control(opt.csv), csv_line(t.columns).substr(0, csv_line(t.columns).size() - 1)));
      std::map<std::size_t, std::vector<std::vector<std::string>>> seen;
      std::vector<std::size_t> order;
      for (std::size_t r = 1; r < recs.size(); ++r) {
        const auto& rec = recs[r];
        const std::string where = fmt::format("--resume: {} line {}", escape_control(opt.csv), r + 1);
        if (rec.size() != t.columns.size())
          throw std::invalid_argument(fmt::format("{}: {} fields, expected {}", where, rec.size(), t.columns.size()));
        if (!all_digits(rec[0]) || rec[0].size() > 9 || std::stoul(rec[0]) >= points.size())
          throw std::invalid_argument(fmt::format("{}: point {} is not a point of this sweep (0 to {})", where,
                                                  escape_control(rec[0]), points.size() - 1));
        const std::size_t p = std::stoul(rec[0]);
        if (!in_shard(p))
          throw std::invalid_argument(fmt::format("{}: point {} belongs to shard {}/{}, not to this run's shard "
                                                  "{}/{} (a CSV of another shard?)",
                                                  where, p, shard_of(p), opt.shards, opt.shard, opt.shards));
        for (std::size_t k = 0; k < t.keys.size(); ++k)
          if (rec[1 + k] != points[p].settings[k].shown)
            throw std::invalid_argument(fmt::format("{}: point {} has {}={}, this sweep has {}={} (a CSV of "
                                                    "another sweep?)",
                                                    where, p, t.keys[k], escape_control(rec[1 + k]), t.keys[k],
                                                    points[p].settings[k].shown));
        if (!seen.count(p)) order.push_back(p);
        seen[p].push_back(rec);
      }
      // A point is finished when all its variants' rows are there (they are written in one piece; a torn
      // last line was left out by the parser).
      for (std::size_t p : order)
        if (seen[p].size() == info[p].variants) {
          for (const auto& r : seen[p]) kept += csv_line(r);
          done[p] = std::move(seen[p]);
        }
    }
    out.resumed = done.size();
  }
  // The CSV now: header + finished points (replaced at once); later points are appended as they finish.
  replace_file(opt.csv, csv_line(t.columns) + kept);
  const int csv_fd = ::open(opt.csv.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (csv_fd < 0) throw std::runtime_error(fmt::format("cannot write {}: {}", opt.csv, std::strerror(errno)));

  std::vector<std::size_t> todo;
  for (const auto& p : points)
    if (in_shard(p.index) && !done.count(p.index)) todo.push_back(p.index);

  // Progress: a bar redrawn in place on a terminal, a line per point otherwise.
  const auto t0 = std::chrono::steady_clock::now();
  std::size_t finished = 0;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto progress = [&](const SweepGridPoint* p, bool failed) {
    if (opt.quiet) return;
    const std::size_t total = out.shard_points, have = done.size();
    const double e = elapsed();
    const double eta = finished > 0 ? e / static_cast<double>(finished) * static_cast<double>(todo.size() - finished) : 0;
    if (opt.progress_bar) {
      constexpr int kWidth = 30;
      const int fill = static_cast<int>(kWidth * static_cast<double>(have) / static_cast<double>(std::max<std::size_t>(1, total)));
      std::cout << fmt::format("\r{}[{}{}] {}/{} points  {} elapsed  ETA {}\x1b[K", opt.progress_prefix, std::string(fill, '#'),
                               std::string(kWidth - fill, '.'), have, total, clock_text(e),
                               finished > 0 ? clock_text(eta) : std::string("-"));
    } else if (p) {
      std::cout << fmt::format("{}point {} ({}) {}: {}/{} points, {} elapsed, ETA {}\n", opt.progress_prefix, p->index, p->label(),
                               failed ? "FAILED" : "done", have, total, clock_text(e), clock_text(eta));
    }
    std::cout.flush();
  };
  if (!opt.quiet && out.resumed > 0)
    std::cout << fmt::format("{}resuming: {} of {} points already in {}\n", opt.progress_prefix, out.resumed, out.shard_points, opt.csv);
  progress(nullptr, false);

  // Ctrl-C: stop starting points, end the running ones, keep the CSV of the finished ones.
  struct sigaction sa {}, old_sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  g_interrupted = 0;
  ::sigaction(SIGINT, &sa, &old_sa);

  const auto work = [&](std::size_t i) -> WorkerAnswer {
    const SweepGridPoint& p = points[todo[i]];
    try {
      SweepSettingProblems problems;
      const std::optional<YAML::Node> tree = sweep_point_tree(*text, p, &problems);
      if (!tree) throw std::runtime_error(problems.front().second);
      const Scenario sc = decode_scenario_tree(*tree, file, *text);
      RunOptions ro;
      ro.jobs = 1;
      ro.fidelity = opt.fidelity;
      std::string rows;
      for (const auto& r : point_rows(p, run_scenario(sc, ro))) rows += csv_line(r);
      return worker_ok(std::move(rows));
    } catch (const InputError& e) {
      return worker_error(e.diagnostics().str());
    }
  };
  const auto point_done = [&](const WorkerResult& w) {
    const SweepGridPoint& p = points[todo[w.task]];
    bool failed = false;
    const WorkerReply r = read_worker_reply(w);
    if (r.kind == WorkerReply::ok) {
      bool complete = true;
      auto rows = parse_csv(r.text, &complete);
      write_all(csv_fd, r.text, opt.csv);  // the point's rows in one write
      done[p.index] = std::move(rows);
    } else if (g_interrupted) {
      return;  // Ctrl-C on a terminal reaches the workers too: a worker ended by it is not a failed point
    } else {
      failed = true;
      std::string msg = r.text;
      while (!msg.empty() && msg.back() == '\n') msg.pop_back();
      out.failures += fmt::format("sweep point {} ({}): {}\n", p.index, p.label(), msg);
    }
    ++finished;
    progress(&p, failed);
    if (opt.stop_after > 0 && finished >= opt.stop_after && !g_interrupted) ::raise(SIGINT);
  };
  WorkerPoolOptions pool;
  pool.jobs = opt.jobs;
  pool.poll_timeout_ms = opt.progress_bar ? 1000 : -1;
  pool.on_timeout = [&] { progress(nullptr, false); };  // redraw the clock
  pool.stop = [] { return g_interrupted != 0; };
  // A worker dies with the sweep and on Ctrl-C, like its own simulation children.
  pool.in_child = [&] {
    ::signal(SIGINT, SIG_DFL);
    ::close(csv_fd);
  };
  try {
    // Interrupted: the workers still running are ended (their simulation children die with them); their
    // points are not in the CSV and --resume runs them.
    run_worker_pool(todo.size(), work, point_done, pool);
  } catch (...) {
    ::close(csv_fd);
    ::sigaction(SIGINT, &old_sa, nullptr);
    throw;
  }
  out.interrupted = g_interrupted != 0;
  ::sigaction(SIGINT, &old_sa, nullptr);
  if (::close(csv_fd) != 0) throw std::runtime_error(fmt::format("cannot write {}: {}", opt.csv, std::strerror(errno)));
  if (opt.progress_bar && !opt.quiet) std::cout << "\n";
  for (auto& [p, rows] : done)
    for (auto& r : rows) t.rows.push_back(std::move(r));
  // Finished: the CSV in point order (then variant order), whatever order the points finished in, so it does
  // not depend on --jobs or on an interruption.
  if (!out.interrupted) replace_file(opt.csv, sweep_csv_text(t));
  return out;
}

std::map<std::size_t, std::string> sweep_rows_by_point(const SweepTable& t) {
  std::map<std::size_t, std::string> out;
  for (const auto& r : t.rows) out[std::stoul(r.at(0))] += csv_line(r);
  return out;
}

void set_sweep_rows(SweepTable& t, const std::map<std::size_t, std::string>& by_point) {
  t.rows.clear();
  for (const auto& [p, text] : by_point) {
    bool complete = true;
    auto recs = parse_csv(text, &complete);
    if (!complete) throw std::runtime_error(fmt::format("point {}: its last row has no line end", p));
    for (auto& r : recs) {
      if (r.size() != t.columns.size() || r[0] != std::to_string(p))
        throw std::runtime_error(fmt::format("point {}: a row of {} fields for point {} (expected {} fields)", p,
                                             r.size(), r.empty() ? "?" : r[0], t.columns.size()));
      t.rows.push_back(std::move(r));
    }
  }
}

std::pair<std::size_t, std::size_t> parse_shard(const std::string& text) {
  const std::size_t slash = text.find('/');
  const std::string i = text.substr(0, slash), n = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (!all_digits(i) || !all_digits(n) || i.size() > 9 || n.size() > 9)
    throw std::invalid_argument(fmt::format("--shard {}: expected I/N, e.g. 2/4 (shard I of N, 1-based)",
                                            escape_control(text)));
  const std::size_t si = std::stoul(i), sn = std::stoul(n);
  if (sn < 1 || si < 1 || si > sn || sn > kMaxSweepPoints)
    throw std::invalid_argument(fmt::format("--shard {}: expected 1 <= I <= N <= {}", escape_control(text),
                                            kMaxSweepPoints));
  return {si, sn};
}

std::string merge_sweep_csvs(const std::vector<std::string>& files, std::optional<std::size_t> points) {
  if (files.empty()) throw std::invalid_argument("no shard CSV to merge");
  std::vector<std::string> header;
  std::map<std::size_t, std::vector<std::vector<std::string>>> rows;  // point -> its rows, in file order
  std::map<std::size_t, std::size_t> from;  // point -> the input it came from (index into files)
  for (std::size_t fi = 0; fi < files.size(); ++fi) {
    const std::string& f = files[fi];
    std::string why;
    const std::optional<std::string> text = read_input_file(f, kMaxTraceFileBytes, &why);
    if (!text) throw std::invalid_argument(fmt::format("{}: {}", escape_control(f), why));
    bool complete = true;
    const auto recs = parse_csv(*text, &complete);
    if (!complete)
      throw std::invalid_argument(fmt::format("{}: the last line has no line end (a write cut short: finish the "
                                              "shard with --resume)",
                                              escape_control(f)));
    if (recs.empty() || recs.front().empty() || recs.front()[0] != "point")
      throw std::invalid_argument(fmt::format("{}: not a sweep CSV (its header must start with \"point\")",
                                              escape_control(f)));
    if (header.empty()) header = recs.front();
    else if (recs.front() != header)
      throw std::invalid_argument(fmt::format("{}: another header than {}'s (shards of one sweep have one header)",
                                              escape_control(f), escape_control(files.front())));
    for (std::size_t r = 1; r < recs.size(); ++r) {
      const auto& rec = recs[r];
      const std::string where = fmt::format("{} line {}", escape_control(f), r + 1);
      if (rec.size() != header.size())
        throw std::invalid_argument(fmt::format("{}: {} fields, expected {}", where, rec.size(), header.size()));
      if (!all_digits(rec[0]) || rec[0].size() > 9)
        throw std::invalid_argument(fmt::format("{}: point {} is not a point number", where, escape_control(rec[0])));
      const std::size_t p = std::stoul(rec[0]);
      if (const auto it = from.find(p); it != from.end() && it->second != fi)
        throw std::invalid_argument(fmt::format("{}: point {} is also in {} (the same shard twice?)", where, p,
                                                escape_control(files[it->second])));
      from[p] = fi;
      rows[p].push_back(rec);
    }
  }
  const std::size_t want = points ? *points : (rows.empty() ? 0 : rows.rbegin()->first + 1);
  std::string missing;
  std::size_t n_missing = 0;
  for (std::size_t p = 0; p < want; ++p)
    if (!rows.count(p) && ++n_missing <= 10) missing += fmt::format("{}{}", missing.empty() ? "" : ", ", p);
  if (n_missing > 0)
    throw std::invalid_argument(fmt::format("{} of {} points missing ({}{}): a shard not given, or not finished "
                                            "(run it again with --resume)",
                                            n_missing, want, missing, n_missing > 10 ? ", ..." : ""));
  if (!rows.empty() && rows.rbegin()->first >= want)
    throw std::invalid_argument(fmt::format("point {} is beyond --points {}", rows.rbegin()->first, want));
  std::string out = csv_line(header);
  for (const auto& [p, rs] : rows)
    for (const auto& r : rs) out += csv_line(r);
  return out;
}

}  // namespace moesim
