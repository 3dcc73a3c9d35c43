# The Yocto package's ptest (yocto-layer/recipes-nodus/nodus/files/run-ptest,
# copied to /nodus/run-ptest) on the board, as ptest-runner runs it on an
# image with the package's /etc/nodus/nodus.toml: every check PASS, none FAIL.
mkdir -p /etc/nodus
nodus config defaults >/etc/nodus/nodus.toml || fail "nodus config defaults exited $?"
out=$(sh /nodus/run-ptest 2>&1)
echo "$out"
rm -f /etc/nodus/nodus.toml
if printf '%s\n' "$out" | grep -q "^FAIL: "; then fail "a ptest check failed"; fi
for check in config-check profile-show probe-btf probe-tracepoint selftest; do
  expect_line "^PASS: $check\$" "$out" "ptest $check"
done
