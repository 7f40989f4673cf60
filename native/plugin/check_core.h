// The half-open check itself, with no N-API and no libbpf: the addon's
// check() (check.cc) and the native check_tcp_half_open (check_main.cc) both
// call RunCheck, so the two entry points send the same SYNs, accept the same
// replies and reach the same verdicts.
#pragma once
#include <linux/types.h>

#include <cstddef>
#include <cstdint>

extern "C" {
#include "halfopen.h"
}

namespace ho {

struct CheckOptions {
  int family = 0;              // 4 or 6
  uint8_t addr[16] = {};       // 4 or 16 bytes, network order
  uint16_t port = 0;
  int64_t timeout_ms = HO_CHECK_TIMEOUT_S * 1000;
  int64_t first_retry_ms = HO_CHECK_FIRST_RETRY_MS;
  int max_attempts = HO_CHECK_MAX_ATTEMPTS;
  uint32_t mark = 0;           // SO_MARK; 0 = none
};

struct CheckResult {
  enum ho_probe_state state = HO_PROBE_STATE_FILTERED;
  enum ho_reason reason = HO_REASON_NO_RESPONSE;
  int icmp_type = -1, icmp_code = -1;  // for HO_REASON_ICMP
  int ttl = -1;                        // of the reply; -1 without one
  int64_t rtt_ns = -1;                 // -1 without a reply
  bool replied = false;                // `from` and `ttl` are valid
  uint8_t from[16] = {};               // who answered: the target, or the router for ICMP
  uint8_t src[16] = {};                // our source address
  uint16_t sport = 0;                  // the source port of the answered (or first) SYN
  int attempts = 0;                    // SYNs sent
  int err = 0;                         // errno behind no-route / local-firewall
};

// A failure that is no verdict: the check could not run.
struct CheckError {
  enum ho_error code = HO_E_NONE;  // HO_E_PRIVILEGE or HO_E_SEND on failure
  char message[128] = {};      // without the errno: AppendErrno adds it
  int err = 0;
  const char *syscall = nullptr;
};

// Runs one check; blocks for at most timeout_ms (plus one sendto).
// True with *result filled, or false with *error filled.
bool RunCheck(const CheckOptions &options, CheckResult *result, CheckError *error);

// Hostname resolution with a deadline: getaddrinfo (hints as Node's
// dns.lookup: SOCK_STREAM, the family of -4/-6, else AF_UNSPEC) in a detached
// thread, so a resolver that hangs costs the caller no more than timeout_ns;
// an abandoned lookup neither blocks the process's exit nor leaks past it.
enum ResolveStatus { kResolveOk, kResolveFailed, kResolveLate };
struct ResolveResult {
  char address[64] = {};  // the first address, as inet_ntop writes it
  int family = 0;         // 4 or 6
  char code[32] = {};     // on failure: Node's code for it (ENOTFOUND, EAI_AGAIN, ...)
};
ResolveStatus ResolveHost(const char *host, int family, int64_t timeout_ns, ResolveResult *out);

// The contract's texts (bpf/halfopen.h): "open", "syn-ack", ...
const char *ProbeStateText(enum ho_probe_state s);
const char *ReasonText(enum ho_reason r);

}  // namespace ho
