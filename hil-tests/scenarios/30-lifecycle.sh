# nodus starts with its embedded defaults, reaches READY, answers status and
# stops cleanly on SIGTERM, removing its control socket.
nodus_start
out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "ready in [0-9]+ ms" "$out" "start-to-READY"
expect_line "^  control +healthy" "$out" "control component"
expect_line "^kernel: .*\(aarch64\): all eBPF features available" "$out" "kernel summary"
[ "$(stat -c %a "$NODUS_SOCKET")" = 600 ] || fail "control socket mode $(stat -c %a "$NODUS_SOCKET")"
grep -q " /sys/kernel/tracing tracefs " /proc/mounts || fail "tracefs not mounted (nodus mounts it when absent)"
nodus_stop
[ ! -e "$NODUS_SOCKET" ] || fail "control socket left behind"
echo "stopped cleanly"
