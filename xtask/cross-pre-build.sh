#!/usr/bin/env bash
# Target-architecture libraries nodus's C parts link against (libbpf for the
# sched_ext scheduler needs libelf and zlib; musl's headers and libc.a for
# the static musl build, where libelf is compiled by xtask build-libelf),
# installed for $CROSS_DEB_ARCH.
#
# The one list for both ways of building aarch64: cross/Containerfile runs it
# into the image `make cross` builds in, and `make setup` runs it on the build
# host for `make aarch64`. The eBPF objects need nothing here: they
# are built once on the host and handed over through NODUS_EBPF_DIR.
set -euo pipefail
CROSS_TARGET_PKGS="libelf-dev zlib1g-dev musl-dev"

arch=${CROSS_DEB_ARCH:?set CROSS_DEB_ARCH, e.g. arm64}
missing=""
for p in $CROSS_TARGET_PKGS; do
  grep -q '^install ok installed$' <<<"$(dpkg-query -W -f='${Status}\n' "$p:$arch" 2>/dev/null)" || missing="$missing $p:$arch"
done
[ -n "$missing" ] || exit 0
grep -qx "$arch" <<<"$(dpkg --print-foreign-architectures)" || dpkg --add-architecture "$arch"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
