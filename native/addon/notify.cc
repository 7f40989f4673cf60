// sd_notify(3) for `halfopen serve` under systemd: one datagram to the unix
// socket systemd named in NOTIFY_SOCKET. Node has no unix datagram sockets,
// and forking systemd-notify for every watchdog ping both costs a process
// and races (systemd may not attribute a message from a process that has
// already exited), so the addon sends it from the daemon's own PID.
#include "common.h"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace ho {

// notify(socketPath, state) → 0, or the errno of the failure. A path starting
// with '@' is an abstract socket, as in sd_notify.
static Napi::Value Notify(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsString() || !info[1].IsString())
    Throw(env, HO_E_INTERNAL, "notify(socketPath, state): expected two strings");
  std::string path = info[0].As<Napi::String>();
  std::string state = info[1].As<Napi::String>();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
    return Napi::Number::New(env, EINVAL);
  memcpy(sa.sun_path, path.data(), path.size());
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t len = offsetof(sockaddr_un, sun_path) + path.size();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, errno);
  int err = 0;
  if (sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr *>(&sa), len) < 0) err = errno;
  close(fd);
  return Napi::Number::New(env, err);
}

void InitNotify(Napi::Env env, Napi::Object exports) { exports.Set("notify", Napi::Function::New(env, Notify)); }

}  // namespace ho
