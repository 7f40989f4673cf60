#!/usr/bin/env bash
# Builds the container image (Dockerfile at the root) with a private Docker
# daemon, on a machine that reaches only the Debian and npm registries:
#
#   scripts/image.sh [build] [--save FILE]   build halfopen:VERSION (and :latest); --save writes `docker save` of it
#   scripts/image.sh run CMD…                build, then run CMD with DOCKER_HOST and HALFOPEN_IMAGE set
#                                             (the image tests run this way: npm run test:image)
#
# The daemon is Debian's docker.io, started here and stopped again by PID,
# configured to change nothing on the host's network: no bridge (no docker0),
# no iptables rules, no forwarding sysctl. Its socket, pidfile and exec-root
# live in a temporary directory; its data-root (images and the layer cache)
# in $HALFOPEN_DOCKER_ROOT, default /var/cache/halfopen/docker, so rebuilds
# are incremental. The debian:bookworm-slim base is made locally, only when
# the daemon does not have it, with debootstrap --variant=minbase (as the
# official image is), and the root file system is cached as a tarball in
# /var/cache/halfopen. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${HALFOPEN_CACHE:-/var/cache/halfopen}
DATA_ROOT=${HALFOPEN_DOCKER_ROOT:-$CACHE/docker}
BASE=debian:bookworm-slim
BASE_TAR=$CACHE/debian-bookworm-minbase-slim.tar
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
VERSION=$(node -p "require('./package.json').version")
IMAGE=halfopen:$VERSION
# Debian's client, never another docker on the PATH.
DOCKER_BIN=/usr/bin/docker

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the Docker daemon needs it"

cmd=build
save=
case "${1:-}" in
  build) shift; cmd=build ;;
  run) shift; cmd=run; [ $# -gt 0 ] || die "run: give a command, e.g. scripts/image.sh run node --test dist/test/image" ;;
  ""|--save) ;;
  *) die "unknown command \"$1\": expected build [--save FILE] or run CMD…" ;;
esac
if [ "$cmd" = build ] && [ "${1:-}" = --save ]; then
  [ -n "${2:-}" ] || die "--save needs a FILE"
  save=$2
fi

install_missing() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]}"
  # A package's service must not start: docker.io's own dockerd would create
  # docker0 and iptables rules. policy-rc.d 101 forbids starting services.
  local policy_made=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_made=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ -n "$policy_made" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -n "$policy_made" ] && rm -f /usr/sbin/policy-rc.d
  return 0
}

install_missing docker.io debootstrap
[ -x "$DOCKER_BIN" ] || die "$DOCKER_BIN missing after installing docker.io"

mkdir -p "$CACHE" "$DATA_ROOT"
# One daemon per data-root at a time.
exec 9>"$CACHE/docker.lock"
flock -w 600 9 || die "another scripts/image.sh holds $CACHE/docker.lock"

RUNDIR=$(mktemp -d /tmp/halfopen-docker.XXXXXX)
SOCK=$RUNDIR/docker.sock
DOCKERD_PID=

stop_dockerd() {
  local rc=$?
  set +e
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # Containers this daemon still runs (a test that died) go first.
    local left
    left=$("$DOCKER_BIN" -H "unix://$SOCK" ps -aq 2>/dev/null)
    [ -n "$left" ] && "$DOCKER_BIN" -H "unix://$SOCK" rm -f $left >/dev/null 2>&1
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      say "dockerd $DOCKERD_PID did not stop in 30 s: SIGKILL"
      kill -KILL "$DOCKERD_PID"
    fi
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  # Mounts the daemon left under its run directory (netns files, shm) go before the directory.
  findmnt -rn -o TARGET | grep "^$RUNDIR/" | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf --one-file-system "$RUNDIR"
  exit $rc
}
trap stop_dockerd EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Docker 20.10 (Debian 12's docker.io) refuses --cap-add BPF and PERFMON:
# its capability list predates them (Docker 23 accepts them, and its seccomp
# profile allows bpf() with CAP_BPF: moby/moby#43987).
# The runtime `halfopen-capbpf` is runc that adds those two, and nothing else,
# to a container started with HALFOPEN_ADD_CAPS=BPF,PERFMON (or one of them)
# in its environment, together with the bpf() system call, which Docker
# 20.10's seccomp profile ties to CAP_SYS_ADMIN:
#   docker run --runtime halfopen-capbpf -e HALFOPEN_ADD_CAPS=BPF,PERFMON --cap-drop ALL --cap-add NET_RAW --cap-add NET_ADMIN …
NODE_BIN=$(command -v node)
RUNC_BIN=$(command -v runc || echo /usr/sbin/runc)
cat >"$RUNDIR/runc-capbpf" <<WRAP
#!/bin/sh
prev=; bundle=
for a in "\$@"; do
  if [ "\$prev" = --bundle ] || [ "\$prev" = -b ]; then bundle=\$a; fi
  prev=\$a
done
if [ -n "\$bundle" ] && [ -f "\$bundle/config.json" ]; then
  $NODE_BIN -e '
    const fs = require("fs"), f = process.argv[1], c = JSON.parse(fs.readFileSync(f, "utf8"));
    const ask = (c.process.env || []).find((e) => e.startsWith("HALFOPEN_ADD_CAPS="));
    if (ask) {
      const add = ask.slice(18).split(",").filter(Boolean).map((n) => "CAP_" + n.trim().toUpperCase());
      if (add.some((n) => n !== "CAP_BPF" && n !== "CAP_PERFMON")) { console.error("HALFOPEN_ADD_CAPS: only BPF and PERFMON"); process.exit(1); }
      const caps = c.process.capabilities;
      for (const set of ["bounding", "effective", "permitted"]) for (const n of add) if (!caps[set].includes(n)) caps[set].push(n);
      const sc = c.linux && c.linux.seccomp;
      if (sc && add.includes("CAP_BPF")) sc.syscalls = [...(sc.syscalls || []), { names: ["bpf"], action: "SCMP_ACT_ALLOW" }];
      fs.writeFileSync(f, JSON.stringify(c));
    }' "\$bundle/config.json" || exit 1
fi
exec $RUNC_BIN "\$@"
WRAP
chmod 755 "$RUNDIR/runc-capbpf"

say "starting dockerd (no bridge, no iptables, no forwarding) on $SOCK"
dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --data-root "$DATA_ROOT" --exec-root "$RUNDIR/exec" --pidfile "$RUNDIR/docker.pid" -H "unix://$SOCK" \
  --add-runtime "halfopen-capbpf=$RUNDIR/runc-capbpf" \
  --log-level warn >"$RUNDIR/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$SOCK
for i in $(seq 1 120); do
  "$DOCKER_BIN" version >/dev/null 2>&1 && break
  kill -0 "$DOCKERD_PID" 2>/dev/null || { cat "$RUNDIR/dockerd.log" >&2; die "dockerd exited"; }
  [ "$i" = 120 ] && { cat "$RUNDIR/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
  sleep 0.5
done

if ! "$DOCKER_BIN" image inspect "$BASE" >/dev/null 2>&1; then
  if [ ! -s "$BASE_TAR" ]; then
    say "making $BASE with debootstrap --variant=minbase bookworm (cached as $BASE_TAR)"
    rootfs=$RUNDIR/rootfs
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$RUNDIR/debootstrap.log" 2>&1 \
      || { tail -20 "$RUNDIR/debootstrap.log" >&2; die "debootstrap failed"; }
    # As the official slim image (debuerreotype-slimify): dpkg leaves out
    # documentation, manuals and translations from now on, they go from the
    # base too (copyright files stay), and no package lists or caches.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/info/* \
      "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/* "$rootfs"/usr/share/locale/*
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf --one-file-system "$rootfs"
  fi
  say "importing $BASE from $BASE_TAR"
  "$DOCKER_BIN" import -c 'CMD ["bash"]' "$BASE_TAR" "$BASE" >/dev/null
fi

if [ -n "${HALFOPEN_IMAGE_REUSE:-}" ] && "$DOCKER_BIN" image inspect "$IMAGE" >/dev/null 2>&1; then
  # For iterating on tests only: the image may be older than the tree.
  say "HALFOPEN_IMAGE_REUSE: using the existing $IMAGE as it is"
else
say "building $IMAGE"
# The host's locally added CAs (a TLS-inspecting proxy's, say) reach the build stage only.
extra_ca=
for c in /usr/local/share/ca-certificates/*.crt; do [ -f "$c" ] && extra_ca+="$(cat "$c")"$'\n'; done
# The classic builder: Debian's docker.io has no buildx, and the Dockerfile needs nothing more.
# The build stage is tagged too (halfopen-build:cache) so that the layer cache
# survives the pruning of the untagged images earlier builds left.
for target in build ""; do
  DOCKER_BUILDKIT=0 "$DOCKER_BIN" build --network host --build-arg "EXTRA_CA_CERTS=$extra_ca" \
    ${target:+--target "$target"} $([ -n "$target" ] && echo "-t halfopen-build:cache" || echo "-t $IMAGE -t halfopen:latest") \
    . >"$RUNDIR/build.log" 2>&1 || { tail -40 "$RUNDIR/build.log" >&2; die "docker build failed"; }
done
"$DOCKER_BIN" image prune -f >/dev/null
fi
size=$("$DOCKER_BIN" image inspect -f '{{.Size}}' "$IMAGE")
say "$IMAGE: $(((size + 500000) / 1000000)) MB ($size bytes)"

if [ -n "$save" ]; then
  "$DOCKER_BIN" save -o "$save" "$IMAGE"
  say "saved $IMAGE to $save"
fi

if [ "$cmd" = run ]; then
  export HALFOPEN_IMAGE=$IMAGE HALFOPEN_DOCKER=$DOCKER_BIN
  "$@"
fi
