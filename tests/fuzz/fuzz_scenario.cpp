// Scenario loader: any bytes either load or throw InputError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sim/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moesim::load_scenario_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const moesim::InputError&) {
  }
  return 0;
}
