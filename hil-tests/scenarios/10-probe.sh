# The board's kernel gives nodus what the build host lacks: nodus probe must
# find sched_ext, fentry and the rest available by loading its own programs.
out=$(nodus probe) || fail "nodus probe exited $?"
echo "$out"
for f in btf tracepoint ringbuf tc xdp sk_skb_sockhash sk_reuseport fentry struct_ops sched_ext; do
  expect_line "^  $f +available" "$out" "$f"
done
expect_line "^  sched_ext +available state=disabled" "$out" "sched_ext state"
expect_line "\(aarch64\)" "$out" "machine"
