# Both directions the later scenarios need: guest to a host service through
# the user-net host address, and a host-side client to a guest server through
# hostfwd.
token=$(host_get token) || fail "cannot reach the host at 10.0.2.2:$HIL_HOSTPORT"
[ "$token" = "$HIL_TOKEN" ] || fail "host token '$token', expected '$HIL_TOKEN'"
mkdir -p /tmp/www && echo "guest-$HIL_TOKEN" >/tmp/www/index.html
httpd -f -p 8080 -h /tmp/www &
httpd_pid=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:8080/index.html 2>/dev/null; do
  i=$((i + 1))
  [ "$i" -lt 100 ] || fail "busybox httpd did not start"
  sleep 0.1
done
got=$(host_fetch_guest http) || fail "host check failed"
kill "$httpd_pid"
[ "$got" = "guest-$HIL_TOKEN" ] || fail "host fetched '$got' from the guest"
echo "guest->host and host->guest ok"
