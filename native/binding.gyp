{
  "targets": [{
    "target_name": "halfopen",
    "sources": ["src/addon.cc", "src/errors.cc", "src/errno_name.cc", "src/program.cc", "src/sender.cc", "src/check.cc", "src/check_core.cc", "src/notify.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "../bpf"],
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "libraries": ["-lbpf", "-lelf", "-lz"]
  }]
}
