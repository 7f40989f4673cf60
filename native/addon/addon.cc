// halfopen native addon: libbpf program control, the batched SYN sender, and
// sd_notify for systemd, and the agent-check responder's connection thread.
// The single check is the plugin's (native/plugin).
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ho::InitErrors(env, exports);
  ho::InitProgram(env, exports);
  ho::InitSender(env, exports);
  ho::InitNotify(env, exports);
  ho::InitAgent(env, exports);
  return exports;
}

NODE_API_MODULE(halfopen, Init)
