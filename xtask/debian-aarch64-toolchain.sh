#!/usr/bin/env bash
# A Buildroot external toolchain made from Debian's aarch64 cross compiler
# (gcc-aarch64-linux-gnu, glibc), for building nodus's Buildroot package on a
# Debian machine that cannot download one (the packaging test does).
#
#   xtask/debian-aarch64-toolchain.sh DIR
#
# Buildroot wants a relocatable toolchain with its own sysroot laid out as
# on a target (usr/include, lib, usr/lib). Debian's is built with
# --with-sysroot=/ and keeps its libraries in /usr/aarch64-linux-gnu/{lib,include}.
# DIR gets a copy of those in that layout and, in DIR/bin, the cross tools:
# gcc and cpp through small wrappers that name the copy as their sysroot
# (unless the caller, Buildroot's toolchain wrapper, names one), the rest as
# links. Buildroot still refuses any compiler configured --with-sysroot=/;
# the test skips that one check in its unpacked tree (docs/packaging.md).
set -euo pipefail
dir=${1:?usage: $0 DIR}
triple=aarch64-linux-gnu
src=/usr/$triple
[ -d "$src/lib" ] || { echo "$0: $src missing: apt-get install gcc-$triple libc6-dev-arm64-cross" >&2; exit 1; }

rm -rf "$dir"
mkdir -p "$dir/bin" "$dir/sysroot/usr"
cp -a "$src/lib" "$dir/sysroot/lib"
cp -a "$src/include" "$dir/sysroot/usr/include"
ln -s ../lib "$dir/sysroot/usr/lib"
# Linker scripts (libc.so) name their libraries by Debian's absolute path;
# inside a sysroot they must be sysroot-relative.
for f in "$dir"/sysroot/lib/*.so; do
  if grep -q "GNU ld script" "$f" 2>/dev/null; then sed -i "s|$src/lib/|/lib/|g" "$f"; fi
done

for tool in /usr/bin/"$triple"-*; do
  name=$(basename "$tool")
  case "$name" in
    *-gcc | *-gcc-[0-9]* | *-cpp | *-cpp-[0-9]*)
      # -B makes `gcc -print-file-name=libc.a`, which Buildroot reads to
      # find the sysroot, answer with the copy.
      cat >"$dir/bin/$name" <<WRAP
#!/bin/sh
# $name with the sysroot in $dir, unless the caller names one.
case " \$* " in
  *" --sysroot="* | *" --sysroot "*) exec $tool "\$@" ;;
  *) exec $tool -B$dir/sysroot/lib/ --sysroot=$dir/sysroot "\$@" ;;
esac
WRAP
      chmod +x "$dir/bin/$name" ;;
    *) ln -s "$tool" "$dir/bin/$name" ;;
  esac
done
