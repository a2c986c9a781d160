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

}  // namespace moesim::testing
