// The plugin socket's client (see via.h). Raw syscalls, as check_core.cc
// uses: an LD_PRELOAD shim that wraps socket()/connect() (SKUDONET marks its
// checks' traffic with one) can neither break nor alter the exchange.
#include "via.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace ho {
namespace {

int64_t Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) syscall(SYS_close, fd);
  }
};

ViaAnswer Live(const std::string &why) {
  ViaAnswer a;
  a.kind = kViaLive;
  a.text = why;
  return a;
}

std::string ErrText(int err) {
  const char *n = strerrorname_np(err);
  return n ? n : "errno " + std::to_string(err);
}

bool IsField(const std::string &s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == ':' || c == '%' || c == '-')) return false;
  return true;
}

bool IsInt(const std::string &s, int64_t *out) {  // -1, 0, or digits without a leading zero
  if (s == "-1") {
    *out = -1;
    return true;
  }
  if (s.empty() || s.size() > 12 || (s.size() > 1 && s[0] == '0')) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  *out = strtoll(s.c_str(), nullptr, 10);
  return true;
}

std::vector<std::string> Split(const std::string &s) {
  std::vector<std::string> w;
  size_t at = 0;
  for (;;) {
    size_t sp = s.find(' ', at);
    w.push_back(s.substr(at, sp == std::string::npos ? std::string::npos : sp - at));
    if (sp == std::string::npos) return w;
    at = sp + 1;
  }
}

// Reads one line into *line by `until` (CLOCK_MONOTONIC); false on EOF, error or time.
bool ReadLine(int fd, std::string *buf, std::string *line, int64_t until, std::string *why) {
  for (;;) {
    size_t nl = buf->find('\n');
    if (nl != std::string::npos) {
      *line = buf->substr(0, nl);
      buf->erase(0, nl + 1);
      return true;
    }
    if (buf->size() > 4096) {
      *why = "an answer line longer than 4096 bytes";
      return false;
    }
    int64_t left = until - Now();
    if (left <= 0) {
      *why = "no answer in time";
      return false;
    }
    pollfd p = {fd, POLLIN, 0};
    timespec ts = {(time_t)(left / 1000000000LL), (long)(left % 1000000000LL)};
    int r = (int)syscall(SYS_ppoll, &p, 1, &ts, nullptr, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      *why = "poll: " + ErrText(errno);
      return false;
    }
    if (r == 0) continue;
    char chunk[1024];
    ssize_t n = (ssize_t)syscall(SYS_read, fd, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      *why = "read: " + ErrText(errno);
      return false;
    }
    if (n == 0) {
      *why = "serve closed the connection without an answer";
      return false;
    }
    buf->append(chunk, (size_t)n);
  }
}

}  // namespace

ViaAnswer AskServe(const std::string &socket_path, const std::string &host, int port, int64_t deadline_ns, int family) {
  const int64_t start = Now();
  sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(sa.sun_path)) return Live("the socket path is too long");
  memcpy(sa.sun_path, socket_path.data(), socket_path.size());
  Fd s;
  s.fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s.fd < 0) return Live("socket: " + ErrText(errno));
  // A unix socket connects at once or not at all (EAGAIN: serve's backlog is full, it is not keeping up).
  if (syscall(SYS_connect, s.fd, (sockaddr *)&sa, (socklen_t)sizeof(sa)) != 0) return Live("cannot connect: " + ErrText(errno));
  int64_t left_ms = (deadline_ns - Now()) / 1000000;
  if (left_ms < 1) left_ms = 1;
  std::string req = "check " + host + " " + std::to_string(port) + " " + std::to_string(left_ms) + " " +
                    std::to_string(family) + "\n";
  ssize_t w = (ssize_t)syscall(SYS_write, s.fd, req.data(), req.size());
  if (w != (ssize_t)req.size()) return Live(w < 0 ? "write: " + ErrText(errno) : "short write");
  std::string buf, line, why;
  int64_t first_by = start + kViaAnswerNs;
  if (first_by > deadline_ns) first_by = deadline_ns;
  if (!ReadLine(s.fd, &buf, &line, first_by, &why)) return Live(why == "no answer in time" ? "no answer within 100 ms" : why);
  if (line.compare(0, 5, "wait ") == 0) {
    // Learning: serve checks the new backend now and answers before the deadline.
    if (!ReadLine(s.fd, &buf, &line, deadline_ns, &why)) return Live(why == "no answer in time" ? "no verdict within the deadline" : why);
  }
  size_t sp = line.find(' ');
  std::string verb = line.substr(0, sp), rest = sp == std::string::npos ? "" : line.substr(sp + 1);
  if (verb == "refused" && !rest.empty()) {
    ViaAnswer a;
    a.kind = kViaRefused;
    a.text = rest;
    return a;
  }
  if (verb == "live" && !rest.empty()) return Live(rest);
  if (verb == "error") return Live("serve did not understand the request: " + rest);
  if (verb == "verdict") {
    std::vector<std::string> f = Split(rest);
    int64_t rtt, ttl;
    if (f.size() == 5 && (f[0] == "open" || f[0] == "closed" || f[0] == "filtered" || f[0] == "maint" || f[0] == "pending") &&
        IsField(f[1]) && IsField(f[2]) && IsInt(f[3], &rtt) && IsInt(f[4], &ttl) && ttl <= 255) {
      ViaAnswer a;
      a.kind = kViaVerdict;
      a.state = f[0];
      a.reason = f[1];
      a.ip = f[2];
      a.rtt_us = rtt;
      a.ttl = (int)ttl;
      return a;
    }
  }
  std::string shown = line.substr(0, 80);
  for (char &c : shown)
    if ((unsigned char)c < 0x20) c = ' ';
  return Live("an answer this plugin does not read: \"" + shown + "\"");
}

}  // namespace ho
