// MOESIM_PHASES=1 prints the host time of each phase to stderr (for benchmarks; never in output).
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace moesim {

// Times consecutive phases: each mark() prints "[phase] WHO PHASE SECONDS s", the host time since the clock
// was made or since the previous mark. Silent unless MOESIM_PHASES is set.
class PhaseClock {
 public:
  PhaseClock() : on_(std::getenv("MOESIM_PHASES") != nullptr), last_(std::chrono::steady_clock::now()) {}
  // Whether MOESIM_PHASES is set (for extra lines of the caller's own).
  bool on() const { return on_; }
  void mark(const char* phase, const std::string& who) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    std::fprintf(stderr, "[phase] %s %s %.3f s\n", who.c_str(), phase,
                 std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace moesim
