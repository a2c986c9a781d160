#include "io.hpp"

#include "models/profile.hpp"
#include "sim/units.hpp"
#include "sim/yaml_view.hpp"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace moesim::calibrate {

namespace {

// Typed access to a yaml-cpp tree that reports the file and key path of anything wrong.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& msg) const { throw FitError(file_, key, msg); }
  // The same, located at node n's line and column in the file.
  [[noreturn]] void fail_at(const YAML::Node& n, const std::string& key, const std::string& msg) const {
    const YAML::Mark m = n.Mark();
    throw FitError(m.line >= 0 ? file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) : file_,
                   key, msg);
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

  void expect_map(const YAML::Node& n, const std::string& path) const {
    if (!n.IsMap()) fail(path, "expected a mapping");
  }
  void expect_seq(const YAML::Node& n, const std::string& path) const {
    if (!n.IsSequence()) fail(path, "expected a sequence");
  }
  // A mapping key must be a plain scalar ("{{}}: 1" has a mapping as key; yaml-cpp's as<string> would throw
  // its own exception past the FitError contract: fuzz finding, tests/calibrate/test_io.cpp).
  std::string key_of(const YAML::Node& key, const std::string& path) const {
    if (!key.IsScalar()) fail_at(key, path, "keys must be plain scalars (got a " +
                                                std::string(key.IsMap() ? "mapping" : key.IsSequence() ? "sequence" : "null") + ")");
    return key.Scalar();
  }
  // Unknown keys are errors (a typo must not silently drop a value).
  void only_keys(const YAML::Node& n, const std::string& path, const std::set<std::string>& allowed) const {
    for (const auto& kv : n) {
      const auto key = key_of(kv.first, path);
      if (!allowed.count(key)) fail(join(path, key), "unknown key");
    }
  }
  YAML::Node req(const YAML::Node& map, const std::string& path, const std::string& key) const {
    const YAML::Node n = map[key];
    if (!n) fail(join(path, key), "missing required key");
    return n;
  }
  // A required key whose value must be a sequence / a mapping.
  YAML::Node req_seq(const YAML::Node& map, const std::string& path, const std::string& key) const {
    const YAML::Node n = req(map, path, key);
    expect_seq(n, join(path, key));
    return n;
  }
  YAML::Node req_map(const YAML::Node& map, const std::string& path, const std::string& key) const {
    const YAML::Node n = req(map, path, key);
    expect_map(n, join(path, key));
    return n;
  }
  // Item i of the sequence at seq_path: a mapping with only `allowed` keys. Returns it and its path.
  struct Item {
    YAML::Node node;
    std::string path;
  };
  Item item(const YAML::Node& seq, const std::string& seq_path, size_t i, const std::set<std::string>& allowed) const {
    Item it{seq[i], index(seq_path, i)};
    expect_map(it.node, it.path);
    only_keys(it.node, it.path, allowed);
    return it;
  }
  template <class T>
  T as(const YAML::Node& n, const std::string& path, const char* what) const {
    if (!n.IsScalar()) fail(path, std::string("expected ") + what);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(path, std::string("expected ") + what + ", got '" + n.Scalar() + "'");
    }
  }
  std::string str(const YAML::Node& map, const std::string& path, const std::string& key) const {
    return as<std::string>(req(map, path, key), join(path, key), "a string");
  }
  double num(const YAML::Node& map, const std::string& path, const std::string& key) const {
    return as<double>(req(map, path, key), join(path, key), "a number");
  }
  long long integer(const YAML::Node& map, const std::string& path, const std::string& key) const {
    return as<long long>(req(map, path, key), join(path, key), "an integer");
  }
  bool boolean(const YAML::Node& map, const std::string& path, const std::string& key) const {
    return as<bool>(req(map, path, key), join(path, key), "true or false");
  }

 private:
  std::string file_;
};

YAML::Node load_text(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw FitError(file, "", "malformed YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                                 std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw FitError(path, "", "cannot open file");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

RawRun read_raw_file(const std::string& path) { return parse_raw(read_text(path), path); }

RawRun parse_raw(const std::string& text, const std::string& file_label) {
  const Reader r(file_label);
  const YAML::Node root = load_text(text, file_label);
  r.expect_map(root, "");
  r.only_keys(root, "", {"schema", "provenance", "complete", "elapsed_s", "sections", "sentinel", "unsupported",
                         "measurements"});
  const std::string schema = r.str(root, "", "schema");
  if (schema != kRawSchema) r.fail("schema", "expected '" + std::string(kRawSchema) + "', got '" + schema + "'");
  RawRun run;
  {
    const std::string path = "provenance";
    const YAML::Node p = r.req_map(root, "", path);
    r.only_keys(p, path, {"gpu_name", "sms", "l2_bytes", "memory_bytes", "memory_bus_bits", "sm_clock_max_mhz",
                          "mem_clock_max_mhz", "sm_clock_measured_mhz", "compute_capability", "driver_version",
                          "cuda_runtime_version", "cublaslt_version", "nccl_version", "visible_gpus", "git_sha",
                          "date_utc", "preset", "budget_s", "samples_per_point", "min_sample_s", "command",
                          "synthetic"});
    auto& v = run.provenance;
    v.gpu_name = r.str(p, path, "gpu_name");
    v.sms = static_cast<int>(r.integer(p, path, "sms"));
    if (v.sms <= 0) r.fail(path + ".sms", "must be positive");
    v.l2_bytes = r.integer(p, path, "l2_bytes");
    v.memory_bytes = r.integer(p, path, "memory_bytes");
    v.memory_bus_bits = static_cast<int>(r.integer(p, path, "memory_bus_bits"));
    v.sm_clock_max_mhz = r.num(p, path, "sm_clock_max_mhz");
    v.mem_clock_max_mhz = r.num(p, path, "mem_clock_max_mhz");
    v.sm_clock_measured_mhz = r.num(p, path, "sm_clock_measured_mhz");
    v.compute_capability = r.str(p, path, "compute_capability");
    v.driver_version = r.str(p, path, "driver_version");
    v.cuda_runtime_version = r.str(p, path, "cuda_runtime_version");
    v.cublaslt_version = r.str(p, path, "cublaslt_version");
    v.nccl_version = r.str(p, path, "nccl_version");
    v.visible_gpus = static_cast<int>(r.integer(p, path, "visible_gpus"));
    v.git_sha = r.str(p, path, "git_sha");
    v.date_utc = r.str(p, path, "date_utc");
    v.preset = r.str(p, path, "preset");
    v.budget_s = r.num(p, path, "budget_s");
    v.samples_per_point = static_cast<int>(r.integer(p, path, "samples_per_point"));
    v.min_sample_s = r.num(p, path, "min_sample_s");
    v.command = r.str(p, path, "command");
    v.synthetic = r.boolean(p, path, "synthetic");
  }
  run.complete = r.boolean(root, "", "complete");
  run.elapsed_s = r.num(root, "", "elapsed_s");

  const YAML::Node sections = r.req_seq(root, "", "sections");
  for (size_t i = 0; i < sections.size(); ++i) {
    const auto [s, path] = r.item(sections, "sections", i, {"name", "status", "elapsed_s", "note"});
    RawSection sec{r.str(s, path, "name"), r.str(s, path, "status"), r.num(s, path, "elapsed_s"),
                   r.str(s, path, "note")};
    static const std::set<std::string> statuses{"complete", "truncated", "skipped", "failed", "unsupported"};
    if (!statuses.count(sec.status)) {
      r.fail(path + ".status", "expected complete|truncated|skipped|failed|unsupported, got '" + sec.status + "'");
    }
    run.sections.push_back(sec);
  }
  const YAML::Node sentinel = r.req_seq(root, "", "sentinel");
  for (size_t i = 0; i < sentinel.size(); ++i) {
    const auto [s, path] = r.item(sentinel, "sentinel", i, {"after", "elapsed_s", "median_s", "sm_clock_mhz"});
    run.sentinel.push_back(RawSentinel{r.str(s, path, "after"), r.num(s, path, "elapsed_s"),
                                       r.num(s, path, "median_s"), r.num(s, path, "sm_clock_mhz")});
  }
  const YAML::Node unsupported = r.req_seq(root, "", "unsupported");
  for (size_t i = 0; i < unsupported.size(); ++i) {
    const auto [u, path] = r.item(unsupported, "unsupported", i, {"kernel", "dtype", "n", "k", "x", "reason"});
    run.unsupported.push_back(RawUnsupported{r.str(u, path, "kernel"), r.str(u, path, "dtype"),
                                             r.integer(u, path, "n"), r.integer(u, path, "k"), r.num(u, path, "x"),
                                             r.str(u, path, "reason")});
  }
  const YAML::Node ms = r.req_seq(root, "", "measurements");
  for (size_t i = 0; i < ms.size(); ++i) {
    const auto [m, path] = r.item(ms, "measurements", i,
                                  {"kernel", "dtype", "variant", "n", "k", "split", "models", "axis", "flops_per_unit",
                                   "bytes_fixed", "bytes_per_unit", "params", "points"});
    RawMeasurement out;
    out.kernel = r.str(m, path, "kernel");
    out.dtype = r.str(m, path, "dtype");
    out.variant = r.str(m, path, "variant");
    out.n = r.integer(m, path, "n");
    out.k = r.integer(m, path, "k");
    out.split = static_cast<int>(r.integer(m, path, "split"));
    const YAML::Node models = r.req_seq(m, path, "models");
    for (size_t j = 0; j < models.size(); ++j) {
      out.models.push_back(r.as<std::string>(models[j], Reader::index(path + ".models", j), "a string"));
    }
    out.axis = r.str(m, path, "axis");
    out.flops_per_unit = r.num(m, path, "flops_per_unit");
    out.bytes_fixed = r.num(m, path, "bytes_fixed");
    out.bytes_per_unit = r.num(m, path, "bytes_per_unit");
    const YAML::Node params = r.req_map(m, path, "params");
    for (const auto& kv : params) {
      const auto key = r.key_of(kv.first, path + ".params");
      out.params.emplace_back(key, r.as<double>(kv.second, path + ".params." + key, "a number"));
    }
    const YAML::Node points = r.req_seq(m, path, "points");
    for (size_t j = 0; j < points.size(); ++j) {
      const std::string pp = Reader::index(path + ".points", j);
      const YAML::Node pt = points[j];
      if (!pt.IsSequence() || pt.size() != 5) r.fail(pp, "expected [x, median_s, min_s, max_s, samples]");
      RawPoint rp;
      rp.x = r.as<double>(pt[0], pp + "[0]", "a number");
      rp.median_s = r.as<double>(pt[1], pp + "[1]", "a number");
      rp.min_s = r.as<double>(pt[2], pp + "[2]", "a number");
      rp.max_s = r.as<double>(pt[3], pp + "[3]", "a number");
      rp.samples = r.as<int>(pt[4], pp + "[4]", "an integer");
      // A point the fit cannot use is the raw file's fault, reported at its line (not later, at the output).
      // x counts SMs held (0 = none) on the interference axis, tokens/rows/blocks (> 0) on every other.
      if (out.axis == "sms" ? !(rp.x >= 0) : !(rp.x > 0)) r.fail_at(pt[0], pp + "[0]", out.axis == "sms" ? "x must be a finite number >= 0" : "x must be a finite number > 0");
      if (!std::isfinite(rp.x)) r.fail_at(pt[0], pp + "[0]", "x must be a finite number");
      for (int c = 1; c <= 3; ++c)
        if (!std::isfinite(c == 1 ? rp.median_s : c == 2 ? rp.min_s : rp.max_s))
          r.fail_at(pt[c], pp + "[" + std::to_string(c) + "]", "times must be finite");
      if (!(rp.median_s > 0) || !(rp.min_s <= rp.median_s) || !(rp.median_s <= rp.max_s)) {
        r.fail(pp, "times must satisfy 0 < min_s <= median_s <= max_s");
      }
      if (!out.points.empty() && !(rp.x > out.points.back().x)) r.fail(pp, "x must be strictly increasing");
      out.points.push_back(rp);
    }
    run.measurements.push_back(std::move(out));
  }
  return run;
}

// ---- units: the simulator's own parser (sim/units.hpp), so a profile means the same thing to both -------

namespace {
double parse_as(const std::string& s, moesim::Dim dim) {
  std::string why;
  const auto v = moesim::parse_quantity(s, dim, &why);
  if (!v) throw std::invalid_argument("'" + s + "': " + why);
  return *v;
}
}  // namespace

double parse_bandwidth(const std::string& s) { return parse_as(s, moesim::Dim::bandwidth); }
double parse_flops(const std::string& s) { return parse_as(s, moesim::Dim::flop_rate); }
double parse_seconds(const std::string& s) { return parse_as(s, moesim::Dim::seconds); }

std::string format_seconds(double s) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.4gus", s * 1e6);
  return buf;
}

double ProfileDoc::peak_flops(const std::string& dtype) const {
  const std::string key = dtype.rfind("fp8", 0) == 0 ? "fp8" : dtype;
  for (const auto& [k, v] : peak) {
    if (k == key) return parse_flops(v);
  }
  return 0;
}

double ProfileDoc::bandwidth_bytes_per_s() const { return parse_bandwidth(memory_bandwidth); }

// ---- profiles --------------------------------------------------------------------------------------------

ProfileDoc read_profile_file(const std::string& path) { return parse_profile(read_text(path), path); }

ProfileDoc parse_profile(const std::string& text, const std::string& file_label) {
  // Validation is the simulator's (models/profile.cpp): the fitter accepts exactly the profiles the cost model
  // accepts, with the same messages. The document is then read again for the quantities' text ("4.8TB/s"),
  // so a profile copied from a datasheet is written back exactly as cited.
  Diagnostics diags;
  const YamlView view = YamlView::load_string(text, file_label, &diags);
  models::Profile m;
  if (diags.empty()) m = models::decode_profile(view);
  if (!diags.empty()) throw FitError::from(diags);
  const YAML::Node root = view.raw();
  ProfileDoc p;
  p.id = m.id;
  p.kind = models::profile_kind_name(m.kind);
  p.gpu_name = m.gpu_name;
  p.sms = m.sms;
  p.memory = root["gpu"]["memory"].Scalar();
  p.memory_bandwidth = root["gpu"]["memory_bandwidth"].Scalar();
  for (const auto& kv : root["peak"]) p.peak.emplace_back(kv.first.Scalar(), kv.second.Scalar());
  p.gemm = m.gemm;
  p.attention = m.attention;
  p.elementwise = m.elementwise;
  p.launch_overhead = root["launch_overhead"].Scalar();
  auto figure = [&](const char* key) {
    ProfileDoc::Figure f;
    const YAML::Node n = root[key];
    if (!n) return f;
    f.present = true;
    if (n.IsMap()) {
      f.value = n["value"].Scalar();
      f.kind = n["kind"].Scalar();
      f.source = n["source"].Scalar();
    } else {
      f.value = n.Scalar();
    }
    return f;
  };
  p.collective_launch = figure("collective_launch");
  p.comm_sms = figure("comm_sms");
  p.has_overlap_interference = static_cast<bool>(root["overlap_interference"]);
  p.overlap_interference = m.overlap_interference;
  if (const YAML::Node g = root["gemm_shape"])
    for (const auto& kv : g) p.gemm_shape.emplace_back(kv.first.Scalar(), kv.second.Scalar());
  p.sources = m.sources;
  p.confidence = m.confidence;
  if (const YAML::Node prov = root["provenance"])  // file order, as written
    for (const auto& kv : prov) p.provenance.emplace_back(kv.first.Scalar(), kv.second.Scalar());
  for (const auto& t : m.tables) {
    ProfileTable tab;
    tab.kernel = t.kernel;
    tab.dtype = t.dtype;
    tab.n = t.n;
    tab.k = t.k;
    tab.provenance = provenance_name(t.provenance);  // measured | derived: all a profile table can hold
    tab.points = t.points;
    if (t.fit) {
      tab.has_fit = true;
      tab.fit = *t.fit;
    }
    if (t.holdout_mape) {
      tab.has_holdout = true;
      tab.holdout_mape = *t.holdout_mape;
    }
    p.tables.push_back(std::move(tab));
  }
  return p;
}

namespace {
// Fitted values carry far fewer meaningful digits than a double: write 4 (efficiencies, alphas, errors) or
// 6 (times) significant digits so profiles stay readable.
double round_sig(double v, int digits) {
  if (v == 0 || !std::isfinite(v)) return v;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return std::strtod(buf, nullptr);
}
}  // namespace

YamlNode to_yaml_node(const ProfileDoc& p) {
  YamlNode root = YamlNode::map();
  root.set("schema", YamlNode::word("moesim-profile/1")).set("id", YamlNode::str(p.id)).set("kind", YamlNode::word(p.kind));
  YamlNode gpu = YamlNode::map();
  gpu.set("name", YamlNode::str(p.gpu_name))
      .set("sms", YamlNode::integer(p.sms))
      .set("memory", YamlNode::str(p.memory))
      .set("memory_bandwidth", YamlNode::str(p.memory_bandwidth));
  root.set("gpu", std::move(gpu));
  YamlNode peak = YamlNode::map();
  for (const auto& [k, v] : p.peak) peak.set(k, YamlNode::str(v));
  root.set("peak", std::move(peak));
  YamlNode eff = YamlNode::map();
  auto e = [](const Efficiency& x) {
    YamlNode m = YamlNode::map(true);
    m.set("compute", YamlNode::num(round_sig(x.compute, 4))).set("memory", YamlNode::num(round_sig(x.memory, 4)));
    return m;
  };
  eff.set("gemm", e(p.gemm)).set("attention", e(p.attention)).set("elementwise", e(p.elementwise));
  root.set("efficiency", std::move(eff));
  if (!p.gemm_shape.empty()) {
    YamlNode g = YamlNode::map();
    for (const auto& [k, v] : p.gemm_shape)
      g.set(k, k == "model" ? YamlNode::word(v) : k == "source" ? YamlNode::str(v) : YamlNode::num(std::strtod(v.c_str(), nullptr)));
    root.set("gemm_shape", std::move(g));
  }
  root.set("launch_overhead", YamlNode::str(p.launch_overhead));
  auto figure = [&](const char* key, const ProfileDoc::Figure& f, bool number) {
    if (!f.present) return;
    YamlNode value = number ? YamlNode::integer(std::strtoll(f.value.c_str(), nullptr, 10)) : YamlNode::str(f.value);
    if (f.kind.empty()) {
      root.set(key, std::move(value));
      return;
    }
    YamlNode m = YamlNode::map();
    m.set("value", std::move(value)).set("kind", YamlNode::word(f.kind)).set("source", YamlNode::str(f.source));
    root.set(key, std::move(m));
  };
  figure("collective_launch", p.collective_launch, false);
  figure("comm_sms", p.comm_sms, true);
  if (p.has_overlap_interference)
    root.set("overlap_interference", YamlNode::num(round_sig(p.overlap_interference, 4)));
  YamlNode sources = YamlNode::seq();
  for (const auto& s : p.sources) sources.push(YamlNode::str(s));
  root.set("sources", std::move(sources));
  root.set("confidence", YamlNode::word(p.confidence));
  if (!p.provenance.empty()) {
    YamlNode prov = YamlNode::map();
    for (const auto& [k, v] : p.provenance) prov.set(k, YamlNode::str(v));
    root.set("provenance", std::move(prov));
  }
  if (!p.tables.empty()) {
    YamlNode tables = YamlNode::seq();
    for (const auto& t : p.tables) {
      YamlNode m = YamlNode::map();
      m.set("kernel", YamlNode::word(t.kernel))
          .set("dtype", YamlNode::word(t.dtype))
          .set("n", YamlNode::integer(t.n))
          .set("k", YamlNode::integer(t.k))
          .set("provenance", YamlNode::word(t.provenance));
      YamlNode pts = YamlNode::seq();
      for (const auto& [tok, sec] : t.points) {
        YamlNode row = YamlNode::seq(true);
        row.push(YamlNode::num(tok)).push(YamlNode::num(round_sig(sec, 6)));
        pts.push(std::move(row));
      }
      m.set("points", std::move(pts));
      if (t.has_fit) {
        YamlNode fit = YamlNode::map();
        fit.set("alpha_s", YamlNode::num(round_sig(t.fit.alpha_s, 4)))
            .set("eta_compute", YamlNode::num(round_sig(t.fit.eta_compute, 4)))
            .set("eta_memory", YamlNode::num(round_sig(t.fit.eta_memory, 4)));
        m.set("fit", std::move(fit));
      }
      if (t.has_holdout) m.set("holdout_mape", YamlNode::num(round_sig(t.holdout_mape, 4)));
      tables.push(std::move(m));
    }
    root.set("tables", std::move(tables));
  }
  return root;
}

std::string to_yaml(const ProfileDoc& p) { return to_yaml_node(p).dump(); }

}  // namespace moesim::calibrate
