// sim/worker_pool: the forked workers behind `moesim plan` and `moesim sweep`. Each task's answer comes back
// whole, once; a throwing task, a task that exits without an answer and one killed by a signal are told
// apart; stop() ends the pool with no further starts.
#include <catch2/catch.hpp>
#include <csignal>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "sim/worker_pool.hpp"

using namespace moesim;

TEST_CASE("worker pool: every task answers once and failures are told apart", "[worker_pool]") {
  // 7 tasks, 2 at a time. Task i answers "OK" and i x 10,000 bytes of 'x', task 6 70,000: more than a pipe
  // holds (64 KiB) and than one read takes, so the parent must read while that worker writes. Task 2 throws,
  // task 4 exits with code 3 and no answer, task 5 is killed by SIGKILL.
  std::map<std::size_t, WorkerResult> got;
  const auto work = [](std::size_t i) -> WorkerAnswer {
    if (i == 2) throw std::runtime_error("task two failed");
    if (i == 4) ::_exit(3);
    if (i == 5) ::raise(SIGKILL);
    return {"OK" + std::string(i == 6 ? 70000 : i * 10000, 'x'), 0};
  };
  WorkerPoolOptions opt;
  opt.jobs = 2;
  run_worker_pool(7, work, [&](const WorkerResult& r) { CHECK(got.emplace(r.task, r).second); }, opt);
  REQUIRE(got.size() == 7);
  for (std::size_t i : {0, 1, 3, 6}) {
    INFO("task " << i);
    const std::size_t want = i == 6 ? 70000 : i * 10000;
    CHECK(got[i].output == "OK" + std::string(want, 'x'));
    CHECK(WIFEXITED(got[i].status));
    CHECK(WEXITSTATUS(got[i].status) == 0);
  }
  CHECK(got[2].output == "ERtask two failed");
  CHECK(WEXITSTATUS(got[2].status) == 1);
  CHECK(got[4].output.empty());
  CHECK(worker_death_text(got[4].status) == "the worker process died (exit code 3)");
  CHECK(got[5].output.empty());
  CHECK(worker_death_text(got[5].status) == "the worker process died (signal 9)");
  CHECK(worker_death_text(got[5].status, "the simulation process") == "the simulation process died (signal 9)");
}

TEST_CASE("worker pool: stop starts nothing more and ends the running workers", "[worker_pool]") {
  // One job at a time: task 0 answers at once, and stop() turns true when it is done, so tasks 1.. never run.
  // With 2 jobs, task 1 (sleeping 60 s) is running when task 0 finishes: it is killed, not waited for.
  for (int jobs : {1, 2}) {
    INFO(jobs << " jobs");
    std::set<std::size_t> done;
    const auto work = [](std::size_t i) -> WorkerAnswer {
      if (i > 0) ::sleep(60);
      return {"OK", 0};
    };
    WorkerPoolOptions opt;
    opt.jobs = jobs;
    opt.stop = [&] { return !done.empty(); };
    run_worker_pool(5, work, [&](const WorkerResult& r) { done.insert(r.task); }, opt);
    CHECK(done == std::set<std::size_t>{0});
  }
}

TEST_CASE("worker pool: an exception in the parent's handler kills the workers and leaves", "[worker_pool]") {
  const auto work = [](std::size_t i) -> WorkerAnswer {
    if (i > 0) ::sleep(60);
    return {"OK", 0};
  };
  WorkerPoolOptions opt;
  opt.jobs = 2;
  CHECK_THROWS_WITH(run_worker_pool(3, work, [](const WorkerResult&) { throw std::runtime_error("handler"); }, opt),
                    "handler");
}
