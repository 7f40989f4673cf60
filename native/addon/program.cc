// Program: one loaded instance of the reply matcher (bpf/halfopen.bpf.c),
// through its generated skeleton: both entry points (XDP and tc) over one set
// of maps. Lifecycle: construct (open, configure, load) → attach (XDP, or tc
// ingress when the XDP hook is taken) → mapBuffer/poll/counters → close.
// Attachment is a bpf_link either way, so the kernel detaches the program
// when the process dies, however it dies, and nothing else on the interface
// is ever detached, replaced or moved.
#include "common.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "halfopen.skel.h"

namespace ho {
namespace {

// tcx (kernel 6.6): the build's uapi headers and libbpf 1.1 predate it.
constexpr int kBpfTcxIngress = 46;  // enum bpf_attach_type BPF_TCX_INGRESS

// Appends prog at the end of the interface's tcx ingress chain: flags 0 and
// no relative program, so nothing attached there moves or is replaced.
// Returns the link fd or -errno.
int TcxLinkCreate(int prog_fd, int ifindex) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_create.prog_fd = prog_fd;
  attr.link_create.target_fd = ifindex;  // target_ifindex, same field
  attr.link_create.attach_type = kBpfTcxIngress;
  attr.link_create.flags = 0;
  int fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
  return fd < 0 ? -errno : fd;
}

// CAP_PERFMON (Linux 5.8); older headers do not name it.
constexpr int kCapPerfmon = 38;

// Whether the calling thread has `cap` in its effective set (true when it cannot tell).
bool HasEffectiveCap(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return true;
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

class Program : public Napi::ObjectWrap<Program> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Program",
                       {
                           InstanceMethod("attach", &Program::Attach),
                           InstanceMethod("xdpOwner", &Program::XdpOwner),
                           InstanceMethod("detach", &Program::Detach),
                           InstanceMethod("setRstMode", &Program::SetRstMode),
                           InstanceMethod("mapBuffer", &Program::MapBuffer),
                           InstanceMethod("counters", &Program::Counters),
                           InstanceMethod("poll", &Program::Poll),
                           InstanceMethod("testRun", &Program::TestRun),
                           InstanceMethod("fds", &Program::Fds),
                           InstanceMethod("close", &Program::Close),
                       });
  }

  // new Program({capacity, key: Buffer(16), sportLo, sportHi, ringbufBytes?})
  explicit Program(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Program>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject()) Throw(env, HO_E_INTERNAL, "Program(options): options object expected");
    auto opts = info[0].As<Napi::Object>();
    capacity_ = opts.Get("capacity").As<Napi::Number>().Uint32Value();
    auto key = opts.Get("key");
    if (!key.IsBuffer() || key.As<Napi::Buffer<uint8_t>>().Length() != HO_KEY_SIZE)
      Throw(env, HO_E_INTERNAL, "Program: key must be a 16-byte Buffer");
    uint32_t sport_lo = opts.Get("sportLo").As<Napi::Number>().Uint32Value();
    uint32_t sport_hi = opts.Get("sportHi").As<Napi::Number>().Uint32Value();
    Napi::Value ring_v = opts.Get("ringbufBytes");
    uint32_t ring = ring_v.IsNumber() ? ring_v.As<Napi::Number>().Uint32Value() : 0;
    if (capacity_ == 0) Throw(env, HO_E_INTERNAL, "Program: capacity must be at least 1");
    if (sport_lo == 0 || sport_lo > sport_hi || sport_hi > 65535)
      Throw(env, HO_E_INTERNAL, "Program: invalid source-port range");

    LibbpfLogBegin();
    skel_ = halfopen__open();
    if (!skel_) {
      int err = errno;
      Throw(env, ErrnoError(err, HO_E_BPF), "cannot open the XDP object", err, "bpf", LibbpfLogEnd());
    }
    memcpy(&skel_->rodata->cfg_key, key.As<Napi::Buffer<uint8_t>>().Data(), HO_KEY_SIZE);
    skel_->rodata->cfg_sport_lo = sport_lo;
    skel_->rodata->cfg_sport_hi = sport_hi;
    bpf_map__set_max_entries(skel_->maps.probes, capacity_);
    bpf_map__set_max_entries(skel_->maps.results, capacity_);
    if (ring) bpf_map__set_max_entries(skel_->maps.events, ring);
    // The verifier gives up with EAGAIN when a signal is pending (libbpf
    // retries 5 times): a profiler's SIGPROF every millisecond made every
    // try fail. Signals wait for the few milliseconds of the load instead.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = halfopen__load(skel_);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    std::string log = LibbpfLogEnd();
    if (err) {
      err = -err;
      halfopen__destroy(skel_);
      skel_ = nullptr;
      // libbpf reports a verifier rejection as EACCES/EINVAL with the log.
      bool verifier = log.find("processed ") != std::string::npos || log.find("R0") != std::string::npos ||
                      log.find("invalid") != std::string::npos;
      if (err == EPERM)
        Throw(env, HO_E_PRIVILEGE, "loading the XDP program needs CAP_BPF and CAP_NET_ADMIN (run as root)", err,
              "bpf", log);
      // Without CAP_PERFMON the verifier checks pointer use more strictly, and
      // on 6.x kernels it rejects this program with EACCES: say what is missing.
      if (err == EACCES && !HasEffectiveCap(kCapPerfmon) && !HasEffectiveCap(CAP_SYS_ADMIN))
        Throw(env, HO_E_PRIVILEGE,
              "loading the XDP program needs CAP_PERFMON as well on this kernel: its verifier rejects the program "
              "without it (run as root, or add CAP_PERFMON to CAP_BPF, CAP_NET_ADMIN and CAP_NET_RAW)",
              err, "bpf", log);
      Throw(env, verifier ? HO_E_VERIFIER : ErrnoError(err, HO_E_BPF), "cannot load the XDP program", err, "bpf", log);
    }
  }

  ~Program() override { Release(); }

 private:
  void Release() {
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    if (link_fd_ >= 0) close(link_fd_);
    link_fd_ = -1;
    if (skel_) halfopen__destroy(skel_);
    skel_ = nullptr;
  }

  void Need(Napi::Env env) {
    if (!skel_) Throw(env, HO_E_INTERNAL, "the XDP program is closed");
  }

  // attach(ifindex, mode: 'auto'|'native'|'generic', hook: 'auto'|'xdp'|'tc')
  //   → 'native'|'generic' (XDP) or 'tc' (tcx ingress).
  // hook 'auto': XDP when the hook is free; when another program holds it
  // (EBUSY, or EEXIST for one in the other mode), the tc entry point at tcx
  // ingress instead. The other program is never touched.
  Napi::Value Attach(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    if (link_fd_ >= 0) Throw(env, HO_E_INTERNAL, "already attached");
    int ifindex = info[0].As<Napi::Number>().Int32Value();
    std::string mode = info.Length() > 1 ? info[1].As<Napi::String>().Utf8Value() : "auto";
    std::string hook = info.Length() > 2 ? info[2].As<Napi::String>().Utf8Value() : "xdp";
    char ifname[IF_NAMESIZE] = "?";
    if_indextoname(ifindex, ifname);

    if (hook != "tc") {
      int prog_fd = bpf_program__fd(skel_->progs.halfopen_xdp);
      auto try_mode = [&](uint32_t flags) {
        LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
        int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);
        return fd < 0 ? -errno : fd;
      };
      int fd = -EINVAL;
      const char *got = nullptr;
      if (mode == "auto" || mode == "native") {
        fd = try_mode(XDP_FLAGS_DRV_MODE);
        got = "native";
      }
      if (fd < 0 && (mode == "generic" || (mode == "auto" && fd != -EBUSY && fd != -EPERM && fd != -EEXIST))) {
        fd = try_mode(XDP_FLAGS_SKB_MODE);
        got = "generic";
      }
      if (fd >= 0) {
        link_fd_ = fd;
        return Napi::String::New(env, got);
      }
      int err = -fd;
      bool taken = err == EBUSY || err == EEXIST;
      if (!(hook == "auto" && taken)) {
        std::string what = std::string("cannot attach XDP to ") + ifname;
        if (taken) what += " (another XDP program is attached there)";
        if (err == EPERM) what += " (needs CAP_NET_ADMIN and CAP_BPF)";
        Throw(env, ErrnoError(err, HO_E_BPF), what, err, "bpf_link_create");
      }
    }
    int fd = TcxLinkCreate(bpf_program__fd(skel_->progs.halfopen_tc), ifindex);
    if (fd < 0) {
      int err = -fd;
      std::string what = std::string(hook == "auto" ? "the XDP hook of " + std::string(ifname) + " is taken by another program, and halfopen " : "") +
                         "cannot attach to tc ingress of " + ifname;
      if (err == EINVAL) what += " (tcx needs Linux 6.6 or later)";
      if (err == EPERM) what += " (needs CAP_NET_ADMIN and CAP_BPF)";
      Throw(env, ErrnoError(err, HO_E_BPF), what, err, "bpf_link_create");
    }
    link_fd_ = fd;
    return Napi::String::New(env, "tc");
  }

  // xdpOwner(ifindex) → {id, name, mode: 'native'|'generic'|'offload'} of the
  // program on the interface's XDP hook, or null when the hook is free.
  Napi::Value XdpOwner(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    int ifindex = info[0].As<Napi::Number>().Int32Value();
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q)) Throw(env, ErrnoError(errno, HO_E_BPF), "cannot query the XDP hook", errno, "netlink");
    uint32_t id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id ? q.hw_prog_id : q.prog_id;
    if (!id) return env.Null();
    auto o = Napi::Object::New(env);
    o.Set("id", id);
    o.Set("mode", q.drv_prog_id == id ? "native" : q.skb_prog_id == id ? "generic" : "offload");
    std::string name;
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd >= 0) {
      struct bpf_prog_info pi = {};
      uint32_t len = sizeof(pi);
      if (!bpf_obj_get_info_by_fd(fd, &pi, &len)) name.assign(pi.name, strnlen(pi.name, sizeof(pi.name)));
      close(fd);
    }
    o.Set("name", name);
    return o;
  }

  // setRstMode(mode: enum ho_rst_mode): who answers valid SYN+ACKs with the RST
  // (see halfopen.bpf.c). A plain store into the mmapped .bss: the program
  // reads it per packet.
  Napi::Value SetRstMode(const Napi::CallbackInfo &info) {
    Need(info.Env());
    uint32_t mode = info[0].As<Napi::Number>().Uint32Value();
    if (mode > HO_RST_XDP_FRAME) Throw(info.Env(), HO_E_INTERNAL, "setRstMode: unknown mode " + std::to_string(mode));
    __atomic_store_n(&skel_->bss->cfg_rst_tx, mode, __ATOMIC_RELAXED);
    return info.Env().Undefined();
  }

  Napi::Value Detach(const Napi::CallbackInfo &info) {
    if (link_fd_ >= 0) close(link_fd_);
    link_fd_ = -1;
    return info.Env().Undefined();
  }

  bpf_map *MapByName(Napi::Env env, const std::string &name) {
    if (name == "probes") return skel_->maps.probes;
    if (name == "results") return skel_->maps.results;
    Throw(env, HO_E_INTERNAL, "no mmapable map named " + name);
  }

  // mapBuffer('probes'|'results') → ArrayBuffer over the map's memory (no copy).
  Napi::Value MapBuffer(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    bpf_map *map = MapByName(env, info[0].As<Napi::String>().Utf8Value());
    size_t len = (size_t)bpf_map__value_size(map) * bpf_map__max_entries(map);
    size_t page = sysconf(_SC_PAGESIZE);
    size_t maplen = (len + page - 1) / page * page;
    int err = 0;
    void *mem = MapAcquire(bpf_map__fd(map), maplen, PROT_READ | PROT_WRITE, &err);
    if (!mem) Throw(env, ErrnoError(err, HO_E_BPF), "cannot mmap map " + std::string(bpf_map__name(map)), err, "mmap");
    // The mapping outlives close(): it holds its own reference to the map.
    return Napi::ArrayBuffer::New(env, mem, len, [](Napi::Env, void *p) { MapRelease(p); });
  }

  // counters() → number[HO_CNT_MAX], summed over CPUs.
  Napi::Value Counters(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    int ncpu = libbpf_num_possible_cpus();
    std::vector<uint64_t> vals(ncpu);
    auto out = Napi::Array::New(env, HO_CNT_MAX);
    int fd = bpf_map__fd(skel_->maps.counters);
    for (uint32_t k = 0; k < HO_CNT_MAX; k++) {
      if (bpf_map_lookup_elem(fd, &k, vals.data())) Throw(env, HO_E_BPF, "cannot read counters", errno, "bpf");
      uint64_t sum = 0;
      for (auto v : vals) sum += v;
      out.Set(k, Napi::Number::New(env, (double)sum));
    }
    return out;
  }

  static int OnEvent(void *ctx, void *data, size_t size) {
    if (size >= sizeof(uint32_t)) {
      uint32_t idx;
      memcpy(&idx, data, sizeof(idx));
      static_cast<std::vector<uint32_t> *>(ctx)->push_back(idx);
    }
    return 0;
  }

  // poll() → Uint32Array of probe indices whose verdict was recorded since the last poll.
  Napi::Value Poll(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    if (!rb_) {
      rb_ = ring_buffer__new(bpf_map__fd(skel_->maps.events), OnEvent, &pending_, nullptr);
      if (!rb_) Throw(env, HO_E_BPF, "cannot open the event ring buffer", errno, "mmap");
    }
    pending_.clear();
    int n = ring_buffer__consume(rb_);
    if (n < 0) Throw(env, HO_E_BPF, "cannot read the event ring buffer", -n, "epoll");
    auto arr = Napi::Uint32Array::New(env, pending_.size());
    if (!pending_.empty()) memcpy(arr.Data(), pending_.data(), pending_.size() * sizeof(uint32_t));
    return arr;
  }

  // testRun(packet: Buffer, repeat = 1, entry: 'xdp'|'tc' = 'xdp') → {retval, data: Buffer, duration}
  Napi::Value TestRun(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    auto pkt = info[0].As<Napi::Buffer<uint8_t>>();
    uint32_t repeat = info.Length() > 1 ? info[1].As<Napi::Number>().Uint32Value() : 1;
    bool tc = info.Length() > 2 && info[2].As<Napi::String>().Utf8Value() == "tc";
    std::vector<uint8_t> out(pkt.Length() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt.Data(), .data_out = out.data(),
                .data_size_in = (uint32_t)pkt.Length(), .data_size_out = (uint32_t)out.size(), .repeat = (int)repeat);
    if (bpf_prog_test_run_opts(bpf_program__fd(tc ? skel_->progs.halfopen_tc : skel_->progs.halfopen_xdp), &opts))
      Throw(env, ErrnoError(errno, HO_E_BPF), "BPF_PROG_TEST_RUN failed", errno, "bpf");
    auto res = Napi::Object::New(env);
    res.Set("retval", (int32_t)opts.retval);  // tc's TCX_NEXT is -1
    res.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
    res.Set("duration", opts.duration);
    return res;
  }

  Napi::Value Fds(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Need(env);
    auto o = Napi::Object::New(env);
    o.Set("prog", bpf_program__fd(skel_->progs.halfopen_xdp));
    o.Set("progTc", bpf_program__fd(skel_->progs.halfopen_tc));
    o.Set("probes", bpf_map__fd(skel_->maps.probes));
    o.Set("results", bpf_map__fd(skel_->maps.results));
    o.Set("counters", bpf_map__fd(skel_->maps.counters));
    o.Set("link", link_fd_);
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Release();
    return info.Env().Undefined();
  }

  struct halfopen *skel_ = nullptr;
  struct ring_buffer *rb_ = nullptr;
  std::vector<uint32_t> pending_;
  int link_fd_ = -1;
  uint32_t capacity_ = 0;
};

// cookie(key: Buffer(16), addr: Buffer(16), dport, sport) → u32; the sender's and XDP's formula.
Napi::Value Cookie(const Napi::CallbackInfo &info) {
  auto key = info[0].As<Napi::Buffer<uint8_t>>();
  auto addr = info[1].As<Napi::Buffer<uint8_t>>();
  if (key.Length() != 16 || addr.Length() != 16) Throw(info.Env(), HO_E_INTERNAL, "cookie(key, addr, ...): 16-byte buffers expected");
  uint64_t k[2];
  uint32_t a[4];
  memcpy(k, key.Data(), 16);
  memcpy(a, addr.Data(), 16);
  uint16_t dport = htons(info[2].As<Napi::Number>().Uint32Value());
  uint16_t sport = htons(info[3].As<Napi::Number>().Uint32Value());
  return Napi::Number::New(info.Env(), ho_cookie(k[0], k[1], a[0], a[1], a[2], a[3], dport, sport));
}

// driverName(ifindex) → the interface's driver as ethtool reports it ("veth",
// "mlx5_core", …), or "" when the interface has none or cannot be asked.
Napi::Value DriverName(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  char ifname[IF_NAMESIZE] = {};
  if (!if_indextoname(info[0].As<Napi::Number>().Uint32Value(), ifname)) return Napi::String::New(env, "");
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::String::New(env, "");
  struct ethtool_drvinfo drv = {};
  drv.cmd = ETHTOOL_GDRVINFO;
  struct ifreq ifr = {};
  memcpy(ifr.ifr_name, ifname, strnlen(ifname, IF_NAMESIZE - 1));
  ifr.ifr_data = reinterpret_cast<char *>(&drv);
  int rc = ioctl(fd, SIOCETHTOOL, &ifr);
  close(fd);
  if (rc < 0) return Napi::String::New(env, "");
  return Napi::String::New(env, std::string(drv.driver, strnlen(drv.driver, sizeof(drv.driver))));
}

// siphash24(key: Buffer(16), msg: Buffer(24)) → BigInt, for the reference test vectors.
Napi::Value SipHash24(const Napi::CallbackInfo &info) {
  auto key = info[0].As<Napi::Buffer<uint8_t>>();
  auto msg = info[1].As<Napi::Buffer<uint8_t>>();
  if (key.Length() != 16 || msg.Length() != 24) Throw(info.Env(), HO_E_INTERNAL, "siphash24: 16-byte key and 24-byte message expected");
  uint64_t k[2], w[3];
  memcpy(k, key.Data(), 16);
  memcpy(w, msg.Data(), 24);
  return Napi::BigInt::New(info.Env(), (uint64_t)ho_siphash24_3w(k[0], k[1], w[0], w[1], w[2]));
}

}  // namespace

void InitProgram(Napi::Env env, Napi::Object exports) {
  exports.Set("Program", Program::Define(env));
  exports.Set("cookie", Napi::Function::New(env, Cookie));
  exports.Set("siphash24", Napi::Function::New(env, SipHash24));
  exports.Set("driverName", Napi::Function::New(env, DriverName));
}

}  // namespace ho
