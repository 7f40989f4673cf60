// The HAProxy agent-check responder's connection path, on a thread of its
// own. HAProxy opens one TCP connection per server per agent-inter (9,000
// servers at 1 s: 9,000 a second), sends its agent-send line and reads one
// line back. Through Node's net.Server that cost serve about 85 µs of CPU per
// connection, most of it the socket object, its streams and their garbage;
// here a connection is accept4, read, write, close, with no allocation but
// its line, and the main thread is not involved at all.
//
// What to answer is decided in TypeScript (src/daemon/agent.ts agentReply):
// it hands over the reply for every key (a backend's name, address:port and
// [address]:port) whenever they may have changed, as changes to a table the
// thread reads under a mutex (held for one lookup, or for a swap). A key not in the table gets `down #unknown backend KEY`;
// before the first table, `down #halfopen starting`.
//
//   new AgentResponder(address, port)   binds and listens (an address literal)
//   .update(keys, replies, whole)       sets these entries; whole: they are the table
//   .remove(keys)                       drops them
//   .ready()                            the table is complete: stop saying "starting"
//   .stats() → {accepted, answered, timedOut}
//   .close()                            stops the thread, closes every socket
#include "common.h"
#include "json.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ho {
namespace {

constexpr size_t kMaxKey = 1024;      // a longer line is answered as it stands
constexpr int64_t kIdleNs = 5000000000LL;  // a connection that sends no line for this long is closed
constexpr int kBacklog = 4096;

int64_t MonoNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


// String.prototype.trim for the characters a latin1 line can hold.
std::string Trim(const std::string &s) {
  auto space = [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || c == 0xa0; };
  size_t a = 0, b = s.size();
  while (a < b && space((unsigned char)s[a])) a++;
  while (b > a && space((unsigned char)s[b - 1])) b--;
  return s.substr(a, b - a);
}

struct Conn {
  std::string line;
  int64_t since = 0;
};

class Responder : public Napi::ObjectWrap<Responder> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "AgentResponder",
                       {InstanceMethod("update", &Responder::Update), InstanceMethod("remove", &Responder::Remove),
                        InstanceMethod("ready", &Responder::Ready), InstanceMethod("stats", &Responder::Stats),
                        InstanceMethod("close", &Responder::Close)});
  }

  explicit Responder(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Responder>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber())
      Throw(env, HO_E_INTERNAL, "AgentResponder(address, port): expected an address literal and a port");
    std::string host = info[0].As<Napi::String>();
    int port = info[1].As<Napi::Number>().Int32Value();
    sockaddr_storage ss{};
    socklen_t len;
    auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
    auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) == 1) {
      s4->sin_family = AF_INET;
      s4->sin_port = htons((uint16_t)port);
      len = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) == 1) {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons((uint16_t)port);
      len = sizeof(*s6);
    } else {
      Throw(env, HO_E_INTERNAL, "AgentResponder: not an address literal: " + host);
    }
    listen_fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) Throw(env, HO_E_CONFIG, "socket", errno, "socket");
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(listen_fd_, reinterpret_cast<sockaddr *>(&ss), len) < 0 || listen(listen_fd_, kBacklog) < 0) {
      int err = errno;
      close(listen_fd_);
      listen_fd_ = -1;
      Throw(env, HO_E_CONFIG, "bind", err, "bind");
    }
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    thread_ = std::thread([this] { Loop(); });
  }

  ~Responder() override { Stop(); }

 private:
  using Table = std::unordered_map<std::string, std::string>;

  // update(keys, replies, whole): arrays of strings of the same length.
  Napi::Value Update(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsBoolean())
      Throw(env, HO_E_INTERNAL, "update(keys, replies, whole): expected two arrays and a boolean");
    auto keys = info[0].As<Napi::Array>(), replies = info[1].As<Napi::Array>();
    if (keys.Length() != replies.Length()) Throw(env, HO_E_INTERNAL, "update: keys and replies differ in length");
    Table next;  // built outside the lock: the thread looks up meanwhile
    next.reserve(keys.Length());
    for (uint32_t i = 0; i < keys.Length(); i++)
      next[keys.Get(i).As<Napi::String>().Utf8Value()] = replies.Get(i).As<Napi::String>().Utf8Value();
    std::lock_guard<std::mutex> g(mu_);
    if (info[2].As<Napi::Boolean>().Value()) {
      table_.swap(next);
    } else {
      for (auto &kv : next) table_[kv.first] = std::move(kv.second);
    }
    return env.Undefined();
  }

  Napi::Value Remove(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsArray()) Throw(env, HO_E_INTERNAL, "remove(keys): expected an array");
    auto keys = info[0].As<Napi::Array>();
    std::vector<std::string> gone;
    for (uint32_t i = 0; i < keys.Length(); i++) gone.push_back(keys.Get(i).As<Napi::String>().Utf8Value());
    std::lock_guard<std::mutex> g(mu_);
    for (auto &k : gone) table_.erase(k);
    return env.Undefined();
  }

  Napi::Value Ready(const Napi::CallbackInfo &info) {
    ready_.store(true);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo &info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("accepted", Napi::Number::New(info.Env(), (double)accepted_.load()));
    o.Set("answered", Napi::Number::New(info.Env(), (double)answered_.load()));
    o.Set("timedOut", Napi::Number::New(info.Env(), (double)timed_out_.load()));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Stop();
    return info.Env().Undefined();
  }


  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof(one)) < 0) {
    }
    thread_.join();
    for (auto &c : conns_) close(c.first);
    conns_.clear();
    close(listen_fd_);
    close(epoll_fd_);
    close(wake_fd_);
  }

  std::string Reply(const std::string &line) {
    if (!ready_.load()) return "down #halfopen starting\n";
    std::string key = Trim(line);
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = table_.find(key);
      if (it != table_.end()) return it->second;
    }
    // JSON.stringify(key).slice(1, -1), the key read as latin1, the reply written as UTF-8.
    return "down #unknown backend " + JsonEscape(key, true) + "\n";
  }

  // Answers and closes. What the peer sent beyond its line is read first, so
  // the close sends FIN after the reply, not RST.
  void Answer(int fd, const std::string &line) {
    std::string r = Reply(line);
    char sink[512];
    while (read(fd, sink, sizeof(sink)) > 0) {
    }
    if (send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)r.size()) answered_++;
    close(fd);
  }

  // Reads what is there; true when fd was answered (and closed).
  bool Feed(int fd, Conn &c) {
    char buf[1024];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n > 0) {
        void *nl = memchr(buf, '\n', (size_t)n);
        size_t take = nl ? (size_t)((char *)nl - buf) : (size_t)n;
        c.line.append(buf, take);
        if (nl || c.line.size() >= kMaxKey) {
          if (c.line.size() > kMaxKey) c.line.resize(kMaxKey);
          Answer(fd, c.line);
          return true;
        }
        continue;
      }
      if (n == 0) {  // the peer ended without a newline: answer what came
        Answer(fd, c.line);
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return false;
      close(fd);  // reset or worse: nobody to answer
      return true;
    }
  }

  void Loop() {
    epoll_event evs[128];
    int64_t next_sweep = MonoNs() + kIdleNs;
    while (!stop_.load()) {
      int n = epoll_wait(epoll_fd_, evs, 128, 1000);
      for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == wake_fd_) continue;
        if (fd == listen_fd_) {
          for (;;) {
            int c = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) break;  // EAGAIN, or EMFILE and the like: the next event retries
            accepted_++;
            Conn conn;
            // HAProxy sends its line with the handshake's last ACK or right after: often here already.
            if (Feed(c, conn)) continue;
            conn.since = MonoNs();
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLRDHUP;
            ev.data.fd = c;
            if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c, &ev) < 0) {
              close(c);
              continue;
            }
            conns_.emplace(c, std::move(conn));
          }
          continue;
        }
        auto it = conns_.find(fd);
        if (it == conns_.end()) continue;
        // close() removes fd from the epoll set.
        if (Feed(fd, it->second)) conns_.erase(it);
      }
      int64_t now = MonoNs();
      if (now >= next_sweep) {
        next_sweep = now + kIdleNs / 5;
        for (auto it = conns_.begin(); it != conns_.end();) {
          if (now - it->second.since > kIdleNs) {
            close(it->first);
            timed_out_++;
            it = conns_.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
  }

  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false}, ready_{false};
  std::atomic<uint64_t> accepted_{0}, answered_{0}, timed_out_{0};
  std::mutex mu_;
  Table table_;  // guarded by mu_
  std::unordered_map<int, Conn> conns_;  // the loop thread's only
};

}  // namespace

void InitAgent(Napi::Env env, Napi::Object exports) { exports.Set("AgentResponder", Responder::Define(env)); }

}  // namespace ho
