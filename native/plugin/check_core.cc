// RunCheck(): one half-open TCP check, synchronous, with no XDP, no BPF
// program load and no N-API. check_tcp_half_open (check_main.cc, which
// `halfopen check` runs too) runs it once per invocation, often every few seconds for every backend, so it must be cheap
// to start and must never disturb the NIC (attaching XDP can reset queues).
//
//   send: one IPPROTO_RAW socket; we write the IP and TCP headers of a SYN
//         from a source port outside ip_local_port_range, random 32-bit seq.
//   recv: SOCK_RAW IPPROTO_TCP (SYN+ACK, RST) and IPPROTO_ICMP/ICMPV6
//         (destination unreachable). Raw sockets receive *copies*: the TCP
//         stack still sees the SYN+ACK, finds no socket for our port and
//         answers RST, so the backend is never left half-open. A classic BPF
//         filter (SO_ATTACH_FILTER) on each socket passes only packets aimed
//         at our source ports, so a busy host does not wake us per segment;
//         every reply is then validated exactly here (addresses, ports,
//         ack == seq + 1, RST must carry ACK, ICMP must quote our SYN).
//   time: ppoll until the deadline; a silent SYN is resent at growing
//         intervals (first after `firstRetryMs`, then doubling), each attempt
//         with its own source port and seq so a late reply to an earlier SYN
//         still matches and measures its own round trip.
//
// Every socket call is a raw syscall(2): an LD_PRELOAD shim that wraps
// socket()/sendto()/… (load balancers use such shims to mark traffic) can
// neither break nor silently alter the check. The mark is applied explicitly
// (options.mark, from the MARK environment variable) with SO_MARK.
#include "check_core.h"

#include "errno_name.h"
#include "syn.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ho {
namespace {

// ---- raw syscalls (not interposable by LD_PRELOAD) ----------------------

int SysSocket(int domain, int type, int proto) { return (int)syscall(SYS_socket, domain, type, proto); }
int SysSetsockopt(int fd, int level, int name, const void *val, socklen_t len) {
  return (int)syscall(SYS_setsockopt, fd, level, name, val, len);
}
int SysConnect(int fd, const sockaddr *sa, socklen_t len) { return (int)syscall(SYS_connect, fd, sa, len); }
int SysGetsockname(int fd, sockaddr *sa, socklen_t *len) { return (int)syscall(SYS_getsockname, fd, sa, len); }
ssize_t SysSendto(int fd, const void *buf, size_t len, int flags, const sockaddr *sa, socklen_t salen) {
  return (ssize_t)syscall(SYS_sendto, fd, buf, len, flags, sa, salen);
}
ssize_t SysRecvmsg(int fd, msghdr *msg, int flags) { return (ssize_t)syscall(SYS_recvmsg, fd, msg, flags); }
int SysPpoll(pollfd *fds, nfds_t n, const timespec *ts) { return (int)syscall(SYS_ppoll, fds, n, ts, nullptr, 0); }
void SysClose(int fd) { syscall(SYS_close, fd); }

struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() {
    if (fd >= 0) SysClose(fd);
  }
};

int64_t ClockNs(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void Random(void *buf, size_t len) {
  uint8_t *p = static_cast<uint8_t *>(buf);
  size_t got = 0;
  while (got < len) {
    long r = syscall(SYS_getrandom, p + got, len - got, 0);
    if (r > 0) {
      got += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    // No getrandom (very old kernel): the clock is still unpredictable enough
    // off-path for a 32-bit seq on a one-shot check.
    uint64_t t = (uint64_t)ClockNs(CLOCK_MONOTONIC) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    for (; got < len; got++, t = t * 6364136223846793005ULL + 1442695040888963407ULL) p[got] = (uint8_t)(t >> 56);
  }
}

// ip_local_port_range, so our source ports stay clear of the kernel's ephemeral ones.
void LocalPortRange(int *lo, int *hi) {
  *lo = 32768;
  *hi = 60999;
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/sys/net/ipv4/ip_local_port_range", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[64] = {};
  ssize_t n = (ssize_t)syscall(SYS_read, fd, buf, sizeof(buf) - 1);
  SysClose(fd);
  int a, b;
  if (n > 0 && sscanf(buf, "%d %d", &a, &b) == 2 && a > 0 && a <= b && b <= 65535) {
    *lo = a;
    *hi = b;
  }
}

// ---- packets -------------------------------------------------------------

uint16_t Get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

constexpr int kMaxAttempts = HO_CHECK_MAX_ATTEMPTS;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

// 0: no verdict (a send failure); otherwise enum ho_probe_state.
constexpr int kNone = 0;

struct Attempt {
  uint32_t seq = 0;
  int64_t mono_ns = 0;  // when sendto returned
  int64_t real_ns = 0;  // CLOCK_REALTIME before sendto: pairs with the kernel's receive timestamp
  bool sent = false;
};

struct Verdict {
  int state = kNone;             // kNone or enum ho_probe_state
  enum ho_reason reason = HO_REASON_NO_RESPONSE;
  int icmp_type = -1, icmp_code = -1;
  int ttl = -1;
  int64_t rtt_ns = -1;
  int attempt = -1;
  int err = 0;
  uint8_t from[16] = {};  // who answered (the target, or the router for ICMP)
};

class Checker {
 public:
  Checker(int family, const uint8_t *dst, uint16_t dport) : v6_(family == 6), dport_(dport) {
    memcpy(dst_, dst, v6_ ? 16 : 4);
  }

  int family() const { return v6_ ? 6 : 4; }
  const uint8_t *src() const { return src_; }
  uint16_t sport_base() const { return sport_base_; }
  int attempts_sent() const { return sent_; }

  // Picks the source address the kernel would use for this target (and mark):
  // a connected UDP socket and getsockname. No packet is sent.
  int Route(int mark, const char **what) {
    Fd u;
    *what = "socket";
    u.fd = SysSocket(v6_ ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u.fd < 0) return errno;
    *what = "SO_MARK";
    if (mark && SysSetsockopt(u.fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) return errno;
    *what = "connect";
    sockaddr_storage ss;
    socklen_t len = FillDst(&ss);
    if (SysConnect(u.fd, reinterpret_cast<sockaddr *>(&ss), len)) return errno;
    len = sizeof(ss);
    if (SysGetsockname(u.fd, reinterpret_cast<sockaddr *>(&ss), &len)) return errno;
    if (v6_)
      memcpy(src_, &reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_addr, 16);
    else
      memcpy(src_, &reinterpret_cast<sockaddr_in *>(&ss)->sin_addr, 4);
    return 0;
  }

  void PickPorts(int attempts) {
    max_attempts_ = std::clamp(attempts, 1, kMaxAttempts);
    int lo, hi;
    LocalPortRange(&lo, &hi);
    // Above the ephemeral range, clear of the sweep's default 61000-61999 when
    // that leaves room; else above it at all; else below it.
    int a_lo = std::max(hi + 1, 62000), a_hi = 65535;
    if (a_hi - a_lo + 1 < max_attempts_) a_lo = hi + 1;
    int b_lo = 1024, b_hi = lo - 1;
    int span_a = a_hi - a_lo + 1, span_b = b_hi - b_lo + 1;
    int base_lo, span;
    if (span_a >= max_attempts_ && span_a >= span_b) {
      base_lo = a_lo;
      span = span_a;
    } else if (span_b >= max_attempts_) {
      base_lo = b_lo;
      span = span_b;
    } else {  // the ephemeral range covers everything: any port will do
      base_lo = 1024;
      span = 65535 - 1024 + 1;
    }
    uint32_t r;
    Random(&r, sizeof(r));
    sport_base_ = (uint16_t)(base_lo + r % (uint32_t)(span - max_attempts_ + 1));
    uint32_t seqs[kMaxAttempts];
    Random(seqs, sizeof(seqs));
    for (int i = 0; i < kMaxAttempts; i++) att_[i].seq = seqs[i];
  }

  // Opens the send and receive sockets. Returns errno and names the step.
  int Open(int mark, const char **what) {
    int af = v6_ ? AF_INET6 : AF_INET;
    *what = "raw send";
    tx_.fd = SysSocket(af, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (tx_.fd < 0) return errno;
    if (mark) {
      *what = "SO_MARK";
      if (SysSetsockopt(tx_.fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) return errno;
    }
    *what = "raw TCP receive";
    tcp_.fd = SysSocket(af, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
    if (tcp_.fd < 0) return errno;
    *what = "raw ICMP receive";
    icmp_.fd = SysSocket(af, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, v6_ ? (int)IPPROTO_ICMPV6 : (int)IPPROTO_ICMP);
    if (icmp_.fd < 0) return errno;
    *what = "socket filter";
    if (int err = AttachFilters()) return err;
    int one = 1;
    // Kernel receive timestamps make the RTT independent of our wake-up latency.
    SysSetsockopt(tcp_.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    SysSetsockopt(icmp_.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    if (v6_) {
      for (int fd : {tcp_.fd, icmp_.fd}) {
        SysSetsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one));
        SysSetsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
      }
    }
    // Whatever queued before the filters were attached is not ours: we have sent nothing yet.
    Drain(tcp_.fd);
    Drain(icmp_.fd);
    return 0;
  }

  Verdict Run(int64_t timeout_ns, int64_t first_retry_ns) {
    Verdict v;
    int64_t t0 = ClockNs(CLOCK_MONOTONIC);
    int64_t deadline = t0 + timeout_ns;
    int64_t next_send = t0, gap = std::max<int64_t>(first_retry_ns, 1000000);
    pollfd fds[2] = {{tcp_.fd, POLLIN, 0}, {icmp_.fd, POLLIN, 0}};
    for (;;) {
      int64_t now = ClockNs(CLOCK_MONOTONIC);
      if (now >= deadline) break;
      if (sent_ < max_attempts_ && now >= next_send) {
        int err = Send(sent_);
        sent_++;
        if (err) {
          if (err == ENETUNREACH || err == EHOSTUNREACH || err == EADDRNOTAVAIL || err == ENETDOWN) {
            v.state = HO_PROBE_STATE_UNREACHABLE;
            v.reason = HO_REASON_NO_ROUTE;
            v.err = err;
            return v;
          }
          if (err == EPERM) {  // a netfilter rule on OUTPUT dropped the SYN
            v.state = HO_PROBE_STATE_FILTERED;
            v.reason = HO_REASON_LOCAL_FIREWALL;
            v.err = err;
            return v;
          }
          if (err != ENOBUFS && err != EAGAIN && err != EINTR) {
            v.err = err;
            return v;  // kNone with err: the caller reports a send failure
          }
          // A transient local drop: the schedule's next attempt will go.
        }
        next_send += gap;
        gap *= 2;
        continue;
      }
      int64_t until = deadline;
      if (sent_ < max_attempts_) until = std::min(until, next_send);
      int64_t wait = std::max<int64_t>(until - now, 0);
      timespec ts = {(time_t)(wait / 1000000000LL), (long)(wait % 1000000000LL)};
      int r = SysPpoll(fds, 2, &ts);
      if (r < 0 && errno != EINTR) {
        v.err = errno;
        return v;
      }
      if (r <= 0) continue;
      for (int i = 0; i < 2; i++) {
        if (!(fds[i].revents & POLLIN)) continue;
        if (Receive(fds[i].fd, i == 1, v)) return v;
      }
    }
    v.state = HO_PROBE_STATE_FILTERED;
    v.reason = HO_REASON_NO_RESPONSE;
    return v;
  }

 private:
  socklen_t FillDst(sockaddr_storage *ss) const {
    memset(ss, 0, sizeof(*ss));
    if (v6_) {
      auto *s = reinterpret_cast<sockaddr_in6 *>(ss);
      s->sin6_family = AF_INET6;
      s->sin6_port = htons(dport_);
      memcpy(&s->sin6_addr, dst_, 16);
      return sizeof(*s);
    }
    auto *s = reinterpret_cast<sockaddr_in *>(ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(dport_);
    memcpy(&s->sin_addr, dst_, 4);
    return sizeof(*s);
  }

  // Classic BPF, one program per receive socket: pass only replies aimed at
  // our source ports [base, base + attempts). IPv4 raw sockets see the IP
  // header; IPv6 raw sockets start at the transport header.
  int AttachFilters() {
    const uint32_t lo = sport_base_, hi = sport_base_ + max_attempts_ - 1;
    const uint32_t keep = 0xffff;
#define S(code, k) BPF_STMT(code, k)
#define J(code, k, t, f) BPF_JUMP(code, k, t, f)
    if (!v6_) {
      uint32_t dst = Get32(dst_);
      sock_filter tcp[] = {
          S(BPF_LD | BPF_B | BPF_ABS, 9),               // protocol
          J(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 9),
          S(BPF_LD | BPF_W | BPF_ABS, 12),              // source address: the target
          J(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 7),
          S(BPF_LD | BPF_H | BPF_ABS, 6),               // no fragments
          J(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 5, 0),
          S(BPF_LDX | BPF_B | BPF_MSH, 0),              // X = IP header length
          S(BPF_LD | BPF_H | BPF_IND, 2),               // TCP destination port
          J(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2),
          J(BPF_JMP | BPF_JGT | BPF_K, hi, 1, 0),
          S(BPF_RET | BPF_K, keep),
          S(BPF_RET | BPF_K, 0),
      };
      sock_filter icmp[] = {
          S(BPF_LDX | BPF_B | BPF_MSH, 0),              // X = outer IP header length
          S(BPF_LD | BPF_B | BPF_IND, 0),               // ICMP type
          J(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 12),       // destination unreachable
          S(BPF_LD | BPF_B | BPF_IND, 8 + 9),           // quoted protocol
          J(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 10),
          S(BPF_LD | BPF_B | BPF_IND, 8),               // quoted version/IHL
          S(BPF_ALU | BPF_AND | BPF_K, 0x0f),
          S(BPF_ALU | BPF_LSH | BPF_K, 2),
          S(BPF_ALU | BPF_ADD | BPF_X, 0),
          S(BPF_ALU | BPF_ADD | BPF_K, 8),
          S(BPF_MISC | BPF_TAX, 0),                     // X = offset of the quoted TCP header
          S(BPF_LD | BPF_H | BPF_IND, 0),               // quoted source port: ours?
          J(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2),
          J(BPF_JMP | BPF_JGT | BPF_K, hi, 1, 0),
          S(BPF_RET | BPF_K, keep),
          S(BPF_RET | BPF_K, 0),
      };
      if (int err = Attach(tcp_.fd, tcp, sizeof(tcp) / sizeof(tcp[0]))) return err;
      return Attach(icmp_.fd, icmp, sizeof(icmp) / sizeof(icmp[0]));
    }
    sock_filter tcp[] = {
        S(BPF_LD | BPF_H | BPF_ABS, 2),                 // TCP destination port
        J(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2),
        J(BPF_JMP | BPF_JGT | BPF_K, hi, 1, 0),
        S(BPF_RET | BPF_K, keep),
        S(BPF_RET | BPF_K, 0),
    };
    sock_filter icmp[] = {
        S(BPF_LD | BPF_B | BPF_ABS, 0),                 // ICMPv6 type
        J(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 6),          // destination unreachable
        S(BPF_LD | BPF_B | BPF_ABS, 8 + 6),             // quoted next header
        J(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_TCP, 0, 4),
        S(BPF_LD | BPF_H | BPF_ABS, 8 + 40),            // quoted source port: ours?
        J(BPF_JMP | BPF_JGE | BPF_K, lo, 0, 2),
        J(BPF_JMP | BPF_JGT | BPF_K, hi, 1, 0),
        S(BPF_RET | BPF_K, keep),
        S(BPF_RET | BPF_K, 0),
    };
#undef S
#undef J
    if (int err = Attach(tcp_.fd, tcp, sizeof(tcp) / sizeof(tcp[0]))) return err;
    return Attach(icmp_.fd, icmp, sizeof(icmp) / sizeof(icmp[0]));
  }

  static int Attach(int fd, sock_filter *insns, size_t n) {
    sock_fprog prog = {(unsigned short)n, insns};
    return SysSetsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) ? errno : 0;
  }

  static void Drain(int fd) {
    uint8_t buf[64];
    for (int i = 0; i < 1024; i++) {
      iovec iov = {buf, sizeof(buf)};
      msghdr msg = {};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      if (SysRecvmsg(fd, &msg, MSG_DONTWAIT) < 0) return;
    }
  }

  // Builds and sends the SYN of attempt i. Returns 0 or errno.
  int Send(int i) {
    uint8_t pkt[40 + kSynTcpLen];
    uint16_t id = 0;
    if (!v6_) Random(&id, sizeof(id));
    size_t len = WriteSyn(pkt, v6_, src_, dst_, htons((uint16_t)(sport_base_ + i)), htons(dport_), att_[i].seq, id);

    sockaddr_storage ss;
    socklen_t salen = FillDst(&ss);
    // The raw socket's "port" field must be 0 for IPv6 IPPROTO_RAW (it is the protocol).
    if (v6_) reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port = 0;
    else reinterpret_cast<sockaddr_in *>(&ss)->sin_port = 0;
    att_[i].real_ns = ClockNs(CLOCK_REALTIME);
    int64_t before = ClockNs(CLOCK_MONOTONIC);
    ssize_t r;
    do {
      r = SysSendto(tx_.fd, pkt, len, 0, reinterpret_cast<sockaddr *>(&ss), salen);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return errno;
    att_[i].mono_ns = before;
    att_[i].sent = true;
    return 0;
  }

  // Reads everything queued on fd; true when a valid reply settled the verdict.
  bool Receive(int fd, bool icmp, Verdict &v) {
    for (int n = 0; n < 256; n++) {
      alignas(8) uint8_t buf[1500];
      alignas(8) uint8_t ctl[256];
      sockaddr_storage from;
      iovec iov = {buf, sizeof(buf)};
      msghdr msg = {};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = ctl;
      msg.msg_controllen = sizeof(ctl);
      ssize_t len = SysRecvmsg(fd, &msg, MSG_DONTWAIT);
      if (len < 0) return false;  // EAGAIN: drained
      int64_t mono = ClockNs(CLOCK_MONOTONIC);
      int64_t kernel_real = -1;
      int hop = -1;
      const uint8_t *pkt_dst = nullptr;
      for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof(ts));
          kernel_real = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
          memcpy(&hop, CMSG_DATA(c), sizeof(hop));
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
          pkt_dst = reinterpret_cast<const uint8_t *>(&reinterpret_cast<in6_pktinfo *>(CMSG_DATA(c))->ipi6_addr);
        }
      }
      Verdict cand;
      int idx = v6_ ? Match6(buf, (size_t)len, icmp, reinterpret_cast<sockaddr_in6 *>(&from), pkt_dst, hop, cand)
                    : Match4(buf, (size_t)len, icmp, cand);
      if (idx < 0) continue;
      const Attempt &a = att_[idx];
      int64_t rtt = kernel_real >= 0 ? kernel_real - a.real_ns : -1;
      // A stepped wall clock would show as a negative or absurd RTT: fall back to our own monotonic clock.
      if (rtt < 0 || rtt > mono - a.mono_ns + 1000000) rtt = mono - a.mono_ns;
      cand.rtt_ns = std::max<int64_t>(rtt, 0);
      cand.attempt = idx;
      v = cand;
      return true;
    }
    return false;
  }

  // Which attempt a reply answers, or -1. `sport` is the port we sent from.
  int AttemptFor(uint16_t sport) const {
    int idx = (int)sport - (int)sport_base_;
    return idx >= 0 && idx < sent_ && att_[idx].sent ? idx : -1;
  }

  // A TCP segment from the target to us: SYN+ACK or RST+ACK acknowledging our SYN.
  int MatchTcp(const uint8_t *tcp, size_t len, Verdict &v) const {
    if (len < 20 || Get16(tcp) != dport_) return -1;
    int idx = AttemptFor(Get16(tcp + 2));
    if (idx < 0) return -1;
    uint8_t flags = tcp[13];
    if (!(flags & kTcpAck) || Get32(tcp + 8) != att_[idx].seq + 1) return -1;
    if (flags & kTcpRst) {
      v.state = HO_PROBE_STATE_CLOSED;
      v.reason = HO_REASON_RST;
    } else if ((flags & kTcpSyn) && !(flags & kTcpFin)) {
      v.state = HO_PROBE_STATE_OPEN;
      v.reason = HO_REASON_SYN_ACK;
    } else {
      return -1;
    }
    return idx;
  }

  // The first 8 bytes of our SYN's TCP header, quoted in an ICMP error.
  int MatchQuote(const uint8_t *tcp) const {
    if (Get16(tcp + 2) != dport_) return -1;
    int idx = AttemptFor(Get16(tcp));
    if (idx < 0 || Get32(tcp + 4) != att_[idx].seq) return -1;
    return idx;
  }

  int Match4(const uint8_t *p, size_t len, bool icmp, Verdict &v) const {
    if (len < 20 || (p[0] >> 4) != 4) return -1;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    if (ihl < 20 || len < ihl || (Get16(p + 6) & 0x1fff)) return -1;
    if (memcmp(p + 16, src_, 4) != 0) return -1;  // to us
    v.ttl = p[8];
    memcpy(v.from, p + 12, 4);
    if (!icmp) {
      if (p[9] != IPPROTO_TCP || memcmp(p + 12, dst_, 4) != 0) return -1;  // from the target
      return MatchTcp(p + ihl, len - ihl, v);
    }
    if (p[9] != IPPROTO_ICMP || len < ihl + 8 + 20) return -1;
    const uint8_t *ic = p + ihl, *in = ic + 8;
    if (ic[0] != 3 || (in[0] >> 4) != 4 || in[9] != IPPROTO_TCP) return -1;
    size_t iihl = (size_t)(in[0] & 0x0f) * 4;
    if (iihl < 20 || len < ihl + 8 + iihl + 8) return -1;
    if (memcmp(in + 12, src_, 4) != 0 || memcmp(in + 16, dst_, 4) != 0) return -1;
    int idx = MatchQuote(in + iihl);
    if (idx < 0) return -1;
    v.state = HO_PROBE_STATE_UNREACHABLE;
    v.reason = HO_REASON_ICMP;
    v.icmp_type = ic[0];
    v.icmp_code = ic[1];
    return idx;
  }

  int Match6(const uint8_t *p, size_t len, bool icmp, const sockaddr_in6 *from, const uint8_t *pkt_dst, int hop,
             Verdict &v) const {
    if (from->sin6_family != AF_INET6) return -1;
    if (pkt_dst && memcmp(pkt_dst, src_, 16) != 0) return -1;  // to us
    v.ttl = hop;
    memcpy(v.from, &from->sin6_addr, 16);
    if (!icmp) {
      if (memcmp(&from->sin6_addr, dst_, 16) != 0) return -1;  // from the target
      return MatchTcp(p, len, v);
    }
    if (len < 8 + 40 + 8 || p[0] != 1) return -1;
    const uint8_t *in = p + 8;
    if ((in[0] >> 4) != 6 || in[6] != IPPROTO_TCP) return -1;
    if (memcmp(in + 8, src_, 16) != 0 || memcmp(in + 24, dst_, 16) != 0) return -1;
    int idx = MatchQuote(in + 40);
    if (idx < 0) return -1;
    v.state = HO_PROBE_STATE_UNREACHABLE;
    v.reason = HO_REASON_ICMP;
    v.icmp_type = p[0];
    v.icmp_code = p[1];
    return idx;
  }

  bool v6_;
  uint8_t dst_[16] = {}, src_[16] = {};
  uint16_t dport_;
  uint16_t sport_base_ = 0;
  int max_attempts_ = 1, sent_ = 0;
  Attempt att_[kMaxAttempts];
  Fd tx_, tcp_, icmp_;
};

// The contract's rule for an enumerator's text: the name after the prefix,
// lowercased, '_' -> '-' (bpf/halfopen.h; scripts/gen-contract.js does the same).
struct Texts {
  char state[8][24] = {};
  char reason[16][24] = {};
  static void Put(char *out, size_t len, const char *name) {
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++) out[i] = name[i] == '_' ? '-' : (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    out[i] = 0;
  }
  Texts() {
#define HO_TEXT(prefix, name, value) Put(TABLE[value], sizeof(TABLE[value]), #name);
#define TABLE state
    HO_PROBE_STATE_LIST(HO_TEXT)
#undef TABLE
#define TABLE reason
    HO_REASON_LIST(HO_TEXT)
#undef TABLE
#undef HO_TEXT
  }
};

const Texts &ContractTexts() {
  static const Texts texts;
  return texts;
}

void SetError(CheckError *e, enum ho_error code, int err, const char *syscall, const char *fmt, const char *what = "") {
  e->code = code;
  e->err = err;
  e->syscall = syscall;
  snprintf(e->message, sizeof(e->message), fmt, what);
}

}  // namespace

namespace {

// Node's code for a getaddrinfo failure (dns.lookup's err.code).
const char *LookupCode(int rc, int err) {
  switch (rc) {
    case EAI_NONAME: case EAI_NODATA: return "ENOTFOUND";
    case EAI_AGAIN: return "EAI_AGAIN";
    case EAI_FAIL: return "EAI_FAIL";
    case EAI_FAMILY: return "EAI_FAMILY";
    case EAI_MEMORY: return "EAI_MEMORY";
    case EAI_SERVICE: return "EAI_SERVICE";
    case EAI_SOCKTYPE: return "EAI_SOCKTYPE";
    case EAI_BADFLAGS: return "EAI_BADFLAGS";
    case EAI_ADDRFAMILY: return "EAI_ADDRFAMILY";
    case EAI_OVERFLOW: return "EAI_OVERFLOW";
    case EAI_SYSTEM: {
      const char *n = strerrorname_np(err);
      return n ? n : "EAI_SYSTEM";
    }
    default: return "EAI_FAIL";
  }
}

// Shared by the caller and the lookup thread; whichever lets go last frees it.
struct Lookup {
  char host[1024] = {};
  int family = 0;
  int rc = 0, err = 0;
  bool found = false;
  ResolveResult result;
  int done_fd = -1;
  int refs = 2;
  void Release() {
    if (__atomic_sub_fetch(&refs, 1, __ATOMIC_ACQ_REL) == 0) delete this;
  }
};

void *LookupThread(void *p) {
  auto *l = static_cast<Lookup *>(p);
  // A caller that gave up has closed its end: the write below must cost an EPIPE, not the process.
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
  addrinfo hints = {};
  hints.ai_family = l->family == 4 ? AF_INET : l->family == 6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *res = nullptr;
  l->rc = getaddrinfo(l->host, nullptr, &hints, &res);
  l->err = errno;
  if (!l->rc) {
    for (addrinfo *a = res; a && !l->found; a = a->ai_next) {
      if (a->ai_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(a->ai_addr)->sin_addr, l->result.address, sizeof(l->result.address));
        l->result.family = 4;
        l->found = true;
      } else if (a->ai_family == AF_INET6) {
        inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(a->ai_addr)->sin6_addr, l->result.address, sizeof(l->result.address));
        l->result.family = 6;
        l->found = true;
      }
    }
    freeaddrinfo(res);
  } else {
    snprintf(l->result.code, sizeof(l->result.code), "%s", LookupCode(l->rc, l->err));
  }
  if (!l->rc && !l->found) snprintf(l->result.code, sizeof(l->result.code), "ENOTFOUND");
  char one = 1;
  if (syscall(SYS_write, l->done_fd, &one, 1) < 0) {
  }
  SysClose(l->done_fd);
  l->Release();
  return nullptr;
}

}  // namespace

ResolveStatus ResolveHost(const char *host, int family, int64_t timeout_ns, ResolveResult *out) {
  *out = ResolveResult();
  int64_t deadline = ClockNs(CLOCK_MONOTONIC) + timeout_ns;
  auto *l = new Lookup();
  snprintf(l->host, sizeof(l->host), "%s", host);
  l->family = family;
  int fds[2];
  if (syscall(SYS_pipe2, fds, O_CLOEXEC)) {
    delete l;
    snprintf(out->code, sizeof(out->code), "%s", ErrnoName(errno) ? ErrnoName(errno) : "EAI_SYSTEM");
    return kResolveFailed;
  }
  l->done_fd = fds[1];
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int err = pthread_create(&th, &attr, LookupThread, l);
  pthread_attr_destroy(&attr);
  if (err) {
    SysClose(fds[0]);
    SysClose(fds[1]);
    delete l;
    snprintf(out->code, sizeof(out->code), "%s", ErrnoName(err) ? ErrnoName(err) : "EAI_SYSTEM");
    return kResolveFailed;
  }
  ResolveStatus status = kResolveLate;
  for (int spins = 0; spins < 1000000; spins++) {
    int64_t left = deadline - ClockNs(CLOCK_MONOTONIC);
    if (left <= 0) break;
    timespec ts = {(time_t)(left / 1000000000LL), (long)(left % 1000000000LL)};
    pollfd p = {fds[0], POLLIN, 0};
    int r = SysPpoll(&p, 1, &ts);
    if (r > 0) {
      *out = l->result;
      status = out->code[0] ? kResolveFailed : kResolveOk;
      break;
    }
    if (r < 0 && errno != EINTR) break;
  }
  SysClose(fds[0]);
  l->Release();
  return status;
}

const char *ProbeStateText(enum ho_probe_state s) {
  unsigned i = (unsigned)s;
  return i < 8 && ContractTexts().state[i][0] ? ContractTexts().state[i] : "none";
}

const char *ReasonText(enum ho_reason r) {
  unsigned i = (unsigned)r;
  return i < 16 && ContractTexts().reason[i][0] ? ContractTexts().reason[i] : "none";
}

bool RunCheck(const CheckOptions &o, CheckResult *result, CheckError *error) {
  *result = CheckResult();
  *error = CheckError();
  const int mark = (int)o.mark;
  Checker c(o.family, o.addr, o.port);
  const char *what = "";
  int err = c.Route(mark, &what);
  if (err && !strcmp(what, "SO_MARK") && (err == EPERM || err == EACCES)) {
    SetError(error, HO_E_PRIVILEGE, err, "setsockopt", "setting MARK (SO_MARK) needs CAP_NET_ADMIN");
    return false;
  }
  if (err == ENETUNREACH || err == EHOSTUNREACH || err == EADDRNOTAVAIL || err == ENETDOWN) {
    result->state = HO_PROBE_STATE_UNREACHABLE;
    result->reason = HO_REASON_NO_ROUTE;
    result->err = err;
    memcpy(result->src, c.src(), 16);
    return true;
  }
  if (err) {
    SetError(error, HO_E_SEND, err, what, "cannot find the route to the target");
    return false;
  }
  c.PickPorts(o.max_attempts);
  err = c.Open(mark, &what);
  if (err) {
    if (ErrnoError(err, HO_E_SEND) == HO_E_PRIVILEGE) {
      if (!strcmp(what, "SO_MARK"))
        SetError(error, HO_E_PRIVILEGE, err, "setsockopt", "setting MARK (SO_MARK) needs CAP_NET_ADMIN");
      else
        SetError(error, HO_E_PRIVILEGE, err, "socket", "the half-open check needs CAP_NET_RAW (%s socket)", what);
    } else {
      SetError(error, HO_E_SEND, err, "socket", "cannot open the %s socket", what);
    }
    return false;
  }
  Verdict v = c.Run(o.timeout_ms * 1000000LL, o.first_retry_ms * 1000000LL);
  if (v.state == kNone) {
    SetError(error, HO_E_SEND, v.err, "sendto", "sending the SYN failed");
    return false;
  }
  result->state = (enum ho_probe_state)v.state;
  result->reason = v.reason;
  result->icmp_type = v.icmp_type;
  result->icmp_code = v.icmp_code;
  result->replied = v.attempt >= 0;
  result->ttl = result->replied ? v.ttl : -1;
  result->rtt_ns = v.rtt_ns;
  memcpy(result->from, v.from, 16);
  memcpy(result->src, c.src(), 16);
  result->sport = (uint16_t)(c.sport_base() + std::max(v.attempt, 0));
  result->attempts = c.attempts_sent();
  result->err = v.err;
  return true;
}

}  // namespace ho
