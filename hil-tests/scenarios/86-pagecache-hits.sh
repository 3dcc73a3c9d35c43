# Page-cache hits and misses counted by the board's kernel with fentry (hits
# counted, not estimated), against ground truth: on the ext4 disk, a file
# dropped from the cache and read twice is every page missed once and every
# page hit once (`nodus cache hits`), its misses stream with the reader's name
# (`nodus cache trace`), and the daemon's pagecache component sees the file
# server's docroot (sendfile) hit.
mkdir -p /mnt/disk
mount -t ext4 /dev/vda /mnt/disk || fail "mounting the board's ext4 disk (/dev/vda)"
f=/mnt/disk/hits.dat
dd if=/dev/zero of="$f" bs=65536 count=16 2>/dev/null
sync
out=$(nodus cache files --json "$f") || fail "nodus cache files exited $?"
page=$(printf '%s\n' "$out" | sed -n 's/^ *"page_size": \([0-9]*\),*$/\1/p')
[ -n "$page" ] || fail "no page_size"
pages=$((1048576 / page))

# Waits (up to 120 s: loading under TCG is slow) until file $1 says $2.
wait_for_text() {
  i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 1200 ] || fail "no '$2' in $1 within 120 s: $(cat "$1")"
    sleep 0.1
  done
}

read_twice() {
  echo 3 >/proc/sys/vm/drop_caches
  dd if="$f" of=/dev/null bs=65536 2>/dev/null
  dd if="$f" of=/dev/null bs=65536 2>/dev/null
}

nodus cache hits --json --seconds 10 -n 1000 --path /mnt/disk >/tmp/hits.json 2>/tmp/hits.err &
hits=$!
wait_for_text /tmp/hits.err "nodus: counting"
read_twice
wait "$hits" || fail "nodus cache hits exited $?: $(cat /tmp/hits.err)"
row=$(grep -A5 "\"name\": \"$f\"" /tmp/hits.json)
echo "$row"
expect_line "\"method\": \"fentry\"" "$(cat /tmp/hits.json)" "fentry on the board"
expect_line "\"hits_exact\": true" "$(cat /tmp/hits.json)" "hits counted, not estimated"
expect_line "\"accesses\": $((2 * pages)),\$" "$row" "both reads: every page accessed"
expect_line "\"misses\": $pages,\$" "$row" "first read: every page missed"
expect_line "\"hits\": $pages,\$" "$row" "second read: every page hit"

nodus cache trace --seconds 10 --path /mnt/disk >/tmp/trace.txt 2>/tmp/trace.err &
tracer=$!
wait_for_text /tmp/trace.err "nodus: tracing"
read_twice
wait "$tracer" || fail "nodus cache trace exited $?: $(cat /tmp/trace.err)"
missed=$(grep " dd .*$f\$" /tmp/trace.txt | awk '{ n += $5 } END { print n + 0 }')
grep " dd .*$f\$" /tmp/trace.txt | head -3
[ "$missed" -eq "$pages" ] || fail "trace: $missed pages of $f missed by dd, expected $pages"

mkdir -p /mnt/disk/www
cp "$f" /mnt/disk/www/big.bin
sync
cat >/tmp/pc.toml <<TOML
[fileserver]
listen = "127.0.0.1:8080"
docroot = "/mnt/disk/www"
hot_bytes = 0
[pagecache]
docroot_interval_s = 1
TOML
nodus_start --config /tmp/pc.toml
# The component loads its programs after READY (slow under TCG): count from then.
wait_status "^      counting +(fentry|tracepoints|off)\$" 120 ||
  fail "pagecache still loading its programs after 120 s"
echo 3 >/proc/sys/vm/drop_caches
wget -q -O /dev/null http://127.0.0.1:8080/big.bin || fail "first GET"
wget -q -O /dev/null http://127.0.0.1:8080/big.bin || fail "second GET"
wait_status "^      docroot_accesses +$((2 * pages))\$" 30 || true
out=$(nodus status) || fail "nodus status exited $?"
printf '%s\n' "$out" | sed -n '/^  pagecache/,/^  [a-z]/p'
expect_line "^  pagecache +healthy" "$out" "pagecache component"
expect_line "^      counting +fentry\$" "$out" "counting method in status"
expect_line "^      docroot_accesses +$((2 * pages))\$" "$out" "two GETs: every page accessed"
expect_line "^      docroot_misses +$pages\$" "$out" "first GET: every page missed"
expect_line "^      docroot_hit_ratio_pct +50\.0\$" "$out" "second GET: every page hit"
nodus_stop
umount /mnt/disk
