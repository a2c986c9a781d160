#include "sim/output_file.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <iostream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace moesim {

std::optional<std::string> output_path_problem(const std::string& path) {
  if (path.empty()) return "is empty";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return "is a directory";
    if (::access(path.c_str(), W_OK) != 0) return std::string(std::strerror(errno));
    return std::nullopt;
  }
  if (errno != ENOENT) return std::string(std::strerror(errno));
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fmt::format("directory {} does not exist", dir.string());
  if (::access(dir.c_str(), W_OK) != 0) return fmt::format("directory {}: {}", dir.string(), std::strerror(errno));
  return std::nullopt;
}

void write_output_file(const std::string& path, const std::string& text) {
  auto fail = [&](int err) {
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(err)));
  };
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(errno);
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0;
  const int err = errno;
  if (std::fclose(f) != 0 || !wrote) fail(wrote ? errno : err);
}

void flush_stdout() {
  std::cout.flush();
  const bool ok = std::cout.good() && std::fflush(stdout) == 0 && !std::ferror(stdout);
  if (!ok) throw std::runtime_error(fmt::format("cannot write standard output: {}", std::strerror(errno ? errno : EIO)));
}

}  // namespace moesim
