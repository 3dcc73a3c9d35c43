#!/usr/bin/env bash
# Boots the aarch64 nodus on the QEMU "board" (ARMv9: MTE, SVE2; 4 CPUs in
# 2 NUMA nodes; Debian's sched_ext kernel) and runs the scenarios.
#
#   hil-tests/run.sh [--binary PATH] [--scenarios DIR] [--only NAMES]
#                    [--rootfs DIR] [--timeout SECONDS] [--scenario-timeout SECONDS]
#                    [--out DIR]
#
# --only runs the named scenarios (space-separated, e.g. "10-probe 70-fileserver");
# --rootfs copies a directory tree into the guest first (the shared libraries
# a dynamically linked build needs, e.g. a Buildroot target directory's lib/);
# --scenario-timeout is how long one scenario may run (240 s; benches take longer).
#
# Exit 0 only if the guest booted, every scenario passed, and the console shows
# no kernel panic, BUG:, WARNING: or BPF verifier failure. On failure the whole
# guest console is printed. Results: one JSON line per scenario in
# <out>/results.jsonl, the console in <out>/console.log (default out:
# target/hil). A scenario is one file in hil-tests/scenarios.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

binary=$root/target/aarch64-unknown-linux-musl/release/nodus
scenarios=$here/scenarios
only=""
rootfs=""
timeout=540
scenario_timeout=240
out=$root/target/hil
icount=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --rootfs) rootfs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --scenario-timeout) scenario_timeout=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    # Precise instruction counting: QEMU's emulated PMU then counts
    # retired instructions and cycles (without it the TCG CPU lists
    # armv8_pmuv3 with neither), at the cost of virtual time following
    # the instruction count; for the hardware-counter scenarios only.
    --pmu) icount=(-icount shift=0); shift ;;
    *) echo "usage: $0 [--binary PATH] [--scenarios DIR] [--only NAMES] [--rootfs DIR] [--timeout SECONDS] [--scenario-timeout SECONDS] [--out DIR] [--pmu]" >&2; exit 2 ;;
  esac
done
[ -x "$binary" ] || { echo "hil: $binary missing: run make aarch64" >&2; exit 2; }
grep -q "ARM aarch64" <<<"$(file -b "$binary")" || { echo "hil: $binary is not an aarch64 binary" >&2; exit 2; }

"$here/fetch.sh"
cache=$here/cache
kver=$(cat "$cache/kernel-version")

mkdir -p "$out"
work=$(mktemp -d /tmp/nodus-hil.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- initramfs --------------------------------------------------------------
ird=$work/initramfs
mkdir -p "$ird"
[ -z "$rootfs" ] || cp -a "$rootfs"/. "$ird"/
mkdir -p "$ird"/{bin,sbin,etc,proc,sys,dev,tmp,run,lib/modules,nodus/scenarios}
cp "$cache/busybox" "$ird/bin/busybox"
cp "$binary" "$ird/bin/nodus"
cp "$here/init.sh" "$ird/init"
cp "$here/lib.sh" "$ird/nodus/lib.sh"
mkdir -p "$ird/nodus/profiles"
cp "$here/profiles/"*.toml "$ird/nodus/profiles/"
# The Yocto package's ptest, run on the board by scenario 95-ptest.
cp "$root/yocto-layer/recipes-nodus/nodus/files/run-ptest" "$ird/nodus/run-ptest"
if [ -n "$only" ]; then
  for name in $only; do
    [ -f "$scenarios/$name.sh" ] || { echo "hil: no scenario $name in $scenarios" >&2; exit 2; }
    cp "$scenarios/$name.sh" "$ird/nodus/scenarios/"
  done
else
  cp "$scenarios"/*.sh "$ird/nodus/scenarios/"
fi
chmod +x "$ird/init" "$ird/bin/busybox" "$ird/bin/nodus"

# Modules, decompressed (busybox insmod does not read .ko.xz), dependencies first.
declare -A loaded=()
order=()
add_module() {
  local name=$1 file deps dep
  [ -n "${loaded[$name]:-}" ] && return 0
  loaded[$name]=1
  file=$(find "$cache/modules/$kver/kernel" -name "$name.ko.xz" -print -quit)
  [ -n "$file" ] || { echo "hil: module $name not in $kver" >&2; exit 1; }
  deps=$(xz -dc "$file" | tr '\0' '\n' | sed -n 's/^depends=//p')
  for dep in ${deps//,/ }; do add_module "$dep"; done
  xz -dc "$file" >"$ird/lib/modules/$name.ko"
  order+=("$name")
}
for m in $(grep -v '^#' "$here/modules.txt"); do add_module "$m"; done
printf '%s\n' "${order[@]}" >"$ird/lib/modules/load-order"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# --- host side: a directory the guest reads over HTTP (guest-to-host) --------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$work/host"
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
echo "$token" >"$work/host/token"
hostport=$(free_port)
python3 -m http.server "$hostport" --bind 127.0.0.1 --directory "$work/host" >/dev/null 2>&1 &
pids+=($!)
fwdport=$(free_port)

# --- host side: the fleet's broker, and a config document signed for the board
brokerport=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$brokerport" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
pids+=($!)
openssl genpkey -algorithm ed25519 -out "$work/fleet-key.pem" 2>/dev/null
# fleet.trusted_keys takes the raw 32-byte key, base64: the tail of the DER SPKI.
openssl pkey -in "$work/fleet-key.pem" -pubout -outform DER | tail -c 32 | base64 >"$work/host/fleet-pubkey"
printf 'version = 1\ntarget = "device:hil-board"\n\n[proccache]\ncapacity = 12345\n' >"$work/fleet-doc"
openssl pkeyutl -sign -rawin -inkey "$work/fleet-key.pem" -in "$work/fleet-doc" -out "$work/fleet-doc.sig"
{ cat "$work/fleet-doc"; printf '# nodus-signature: ed25519 %s\n' "$(base64 -w0 "$work/fleet-doc.sig")"; } >"$work/fleet-doc.signed"
for _ in $(seq 50); do
  mosquitto_pub -h 127.0.0.1 -p "$brokerport" -q 1 -r -t nodus/v1/hil-board/config/desired \
    -f "$work/fleet-doc.signed" 2>/dev/null && break
  sleep 0.1
done

# --- the proxy's ClientHellos: the guest has no openssl, so its scenario
# sends hellos captured here from openssl s_client (one record each).
/usr/bin/python3 - "$work/host" <<'PY'
import socket, subprocess, sys
for name in ("demo.localhost", "sockhash.test"):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn, _ = listener.accept()
    conn.settimeout(10)
    record = b""
    while len(record) < 5 or len(record) < 5 + int.from_bytes(record[3:5], "big"):
        chunk = conn.recv(65536)
        if not chunk:
            sys.exit(f"openssl closed before its hello for {name} was whole")
        record += chunk
    with open(f"{sys.argv[1]}/hello-{name}", "wb") as f:
        f.write(record[:5 + int.from_bytes(record[3:5], "big")])
    client.kill()
    client.wait()
PY

# --- a disk: an empty ext4 file system (/dev/vda on the board), because the
# page cache of tmpfs files is not a cache (nothing to miss or drop).
mkfs.ext4 -q -F "$work/disk.img" 64M

# --- boot ---------------------------------------------------------------------
console=$out/console.log
results=$out/results.jsonl
: >"$console"
: >"$results"
echo "hil: booting $kver with $(basename "$binary") ($(stat -c %s "$binary") bytes), scenarios from $scenarios"
qemu=(qemu-system-aarch64 -M virt,mte=on -cpu max -smp 4,sockets=2,cores=2 -m 2G
  -object memory-backend-ram,id=m0,size=1G -object memory-backend-ram,id=m1,size=1G
  -numa node,nodeid=0,cpus=0-1,memdev=m0 -numa node,nodeid=1,cpus=2-3,memdev=m1
  -kernel "$cache/vmlinuz" -initrd "$work/initrd.gz"
  -append "console=ttyAMA0 quiet panic=-1 nodus.hostport=$hostport nodus.token=$token nodus.brokerport=$brokerport nodus.timeout=$scenario_timeout"
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$fwdport-:8080" -device virtio-net-pci,netdev=n0,romfile=
  -drive "file=$work/disk.img,if=none,format=raw,id=d0" -device virtio-blk-pci,drive=d0,romfile=
  -display none -serial stdio -monitor none -no-reboot "${icount[@]}")

problems=()
done_seen=no
started=$(date +%s)
while IFS= read -r line; do
  line=${line%$'\r'}
  printf '%s\n' "$line" >>"$console"
  case "$line" in
    *"@@HIL "*)
      json=${line#*@@HIL }
      case "$json" in
        *'"scenario"'*)
          echo "$json" >>"$results"
          echo "hil: $json"
          case "$json" in *'"result":"pass"'*) ;; *) problems+=("scenario failed: $json") ;; esac ;;
        *'"host_check":"'*)
          name=${json#*\"host_check\":\"}; name=${name%%\"*}
          curl -s --max-time 10 "http://127.0.0.1:$fwdport/" >"$work/host/check-$name.tmp" || true
          mv "$work/host/check-$name.tmp" "$work/host/check-$name" ;;
        *'"event":"done"'*) done_seen=yes ;;
        *'"event":"module-failed"'*) problems+=("$json") ;;
      esac ;;
    *"Kernel panic"*|*"BUG: "*|*"WARNING: "*|*"Oops"*) problems+=("kernel: $line") ;;
    *"Verifier output: "?*|*"verifier rejected"*|*"invalid BPF program"*) problems+=("verifier: $line") ;;
  esac
done < <(timeout "$timeout" "${qemu[@]}" </dev/null 2>&1 || echo "@@HIL-EXIT $?")
elapsed=$(( $(date +%s) - started ))

[ "$done_seen" = yes ] || problems+=("the guest did not finish within ${timeout}s (or crashed): no done event")
[ -s "$results" ] || problems+=("no scenario reported a result")
if [ ${#problems[@]} -gt 0 ]; then
  echo "hil: FAILED after ${elapsed}s"
  printf 'hil:   %s\n' "${problems[@]}"
  echo "hil: ---------------- guest console ----------------"
  cat "$console"
  echo "hil: -------------------------------------------------"
  exit 1
fi
echo "hil: all $(wc -l <"$results") scenarios passed in ${elapsed}s (console: $console)"
