// Every failure crosses into JavaScript through Throw(), as one error class
// with {code, errno, errname, syscall, log}. The class itself lives in
// TypeScript (src/errors.ts) and is handed over once per thread.
#include "common.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <unistd.h>
#include <bpf/bpf.h>

namespace ho {
namespace {

struct InstanceData {
  Napi::FunctionReference error_class;
};

thread_local std::string *libbpf_log = nullptr;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_DEBUG || !libbpf_log) return 0;
  char buf[4096];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  if (n > 0) libbpf_log->append(buf, std::min<size_t>(n, sizeof(buf) - 1));
  return 0;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo &info) {
  if (info.Length() != 1 || !info[0].IsFunction())
    Throw(info.Env(), HO_E_INTERNAL, "setErrorClass(cls): cls must be a constructor");
  auto *data = info.Env().GetInstanceData<InstanceData>();
  data->error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace

void Throw(Napi::Env env, enum ho_error code_id, const std::string &message, int err, const char *syscall,
           const std::string &log) {
  const char *code = ErrorCodeText(code_id);
  std::string msg = message;
  if (err) {
    char tail[160] = "";
    AppendErrno(tail, sizeof(tail), err);
    msg += tail;
  }
  auto *data = env.GetInstanceData<InstanceData>();
  Napi::Object obj;
  if (data && !data->error_class.IsEmpty()) {
    obj = data->error_class.New({Napi::String::New(env, code), Napi::String::New(env, msg)});
  } else {
    obj = Napi::Error::New(env, msg).Value();
    obj.Set("code", code);
  }
  if (err) {
    obj.Set("errno", err);
    if (const char *name = ErrnoName(err)) obj.Set("errname", name);
  }
  if (syscall) obj.Set("syscall", syscall);
  if (!log.empty()) obj.Set("log", log);
  throw Napi::Error(env, obj);
}

void LibbpfLogBegin() {
  delete libbpf_log;
  libbpf_log = new std::string();
}

std::string LibbpfLogEnd() {
  std::string out = libbpf_log ? *libbpf_log : std::string();
  delete libbpf_log;
  libbpf_log = nullptr;
  return out;
}

namespace {
struct Mapping {
  void *addr;
  size_t len;
  int refs;
};
std::mutex maps_mu;
std::map<uint32_t, Mapping> maps_by_id;  // BPF map id → mapping
}  // namespace

void *MapAcquire(int map_fd, size_t len, int prot, int *err) {
  bpf_map_info info = {};
  uint32_t info_len = sizeof(info);
  if (bpf_obj_get_info_by_fd(map_fd, &info, &info_len)) {
    *err = errno;
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(maps_mu);
  auto it = maps_by_id.find(info.id);
  if (it != maps_by_id.end() && it->second.len >= len) {
    it->second.refs++;
    return it->second.addr;
  }
  // Always map read-write: one mapping serves readers and writers alike.
  (void)prot;
  void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
  if (p == MAP_FAILED) {
    *err = errno;
    return nullptr;
  }
  if (it == maps_by_id.end()) maps_by_id[info.id] = {p, len, 1};
  else it->second = {p, len, 1};  // older, shorter mapping stays until its last release
  return p;
}

void MapRelease(void *addr) {
  std::lock_guard<std::mutex> lock(maps_mu);
  for (auto it = maps_by_id.begin(); it != maps_by_id.end(); ++it) {
    if (it->second.addr != addr) continue;
    if (--it->second.refs == 0) {
      munmap(addr, it->second.len);
      maps_by_id.erase(it);
    }
    return;
  }
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new InstanceData());
  libbpf_set_print(LibbpfPrint);
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass));
}

}  // namespace ho
