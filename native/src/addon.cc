// halfopen native addon: libbpf program control and the batched SYN sender.
#include "common.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ho::InitErrors(env, exports);
  ho::InitProgram(env, exports);
  ho::InitSender(env, exports);
  return exports;
}

NODE_API_MODULE(halfopen, Init)
