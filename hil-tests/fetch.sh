#!/usr/bin/env bash
# Fetches what the QEMU board boots, into hil-tests/cache (gitignored):
# the Debian trixie-backports arm64 kernel (sched_ext, BTF, NUMA, MTE, SVE) and
# its modules, and busybox for the guest userland. Idempotent: a cache that
# already holds the resolved kernel version is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=$here/cache
mkdir -p "$cache/debs"

log() { printf 'hil-fetch: %s\n' "$*"; }

# A complete cache is used as is (its version is recorded in kernel-version);
# delete hil-tests/cache to move to a newer backports kernel.
if [ -f "$cache/kernel-version" ] && [ -f "$cache/vmlinuz" ] && [ -x "$cache/busybox" ] &&
   [ -d "$cache/modules/$(cat "$cache/kernel-version")" ]; then
  exit 0
fi

# Backports versions get replaced: resolve the newest one now and record it.
backports_version() {
  apt-cache madison linux-image-arm64:arm64 |
    awk -F'|' '!found && /trixie-backports/ {gsub(/ /,"",$2); print $2; found=1}'
}
meta_version=$(backports_version)
if [ -z "$meta_version" ]; then
  apt-get update -qq
  meta_version=$(backports_version)
fi
[ -n "$meta_version" ] || { log "no linux-image-arm64 in trixie-backports (run make setup)"; exit 1; }
# Readers consume all their input: one that quits early would fail the
# pipeline with SIGPIPE under pipefail.
image_pkg=$(apt-cache show "linux-image-arm64:arm64=$meta_version" | sed -n 's/^Depends:.*\(linux-image-[^ ,]*-arm64\) (.*/\1/p')
image_pkg=${image_pkg%%$'\n'*}
kver=${image_pkg#linux-image-}
[ -n "$kver" ] || { log "cannot resolve the kernel package behind linux-image-arm64 $meta_version"; exit 1; }

log "kernel $kver ($meta_version)"
cd "$cache/debs"
rm -f ./*.deb
apt-get download -qq -o APT::Sandbox::User=root "linux-binary-$kver:arm64=$meta_version" "linux-modules-$kver:arm64=$meta_version" busybox-static:arm64 >/dev/null
rm -rf "$cache/root" && mkdir -p "$cache/root"
for deb in ./*.deb; do dpkg-deb -x "$deb" "$cache/root"; done
mods=$cache/root/usr/lib/modules/$kver
mv "$mods/vmlinuz" "$cache/vmlinuz"
rm -rf "$cache/modules" && mkdir -p "$cache/modules"
mv "$mods" "$cache/modules/$kver"
cp "$cache/root/bin/busybox" "$cache/busybox"
rm -rf "$cache/root" "$cache/debs"
echo "$kver" > "$cache/kernel-version"
log "cached in $cache"
