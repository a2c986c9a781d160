// MOESIM_PHASES=1 prints the host time of each phase to stderr (for benchmarks; never in output).
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace moesim {

// Times consecutive phases: each mark() prints "[phase] WHO PHASE SECONDS s (rss MIB MiB)", the host time since
// the clock was made or since the previous mark, and the process's resident memory at the mark (Linux
// /proc/self/statm; omitted where it cannot be read). Silent unless MOESIM_PHASES is set.
class PhaseClock {
 public:
  PhaseClock() : on_(std::getenv("MOESIM_PHASES") != nullptr), last_(std::chrono::steady_clock::now()) {}
  // Whether MOESIM_PHASES is set (for extra lines of the caller's own).
  bool on() const { return on_; }
  void mark(const char* phase, const std::string& who) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    std::fprintf(stderr, "[phase] %s %s %.3f s%s\n", who.c_str(), phase,
                 std::chrono::duration<double>(now - last_).count(), rss_text().c_str());
    last_ = now;
  }

 private:
  static std::string rss_text() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return {};
    unsigned long pages = 0, resident = 0;
    const bool ok = std::fscanf(f, "%lu %lu", &pages, &resident) == 2;
    std::fclose(f);
    if (!ok) return {};
    char buf[48];
    std::snprintf(buf, sizeof buf, " (rss %.1f MiB)", static_cast<double>(resident) * 4096.0 / (1024.0 * 1024.0));
    return buf;
  }
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace moesim
