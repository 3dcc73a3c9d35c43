#!/usr/bin/env bash
# `make cross`: nodus for the boards built with cross-rs in a container
# (podman), for aarch64 musl (static, what `make aarch64` makes) and gnu
# (dynamic glibc, for images that prefer it).
#
#   cross/build.sh [TARGET...]     default: both aarch64 targets
#
# Output under target/cross/<target>/release/nodus, apart from `make
# aarch64`'s. The eBPF objects are taken prebuilt from NODUS_EBPF_DIR (`make
# ebpf`), so the container needs neither nightly Rust nor bpf-linker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
# Otherwise cross looks for a docker CLI first.
export CROSS_CONTAINER_ENGINE=podman
: "${NODUS_EBPF_DIR:?set NODUS_EBPF_DIR to the prebuilt eBPF objects (make ebpf)}"
export NODUS_EBPF_DIR

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl aarch64-unknown-linux-gnu)

"$here/image.sh"
cd "$root"
for t in "${targets[@]}"; do
  cross build --release -p nodus --target "$t" --target-dir target/cross
  bin=target/cross/$t/release/nodus
  echo "cross: $bin: $(file -b "$bin" | cut -d, -f1-2,4-5)"
done
