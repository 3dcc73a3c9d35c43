# The TLS SNI proxy on the board: ClientHellos captured on the host (the
# guest has no openssl) go through the proxy to busybox nc backends, one on
# a splice route and one on a sockhash route; each backend receives the
# hello and the bytes behind it unchanged, and status shows each route's
# data path, connection and bytes.
host_get hello-demo.localhost >/tmp/hello-demo || fail "no demo hello from the host"
host_get hello-sockhash.test >/tmp/hello-sockhash || fail "no sockhash hello from the host"
cat >/tmp/proxy.toml <<TOML
[proxy]
listen = "127.0.0.1:8443"
# The nc backends accept one connection: no health checks to take it.
check_interval_ms = 0
[[proxy.route]]
name = "demo"
server_names = ["localhost", "*.localhost"]
backends = ["127.0.0.1:8444"]
[[proxy.route]]
name = "kernel"
server_names = ["sockhash.test"]
data_path = "sockhash"
backends = ["127.0.0.1:8445"]
TOML
nodus_start --config /tmp/proxy.toml

# through HELLO PORT HOLD: sends HELLO and a line through the proxy, keeping
# its side open HOLD seconds more (busybox nc half-closes at the end of its
# input); the nc backend on PORT must receive exactly those bytes. The
# backend's input is a FIFO held open and silent: a background job's stdin
# is /dev/null, and an nc reading it half-closes the moment it accepts,
# which leaves the proxy a backend socket the kernel will not put in a
# sockhash (only established sockets enter).
through() {
  rm -f /tmp/got /tmp/backend-in
  { cat "$1"; echo "hil-$HIL_TOKEN-$2"; } >/tmp/sent
  mkfifo /tmp/backend-in
  nc -l -p "$2" </tmp/backend-in >/tmp/got &
  backend=$!
  exec 9>/tmp/backend-in
  sleep 0.5
  { cat /tmp/sent; sleep "$3"; } | nc -w 5 127.0.0.1 8443 >/dev/null || true
  i=0
  while kill -0 "$backend" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || { kill "$backend"; fail "backend on $2 still waiting 10 s on"; }
    sleep 0.1
  done
  exec 9>&-
  cmp /tmp/sent /tmp/got || fail "the backend on $2 received other bytes ($(wc -c </tmp/got) of $(wc -c </tmp/sent))"
  echo "backend on $2 received $(wc -c </tmp/got) bytes unchanged"
}
through /tmp/hello-demo 8444 2
through /tmp/hello-sockhash 8445 2

out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "^  proxy +healthy" "$out" "proxy component"
expect_line "^      sockhash +attached$" "$out" "sockhash data path attached on the board's kernel"
expect_line "demo: splice, 1 conns, [1-9][0-9]+ B up" "$out" "splice route counted"
expect_line "^      hello_errors +0$" "$out" "no hello refused"
# Both sockets established: relayed in the board kernel's sockhash, its
# bytes on the kernel's route counters, nothing spliced.
expect_line "kernel: sockhash, 1 conns, [1-9][0-9]+ B up" "$out" "sockhash route relayed in the kernel"

# A client that half-closes at once: if its FIN is in before its socket
# would enter the sockhash, the kernel refuses it and the connection is
# spliced, bytes unchanged, the log naming the socket's TCP state.
through /tmp/hello-sockhash 8445 0
out=$(nodus status) || fail "nodus status exited $?"
echo "$out" | grep -E "routes|sockhash"
expect_line "kernel: sockhash( \(1 spliced\))?, 2 conns" "$out" "second connection on the sockhash route"
if printf '%s\n' "$out" | grep -q "kernel: sockhash (1 spliced)"; then
  grep "sockhash refused a connection (the client socket is in TCP state CLOSE_WAIT" "$NODUS_LOG" ||
    fail "a spliced connection without the reason in the log"
fi
nodus_stop

# Health checks: a route whose only backend is not there is seen down by
# its checks within a second, in status and in the log. The XDP guard on
# the board's loopback lets 3 SYNs a second through from one source.
cat >/tmp/proxy-checked.toml <<TOML
[proxy]
listen = "127.0.0.1:8443"
check_interval_ms = 200
check_fall = 2
[proxy.guard]
interfaces = ["lo"]
syn_per_second = 3
[[proxy.route]]
name = "checked"
server_names = ["checked.test"]
backends = ["127.0.0.1:8446"]
TOML
nodus_start --config /tmp/proxy-checked.toml
wait_status "backends_down .*checked: 127\.0\.0\.1:8446 \(" 10 ||
  fail "the dead backend never reported down: $(nodus status | grep -E 'routes|backends')"
nodus status | grep -E "routes|backends_down|check_failures"
expect_line "checked: splice, 0 conns, 0 B up, 0 B down, 0/1 backends up" "$(nodus status)" "route shows no backend up"
grep "proxy: checked: backend 127.0.0.1:8446 down (" "$NODUS_LOG" || fail "no log line for the backend going down"
# Six connects in a row: the fourth SYN of the second is dropped (its nc
# gives up after 1 s), later ones fall in the next second.
n=0
while [ "$n" -lt 6 ]; do
  nc -w 1 127.0.0.1 8443 </dev/null >/dev/null 2>&1 || true
  n=$((n + 1))
done
out=$(nodus status)
printf '%s\n' "$out" | grep -E "guard"
expect_line "^      guard +lo \((generic|native)\)$" "$out" "XDP guard attached to the board's lo"
expect_line "^      guard_passed +[3-9]$" "$out" "SYNs let through counted"
expect_line "^      guard_rate_limited +[1-9]$" "$out" "a SYN over the rate dropped and counted"
nodus_stop
echo "proxy routed both hellos on the board and saw a dead backend down"
