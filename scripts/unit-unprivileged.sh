#!/usr/bin/env bash
# The way in without root: a fresh clone of HEAD, `npm ci` and `npm run
# test:unit` as an unprivileged user, with no native build, no XDP object and
# no apt. CI runs it (as root, to make the user and the clone); the clone and
# the user are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "unit-unprivileged: run as root (it creates a user)" >&2; exit 1; }
USER_NAME=halfopen-unit
WORK=$(mktemp -d /tmp/halfopen-unit.XXXXXX)
made_user=0
cleanup() {
  rm -rf "$WORK"
  if [ "$made_user" = 1 ]; then userdel -r "$USER_NAME" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
if ! id "$USER_NAME" >/dev/null 2>&1; then useradd -m -s /bin/bash "$USER_NAME"; made_user=1; fi
git clone -q "$PWD" "$WORK/halfopen"
chown -R "$USER_NAME": "$WORK"
# Nothing built: the unit tier must not need the addon, the plugin or the XDP object.
for f in native/addon/build native/plugin/build bpf/halfopen.bpf.o dist; do
  [ ! -e "$WORK/halfopen/$f" ] || { echo "unit-unprivileged: $f exists in a fresh clone" >&2; exit 1; }
done
su -s /bin/bash "$USER_NAME" -c "cd '$WORK/halfopen' && npm ci --no-audit --no-fund --loglevel=error && npm run test:unit"
