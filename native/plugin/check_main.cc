// check_tcp_half_open: the native Nagios plugin. One half-open check per
// process, for farmguardian, Nagios/Icinga and keepalived, which start a
// process per backend per interval: this program starts in about a
// millisecond where Node needs tens.
//
// The check is RunCheck (check_core.cc); this file is everything around it:
// arguments, messages, the status line and perfdata, --json, exit codes.
// It is the only implementation: `halfopen check` runs this program
// (src/cli/check.ts), and scripts/gen-man.js makes the man page from --help.
// Needs neither Node nor libbpf: libc only (libstdc++ is linked statically).
#include "check_core.h"
#include "errno_name.h"
#include "json.h"
#include "via.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifndef HO_VERSION
#define HO_VERSION "0.0.0"
#endif

namespace ho {
namespace {

// ---- usage and help (also the man page's source) -------------------------

const char kUsage[] =
    "Usage: check_tcp_half_open HOST PORT | check_tcp_half_open -H HOST -p PORT [-t SECONDS] [-w SECONDS] "
    "[-c SECONDS] [-4|-6] [--json]";

std::string HelpText() {
  std::string t = std::string(kUsage) + "\n";
  t += "One half-open TCP check: a SYN goes out, a SYN+ACK means open and the kernel\n"
       "answers it with RST, so the service never sees a connection.\n"
       "\n"
       "  -H, --hostname HOST   address or hostname to check\n"
       "  -p, --port PORT       TCP port, 1-65535\n"
       "  -t, --timeout SECS    deadline for the whole check (default " +
       std::to_string((int)HO_CHECK_TIMEOUT_S) +
       "); a lost SYN\n"
       "                        is resent after 0.2 s, 0.4 s, 0.8 s, ... within it\n"
       "  -w, --warning SECS    WARNING when the response time is above SECS\n"
       "  -c, --critical SECS   CRITICAL when the response time is above SECS\n"
       "  -4, -6                use IPv4 or IPv6 only (also for hostname lookups)\n"
       "      --json            print one JSON object (ip, port, state, reason, rtt_ms, ttl, ts)\n"
       "      --via SOCKET      ask halfopen serve at its plugin socket (listen.plugin) and print\n"
       "                        its verdict, rise/fall applied; checks live when it cannot answer\n"
       "  -h, --help            this text\n"
       "  -V, --version         the version\n"
       "Environment: MARK=N or MARK=0xN marks the SYNs (SO_MARK), as SKUDONET sets for l4xnat farms.\n"
       "Exit codes: 0 OK (open), 1 WARNING (slower than -w), 2 CRITICAL (closed, filtered, unreachable,\n"
       "timeout, slower than -c), 3 UNKNOWN (usage, privileges).\n";
  return t;
}

const char *const kIcmp4Unreach[16] = {
    "Network unreachable", "Host unreachable", "Protocol unreachable", "Port unreachable",
    "Fragmentation needed", "Source route failed", "Destination network unknown", "Destination host unknown",
    "Source host isolated", "Network administratively prohibited", "Host administratively prohibited",
    "Network unreachable for TOS", "Host unreachable for TOS", "Communication administratively prohibited",
    "Host precedence violation", "Precedence cutoff in effect",
};
const char *const kIcmp6Unreach[8] = {
    "No route to destination", "Communication administratively prohibited", "Beyond scope of source address",
    "Address unreachable", "Port unreachable", "Source address failed ingress/egress policy",
    "Reject route to destination", "Error in source routing header",
};

const char *IcmpDescription(int family, int type, int code) {
  if (family == 4 && type == 3 && code >= 0 && code < 16) return kIcmp4Unreach[code];
  if (family == 6 && type == 1 && code >= 0 && code < 8) return kIcmp6Unreach[code];
  return "Destination unreachable";
}

// ---- numbers as the sweep's ndjson prints them (JavaScript's String()) ----

std::string Fixed(double x, int digits) {  // Number.prototype.toFixed for the magnitudes used here
  char buf[64];
  snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

std::string Secs(double ns) { return Fixed(ns / 1e9, 6); }

// String(x) for a finite double: the shortest digits that read back as x,
// in JavaScript's fixed or exponent notation.
std::string JsNumber(double x) {
  if (x == 0) return "0";
  if (!__builtin_isfinite(x)) return "null";
  std::string sign = x < 0 ? "-" : "";
  x = __builtin_fabs(x);
  char buf[40];
  for (int p = 1; p <= 17; p++) {
    snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
    if (strtod(buf, nullptr) == x) break;
  }
  std::string digits;
  const char *c = buf;
  for (; *c && *c != 'e'; c++)
    if (*c != '.') digits += *c;
  int e = atoi(c + 1);
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  int k = (int)digits.size(), n = e + 1;
  if (k <= n && n <= 21) return sign + digits + std::string(n - k, '0');
  if (0 < n && n <= 21) return sign + digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return sign + "0." + std::string(-n, '0') + digits;
  std::string m = digits.substr(0, 1) + (k > 1 ? "." + digits.substr(1) : "");
  return sign + m + "e" + (n - 1 >= 0 ? "+" : "-") + std::to_string(n - 1 >= 0 ? n - 1 : 1 - n);
}


// Dotted quad, or RFC 5952 text (as src/targets/address.ts formatAddress).
std::string FormatAddress(int family, const uint8_t *a) {
  char buf[64];
  if (family == 4) {
    snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
    return buf;
  }
  unsigned g[8];
  for (int i = 0; i < 8; i++) g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
  int best_at = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    if (g[i]) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && !g[j]) j++;
    if (j - i > best_len) {
      best_at = i;
      best_len = j - i;
    }
    i = j;
  }
  auto hex = [&](int from, int to) {
    std::string s;
    for (int i = from; i < to; i++) {
      snprintf(buf, sizeof(buf), "%s%x", i > from ? ":" : "", g[i]);
      s += buf;
    }
    return s;
  };
  if (best_at < 0) return hex(0, 8);
  return hex(0, best_at) + "::" + hex(best_at + best_len, 8);
}

std::string InetText(int family, const uint8_t *a) {  // inet_ntop, as the addon reports `from`
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof(buf));
  return buf;
}

std::string IsoNow() {  // Date.prototype.toISOString
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[80];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
           t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000000);
  return buf;
}

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// Straight to fd 1 with write(2), waiting out a full non-blocking pipe, as
// writeStdout in check.ts: a reader that went away needs no word.
void WriteStdout(const std::string &text) {
  size_t off = 0;
  int waits = 0;
  while (off < text.size()) {
    ssize_t n = write(1, text.data() + off, text.size() - off);
    if (n >= 0) {
      off += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN && ++waits < 5000) {
      timespec ms = {0, 1000000};
      nanosleep(&ms, nullptr);
      continue;
    }
    if (errno != EPIPE) {
      const char *name = strerrorname_np(errno);
      std::string m = std::string("check_tcp_half_open: cannot write the result to stdout: ") +
                      (name ? name : std::to_string(errno)) + "\n";
      if (write(2, m.data(), m.size()) < 0) {
      }
    }
    return;
  }
}

// ---- arguments (parseCheckArgs) ------------------------------------------

struct Failure {  // a HalfopenError: code and message
  enum ho_error code;
  std::string message;
};

struct Args {
  std::string host;
  int port = 0;
  double timeout_s = HO_CHECK_TIMEOUT_S;
  double warning_s = -1, critical_s = -1;  // -1: not given
  int family = 0;
  bool json = false;
  std::string via;  // --via SOCKET: ask serve; empty = a live check
};

enum Parsed { kCheck, kHelp, kVersion };

Failure Usage(const std::string &m) { return {HO_E_USAGE, m}; }

bool IsDigits(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

// /^(\d+(\.\d*)?|\.\d+)$/
bool IsDecimal(const std::string &s) {
  size_t i = 0, n = s.size();
  size_t int_digits = 0, frac_digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++, int_digits++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, frac_digits++;
  }
  return i == n && (int_digits > 0 || frac_digits > 0);
}

bool ParsePort(const std::string &s, int *port, Failure *f) {
  if (s.size() >= 1 && s.size() <= 5 && IsDigits(s.c_str())) {
    int n = atoi(s.c_str());
    if (n >= 1 && n <= 65535) {
      *port = n;
      return true;
    }
  }
  *f = Usage("invalid port \"" + s + "\": expected a number from 1 to 65535");
  return false;
}

bool ParseTimeout(const std::string &s, double *out, Failure *f) {
  double n = IsDecimal(s) ? strtod(s.c_str(), nullptr) : __builtin_nan("");
  if (n > 0 && n <= HO_CHECK_MAX_TIMEOUT_S) {
    *out = n;
    return true;
  }
  *f = Usage("invalid timeout \"" + s + "\": expected seconds above 0 and at most " +
             std::to_string((int)HO_CHECK_MAX_TIMEOUT_S) + ", e.g. 5 or 0.5");
  return false;
}

bool ParseThreshold(const std::string &s, const char *which, double *out, Failure *f) {
  double n = IsDecimal(s) ? strtod(s.c_str(), nullptr) : __builtin_nan("");
  if (n >= 0 && n <= HO_CHECK_MAX_TIMEOUT_S) {
    *out = n;
    return true;
  }
  *f = Usage(std::string("invalid ") + which + " threshold \"" + s + "\": expected seconds from 0 to " +
             std::to_string((int)HO_CHECK_MAX_TIMEOUT_S) + ", e.g. 0.5");
  return false;
}

bool ParseArgs(int argc, char **argv, Args *args, Parsed *what, Failure *f) {
  enum Key { kHost, kPort, kTimeout, kWarning, kCritical, kVia, kKeys };
  static const struct {
    const char *flag;
    Key key;
  } kWithValue[] = {
      {"-H", kHost},         {"--hostname", kHost}, {"--host", kHost},   {"-p", kPort},
      {"--port", kPort},     {"-t", kTimeout},      {"--timeout", kTimeout}, {"-w", kWarning},
      {"--warning", kWarning}, {"-c", kCritical},   {"--critical", kCritical}, {"--via", kVia},
  };
  std::string got[kKeys];
  bool seen[kKeys] = {};
  int family = 0;
  bool json = false;
  auto set = [&](Key key, const std::string &value, const std::string &flag) {
    if (seen[key]) {
      *f = Usage(flag + " given twice");
      return false;
    }
    seen[key] = true;
    got[key] = value;
    return true;
  };
  auto set_family = [&](int want) {
    if (family && family != want) {
      *f = Usage("-4 and -6 exclude each other");
      return false;
    }
    family = want;
    return true;
  };
  std::vector<std::string> pos;  // positionals fill HOST, then PORT, whichever the flags left open
  auto push = [&](const std::string &p) { pos.push_back(p); };
  for (int i = 0; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") {
      for (int j = i + 1; j < argc; j++) push(argv[j]);
      break;
    }
    if (a.empty() || a[0] != '-' || a == "-") {
      push(a);
      continue;
    }
    if (a == "-h" || a == "--help") {
      *what = kHelp;
      return true;
    }
    if (a == "-V" || a == "--version") {
      *what = kVersion;
      return true;
    }
    if (a == "-4" || a == "--use-ipv4") {
      if (!set_family(4)) return false;
      continue;
    }
    if (a == "-6" || a == "--use-ipv6") {
      if (!set_family(6)) return false;
      continue;
    }
    if (a == "--json") {
      json = true;
      continue;
    }
    std::string flag = a, value;
    bool has_value = false;
    size_t eq = a.find('=');
    bool dashdash = a.compare(0, 2, "--") == 0;
    if (dashdash && eq != std::string::npos && eq > 0) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    } else if (!dashdash && a.size() > 2) {
      flag = a.substr(0, 2);
      value = a.substr(2);
      has_value = true;
    }
    int key = -1;
    for (const auto &o : kWithValue)
      if (flag == o.flag) key = o.key;
    if (key < 0) {
      *f = Usage("unknown option \"" + a + "\"");
      return false;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *f = Usage(flag + " needs a value");
        return false;
      }
      value = argv[++i];
    }
    if (!set((Key)key, value, flag)) return false;
  }
  for (size_t i = 0; i < pos.size(); i++) {
    if (!seen[kHost]) {
      if (!set(kHost, pos[i], "HOST")) return false;
    } else if (!seen[kPort]) {
      if (!set(kPort, pos[i], "PORT")) return false;
    } else {
      *f = Usage("unexpected argument \"" + pos[i] + "\"");
      return false;
    }
  }
  if (!seen[kHost] || got[kHost].empty()) {
    *f = Usage("missing HOST");
    return false;
  }
  if (!seen[kPort]) {
    *f = Usage("missing PORT");
    return false;
  }
  std::string host = got[kHost];
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  args->host = host;
  if (!ParsePort(got[kPort], &args->port, f)) return false;
  if (seen[kTimeout] && !ParseTimeout(got[kTimeout], &args->timeout_s, f)) return false;
  if (seen[kWarning] && !ParseThreshold(got[kWarning], "warning", &args->warning_s, f)) return false;
  if (seen[kCritical] && !ParseThreshold(got[kCritical], "critical", &args->critical_s, f)) return false;
  if (seen[kVia]) {
    if (got[kVia].empty() || got[kVia][0] != '/') {
      *f = Usage("invalid --via \"" + got[kVia] + "\": expected the absolute path of serve's plugin socket");
      return false;
    }
    args->via = got[kVia];
  }
  args->family = family;
  args->json = json;
  *what = kCheck;
  return true;
}

// MARK from the environment: decimal or 0x hex; 0 = none (parseMark).
bool ParseMark(const char *env, uint32_t *mark, Failure *f) {
  *mark = 0;
  if (!env) return true;
  std::string s = env, t = s;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!t.empty() && space(t.front())) t.erase(0, 1);
  while (!t.empty() && space(t.back())) t.pop_back();
  if (t.empty()) return true;
  double n = __builtin_nan("");
  if (IsDigits(t.c_str())) {
    n = strtod(t.c_str(), nullptr);
  } else if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    bool hex = true;
    for (size_t i = 2; i < t.size(); i++) hex = hex && isxdigit((unsigned char)t[i]);
    if (hex) {
      n = 0;
      for (size_t i = 2; i < t.size() && n <= 0xffffffffp0; i++) {
        char c = (char)tolower((unsigned char)t[i]);
        n = n * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
      }
    }
  }
  if (!(n >= 0 && n <= 4294967295.0)) {
    *f = {HO_E_CONFIG, "invalid MARK \"" + s +
                          "\" in the environment: expected a decimal or 0x hex number up to 0xffffffff"};
    return false;
  }
  *mark = (uint32_t)n;
  return true;
}

bool HasNetRaw() {  // effective CAP_NET_RAW, as effectiveCaps() reads CapEff
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data)) return false;
  return data[0].effective & (1u << CAP_NET_RAW);
}

// ---- resolution within the deadline --------------------------------------

enum Resolved { kResolved, kUnresolved, kLate };

struct Target {
  int family = 0;
  uint8_t bytes[16] = {};
  std::string ip;
};

// parseAddress: an IPv4 or IPv6 literal; IPv4-mapped IPv6 is IPv4.
bool Literal(const std::string &s, Target *t) {
  uint8_t b[16];
  if (s.find(':') != std::string::npos) {
    if (s.size() < 2 || s.size() > 45 || s.find('%') != std::string::npos || inet_pton(AF_INET6, s.c_str(), b) != 1)
      return false;
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(b, mapped, 12)) {
      t->family = 4;
      memcpy(t->bytes, b + 12, 4);
    } else {
      t->family = 6;
      memcpy(t->bytes, b, 16);
    }
  } else {
    if (inet_pton(AF_INET, s.c_str(), b) != 1) return false;
    t->family = 4;
    memcpy(t->bytes, b, 4);
  }
  t->ip = FormatAddress(t->family, t->bytes);
  return true;
}

// A hostname through ResolveHost (check_core.cc): getaddrinfo in a thread of
// its own, so the deadline holds even when the resolver hangs.
Resolved Resolve(const Args &a, int64_t deadline_ns, Target *t, Failure *f) {
  ResolveResult r;
  switch (ResolveHost(a.host.c_str(), a.family, std::max<int64_t>(0, deadline_ns - MonoNs()), &r)) {
    case kResolveLate: return kLate;
    case kResolveFailed:
      *f = {HO_E_RESOLVE, "cannot resolve \"" + a.host + "\": " + r.code};
      return kUnresolved;
    case kResolveOk: break;
  }
  if (!Literal(r.address, t)) {
    *f = {HO_E_RESOLVE, "cannot resolve \"" + a.host + "\": the resolver returned \"" + r.address + "\""};
    return kUnresolved;
  }
  if (a.family && t->family != a.family) {
    *f = {HO_E_RESOLVE, "cannot resolve \"" + a.host + "\": no IPv" + std::to_string(a.family) + " address"};
    return kUnresolved;
  }
  return kResolved;
}

// SYNs a live check sends within timeout_ms: one at once, then after 0.2 s,
// 0.4 s, 0.8 s, ... (RunCheck's schedule), for the line of a silent backend.
int SynsWithin(double timeout_ms) {
  int n = 0;
  double at = 0, gap = HO_CHECK_FIRST_RETRY_MS;
  while (at < timeout_ms && n < HO_CHECK_MAX_ATTEMPTS) {
    n++;
    at += gap;
    gap *= 2;
  }
  return n;
}

// ---- the run (main in check.ts) ------------------------------------------

struct Run {
  int64_t started = MonoNs();
  Args args;
  bool have_args = false;

  std::string Perf(double time_ns) const {
    return "|time=" + Secs(time_ns) + "s;" + (args.warning_s >= 0 ? Fixed(args.warning_s, 6) : "") + ";" +
           (args.critical_s >= 0 ? Fixed(args.critical_s, 6) : "") + ";0.000000;" + Fixed(args.timeout_s, 6);
  }

  int Unknown(const Failure &f) const {
    if (have_args && args.json) {
      WriteStdout("{\"ip\":null,\"port\":" + std::to_string(args.port) + ",\"state\":\"unknown\",\"reason\":" +
                  JsonString(ErrorCodeText(f.code)) + ",\"error\":" + JsonString(f.message) + "}\n");
    } else {
      std::string out = "TCP UNKNOWN - " + f.message + "\n";
      if (f.code == HO_E_USAGE) out += std::string(kUsage) + "\n";
      WriteStdout(out);
    }
    return HO_CHECK_UNKNOWN;
  }

  // CRITICAL before any SYN went out: the name did not resolve in time.
  int Critical(const std::string &message, enum ho_reason reason) const {
    double elapsed = (double)(MonoNs() - started);
    if (args.json) {
      WriteStdout("{\"ip\":null,\"port\":" + std::to_string(args.port) +
                  ",\"state\":\"unreachable\",\"reason\":" + JsonString(ReasonText(reason)) +
                  ",\"rtt_ms\":null,\"ttl\":null,\"ts\":" + JsonString(IsoNow()) + "}\n");
    } else {
      WriteStdout("TCP CRITICAL - " + message + Perf(elapsed) + "\n");
    }
    return HO_CHECK_CRITICAL;
  }

  // formatOutcome
  int Outcome(const Target &t, const CheckResult &r, double elapsed_ns, std::string *line) const {
    const std::string where =
        "on " + (args.host == t.ip ? t.ip : args.host + " (" + t.ip + ")") + " port " + std::to_string(args.port);
    const double time_ns = r.rtt_ns >= 0 ? (double)r.rtt_ns : elapsed_ns;
    const std::string perf = Perf(time_ns);
    const int family = t.ip.find(':') != std::string::npos ? 6 : 4;
    std::string errname;
    if (r.err) {
      const char *n = ErrnoName(r.err);
      errname = n ? n : "errno " + std::to_string(r.err);
    }
    std::string text;
    switch (r.state) {
      case HO_PROBE_STATE_OPEN: {
        const char *label = "OK";
        int code = HO_CHECK_OK;
        if (args.critical_s >= 0 && time_ns > args.critical_s * 1e9) {
          label = "CRITICAL";
          code = HO_CHECK_CRITICAL;
        } else if (args.warning_s >= 0 && time_ns > args.warning_s * 1e9) {
          label = "WARNING";
          code = HO_CHECK_WARNING;
        }
        *line = std::string("TCP ") + label + " - " + Secs(time_ns) + " second response time " + where + perf;
        return code;
      }
      case HO_PROBE_STATE_CLOSED:
        text = "Connection refused (RST) " + where;
        break;
      case HO_PROBE_STATE_FILTERED:
        if (r.reason == HO_REASON_LOCAL_FIREWALL)
          text = "SYN dropped by a local firewall rule (" + errname + ") " + where;
        else
          text = "No response (filtered) " + where + ": " + std::to_string(r.attempts) + " SYN" +
                 (r.attempts == 1 ? "" : "s") + " in " + Fixed(elapsed_ns / 1e9, 3) + " seconds";
        break;
      case HO_PROBE_STATE_UNREACHABLE:
        if (r.reason == HO_REASON_ICMP)
          text = std::string(IcmpDescription(family, r.icmp_type, r.icmp_code)) + " (ICMP type " +
                 std::to_string(r.icmp_type) + " code " + std::to_string(r.icmp_code) + " from " +
                 InetText(t.family, r.from) + ") " + where;
        else
          text = "No route to host (" + errname + ") " + where;
        break;
      default:
        *line = "TCP UNKNOWN - unexpected result " + where;
        return HO_CHECK_UNKNOWN;
    }
    *line = "TCP CRITICAL - " + text + perf;
    return HO_CHECK_CRITICAL;
  }

  // formatJson: the sweep's ndjson record.
  std::string Json(const Target &t, const CheckResult &r) const {
    std::string reason = ReasonText(r.reason);
    if (r.reason == HO_REASON_ICMP) reason += "-" + std::to_string(r.icmp_type) + "-" + std::to_string(r.icmp_code);
    std::string rtt = "null";
    // roundMs: Math.round(ms * 1000) / 1000; the value is positive, so truncating x + 0.5 rounds it.
    if (r.rtt_ns >= 0) rtt = JsNumber((double)(int64_t)((double)r.rtt_ns / 1e6 * 1000 + 0.5) / 1000);
    return "{\"ip\":" + JsonString(t.ip) + ",\"port\":" + std::to_string(args.port) +
           ",\"state\":" + JsonString(ProbeStateText(r.state)) + ",\"reason\":" + JsonString(reason) +
           ",\"rtt_ms\":" + rtt + ",\"ttl\":" + (r.replied && r.ttl >= 0 ? std::to_string(r.ttl) : "null") +
           ",\"ts\":" + JsonString(IsoNow()) + "}";
  }

  // serve's verdict (--via), printed by the same formatters as a live check's.
  int FromServe(const ViaAnswer &a) const {
    Target t;
    if (!Literal(a.ip, &t)) return Unknown({HO_E_INTERNAL, "serve answered with the address \"" + a.ip + "\""});
    const std::string where =
        "on " + (args.host == t.ip ? t.ip : args.host + " (" + t.ip + ")") + " port " + std::to_string(args.port);
    if (a.state == "maint" || a.state == "pending") {
      // No live check ends like this: serve's admin state, or rise not reached yet.
      const bool maint = a.state == "maint";
      if (args.json)
        WriteStdout("{\"ip\":" + JsonString(t.ip) + ",\"port\":" + std::to_string(args.port) +
                    ",\"state\":\"down\",\"reason\":" + JsonString(maint ? "maint" : "rise") +
                    ",\"rtt_ms\":null,\"ttl\":null,\"ts\":" + JsonString(IsoNow()) + "}\n");
      else
        WriteStdout(std::string("TCP CRITICAL - ") +
                    (maint ? "In maintenance (halfopen serve) " : "Down until rise is reached (halfopen serve) ") + where +
                    Perf(0) + "\n");
      return HO_CHECK_CRITICAL;
    }
    CheckResult r;
    r.state = a.state == "open" ? HO_PROBE_STATE_OPEN : a.state == "closed" ? HO_PROBE_STATE_CLOSED : HO_PROBE_STATE_FILTERED;
    r.reason = a.state == "open" ? HO_REASON_SYN_ACK : a.state == "closed" ? HO_REASON_RST : HO_REASON_NO_RESPONSE;
    r.rtt_ns = a.rtt_us >= 0 ? a.rtt_us * 1000 : -1;
    r.ttl = a.ttl;
    r.replied = a.ttl >= 0;
    // A silent backend reads as a live check that waited out its deadline.
    r.attempts = SynsWithin(args.timeout_s * 1000);
    std::string line;
    int code = Outcome(t, r, args.timeout_s * 1e9, &line);
    WriteStdout((args.json ? Json(t, r) : line) + "\n");
    return code;
  }

  int Main(int argc, char **argv) {
    Parsed what;
    Failure f;
    if (!ParseArgs(argc, argv, &args, &what, &f)) return Unknown(f);
    if (what == kHelp) {
      WriteStdout(HelpText());
      return HO_CHECK_OK;
    }
    if (what == kVersion) {
      WriteStdout("check_tcp_half_open (halfopen) " HO_VERSION "\n");
      return HO_CHECK_OK;
    }
    have_args = true;
    const int64_t deadline = started + (int64_t)(args.timeout_s * 1e9 + 0.5);  // Math.round of a positive value
    uint32_t mark;
    if (!ParseMark(getenv("MARK"), &mark, &f)) return Unknown(f);
    if (!args.via.empty()) {
      Target lit;
      if (Literal(args.host, &lit) && args.family && lit.family != args.family)
        return Unknown(Usage(args.host + " is an IPv" + std::to_string(lit.family) + " address but -" +
                             std::to_string(args.family) + " was given"));
      ViaAnswer a = AskServe(args.via, args.host, args.port, deadline, args.family);
      if (a.kind == kViaVerdict) return FromServe(a);
      if (a.kind == kViaRefused) return Unknown({HO_E_REFUSED, a.text});
      // stderr only: farmguardian logs stdout, which stays the check's one line.
      std::string note = "check_tcp_half_open: --via " + args.via + ": " + a.text + "; checking live\n";
      if (write(2, note.data(), note.size()) < 0) {
      }
    }
    if (!HasNetRaw())
      return Unknown({HO_E_PRIVILEGE, "the half-open check needs CAP_NET_RAW (raw sockets): run it as root, or through sudo"});
    Target t;
    if (!Literal(args.host, &t)) {
      switch (Resolve(args, deadline, &t, &f)) {
        case kResolved: break;
        case kLate:
          return Critical("resolving \"" + args.host + "\" took longer than the " + JsNumber(args.timeout_s) +
                              " s deadline", HO_REASON_TIMEOUT);
        case kUnresolved:
          if (f.code == HO_E_RESOLVE) return Critical(f.message, HO_REASON_DNS_FAILURE);
          return Unknown(f);
      }
    } else if (args.family && t.family != args.family) {
      return Unknown(Usage(args.host + " is an IPv" + std::to_string(t.family) + " address but -" +
                           std::to_string(args.family) + " was given"));
    }
    CheckOptions o;
    o.family = t.family;
    memcpy(o.addr, t.bytes, 16);
    o.port = (uint16_t)args.port;
    o.timeout_ms = std::max<int64_t>(1, (deadline - MonoNs()) / 1000000);
    o.mark = mark;
    CheckResult r;
    CheckError e;
    if (!RunCheck(o, &r, &e)) {
      char msg[256];
      snprintf(msg, sizeof(msg), "%s", e.message);
      AppendErrno(msg, sizeof(msg), e.err);
      return Unknown({e.code, msg});
    }
    std::string line;
    int code = Outcome(t, r, (double)(MonoNs() - started), &line);
    WriteStdout((args.json ? Json(t, r) : line) + "\n");
    return code;
  }
};

}  // namespace
}  // namespace ho

int main(int argc, char **argv) {
  // A reader that goes away must cost an EPIPE, not the exit code (Node ignores SIGPIPE too).
  signal(SIGPIPE, SIG_IGN);
  ho::Run run;
  int code = run.Main(argc - 1, argv + 1);
  _exit(code);  // a resolver thread that missed the deadline must not hold the exit
}
