// halfopen native addon: libbpf program control, the batched SYN sender, and
// the single half-open check (raw sockets, no XDP), sd_notify for systemd, and
// the agent-check responder's connection thread.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ho::InitErrors(env, exports);
  ho::InitProgram(env, exports);
  ho::InitSender(env, exports);
  ho::InitCheck(env, exports);
  ho::InitNotify(env, exports);
  ho::InitAgent(env, exports);
  return exports;
}

NODE_API_MODULE(halfopen, Init)
