// The addon's check(): argument checking and the result object around
// RunCheck (check_core.cc), which holds the check itself and is shared with
// the native check_tcp_half_open.
#include "common.h"
#include "check_core.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace ho {
namespace {

std::string AddrText(int family, const uint8_t *a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == 6 ? AF_INET6 : AF_INET, a, buf, sizeof(buf));
  return buf;
}

int64_t OptInt(Napi::Object o, const char *name, int64_t def) {
  Napi::Value v = o.Get(name);
  return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : def;
}

// check({family: 4|6, addr: Buffer(4|16), port, timeoutMs, mark?, firstRetryMs?, maxAttempts?})
//   → {state, reason, rttNs, ttl, icmpType, icmpCode, from, src, sport, attempts, errno?, errname?}
// Blocks the calling thread for at most timeoutMs (plus one sendto).
Napi::Value Check(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsObject()) Throw(env, "E_INTERNAL", "check(options): options object expected");
  auto o = info[0].As<Napi::Object>();
  CheckOptions opts;
  opts.family = (int)OptInt(o, "family", 0);
  Napi::Value addr_v = o.Get("addr");
  if ((opts.family != 4 && opts.family != 6) || !addr_v.IsBuffer() ||
      addr_v.As<Napi::Buffer<uint8_t>>().Length() != (opts.family == 4 ? 4u : 16u))
    Throw(env, "E_INTERNAL", "check: family 4 with a 4-byte addr or 6 with a 16-byte addr expected");
  memcpy(opts.addr, addr_v.As<Napi::Buffer<uint8_t>>().Data(), opts.family == 4 ? 4 : 16);
  int64_t port = OptInt(o, "port", 0);
  if (port < 1 || port > 65535) Throw(env, "E_INTERNAL", "check: port must be 1-65535");
  opts.port = (uint16_t)port;
  opts.timeout_ms = OptInt(o, "timeoutMs", HO_CHECK_TIMEOUT_S * 1000);
  opts.first_retry_ms = OptInt(o, "firstRetryMs", HO_CHECK_FIRST_RETRY_MS);
  opts.max_attempts = (int)OptInt(o, "maxAttempts", HO_CHECK_MAX_ATTEMPTS);
  int64_t mark64 = OptInt(o, "mark", 0);
  if (opts.timeout_ms < 1 || mark64 < 0 || mark64 > 0xffffffffLL) Throw(env, "E_INTERNAL", "check: bad timeoutMs or mark");
  opts.mark = (uint32_t)mark64;

  CheckResult r;
  CheckError e;
  if (!RunCheck(opts, &r, &e)) Throw(env, e.code, e.message, e.err, e.syscall);

  auto result = Napi::Object::New(env);
  result.Set("state", ProbeStateText(r.state));
  if (r.reason == HO_REASON_ICMP) {
    result.Set("reason", std::string(ReasonText(r.reason)) + "-" + std::to_string(r.icmp_type) + "-" +
                             std::to_string(r.icmp_code));
    result.Set("icmpType", r.icmp_type);
    result.Set("icmpCode", r.icmp_code);
  } else {
    result.Set("reason", ReasonText(r.reason));
  }
  result.Set("rttNs", r.rtt_ns >= 0 ? Napi::Value(Napi::Number::New(env, (double)r.rtt_ns)) : env.Null());
  result.Set("ttl", r.replied && r.ttl >= 0 ? Napi::Value(Napi::Number::New(env, r.ttl)) : env.Null());
  if (r.replied) result.Set("from", AddrText(opts.family, r.from));
  if (r.err) {
    result.Set("errno", r.err);
    if (const char *name = ErrnoName(r.err)) result.Set("errname", name);
  }
  result.Set("src", AddrText(opts.family, r.src));
  result.Set("sport", r.sport);
  result.Set("attempts", r.attempts);
  return result;
}

// resolve(host, family: 0|4|6, timeoutMs) → {address, family} | {code} | {late: true}
// Blocks for at most timeoutMs: getaddrinfo runs in a detached thread that
// neither the caller nor the process's exit waits for (libuv's pool would hold
// the exit until the lookup ends).
Napi::Value Resolve(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() != 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber())
    Throw(env, "E_INTERNAL", "resolve(host, family, timeoutMs) expected");
  std::string host = info[0].As<Napi::String>();
  int family = info[1].As<Napi::Number>().Int32Value();
  int64_t timeout_ms = std::max<int64_t>(0, info[2].As<Napi::Number>().Int64Value());
  ResolveResult r;
  auto out = Napi::Object::New(env);
  switch (ResolveHost(host.c_str(), family, timeout_ms * 1000000LL, &r)) {
    case kResolveOk:
      out.Set("address", r.address);
      out.Set("family", r.family);
      break;
    case kResolveFailed: out.Set("code", r.code); break;
    case kResolveLate: out.Set("late", true); break;
  }
  return out;
}

}  // namespace

void InitCheck(Napi::Env env, Napi::Object exports) {
  exports.Set("check", Napi::Function::New(env, Check));
  exports.Set("resolve", Napi::Function::New(env, Resolve));
}

}  // namespace ho
