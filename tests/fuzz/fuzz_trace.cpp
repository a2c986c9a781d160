// Routing trace reader: the bytes become a trace file of a fixed, valid scenario (Mixtral, EP 8).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "sim/scenario.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/moesim-fuzz-trace-" + std::to_string(::getpid()) + ".csv";
  if (std::FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  const std::string scenario = "version: 1\nname: fuzz\nmodel: mixtral-8x7b\ncluster: h200-hgx-8\n"
                               "parallelism: {ep: 8}\nworkload: {mode: inference_prefill, tokens_per_rank: 2, "
                               "routing: {distribution: trace, file: " + path + "}}\n"
                               "variants:\n  - {name: base, schedule: topk}\n";
  try {
    moesim::load_scenario_text(scenario, "fuzz.yaml");
  } catch (const moesim::InputError&) {
  }
  return 0;
}
