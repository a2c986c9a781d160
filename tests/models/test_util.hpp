// Helpers shared by the model tests.
#pragma once

#include <string>

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

}  // namespace moesim::test
