#include "sim/worker_pool.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace moesim {

namespace {

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  std::size_t task = 0;
  std::string out;
};

// Writes all of s; false when the pipe is gone.
bool write_fully(int fd, const std::string& s) {
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return true;
}

int reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

void kill_all(std::vector<Worker>& running) {
  for (auto& w : running) {
    ::kill(w.pid, SIGKILL);
    ::close(w.fd);
    reap(w.pid);
  }
  running.clear();
}

}  // namespace

std::string worker_death_text(int status, const char* who) {
  return fmt::format("{} died ({})", who,
                     WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                                         : fmt::format("exit code {}", WEXITSTATUS(status)));
}

WorkerAnswer worker_ok(std::string payload) { return {"OK" + std::move(payload), 0}; }

WorkerAnswer worker_error(std::string message) { return {"ER" + std::move(message), 1}; }

WorkerReply read_worker_reply(const WorkerResult& w, const char* who) {
  if (w.output.rfind("OK", 0) == 0) return {WorkerReply::ok, w.output.substr(2)};
  if (w.output.rfind("ER", 0) == 0) return {WorkerReply::error, w.output.substr(2)};
  return {WorkerReply::died, worker_death_text(w.status, who)};
}

void run_worker_pool(std::size_t tasks, const std::function<WorkerAnswer(std::size_t)>& work,
                     const std::function<void(const WorkerResult&)>& on_done, const WorkerPoolOptions& opt) {
  const int jobs = std::max(1, opt.jobs);
  const auto stopped = [&] { return opt.stop && opt.stop(); };
  std::vector<Worker> running;
  std::size_t next = 0;
  std::fflush(nullptr);  // nothing buffered is written twice by a worker's exit
  const pid_t parent = ::getpid();
  try {
    while (next < tasks || !running.empty()) {
      while (!stopped() && next < tasks && static_cast<int>(running.size()) < jobs) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(fmt::format("pipe() failed: {}", std::strerror(errno)));
        const pid_t pid = ::fork();
        if (pid < 0) {
          const int e = errno;
          ::close(fds[0]), ::close(fds[1]);
          throw std::runtime_error(fmt::format("fork() failed: {}", std::strerror(e)));
        }
        if (pid == 0) {
          ::prctl(PR_SET_PDEATHSIG, SIGKILL);
          if (::getppid() != parent) ::_exit(1);  // the parent died before the signal was armed
          ::close(fds[0]);
          for (const auto& w : running) ::close(w.fd);
          WorkerAnswer a;
          try {
            if (opt.in_child) opt.in_child();
            a = work(next);
          } catch (const std::exception& e) {
            a = worker_error(e.what());
          } catch (...) {
            a = worker_error("unknown exception");
          }
          if (!write_fully(fds[1], a.output)) a.exit_code = 1;
          ::close(fds[1]);
          ::_exit(a.exit_code);
        }
        ::close(fds[1]);
        running.push_back({pid, fds[0], next, {}});
        ++next;
      }
      if (stopped()) break;
      if (running.empty()) continue;
      std::vector<pollfd> pf;
      pf.reserve(running.size());
      for (const auto& w : running) pf.push_back({w.fd, POLLIN, 0});
      const int n = ::poll(pf.data(), pf.size(), opt.poll_timeout_ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(fmt::format("poll() failed: {}", std::strerror(errno)));
      }
      if (n == 0) {
        if (opt.on_timeout) opt.on_timeout();
        continue;
      }
      for (std::size_t k = pf.size(); k-- > 0;) {
        if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[65536];
        const ssize_t got = ::read(running[k].fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got > 0) {
          running[k].out.append(buf, static_cast<std::size_t>(got));
          continue;
        }
        // End of the worker's output: it has finished (or died).
        Worker w = std::move(running[k]);
        running.erase(running.begin() + static_cast<std::ptrdiff_t>(k));
        ::close(w.fd);
        const int status = reap(w.pid);
        on_done({w.task, std::move(w.out), status});
      }
    }
  } catch (...) {
    kill_all(running);
    throw;
  }
  kill_all(running);  // stopped: the workers still running are ended
}

}  // namespace moesim
