# The fleet link on the board: nodus publishes to the mosquitto the harness
# runs on the host (10.0.2.2 through user networking), takes the config
# document the host signed with openssl (Ed25519) and retained for it,
# commits it as last-good, and its telemetry decodes with `nodus telemetry
# watch` on the board itself. A restart of nodus continues the boot's
# sequence numbers (resume file on /run) with its telemetry spool open.
[ -n "$HIL_BROKERPORT" ] || fail "no nodus.brokerport on the kernel command line"
pub=$(host_get fleet-pubkey) || fail "cannot fetch the fleet public key from the host"
broker="mqtt://10.0.2.2:$HIL_BROKERPORT"
mkdir -p /tmp/fleet-state
cat >/tmp/fleet.toml <<CONF
[fleet]
broker = "$broker"
device_id = "hil-board"
telemetry_interval_ms = 1000
trusted_keys = ["$pub"]
grace_ms = 2000
state_dir = "/tmp/fleet-state"
CONF
nodus_start --config /tmp/fleet.toml

i=0
while :; do
  out=$(nodus status) || fail "nodus status exited $?"
  printf '%s\n' "$out" | grep -Eq "^      config_device_version +1$" \
    && [ -s /tmp/fleet-state/fleet-last-good.json ] && break
  i=$((i + 1))
  [ "$i" -lt 60 ] || fail "the signed document was not committed within 30 s:
$out"
  sleep 0.5
done
echo "$out" | sed -n '/^  fleet/,/^  [a-z]/p'
expect_line "^  fleet +healthy" "$out" "fleet component connected"
expect_line "^config: .* \+ device v1$" "$out" "the document is part of the running config"
expect_line "^      capacity +12345$" "$out" "the document's [proccache] capacity in effect"
grep -q 'capacity = 12345' /tmp/fleet-state/fleet-last-good.json || fail "last-good file lacks the document"

watch=$(nodus telemetry watch --broker "$broker" --device hil-board --count 2 --timeout 30) \
  || fail "telemetry watch: $watch"
printf '%s\n' "$watch" | head -5
expect_line "^hil-board boot [0-9a-f]{8} seq [0-9]+ " "$watch" "a decoded report"
expect_line "^      connected +1$" "$watch" "stat names resolved from the retained schema"
seq=$(printf '%s\n' "$watch" | sed -n 's/^hil-board boot [0-9a-f]* seq \([0-9]*\) .*/\1/p' | tail -1)
[ -n "$seq" ] || fail "no sequence number in the watch output"
out=$(nodus status) || fail "nodus status exited $?"
expect_line "^      spool_bytes +16$" "$out" "telemetry spool open, empty while the broker keeps up"
nodus_stop

nodus_start --config /tmp/fleet.toml
out=$(nodus status) || fail "nodus status exited $?"
next=$(printf '%s\n' "$out" | sed -n 's/^      next_seq  *\([0-9]*\)$/\1/p')
[ "${next:-0}" -gt "$seq" ] || fail "sequence restarted with nodus: next_seq ${next:-none}, last seen $seq"
echo "@@HIL {\"fleet\":{\"config_device_version\":1,\"last_seq\":$seq,\"next_seq_after_restart\":$next}}"
nodus_stop
