// Writing the CLI's outputs (--json, --csv, --trace, --html, --dot, standard output) so that a failed write
// fails the run: every write, flush and close is checked (a full disk, /dev/full), and output paths are
// checked before the simulation starts, so an unwritable path is not discovered an hour later.
#pragma once

#include <optional>
#include <string>

namespace moesim {

// Why `path` cannot be written ("directory /x does not exist", "is a directory", "permission denied"), or
// nullopt when it looks writable. Creates nothing.
std::optional<std::string> output_path_problem(const std::string& path);

// Writes `text` to `path` (created or truncated); throws std::runtime_error("cannot write PATH: reason") when
// any part of the write fails.
void write_output_file(const std::string& path, const std::string& text);

// Flushes standard output; throws std::runtime_error when it cannot be written (e.g. a full disk).
void flush_stdout();

}  // namespace moesim
