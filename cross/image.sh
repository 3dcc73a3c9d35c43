#!/usr/bin/env bash
# The container image cross-rs builds nodus in (Cross.toml names it), made
# on this machine: no container registry is needed.
#
#   cross/image.sh            make localhost/nodus-cross:bookworm if missing or stale
#   BASE=docker.io/library/debian:bookworm cross/image.sh
#                             skip debootstrap and build on a registry's Debian
#
# Without BASE, a Debian bookworm base is made with debootstrap (minbase)
# from the machine's own Debian mirror and imported as
# localhost/nodus-debian:bookworm. The image is labelled with the hash of
# what it was made from (cross/Containerfile, xtask/cross-pre-build.sh, the
# base), so a change to either rebuilds it and an unchanged one is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

IMAGE=localhost/nodus-cross:bookworm
LOCAL_BASE=localhost/nodus-debian:bookworm
base=${BASE:-$LOCAL_BASE}
recipe=$(cat "$here/Containerfile" "$root/xtask/cross-pre-build.sh" <(echo "$base") | sha256sum | cut -c1-16)

if [ "$(podman image inspect --format '{{index .Labels "nodus.recipe"}}' "$IMAGE" 2>/dev/null)" = "$recipe" ]; then
  exit 0
fi

if [ "$base" = "$LOCAL_BASE" ] && ! podman image exists "$LOCAL_BASE"; then
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d /tmp/nodus-debootstrap.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  echo "cross: debootstrap bookworm (minbase) from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { cat "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  tar -C "$rootfs" -c . | podman import -q - "$LOCAL_BASE" >/dev/null
fi

echo "cross: building $IMAGE from $base"
podman build -q --build-arg BASE="$base" --label nodus.recipe="$recipe" \
  -f "$here/Containerfile" -t "$IMAGE" "$root" >/dev/null
# The image this replaced, if any, is left untagged: drop it.
podman image prune -f >/dev/null
