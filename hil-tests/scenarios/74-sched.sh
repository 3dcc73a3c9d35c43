# The layered scheduler on the board's 7.3 kernel (sched_ext): nodus loads it
# from the qemu-virt-numa profile's layers (critical: comm prefix
# "critical", confined to CPUs 2-3; background: every cgroup, grouped on
# 0-1), the kernel runs it, tasks land in their layers and the critical
# CPUs carry no background work; SysRq-S ends it, nodus reports the exit
# and loads it again.
# The kernel's account of a scheduler it ends (runnable tasks, their
# queues and CPUs) goes to the trace buffer.
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
echo 1 >/sys/kernel/tracing/events/sched_ext/sched_ext_dump/enable 2>/dev/null || true
# Shown when the scenario fails (SysRq-S below writes one too).
trap 'rc=$?; [ $rc -eq 0 ] || grep -v "^#" /sys/kernel/tracing/trace 2>/dev/null | cut -c1-200 | head -n 150' EXIT
# On in the embedded defaults.
nodus_start
wait_status "^      state +enabled \(nodus, full\)$" 90 || true
out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "^  sched +healthy" "$out" "sched component"
expect_line "^      state +enabled \(nodus, full\)$" "$out" "scheduler enabled"
[ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || fail "sched_ext state: $(cat /sys/kernel/sched_ext/state)"
[ "$(cat /sys/kernel/sched_ext/root/ops)" = nodus ] || fail "sched_ext ops: $(cat /sys/kernel/sched_ext/root/ops)"

# A critical task and four background hogs (scripts: comm is the file name).
printf '#!/bin/sh\nwhile :; do :; done\n' >/tmp/critical-spin
chmod +x /tmp/critical-spin
/tmp/critical-spin &
crit=$!
start_hogs 4
hogs=$HOGS
# Layers are matched at wakeups; a second of running settles them.
sleep 2
crit_cpus="" hog_cpus=""
for _ in $(seq 1 30); do
  crit_cpus="$crit_cpus $(cpu_of "$crit")"
  for h in $hogs; do hog_cpus="$hog_cpus $(cpu_of "$h")"; done
  sleep 0.1
done
echo "critical ran on:$crit_cpus"
echo "hogs ran on:$hog_cpus"
for c in $crit_cpus; do
  case "$c" in 2 | 3) ;; *) fail "the critical task ran on CPU $c, its layer is confined to 2-3" ;; esac
done
for c in $hog_cpus; do
  case "$c" in 0 | 1) ;; *) fail "a background hog ran on CPU $c: the critical CPUs 2-3 must carry no background work" ;; esac
done
wait_status "critical: confined, 2 cpus, [0-9]+% busy, [1-9][0-9]* tasks" 5 || true
out=$(nodus status)
echo "$out"
expect_line "critical: confined, 2 cpus, [0-9]+% busy, [1-9][0-9]* tasks" "$out" "the critical layer holds the task"
expect_line "background: grouped, [12] cpus, [0-9]+% busy, [1-9][0-9]* tasks" "$out" "the background layer holds the hogs"

# A nice-19 spinner in the background layer beside the four hogs: nice
# puts it behind them, and it is never starved (khugepaged, a nice-19
# kernel thread, once waited there until the kernel's 5 s watchdog ended
# the scheduler).
printf '#!/bin/sh\nwhile :; do :; done\n' >/tmp/lazy-spin
chmod +x /tmp/lazy-spin
/tmp/lazy-spin &
lazy=$!
renice -n 19 -p "$lazy" >/dev/null || fail "renice"
hog1=${hogs# }
hog1=${hog1%% *}
sleep 1
[ -r "/proc/$lazy/schedstat" ] || fail "no /proc/$lazy/schedstat"
# /proc/PID/schedstat: time on CPU (ns), time waiting (ns), times run.
set -- $(cat /proc/$lazy/schedstat)
lazy_ns0=$1 lazy_runs0=$3
set -- $(cat /proc/$hog1/schedstat)
hog_ns0=$1
sleep 8
set -- $(cat /proc/$lazy/schedstat)
lazy_ms=$((($1 - lazy_ns0) / 1000000)) lazy_runs=$(($3 - lazy_runs0))
set -- $(cat /proc/$hog1/schedstat)
hog_ms=$((($1 - hog_ns0) / 1000000))
echo "in 8 s: the nice-19 spinner ran $lazy_runs times, $lazy_ms ms; a nice-0 hog $hog_ms ms"
[ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || fail "the scheduler ended with a nice-19 task beside the hogs: $(nodus status)"
[ "$lazy_runs" -ge 8 ] || fail "the nice-19 spinner ran $lazy_runs times in 8 s: starved"
[ "$lazy_ms" -lt "$hog_ms" ] || fail "the nice-19 spinner ran $lazy_ms ms, a nice-0 hog $hog_ms ms: nice ignored"
kill $lazy
out=$(nodus status)
expect_line "^      exits +0$" "$out" "no exit while the nice-19 task ran"

# SysRq-S: the kernel ends the scheduler (every task back on the default
# one); nodus notices, reports the exit and loads it again after its backoff.
echo S >/proc/sysrq-trigger
wait_status "^      last_exit +SysRq-S" 3 || fail "no SysRq-S exit reported within 3 s: $(nodus status)"
wait_status "^      reloads +1$" 10 || fail "not reloaded within 10 s: $(nodus status)"
wait_status "^      state +enabled \(nodus, full\)$" 10 || fail "not enabled again: $(nodus status)"
out=$(nodus status)
echo "$out"
expect_line "^      exits +1$" "$out" "one exit counted"
[ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || fail "sched_ext state after the reload: $(cat /sys/kernel/sched_ext/state)"
grep -q "the kernel ended the scheduler: SysRq-S" "$NODUS_LOG" || fail "no log line for the exit"

kill $crit $hogs
nodus_stop
[ "$(cat /sys/kernel/sched_ext/state)" = disabled ] || fail "sched_ext still $(cat /sys/kernel/sched_ext/state) after nodus stopped"
