#include "sim/input_file.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moesim {

std::optional<std::string> read_input_file(const std::string& path, std::uintmax_t max_bytes, std::string* why) {
  auto fail = [&](std::string rule) -> std::optional<std::string> {
    if (why) *why = std::move(rule);
    return std::nullopt;
  };
  // O_NONBLOCK: opening a FIFO without a writer must not wait; it is refused below by fstat anyway.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == EISDIR) return fail("is a directory, not a file");
    return fail(fmt::format("cannot open file ({})", std::strerror(errno)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(fmt::format("cannot read file ({})", std::strerror(errno)));
  if (S_ISDIR(st.st_mode)) return fail("is a directory, not a file");
  if (!S_ISREG(st.st_mode)) return fail("is not a regular file (a device, FIFO or socket)");
  if (static_cast<std::uintmax_t>(st.st_size) > max_bytes)
    return fail(fmt::format("file is too large ({} bytes; at most {})", st.st_size, max_bytes));
  std::string text;
  text.reserve(static_cast<std::size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(fmt::format("cannot read file ({})", std::strerror(errno)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > max_bytes)  // the file grew while being read
      return fail(fmt::format("file is too large (more than {} bytes)", max_bytes));
  }
  return text;
}

}  // namespace moesim
