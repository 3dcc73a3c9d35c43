#!/usr/bin/env bash
# The Debian arm64 programs the board benchmarks give the guest (cyclictest
# from rt-tests, stress-ng), with every library they load, downloaded once
# into hil-tests/cache/bench-root (passed to hil-tests/run.sh --rootfs).
# Used by hil-tests/bench-sched.sh and hil-tests/bench-numa.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$here/cache/bench-root
log() { printf 'bench-root: %s\n' "$*" >&2; }

# cyclictest (rt-tests) and stress-ng with every library they load, from
# the Debian arm64 archive (multiarch, set up by make setup).
if [ ! -x "$cache/usr/bin/stress-ng" ] || [ ! -x "$cache/usr/bin/cyclictest" ]; then
  log "fetching cyclictest and stress-ng (arm64) into $cache"
  debs=$(mktemp -d)
  trap 'rm -rf "$debs"' EXIT
  pkgs=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances stress-ng:arm64 rt-tests:arm64 |
    awk '/^[a-z0-9][^ ]*:arm64$/ && !/python|perl|debconf|dpkg|init-system|t64:|openssl-provider/' | sort -u)
  # one at a time: some names are virtual (no package to download)
  for p in $pkgs; do (cd "$debs" && apt-get download "$p" >/dev/null 2>&1) || true; done
  rm -rf "$cache.new" && mkdir -p "$cache.new"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$cache.new"; done
  # only what the two programs need at run time
  rm -rf "$cache.new/usr/share" "$cache.new/usr/include" "$cache.new/etc" "$cache.new/var" \
    "$cache.new/bin" "$cache.new/sbin"
  find "$cache.new/usr/bin" "$cache.new/usr/sbin" -type f \
    ! -name stress-ng ! -name cyclictest -delete 2>/dev/null || true
  for bin in stress-ng cyclictest; do
    for so in $(readelf -d "$cache.new/usr/bin/$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
      [ -n "$(find "$cache.new" -name "$so" -print -quit)" ] ||
        { log "$bin needs $so, which no downloaded package has"; exit 1; }
    done
  done
  rm -rf "$cache" && mv "$cache.new" "$cache"
fi
