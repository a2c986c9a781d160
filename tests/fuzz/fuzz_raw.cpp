// Calibration raw reader: any bytes parse or throw FitError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fit/io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moesim::calibrate::parse_raw(std::string(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  } catch (const moesim::calibrate::FitError&) {
  }
  return 0;
}
