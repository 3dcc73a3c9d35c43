#!/bin/busybox sh
# /init of the QEMU board: bring up a minimal userland, run every scenario in
# /nodus/scenarios in order, report each on the console in a line the host
# harness parses ("@@HIL {json}"), then power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# tracefs and bpffs are left unmounted on purpose: nodus mounts what it needs.

for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" || echo "@@HIL {\"event\":\"module-failed\",\"module\":\"$m\"}"
done

ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# Like any systemd or Buildroot image, the board has a machine id (the
# fleet link's default device id).
tr -d '-' </proc/sys/kernel/random/uuid >/etc/machine-id

for arg in $(cat /proc/cmdline); do
  case "$arg" in
    nodus.hostport=*) export HIL_HOSTPORT="${arg#*=}" ;;
    nodus.token=*) export HIL_TOKEN="${arg#*=}" ;;
    nodus.brokerport=*) export HIL_BROKERPORT="${arg#*=}" ;;
    nodus.timeout=*) export HIL_SCENARIO_TIMEOUT="${arg#*=}" ;;
  esac
done

echo "@@HIL {\"event\":\"booted\",\"kernel\":\"$(uname -r)\",\"uptime\":\"$(cut -d' ' -f1 /proc/uptime)\"}"
for script in /nodus/scenarios/*.sh; do
  name=$(basename "$script" .sh)
  start=$(cut -d. -f1 /proc/uptime)
  timeout "${HIL_SCENARIO_TIMEOUT:-240}" sh -c ". /nodus/lib.sh; . $script" >"/tmp/$name.log" 2>&1
  rc=$?
  sed "s/^/[$name] /" "/tmp/$name.log"
  secs=$(( $(cut -d. -f1 /proc/uptime) - start ))
  case $rc in
    0) result=pass ;;
    124|143) result=timeout ;;
    *) result=fail ;;
  esac
  echo "@@HIL {\"scenario\":\"$name\",\"result\":\"$result\",\"exit\":$rc,\"seconds\":$secs}"
done
echo "@@HIL {\"event\":\"done\"}"
sync
poweroff -f
