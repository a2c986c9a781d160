// GPU profile loader: any bytes decode or leave diagnostics.
#include <cstddef>
#include <cstdint>
#include <string>

#include "models/profile.hpp"
#include "sim/yaml_view.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moesim::Diagnostics diags;
  const moesim::YamlView v =
      moesim::YamlView::load_string(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml", &diags);
  if (diags.empty()) moesim::models::decode_profile(v);
  return 0;
}
