// Shared declarations for the addon: error plumbing and the contract headers.
#pragma once
#include <napi.h>
#include <linux/types.h>
#include <string>

#include "errno_name.h"

extern "C" {
#include "halfopen.h"
}

#define HO_INLINE static inline
#include "ho_cookie.h"

namespace ho {

// Throws the HalfopenError class registered from TypeScript (setErrorClass),
// falling back to a plain Error before registration. `code` is one of the
// E_* codes of src/errors.ts; errno 0 means "not an errno failure".
[[noreturn]] void Throw(Napi::Env env, const char *code, const std::string &message, int err = 0,
                        const char *syscall = nullptr, const std::string &log = "");


// Category code for an errno failure: EPERM/EACCES are privilege problems.
const char *CodeFor(int err, const char *fallback);

void InitErrors(Napi::Env env, Napi::Object exports);
void InitProgram(Napi::Env env, Napi::Object exports);
void InitSender(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);

// One mmap per BPF map per process, shared by the main thread and every sender
// thread: mapping the same map again would only duplicate page-table entries
// (and count the tables once more in RSS). Reference-counted; thread-safe.
void *MapAcquire(int map_fd, size_t len, int prot, int *err);
void MapRelease(void *addr);

// libbpf's log during the current call on this thread (verifier output on load failure).
void LibbpfLogBegin();
std::string LibbpfLogEnd();

}  // namespace ho
