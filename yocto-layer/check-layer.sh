#!/usr/bin/env bash
# OE-Core's yocto-check-layer on this layer, with OpenEmbedded-Core wrynose
# and BitBake from NODUS_TREES (the release tarballs), as the Yocto Project
# Compatible programme runs it. About 18 minutes on 2 cores (it parses and
# signs every recipe of OE-Core twice), so it is `make test-packaging`, not
# part of `make test` (docs/packaging.md).
#
#   yocto-layer/check-layer.sh [WORKDIR]    default WORKDIR: target/yocto-check-layer
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
trees=${NODUS_TREES:-$root/../shared/trees}
work=${1:-$root/target/yocto-check-layer}
oe=openembedded-core-wrynose
bb=bitbake-yocto-6.0.2

mkdir -p "$work"
for t in "$oe-ef022bf82d" "$bb"; do
  [ -d "$work/${t%%-ef022bf82d}" ] || tar xf "$trees/$t.tar.xz" -C "$work"
done
# A fresh build directory each time: yocto-check-layer adds the layer to it.
rm -rf "$work/build"
mkdir -p "$work/build/conf" "$root/target/yocto-downloads"
cat >"$work/build/conf/bblayers.conf" <<CONF
BBPATH = "\${TOPDIR}"
BBFILES ?= ""
BBLAYERS = "$work/$oe/meta"
CONF
# As root, BitBake's sanity class must be told off; the uninative tarball's
# server is not reachable from the build machines.
cat >"$work/build/conf/local.conf" <<CONF
MACHINE = "qemuarm64"
INHERIT:remove = "sanity uninative"
CONF_VERSION = "2"
DL_DIR = "$root/target/yocto-downloads"
CONF
cd "$work/build"
export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 BUILDDIR="$work/build" BBPATH="$work/build"
export PATH="$work/$bb/bin:$work/$oe/scripts:$PATH"
yocto-check-layer --no-auto-dependency "$here"
