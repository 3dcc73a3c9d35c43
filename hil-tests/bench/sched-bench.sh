# The layered scheduler's benchmark on the QEMU board, run by
# hil-tests/bench-sched.sh (`make bench`), which gives the guest cyclictest
# and stress-ng (Debian arm64) through --rootfs and reads the @@BENCH lines.
#
# A critical task (cyclictest, SCHED_OTHER, waking every 2 ms) while CPU
# hogs (stress-ng --cpu 4) run, and the hogs alone, under three
# schedulers, in rounds in one boot:
#   default  the kernel's own (EEVDF), nothing pinned;
#   cpuset   a static partition: cyclictest on CPUs 2-3, hogs on 0-1;
#   nodus    the layered scheduler: critical layer (comm "cyclictest") owns
#            2-3, grouped, preempting; background (everything else) owns
#            0-1, grouped; each lends its idle CPUs;
#   nodus-confined  the same with the critical layer confined (a partition).
# nodus runs in every condition with the same profile (the board's, with
# those layers: hil-tests/profiles/qemu-virt-numa-preempt.toml) and config,
# its scheduler on only for "nodus*".
# The guest's PATH is busybox's; the Debian programs are in /usr/bin.
export PATH="$PATH:/usr/bin"
# Rounds and seconds per run, from the host (hil-tests/bench-sched.sh).
[ -f /nodus-bench/env ] && . /nodus-bench/env
rounds=${BENCH_ROUNDS:-3}
secs=${BENCH_SECONDS:-10}
bench() { echo "@@BENCH $*"; }

# config NAME PROFILE SCHED: a config file using that profile.
config() {
  printf '[profile]\npath = "%s"\n[sched]\nenabled = %s\n' "$2" "$3" >"/tmp/bench-$1.toml"
  echo "/tmp/bench-$1.toml"
}
profile=/nodus/profiles/qemu-virt-numa-preempt.toml
# the same with the critical layer confined (and so not resized)
awk '/^name = "critical"/ { c = 1 } /^name = "background"/ { c = 0 }
  c && /^policy/ { print "policy = \"confined\""; next } c && /^min_cpus/ { next } { print }' \
  "$profile" >/tmp/profile-confined.toml
config_off=$(config off "$profile" false)
config_on=$(config on "$profile" true)
config_confined=$(config confined /tmp/profile-confined.toml true)

# latency NAME [CYCLICTEST_PREFIX]: p50/p99/max wakeup latency (us) of one
# cyclictest run, from its histogram (1 us buckets up to 100 ms).
latency() {
  $2 cyclictest -q -m -t1 -p0 -i 2000 -D "$secs" -h 100000 >/tmp/cyclictest.out 2>&1 || return
  awk '
    /^[0-9]+ [0-9]+$/ { n = $2 + 0; if (n) { lat[++k] = $1 + 0; cnt[k] = n; total += n } }
    /Histogram Overflows/ { over = $NF + 0 }
    /Max Latencies/ { max = $NF + 0 }
    END {
      total += over
      if (!total) { print "samples=0"; exit }
      seen = 0; p50 = -1; p99 = -1
      for (i = 1; i <= k; i++) {
        seen += cnt[i]
        if (p50 < 0 && seen >= total * 0.50) p50 = lat[i]
        if (p99 < 0 && seen >= total * 0.99) p99 = lat[i]
      }
      if (p50 < 0) p50 = 100000
      if (p99 < 0) p99 = 100000
      printf "samples=%d p50_us=%d p99_us=%d max_us=%d overflows=%d\n", total, p50, p99, max, over
    }' /tmp/cyclictest.out
}

# hogs [TASKSET_PREFIX]: start four stress-ng CPU hogs for the run; the
# bogo-ops come from hogs_ops.
hogs() {
  $1 stress-ng --cpu 4 --cpu-method int64 -t "$((secs + 2))" --metrics-brief >/tmp/stress.out 2>&1 &
  HOGS=$!
  sleep 1
}
# hogs_ops: waits for the hogs (in this shell: they are its child) and
# prints their bogo-ops, or why there are none.
hogs_ops() {
  wait "$HOGS" || { echo "exit $?"; return; }
  awk '$0 ~ /\] cpu / { for (i = 1; i <= NF; i++) if ($i == "cpu") { print $(i + 1); exit } }' /tmp/stress.out
}

# run CONDITION: the critical task under hogs, then the hogs alone.
run() {
  case $1 in
    cpuset) crit="taskset -c 2-3" bg="taskset -c 0-1" ;;
    *) crit="" bg="" ;;
  esac
  hogs "$bg"
  lat=$(latency "$1" "$crit")
  hogs_ops >/tmp/ops_with
  hogs "$bg"
  sleep "$secs"
  hogs_ops >/tmp/ops_alone
  ops_with=$(cat /tmp/ops_with) ops_alone=$(cat /tmp/ops_alone)
  # (fail in a command substitution only ends the subshell)
  case "$lat" in samples=[1-9]*) ;; *) fail "cyclictest: $lat $(tail -n 3 /tmp/cyclictest.out)" ;; esac
  case "$ops_with$ops_alone" in '' | *[!0-9]*) fail "stress-ng: $ops_with $ops_alone: $(tail -n 12 /tmp/stress.out)" ;; esac
  bench "round=$round condition=$1 $lat bogo_ops_with_critical=$ops_with bogo_ops_alone=$ops_alone"
}

command -v cyclictest >/dev/null || fail "no cyclictest in the guest (run through hil-tests/bench-sched.sh)"
command -v stress-ng >/dev/null || fail "no stress-ng in the guest (run through hil-tests/bench-sched.sh)"
round=1
while [ "$round" -le "$rounds" ]; do
  nodus_start --config "$config_off"
  run default
  run cpuset
  nodus_stop
  for variant in on confined; do
    if [ "$variant" = on ]; then nodus_start --config "$config_on"; else nodus_start --config "$config_confined"; fi
    wait_status "^      state +enabled \(nodus, full\)$" 60 || fail "the scheduler did not load: $(nodus status)"
    if [ "$variant" = on ]; then run nodus; else run nodus-confined; fi
    nodus status | grep -E "^      (layers|preemptions) " | sed "s/^ */@@BENCH-STATUS $variant: /"
    nodus_stop
  done
  round=$((round + 1))
done
