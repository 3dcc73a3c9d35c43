# Hardware counters per process, on a board booted with precise
# instruction counting (run.sh --pmu: QEMU's PMU then counts retired
# instructions and cycles; it has no cache-miss event). nodus opens the
# counters once per CPU and the numa programs add what each process spent
# at every context switch: a spinning shell gets an IPC in status,
# `nodus top --json` and `nodus top --once`; the event the PMU lacks is
# said, not invented.
out=$(nodus probe) || fail "nodus probe exited $?"
expect_line "^  hardware_counters +available \(armv8_pmuv3\)" "$out" "a PMU counting instructions"

# A shell holding 8 MiB (so it is looked at closely) and spinning.
cat >/tmp/spinner <<'EOF2'
#!/bin/sh
s=x
i=0
while [ $i -lt 23 ]; do s="$s$s"; i=$((i + 1)); done
: >/tmp/spinner.ready
while :; do :; done
EOF2
chmod +x /tmp/spinner
rm -f /tmp/spinner.ready
/tmp/spinner &
spinner=$!
wait_file /tmp/spinner.ready 60 "the spinner did not fill its memory"

printf '[numa]\ninterval_ms = 500\nmin_rss_mib = 1\n' >/tmp/numa-pmu.toml
nodus_start --config /tmp/numa-pmu.toml
wait_status "^      hardware_counters +instructions, cycles counted per process on 4 cpus" 30 ||
  fail "the counters are not read: $(nodus status | grep -E 'hardware|numa')"
out=$(nodus status)
echo "$out" | grep -E "hardware_counters"
wait_status "spinner $spinner: .*ipc [0-9]+\.[0-9]{2}" 15 ||
  fail "no IPC for the spinner: $(nodus status | grep -E 'processes|spinner' | cut -c1-400)"
line=$(nodus status | grep -o "spinner $spinner: .*" | cut -c1-300)
echo "$line"
ipc=$(echo "$line" | grep -oE "ipc [0-9]+\.[0-9]+" | cut -d' ' -f2)
# A spinning shell retires instructions every cycle it has, and no CPU
# retires more than a handful per cycle.
awk -v v="$ipc" 'BEGIN { exit !(v > 0.05 && v < 8) }' || fail "implausible IPC $ipc"

# Its CPU share at four looks: its run so far counted at each (it is
# rarely switched out on this quiet board), never over one CPU.
seen=0 last=""
while [ "$seen" -lt 4 ]; do
  sleep 0.2
  cur=$(nodus status | grep -oE "spinner $spinner: [^;]*")
  [ "$cur" != "$last" ] || continue
  last=$cur seen=$((seen + 1))
  pct=$(echo "$cur" | grep -oE "[0-9]+% cpu" | cut -d% -f1)
  echo "look $seen: ${pct}% cpu"
  [ "$pct" -le 105 ] || fail "the spinner at ${pct}% of a CPU: $cur"
done

json=$(nodus top --json) || fail "nodus top --json exited $?"
echo "$json" | grep -qE "\"pid\":$spinner,.*\"ipc\":[0-9]" || fail "no ipc in nodus top --json"
once=$(COLUMNS=160 nodus top --once) || fail "nodus top --once exited $?"
expect_line "IPC" "$once" "the IPC column"
echo "$once" | grep -E "^ *$spinner " | head -1

kill "$spinner"
nodus_stop
