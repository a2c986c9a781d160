// Reading an input file (scenario, cluster, preset, profile, routing trace) safely: only a regular file is
// read (a directory, device, FIFO or socket is refused without blocking on it), and only up to a size cap, so
// `/dev/zero` or a FIFO cannot hang the loader or grow its memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace moesim {

inline constexpr std::uintmax_t kMaxYamlFileBytes = 16u << 20;    // scenarios, clusters, presets, profiles
inline constexpr std::uintmax_t kMaxTraceFileBytes = 1024u << 20;  // routing traces (CSV)

// The whole file, or nullopt with `why` set to the rule broken: "cannot open file (No such file or
// directory)", "is a directory, not a file", "is not a regular file (a device, FIFO or socket)",
// "file is too large (N bytes; at most M)".
std::optional<std::string> read_input_file(const std::string& path, std::uintmax_t max_bytes, std::string* why);

}  // namespace moesim
