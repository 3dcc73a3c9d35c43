# The process cache on the board: the raw tracepoint programs load on the
# board's kernel (arm64 task_struct offsets from its BTF), every one of a
# burst of short-lived processes is recorded with argv and exit code, and a
# process started before nodus is there from the /proc seed.
/bin/busybox sh -c 'while :; do sleep 1; done' hil-before-nodus &
before=$!
nodus_start
out=$(nodus status) || fail "nodus status exited $?"
echo "$out" | sed -n '/^  proccache/,/^  [a-z]/p'
expect_line "^  proccache +healthy" "$out" "proccache component"
expect_line "^      mode +events$" "$out" "kernel events in use"
expect_line "^      event_thread +fifo:1 on cpus 3$" "$out" "event thread scheduling and placement.ebpf_events"

n=200
i=0
while [ "$i" -lt "$n" ]; do
  /bin/busybox sh -c "exit $((i % 50))" "hil-burst-$i"
  i=$((i + 1))
done
sleep 0.5
ps_out=$(nodus ps --exited --comm busybox) || fail "nodus ps exited $?"
captured=0
i=0
while [ "$i" -lt "$n" ]; do
  printf '%s\n' "$ps_out" | grep -Eq " exit $((i % 50)) .* sh -c exit $((i % 50)) hil-burst-$i\$" && captured=$((captured + 1))
  i=$((i + 1))
done
echo "captured $captured of $n short-lived processes with argv and exit code"
[ "$captured" -eq "$n" ] || fail "only $captured of $n processes captured:
$(printf '%s\n' "$ps_out" | grep hil-burst | tail -20)"

printf '%s\n' "$ps_out" | grep -Eq "^ *$before .* live .*hil-before-nodus\$" \
  || fail "pid $before (started before nodus) not in ps:
$(nodus ps --pid "$before")"
stats=$(nodus status)
p99=$(printf '%s\n' "$stats" | sed -n 's/^      exec_latency_p99_us *//p')
drops=$(printf '%s\n' "$stats" | sed -n 's/^      drops *//p')
echo "@@HIL {\"proccache\":{\"captured\":$captured,\"of\":$n,\"exec_latency_p99_us\":${p99:-null},\"drops\":${drops:-null}}}"
kill "$before"
nodus_stop
