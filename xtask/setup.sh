#!/usr/bin/env bash
# Bring this machine to what nodus builds and tests with (see docs/toolchain.md).
# Idempotent: each step checks first and does nothing when its result is
# already present, so a second run takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The pins live in the rust-toolchain.toml files rustup reads; read them there.
channel() { sed -n 's/^channel = "\(.*\)"/\1/p' "$1"; }
HOST_TOOLCHAIN=$(channel "$ROOT/rust-toolchain.toml")
EBPF_TOOLCHAIN=$(channel "$ROOT/ebpf/programs/rust-toolchain.toml")
BPF_LINKER_VERSION=0.13.0
CROSS_VERSION=0.2.5
LLVM_MAJOR=22

# Debian packages from the machine's own suites. One list per purpose so that a
# package's reason to be here is obvious. (python3-seccomp: a test refuses
# cachestat(2) with a system-call filter, as an old systemd's unit does.)
PKGS_BUILD="build-essential pkg-config libelf-dev zlib1g-dev libzstd-dev
  llvm-${LLVM_MAJOR}-dev libpolly-${LLVM_MAJOR}-dev clang-${LLVM_MAJOR} bpftool
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross file"
PKGS_PEERS="mosquitto mosquitto-clients nginx-light haproxy openssl curl wrk hyperfine
  iproute2 rt-tests stress-ng procps vmtouch python3-seccomp dnsmasq-base linux-perf tmux"
# The board: its initramfs, and (e2fsprogs) the ext4 disk the page-cache scenario reads.
PKGS_BOARD="cpio busybox-static e2fsprogs"
# Packaging checks: strace and systemd-analyze for the service unit test;
# what BitBake's HOSTTOOLS and locale check ask for (the Yocto layer test);
# what Buildroot's check-package imports and runs, and its host checks.
PKGS_PACKAGING="strace systemd chrpath diffstat gawk locales python3-magic flake8 shellcheck
  rsync bc unzip python3-venv"
# make cross: podman (with runc: crun refuses this VM kind's cgroup layout),
# iptables for its networks, debootstrap for the local base image.
PKGS_CROSS="podman runc iptables debootstrap"
# Packages that come from the pinned-low extra suites, by suite.
PKGS_BACKPORTS="qemu-system-arm"

log() { printf 'setup: %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing_pkgs() {
  local p
  for p in "$@"; do
    # No `| grep -q` under pipefail: grep quitting early kills the writer with
    # SIGPIPE and the pipeline fails (exit 141) although the line was found.
    grep -q '^install ok installed$' <<<"$(dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null)" || printf '%s ' "$p"
  done
}

# The Debian mirror the machine's own sources use (not the security one).
debian_mirror() {
  local mirror
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  echo "${mirror:-http://deb.debian.org/debian}"
}

# The extra suites (bookworm-backports, trixie, trixie-backports) on the same
# mirror as the machine's own sources, pinned at priority 100 so nothing is
# upgraded from them unless asked for by suite.
extra_suites() {
  local src=/etc/apt/sources.list.d/nodus-extra.sources pin=/etc/apt/preferences.d/nodus-extra
  [ -f "$src" ] && [ -f "$pin" ] && return 0
  local mirror
  mirror=$(debian_mirror)
  log "adding pinned-low suites from $mirror"
  as_root tee "$src" >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  as_root tee "$pin" >/dev/null <<PIN
Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100
PIN
  grep -qx arm64 <<<"$(dpkg --print-foreign-architectures)" || as_root dpkg --add-architecture arm64
  APT_UPDATED=
}

APT_UPDATED=no
apt_update_once() {
  if [ "$APT_UPDATED" != yes ]; then
    as_root apt-get update -qq
    APT_UPDATED=yes
  fi
}

debian_packages() {
  extra_suites
  local miss back
  # shellcheck disable=SC2086
  miss=$(missing_pkgs $PKGS_BUILD $PKGS_PEERS $PKGS_BOARD $PKGS_PACKAGING $PKGS_CROSS)
  # shellcheck disable=SC2086
  back=$(missing_pkgs $PKGS_BACKPORTS)
  export DEBIAN_FRONTEND=noninteractive
  if [ -n "$miss" ]; then
    apt_update_once
    log "installing $miss"
    # shellcheck disable=SC2086
    as_root apt-get install -y -qq --no-install-recommends $miss >/dev/null
    # Debian starts these on install; tests run their own instances.
    for svc in mosquitto nginx haproxy; do
      as_root systemctl disable --now "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
    done
  fi
  if [ -n "$back" ]; then
    apt_update_once
    log "installing $back from bookworm-backports"
    # shellcheck disable=SC2086
    as_root apt-get install -y -qq --no-install-recommends -t bookworm-backports $back >/dev/null
  fi
  # BitBake refuses to run without this locale.
  if ! grep -qi '^en_US.utf-\?8$' <<<"$(locale -a 2>/dev/null)"; then
    log "generating the en_US.UTF-8 locale (BitBake needs it)"
    as_root localedef -i en_US -f UTF-8 en_US.UTF-8
  fi
  # Target libraries for aarch64 builds: the same script cross-rs runs (Cross.toml).
  CROSS_DEB_ARCH=arm64 as_root "$ROOT/xtask/cross-pre-build.sh"
}

rust_toolchains() {
  command -v rustup >/dev/null || { log "rustup is required (https://rustup.rs)"; exit 1; }
  local have
  have=$(rustup toolchain list)
  if ! grep -q "^${HOST_TOOLCHAIN}-" <<<"$have"; then
    log "installing Rust $HOST_TOOLCHAIN"
    rustup toolchain install "$HOST_TOOLCHAIN" --profile minimal -c rustfmt -c clippy
  fi
  local comps installed
  comps=$(rustup component list --toolchain "$HOST_TOOLCHAIN" --installed)
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$comps" || rustup component add "$c" --toolchain "$HOST_TOOLCHAIN"
  done
  installed=$(rustup target list --toolchain "$HOST_TOOLCHAIN" --installed)
  for t in aarch64-unknown-linux-musl aarch64-unknown-linux-gnu; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t" --toolchain "$HOST_TOOLCHAIN"
  done
  if ! grep -q "^${EBPF_TOOLCHAIN}-" <<<"$have"; then
    log "installing $EBPF_TOOLCHAIN for eBPF"
    rustup toolchain install "$EBPF_TOOLCHAIN" --profile minimal -c rust-src -c clippy
  fi
  comps=$(rustup component list --toolchain "$EBPF_TOOLCHAIN" --installed)
  for c in rust-src clippy; do
    grep -q "^$c" <<<"$comps" || rustup component add "$c" --toolchain "$EBPF_TOOLCHAIN"
  done
}

bpf_linker() {
  if command -v bpf-linker >/dev/null && grep -q "$BPF_LINKER_VERSION" <<<"$(bpf-linker --version 2>/dev/null)"; then
    return 0
  fi
  # A build tool, not firmware: built with the eBPF nightly, which is
  # installed anyway, rather than the host pin (the project's minimum Rust).
  log "building bpf-linker $BPF_LINKER_VERSION against Debian's LLVM $LLVM_MAJOR"
  LLVM_PREFIX=/usr/lib/llvm-$LLVM_MAJOR PATH=/usr/lib/llvm-$LLVM_MAJOR/bin:$PATH \
    cargo "+$EBPF_TOOLCHAIN" install bpf-linker --version "$BPF_LINKER_VERSION" --locked \
    --no-default-features --features "llvm-$LLVM_MAJOR"
}

# cross-rs, for `make cross` (cross/build.sh). A build tool: built with the
# host pin, which it supports.
cross_rs() {
  grep -q "^cross $CROSS_VERSION" <<<"$(cross --version 2>/dev/null)" && return 0
  log "installing cross $CROSS_VERSION"
  cargo "+$HOST_TOOLCHAIN" install cross --version "$CROSS_VERSION" --locked
}

# Buildroot wants GNU tar >= 1.35 (Debian 12 has 1.34) and would build its
# own host-tar, whose source hosts this machine kind cannot reach. Built
# here from Debian's source of 1.35 (from the machine's mirror, checksum
# pinned) into $HOST_TAR_DIR; the packaging test passes it as TAR=.
HOST_TAR_DIR=/opt/nodus-tools/tar-1.35
HOST_TAR_SRC=pool/main/t/tar/tar_1.35+dfsg.orig.tar.xz
HOST_TAR_SHA256=9ae57e981c1e73c0eebc2b26c9b0c4497fe310ef1d516ea430efb5470b71f7a8
host_tar() {
  [ -x "$HOST_TAR_DIR/bin/tar" ] && return 0
  local mirror work
  mirror=$(debian_mirror)
  log "building GNU tar 1.35 for Buildroot into $HOST_TAR_DIR"
  work=$(mktemp -d)
  curl -sSfL -o "$work/tar.tar.xz" "$mirror/$HOST_TAR_SRC"
  echo "$HOST_TAR_SHA256  $work/tar.tar.xz" | sha256sum --quiet -c
  tar -xf "$work/tar.tar.xz" -C "$work"
  (cd "$work"/tar-1.35* && FORCE_UNSAFE_CONFIGURE=1 ./configure -q --prefix="$HOST_TAR_DIR" >/dev/null &&
    make -s -j"$(nproc)" >/dev/null 2>&1 && as_root make -s install >/dev/null)
  rm -rf "$work"
}

# The Yocto recipe linter the packaging test runs, pinned, in its own venv.
OELINT_DIR=/opt/nodus-tools/oelint
OELINT_VERSION=9.11.2
oelint() {
  grep -qx "$OELINT_VERSION" <<<"$("$OELINT_DIR/bin/oelint-adv" --version 2>/dev/null | sed -n 's/^[^0-9]*\([0-9.]*\).*/\1/p')" && return 0
  log "installing oelint-adv $OELINT_VERSION into $OELINT_DIR"
  as_root /usr/bin/python3 -m venv "$OELINT_DIR"
  as_root "$OELINT_DIR/bin/pip" install -q "oelint-adv==$OELINT_VERSION"
}

# libCacheSim's Python bindings: the reference the cache simulator's miss
# ratios are checked against (appliance/tests/pagecache.rs), pinned, in
# their own venv.
LIBCACHESIM_DIR=/opt/nodus-tools/libcachesim
LIBCACHESIM_VERSION=0.3.5
libcachesim() {
  grep -qx "$LIBCACHESIM_VERSION" <<<"$("$LIBCACHESIM_DIR/bin/python" -c 'import libcachesim; print(libcachesim.__version__)' 2>/dev/null)" && return 0
  log "installing libcachesim $LIBCACHESIM_VERSION into $LIBCACHESIM_DIR"
  as_root /usr/bin/python3 -m venv "$LIBCACHESIM_DIR"
  as_root "$LIBCACHESIM_DIR/bin/pip" install -q "libcachesim==$LIBCACHESIM_VERSION"
}

kernel_mounts() {
  [ "$(id -u)" -eq 0 ] || return 0
  mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

# vmlinux.h for the sched_ext scheduler's C (cargo xtask build-ebpf): the
# kernel types of the board kernel (trixie-backports, the one hil-tests
# boots), from Debian's linux-bpf-dev:arm64. CO-RE relocates them on any
# other kernel. Not committed: 4 MB generated by the kernel build.
BPF_INCLUDE_DIR=$ROOT/target/bpf-include
bpf_headers() {
  [ -s "$BPF_INCLUDE_DIR/vmlinux.h" ] && return 0
  local version work
  version=$(apt-cache madison linux-bpf-dev:arm64 |
    awk -F'|' '!found && /trixie-backports/ {gsub(/ /,"",$2); print $2; found=1}')
  [ -n "$version" ] || { apt_update_once; version=$(apt-cache madison linux-bpf-dev:arm64 |
    awk -F'|' '!found && /trixie-backports/ {gsub(/ /,"",$2); print $2; found=1}'); }
  [ -n "$version" ] || { log "no linux-bpf-dev:arm64 in trixie-backports"; exit 1; }
  log "vmlinux.h from linux-bpf-dev:arm64 $version"
  work=$(mktemp -d)
  (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root "linux-bpf-dev:arm64=$version" >/dev/null &&
    dpkg-deb -x ./*.deb root)
  mkdir -p "$BPF_INCLUDE_DIR"
  cp "$work/root/usr/include/aarch64-linux-gnu/linux/bpf/vmlinux.h" "$BPF_INCLUDE_DIR/vmlinux.h"
  echo "$version" > "$BPF_INCLUDE_DIR/linux-bpf-dev-version"
  rm -rf "$work"
}

# The QEMU board's kernel, modules and busybox (cached in hil-tests/cache).
board() {
  "$ROOT/hil-tests/fetch.sh"
}

case "${1:-all}" in
  all) debian_packages; bpf_headers; rust_toolchains; bpf_linker; cross_rs; host_tar; oelint; libcachesim; kernel_mounts; board ;;
  board) board ;;
  packages) debian_packages; bpf_headers; host_tar; oelint; libcachesim ;;
  rust) rust_toolchains; bpf_linker; cross_rs ;;
  mounts) kernel_mounts ;;
  *) echo "usage: $0 [all|packages|rust|mounts|board]" >&2; exit 2 ;;
esac
