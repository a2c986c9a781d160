// Helpers for tests that need more than one SimGrid simulation in a test case (DESIGN rule 5: one per
// process): run_in_child forks, runs the function in the child, and returns the double it produced.
#pragma once

#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace moesim::testing {

inline std::string source_dir() { return MOESIM_SOURCE_DIR; }

inline double run_in_child(const std::function<double()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    double v = -1.0;
    try {
      v = f();
    } catch (...) {
      v = -1.0;
    }
    ssize_t n = ::write(fds[1], &v, sizeof v);
    ::_exit(n == sizeof v ? 0 : 1);
  }
  ::close(fds[1]);
  double v = -1.0;
  ssize_t n = ::read(fds[0], &v, sizeof v);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (n != sizeof v || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || v < 0)
    throw std::runtime_error("child simulation failed");
  return v;
}

// What a child wrote and how it exited: f's text with exit code 0, or "error: " + the exception's message
// with exit code 1.
struct ChildText {
  std::string text;
  int status = 0;  // waitpid status
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
};

// Runs f in a forked child (which may start its own SimGrid engine) and returns the text it produced, read
// through a pipe of any length.
inline ChildText run_in_child_text(const std::function<std::string()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(nullptr);  // the child must not repeat the parent's buffered output
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    int code = 0;
    try {
      out = f();
    } catch (const std::exception& e) {
      out = std::string("error: ") + e.what();
      code = 1;
    }
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t n = ::write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    ::close(fds[1]);
    ::_exit(code);
  }
  ::close(fds[1]);
  ChildText r;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    r.text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

}  // namespace moesim::testing
