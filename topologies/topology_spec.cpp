#include "topologies/topology_spec.hpp"

#include <algorithm>
#include <filesystem>

#include "topologies/builders/builders.hpp"

namespace moesim::topo {

std::vector<std::string> with_keys(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> available_presets(const std::string& data_dir) {
  return yaml_file_stems((std::filesystem::path(data_dir) / "topologies" / "presets").string());
}

namespace {

const std::vector<std::string> kFamilies{"nvswitch_node", "pcie_node", "multi_node", "explicit"};

Cluster decode_mapping(const YamlView& v) {
  Cluster c;
  if (!v.expect_map()) return c;
  const std::size_t before = v.diagnostic_count();
  const std::string family = v.choice("family", kFamilies);
  c.family = family;
  c.name = v.str_or("name", "");
  c.description = v.str_or("description", "");
  c.default_gpu_profile = v.str_or("gpu", "");
  if (v.diagnostic_count() != before) {
    // Without a valid family (or with a bad common key) the family's own keys are not checked: report
    // nothing more.
    return c;
  }
  if (family == "nvswitch_node") {
    const auto p = decode_nvswitch_node(v, kCommonKeys);
    if (v.diagnostic_count() == before) build_nvswitch_node(c, p, 0);
  } else if (family == "pcie_node") {
    const auto p = decode_pcie_node(v, kCommonKeys);
    if (v.diagnostic_count() == before) build_pcie_node(c, p, 0);
  } else if (family == "multi_node") {
    decode_build_multi_node(v, c);
  } else {
    decode_build_explicit(v, c);
  }
  if (v.diagnostic_count() != before) return c;
  if (auto bad = c.first_unreachable_pair()) {
    v.error("GPU '" + c.vertex(c.gpu_vertex(bad->first)).name + "' cannot reach GPU '" +
            c.vertex(c.gpu_vertex(bad->second)).name + "'");
  }
  return c;
}

}  // namespace

Cluster decode_cluster(const YamlView& v, const std::string& data_dir) {
  if (v.is_scalar()) {
    const std::string name = v.as_str();
    const auto presets = available_presets(data_dir);
    if (std::find(presets.begin(), presets.end(), name) == presets.end()) {
      std::string rule = "unknown topology preset (available:";
      for (std::size_t i = 0; i < presets.size(); ++i) rule += (i ? ", " : " ") + presets[i];
      if (presets.empty()) rule += " none in " + data_dir + "/topologies/presets";
      rule += ")";
      const std::string hint = closest_match(name, presets);
      if (!hint.empty()) rule += "; did you mean '" + hint + "'?";
      v.error(rule, v.shown());
      return Cluster{};
    }
    const std::string path = data_dir + "/topologies/presets/" + name + ".yaml";
    const YamlView pv = YamlView::load_file(path, v.diagnostics());
    if (!pv.defined()) return Cluster{};
    Cluster c = decode_mapping(pv);
    if (c.name.empty()) c.name = name;
    return c;
  }
  return decode_mapping(v);
}

namespace {
Cluster decode_document(const YamlView& root, const std::string& data_dir) {
  if (!root.defined()) {
    if (root.diagnostics() && root.diagnostics()->empty()) root.error("empty document: expected a cluster");
    return Cluster{};
  }
  if (root.is_map() && !root.has("family") && root.has("cluster")) return decode_cluster(root.at("cluster"), data_dir);
  return decode_cluster(root, data_dir);
}
}  // namespace

Cluster load_cluster_file(const std::string& path, const std::string& data_dir) {
  Diagnostics d;
  Cluster c = decode_document(YamlView::load_file(path, &d), data_dir);
  if (!d.empty()) throw InputError(std::move(d));
  return c;
}

Cluster load_cluster_text(const std::string& text, const std::string& name, const std::string& data_dir) {
  Diagnostics d;
  Cluster c = decode_document(YamlView::load_string(text, name, &d), data_dir);
  if (!d.empty()) throw InputError(std::move(d));
  return c;
}

}  // namespace moesim::topo
