#!/usr/bin/env bash
# One-time (and idempotent) set-up on Debian/Ubuntu as root: system packages,
# npm packages, then the build. Every README command runs it first.
#
#   scripts/setup.sh          everything the tests, benchmarks and packaging use
#   scripts/setup.sh demo     only what building and the demo need (the build
#                             tools, iproute2, nftables, procps)
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: clang … g++. Fleets: iproute2, nftables, procps (sysctl). Bench: time. Real clients in tests and bench: haproxy, nftlb (serve's push, run only inside test namespaces),
# chromium (status page), prometheus (promtool), zmap, masscan, nmap; postfix (a private
# instance in a namespace for the check test), monitoring-plugins-basic (check_tcp, bench), dnsmasq-base (a DNS server
# in the fleet for serve's re-resolution test), libxml2-utils (xmllint, for the sweep output tests), mariadb-server
# (a private instance in the fleet for the /probe test), prometheus-blackbox-exporter (the /probe bench's peer),
# perl (farmguardian's loop shape with Time::HiRes, for the --via test and the farmguardian benches).
# Packaging (npm run package, test:package): dpkg-dev, lintian, debootstrap; man pages: man-db, groff-base.
BASE=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ python3 iproute2 nftables util-linux procps)
PKGS=("${BASE[@]}" time
  haproxy nftlb chromium prometheus zmap masscan nmap postfix monitoring-plugins-basic dnsmasq-base libxml2-utils
  mariadb-server prometheus-blackbox-exporter perl
  dpkg-dev lintian debootstrap man-db groff-base)
[ "${1:-}" = demo ] && PKGS=("${BASE[@]}")
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${missing[*]}: run as root (or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Postfix as a package only: no system MTA is configured or started.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

bash scripts/build.sh
