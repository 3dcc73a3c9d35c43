# NUMA locality's benchmark on the QEMU board, run by hil-tests/bench-numa.sh
# (`make bench`), which gives the guest stress-ng (Debian arm64) through
# --rootfs and reads the @@BENCH lines.
#
# A memory worker (stress-ng --vm, 256 MiB, rewriting it without pause)
# first touches its memory on node 0 (CPUs 0-1), then is pinned to node 1
# (CPUs 2-3): t0. Until >= 90% of its pages are on node 1 (by
# /proc/PID/numa_maps, polled every 0.1 s), under:
#   kernel  automatic NUMA balancing (kernel.numa_balancing = 1 at t0);
#   damon   DAMON's migrate_hot scheme to node 1 on the worker (at t0), when
#           the kernel has it;
#   nodus   nodus running from before the worker started (its NUMA
#           component only, default settings: a look a second, 256 MiB/s;
#           numa_balancing = 0); the worker's affinity within node 1 makes
#           node 1 its home.
# CPU spent moving, from t0: the worker's system time (where balancing's
# hinting faults and migrations run) plus nodus's CPU time.
# BENCH_WORKER=quiet: the worker writes its memory once and then sleeps
# (stress-ng --vm-hang 0: a loaded model, a cache nobody reads now):
# automatic balancing migrates a page only when its owner touches it.
export PATH="$PATH:/usr/bin"
[ -f /nodus-bench/env ] && . /nodus-bench/env
rounds=${BENCH_ROUNDS:-3}
limit=${BENCH_LIMIT_S:-180}
worker=${BENCH_WORKER:-busy}
hang=""
[ "$worker" = quiet ] && hang="--vm-hang 0"
echo "worker: $worker"
bench() { echo "@@BENCH $*"; }
balancing() { echo "$1" >/proc/sys/kernel/numa_balancing; }

now_cs() { tr -d . </proc/uptime | cut -d' ' -f1; }
secs() { echo "$(($1 / 100)).$(printf '%02d' $(($1 % 100)))"; } # hundredths to seconds
cpu_ticks() { # utime+stime of pid (clock ticks)
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
sys_ticks() { awk '{ print $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
pages_on() { # pages of pid on node $2 (numa_maps: every page)
  awk -v k="N$2=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) n += substr($i, length(k) + 1) } END { print n + 0 }' "/proc/$1/numa_maps"
}
worker_of() { # the stress-ng-vm process using the most memory
  best="" most=0
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = stress-ng-vm ] || continue
    r=$(awk '{ print $24 }' "$d/stat" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$most" ] && { most=$r; best=${d#/proc/}; }
  done
  echo "$best"
}

damon=/sys/kernel/mm/damon/admin
damon_ok=no
DAMON_OPS=${DAMON_OPS:-paddr}
[ -d "$damon/kdamonds" ] && damon_ok=yes
echo "DAMON sysfs: $damon_ok"
# A DAMON module running its own monitor exclusively (Debian enables
# damon_stat at boot) makes every other start fail with EBUSY: stop it.
for m in /sys/module/damon_*/parameters/enabled; do
  [ -f "$m" ] || continue
  echo "$m: $(cat "$m")"
  [ "$(cat "$m")" = Y ] && echo N >"$m" && echo "  set N"
done
damon_on() { # migrate_hot to node 1, on the physical address space
  echo 1 >"$damon/kdamonds/nr_kdamonds"
  dk=$damon/kdamonds/0
  echo 1 >"$dk/contexts/nr_contexts"
  dc=$dk/contexts/0
  echo "$DAMON_OPS" >"$dc/operations"
  echo 1 >"$dc/targets/nr_targets"
  if [ "$DAMON_OPS" = vaddr ]; then
    echo "$1" >"$dc/targets/0/pid_target"
  else
    # paddr has no default region: node 0's memory (the first System RAM
    # block on this board).
    ram=$(grep "System RAM" /proc/iomem | head -n 1 | cut -d' ' -f1 | tr -d ' ')
    lo=$((0x${ram%-*}))
    hi=$((0x${ram#*-} + 1))
    echo 1 >"$dc/targets/0/regions/nr_regions"
    echo "$lo" >"$dc/targets/0/regions/0/start"
    echo "$hi" >"$dc/targets/0/regions/0/end"
  fi
  echo 1 >"$dc/schemes/nr_schemes"
  ds=$dc/schemes/0
  echo migrate_hot >"$ds/action" || return 1
  echo 1 >"$ds/target_nid"
  # any region accessed at all, at any age: the working set is hot
  echo 1 >"$ds/access_pattern/nr_accesses/min"
  echo 4294967295 >"$ds/access_pattern/nr_accesses/max"
  echo on >"$dk/state"
}
damon_off() {
  echo update_schemes_stats >"$damon/kdamonds/0/state" 2>/dev/null
  echo "DAMON state: $(cat "$damon/kdamonds/0/state")"
  for f in nr_tried sz_tried nr_applied sz_applied qt_exceeds; do
    echo "DAMON scheme $f: $(cat "$damon/kdamonds/0/contexts/0/schemes/0/stats/$f" 2>/dev/null)"
  done
  echo off >"$damon/kdamonds/0/state" 2>/dev/null
  # the next condition starts only once its monitor has stopped
  i=0
  while [ "$(cat "$damon/kdamonds/0/state")" != off ] && [ "$i" -lt 100 ]; do
    i=$((i + 1))
    sleep 0.1
  done
  echo 0 >"$damon/kdamonds/nr_kdamonds" || echo "DAMON: could not remove its monitor"
}

printf '[profile]\npath = "/nodus/profiles/qemu-virt-numa-memory.toml"\n[numa]\nmigrate = true\n' >/tmp/numa-bench.toml
for c in sched proccache fileserver proxy pagecache fleet; do
  printf '[%s]\nenabled = false\n' "$c" >>/tmp/numa-bench.toml
done

# run COND: one measurement.
run() {
  balancing 0
  [ "$1" = nodus ] && nodus_start --config /tmp/numa-bench.toml
  # shellcheck disable=SC2086 # $hang: no option or two words
  taskset -c 0-1 stress-ng --vm 1 --vm-bytes 256M --vm-keep $hang --vm-method write64 -t 0 >/dev/null 2>&1 &
  parent=$!
  w="" i=0
  while :; do
    [ -n "$w" ] || w=$(worker_of)
    [ -n "$w" ] && [ "$(pages_on "$w" 0)" -ge 60000 ] && break
    i=$((i + 1))
    [ "$i" -lt 1200 ] || { echo "the worker did not fill 256 MiB on node 0 within 120 s"; return 1; }
    sleep 0.1
  done
  taskset -p -c 2-3 "$w" >/dev/null
  t0=$(now_cs)
  s0=$(sys_ticks "$w")
  c0=0
  [ "$1" = nodus ] && c0=$(cpu_ticks "$NODUS_PID")
  case "$1" in
    kernel) balancing 1 ;;
    damon) damon_on "$w" || { echo "DAMON migrate_hot refused"; kill "$parent"; return 1; } ;;
  esac
  share=0
  while :; do
    n0=$(pages_on "$w" 0)
    n1=$(pages_on "$w" 1)
    share=$((n1 * 100 / (n0 + n1 + 1)))
    [ "$share" -ge 90 ] && break
    [ $(($(now_cs) - t0)) -lt $((limit * 100)) ] || break
    sleep 0.1
  done
  t1=$(now_cs)
  cpu=$(($(sys_ticks "$w") - s0))
  worker_sys=$cpu
  case "$1" in
    kernel) balancing 0 ;;
    damon) damon_off ;;
    nodus)
      cpu=$((cpu + $(cpu_ticks "$NODUS_PID") - c0))
      nodus status | grep -E "^      (pages_moved|pages_refused|pages_shared|look_cpu_us) " | tr -s ' ' | sed 's/^ /@@BENCH-STATUS /'
      nodus_stop
      ;;
  esac
  kill "$parent" 2>/dev/null
  wait "$parent" 2>/dev/null
  reached=1
  [ "$share" -ge 90 ] || reached=0
  bench "condition=$1 seconds=$(secs $((t1 - t0))) cpu_s=$(secs "$cpu") worker_sys_s=$(secs "$worker_sys") local_pct=$share reached=$reached"
}

conds="kernel nodus"
[ "$damon_ok" = yes ] && conds="kernel nodus damon"
conds=${BENCH_CONDS:-$conds}
for r in $(seq 1 "$rounds"); do
  for c in $conds; do
    echo "round $r: $c"
    run "$c" || fail "round $r, $c"
  done
done
