// parallel_for: the one small thread pool of moesim (routing's source ranks, a multi-step run's routing and
// op graphs). Header-only: models/ and sim/ both use it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace moesim::models {

// Runs fn(i) for every i in [0, n) on `workers` threads at most (the calling thread is one of them), each
// thread taking the next index not yet taken. fn must be safe to run concurrently for distinct i. An exception
// thrown by fn(i) does not stop the others; once all have run, the one of the lowest i is rethrown, so the
// error reported does not depend on which thread met it first.
template <class F>
void parallel_for(int n, int workers, F&& fn) {
  if (n <= 0) return;
  workers = std::clamp(workers, 1, n);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n));
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i; (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(workers - 1));
  for (int t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace moesim::models
