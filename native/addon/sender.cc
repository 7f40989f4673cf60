// SYN senders: build SYNs straight from the shared probe table (the BPF map
// `probes`, mmapped) and send them in batches with sendmmsg, over a raw
// IPPROTO_RAW socket (the kernel routes and resolves neighbours) or AF_PACKET
// with PACKET_QDISC_BYPASS (we supply the Ethernet header; the faster path).
// SynSender is one thread's sockets and frames. A sweep has one Sender per
// worker thread, called there; serve has SendThreads, threads of the addon's
// own fed from a queue. All senders of a run share one pacing state in a
// SharedArrayBuffer (the control block), so --rate is global.
//
// Send groups (serve's per-backend `source` and `mark`): group 0 is the run's
// own source and mark on the path above; every other group has its own source
// address and/or SO_MARK and always goes out on raw sockets, bound to its
// source, so policy routing (ip rule from/fwmark) and netfilter see both.
// AF_PACKET would bypass netfilter and routing. A shared Uint16Array maps
// each slot to its group.
#include "common.h"
#include "syn.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ho {
namespace {

// The control block's slots are enum ho_control (bpf/halfopen.h), shared with src/engine/control.ts.

constexpr size_t kMaxFrame = 14 + 40 + 24;
// Longest wait sendList honours: a batch covers a scheduler tick and a departure step (at most 60 ms).
constexpr uint16_t kMaxWaitMs = 1000;

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct Frame {
  uint8_t buf[kMaxFrame];
  uint16_t len;
  uint8_t family;
  uint32_t slot;  // the probe it carries: its sent_ns is stamped as it leaves
  sockaddr_in6 dst;  // large enough for sockaddr_in too; raw path only
};

// One (source, mark) pair: its sockets (opened on first use) and its batches.
struct Group {
  uint8_t src4[4] = {}, src6[16] = {};
  bool have4 = false, have6 = false;
  bool bind4 = false, bind6 = false;  // a source of its own: bind the socket to it
  int mark = 0;
  int fd4 = -1, fd6 = -1;
  std::vector<Frame> f4, f6;
  uint32_t n4 = 0, n6 = 0;
};

// What one sending thread owns: its sockets, its frames, the mapped tables.
// Made and destroyed on the JS thread (it holds references to the shared
// arrays); Run and RunList may be called from any one thread at a time.
class SynSender {
 public:
  // {kind, probesFd, resultsFd, capacity, key, src4?, src6?, ifindex?, srcMac?, dstMac4?, dstMac6?,
  //  mark?, batch?, control: BigInt64Array(SharedArrayBuffer),
  //  groups?: [{src4?, src6?, mark?}] (groups 1..), groupOf?: Uint16Array(SharedArrayBuffer)}
  SynSender(Napi::Env env, Napi::Object o) {
    kind_packet_ = o.Get("kind").As<Napi::String>().Utf8Value() == "packet";
    capacity_ = o.Get("capacity").As<Napi::Number>().Uint32Value();
    batch_ = std::clamp<uint32_t>(OptNumber(o, "batch", 64), 1, 256);
    ifindex_ = OptNumber(o, "ifindex", 0);
    auto key = o.Get("key").As<Napi::Buffer<uint8_t>>();
    if (key.Length() != 16) Throw(env, HO_E_INTERNAL, "Sender: key must be 16 bytes");
    memcpy(key_, key.Data(), 16);
    have4_ = CopyOpt(o, "src4", src4_, 4);
    have6_ = CopyOpt(o, "src6", src6_, 16);
    CopyOpt(o, "srcMac", src_mac_, 6);
    have_mac4_ = CopyOpt(o, "dstMac4", dst_mac4_, 6);
    have_mac6_ = CopyOpt(o, "dstMac6", dst_mac6_, 6);
    auto ctl = o.Get("control").As<Napi::TypedArrayOf<int64_t>>();
    if (ctl.ElementLength() < HO_CTL_SLOTS) Throw(env, HO_E_INTERNAL, "Sender: control array too short");
    ctl_ref_ = Napi::Persistent(ctl);  // keeps the SharedArrayBuffer alive
    ctl_ = reinterpret_cast<int64_t *>(ctl.Data());
    int mark = (int)(uint32_t)OptNumber(o, "mark", 0);

    page_ = sysconf(_SC_PAGESIZE);
    probes_len_ = RoundPage((size_t)capacity_ * sizeof(ho_probe));
    results_len_ = RoundPage((size_t)capacity_ * sizeof(ho_result));
    int err = 0;
    void *p = MapAcquire(o.Get("probesFd").As<Napi::Number>().Int32Value(), probes_len_, PROT_READ, &err);
    if (!p) Throw(env, HO_E_BPF, "Sender: cannot map the probe table", err, "mmap");
    probes_ = static_cast<const ho_probe *>(p);
    p = MapAcquire(o.Get("resultsFd").As<Napi::Number>().Int32Value(), results_len_, PROT_READ | PROT_WRITE, &err);
    if (!p) {
      Release();
      Throw(env, HO_E_BPF, "Sender: cannot map the results table", err, "mmap");
    }
    results_ = static_cast<ho_result *>(p);

    if (kind_packet_) {
      fd_packet_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: send only, never receives
      if (fd_packet_ < 0) FailSocket(env, "AF_PACKET");
      int one = 1;
      setsockopt(fd_packet_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
      sockaddr_ll sll = {};
      sll.sll_family = AF_PACKET;
      sll.sll_ifindex = ifindex_;
      if (bind(fd_packet_, reinterpret_cast<sockaddr *>(&sll), sizeof(sll))) FailSocket(env, "bind AF_PACKET");
      if (mark) setsockopt(fd_packet_, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
    } else {
      if (have4_) fd4_ = OpenRaw(env, AF_INET, mark);
      if (have6_) fd6_ = OpenRaw(env, AF_INET6, mark);
    }
    // Group 0 is the path above; groups 1.. are raw, with their own source/mark.
    groups_.resize(1);
    if (o.Has("groups") && o.Get("groups").IsArray()) {
      auto arr = o.Get("groups").As<Napi::Array>();
      for (uint32_t k = 0; k < arr.Length() && k < 4096; k++) {
        auto g = arr.Get(k).As<Napi::Object>();
        Group gr;
        gr.mark = (int)(uint32_t)OptNumber(g, "mark", 0);
        gr.bind4 = CopyOpt(g, "src4", gr.src4, 4);
        gr.bind6 = CopyOpt(g, "src6", gr.src6, 16);
        // A group with a source of one family sends that family only: a
        // backend whose name now resolves to the other family fails its
        // checks rather than leave from an address it was not given.
        gr.have4 = gr.bind4 || (!gr.bind6 && have4_);
        gr.have6 = gr.bind6 || (!gr.bind4 && have6_);
        if (!gr.bind4) memcpy(gr.src4, src4_, 4);
        if (!gr.bind6) memcpy(gr.src6, src6_, 16);
        groups_.push_back(std::move(gr));
      }
    }
    if (groups_.size() > 1 && o.Get("groupOf").IsTypedArray()) {
      auto go = o.Get("groupOf").As<Napi::Uint16Array>();
      group_of_ref_ = Napi::Persistent(go);  // keeps the SharedArrayBuffer alive
      group_of_ = go.Data();
      group_of_len_ = go.ElementLength();
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);  // pacing sleeps must wake on time
  }

  ~SynSender() { Release(); }
  SynSender(const SynSender &) = delete;
  SynSender &operator=(const SynSender &) = delete;

  struct Stats {
    uint64_t sent = 0, skipped = 0, failed = 0;
    int err = 0;
    bool aborted = false;
  };

  bool open() const { return probes_ != nullptr; }

  void Release() {
    for (size_t k = 1; k < groups_.size(); k++) {
      if (groups_[k].fd4 >= 0) close(groups_[k].fd4);
      if (groups_[k].fd6 >= 0) close(groups_[k].fd6);
      groups_[k].fd4 = groups_[k].fd6 = -1;
    }
    group_of_ = nullptr;
    if (fd4_ >= 0) close(fd4_);
    if (fd6_ >= 0) close(fd6_);
    // Releasing an AF_PACKET socket waits out an RCU grace period (~10 ms on
    // this kind of machine): a short-lived thread takes that wait, so neither
    // the sender thread nor the process's exit does.
    if (fd_packet_ >= 0) std::thread([fd = fd_packet_] { close(fd); }).detach();
    fd4_ = fd6_ = fd_packet_ = -1;
    if (probes_) MapRelease(const_cast<ho_probe *>(probes_));
    if (results_) MapRelease(results_);
    probes_ = nullptr;
    results_ = nullptr;
  }

  // Sends the SYNs of slots data[0..n). With wait, slot k's SYN leaves wait[k]
  // ms after `base` (CLOCK_MONOTONIC ns): earliest departure first, each
  // millisecond's SYNs together, so a tick's checks leave when each is due
  // instead of in one burst that overflows a device queue (a veth has none:
  // it drops what its ring cannot take). late[b]: how late the sender started
  // on the SYNs of wait b, ms (sized to the longest wait + 1).
  Stats RunList(const uint32_t *data, size_t n, const uint16_t *wait, int64_t base, std::vector<double> *late) {
    if (!wait) {
      size_t k = 0;
      return Run(false, [&](uint32_t &i, int64_t &) {
        if (k >= n) return false;
        i = data[k++];
        return true;
      }, [](int64_t, int64_t) {});
    }
    auto w = [&](size_t k) { return std::min<uint16_t>(wait[k], kMaxWaitMs); };
    // Counting sort by wait: departures in order, stable within a millisecond.
    uint32_t top = 0;
    for (size_t k = 0; k < n; k++) top = std::max<uint32_t>(top, w(k));
    std::vector<uint32_t> start(top + 2, 0), order(n);
    for (size_t k = 0; k < n; k++) start[w(k) + 1]++;
    for (uint32_t b = 1; b <= top + 1; b++) start[b] += start[b - 1];
    for (size_t k = 0; k < n; k++) order[start[w(k)]++] = (uint32_t)k;
    late->assign(top + 1, 0.0);
    size_t k = 0;
    return Run(false, [&](uint32_t &i, int64_t &leave) {
      if (k >= n) return false;
      uint32_t j = order[k++];
      i = data[j];
      leave = base + (int64_t)w(j) * 1000000;
      return true;
    }, [&](int64_t at, int64_t late_ns) {
      int64_t b = (at - base) / 1000000;
      if (b >= 0 && b <= top && late_ns > 0) (*late)[(size_t)b] = late_ns / 1e6;
    });
  }

  // Sends the SYNs of the slots `next` yields (until it returns false).
  // `next` may set a departure time (CLOCK_MONOTONIC ns, non-decreasing): the
  // sender waits for it, then calls waited(at, ns late it started on them).
  // The sender must be open.
  template <typename Next, typename Waited>
  Stats Run(bool only_unanswered, Next next, Waited waited) {
    Stats st;
    auto count_failed = [&](uint64_t n, int err) {
      st.failed += n;
      if (!st.err) st.err = err;
      __atomic_fetch_add(&ctl_[HO_CTL_FAILED], (int64_t)n, __ATOMIC_RELAXED);
    };
    auto flush = [&](size_t gi, bool v4) {
      Group &g = groups_[gi];
      uint32_t &n = v4 ? g.n4 : g.n6;
      if (!n) return;
      Frame *fr = v4 ? g.f4.data() : g.f6.data();
      int fd, err = 0;
      bool packet = gi == 0 && kind_packet_;
      if (gi == 0) fd = kind_packet_ ? fd_packet_ : (v4 ? fd4_ : fd6_);
      else fd = SourcePresent(g, v4, err) ? GroupFd(g, v4, err) : -1;
      if (fd < 0) {
        count_failed(n, err ? err : EBADF);
        n = 0;
        return;
      }
      uint32_t failed_before = st.failed;
      Pace(n);
      Flush(fd, packet, fr, n, st);
      uint32_t ok = n - (st.failed - failed_before);
      st.sent += ok;
      __atomic_fetch_add(&ctl_[HO_CTL_SENT], (int64_t)ok, __ATOMIC_RELAXED);
      if (st.failed != failed_before)
        __atomic_fetch_add(&ctl_[HO_CTL_FAILED], (int64_t)(st.failed - failed_before), __ATOMIC_RELAXED);
      n = 0;
    };
    auto flush_all = [&] {
      for (size_t k = 0; k < groups_.size(); k++) {
        flush(k, true);
        flush(k, false);
      }
    };
    uint32_t i;
    int64_t leave = 0, at = 0;  // CLOCK_MONOTONIC ns: when the current run of frames may leave
    while (next(i, leave)) {
      if (leave > at) {
        // Frames due earlier go now; these wait for their departure time.
        flush_all();
        at = leave;
        WaitUntil(at);
        waited(at, MonoNs() - at);
      }
      if (__atomic_load_n(&ctl_[HO_CTL_ABORT], __ATOMIC_RELAXED)) {
        st.aborted = true;
        break;
      }
      if (i >= capacity_) continue;
      const ho_probe &p = probes_[i];
      if (p.family == HO_FAMILY_NONE ||
          (only_unanswered && __atomic_load_n(&results_[i].state, __ATOMIC_RELAXED) != HO_RESULT_PENDING)) {
        st.skipped++;
        continue;
      }
      size_t gi = group_of_ && i < group_of_len_ ? __atomic_load_n(&group_of_[i], __ATOMIC_RELAXED) : 0;
      if (gi >= groups_.size()) {
        // Reprogrammed for a group this sender does not know yet: the engine
        // re-initialises the senders before it sends that slot again.
        st.skipped++;
        continue;
      }
      Group &g = groups_[gi];
      if (g.f4.size() != batch_) {
        g.f4.resize(batch_);
        g.f6.resize(batch_);
      }
      bool v4 = p.family == HO_FAMILY_INET;
      // AF_PACKET carries both families on one socket, so one batch serves both.
      bool use4 = (gi == 0 && kind_packet_) || v4;
      Frame &fr = use4 ? g.f4[g.n4] : g.f6[g.n6];
      if (!Build(i, p, fr, gi ? &g : nullptr)) {
        count_failed(1, EAFNOSUPPORT);
        continue;
      }
      if (use4) {
        if (++g.n4 == batch_) flush(gi, true);
      } else if (++g.n6 == batch_) {
        flush(gi, false);
      }
    }
    flush_all();
    return st;
  }

  uint32_t capacity() const { return capacity_; }

 private:
  // Optional numeric field: absent and undefined both mean the default.
  static int64_t OptNumber(Napi::Object o, const char *name, int64_t def) {
    Napi::Value v = o.Get(name);
    return v.IsNumber() ? v.As<Napi::Number>().Int64Value() : def;
  }

  static bool CopyOpt(Napi::Object o, const char *name, uint8_t *dst, size_t len) {
    if (!o.Has(name) || !o.Get(name).IsBuffer()) return false;
    auto b = o.Get(name).As<Napi::Buffer<uint8_t>>();
    if (b.Length() != len) return false;
    memcpy(dst, b.Data(), len);
    return true;
  }

  size_t RoundPage(size_t n) const { return (n + page_ - 1) / page_ * page_; }

  [[noreturn]] void FailSocket(Napi::Env env, const char *what) {
    int err = errno;
    Release();
    if (ErrnoError(err, HO_E_SEND) == HO_E_PRIVILEGE)
      Throw(env, HO_E_PRIVILEGE, std::string("sending SYNs needs CAP_NET_RAW (") + what + " socket)", err, "socket");
    Throw(env, HO_E_SEND, std::string("cannot open the ") + what + " socket", err, "socket");
  }

  int OpenRaw(Napi::Env env, int family, int mark) {
    // IPPROTO_RAW implies header inclusion for both families: we write the IP header.
    int fd = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) FailSocket(env, family == AF_INET ? "raw IPv4" : "raw IPv6");
    if (mark) setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
    if (ifindex_ > 0) setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex_, sizeof(ifindex_));
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    return fd;
  }

  // The raw socket of group g (g >= 1) for a family, opened on first use and
  // bound to the group's own source; -1 (errno in err) when that failed. A
  // failure is tried again at the next batch: a source that is a floating
  // address (VRRP) may come back.
  int GroupFd(Group &g, bool v4, int &err) {
    int &fd = v4 ? g.fd4 : g.fd6;
    if (fd >= 0) return fd;
    int gerr = 0;
    int fam = v4 ? AF_INET : AF_INET6;
    fd = socket(fam, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) {
      err = errno;
      return -1;
    }
    if (g.mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &g.mark, sizeof(g.mark))) gerr = errno;
    if (!gerr && ifindex_ > 0) setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &ifindex_, sizeof(ifindex_));
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    // Bound to its source, the kernel's route lookup is "from source": policy
    // rules on the source apply, as they do to the replies' connections.
    if (!gerr && v4 && g.bind4) {
      sockaddr_in sa = {};
      sa.sin_family = AF_INET;
      memcpy(&sa.sin_addr, g.src4, 4);
      if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa))) gerr = errno;
    } else if (!gerr && !v4 && g.bind6) {
      sockaddr_in6 sa = {};
      sa.sin6_family = AF_INET6;
      memcpy(&sa.sin6_addr, g.src6, 16);
      if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa))) gerr = errno;
    }
    if (gerr) {
      close(fd);
      fd = -1;
    }
    err = gerr;
    return fd;
  }

  // Whether the group's own source is still an address of this host. A raw
  // socket with a header of its own sends from any address, bound or not: a
  // source that left (a floating address moved to the peer) would still get
  // SYNs out, and their SYN+ACKs, to an address nobody here owns, would get
  // no RST and leave the backend half-open. A bind of a throwaway socket is
  // the kernel's own test, a few microseconds once per batch.
  static bool SourcePresent(const Group &g, bool v4, int &err) {
    if (v4 ? !g.bind4 : !g.bind6) return true;
    int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) {
      err = errno;
      return false;
    }
    int r;
    if (v4) {
      sockaddr_in sa = {};
      sa.sin_family = AF_INET;
      memcpy(&sa.sin_addr, g.src4, 4);
      r = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
    } else {
      sockaddr_in6 sa = {};
      sa.sin6_family = AF_INET6;
      memcpy(&sa.sin6_addr, g.src6, 16);
      r = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
    }
    if (r) err = errno;
    close(fd);
    return r == 0;
  }

  // Builds the SYN for probe idx into f. Returns false when the slot is unusable.
  // g: the slot's group; group 0 is the run's own source (and AF_PACKET when kind is packet).
  bool Build(uint32_t idx, const ho_probe &p, Frame &f, const Group *g) {
    uint32_t a[4];
    memcpy(a, p.addr, 16);
    uint32_t seq = idx ^ ho_cookie(key_[0], key_[1], a[0], a[1], a[2], a[3], p.dport, p.sport);
    bool v4 = p.family == HO_FAMILY_INET;
    bool packet = kind_packet_ && !g;
    const uint8_t *src4 = g ? g->src4 : src4_, *src6 = g ? g->src6 : src6_;
    if (g ? (v4 ? !g->have4 : !g->have6) : (v4 ? !have4_ : !have6_)) return false;
    uint8_t *b = f.buf;
    size_t l2 = 0;
    if (packet) {
      const uint8_t *dmac = v4 ? dst_mac4_ : dst_mac6_;
      if (v4 ? !have_mac4_ : !have_mac6_) return false;
      memcpy(b, dmac, 6);
      memcpy(b + 6, src_mac_, 6);
      uint16_t et = htons(v4 ? ETH_P_IP : ETH_P_IPV6);
      memcpy(b + 12, &et, 2);
      l2 = 14;
    }
    uint8_t *ip = b + l2;
    size_t l3l4 = v4 ? WriteSyn(ip, false, src4, p.addr + 12, p.sport, p.dport, seq, (uint16_t)(seq >> 16))
                     : WriteSyn(ip, true, src6, p.addr, p.sport, p.dport, seq, 0);
    f.len = l2 + l3l4;
    f.family = p.family;
    f.slot = idx;
    if (!packet) {
      memset(&f.dst, 0, sizeof(f.dst));
      if (v4) {
        auto *s = reinterpret_cast<sockaddr_in *>(&f.dst);
        s->sin_family = AF_INET;
        memcpy(&s->sin_addr, p.addr + 12, 4);
      } else {
        f.dst.sin6_family = AF_INET6;
        memcpy(&f.dst.sin6_addr, p.addr, 16);
      }
    }
    return true;
  }

  // Reserves n packets' worth of time from the shared bucket and waits for it.
  void Pace(uint32_t n) {
    int64_t interval = __atomic_load_n(&ctl_[HO_CTL_INTERVAL_PS], __ATOMIC_RELAXED);
    if (interval <= 0) return;
    int64_t base = __atomic_load_n(&ctl_[HO_CTL_BASE_NS], __ATOMIC_RELAXED);
    int64_t now_ps = (MonoNs() - base) * 1000;
    int64_t old = __atomic_load_n(&ctl_[HO_CTL_TAT_PS], __ATOMIC_RELAXED), start;
    do {
      start = std::max(old, now_ps);
    } while (!__atomic_compare_exchange_n(&ctl_[HO_CTL_TAT_PS], &old, start + (int64_t)n * interval, true,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    int64_t wait_ns = (start - now_ps) / 1000;
    if (wait_ns <= 0) return;
    int64_t until = base + start / 1000;
    if (wait_ns > 20000) {
      timespec ts = {(time_t)((until - 15000) / 1000000000LL), (long)((until - 15000) % 1000000000LL)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
    while (MonoNs() < until) {
    }
  }

  // Sends frames[0..n) of one socket, waiting while the kernel is busy; a frame it
  // refuses is counted in st.failed (the first errno in st.err). Returns n: every frame was tried.
  uint32_t Flush(int fd, bool packet, Frame *frames, uint32_t n, Stats &st) {
    mmsghdr msgs[256];
    iovec iov[256];
    for (uint32_t i = 0; i < n; i++) {
      iov[i] = {frames[i].buf, frames[i].len};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      if (!packet) {
        msgs[i].msg_hdr.msg_name = &frames[i].dst;
        msgs[i].msg_hdr.msg_namelen = frames[i].family == HO_FAMILY_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
      }
    }
    // The round-trip clock starts as the frames go to the kernel, after any
    // pacing wait, so a paced SYN's RTT is its own.
    uint64_t now = (uint64_t)MonoNs();
    for (uint32_t i = 0; i < n; i++) __atomic_store_n(&results_[frames[i].slot].sent_ns, now, __ATOMIC_RELAXED);
    uint32_t done = 0;
    int busy = 0;
    while (done < n) {
      int r = sendmmsg(fd, msgs + done, n - done, 0);
      if (r > 0) {
        done += r;
        busy = 0;
        continue;
      }
      int err = errno;
      if ((err == ENOBUFS || err == EAGAIN || err == EINTR) && busy++ < 2000) {
        timespec ts = {0, 50000};
        nanosleep(&ts, nullptr);
        continue;
      }
      // This message cannot go (no route, firewall, ...): count it and move on.
      st.failed++;
      if (!st.err) st.err = err;
      done++;
      busy = 0;
    }
    return n;
  }

  // Sleeps until `at` (CLOCK_MONOTONIC ns), or returns at once when it has passed.
  static void WaitUntil(int64_t at) {
    if (at <= MonoNs()) return;
    timespec ts = {(time_t)(at / 1000000000LL), (long)(at % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
  }

  bool kind_packet_ = false;
  uint32_t capacity_ = 0, batch_ = 64;
  int ifindex_ = 0;
  uint64_t key_[2] = {0, 0};
  uint8_t src4_[4] = {}, src6_[16] = {}, src_mac_[6] = {}, dst_mac4_[6] = {}, dst_mac6_[6] = {};
  bool have4_ = false, have6_ = false, have_mac4_ = false, have_mac6_ = false;
  Napi::Reference<Napi::TypedArrayOf<int64_t>> ctl_ref_;
  int64_t *ctl_ = nullptr;
  size_t page_ = 4096, probes_len_ = 0, results_len_ = 0;
  const ho_probe *probes_ = nullptr;
  ho_result *results_ = nullptr;
  int fd4_ = -1, fd6_ = -1, fd_packet_ = -1;
  std::vector<Group> groups_;
  Napi::Reference<Napi::TypedArrayOf<uint16_t>> group_of_ref_;
  const uint16_t *group_of_ = nullptr;
  size_t group_of_len_ = 0;
};

Napi::Object StatsObject(Napi::Env env, const SynSender::Stats &st) {
  auto r = Napi::Object::New(env);
  r.Set("sent", (double)st.sent);
  r.Set("skipped", (double)st.skipped);
  r.Set("failed", (double)st.failed);
  r.Set("errno", st.err);
  if (st.err && ErrnoName(st.err)) r.Set("errname", ErrnoName(st.err));
  r.Set("aborted", st.aborted);
  return r;
}

Napi::Float64Array LateArray(Napi::Env env, const std::vector<double> &late) {
  auto a = Napi::Float64Array::New(env, late.size());
  for (size_t b = 0; b < late.size(); b++) a[b] = late[b];
  return a;
}

// Departure base of a list made elapsedMs ago (CLOCK_MONOTONIC ns).
int64_t BaseOf(const Napi::CallbackInfo &info, size_t arg) {
  double elapsed = info.Length() > arg && info[arg].IsNumber() ? info[arg].As<Napi::Number>().DoubleValue() : 0;
  return MonoNs() - (int64_t)(std::max(0.0, elapsed) * 1e6);
}

// The sweep's sender, one per worker thread, called synchronously there.
class Sender : public Napi::ObjectWrap<Sender> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sender", {InstanceMethod("send", &Sender::Send), InstanceMethod("close", &Sender::Close)});
  }

  // new Sender(options): see SynSender.
  explicit Sender(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Sender>(info) {
    core_ = std::make_unique<SynSender>(info.Env(), info[0].As<Napi::Object>());
  }

 private:
  SynSender &Open(Napi::Env env) {
    if (!core_->open()) Throw(env, HO_E_INTERNAL, "the sender is closed");
    return *core_;
  }

  // send(lo, hi, onlyUnanswered) → {sent, skipped, failed, errno, aborted}
  Napi::Value Send(const Napi::CallbackInfo &info) {
    SynSender &c = Open(info.Env());
    uint32_t lo = info[0].As<Napi::Number>().Uint32Value();
    uint32_t hi = std::min(info[1].As<Napi::Number>().Uint32Value(), c.capacity());
    uint32_t cur = lo;
    return StatsObject(info.Env(), c.Run(info.Length() > 2 && info[2].ToBoolean(), [&](uint32_t &i, int64_t &) {
      if (cur >= hi) return false;
      i = cur++;
      return true;
    }, [](int64_t, int64_t) {}));
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    core_->Release();
    return info.Env().Undefined();
  }

  std::unique_ptr<SynSender> core_;
};

// serve's sender: threads of its own in the addon, each with a SynSender,
// taking lists of scattered slots from one queue. A list is handed over as a copy and its
// result comes back as a promise, with no worker isolate, no structured
// clone and no message port between them (a health-check batch is small,
// and what a worker thread costs per batch is most of what it costs).
//
//   new SendThreads(options, threads)
//   .sendList(slots: Uint32Array, waitMs?: Uint16Array, elapsedMs?: number)
//       → Promise<{sent, skipped, failed, errno, aborted, late?}>: see
//       SynSender::RunList; with waitMs, the list was made elapsedMs ago
//   .close() → Promise: every list already handed over is sent, the threads have stopped
class SendThreads : public Napi::ObjectWrap<SendThreads> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SendThreads", {InstanceMethod("sendList", &SendThreads::SendList),
                                            InstanceMethod("close", &SendThreads::Close)});
  }

  explicit SendThreads(const Napi::CallbackInfo &info) : Napi::ObjectWrap<SendThreads>(info) {
    Napi::Env env = info.Env();
    uint32_t n = std::clamp<uint32_t>(info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 1, 1, 64);
    for (uint32_t k = 0; k < n; k++) cores_.push_back(std::make_unique<SynSender>(env, info[0].As<Napi::Object>()));
    tsfn_ = Tsfn::New(env, "halfopen sender", 0, 1, this);
    tsfn_.Unref(env);  // only lists in flight keep the loop alive
    Ref();              // until close(): the threads point here
    for (uint32_t k = 0; k < n; k++) threads_.emplace_back([this, k] { Loop(*cores_[k]); });
  }

  ~SendThreads() override { Stop(); }

 private:
  struct Job {
    std::vector<uint32_t> slots;
    std::vector<uint16_t> waits;
    bool has_waits = false;
    int64_t base = 0;
    napi_deferred deferred = nullptr;  // the JS thread's only
    SynSender::Stats st;
    std::vector<double> late;
    bool stopped = false;  // the last message: every thread has stopped
  };

  static void CallJs(Napi::Env env, Napi::Function, SendThreads *self, Job *job) {
    std::unique_ptr<Job> j(job);
    if (!env) return;  // the function is being torn down
    Napi::HandleScope scope(env);
    if (j->stopped) {
      self->Stopped(env);
      return;
    }
    auto r = StatsObject(env, j->st);
    if (j->has_waits) r.Set("late", LateArray(env, j->late));
    napi_resolve_deferred(env, j->deferred, r);
    if (--self->pending_ == 0 && !self->closing_) self->tsfn_.Unref(env);
  }

  void Loop(SynSender &core) {
    for (;;) {
      Job *job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping, and nothing left to send
        job = queue_.front();
        queue_.pop_front();
      }
      job->st = core.RunList(job->slots.data(), job->slots.size(), job->has_waits ? job->waits.data() : nullptr, job->base, &job->late);
      tsfn_.NonBlockingCall(job);
    }
    std::lock_guard<std::mutex> lk(mu_);
    if (++exited_ == threads_.size() && !torn_down_) {
      // The last one out says so: the JS thread joins them and releases.
      auto *last = new Job;
      last->stopped = true;
      tsfn_.NonBlockingCall(last);
    }
  }

  Napi::Value SendList(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (closing_) Throw(env, HO_E_INTERNAL, "the sender is closed");
    auto slots = info[0].As<Napi::Uint32Array>();
    size_t n = slots.ElementLength();
    auto job = std::make_unique<Job>();
    job->slots.assign(slots.Data(), slots.Data() + n);
    if (info.Length() > 1 && info[1].IsTypedArray()) {
      auto waits = info[1].As<Napi::Uint16Array>();
      if (waits.ElementLength() != n) Throw(env, HO_E_INTERNAL, "sendList: one wait per slot");
      job->waits.assign(waits.Data(), waits.Data() + n);
      job->has_waits = true;
      job->base = BaseOf(info, 2);
    }
    napi_value promise;
    if (napi_create_promise(env, &job->deferred, &promise) != napi_ok) Throw(env, HO_E_INTERNAL, "sendList: cannot make a promise");
    if (pending_++ == 0) tsfn_.Ref(env);
    {
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(job.release());
    }
    cv_.notify_one();
    return Napi::Value(env, promise);
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!closing_) {
      closing_ = true;
      close_ = std::make_unique<Napi::Promise::Deferred>(env);
      closed_ = Napi::Persistent(close_->Promise());
      tsfn_.Ref(env);  // until the threads' last message
      {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
      }
      cv_.notify_all();
    }
    return closed_.Value();
  }

  // On the JS thread, once every thread has left its loop.
  void Stopped(Napi::Env env) {
    for (auto &t : threads_) t.join();
    threads_.clear();
    for (auto &c : cores_) c->Release();
    tsfn_.Release();
    if (close_) close_->Resolve(env.Undefined());
    Unref();
  }

  // The object is collected while its threads still run (only when close()
  // was never called, at the environment's teardown): stop them here.
  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      torn_down_ = true;  // no last message
    }
    cv_.notify_all();
    for (auto &t : threads_)
      if (t.joinable()) t.join();
  }

  using Tsfn = Napi::TypedThreadSafeFunction<SendThreads, Job, &SendThreads::CallJs>;
  std::vector<std::unique_ptr<SynSender>> cores_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job *> queue_;
  bool stop_ = false, torn_down_ = false;
  size_t exited_ = 0;
  Tsfn tsfn_;
  // The JS thread's only:
  size_t pending_ = 0;
  bool closing_ = false;
  std::unique_ptr<Napi::Promise::Deferred> close_;
  Napi::Reference<Napi::Promise> closed_;
};

}  // namespace

void InitSender(Napi::Env env, Napi::Object exports) {
  exports.Set("Sender", Sender::Define(env));
  exports.Set("SendThreads", SendThreads::Define(env));
}

}  // namespace ho
