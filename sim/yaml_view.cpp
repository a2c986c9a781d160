#include "sim/yaml_view.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include "sim/input_file.hpp"
#include "sim/limits.hpp"

namespace moesim {

bool Range::contains(double v) const {
  if (std::isnan(v)) return false;
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

namespace {
// Whole numbers print exactly (1048576, not 1.04858e+06); others with %g.
std::string bound(double v) {
  if (std::fabs(v) < 1e15 && v == std::floor(v)) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{:g}", v);
}
}  // namespace

std::string Range::describe() const {
  const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
  if (has_lo && has_hi)
    return fmt::format("must be in {}{}, {}{}", lo_open ? "(" : "[", bound(lo), bound(hi), hi_open ? ")" : "]");
  if (has_lo) return fmt::format("must be {} {}", lo_open ? ">" : ">=", bound(lo));
  if (has_hi) return fmt::format("must be {} {}", hi_open ? "<" : "<=", bound(hi));
  return "must be a number";
}

Range quantity_span(Dim dim) {
  switch (dim) {
    case Dim::bytes: return Range::between(limits::kMinBytes, limits::kMaxBytes);
    case Dim::seconds: return Range::between(limits::kMinSeconds, limits::kMaxSeconds);
    case Dim::bandwidth: return Range::between(limits::kMinBandwidth, limits::kMaxBandwidth);
    case Dim::flop_rate: return Range::between(limits::kMinFlopRate, limits::kMaxFlopRate);
  }
  return Range::any();
}

std::string quantity_span_text(Dim dim) {
  switch (dim) {
    case Dim::bytes: return "[1B, 1000TB]";
    case Dim::seconds: return "[1e-12s, 1000s]";
    case Dim::bandwidth: return "[1KB/s, 1e21B/s]";
    case Dim::flop_rate: return "[1GFLOP/s, 1e24FLOP/s]";
  }
  return "";
}

YamlView::YamlView(YAML::Node node, std::shared_ptr<const std::string> file, std::string path,
                   Diagnostics* diags, YAML::Mark mark)
    : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)), diags_(diags), mark_(mark) {}

namespace {
// Deepest nesting of flow collections ([ and {) outside quotes and comments. yaml-cpp recurses once per level
// (and gives up at 2000 with a generic message); nothing in the format nests more than a few levels.
int flow_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  char quote = 0;
  bool comment = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (comment) {
      comment = c != '\n';
    } else if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) {
      comment = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// Deepest nesting of the parsed tree, counted up to `limit` + 1 (block collections nest by indentation).
int tree_depth(const YAML::Node& n, int limit) {
  if (limit < 0 || !(n.IsMap() || n.IsSequence())) return 0;
  int deepest = 0;
  for (auto it = n.begin(); it != n.end() && deepest <= limit; ++it)
    deepest = std::max(deepest, tree_depth(n.IsMap() ? it->second : *it, limit - 1));
  return deepest + 1;
}

constexpr int kMaxNesting = 64;

// Records where each document starts (its first token, and its first node for messages); the events
// themselves are not needed.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts, first_nodes;
  void OnDocumentStart(const YAML::Mark& m) override { starts.push_back(m); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { node(m); }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark& m) {
    if (first_nodes.size() < starts.size()) first_nodes.push_back(m);
  }
};

// The documents of `text`, up to three. yaml-cpp 0.7's LoadAll loops forever, allocating, on a stray flow
// indicator (`,` `]` `}`) at the top level: the parser returns an empty document without consuming the token
// (fixed upstream in yaml-cpp PR 1319, not in Debian 12's 0.7). Two documents starting at the same place are
// that stuck token, returned as `stuck`.
DocumentStarts document_starts(const std::string& text, std::optional<YAML::Mark>* stuck) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts h;
  while (h.starts.size() < 3 && parser.HandleNextDocument(h)) {
    const std::size_t n = h.starts.size();
    if (n >= 2 && h.starts[n - 1].pos == h.starts[n - 2].pos) {
      *stuck = h.starts[n - 1];
      break;
    }
  }
  return h;
}
}  // namespace

YamlView YamlView::load_string(const std::string& text, const std::string& name, Diagnostics* diags) {
  auto file = std::make_shared<const std::string>(name);
  auto fail = [&](int line, int column, const std::string& rule) {
    diags->add({name, line, column, "", rule, ""});
    return YamlView(YAML::Node(), file, "", diags, YAML::Mark());
  };
  if (flow_depth(text) > kMaxNesting)
    return fail(1, 1, fmt::format("nesting too deep (more than {} levels of brackets)", kMaxNesting));
  try {
    std::optional<YAML::Mark> stuck;
    const DocumentStarts docs = document_starts(text, &stuck);
    if (stuck) {
      const auto at = static_cast<std::size_t>(std::max(stuck->pos, 0));
      const unsigned char c = at < text.size() ? static_cast<unsigned char>(text[at]) : 0;
      return fail(stuck->line + 1, stuck->column + 1,
                  c > 32 && c < 127 ? fmt::format("YAML syntax error: unexpected '{}'", static_cast<char>(c))
                                    : std::string("YAML syntax error: unexpected character"));
    }
    if (docs.starts.size() > 1) {
      const YAML::Mark m = docs.first_nodes.size() > 1 ? docs.first_nodes[1] : docs.starts[1];
      return fail(m.line >= 0 ? m.line + 1 : 1, m.column >= 0 ? m.column + 1 : 1,
                  "a second YAML document (after ---) is not allowed; put one scenario per file");
    }
    YAML::Node n = docs.starts.empty() ? YAML::Node() : YAML::Load(text);
    if (n.IsNull() || !n.IsDefined()) return fail(1, 1, "the file is empty (no YAML document)");
    if (tree_depth(n, kMaxNesting) > kMaxNesting)
      return fail(1, 1, fmt::format("nesting too deep (more than {} levels)", kMaxNesting));
    return YamlView(n, file, "", diags, n.Mark());
  } catch (const YAML::DeepRecursion& e) {
    return fail(e.mark.line + 1, e.mark.column + 1, "nesting too deep");
  } catch (const YAML::Exception& e) {
    return fail(e.mark.line + 1, e.mark.column + 1, "YAML syntax error: " + e.msg);
  }
}

YamlView YamlView::from_node(YAML::Node node, const std::string& name, Diagnostics* diags) {
  const YAML::Mark mark = node.Mark();
  return YamlView(std::move(node), std::make_shared<const std::string>(name), "", diags, mark);
}

YamlView YamlView::load_file(const std::string& path, Diagnostics* diags) {
  std::string why;
  std::optional<std::string> text = read_input_file(path, kMaxYamlFileBytes, &why);
  if (!text) {
    diags->add({path, 1, 1, "", why, ""});
    return YamlView(YAML::Node(), std::make_shared<const std::string>(path), "", diags, YAML::Mark());
  }
  return load_string(*text, path, diags);
}

int YamlView::line() const { return mark_.line >= 0 ? mark_.line + 1 : 1; }
int YamlView::column() const { return mark_.column >= 0 ? mark_.column + 1 : 1; }

std::string YamlView::shown() const {
  if (!node_.IsDefined() || node_.IsNull()) return "nothing";
  if (node_.IsMap()) return "a mapping";
  if (node_.IsSequence()) return "a list";
  // A long scalar (say, a whole file read as one value) is shown by its first characters only.
  constexpr std::size_t kShown = 60;
  std::string s = node_.Scalar();
  if (s.size() > kShown) {
    std::size_t cut = kShown;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    s = s.substr(0, cut) + fmt::format("... ({} characters)", node_.Scalar().size());
  }
  return node_.Tag() == "!" ? "\"" + s + "\"" : s;
}

void YamlView::error(const std::string& rule, const std::string& got) const {
  if (diags_) diags_->add({*file_, line(), column(), path_, rule, got});
}

std::string YamlView::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

bool YamlView::expect_map() const {
  if (node_.IsMap()) return true;
  error("must be a mapping of keys to values", shown());
  return false;
}

bool YamlView::has(std::string_view key) const {
  if (!node_.IsMap()) return false;
  const YAML::Node& n = node_;
  YAML::Node c = n[std::string(key)];
  return c.IsDefined() && !c.IsNull();
}

YamlView YamlView::at(std::string_view key) const {
  if (!node_.IsMap()) return YamlView(YAML::Node(), file_, child_path(key), diags_, mark_);
  const YAML::Node& n = node_;
  YAML::Node c = n[std::string(key)];
  if (!c.IsDefined()) return YamlView(YAML::Node(), file_, child_path(key), diags_, mark_);
  return YamlView(c, file_, child_path(key), diags_, c.Mark().line >= 0 ? c.Mark() : mark_);
}

std::vector<std::string> YamlView::keys() const {
  std::vector<std::string> out;
  if (!node_.IsMap()) return out;
  for (auto it = node_.begin(); it != node_.end(); ++it) out.push_back(it->first.Scalar());
  return out;
}

void YamlView::check_keys(std::initializer_list<std::string_view> allowed) const {
  check_keys(std::vector<std::string>(allowed.begin(), allowed.end()));
}

void YamlView::check_keys(const std::vector<std::string>& allowed) const {
  if (!node_.IsMap()) return;
  std::set<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.Scalar();
    YamlView kv(it->first, file_, child_path(key), diags_, it->first.Mark());
    if (!seen.insert(key).second) {
      kv.error("duplicate key", key);
      continue;
    }
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == key;
    if (ok) continue;
    std::string hint = closest_match(key, allowed);
    std::string rule = "unknown key";
    if (!hint.empty()) rule += fmt::format("; did you mean '{}'?", hint);
    else {
      rule += "; allowed keys:";
      for (std::size_t i = 0; i < allowed.size(); ++i) rule += (i ? ", " : " ") + allowed[i];
    }
    kv.error(rule, key);
  }
}

bool YamlView::require(std::string_view key) const {
  if (!node_.IsMap()) return false;  // the caller reported the non-mapping already
  if (has(key)) return true;
  YamlView(YAML::Node(), file_, child_path(key), diags_, mark_).error("missing required key");
  return false;
}

void YamlView::error_at(std::string_view key, const std::string& rule) const {
  YamlView v = at(key);
  v.error(rule, v.defined() ? v.shown() : "");
}

// --- scalars --------------------------------------------------------------------------------------------

std::string YamlView::as_str() const {
  if (!node_.IsScalar()) {
    error("must be a text value", shown());
    return {};
  }
  return node_.Scalar();
}

std::string YamlView::as_choice(const std::vector<std::string>& allowed) const {
  if (!node_.IsScalar()) {
    error("must be one of the listed names", shown());
    return allowed.empty() ? std::string() : allowed.front();
  }
  const std::string& s = node_.Scalar();
  for (const auto& a : allowed)
    if (a == s) return s;
  std::string rule = "must be one of";
  for (std::size_t i = 0; i < allowed.size(); ++i) rule += (i ? ", " : " ") + allowed[i];
  std::string hint = closest_match(s, allowed);
  if (!hint.empty()) rule += fmt::format("; did you mean '{}'?", hint);
  error(rule, shown());
  return allowed.empty() ? std::string() : allowed.front();
}

int64_t YamlView::as_integer(Range r) const {
  // A key without an explicit upper bound still fits the int its caller stores it in.
  if (!std::isfinite(r.hi)) r.hi = static_cast<double>(limits::kMaxInt), r.hi_open = false;
  if (!node_.IsScalar() || node_.Tag() == "!") {
    error("must be an integer", shown());
    return static_cast<int64_t>(std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1 : 0) : 0);
  }
  const std::string& s = node_.Scalar();
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end != s.c_str() + s.size() || errno == ERANGE) {
    error("must be an integer", shown());
    return static_cast<int64_t>(std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1 : 0) : 0);
  }
  if (!r.contains(static_cast<double>(v))) {
    error(r.describe(), shown());
    return static_cast<int64_t>(std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1 : 0) : 0);
  }
  return v;
}

double YamlView::as_number(Range r) const {
  auto fallback = [&] { return std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1.0 : 0.0) : 0.0; };
  if (!node_.IsScalar() || node_.Tag() == "!") {
    error("must be a number", shown());
    return fallback();
  }
  const std::string& s = node_.Scalar();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
    error("must be a number", shown());
    return fallback();
  }
  if (!r.contains(v)) {
    error(r.describe(), shown());
    return fallback();
  }
  return v;
}

double YamlView::as_quantity(Dim dim, Range r) const {
  auto fallback = [&] { return std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1.0 : 0.0) : 1.0; };
  if (!node_.IsScalar()) {
    error(fmt::format("must be {} with a unit, e.g. {}", dim_name(dim), dim_examples(dim)), shown());
    return fallback();
  }
  std::string why;
  auto v = parse_quantity(node_.Scalar(), dim, &why);
  if (!v) {
    error(why, shown());
    return fallback();
  }
  if (!r.contains(*v)) {
    error(r.describe() + " (in base units)", shown());
    return fallback();
  }
  if (*v != 0.0 && !quantity_span(dim).contains(*v)) {
    error(fmt::format("must be {}in {}", r.contains(0.0) ? "0 or " : "", quantity_span_text(dim)), shown());
    return fallback();
  }
  return *v;
}

// --- keyed getters ----------------------------------------------------------------------------------------

std::string YamlView::str(std::string_view key) const { return require(key) ? at(key).as_str() : std::string(); }
std::string YamlView::str_or(std::string_view key, std::string def) const {
  return has(key) ? at(key).as_str() : def;
}
std::string YamlView::choice(std::string_view key, const std::vector<std::string>& allowed) const {
  return require(key) ? at(key).as_choice(allowed) : (allowed.empty() ? std::string() : allowed.front());
}
std::string YamlView::choice_or(std::string_view key, const std::vector<std::string>& allowed,
                                std::string def) const {
  return has(key) ? at(key).as_choice(allowed) : def;
}
int64_t YamlView::integer(std::string_view key, Range r) const {
  if (require(key)) return at(key).as_integer(r);
  return static_cast<int64_t>(std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1 : 0) : 0);
}
int64_t YamlView::integer_or(std::string_view key, int64_t def, Range r) const {
  return has(key) ? at(key).as_integer(r) : def;
}
double YamlView::number(std::string_view key, Range r) const {
  if (require(key)) return at(key).as_number(r);
  return std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1.0 : 0.0) : 0.0;
}
double YamlView::number_or(std::string_view key, double def, Range r) const {
  return has(key) ? at(key).as_number(r) : def;
}
double YamlView::quantity(std::string_view key, Dim dim, Range r) const {
  if (require(key)) return at(key).as_quantity(dim, r);
  return std::isfinite(r.lo) ? r.lo + (r.lo_open ? 1.0 : 0.0) : 1.0;
}
double YamlView::quantity_or(std::string_view key, Dim dim, double def, Range r) const {
  return has(key) ? at(key).as_quantity(dim, r) : def;
}
bool YamlView::boolean(std::string_view key) const {
  if (!require(key)) return false;
  return boolean_or(key, false);
}
bool YamlView::boolean_or(std::string_view key, bool def) const {
  if (!has(key)) return def;
  YamlView v = at(key);
  if (v.is_scalar() && v.raw().Tag() != "!") {
    if (v.raw().Scalar() == "true") return true;
    if (v.raw().Scalar() == "false") return false;
  }
  v.error("must be true or false", v.shown());
  return def;
}

std::vector<YamlView> YamlView::items() const {
  std::vector<YamlView> out;
  if (!node_.IsSequence()) {
    error("must be a list", shown());
    return out;
  }
  std::size_t i = 0;
  for (auto it = node_.begin(); it != node_.end(); ++it, ++i) {
    YAML::Node c = *it;
    out.push_back(YamlView(c, file_, fmt::format("{}[{}]", path_, i), diags_,
                           c.Mark().line >= 0 ? c.Mark() : mark_));
  }
  return out;
}

std::vector<std::string> yaml_file_stems(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".yaml") out.push_back(e.path().stem().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moesim
