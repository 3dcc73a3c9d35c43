# The file server on the board: nodus serves a docroot on guest port 8080,
# curl on the host fetches it through hostfwd, workers are pinned to the
# profile's CPUs, the sk_reuseport program sees every connection, and the TC
# classifier on eth0 counted the host's request in the kernel, and the hot
# set reviewed its policy on what it served.
mkdir -p /tmp/fsroot/docs
echo "nodus-fs-$HIL_TOKEN" >/tmp/fsroot/index.html
echo "docs" >/tmp/fsroot/docs/index.html
cat >/tmp/fs.toml <<TOML
[fileserver]
listen = "0.0.0.0:8080"
docroot = "/tmp/fsroot"
tc_interfaces = ["lo", "eth0"]
hot_review_requests = 100
TOML
nodus_start --config /tmp/fs.toml
# The classifier attaches in the background after READY (its verification
# takes the kernel a while, longer under TCG): wait for it.
wait_status "^      tc_interfaces " 10 || true
out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "^  fileserver +healthy" "$out" "fileserver component"
expect_line "^      worker_cpus +2,3$" "$out" "workers pinned to the profile's runtime CPUs"
expect_line "^      tc_interfaces +lo \(tcx\), eth0 \(tcx\)$" "$out" "TC classifier attached"

got=$(host_fetch_guest fileserver) || fail "host check failed"
[ "$got" = "nodus-fs-$HIL_TOKEN" ] || fail "host fetched '$got' from nodus"
got=$(wget -q -O - http://127.0.0.1:8080/docs/) || fail "guest wget failed"
[ "$got" = "docs" ] || fail "guest fetched '$got'"
wget -q -O /dev/null http://127.0.0.1:8080/missing 2>/dev/null && fail "missing file served"

out=$(nodus status) || fail "nodus status exited $?"
echo "$out"
expect_line "^      kernel_requests.get.index +[1-9]" "$out" "kernel-side request counter"
# Every connection went through the steering program. On this board the
# profile puts the NIC's interrupts on node 0 and nodus (workers included) on
# node 1, so SYNs arrive on CPUs without a worker: the program leaves those to
# the kernel's hash and counts them as fallback.
# Only the fileserver's block: other components (the proxy) have stats of
# the same names.
hstat() { printf '%s\n' "$out" | sed -n '/^  fileserver /,/^  [a-z]/p' | sed -n "s/^      $1 \+//p"; }
steered=$(hstat reuseport_steered)
same_node=$(hstat reuseport_same_node)
fallback=$(hstat reuseport_fallback)
accepted=$(hstat connections_accepted)
[ $((steered + same_node + fallback)) -ge "$accepted" ] && [ "$accepted" -ge 3 ] ||
  fail "steering saw $steered + $same_node + $fallback of $accepted connections"
echo "steering: $steered to the receiving CPU, $same_node to its node, $fallback to the hash, of $accepted"
expect_line "^      responses_2xx +[2-9]" "$out" "2xx responses"
expect_line "^      responses_4xx +[1-9]" "$out" "404 counted"

# A window of requests: the hot set replays it through every policy and
# shows the measured hit ratio beside theirs.
n=0
while [ "$n" -lt 100 ]; do
  wget -q -O /dev/null http://127.0.0.1:8080/ || fail "request $n failed"
  n=$((n + 1))
done
wait_status "^      hot_sim_sieve_pct " 10 || true
out=$(nodus status) || fail "nodus status exited $?"
echo "$out" | grep "^      hot_"
expect_line "^      hot_policy +(lru|arc|s3fifo|sieve) \(auto\)$" "$out" "hot-set policy"
expect_line "^      hot_policy_reviews +[1-9]" "$out" "hot-set review"
expect_line "^      hot_hit_ratio_pct +[0-9]" "$out" "measured hot-set hit ratio"
for p in lru arc s3fifo sieve; do
  expect_line "^      hot_sim_${p}_pct +[0-9]" "$out" "$p replayed on the served requests"
done
nodus_stop
echo "fileserver served the host through hostfwd"
