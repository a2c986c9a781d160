// Forked worker processes, `jobs` at a time: how `moesim plan` and `moesim sweep` run their scenarios and how
// `run_scenario` runs each variant. Each task runs in its own process because SimGrid allows one simulation per
// process (DESIGN rule 5); the worker writes its answer to a pipe and exits, and the parent collects the bytes
// and the exit status. Workers die with the parent (SIGKILL on its exit, however it ends), so no simulation
// keeps running under init.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace moesim {

// What one worker left: the bytes it wrote (its whole answer) and its waitpid status.
struct WorkerResult {
  std::size_t task = 0;
  std::string output;
  int status = 0;
};

// A worker's answer: the bytes to send back and its exit code.
struct WorkerAnswer {
  std::string output;
  int exit_code = 0;
};

struct WorkerPoolOptions {
  int jobs = 1;                 // workers at once (at least 1)
  int poll_timeout_ms = -1;     // -1: wait for output; else on_timeout is called after this long without any
  std::function<void()> on_timeout;
  // Checked before each start and after each wake-up: true starts no more tasks, kills the running workers
  // (SIGKILL; their simulation children die with them) and returns. Their results are not reported.
  std::function<bool()> stop;
  std::function<void()> in_child;  // first thing a worker runs (e.g. restore a signal, close the parent's files)
};

// Runs work(i) for i = 0 .. tasks - 1, each in a forked worker, at most opt.jobs at a time, in order of i;
// on_done(result) runs in the parent as each worker ends, in the order they end. Workers die with the parent
// (PR_SET_PDEATHSIG). work's exception becomes the answer "ER" + what() with exit code 1. When on_done or the
// pool itself throws, the running workers are killed and reaped before the exception leaves.
void run_worker_pool(std::size_t tasks, const std::function<WorkerAnswer(std::size_t)>& work,
                     const std::function<void(const WorkerResult&)>& on_done, const WorkerPoolOptions& opt = {});

// "the worker process died (signal 9)" / "... (exit code 3)": for a worker that left no answer (`who` names
// the process).
std::string worker_death_text(int status, const char* who = "the worker process");

// The answer protocol the pool's users share: work returns worker_ok(payload) or worker_error(message) (an
// exception from work becomes worker_error(what()) in the pool); read_worker_reply tells them apart.
WorkerAnswer worker_ok(std::string payload);
WorkerAnswer worker_error(std::string message);
struct WorkerReply {
  enum Kind { ok, error, died } kind = died;
  std::string text;  // ok: the payload; error: the message; died: worker_death_text(status, who)
};
WorkerReply read_worker_reply(const WorkerResult& w, const char* who = "the worker process");

}  // namespace moesim
