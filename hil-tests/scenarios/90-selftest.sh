# The shipped (release, aarch64) binary keeps a panicking component from
# stopping the others: a build with panic=abort dies here with SIGABRT.
out=$(nodus selftest 2>&1)
rc=$?
echo "$out"
[ "$rc" -eq 0 ] || fail "nodus selftest exited $rc (134 is SIGABRT: a panic=abort build)"
expect_line "^panic containment: ok" "$out" "panics contained"
