# Page-cache insight on the board's kernel (arm64): cachestat is reached by
# its syscall number on this architecture too, pages are the kernel's, a
# file held open shows up in `cache top` with its process, and the
# simulator gives the miss count a loop of 50 objects must have.
f=/tmp/hil-pagecache.dat
dd if=/dev/zero of="$f" bs=1000 count=41 2>/dev/null
out=$(nodus cache files --json "$f") || fail "nodus cache files exited $?"
echo "$out"
expect_line '"method": "cachestat"' "$out" "cachestat on arm64"
page=$(printf '%s\n' "$out" | sed -n 's/^ *"page_size": \([0-9]*\),*$/\1/p')
[ -n "$page" ] || fail "no page_size"
pages=$(( (41000 + page - 1) / page ))
expect_line "\"cached\": $pages,\$" "$out" "all $pages pages of a file just written (tmpfs) cached"

sleep 30 <"$f" &
holder=$!
top=$(nodus cache top -n 100000) || true
kill "$holder"
printf '%s\n' "$top" | grep -E "hil-pagecache|busybox" | head -5
expect_line "hil-pagecache.dat +1 proc: sleep $holder\$" "$top" "a file held open, with its process"

trace=/tmp/hil-loop.csv
i=0
{
  echo "time,obj_id"
  while [ "$i" -lt 1000 ]; do echo "$i,$((i % 50))"; i=$((i + 1)); done
} >"$trace"
sim=$(nodus cache simulate --format csv --id-column 2 --sizes 100 "$trace") || fail "nodus cache simulate exited $?"
echo "$sim"
expect_line "^ +100 +5\.000 +5\.000 +5\.000 +5\.000\$" "$sim" "50 misses of 1000 for every policy"
