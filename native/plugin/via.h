// check_tcp_half_open --via SOCKET: ask `halfopen serve` over its plugin
// socket (listen.plugin) instead of sending SYNs. The protocol is described
// in src/daemon/plugin-protocol.ts; this is its client. It only fetches the
// verdict's fields: check_main.cc formats them exactly as a live check's.
#pragma once
#include <cstdint>
#include <string>

namespace ho {

// serve must say something within this long, or the plugin checks live.
constexpr int64_t kViaAnswerNs = 100 * 1000000LL;

enum ViaKind {
  kViaVerdict,  // fields below: print them
  kViaRefused,  // text: UNKNOWN, exit 3 (learning refused)
  kViaLive,     // text: why serve cannot answer; check live instead
};

struct ViaAnswer {
  ViaKind kind = kViaLive;
  std::string state;   // open, closed, filtered, maint, pending
  std::string reason;  // syn-ack, rst, no-response, ...
  std::string ip;      // the address serve checks
  int64_t rtt_us = -1;
  int ttl = -1;
  std::string text;
};

// Asks serve about host:port. deadline_ns: CLOCK_MONOTONIC when the check's
// -t runs out; family 0, 4 or 6. Never blocks past the deadline, nor longer
// than kViaAnswerNs before serve's first line.
ViaAnswer AskServe(const std::string &socket_path, const std::string &host, int port, int64_t deadline_ns, int family);

}  // namespace ho
