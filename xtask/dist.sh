#!/usr/bin/env bash
# The source release a firmware build downloads: the committed tree at HEAD
# plus the prebuilt eBPF objects (BPF bytecode is the same for every
# architecture), so Buildroot and Yocto need neither nightly Rust nor
# bpf-linker nor clang. appliance/build.rs still refuses an object whose
# layout fingerprint does not match the tree's shared types.
#
#   xtask/dist.sh EBPF_DIR OUT_DIR
#
# Writes OUT_DIR/nodus-<version>-src.tar.gz ("-src": unlike the archive a
# git host makes of a tag, it holds the objects) and prints its SHA-256.
# The tarball is reproducible: same commit and objects, same bytes (sorted names, owner
# 0, every mtime the commit's time, gzip without a timestamp).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ebpf=${1:?usage: $0 EBPF_DIR OUT_DIR}
out=${2:?usage: $0 EBPF_DIR OUT_DIR}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
name=nodus-$version
mapfile -t objects < <(find "$ebpf" -maxdepth 1 -type f ! -name SHA256SUMS | sort)
[ "${#objects[@]}" -gt 0 ] || { echo "dist: no eBPF objects in $ebpf (run make ebpf)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive --format=tar --prefix="$name/" HEAD | tar -x -C "$work"
mkdir -p "$work/$name/ebpf/prebuilt"
cp "${objects[@]}" "$work/$name/ebpf/prebuilt/"
(cd "$work/$name/ebpf/prebuilt" && sha256sum -- "${objects[@]##*/}" >SHA256SUMS)

mtime=$(git -C "$root" log -1 --format=%ct HEAD)
mkdir -p "$out"
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
  --mtime="@$mtime" --format=gnu -c "$name" | gzip -n -9 >"$out/$name-src.tar.gz"
sha256sum "$out/$name-src.tar.gz"
