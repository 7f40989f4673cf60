{
  "targets": [{
    "target_name": "halfopen",
    "sources": ["addon.cc", "errors.cc", "program.cc", "sender.cc", "notify.cc", "agent.cc", "../core/errno_name.cc", "../core/json.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../core", "../../bpf"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "libraries": ["-lbpf", "-lelf", "-lz"]
  }]
}
