// Helpers shared by the model tests.
#pragma once

#include <stdexcept>
#include <string>

#include "models/architecture.hpp"
#include "sim/yaml_view.hpp"

namespace moesim::test {

inline const std::string kDataDir = MOESIM_DATA_DIR;

// A YAML document held with its diagnostics sink; name "scenario.yaml" in messages.
struct Doc {
  Diagnostics diags;
  YamlView root;
  explicit Doc(const std::string& text, const std::string& name = "scenario.yaml")
      : root(YamlView::load_string(text, name, &diags)) {}
};

// A toy model: `layers` MoE blocks of hidden 64 and expert FFN 128, E experts, top-k, two attention heads.
// Throws (std::logic_error) if the text does not decode, so a helper bug cannot pass as a test result.
inline models::Architecture toy_arch(int layers, int experts, int k) {
  Doc d("model:\n  layers: " + std::to_string(layers) + "\n  hidden: 64\n  expert_ffn: 128\n  routed_experts: " +
        std::to_string(experts) + "\n  top_k: " + std::to_string(k) +
        "\n  attention: {kind: mha, heads: 2, head_dim: 32}\n");
  models::Architecture a = models::decode_architecture(d.root.at("model"), kDataDir);
  if (!d.diags.str().empty()) throw std::logic_error("toy_arch: " + d.diags.str());
  return a;
}

}  // namespace moesim::test
