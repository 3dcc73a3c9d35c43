# A grouped, preempting layer on the board: its idle CPUs are lent (CPU
# hogs of the background layer run there while it sleeps), and its task's
# wakeups take them back (SCX_ENQ_PREEMPT, counted in `preemptions`).
# The profile: hil-tests/profiles/qemu-virt-numa-preempt.toml (critical
# grouped + preempt on CPUs 2-3, background grouped on 0-1).
printf '[profile]\npath = "/nodus/profiles/qemu-virt-numa-preempt.toml"\n' >/tmp/preempt.toml
nodus_start --config /tmp/preempt.toml
wait_status "^      state +enabled \(nodus, full\)$" 90 || fail "the scheduler did not load: $(nodus status)"

# wakes about every 10 ms (each sleep is a child; the shell is the task)
printf '#!/bin/sh\nwhile :; do sleep 0.01; done\n' >/tmp/critical-tick
chmod +x /tmp/critical-tick
start_hogs 4
hogs=$HOGS
sleep 2
# The critical layer idle: its CPUs run hogs (lent, not wasted).
lent=0
for _ in $(seq 1 20); do
  for h in $hogs; do
    case "$(cpu_of "$h")" in 2 | 3) lent=$((lent + 1)) ;; esac
  done
  sleep 0.1
done
echo "hog samples on the critical layer's CPUs 2-3: $lent of 80"
[ "$lent" -gt 0 ] || fail "no hog ever ran on the idle critical layer's CPUs 2-3: idle CPUs were not lent"

/tmp/critical-tick &
tick=$!
wait_status "^      preemptions +[1-9]" 10 || fail "the critical layer's wakeups preempted nothing: $(nodus status)"
out=$(nodus status)
echo "$out"
expect_line "critical: grouped, 2 cpus, [0-9]+% busy, [1-9][0-9]* tasks, [1-9][0-9]* preempts" "$out" "the critical layer's preemptions"
kill $tick $hogs
nodus_stop
