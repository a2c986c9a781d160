// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex. Used to identify the scenario file in reports.
#pragma once

#include <string>
#include <string_view>

namespace moesim {
std::string sha256_hex(std::string_view data);
}
