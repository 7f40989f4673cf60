// Shared declarations for the addon: error plumbing and the contract headers.
#pragma once
#include <napi.h>
#include <linux/types.h>
#include <string>

#include "errno_name.h"  // includes halfopen.h

#define HO_INLINE static inline
#include "ho_cookie.h"

namespace ho {

// Throws the HalfopenError class registered from TypeScript (setErrorClass),
// falling back to a plain Error before registration. errno 0 means "not an
// errno failure"; ErrnoError (core) gives the code of a failed call.
[[noreturn]] void Throw(Napi::Env env, enum ho_error code, const std::string &message, int err = 0,
                        const char *syscall = nullptr, const std::string &log = "");

void InitErrors(Napi::Env env, Napi::Object exports);
void InitProgram(Napi::Env env, Napi::Object exports);
void InitSender(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);
void InitAgent(Napi::Env env, Napi::Object exports);

// One mmap per BPF map per process, shared by the main thread and every sender
// thread: mapping the same map again would only duplicate page-table entries
// (and count the tables once more in RSS). Reference-counted; thread-safe.
void *MapAcquire(int map_fd, size_t len, int prot, int *err);
void MapRelease(void *addr);

// libbpf's log during the current call on this thread (verifier output on load failure).
void LibbpfLogBegin();
std::string LibbpfLogEnd();

}  // namespace ho
