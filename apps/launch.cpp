#include "apps/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

#include <fmt/core.h>

#include "core/error.h"

namespace rzoo::cli {

namespace {

std::vector<pid_t> g_children;

void forward_signal(int sig) {
  for (pid_t p : g_children)
    if (p > 0) ::kill(p, sig);
}

// A TCP port that is free now on the loopback interface (the kernel picks it).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("--nproc: cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    fail("--nproc: cannot find a free port on 127.0.0.1: {}", why);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

std::vector<std::string> without_nproc(int argc, char** argv, std::string& value) {
  std::vector<std::string> out;
  value.clear();
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    if (s == "--nproc") {
      value = i + 1 < argc ? argv[++i] : "";
      if (value.empty()) value = " ";  // present without a value: an error for the caller
      continue;
    }
    if (s.rfind("--nproc=", 0) == 0) {
      value = s.substr(8);
      if (value.empty()) value = " ";
      continue;
    }
    out.push_back(s);
  }
  return out;
}

int launch_local(int nproc, const std::vector<std::string>& args, bool quiet) {
  if (std::getenv("WORLD_SIZE"))
    fail("--nproc N inside a distributed launch (WORLD_SIZE is set): use one or the other");
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) fail("--nproc: cannot find the rzoo program itself (/proc/self/exe: {})", std::strerror(errno));
  self[n] = '\0';
  const int port = free_port();
  std::vector<std::string> argv_s{self};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv_c;
  for (auto& s : argv_s) argv_c.push_back(s.data());
  argv_c.push_back(nullptr);

  std::signal(SIGINT, forward_signal);
  std::signal(SIGTERM, forward_signal);
  if (!quiet)
    std::cout << fmt::format("rzoo: --nproc {}: {} processes on this machine (rendezvous at 127.0.0.1:{}); rank 0 "
                           "prints for all\n", nproc, nproc, port)
            << std::flush;
  g_children.assign(static_cast<size_t>(nproc), -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      forward_signal(SIGTERM);
      fail("--nproc: cannot start process {}: {}", r, std::strerror(errno));
    }
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      // This very program, also when its file was rebuilt since it started (see tune.cpp's exe()).
      ::execv("/proc/self/exe", argv_c.data());
      std::fprintf(stderr, "rzoo: --nproc: cannot run %s: %s\n", self, std::strerror(errno));
      ::_exit(127);
    }
    g_children[static_cast<size_t>(r)] = pid;
  }
  // Wait for all; after the first failure, give the others 60 s to fail on their own (their next
  // collective names the lost rank), then stop them.
  int first_bad = -1, first_code = 0, left = nproc;
  auto failed_at = std::chrono::steady_clock::now();
  bool termed = false, killed = false;
  while (left > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, first_bad >= 0 ? WNOHANG : 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pid == 0) {  // someone failed, others still run
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
      if (waited > 60 && !termed) {
        forward_signal(SIGTERM);
        termed = true;
      } else if (waited > 90 && !killed) {
        forward_signal(SIGKILL);
        killed = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    int rank = -1;
    for (int r = 0; r < nproc; ++r)
      if (g_children[static_cast<size_t>(r)] == pid) rank = r;
    if (rank < 0) continue;
    g_children[static_cast<size_t>(rank)] = -1;
    --left;
    const int code = status_code(status);
    if (code != 0 && first_bad < 0) {
      first_bad = rank;
      first_code = code;
      failed_at = std::chrono::steady_clock::now();
      if (left > 0)
        std::cerr << fmt::format("rzoo: --nproc: rank {} exited with status {}; waiting for the other {} to stop\n",
                                 rank, code, left);
    }
  }
  if (first_bad >= 0)
    std::cerr << fmt::format("rzoo: --nproc: rank {} failed first (exit status {})\n", first_bad, first_code);
  return first_code;
}

}  // namespace rzoo::cli
